/* err.h: the one error type of the slhook library. */
#ifndef SLH_ERR_H
#define SLH_ERR_H

/*
 * Every fallible library function returns one of these. SLH_OK is 0; new
 * codes are only ever appended, so a code's number never changes meaning.
 */
enum slh_err {
    SLH_OK = 0,
    SLH_ENOMEM,   /* out of memory */
    SLH_EINVAL,   /* a bad argument or value */
    SLH_ECONFIG,  /* the configuration file is wrong */
    SLH_EIO,      /* reading or writing a file failed */
    SLH_EPARSE,   /* a request body is not JSON or form */
    SLH_EEVENT,   /* a request body is not an event, or array of them */
    SLH_EAUTH,    /* SecretKey missing or wrong */
    SLH_ESERVER,  /* ServerId not allowed */
    SLH_ESTORE,   /* the spool could not store (disk full, unwritable) */
    SLH_EDELIVER, /* a delivery attempt failed */
    SLH_ENOTFOUND /* no such thing (destination, event) */
};

#define SLH_ERROR_TEXT 256

/*
 * Detail of an error: its code and a short text for a human. Passed as an
 * optional last argument (NULL is fine); the first error set wins.
 */
struct slh_error {
    enum slh_err code;
    char text[SLH_ERROR_TEXT];
};

/* A static English name for code; never NULL, even for unknown codes. */
const char *slh_strerror(enum slh_err code);

/*
 * Records code and a printf-style text in err unless err is NULL or already
 * holds an error (the first error wins). Returns code, so a caller can write
 * `return slh_error_set(err, SLH_EIO, "...")`.
 */
enum slh_err slh_error_set(struct slh_error *err, enum slh_err code,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Empties err (code SLH_OK, empty text). NULL is fine. */
void slh_error_clear(struct slh_error *err);

#endif

/* err.h: the one error type of the slhook library. */
#ifndef SLH_ERR_H
#define SLH_ERR_H

/*
 * Every fallible library function returns one of these; SLH_OK is 0. The
 * numbers are no ABI: the library is linked statically into its own
 * programs and a code is never stored or sent, so compare codes by name;
 * a code nothing returns is removed, not kept.
 */
enum slh_err {
    SLH_OK = 0,
    SLH_ENOMEM,   /* out of memory */
    SLH_EINVAL,   /* a bad argument or value */
    SLH_ECONFIG,  /* the configuration file is wrong */
    SLH_EIO,      /* reading or writing a file failed */
    SLH_EPARSE,   /* a request body is not JSON or form */
    SLH_EEVENT,   /* a request body is not an event, or array of them */
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

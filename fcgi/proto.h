/* proto.h: the FastCGI responder's side of the protocol, over bytes.
 *
 * A connection's bytes go in as they arrive, in pieces of any size
 * (fc_feed()); the parser keeps a partial record header and copies
 * what a request needs (its params, its body up to a set length) into
 * buffers of its own, so an idle or slow connection costs this struct and
 * not a read buffer. It answers what needs no handler (management records,
 * a second request id, a role other than responder, an abort) by putting
 * records in the caller's out buffer. No I/O and no clock: the caller reads,
 * writes and times (fcgi/workers.c). Record layouts are libfcgi's
 * fastcgi.h; lib/ never includes it, so this lives in fcgi/.
 */
#ifndef FC_PROTO_H
#define FC_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/* Largest params of a request (all name-value pairs, as sent). nginx and
 * Apache send 1-4 KiB; many long headers stay far below this. */
#define FC_MAX_PARAMS (64 * 1024)

/* Room an out buffer must have for one call of fc_feed(). */
#define FC_OUT_MIN 512

enum fc_step {
    FC_MORE,  /* every byte given was taken: feed more */
    FC_HEAD,  /* the params are complete: set body_want, feed on */
    FC_READY, /* the request is complete: serve it, then fc_next() */
    FC_FLUSH, /* out holds records to send first; then feed on */
    FC_CLOSE  /* close the connection (why says why; out may hold
                 records to send first) */
};

/* Where a connection is between records. */
enum fc_phase {
    FC_IDLE,   /* no request begun */
    FC_PARAMS, /* reading params */
    FC_STDIN,  /* reading the body */
    FC_DONE    /* complete: being served */
};

/*
 * One connection's parse state. Zero it, then set the settings; release
 * with fc_conn_free(). charge, when set, is asked before every
 * growth of params or body (delta > 0) and told of every release (delta <
 * 0); when it refuses, params over it close the connection and the body is
 * dropped (is_busy), so that the caller can bound the memory of all
 * connections together.
 */
struct fc_conn {
    /* Settings, the caller's. */
    unsigned max_conns, max_reqs; /* for FCGI_GET_VALUES */
    bool (*charge)(void *ctx, long delta);
    void *charge_ctx;

    /* The request being read; valid from FC_HEAD (params) or
     * FC_READY (body) until fc_next(). */
    enum fc_phase phase;
    int id;         /* its request id; 0 when none */
    bool keep_conn; /* FCGI_KEEP_CONN: the connection outlives it */
    char *params;   /* "name\0value\0" pairs from FC_HEAD on */
    size_t params_len, params_cap;
    size_t body_want; /* body bytes to keep; the caller's, at HEAD */
    char *body;       /* body_len kept bytes, NUL-terminated; may be NULL */
    size_t body_len, body_cap;
    size_t stdin_len; /* body bytes received, kept or not */
    bool is_busy;     /* charge refused: the body was dropped */
    bool is_started;  /* a byte of this request (or of the next) came */
    const char *why;  /* static text: why FC_CLOSE */

    /* The record being read. */
    unsigned char hdr[8];
    size_t hdr_have;
    bool is_in_record;
    int type, rid;
    size_t content_left, pad_left;
    unsigned char small[256]; /* BEGIN_REQUEST or management content */
    size_t small_len;
    bool is_closing; /* close once out is sent */
};

/*
 * Takes up to len bytes of buf and returns at the first step that needs
 * the caller: *used gets how many were taken (the rest are to be fed again,
 * after the step is dealt with). Records to send are appended to out
 * (size out_cap, at least FC_OUT_MIN free), *out_len updated; send
 * them before feeding on. FC_MORE means every byte was taken.
 */
enum fc_step fc_feed(struct fc_conn *c, const unsigned char *buf, size_t len,
                     size_t *used, unsigned char *out, size_t out_cap,
                     size_t *out_len);

/* The value of param name (NUL-terminated, borrowed from c->params), or
 * NULL. Valid from FC_HEAD on. */
const char *fc_param(const struct fc_conn *c, const char *name);

/*
 * Forgets the request served (its params and body, unless taken: a caller
 * that keeps them sets the pointers to NULL first and then owns them,
 * with their charge) so that a kept connection can read its next one.
 */
void fc_next(struct fc_conn *c);

/* Frees what c owns. A zeroed c is fine. */
void fc_conn_free(struct fc_conn *c);

/* What fc_answer() adds to an answer of less than FC_RECORD_MAX bytes:
 * three record headers and the FCGI_END_REQUEST body; FC_ANSWER_SIZE(n) is
 * the room any answer of n bytes takes, records split included. */
#define FC_ANSWER_EXTRA (3 * 8 + 8)
#define FC_RECORD_MAX 65535
#define FC_ANSWER_SIZE(n) ((n) + FC_ANSWER_EXTRA + (n) / FC_RECORD_MAX * 8)

/*
 * Writes into buf (at least FC_ANSWER_SIZE(n) bytes) the end of request
 * id: out as FCGI_STDOUT records of at most FC_RECORD_MAX bytes, the empty
 * FCGI_STDOUT, and FCGI_END_REQUEST (request complete). Returns the
 * length.
 */
size_t fc_answer(unsigned char *buf, int id, const char *out, size_t n);

#endif

/* handler.h: the core. From a request and the config to the answer.
 *
 * No I/O happens here. A front end (CGI, FastCGI, tests) calls, in order:
 *   slh_handler_head()   with the request's headers, before reading the body;
 *   slh_handler_body()   with the body;
 *   slh_handler_stored() after storing the batch the body gave;
 * stopping at the first that decides the answer. slh_handle() does all three
 * with a store callback, for front ends with nothing to share.
 */
#ifndef SLH_HANDLER_H
#define SLH_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "event.h"

/* A request as the web server hands it over (CGI meta-variables). */
struct slh_request {
    const char *method;         /* REQUEST_METHOD; NULL counts as not POST */
    const char *content_type;   /* CONTENT_TYPE, or NULL */
    const char *content_length; /* CONTENT_LENGTH as text, or NULL */
    const char *remote_addr;    /* REMOTE_ADDR, or NULL */
    const char *body;           /* the bytes read: body_len of them */
    size_t body_len;
};

#define SLH_RESPONSE_BODY 1024

/* The answer. Always text/plain. */
struct slh_response {
    int status;      /* 200, 400, 401, 403, 405, 411, 413, 415, 503 */
    bool allow_post; /* send "Allow: POST" (405) */
    int retry_after; /* seconds for "Retry-After", 0 for none */
    char body[SLH_RESPONSE_BODY]; /* NUL-terminated; never a secret, except
                                     the key the caller proved it knows in a
                                     Validation answer */
    /* For the log line, never sent: */
    char type[32]; /* Type of the first event, "-" if unknown */
    char event_id[SLH_EVENT_ID_LEN + 1]; /* id of the first event, or "" */
    size_t n_events;                     /* events in the request */
    size_t n_new;                        /* of which newly stored */
};

/*
 * The body length that a CONTENT_LENGTH text states, read as
 * slh_handler_head() reads it: plain decimal digits (no sign, no space, no
 * hex) that fit a size_t; else 0 (NULL, empty or not valid). For a front
 * end that must drop a body before the config, and so the handler, is
 * there.
 */
size_t slh_request_length(const char *content_length);

/*
 * The checks that need only headers, in the contract's order: 405, 411, 413,
 * 403 (allow_from), 415. Returns true when resp holds the answer, false when
 * the body is needed. Either way *body_len gets CONTENT_LENGTH (0 when it is
 * not valid): the number of body bytes to read, or to drop unread.
 */
bool slh_handler_head(const struct slh_config *cfg,
                      const struct slh_request *req, size_t *body_len,
                      struct slh_response *resp);

/*
 * The checks that need the body: 400 (short body, bad JSON/form, not events,
 * no Type), 401 (SecretKey, compared in constant time against every
 * configured key), 403 (ServerId), and the Validation handshake (200).
 * First, on the body's counts (slh_body_shape()) before anything is parsed:
 * 413 for more events than max_events or more JSON values than
 * slh_shape_max_values() of it, 400 for nesting past SLH_MAX_DEPTH, an
 * event of more than SLH_MAX_EVENT_VALUES values (a form of more fields),
 * or a string or form field longer than SLH_MAX_STRING.
 * Returns true when resp holds the answer and *batch is empty; false when
 * the events in *batch (owned by the caller: slh_batch_free()) are to be
 * stored, after which slh_handler_stored() gives the answer.
 */
bool slh_handler_body(const struct slh_config *cfg,
                      const struct slh_request *req, struct slh_batch *batch,
                      struct slh_response *resp);

/*
 * The answer once storing batch returned stored: 200 "OK" (plus the
 * validation key when configured) for SLH_OK, else 503 with Retry-After:
 * SLH_UNAVAILABLE_NOMEM for SLH_ENOMEM (the body could not even be held),
 * SLH_UNAVAILABLE_STORE for any other error. n_new is the number of events
 * that were new (for the log).
 */
void slh_handler_stored(const struct slh_config *cfg,
                        const struct slh_batch *batch, enum slh_err stored,
                        size_t n_new, struct slh_response *resp);

/* Stores a batch durably; returns SLH_OK only once it is on disk. */
typedef enum slh_err (*slh_store_fn)(void *ctx, const struct slh_batch *batch,
                                     size_t *n_new);

/*
 * The whole request, body already read: head, body, store, stored.
 */
void slh_handle(const struct slh_config *cfg, const struct slh_request *req,
                slh_store_fn store, void *store_ctx, struct slh_response *resp);

/* The bodies of every 503, one line each for the sender. */
#define SLH_UNAVAILABLE_STORE "events could not be stored; try again later\n"
#define SLH_UNAVAILABLE_NOMEM "out of memory; try again later\n"
#define SLH_UNAVAILABLE_CONFIG "not configured\n"

/*
 * Makes resp the answer to anything SocketLabs should send again later (the
 * events could not be stored, out of memory, a broken configuration): 503
 * with Retry-After, and body (a line for the sender, one of the
 * SLH_UNAVAILABLE_ texts; never a secret). The fields kept for the log are
 * left as they are. Every 503 of every front end is made here, and
 * slh_response_format() gives it a Content-Length like any answer.
 */
void slh_response_unavailable(struct slh_response *resp, const char *body);

/*
 * The Content-Type of a body that came without one (a body on slhook.cgi's
 * stdin from a shell, a file that slhook send posts): "application/json"
 * when its first byte after blanks (space, tab, CR, LF) is '{' or '[', else
 * "application/x-www-form-urlencoded". Reads at most len bytes of body
 * (NULL only with len 0). The result is a literal.
 */
const char *slh_body_content_type(const char *body, size_t len);

/* The reason phrase of an HTTP status slhook gives ("Not Found"), for a
 * Status line; "Unknown" for others. */
const char *slh_status_reason(int status);

/*
 * Writes resp as a CGI response (Status line, Content-Type, Allow,
 * Retry-After, Content-Length, blank line, body) into buf of size bytes.
 * Returns the length written, or 0 if buf is too small.
 */
size_t slh_response_format(const struct slh_response *resp, char *buf,
                           size_t size);

/*
 * Writes the one-line log of a request into buf: status, Type, event id,
 * events new/total, milliseconds taken, remote address, and the body of an
 * error answer. Never a secret.
 */
void slh_response_logline(const struct slh_request *req,
                          const struct slh_response *resp, double ms, char *buf,
                          size_t size);

/*
 * Milliseconds since *since, a time the caller read with
 * clock_gettime(CLOCK_MONOTONIC, since): the ms that slh_response_logline()
 * logs. Fractions of a millisecond are kept.
 */
double slh_elapsed_ms(const struct timespec *since);

#endif

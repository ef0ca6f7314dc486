/* web.h: what slhook answers to GET (and to the operator's forms) under
 * the handler's own path: health, metrics and the operator's page.
 *
 * A front end asks slh_web_wants() whether a request is one of these (not
 * the webhook); if so it reads the body (small forms only, at most
 * SLH_WEB_MAX_FORM bytes) and calls slh_web_handle(), then writes the
 * answer with slh_web_format_head() and the body bytes. No I/O happens here
 * beyond the store's.
 *
 * The paths, after the handler's own (PATH_INFO):
 *   /health                 open to all: 200 "ok", or 503 with the reason
 *   /metrics                Prometheus text exposition (metrics.h)
 *   /  and  /events/ID      the operator's page (page.h), one HTML document
 *   /assets/NAME            its styles and scripts, from the binary
 *   /api/NAME               the JSON the page reads (page.h)
 *   /actions/NAME  (POST)   retry, replay: only with [admin] actions = yes,
 *                           and with the CSRF token of the admin session
 *   /login  (GET, POST)     the token form, when [admin] token_file is set
 * Everything but /health needs an [admin] section (else 404), a client in
 * its allow_from (else 403) and, with token_file, the token as
 * "Authorization: Bearer TOKEN" or the cookie the login form sets (else
 * 401, with the login form for a browser).
 */
#ifndef SLH_WEB_H
#define SLH_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "err.h"

#define SLH_WEB_MAX_FORM 4096 /* bytes of an action's or login's form */

/* A request, as the CGI meta-variables give it. NULL fields are absent. */
struct slh_web_request {
    const char *method;          /* REQUEST_METHOD */
    const char *path;            /* PATH_INFO ("" or NULL: the handler's own) */
    const char *script_name;     /* SCRIPT_NAME: the handler's own path */
    const char *query;           /* QUERY_STRING */
    const char *remote_addr;     /* REMOTE_ADDR */
    const char *cookie;          /* HTTP_COOKIE */
    const char *authorization;   /* HTTP_AUTHORIZATION */
    const char *accept_encoding; /* HTTP_ACCEPT_ENCODING */
    const char *content_type;    /* CONTENT_TYPE */
    const char *https;           /* HTTPS ("on" over TLS) */
    const char *body;            /* a POST form: body_len bytes */
    size_t body_len;
};

/* An answer. Its body is either borrowed (static bytes: an asset) or owned
 * (made for this request; slh_web_answer_free() releases it). */
struct slh_web_answer {
    int status;
    const char *content_type;  /* a literal */
    const char *encoding;      /* Content-Encoding, a literal, or NULL */
    const char *cache_control; /* a literal, or NULL */
    const char *allow;         /* Allow (405), a literal, or NULL */
    int retry_after;           /* seconds, 0 for none */
    char set_cookie[2][256];   /* Set-Cookie values, "" for none */
    char location[512];        /* Location (303), "" for none */
    const char *body;
    size_t len;
    char *owned;         /* body when owned, else NULL */
    bool is_head;        /* HEAD: the body is not sent (len is still told) */
    bool is_work_queued; /* an action queued deliveries: a front end with
                            no deliverer of its own (the CGI) starts one */
};

/* What a front end gives slh_web_handle() beyond the request. */
struct slh_web_env {
    const struct slh_config *cfg;
    /* slhook.fcgi counts since its start (metrics.h); the CGI does not. */
    bool has_process_metrics;
};

/* True when req is for this module, not the webhook: any method but POST,
 * or a path under the handler's own (PATH_INFO other than "" and "/"). */
bool slh_web_wants(const char *method, const char *path);

/* Decides the answer into *ans (slh_web_answer_free() it after). */
void slh_web_handle(const struct slh_web_env *env,
                    const struct slh_web_request *req,
                    struct slh_web_answer *ans);

/* Releases what *ans owns. */
void slh_web_answer_free(struct slh_web_answer *ans);

/* Writes the answer's CGI head (Status, Content-Type, Content-Length, the
 * other headers, the blank line) into buf of size bytes. Returns its
 * length, 0 when buf is too small. */
size_t slh_web_format_head(const struct slh_web_answer *ans, char *buf,
                           size_t size);

/* The log line of a web request, as slh_response_logline() writes the
 * webhook's: status, method, path (made printable), ms, from, and the
 * reason of an error. An empty line (buf[0] == '\0') for a 200 to
 * /health: a probe every few seconds is not news. */
void slh_web_logline(const struct slh_web_request *req,
                     const struct slh_web_answer *ans, double ms, char *buf,
                     size_t size);

/* ---- for the modules that make answers (metrics.c, page.c, web.c) ---- */

/* A text answer: status, content_type, a copy of text. False (ans a 503)
 * when out of memory. */
bool slh_web_answer_text(struct slh_web_answer *ans, int status,
                         const char *content_type, const char *text);

/* Static bytes as the body (borrowed: they outlive the answer). */
void slh_web_answer_static(struct slh_web_answer *ans, int status,
                           const char *content_type, const void *body,
                           size_t len);

/* A buffer to write a body into: open_memstream() over the answer's owned
 * body. slh_web_answer_close() finishes it (status, content_type); on a
 * write error or when out of memory the answer is a 503. */
FILE *slh_web_answer_open(struct slh_web_answer *ans);
void slh_web_answer_close(struct slh_web_answer *ans, FILE *f, int status,
                          const char *content_type);

/* The answer to a request that failed on the server's side: status (500 or
 * 503) with why as its text (never a secret). */
void slh_web_answer_error(struct slh_web_answer *ans, int status,
                          const char *why);

/* The value of name in an application/x-www-form-urlencoded text (a query
 * string or a form body) of len bytes, decoded, into out of size bytes.
 * False when absent, or too long for out. */
bool slh_web_form_value(const char *text, size_t len, const char *name,
                        char *out, size_t size);

#endif

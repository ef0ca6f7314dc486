/* web_int.h: what the files of the web module (lib/web*.c) share.
 * Internal: not library API, so the names carry no slh_ prefix. */
#ifndef SLH_WEB_INT_H
#define SLH_WEB_INT_H

#include <stdbool.h>

#include "config.h"
#include "web.h"

struct slh_store;

#define WEB_TEXT "text/plain; charset=utf-8"
#define WEB_HTML "text/html; charset=utf-8"

/* An admin's browser session: its id (the slhook_session cookie, made
 * here when the browser has none) and the CSRF token tied to it. */
struct web_session {
    char id[33];
    char csrf[65];
    bool is_new; /* the cookie is to be set */
};

/* 303 to the page (.../, under SCRIPT_NAME), with why as the text. */
void web_to_page(const struct slh_web_request *req, const char *why,
                 struct slh_web_answer *ans);

/* GET .../health (web_health.c). */
void web_health(const struct slh_config *cfg, struct slh_web_answer *ans);

/* Opens the store for reading the page's figures: true with *sp the store,
 * or NULL when there is no spool yet; false with *ans a 503 saying why. */
bool web_open_store(const struct slh_config *cfg, struct slh_store **sp,
                    struct slh_web_answer *ans);

/* ---- who may see (web_auth.c) ---- */

/* Whether req carries the [admin] token (Authorization: Bearer, or the
 * login form's cookie); true when no token is configured. */
bool web_token_ok(const struct slh_config *cfg,
                  const struct slh_web_request *req);

/* The answer without the token: the login form for a page, else 401. */
void web_login_needed(const struct slh_web_request *req, const char *path,
                      struct slh_web_answer *ans);

/* GET and POST .../login. */
void web_login(const struct slh_config *cfg, const struct slh_web_request *req,
               struct slh_web_answer *ans);

/* req's session, or a new one; false with *ans a 503 when no random bytes
 * or no HMAC could be had. */
bool web_session(const struct slh_config *cfg,
                 const struct slh_web_request *req, struct web_session *s,
                 struct slh_web_answer *ans);

/* Whether the form's csrf field is s's token (constant time). */
bool web_csrf_ok(const struct slh_web_request *req,
                 const struct web_session *s);

/* Sets the session's cookie on ans when it is new. */
void web_session_cookie(const struct slh_web_request *req,
                        const struct web_session *s,
                        struct slh_web_answer *ans);

/* The value of cookie name in an HTTP Cookie header into out; false when
 * absent or too long. */
bool web_cookie(const char *header, const char *name, char *out, size_t size);

/* Whether the client takes gzip (Accept-Encoding). */
bool web_accepts_gzip(const struct slh_web_request *req);

#endif

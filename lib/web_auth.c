/* web_auth.c: who may see the operator's page (web.h), and the forms'
 * defence against cross-site requests.
 *
 * Nothing is kept on the server: the CGI has no memory between requests.
 * The login cookie is an HMAC of the token (so the cookie is not the token
 * itself, and changing token_file logs everyone out); the session is a
 * random id in a cookie, and its CSRF token an HMAC of that id under a
 * server secret (the admin token, else the receiver's first secret key),
 * which a page on another site can neither read nor make. Cookies are
 * HttpOnly, SameSite=Strict, limited to the handler's path, and Secure
 * over HTTPS. */
#include "web_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "digest.h"

#define LOGIN_COOKIE "slhook_login"
#define SESSION_COOKIE "slhook_session"
#define LOGIN_SECONDS (12 * 3600)
#define HMAC_HEX 65

static void
to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* hex(HMAC-SHA256(key, label "\n" data)) into out; false when they do
 * not fit the message buffer. */
static bool
hmac_hex(const char *key, const char *label, const char *data,
         char out[HMAC_HEX])
{
    unsigned char mac[SLH_SHA256_LEN];
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "%s\n%s", label, data);

    if (n < 0 || (size_t)n >= sizeof(msg))
        return false;
    slh_hmac_sha256(key, strlen(key), msg, (size_t)n, mac);
    to_hex(mac, sizeof(mac), out);
    return true;
}

static bool
same(const char *a, const char *b)
{
    size_t n = strlen(a);

    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

bool
web_cookie(const char *header, const char *name, char *out, size_t size)
{
    size_t name_len = strlen(name);

    for (const char *s = header; s != NULL && *s != '\0';) {
        size_t len;

        while (*s == ' ' || *s == ';')
            s++;
        len = strcspn(s, ";");
        if (len > name_len && strncmp(s, name, name_len) == 0 &&
            s[name_len] == '=') {
            len -= name_len + 1;
            if (len >= size)
                return false;
            memcpy(out, s + name_len + 1, len);
            out[len] = '\0';
            return true;
        }
        s += len;
    }
    return false;
}

bool
web_token_ok(const struct slh_config *cfg, const struct slh_web_request *req)
{
    const char *token = cfg->admin.token, *auth = req->authorization;
    char want[HMAC_HEX], got[HMAC_HEX];

    if (token == NULL)
        return true;
    if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0)
        return same(auth + 7, token);
    return web_cookie(req->cookie, LOGIN_COOKIE, got, sizeof(got)) &&
           hmac_hex(token, "slhook login", "", want) && same(got, want);
}

/* "; Path=SCRIPT/; HttpOnly; SameSite=Strict" and "; Secure" over TLS. */
static void
cookie(const struct slh_web_request *req, char *out, size_t size,
       const char *name, const char *value, const char *extra)
{
    bool is_tls = req->https != NULL && strcmp(req->https, "on") == 0;

    snprintf(out, size, "%s=%s; Path=%s/; HttpOnly; SameSite=Strict%s%s", name,
             value, req->script_name != NULL ? req->script_name : "",
             is_tls ? "; Secure" : "", extra);
}

/* text into f, HTML-escaped (the handler's path, as the server gave it). */
static void
put_escaped(FILE *f, const char *text)
{
    for (; *text != '\0'; text++) {
        char c = *text;
        const char *entity = c == '&'    ? "&amp;"
                             : c == '<'  ? "&lt;"
                             : c == '>'  ? "&gt;"
                             : c == '"'  ? "&quot;"
                             : c == '\'' ? "&#39;"
                                         : NULL;

        if (entity != NULL)
            fputs(entity, f);
        else
            fputc(c, f);
    }
}

/* The login form, with why (a literal) above it. Its style sheet is the
 * page's (assets answer before the token is asked for), and its links are
 * absolute: the form stands in for the page at .../events/ID too. */
static void
login_form(const struct slh_web_request *req, struct slh_web_answer *ans,
           int status, const char *why)
{
    const char *base = req->script_name != NULL ? req->script_name : "";
    FILE *f = slh_web_answer_open(ans);

    if (f == NULL)
        return;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width, "
          "initial-scale=1\"><title>slhook: sign in</title>"
          "<link rel=\"stylesheet\" href=\"",
          f);
    put_escaped(f, base);
    fprintf(f,
            "/assets/page.css\"></head>\n<body class=\"login\"><main>"
            "<h1>slhook</h1><p>%s</p><form method=\"post\" action=\"",
            why);
    put_escaped(f, base);
    fputs("/login\"><label>Token <input type=\"password\" name=\"token\" "
          "autocomplete=\"current-password\" autofocus required></label> "
          "<button type=\"submit\">Sign in</button></form></main></body>"
          "</html>\n",
          f);
    slh_web_answer_close(ans, f, status, WEB_HTML);
}

/* The path of a page (not an asset, API or metrics): "/", "/events/ID". */
static bool
is_page(const char *path)
{
    return strcmp(path, "/") == 0 || strncmp(path, "/events/", 8) == 0;
}

void
web_login_needed(const struct slh_web_request *req, const char *path,
                 struct slh_web_answer *ans)
{
    if (is_page(path))
        login_form(req, ans, 401,
                   "The operator's page needs the token of "
                   "[admin] token_file.");
    else
        slh_web_answer_text(ans, 401, WEB_TEXT,
                            "the [admin] token is needed: Authorization: "
                            "Bearer TOKEN\n");
}

void
web_login(const struct slh_config *cfg, const struct slh_web_request *req,
          struct slh_web_answer *ans)
{
    const char *token = cfg->admin.token;
    char got[SLH_MAX_KEY_LEN + 1], value[HMAC_HEX];
    bool is_post = req->method != NULL && strcmp(req->method, "POST") == 0;

    if (token == NULL || (!is_post && web_token_ok(cfg, req))) {
        web_to_page(req, "see the page\n", ans);
        return;
    }
    if (!is_post) {
        login_form(req, ans, 200,
                   "Sign in with the token of [admin] token_file.");
        return;
    }
    if (!slh_web_form_value(req->body, req->body_len, "token", got,
                            sizeof(got)) ||
        !same(got, token)) {
        OPENSSL_cleanse(got, sizeof(got));
        login_form(req, ans, 401, "That is not the token. Try again.");
        return;
    }
    OPENSSL_cleanse(got, sizeof(got));
    if (!hmac_hex(token, "slhook login", "", value)) {
        slh_web_answer_error(ans, 500, "could not make the login cookie");
        return;
    }
    web_to_page(req, "signed in\n", ans);
    cookie(req, ans->set_cookie[0], sizeof(ans->set_cookie[0]), LOGIN_COOKIE,
           value, "; Max-Age=43200");
    _Static_assert(LOGIN_SECONDS == 43200, "the cookie's Max-Age");
}

/* The key the CSRF tokens are made with: the admin token, else the first
 * secret key. Neither ever leaves the server. */
static const char *
csrf_key(const struct slh_config *cfg)
{
    return cfg->admin.token != NULL ? cfg->admin.token : cfg->secret_keys[0];
}

static bool
is_session_id(const char *s)
{
    return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

bool
web_session(const struct slh_config *cfg, const struct slh_web_request *req,
            struct web_session *s, struct slh_web_answer *ans)
{
    unsigned char raw[16];

    memset(s, 0, sizeof(*s));
    if (!web_cookie(req->cookie, SESSION_COOKIE, s->id, sizeof(s->id)) ||
        !is_session_id(s->id)) {
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            slh_web_answer_error(ans, 503, "no random bytes (getrandom)");
            return false;
        }
        to_hex(raw, sizeof(raw), s->id);
        s->is_new = true;
    }
    if (!hmac_hex(csrf_key(cfg), "slhook csrf", s->id, s->csrf)) {
        slh_web_answer_error(ans, 500, "no HMAC for the session");
        return false;
    }
    return true;
}

bool
web_csrf_ok(const struct slh_web_request *req, const struct web_session *s)
{
    char got[HMAC_HEX];

    /* A new session has no form of its own yet. */
    return !s->is_new &&
           slh_web_form_value(req->body, req->body_len, "csrf", got,
                              sizeof(got)) &&
           same(got, s->csrf);
}

void
web_session_cookie(const struct slh_web_request *req,
                   const struct web_session *s, struct slh_web_answer *ans)
{
    if (s->is_new)
        cookie(req, ans->set_cookie[1], sizeof(ans->set_cookie[1]),
               SESSION_COOKIE, s->id, "");
}

bool
web_accepts_gzip(const struct slh_web_request *req)
{
    const char *s = req->accept_encoding;

    for (; s != NULL && (s = strstr(s, "gzip")) != NULL; s += 4) {
        const char *q = s + 4 + strspn(s + 4, " ");

        /* "gzip;q=0" refuses it. */
        if (strncmp(q, ";q=0", 4) == 0 &&
            (q[4] == '\0' || q[4] == ',' || strncmp(q + 4, ".0", 2) == 0))
            return false;
        return true;
    }
    return false;
}

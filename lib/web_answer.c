/* web_answer.c: making an answer (web.h) and writing its head, with the
 * headers every answer of the web module carries. */
#include "web_int.h"

#include "event.h"
#include "handler.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The page's own scripts and styles only, never framed: a stored event's
 * text, shown on the page, can run nothing even if it got past the
 * page's escaping. */
#define CSP                                                                    \
    "default-src 'self'; script-src 'self'; style-src 'self'; "                \
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "       \
    "base-uri 'none'; form-action 'self'"

bool
slh_web_answer_text(struct slh_web_answer *ans, int status,
                    const char *content_type, const char *text)
{
    char *copy = strdup(text);

    free(ans->owned);
    ans->owned = NULL;
    if (copy == NULL) {
        slh_web_answer_error(ans, 503, "out of memory; try again later");
        return false;
    }
    ans->status = status;
    ans->content_type = content_type;
    ans->owned = copy;
    ans->body = copy;
    ans->len = strlen(copy);
    return true;
}

void
slh_web_answer_static(struct slh_web_answer *ans, int status,
                      const char *content_type, const void *body, size_t len)
{
    free(ans->owned);
    ans->owned = NULL;
    ans->status = status;
    ans->content_type = content_type;
    ans->body = body;
    ans->len = len;
}

FILE *
slh_web_answer_open(struct slh_web_answer *ans)
{
    FILE *f;

    free(ans->owned);
    ans->owned = NULL;
    ans->len = 0;
    f = open_memstream(&ans->owned, &ans->len);
    if (f == NULL)
        slh_web_answer_error(ans, 503, "out of memory; try again later");
    return f;
}

void
slh_web_answer_close(struct slh_web_answer *ans, FILE *f, int status,
                     const char *content_type)
{
    bool is_bad = ferror(f) != 0;

    if (fclose(f) != 0 || is_bad || ans->owned == NULL) {
        slh_web_answer_error(ans, 503, "out of memory; try again later");
        return;
    }
    ans->status = status;
    ans->content_type = content_type;
    ans->body = ans->owned;
}

void
slh_web_answer_error(struct slh_web_answer *ans, int status, const char *why)
{
    /* Static: the answer when memory ran out even for this. */
    static const char nomem[] = "out of memory; try again later\n";
    size_t n = strlen(why);

    free(ans->owned);
    ans->owned = NULL;
    ans->status = status;
    ans->content_type = WEB_TEXT;
    ans->retry_after = status == 503 ? 30 : 0;
    ans->owned = malloc(n + 2);
    if (ans->owned == NULL) {
        ans->body = nomem;
        ans->len = sizeof(nomem) - 1;
        return;
    }
    memcpy(ans->owned, why, n);
    memcpy(ans->owned + n, "\n", 2);
    ans->body = ans->owned;
    ans->len = n + 1;
}

void
web_to_page(const struct slh_web_request *req, const char *why,
            struct slh_web_answer *ans)
{
    slh_web_answer_text(ans, 303, WEB_TEXT, why);
    snprintf(ans->location, sizeof(ans->location), "%s/",
             req->script_name != NULL ? req->script_name : "");
}

void
slh_web_answer_free(struct slh_web_answer *ans)
{
    free(ans->owned);
    memset(ans, 0, sizeof(*ans));
}

/* Appends a formatted line to buf at *at; false when it does not fit. */
__attribute__((format(printf, 4, 5))) static bool
put(char *buf, size_t size, size_t *at, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*at >= size)
        return false;
    va_start(ap, fmt);
    n = vsnprintf(buf + *at, size - *at, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *at)
        return false;
    *at += (size_t)n;
    return true;
}

/* The headers only some answers carry. */
static bool
put_optional(const struct slh_web_answer *ans, char *buf, size_t size,
             size_t *at)
{
    bool ok = true;

    if (ans->encoding != NULL)
        ok = ok && put(buf, size, at,
                       "Content-Encoding: %s\r\n"
                       "Vary: Accept-Encoding\r\n",
                       ans->encoding);
    if (ans->allow != NULL)
        ok = ok && put(buf, size, at, "Allow: %s\r\n", ans->allow);
    if (ans->retry_after > 0)
        ok = ok && put(buf, size, at, "Retry-After: %d\r\n", ans->retry_after);
    if (ans->location[0] != '\0')
        ok = ok && put(buf, size, at, "Location: %s\r\n", ans->location);
    if (ans->status == 401)
        ok = ok && put(buf, size, at,
                       "WWW-Authenticate: Bearer realm=\"slhook\"\r\n");
    for (size_t i = 0; i < 2; i++)
        if (ans->set_cookie[i][0] != '\0')
            ok = ok &&
                 put(buf, size, at, "Set-Cookie: %s\r\n", ans->set_cookie[i]);
    if (ans->content_type != NULL &&
        strncmp(ans->content_type, "text/html", 9) == 0)
        ok = ok && put(buf, size, at,
                       "Content-Security-Policy: " CSP "\r\n"
                       "X-Frame-Options: DENY\r\n");
    return ok;
}

size_t
slh_web_format_head(const struct slh_web_answer *ans, char *buf, size_t size)
{
    size_t at = 0;

    if (!put(buf, size, &at,
             "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
             "Cache-Control: %s\r\nX-Content-Type-Options: nosniff\r\n"
             "Referrer-Policy: no-referrer\r\n",
             ans->status, slh_status_reason(ans->status),
             ans->content_type != NULL ? ans->content_type : WEB_TEXT, ans->len,
             ans->cache_control != NULL ? ans->cache_control : "no-store") ||
        !put_optional(ans, buf, size, &at) || !put(buf, size, &at, "\r\n"))
        return 0;
    return at;
}

/* Decodes value[0..len) into out of size bytes, NUL-terminated; false on
 * a bad escape or when it does not fit. */
static bool
decode(const char *value, size_t len, char *out, size_t size)
{
    size_t n = 0;

    if (len >= size || slh_form_decode(out, &n, value, len) != 0)
        return false;
    out[n] = '\0';
    return true;
}

bool
slh_web_form_value(const char *text, size_t len, const char *name, char *out,
                   size_t size)
{
    size_t name_len = strlen(name), at = 0;

    if (text == NULL || size == 0)
        return false;
    while (at < len) {
        const char *pair = text + at, *amp = memchr(pair, '&', len - at);
        size_t pair_len = amp != NULL ? (size_t)(amp - pair) : len - at;

        if (pair_len > name_len && memcmp(pair, name, name_len) == 0 &&
            pair[name_len] == '=')
            return decode(pair + name_len + 1, pair_len - name_len - 1, out,
                          size);
        at += pair_len + 1;
    }
    return false;
}

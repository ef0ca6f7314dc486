#include "config_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "socketlabs.h"

#define MAX_DEST_NAME 64
#define MAX_TIMEOUT 3600

static void
free_strs(char **arr, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(arr[i]);
    free(arr);
}

void
config_free_dest(struct slh_dest *d)
{
    free(d->name);
    free(d->url);
    free(d->file);
    free_strs(d->events, d->n_events);
    free_strs(d->headers, d->n_headers);
    OPENSSL_clear_free(d->signing_key, d->signing_key_len);
    config_free_tls(d);
}

/* The filter word's tracking kind (0..2), -1 for a plain Type, -2 for no
 * known word at all. */
static int
event_word_kind(const char *w, size_t len)
{
    static const char prefix[] = "Tracking:";
    size_t plen = sizeof(prefix) - 1;
    int kind;

    if (slh_sl_find(slh_sl_types, SLH_SL_TYPES, w, len) >= 0)
        return -1;
    if (len <= plen || strncasecmp(w, prefix, plen) != 0)
        return -2;
    kind = slh_sl_find(slh_sl_tracking_kinds, SLH_SL_ENUM_VALUES, w + plen,
                       len - plen);
    return kind >= 0 ? kind : -2;
}

int
config_set_events(struct parser *p, const char *value)
{
    struct slh_dest *d = config_cur_dest(p);
    const char *s = value, *item;
    size_t len;

    while ((item = config_next_item(&s, &len)) != NULL) {
        if (event_word_kind(item, len) == -2)
            return fail(p,
                        "unknown event '%.*s' in events (known: Queued "
                        "Deferred Delivered Failed Complaint Tracking "
                        "Tracking:Click|Open|Unsubscribe)",
                        (int)len, item);
        if (!config_push_str(&d->events, &d->n_events, item, len))
            return config_fail_nomem(p);
    }
    return s != value ? 1 : fail(p, "events lists nothing");
}

/* ASCII only, whatever the caller's locale. */
static bool
is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9');
}

static bool
is_tchar(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
config_add_header(struct parser *p, const char *value)
{
    struct slh_dest *d = config_cur_dest(p);
    const unsigned char *u = (const unsigned char *)value;
    size_t n = 0;

    while (u[n] != '\0' && u[n] != ':' && is_tchar(u[n]))
        n++;
    if (n == 0 || u[n] != ':')
        return fail(p, "bad header (want 'Name: value', Name a token)");
    u += n + 1;
    while (*u == ' ' || *u == '\t')
        u++;
    if (*u == '\0')
        return fail(p, "bad header '%.*s': no value", (int)n, value);
    if (!config_push_str(&d->headers, &d->n_headers, value, strlen(value)))
        return config_fail_nomem(p);
    return 1;
}

static bool
is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
config_set_signing_secret(struct parser *p, const char *value)
{
    struct slh_dest *d = config_cur_dest(p);
    const char *s = value;
    size_t n, body, pads = 0, padded;
    unsigned char *in = NULL, *out = NULL;
    int got, ok = 0;

    if (strncmp(s, "whsec_", 6) == 0)
        s += 6;
    n = strlen(s);
    for (body = 0; body < n && is_b64(s[body]); body++)
        ;
    while (body + pads < n && pads < 2 && s[body + pads] == '=')
        pads++;
    /* Standard Webhooks secrets are padded base64, but an unpadded one
     * means the same key, so it is padded here rather than refused. */
    if (body + pads != n || body < 2 || body % 4 == 1 ||
        (pads > 0 && n % 4 != 0))
        return fail(p, "signing_secret is not base64 (want whsec_BASE64)");
    padded = (body + 3) / 4 * 4;
    in = malloc(padded + 1);
    out = malloc(padded / 4 * 3 + 1);
    if (in == NULL || out == NULL) {
        config_fail_nomem(p);
        goto out;
    }
    memcpy(in, s, body);
    memset(in + body, '=', padded - body);
    in[padded] = '\0';
    got = EVP_DecodeBlock(out, in, (int)padded);
    if (got < 0) {
        fail(p, "signing_secret is not base64 (want whsec_BASE64)");
        goto out;
    }
    /* EVP_DecodeBlock counts the padding as decoded zero bytes. */
    d->signing_key_len = (size_t)got - (padded - body);
    d->signing_key = out;
    out = NULL;
    ok = 1;
out:
    OPENSSL_clear_free(in, padded);
    OPENSSL_clear_free(out, padded / 4 * 3);
    return ok;
}

static int
both_url_and_file(struct parser *p)
{
    return fail(p, "[destination %s] has both url and file; give one",
                config_cur_dest(p)->name);
}

/* A URL may carry credentials, so messages do not repeat it. */
int
config_set_url(struct parser *p, const char *value)
{
    struct slh_dest *d = config_cur_dest(p);
    size_t skip;
    const unsigned char *u;

    if (d->file != NULL)
        return both_url_and_file(p);
    if (strncasecmp(value, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(value, "http://", 7) == 0)
        skip = 7;
    else
        return fail(p, "url is not http:// or https://");
    if (value[skip] == '\0' || value[skip] == '/')
        return fail(p, "url has no host");
    for (u = (const unsigned char *)value; *u != '\0'; u++) {
        if (*u <= ' ' || *u == 0x7f)
            return fail(p, "url contains spaces or control characters");
    }
    d->url = strdup(value);
    return d->url != NULL ? 1 : config_fail_nomem(p);
}

int
config_set_file(struct parser *p, const char *value)
{
    struct slh_dest *d = config_cur_dest(p);

    if (d->url != NULL)
        return both_url_and_file(p);
    d->file = strdup(value);
    return d->file != NULL ? 1 : config_fail_nomem(p);
}

int
config_set_timeout(struct parser *p, const char *value)
{
    int64_t secs;

    if (!config_seconds(p, "timeout", value, MAX_TIMEOUT, &secs))
        return 0;
    config_cur_dest(p)->timeout = (long)secs;
    return 1;
}

int
config_set_max_age(struct parser *p, const char *value)
{
    int64_t secs;

    if (!config_seconds(p, "max_age", value, 0, &secs))
        return 0;
    config_cur_dest(p)->max_age = secs;
    return 1;
}

static bool
valid_dest_name(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (!is_alnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' &&
            s[i] != '-')
            return false;
    }
    return len > 0;
}

bool
config_begin_dest(struct parser *p, const char *name, size_t len)
{
    struct slh_config *cfg = &p->cfg;
    struct slh_dest *d;
    size_t i;

    if (len == 0)
        return fail(p, "a destination needs a name: [destination NAME]");
    if (len > MAX_DEST_NAME || !valid_dest_name(name, len))
        return fail(p,
                    "bad destination name '%.*s' (letters, digits, "
                    "'_', '.', '-'; at most %d)",
                    (int)len, name, MAX_DEST_NAME);
    for (i = 0; i < cfg->n_dests; i++) {
        if (strlen(cfg->dests[i].name) == len &&
            memcmp(cfg->dests[i].name, name, len) == 0)
            return fail(p, "duplicate [destination %.*s] (first at line %d)",
                        (int)len, name, cfg->dests[i].line);
    }
    d = config_grow(cfg->dests, cfg->n_dests, sizeof(*d));
    if (d == NULL)
        return config_fail_nomem(p);
    cfg->dests = d;
    d = &cfg->dests[cfg->n_dests];
    memset(d, 0, sizeof(*d));
    d->name = strndup(name, len);
    if (d->name == NULL)
        return config_fail_nomem(p);
    d->timeout = SLH_DEFAULT_TIMEOUT;
    d->max_age = SLH_DEFAULT_MAX_AGE;
    d->line = p->line;
    cfg->n_dests++;
    p->section = SEC_DEST;
    p->dest_seen = 0;
    return true;
}

const struct slh_dest *
slh_config_dest(const struct slh_config *cfg, const char *name)
{
    size_t i;

    if (cfg == NULL || name == NULL)
        return NULL;
    for (i = 0; i < cfg->n_dests; i++) {
        if (strcmp(cfg->dests[i].name, name) == 0)
            return &cfg->dests[i];
    }
    return NULL;
}

bool
slh_dest_wants(const struct slh_dest *dest, const char *type, int tracking)
{
    size_t i;
    int kind;

    if (dest == NULL)
        return false;
    if (dest->n_events == 0)
        return true;
    if (type == NULL)
        return false;
    for (i = 0; i < dest->n_events; i++) {
        const char *w = dest->events[i];

        kind = event_word_kind(w, strlen(w));
        if (kind == -1 && strcasecmp(w, type) == 0)
            return true;
        if (kind >= 0 && strcasecmp(type, "Tracking") == 0 && kind == tracking)
            return true;
    }
    return false;
}

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/evp.h>

/* Longest line, newline included. inih's own default (200) would split a
 * long Authorization header into two lines without a word. */
#define MAX_LINE 8192
#define MAX_CONFIG_SIZE (1024 * 1024)
#define MAX_KEY_FILE_SIZE 4096
#define MAX_DEST_NAME 64
#define MAX_TIMEOUT 3600
#define BLOCK_TEXT_MAX 128

enum section { SEC_NONE, SEC_RECEIVER, SEC_DEST };

/* Keys that may appear once; a second one is more likely a slip than an
 * intended override. */
enum {
    SEEN_SECRET_KEY_FILE = 1u << 0,
    SEEN_VALIDATION_KEY = 1u << 1,
    SEEN_MAX_BODY = 1u << 2,
    SEEN_SPOOL = 1u << 3,
    SEEN_URL = 1u << 4,
    SEEN_FILE = 1u << 5,
    SEEN_EVENTS = 1u << 6,
    SEEN_SIGNING_SECRET = 1u << 7,
    SEEN_TIMEOUT = 1u << 8,
    SEEN_MAX_AGE = 1u << 9,
    SEEN_MAX_EVENTS = 1u << 10,
    SEEN_LOG = 1u << 11,
    SEEN_READ_TIMEOUT = 1u << 12
};

struct parser {
    struct slh_config cfg; /* what is being built */
    const char *name;      /* the path, for messages */
    const char *base_dir;  /* for relative secret_key_file, or NULL */
    size_t base_dir_len;
    const char *text; /* the reader's input */
    size_t len, pos;
    int line; /* the line last handed to inih */
    enum section section;
    unsigned receiver_seen;
    unsigned dest_seen;
    int receiver_line; /* first [receiver], 0 when none */
    char *file_key;    /* the key read from secret_key_file */
    bool has_max_body;
    bool has_max_events;
    struct slh_error err;
};

static const char *const event_types[] = {"Queued", "Deferred",  "Delivered",
                                          "Failed", "Complaint", "Tracking"};

/* Indexed by SocketLabs' TrackingType number. */
static const char *const tracking_kinds[] = {"Click", "Open", "Unsubscribe"};

__attribute__((format(printf, 3, 4))) static int
fail_at(struct parser *p, int line, const char *fmt, ...)
{
    char msg[SLH_ERROR_TEXT];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        slh_error_set(&p->err, SLH_ECONFIG, "%s:%d: %s", p->name, line, msg);
    else
        slh_error_set(&p->err, SLH_ECONFIG, "%s: %s", p->name, msg);
    return 0;
}

/* The current line's error; returns 0, inih's "handler failed". */
#define fail(p, ...) fail_at((p), (p)->line, __VA_ARGS__)

static int
fail_nomem(struct parser *p)
{
    slh_error_set(&p->err, SLH_ENOMEM, "%s:%d: out of memory", p->name,
                  p->line);
    return 0;
}

/*
 * Makes room for element n of an array that holds n: capacity is implicitly
 * the next power of two, so no separate count is needed. Returns the
 * (possibly moved) array, or NULL with arr untouched.
 */
static void *
grow(void *arr, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0)
        return arr;
    if (n > SIZE_MAX / 2 / size)
        return NULL;
    return realloc(arr, (n == 0 ? 1 : 2 * n) * size);
}

static bool
push_str(char ***arr, size_t *n, const char *s, size_t len)
{
    char **a;
    char *copy;

    copy = strndup(s, len);
    if (copy == NULL)
        return false;
    a = grow(*arr, *n, sizeof(*a));
    if (a == NULL) {
        free(copy);
        return false;
    }
    *arr = a;
    a[(*n)++] = copy;
    return true;
}

static void
free_strs(char **arr, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(arr[i]);
    free(arr);
}

static void
free_dest(struct slh_dest *d)
{
    free(d->name);
    free(d->url);
    free(d->file);
    free_strs(d->events, d->n_events);
    free_strs(d->headers, d->n_headers);
    if (d->signing_key != NULL)
        OPENSSL_cleanse(d->signing_key, d->signing_key_len);
    free(d->signing_key);
}

static void
free_secret(char *s)
{
    if (s != NULL)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void
slh_config_free(struct slh_config *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    free(cfg->path);
    for (i = 0; i < cfg->n_secret_keys; i++)
        free_secret(cfg->secret_keys[i]);
    free(cfg->secret_keys);
    free_secret(cfg->validation_key);
    free(cfg->server_ids);
    free(cfg->allow);
    free(cfg->spool);
    free(cfg->log);
    for (i = 0; i < cfg->n_dests; i++)
        free_dest(&cfg->dests[i]);
    free(cfg->dests);
    memset(cfg, 0, sizeof(*cfg));
}

static bool
has_ctl(const char *s, bool allow_tab)
{
    const unsigned char *u;

    for (u = (const unsigned char *)s; *u != '\0'; u++) {
        if ((*u < 0x20 && !(allow_tab && *u == '\t')) || *u == 0x7f)
            return true;
    }
    return false;
}

/* Separators for list values: "a b", "a, b" and "a,b" all read the same. */
#define LIST_SEP " \t,"

/* The next list item of *s, its length in *len; NULL when none is left. */
static const char *
next_item(const char **s, size_t *len)
{
    const char *start = *s + strspn(*s, LIST_SEP);

    if (*start == '\0')
        return NULL;
    *len = strcspn(start, LIST_SEP);
    *s = start + *len;
    return start;
}

/*
 * Reads a small file whole into a new NUL-terminated buffer. Returns errno
 * on failure (EFBIG when over max bytes, EISDIR for a directory).
 */
static int
slurp(const char *path, size_t max, char **out, size_t *out_len)
{
    char *buf = NULL, *p;
    size_t n = 0, cap = 0;
    ssize_t got;
    int fd, e = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    for (;;) {
        if (cap - n < 4096) {
            if (cap > max) {
                e = EFBIG;
                goto out;
            }
            p = realloc(buf, cap + 65536);
            if (p == NULL) {
                e = ENOMEM;
                goto out;
            }
            buf = p;
            cap += 65536;
        }
        got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            e = errno;
            goto out;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > max) {
            e = EFBIG;
            goto out;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return e;
}

static bool
check_key(struct parser *p, const char *what, const char *key)
{
    size_t len = strlen(key);

    /* The key itself never goes into a message: messages reach logs. */
    if (len == 0)
        return fail(p, "%s is empty", what);
    if (len > SLH_MAX_KEY_LEN)
        return fail(p, "%s is longer than %d characters", what,
                    SLH_MAX_KEY_LEN);
    if (has_ctl(key, false))
        return fail(p, "%s contains control characters", what);
    return true;
}

static int
read_key_file(struct parser *p, const char *value)
{
    char *path = NULL, *buf = NULL;
    size_t len = 0, plen;
    int e, ok = 0;

    if (value[0] != '/' && p->base_dir != NULL) {
        plen = p->base_dir_len + 1 + strlen(value) + 1;
        path = malloc(plen);
        if (path == NULL)
            return fail_nomem(p);
        snprintf(path, plen, "%.*s/%s", (int)p->base_dir_len, p->base_dir,
                 value);
    }
    e = slurp(path != NULL ? path : value, MAX_KEY_FILE_SIZE, &buf, &len);
    if (e == ENOMEM) {
        fail_nomem(p);
        goto out;
    }
    if (e == EFBIG) {
        fail(p, "secret_key_file '%s' is too large", value);
        goto out;
    }
    if (e != 0) {
        fail(p, "cannot read secret_key_file '%s': %s", value, strerror(e));
        goto out;
    }
    if (memchr(buf, '\0', len) != NULL) {
        fail(p, "secret_key_file '%s' contains a NUL byte", value);
        goto out;
    }
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        buf[--len] = '\0';
    if (len == 0) {
        fail(p, "secret_key_file '%s' is empty", value);
        goto out;
    }
    if (!check_key(p, "the key in secret_key_file", buf))
        goto out;
    p->file_key = buf;
    buf = NULL;
    ok = 1;
out:
    if (buf != NULL)
        OPENSSL_cleanse(buf, len);
    free(buf);
    free(path);
    return ok;
}

static bool
parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0)
        return false;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (max - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static int
add_server_ids(struct parser *p, const char *value)
{
    struct slh_config *cfg = &p->cfg;
    const char *s = value, *item;
    size_t len;
    uint64_t id;
    int64_t *ids;

    while ((item = next_item(&s, &len)) != NULL) {
        if (!parse_uint(item, len, INT64_MAX, &id) || id == 0)
            return fail(p, "bad server_id '%.*s' (a positive number)", (int)len,
                        item);
        ids = grow(cfg->server_ids, cfg->n_server_ids, sizeof(*ids));
        if (ids == NULL)
            return fail_nomem(p);
        cfg->server_ids = ids;
        ids[cfg->n_server_ids++] = (int64_t)id;
    }
    return s != value ? 1 : fail(p, "server_id lists nothing");
}

static int
add_allow(struct parser *p, const char *value)
{
    struct slh_config *cfg = &p->cfg;
    struct slh_error e = {0};
    struct slh_cidr block, *blocks;
    const char *s = value, *item;
    char text[BLOCK_TEXT_MAX];
    size_t len;

    while ((item = next_item(&s, &len)) != NULL) {
        if (len >= sizeof(text))
            return fail(p, "bad allow_from '%.40s...': too long", item);
        memcpy(text, item, len);
        text[len] = '\0';
        if (slh_cidr_parse(&block, text, &e) != SLH_OK)
            return fail(p, "bad allow_from: %s", e.text);
        blocks = grow(cfg->allow, cfg->n_allow, sizeof(*blocks));
        if (blocks == NULL)
            return fail_nomem(p);
        cfg->allow = blocks;
        blocks[cfg->n_allow++] = block;
    }
    return s != value ? 1 : fail(p, "allow_from lists nothing");
}

static int
set_max_body(struct parser *p, const char *value)
{
    size_t len = strlen(value);
    uint64_t v, mult = 1;

    if (len > 0 && (value[len - 1] == 'k' || value[len - 1] == 'K'))
        mult = 1024;
    else if (len > 0 && (value[len - 1] == 'm' || value[len - 1] == 'M'))
        mult = 1024 * 1024;
    if (mult != 1)
        len--;
    if (!parse_uint(value, len, SIZE_MAX / mult, &v) || v == 0)
        return fail(p,
                    "bad max_body '%s' (a positive number of bytes, or "
                    "with k or m)",
                    value);
    p->cfg.max_body = (size_t)(v * mult);
    p->has_max_body = true;
    return 1;
}

static int
set_max_events(struct parser *p, const char *value)
{
    uint64_t v;

    if (!parse_uint(value, strlen(value), SLH_MAX_MAX_EVENTS, &v) || v == 0)
        return fail(p, "bad max_events '%s' (a number from 1 to %d)", value,
                    SLH_MAX_MAX_EVENTS);
    p->cfg.max_events = (size_t)v;
    p->has_max_events = true;
    return 1;
}

static int
set_str(struct parser *p, char **dst, const char *value)
{
    *dst = strdup(value);
    return *dst != NULL ? 1 : fail_nomem(p);
}

static int
set_read_timeout(struct parser *p, const char *value)
{
    int64_t secs;

    if (!slh_duration_parse(value, &secs) || secs <= 0 ||
        secs > SLH_MAX_READ_TIMEOUT)
        return fail(p, "bad read_timeout '%s' (1 to %d seconds)", value,
                    SLH_MAX_READ_TIMEOUT);
    p->cfg.read_timeout = (long)secs;
    return 1;
}

/* A relative log file would land wherever the process happens to run. */
bool
slh_log_target_valid(const char *target)
{
    return strcmp(target, "stderr") == 0 || strcmp(target, "syslog") == 0 ||
           target[0] == '/';
}

static int
set_log(struct parser *p, const char *value)
{
    if (!slh_log_target_valid(value))
        return fail(p,
                    "bad log '%.60s' (stderr, syslog or an absolute file "
                    "path)",
                    value);
    return set_str(p, &p->cfg.log, value);
}

static int
receiver_key(struct parser *p, const char *name, const char *value)
{
    struct slh_config *cfg = &p->cfg;
    unsigned bit = 0;

    if (strcmp(name, "secret_key_file") == 0)
        bit = SEEN_SECRET_KEY_FILE;
    else if (strcmp(name, "validation_key") == 0)
        bit = SEEN_VALIDATION_KEY;
    else if (strcmp(name, "max_body") == 0)
        bit = SEEN_MAX_BODY;
    else if (strcmp(name, "max_events") == 0)
        bit = SEEN_MAX_EVENTS;
    else if (strcmp(name, "spool") == 0)
        bit = SEEN_SPOOL;
    else if (strcmp(name, "log") == 0)
        bit = SEEN_LOG;
    else if (strcmp(name, "read_timeout") == 0)
        bit = SEEN_READ_TIMEOUT;
    if (bit != 0 && (p->receiver_seen & bit) != 0)
        return fail(p, "duplicate key '%s' in [receiver]", name);
    p->receiver_seen |= bit;

    if (strcmp(name, "secret_key") == 0) {
        if (!check_key(p, "secret_key", value))
            return 0;
        if (!push_str(&cfg->secret_keys, &cfg->n_secret_keys, value,
                      strlen(value)))
            return fail_nomem(p);
        return 1;
    }
    if (strcmp(name, "secret_key_file") == 0)
        return read_key_file(p, value);
    if (strcmp(name, "validation_key") == 0) {
        if (!check_key(p, "validation_key", value))
            return 0;
        return set_str(p, &cfg->validation_key, value);
    }
    if (strcmp(name, "server_id") == 0)
        return add_server_ids(p, value);
    if (strcmp(name, "allow_from") == 0)
        return add_allow(p, value);
    if (strcmp(name, "max_body") == 0)
        return set_max_body(p, value);
    if (strcmp(name, "max_events") == 0)
        return set_max_events(p, value);
    if (strcmp(name, "spool") == 0)
        return set_str(p, &cfg->spool, value);
    if (strcmp(name, "log") == 0)
        return set_log(p, value);
    if (strcmp(name, "read_timeout") == 0)
        return set_read_timeout(p, value);
    return fail(p, "unknown key '%s' in [receiver]", name);
}

/* The filter word's tracking kind (0..2), -1 for a plain Type, -2 for no
 * known word at all. */
static int
event_word_kind(const char *w, size_t len)
{
    static const char prefix[] = "Tracking:";
    size_t i, plen = sizeof(prefix) - 1;

    for (i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++) {
        if (strlen(event_types[i]) == len &&
            strncasecmp(w, event_types[i], len) == 0)
            return -1;
    }
    if (len <= plen || strncasecmp(w, prefix, plen) != 0)
        return -2;
    for (i = 0; i < sizeof(tracking_kinds) / sizeof(tracking_kinds[0]); i++) {
        if (strlen(tracking_kinds[i]) == len - plen &&
            strncasecmp(w + plen, tracking_kinds[i], len - plen) == 0)
            return (int)i;
    }
    return -2;
}

static int
set_events(struct parser *p, struct slh_dest *d, const char *value)
{
    const char *s = value, *item;
    size_t len;

    while ((item = next_item(&s, &len)) != NULL) {
        if (event_word_kind(item, len) == -2)
            return fail(p,
                        "unknown event '%.*s' in events (known: Queued "
                        "Deferred Delivered Failed Complaint Tracking "
                        "Tracking:Click|Open|Unsubscribe)",
                        (int)len, item);
        if (!push_str(&d->events, &d->n_events, item, len))
            return fail_nomem(p);
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

static int
add_header(struct parser *p, struct slh_dest *d, const char *value)
{
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
    if (!push_str(&d->headers, &d->n_headers, value, strlen(value)))
        return fail_nomem(p);
    return 1;
}

static bool
is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static int
set_signing_secret(struct parser *p, struct slh_dest *d, const char *value)
{
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
        fail_nomem(p);
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
    if (in != NULL)
        OPENSSL_cleanse(in, padded);
    free(in);
    if (out != NULL)
        OPENSSL_cleanse(out, padded / 4 * 3);
    free(out);
    return ok;
}

/* A URL may carry credentials, so messages do not repeat it. */
static int
set_url(struct parser *p, struct slh_dest *d, const char *value)
{
    size_t skip;
    const unsigned char *u;

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
    return d->url != NULL ? 1 : fail_nomem(p);
}

static int
dest_key(struct parser *p, const char *name, const char *value)
{
    struct slh_dest *d = &p->cfg.dests[p->cfg.n_dests - 1];
    unsigned bit = 0;
    int64_t secs;

    if (strcmp(name, "url") == 0)
        bit = SEEN_URL;
    else if (strcmp(name, "file") == 0)
        bit = SEEN_FILE;
    else if (strcmp(name, "events") == 0)
        bit = SEEN_EVENTS;
    else if (strcmp(name, "signing_secret") == 0)
        bit = SEEN_SIGNING_SECRET;
    else if (strcmp(name, "timeout") == 0)
        bit = SEEN_TIMEOUT;
    else if (strcmp(name, "max_age") == 0)
        bit = SEEN_MAX_AGE;
    if (bit != 0 && (p->dest_seen & bit) != 0)
        return fail(p, "duplicate key '%s' in [destination %s]", name, d->name);
    p->dest_seen |= bit;
    if ((bit == SEEN_URL || bit == SEEN_FILE) &&
        (p->dest_seen & (SEEN_URL | SEEN_FILE)) == (SEEN_URL | SEEN_FILE))
        return fail(p, "[destination %s] has both url and file; give one",
                    d->name);

    if (bit == SEEN_URL)
        return set_url(p, d, value);
    if (bit == SEEN_FILE) {
        d->file = strdup(value);
        return d->file != NULL ? 1 : fail_nomem(p);
    }
    if (bit == SEEN_EVENTS)
        return set_events(p, d, value);
    if (strcmp(name, "header") == 0)
        return add_header(p, d, value);
    if (bit == SEEN_SIGNING_SECRET)
        return set_signing_secret(p, d, value);
    if (bit == SEEN_TIMEOUT) {
        if (!slh_duration_parse(value, &secs) || secs <= 0 ||
            secs > MAX_TIMEOUT)
            return fail(p, "bad timeout '%s' (1 to %d seconds)", value,
                        MAX_TIMEOUT);
        d->timeout = (long)secs;
        return 1;
    }
    if (bit == SEEN_MAX_AGE) {
        if (!slh_duration_parse(value, &secs) || secs <= 0)
            return fail(p, "bad max_age '%s' (like 4d, 12h, 90m, 3600)", value);
        d->max_age = secs;
        return 1;
    }
    return fail(p, "unknown key '%s' in [destination %s]", name, d->name);
}

static int
on_value(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;

    /* inih truncates section names at 50 bytes; the reader keeps the
     * section itself. */
    (void)section;
    if (p->err.code != SLH_OK)
        return 0;
    /* A key name holds no blank: "secret_key KEY=" has lost its '=', and
     * what follows the blank may be the key, which no message may show. */
    if (name[strcspn(name, " \t")] != '\0')
        return fail(p, "'%.*s' is followed by text before its '=' or ':'",
                    (int)strcspn(name, " \t"), name);
    if (p->section == SEC_NONE)
        return fail(p, "'%s' is outside any section", name);
    if (value == NULL || *value == '\0')
        return fail(p, "'%s' has no value", name);
    if (has_ctl(value, true))
        return fail(p, "'%s' contains control characters", name);
    if (p->section == SEC_RECEIVER)
        return receiver_key(p, name, value);
    return dest_key(p, name, value);
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

static bool
begin_dest(struct parser *p, const char *name, size_t len)
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
    d = grow(cfg->dests, cfg->n_dests, sizeof(*d));
    if (d == NULL)
        return fail_nomem(p);
    cfg->dests = d;
    d = &cfg->dests[cfg->n_dests];
    memset(d, 0, sizeof(*d));
    d->name = strndup(name, len);
    if (d->name == NULL)
        return fail_nomem(p);
    d->timeout = SLH_DEFAULT_TIMEOUT;
    d->max_age = SLH_DEFAULT_MAX_AGE;
    d->line = p->line;
    cfg->n_dests++;
    p->section = SEC_DEST;
    p->dest_seen = 0;
    return true;
}

/*
 * Follows a "[...]" line as inih will read it, to learn of sections that
 * hold no keys (inih only reports keys) and to keep the full name. A line
 * inih will reject is left to inih.
 */
static bool
see_section(struct parser *p, const char *line)
{
    const char *s = line, *open, *end, *name;
    bool was_space = false;
    size_t len;

    if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '[')
        return true;
    open = s;
    /* As inih: a ';' after whitespace starts a comment, even here. */
    for (end = s + 1; *end != '\0' && *end != ']'; end++) {
        if (was_space && *end == ';')
            return true;
        was_space = isspace((unsigned char)*end);
    }
    if (*end != ']')
        return true;
    for (s = end + 1; isspace((unsigned char)*s); s++)
        ;
    if (*s != '\0' && *s != ';' && *s != '#')
        return fail(p, "unexpected text after ']'");

    name = open + 1;
    while (name < end && isspace((unsigned char)*name))
        name++;
    len = (size_t)(end - name);
    while (len > 0 && isspace((unsigned char)name[len - 1]))
        len--;
    if (len == 8 && memcmp(name, "receiver", 8) == 0) {
        p->section = SEC_RECEIVER;
        if (p->receiver_line == 0)
            p->receiver_line = p->line;
        return true;
    }
    if (len >= 11 && memcmp(name, "destination", 11) == 0 &&
        (len == 11 || isspace((unsigned char)name[11]))) {
        name += 11;
        len -= 11;
        while (len > 0 && isspace((unsigned char)*name)) {
            name++;
            len--;
        }
        return begin_dest(p, name, len);
    }
    return fail(p, "unknown section [%.*s]", (int)(len > 60 ? 60 : len), name);
}

/* inih's fgets: one line per call, so that p->line is the line inih is
 * about to handle, and a line that does not fit is an error, not two. */
static char *
read_line(char *str, int num, void *stream)
{
    struct parser *p = stream;
    const char *start, *nl;
    size_t n;

    if (p->err.code != SLH_OK || p->pos >= p->len || num < 3)
        return NULL;
    start = p->text + p->pos;
    nl = memchr(start, '\n', p->len - p->pos);
    n = nl != NULL ? (size_t)(nl - start) + 1 : p->len - p->pos;
    p->line++;
    if (n > (size_t)num - 1) {
        fail(p, "line too long (over %d characters)", num - 2);
        return NULL;
    }
    if (memchr(start, '\0', n) != NULL) {
        fail(p, "NUL byte in line");
        return NULL;
    }
    memcpy(str, start, n);
    str[n] = '\0';
    p->pos += n;
    if (!see_section(p, str))
        return NULL;
    return str;
}

static void
set_ini_options(void)
{
    /* inih's options are process-wide globals (Debian builds it with
     * INI_RUNTIME_OPTIONS); only this module parses INI, and it sets all
     * it relies on each time. */
    ini_use_stack = false;
    ini_allow_realloc = false;
    ini_initial_alloc = MAX_LINE;
    ini_max_line = MAX_LINE;
    ini_allow_multiline = false; /* an indented line is not a continuation */
    ini_allow_bom = true;
    ini_allow_inline_comments = true;
    ini_allow_no_value = false;
    ini_stop_on_first_error = true;
}

static void
finish(struct parser *p)
{
    struct slh_config *cfg = &p->cfg;
    size_t i;

    for (i = 0; i < cfg->n_dests; i++) {
        if (cfg->dests[i].url == NULL && cfg->dests[i].file == NULL) {
            fail_at(p, cfg->dests[i].line, "[destination %s] needs url or file",
                    cfg->dests[i].name);
            return;
        }
    }
    if (cfg->n_secret_keys == 0 && p->file_key == NULL) {
        if (p->receiver_line > 0)
            fail_at(p, p->receiver_line,
                    "[receiver] needs secret_key or secret_key_file");
        else
            fail_at(p, 0, "no [receiver] section with a secret_key");
        return;
    }
    if (p->file_key != NULL) {
        char **k = grow(cfg->secret_keys, cfg->n_secret_keys, sizeof(*k));
        if (k == NULL) {
            fail_nomem(p);
            return;
        }
        cfg->secret_keys = k;
        k[cfg->n_secret_keys++] = p->file_key;
        p->file_key = NULL;
    }
    if (!p->has_max_body)
        cfg->max_body = SLH_DEFAULT_MAX_BODY;
    if (!p->has_max_events)
        cfg->max_events = SLH_DEFAULT_MAX_EVENTS;
    if (cfg->read_timeout == 0)
        cfg->read_timeout = SLH_DEFAULT_READ_TIMEOUT;
    if (cfg->spool == NULL)
        cfg->spool = strdup(SLH_DEFAULT_SPOOL);
    cfg->path = strdup(p->name);
    if (cfg->spool == NULL || cfg->path == NULL)
        fail_nomem(p);
}

static enum slh_err
parse_text(struct slh_config *cfg, const char *text, size_t len,
           const char *name, const char *base_dir, size_t base_dir_len,
           struct slh_error *err)
{
    struct parser p;
    int r;

    memset(&p, 0, sizeof(p));
    p.name = name;
    p.base_dir = base_dir;
    p.base_dir_len = base_dir_len;
    p.text = text;
    p.len = len;
    set_ini_options();
    r = ini_parse_stream(read_line, &p, on_value, &p);
    if (r == -2)
        slh_error_set(&p.err, SLH_ENOMEM, "%s: out of memory", name);
    else if (r > 0 && p.err.code == SLH_OK)
        fail_at(&p, r, "syntax error");
    if (p.err.code == SLH_OK)
        finish(&p);
    if (p.file_key != NULL)
        free_secret(p.file_key);
    if (p.err.code != SLH_OK) {
        slh_config_free(&p.cfg);
        memset(cfg, 0, sizeof(*cfg));
        return slh_error_set(err, p.err.code, "%s", p.err.text);
    }
    *cfg = p.cfg;
    return SLH_OK;
}

enum slh_err
slh_config_parse(struct slh_config *cfg, const char *text, const char *name,
                 struct slh_error *err)
{
    if (cfg == NULL)
        return slh_error_set(err, SLH_EINVAL, "no config to fill");
    memset(cfg, 0, sizeof(*cfg));
    if (text == NULL)
        return slh_error_set(err, SLH_EINVAL, "no config text");
    if (name == NULL)
        name = "(string)";
    return parse_text(cfg, text, strlen(text), name, NULL, 0, err);
}

enum slh_err
slh_config_load(struct slh_config *cfg, const char *path, struct slh_error *err)
{
    char *text = NULL;
    const char *slash;
    size_t len = 0;
    enum slh_err rc;
    int e;

    if (cfg == NULL)
        return slh_error_set(err, SLH_EINVAL, "no config to fill");
    memset(cfg, 0, sizeof(*cfg));
    if (path == NULL || *path == '\0')
        return slh_error_set(err, SLH_EINVAL, "no config path");
    e = slurp(path, MAX_CONFIG_SIZE, &text, &len);
    if (e == ENOMEM)
        return slh_error_set(err, SLH_ENOMEM, "%s: out of memory", path);
    if (e == EFBIG)
        return slh_error_set(err, SLH_ECONFIG, "%s: larger than %d bytes", path,
                             MAX_CONFIG_SIZE);
    if (e != 0)
        return slh_error_set(err, SLH_EIO, "%s: %s", path, strerror(e));
    /* A relative secret_key_file is found next to the config, not in
     * whatever directory the web server started the handler in. */
    slash = strrchr(path, '/');
    rc = parse_text(cfg, text, len, path, slash != NULL ? path : NULL,
                    slash != NULL ? (size_t)(slash - path) : 0, err);
    free(text);
    return rc;
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

bool
slh_duration_parse(const char *text, int64_t *seconds)
{
    uint64_t v;
    int64_t mult = 1;
    size_t len;

    if (text == NULL)
        return false;
    len = strlen(text);
    if (len > 0) {
        switch (text[len - 1]) {
        case 's':
            mult = 1;
            len--;
            break;
        case 'm':
            mult = 60;
            len--;
            break;
        case 'h':
            mult = 3600;
            len--;
            break;
        case 'd':
            mult = 86400;
            len--;
            break;
        default:
            break;
        }
    }
    if (!parse_uint(text, len, (uint64_t)(INT64_MAX / mult), &v))
        return false;
    if (seconds != NULL)
        *seconds = (int64_t)v * mult;
    return true;
}

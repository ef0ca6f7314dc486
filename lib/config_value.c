#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define MAX_KEY_FILE_SIZE 4096
#define BLOCK_TEXT_MAX 128

/*
 * Makes room for element n of an array that holds n: capacity is implicitly
 * the next power of two, so no separate count is needed. Returns the
 * (possibly moved) array, or NULL with arr untouched.
 */
void *
config_grow(void *arr, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0)
        return arr;
    if (n > SIZE_MAX / 2 / size)
        return NULL;
    return realloc(arr, (n == 0 ? 1 : 2 * n) * size);
}

bool
config_push_str(char ***arr, size_t *n, const char *s, size_t len)
{
    char **a;
    char *copy;

    copy = strndup(s, len);
    if (copy == NULL)
        return false;
    a = config_grow(*arr, *n, sizeof(*a));
    if (a == NULL) {
        free(copy);
        return false;
    }
    *arr = a;
    a[(*n)++] = copy;
    return true;
}

char *
config_path(const struct parser *p, const char *value)
{
    size_t n;
    char *path;

    if (value[0] == '/' || p->base_dir == NULL)
        return strdup(value);
    n = p->base_dir_len + 1 + strlen(value) + 1;
    path = malloc(n);
    if (path != NULL)
        snprintf(path, n, "%.*s/%s", (int)p->base_dir_len, p->base_dir, value);
    return path;
}

struct slh_dest *
config_cur_dest(struct parser *p)
{
    return &p->cfg.dests[p->cfg.n_dests - 1];
}

bool
config_has_ctl(const char *s, bool allow_tab)
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

const char *
config_next_item(const char **s, size_t *len)
{
    const char *start = *s + strspn(*s, LIST_SEP);

    if (*start == '\0')
        return NULL;
    *len = strcspn(start, LIST_SEP);
    *s = start + *len;
    return start;
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
    if (config_has_ctl(key, false))
        return fail(p, "%s contains control characters", what);
    return true;
}

int
config_read_secret_file(struct parser *p, const char *key, const char *what,
                        const char *value, char **out)
{
    char *path = config_path(p, value), *buf = NULL;
    size_t len = 0;
    int e, ok = 0;

    if (path == NULL)
        return config_fail_nomem(p);
    e = config_slurp(path, MAX_KEY_FILE_SIZE, &buf, &len);
    if (e == ENOMEM) {
        config_fail_nomem(p);
        goto out;
    }
    if (e == EFBIG) {
        fail(p, "%s '%s' is too large", key, value);
        goto out;
    }
    if (e != 0) {
        fail(p, "cannot read %s '%s': %s", key, value, strerror(e));
        goto out;
    }
    if (memchr(buf, '\0', len) != NULL) {
        fail(p, "%s '%s' contains a NUL byte", key, value);
        goto out;
    }
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        buf[--len] = '\0';
    if (len == 0) {
        fail(p, "%s '%s' is empty", key, value);
        goto out;
    }
    if (!check_key(p, what, buf))
        goto out;
    *out = buf;
    buf = NULL;
    ok = 1;
out:
    OPENSSL_clear_free(buf, len);
    free(path);
    return ok;
}

int
config_read_key_file(struct parser *p, const char *value)
{
    return config_read_secret_file(p, "secret_key_file",
                                   "the key in secret_key_file", value,
                                   &p->file_key);
}

int
config_add_secret_key(struct parser *p, const char *value)
{
    if (!check_key(p, "secret_key", value))
        return 0;
    if (!config_push_str(&p->cfg.secret_keys, &p->cfg.n_secret_keys, value,
                         strlen(value)))
        return config_fail_nomem(p);
    return 1;
}

static int
set_str(struct parser *p, char **dst, const char *value)
{
    *dst = strdup(value);
    return *dst != NULL ? 1 : config_fail_nomem(p);
}

int
config_set_validation_key(struct parser *p, const char *value)
{
    if (!check_key(p, "validation_key", value))
        return 0;
    return set_str(p, &p->cfg.validation_key, value);
}

int
config_add_server_ids(struct parser *p, const char *value)
{
    struct slh_config *cfg = &p->cfg;
    const char *s = value, *item;
    size_t len;
    uint64_t id;
    int64_t *ids;

    while ((item = config_next_item(&s, &len)) != NULL) {
        if (!parse_uint(item, len, INT64_MAX, &id) || id == 0)
            return fail(p, "bad server_id '%.*s' (a positive number)", (int)len,
                        item);
        ids = config_grow(cfg->server_ids, cfg->n_server_ids, sizeof(*ids));
        if (ids == NULL)
            return config_fail_nomem(p);
        cfg->server_ids = ids;
        ids[cfg->n_server_ids++] = (int64_t)id;
    }
    return s != value ? 1 : fail(p, "server_id lists nothing");
}

int
config_add_blocks(struct parser *p, struct slh_cidr **blocks, size_t *n,
                  const char *value)
{
    struct slh_error e = {0};
    struct slh_cidr block, *grown;
    const char *s = value, *item;
    char text[BLOCK_TEXT_MAX];
    size_t len;

    while ((item = config_next_item(&s, &len)) != NULL) {
        if (len >= sizeof(text))
            return fail(p, "bad allow_from '%.40s...': too long", item);
        memcpy(text, item, len);
        text[len] = '\0';
        if (slh_cidr_parse(&block, text, &e) != SLH_OK)
            return fail(p, "bad allow_from: %s", e.text);
        grown = config_grow(*blocks, *n, sizeof(*grown));
        if (grown == NULL)
            return config_fail_nomem(p);
        *blocks = grown;
        grown[(*n)++] = block;
    }
    return s != value ? 1 : fail(p, "allow_from lists nothing");
}

int
config_add_allow(struct parser *p, const char *value)
{
    return config_add_blocks(p, &p->cfg.allow, &p->cfg.n_allow, value);
}

int
config_set_max_body(struct parser *p, const char *value)
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

int
config_set_max_events(struct parser *p, const char *value)
{
    uint64_t v;

    if (!parse_uint(value, strlen(value), SLH_MAX_MAX_EVENTS, &v) || v == 0)
        return fail(p, "bad max_events '%s' (a number from 1 to %d)", value,
                    SLH_MAX_MAX_EVENTS);
    p->cfg.max_events = (size_t)v;
    p->has_max_events = true;
    return 1;
}

int
config_set_spool(struct parser *p, const char *value)
{
    return set_str(p, &p->cfg.spool, value);
}

bool
config_seconds(struct parser *p, const char *name, const char *value,
               int64_t max, int64_t *secs)
{
    if (slh_duration_parse(value, secs) && *secs > 0 &&
        (max == 0 || *secs <= max))
        return true;
    if (max != 0)
        fail(p, "bad %s '%s' (1 to %lld seconds)", name, value, (long long)max);
    else
        fail(p, "bad %s '%s' (like 4d, 12h, 90m, 3600)", name, value);
    return false;
}

int
config_set_read_timeout(struct parser *p, const char *value)
{
    int64_t secs;

    if (!config_seconds(p, "read_timeout", value, SLH_MAX_READ_TIMEOUT, &secs))
        return 0;
    p->cfg.read_timeout = (long)secs;
    return 1;
}

/* Any positive duration up to SLH_MAX_RETENTION: `slhook check` warns
 * below SLH_SAFE_RETENTION, which a test spool may well want. (On failure
 * the load fails, and what was written here goes with the rest.) */
int
config_set_retention(struct parser *p, const char *value)
{
    return config_seconds(p, "retention", value, SLH_MAX_RETENTION,
                          &p->cfg.retention)
               ? 1
               : 0;
}

/* A relative log file would land wherever the process happens to run. */
bool
slh_log_target_valid(const char *target)
{
    return strcmp(target, "stderr") == 0 || strcmp(target, "syslog") == 0 ||
           target[0] == '/';
}

int
config_set_log(struct parser *p, const char *value)
{
    if (!slh_log_target_valid(value))
        return fail(p,
                    "bad log '%.60s' (stderr, syslog or an absolute file "
                    "path)",
                    value);
    return set_str(p, &p->cfg.log, value);
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

#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

#include "store.h"

/* Longest line, newline included. inih's own default (200) would split a
 * long Authorization header into two lines without a word. */
#define MAX_LINE 8192
#define MAX_CONFIG_SIZE (1024 * 1024)

/* The keys of each section. A key that may appear once is more likely a
 * slip than an intended override when it appears again. */
static const struct key {
    enum section section;
    bool is_once;
    const char *name;
    config_setter *set;
} keys[] = {
    {SEC_RECEIVER, false, "secret_key", config_add_secret_key},
    {SEC_RECEIVER, true, "secret_key_file", config_read_key_file},
    {SEC_RECEIVER, true, "validation_key", config_set_validation_key},
    {SEC_RECEIVER, false, "server_id", config_add_server_ids},
    {SEC_RECEIVER, false, "allow_from", config_add_allow},
    {SEC_RECEIVER, true, "max_body", config_set_max_body},
    {SEC_RECEIVER, true, "max_events", config_set_max_events},
    {SEC_RECEIVER, true, "spool", config_set_spool},
    {SEC_RECEIVER, true, "log", config_set_log},
    {SEC_RECEIVER, true, "read_timeout", config_set_read_timeout},
    {SEC_RECEIVER, true, "retention", config_set_retention},
    {SEC_DEST, true, "url", config_set_url},
    {SEC_DEST, true, "file", config_set_file},
    {SEC_DEST, true, "events", config_set_events},
    {SEC_DEST, false, "header", config_add_header},
    {SEC_DEST, true, "signing_secret", config_set_signing_secret},
    {SEC_DEST, true, "timeout", config_set_timeout},
    {SEC_DEST, true, "max_age", config_set_max_age},
    /* TLS and proxy (config_tls.c) */
    {SEC_DEST, true, "ca_file", config_set_ca_file},
    {SEC_DEST, true, "client_cert", config_set_client_cert},
    {SEC_DEST, true, "client_key", config_set_client_key},
    {SEC_DEST, true, "proxy", config_set_proxy},
    {SEC_DEST, true, "rate", config_set_rate},
    {SEC_DEST, true, "concurrency", config_set_concurrency},
    {SEC_DEST, true, "breaker", config_set_breaker},
    {SEC_ADMIN, false, "allow_from", config_add_admin_allow},
    {SEC_ADMIN, true, "token_file", config_read_token_file},
    {SEC_ADMIN, true, "actions", config_set_actions},
};

_Static_assert(sizeof(keys) / sizeof(keys[0]) <= 32, "a seen bit per key");

int
config_fail_at(struct parser *p, int line, const char *fmt, ...)
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

int
config_fail_nomem(struct parser *p)
{
    slh_error_set(&p->err, SLH_ENOMEM, "%s:%d: out of memory", p->name,
                  p->line);
    return 0;
}

static void
free_secret(char *s)
{
    OPENSSL_clear_free(s, s != NULL ? strlen(s) : 0);
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
    free(cfg->spool_shown);
    free(cfg->log);
    for (i = 0; i < cfg->n_dests; i++)
        config_free_dest(&cfg->dests[i]);
    free(cfg->dests);
    config_free_admin(&cfg->admin);
    memset(cfg, 0, sizeof(*cfg));
}

int
config_slurp(const char *path, size_t max, char **out, size_t *out_len)
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

/* The section being read, as a message names it: "receiver" or
 * "destination NAME". */
static const char *
section_label(const struct parser *p, char *buf, size_t size)
{
    if (p->section == SEC_RECEIVER)
        return "receiver";
    if (p->section == SEC_ADMIN)
        return "admin";
    snprintf(buf, size, "destination %s",
             p->cfg.dests[p->cfg.n_dests - 1].name);
    return buf;
}

/* The value of key name of the current section, by the table above. */
static int
set_key(struct parser *p, const char *name, const char *value)
{
    uint32_t *seen = p->section == SEC_RECEIVER ? &p->receiver_seen
                     : p->section == SEC_ADMIN  ? &p->admin_seen
                                                : &p->dest_seen;
    char label[sizeof("destination ") + 64];
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].section == p->section && strcmp(keys[i].name, name) == 0)
            break;
    }
    if (i == sizeof(keys) / sizeof(keys[0]))
        return fail(p, "unknown key '%s' in [%s]", name,
                    section_label(p, label, sizeof(label)));
    if (keys[i].is_once && (*seen & (uint32_t)1 << i) != 0)
        return fail(p, "duplicate key '%s' in [%s]", name,
                    section_label(p, label, sizeof(label)));
    *seen |= (uint32_t)1 << i;
    return keys[i].set(p, value);
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
    if (config_has_ctl(value, true))
        return fail(p, "'%s' contains control characters", name);
    return set_key(p, name, value);
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
    if (len == 5 && memcmp(name, "admin", 5) == 0)
        return config_begin_admin(p);
    if (len >= 11 && memcmp(name, "destination", 11) == 0 &&
        (len == 11 || isspace((unsigned char)name[11]))) {
        name += 11;
        len -= 11;
        while (len > 0 && isspace((unsigned char)*name)) {
            name++;
            len--;
        }
        return config_begin_dest(p, name, len);
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
            config_fail_at(p, cfg->dests[i].line,
                           "[destination %s] needs url or file",
                           cfg->dests[i].name);
            return;
        }
        if (!config_check_tls(p, &cfg->dests[i]) ||
            !config_finish_throttle(p, &cfg->dests[i]))
            return;
    }
    if (cfg->n_secret_keys == 0 && p->file_key == NULL) {
        if (p->receiver_line > 0)
            config_fail_at(p, p->receiver_line,
                           "[receiver] needs secret_key or secret_key_file");
        else
            config_fail_at(p, 0, "no [receiver] section with a secret_key");
        return;
    }
    if (p->file_key != NULL) {
        char **k =
            config_grow(cfg->secret_keys, cfg->n_secret_keys, sizeof(*k));
        if (k == NULL) {
            config_fail_nomem(p);
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
    if (cfg->retention == 0)
        cfg->retention = SLH_DEFAULT_RETENTION;
    if (cfg->spool == NULL)
        cfg->spool = strdup(SLH_DEFAULT_SPOOL);
    if (!config_finish_admin(p))
        return;
    cfg->path = strdup(p->name);
    if (cfg->spool != NULL)
        cfg->spool_shown = slh_store_mask(cfg->spool);
    if (cfg->spool_shown == NULL || cfg->path == NULL)
        config_fail_nomem(p);
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
        config_fail_at(&p, r, "syntax error");
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
    e = config_slurp(path, MAX_CONFIG_SIZE, &text, &len);
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

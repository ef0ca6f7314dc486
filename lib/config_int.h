/* config_int.h: what the pieces of the config module (lib/config*.c) share:
 * the parser's state, its error helpers and the setters of each key.
 * Internal: not library API, so the names carry no slh_ prefix. */
#ifndef SLH_CONFIG_INT_H
#define SLH_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum section { SEC_NONE, SEC_RECEIVER, SEC_DEST, SEC_ADMIN };

struct parser {
    struct slh_config cfg; /* what is being built */
    const char *name;      /* the path, for messages */
    const char *base_dir;  /* for relative paths (config_path()), or NULL */
    size_t base_dir_len;
    const char *text; /* the reader's input */
    size_t len, pos;
    int line; /* the line last handed to inih */
    enum section section;
    uint32_t receiver_seen; /* once-only keys seen in [receiver] sections, */
    uint32_t dest_seen;     /* in the current [destination] (a bit each), */
    uint32_t admin_seen;    /* and in [admin] sections */
    int receiver_line;      /* first [receiver], 0 when none */
    char *file_key;         /* the key read from secret_key_file */
    bool has_max_body;
    bool has_max_events;
    struct slh_error err;
};

/*
 * Records "name:line: text" (or "name: text" for line 0) as the parse's
 * SLH_ECONFIG error unless one is set already. Returns 0, inih's "handler
 * failed", so a setter can `return fail(p, ...)`.
 */
int config_fail_at(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The current line's error; returns 0. */
#define fail(p, ...) config_fail_at((p), (p)->line, __VA_ARGS__)

/* Records SLH_ENOMEM at the current line; returns 0. */
int config_fail_nomem(struct parser *p);

/*
 * Makes room for element n of an array that holds n: capacity is implicitly
 * the next power of two, so no separate count is needed. Returns the
 * (possibly moved) array, or NULL with arr untouched.
 */
void *config_grow(void *arr, size_t n, size_t size);

/* Appends a copy of s[0..len) to *arr of *n strings; false when out of
 * memory (nothing changed). */
bool config_push_str(char ***arr, size_t *n, const char *s, size_t len);

/* The next item of the list *s ("a b", "a, b" and "a,b" read the same), its
 * length in *len, moving *s past it; NULL when none is left. */
const char *config_next_item(const char **s, size_t *len);

/* Whether s holds a control character (a tab is one unless allow_tab). */
bool config_has_ctl(const char *s, bool allow_tab);

/*
 * Reads a small file whole into a new NUL-terminated buffer (free()).
 * Returns errno on failure (EFBIG when over max bytes, EISDIR for a
 * directory).
 */
int config_slurp(const char *path, size_t max, char **out, size_t *out_len);

/* A new copy of value as a path: a relative one is taken from the config
 * file's directory, not from whatever directory the web server started the
 * handler in. NULL when out of memory. */
char *config_path(const struct parser *p, const char *value);

/* The destination a [destination] key goes to: the last one begun. */
struct slh_dest *config_cur_dest(struct parser *p);

/*
 * value as a duration (slh_duration_parse()) of at least 1 second and, when
 * max is not 0, at most max, into *secs; else fails with "bad NAME 'value'".
 */
bool config_seconds(struct parser *p, const char *name, const char *value,
                    int64_t max, int64_t *secs);

/*
 * Setters: each takes one key's value (not empty, no control character but
 * tab) into p->cfg, a [destination]'s into the last destination. 1 when
 * done, else 0 with p->err set.
 */
typedef int config_setter(struct parser *p, const char *value);

/* [receiver] keys (config_value.c). */
config_setter config_add_secret_key, config_read_key_file,
    config_set_validation_key, config_add_server_ids, config_add_allow,
    config_set_max_body, config_set_max_events, config_set_spool,
    config_set_log, config_set_read_timeout, config_set_retention;

/* [destination NAME] keys (config_dest.c). */
config_setter config_set_url, config_set_file, config_set_events,
    config_add_header, config_set_signing_secret, config_set_timeout,
    config_set_max_age;

/* [destination NAME] TLS and proxy keys (config_tls.c): ca_file,
 * client_cert, client_key, proxy. */
config_setter config_set_ca_file, config_set_client_cert, config_set_client_key,
    config_set_proxy;

/* Once the file is read: d's TLS and proxy keys belong to a url destination
 * and client_cert comes with client_key. False with p->err set (at d's
 * section line) when not. */
bool config_check_tls(struct parser *p, const struct slh_dest *d);

/* Releases d's TLS and proxy strings (config_free_dest() calls it). */
void config_free_tls(struct slh_dest *d);
/* [destination NAME] keys that protect it (config_throttle.c). */
config_setter config_set_rate, config_set_concurrency, config_set_breaker;

/* d's protecting keys checked once its section is read (url destinations
 * only), defaults filled in; false with p->err set. */
bool config_finish_throttle(struct parser *p, struct slh_dest *d);

/* [admin] keys (config_admin.c): allow_from, token_file, actions. */
config_setter config_add_admin_allow, config_read_token_file,
    config_set_actions;

/* [admin] begun at the current line; false with p->err set for a second. */
bool config_begin_admin(struct parser *p);

/* [admin]'s defaults once the file is read (allow_from: loopback); false
 * with p->err set when out of memory. */
bool config_finish_admin(struct parser *p);

/* Releases what admin owns (the token wiped first). */
void config_free_admin(struct slh_admin *admin);

/* Reads the secret in the file value names (relative to the config's
 * directory) into *out (OPENSSL_clear_free() it): trailing blanks trimmed,
 * not empty, no control character. Messages name key and what, never the
 * secret. 0 with p->err set on failure. */
int config_read_secret_file(struct parser *p, const char *key, const char *what,
                            const char *value, char **out);

/* Appends the CIDR blocks listed in value to *blocks of *n; 0 with p->err
 * set when one is bad ("allow_from" names the key in messages). */
int config_add_blocks(struct parser *p, struct slh_cidr **blocks, size_t *n,
                      const char *value);

/* Starts [destination NAME] with name[0..len) (checked here); false with
 * p->err set when it is bad or a second one. */
bool config_begin_dest(struct parser *p, const char *name, size_t len);

/* Releases what d owns (the signing key wiped first). */
void config_free_dest(struct slh_dest *d);

#endif

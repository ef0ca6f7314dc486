/* config.h: the INI configuration file, loaded with inih. The module is
 * lib/config*.c: reading the file and its sections (config.c), the values
 * of [receiver] (config_value.c) and the destinations with their filters
 * (config_dest.c); what they share is in config_int.h. */
#ifndef SLH_CONFIG_H
#define SLH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "net.h"

#define SLH_CONFIG_DEFAULT_PATH "/etc/slhook/slhook.conf"
#define SLH_DEFAULT_MAX_BODY 1048576
#define SLH_DEFAULT_MAX_EVENTS 100 /* SocketLabs posts one; 3 seen batched */
#define SLH_MAX_MAX_EVENTS 10000   /* highest max_events accepted */
#define SLH_DEFAULT_SPOOL "/var/spool/slhook"
#define SLH_DEFAULT_TIMEOUT 10              /* seconds */
#define SLH_DEFAULT_MAX_AGE (4 * 24 * 3600) /* seconds: SocketLabs' horizon */
#define SLH_MAX_KEY_LEN 256                 /* longest secret accepted */
#define SLH_DEFAULT_READ_TIMEOUT 30         /* seconds */
#define SLH_MAX_READ_TIMEOUT 3600           /* seconds */
#define SLH_DEFAULT_CONCURRENCY 8 /* attempts in flight per destination */
#define SLH_MAX_CONCURRENCY 256

/* [receiver] retention, in seconds. Below SLH_SAFE_RETENTION (SocketLabs'
 * retry horizon) an event SocketLabs sends again after it was forgotten is
 * relayed twice: `check` warns. */
#define SLH_DEFAULT_RETENTION (7 * 24 * 3600)
#define SLH_SAFE_RETENTION (4 * 24 * 3600)
#define SLH_MAX_RETENTION (3650 * 24 * 3600) /* ten years */

/* The [admin] section: who may see the operator's page and metrics
 * (web.h). Without the section (is_set false) only /health answers. */
struct slh_admin {
    bool is_set;
    struct slh_cidr *allow; /* allow_from blocks; loopback when not given */
    size_t n_allow;
    char *token;      /* read from token_file (trimmed), or NULL for none */
    bool has_actions; /* actions = yes: retry and replay from the page */
};

/* One [destination NAME] section. Exactly one of url and file is set. */
struct slh_dest {
    char *name;      /* the section's NAME; unique */
    char *url;       /* http:// or https:// target, or NULL */
    char *file;      /* JSON Lines file to append to, or NULL */
    char **events;   /* filter words as written ("Failed", "Tracking:Click"); */
    size_t n_events; /* 0 = every event */
    char **headers;  /* "Name: value" lines, as written */
    size_t n_headers;
    unsigned char *signing_key; /* base64-decoded part after "whsec_", */
    size_t signing_key_len;     /* or NULL/0 when not signing */
    long timeout;               /* seconds per attempt */
    int64_t max_age;            /* seconds from receipt to dead letter */
    int line;                   /* line of the section header, for messages */
    /* TLS and proxy (url destinations only; each NULL when not set). Paths
     * are as written, or made absolute against the config file's directory
     * when relative; each file was readable when the config was loaded. */
    char *ca_file;     /* PEM bundle that verifies the destination instead
                          of the system's */
    char *client_cert; /* PEM client certificate for mutual TLS, and */
    char *client_key;  /* its PEM private key (unencrypted): both or none */
    char *proxy;       /* http://, https://, socks5:// or socks5h:// URL; may
                          carry user:pass@, so never printed whole */
    /* Protecting the destination (url destinations; throttle.h): */
    long rate;              /* attempts started per rate_period_ms; 0: any */
    int64_t rate_period_ms; /* 1000, 60000 or 3600000 (rate = N/s, /m, /h) */
    int concurrency;        /* attempts in flight at most, per deliverer */
    int breaker;            /* failures in a row that open it; 0: none */
};

struct slh_config {
    char *path;           /* the file it was read from */
    char **secret_keys;   /* every accepted key: secret_key lines, then */
    size_t n_secret_keys; /* the one read from secret_key_file */
    char *validation_key; /* legacy Notification API key, or NULL */
    int64_t *server_ids;  /* allowed ServerIds; n_server_ids 0 = any */
    size_t n_server_ids;
    struct slh_cidr *allow; /* allow_from blocks; n_allow 0 = anyone */
    size_t n_allow;
    size_t max_body;   /* bytes */
    size_t max_events; /* events in one request; more get 413 */
    char *spool;       /* the spool's directory, or a database's URI */
    char *spool_shown; /* spool for messages: a password masked
                          (slh_store_mask()) */
    long read_timeout; /* seconds from a request's first byte to its last
                          (slhook.fcgi; the CGI leaves it to the server) */
    struct slh_dest *dests;
    size_t n_dests;
    char *log; /* [receiver] log: "stderr", "syslog" or an absolute path;
                  NULL when not set (stderr) */
    int64_t retention; /* [receiver] retention, seconds: delivered events
                          are forgotten after it, and replay reaches no
                          further back */
    struct slh_admin admin;
};

/*
 * Reads and validates the INI file at path into *cfg (which need not be
 * initialised). Unknown sections or keys, missing required keys (a secret),
 * bad values and unreadable files are errors; err->text then reads
 * "path:line: problem". On failure *cfg is left zeroed and owns nothing.
 * Release a loaded config with slh_config_free().
 */
enum slh_err slh_config_load(struct slh_config *cfg, const char *path,
                             struct slh_error *err);

/*
 * As slh_config_load(), from the NUL-terminated text; name stands in for
 * the path in messages and relative secret_key_file paths are taken as they
 * are. For tests and fuzzing.
 */
enum slh_err slh_config_parse(struct slh_config *cfg, const char *text,
                              const char *name, struct slh_error *err);

/* Releases everything cfg owns and zeroes it. NULL and a zeroed cfg are fine.
 */
void slh_config_free(struct slh_config *cfg);

/* The destination called name, or NULL. Borrowed from cfg. */
const struct slh_dest *slh_config_dest(const struct slh_config *cfg,
                                       const char *name);

/*
 * True when an event of the given Type (as received) and tracking kind
 * (0 click, 1 open, 2 unsubscribe, -1 none) passes dest's events filter.
 * Filter words match case-insensitively: "Failed" matches Type Failed;
 * "Tracking" every tracking event; "Tracking:Click" (Open, Unsubscribe) one
 * kind. An empty filter passes everything.
 */
bool slh_dest_wants(const struct slh_dest *dest, const char *type,
                    int tracking);

/*
 * Parses a duration: a number of seconds, or a number followed by s, m, h
 * or d ("4d", "90m"). Returns false on anything else (negative, overflow,
 * trailing junk).
 */
bool slh_duration_parse(const char *text, int64_t *seconds);

/*
 * Whether target is a log target [receiver] log accepts: "stderr",
 * "syslog" or an absolute file path (slhook.fcgi --log takes the same).
 */
bool slh_log_target_valid(const char *target);

#endif

/* slhook: the operator's tool. Loads the config, then runs one command. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "config_path.h"
#include "deliver.h"
#include "log.h"
#include "sample.h"
#include "status.h"
#include "store.h"
#include "when.h"

static void
usage(FILE *out)
{
    fprintf(
        out,
        "usage: slhook [-c FILE] COMMAND [ARGS]\n"
        "\n"
        "Commands:\n"
        "  check              validate the config and the spool\n"
        "  deliver [--once]   relay due events to destinations, retrying;\n"
        "                     --once returns when nothing is due\n"
        "  status [--json|--prometheus]\n"
        "                     per destination: pending, retrying, dead,\n"
        "                     delivered, oldest pending, last error\n"
        "  retry DEST         put DEST's dead letters back in the queue\n"
        "  sample TYPE        print a sample SocketLabs body of TYPE\n"
        "                     carrying the configured secret\n"
        "  send URL [TYPE|FILE]\n"
        "                     post a sample (default Delivered) or FILE to\n"
        "                     URL and print the answer\n"
        "  events [--dest NAME] [--state STATE] [--type TYPE] [--since TIME]\n"
        "         [--until TIME] [--limit N] [--json]\n"
        "                     the stored events, newest first\n"
        "  show ID | show --message-id MID\n"
        "                     one stored event and its deliveries\n"
        "  replay DEST [--since TIME] [--until TIME] [--type TYPE]...\n"
        "         [--state delivered|dead|any] [--dry-run]\n"
        "                     queue stored events again for DEST (a\n"
        "                     backfill for a new one)\n"
        "  migrate [--force] FROM TO\n"
        "                     copy the spool FROM into the spool TO (a\n"
        "                     directory or a postgresql:// URI each)\n"
        "  (slhook COMMAND --help says more of events, show, replay and\n"
        "  migrate)\n"
        "\n"
        "Options:\n"
        "  -c FILE            config file (default: $SLHOOK_CONFIG, else\n"
        "                     %s)\n"
        "  -h, --help         this help\n"
        "  -V, --version      the version\n"
        "\n"
        "Sample types:",
        SLH_CONFIG_DEFAULT_PATH);
    for (size_t i = 0; slh_sample_types[i] != NULL; i++)
        fprintf(out, " %s", slh_sample_types[i]);
    fputc('\n', out);
}

/* Whether the spool's database, if there is one yet, opens (it is the
 * user's own, not writable by others) and is sound: a damaged one answers
 * every POST 503. Opens it without making anything; says what it is
 * (engine, versions) and that it is sound (the backend's own check:
 * SQLite's quick_check, the PostgreSQL schema's). */
static int
check_db(const char *dir, const char *shown)
{
    struct slh_error err = {0};
    struct slh_store *sp = NULL;
    char what[256];
    enum slh_err e;

    e = slh_store_open(&sp, dir, SLH_STORE_EXISTING, &err);
    if (e == SLH_ENOTFOUND) {
        printf("spool %s: no database yet: made on first use\n", shown);
        return 0;
    }
    if (e == SLH_OK)
        e = slh_store_describe(sp, what, sizeof(what), &err);
    if (e == SLH_OK)
        e = slh_store_verify(sp, &err);
    if (e != SLH_OK) {
        slh_store_close(sp);
        printf("error: %s\n", err.text);
        return 1;
    }
    printf("spool %s: %s\n", slh_store_where(sp), what);
    printf("spool %s: sound\n", slh_store_where(sp));
    slh_store_close(sp);
    return 0;
}

/* The directory path is in ("/" for /x, "." for a bare name), into buf. */
static void
parent_dir(char *buf, size_t size, const char *path)
{
    char *slash;

    snprintf(buf, size, "%s", path);
    slash = strrchr(buf, '/');
    if (slash == buf)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else
        snprintf(buf, size, ".");
}

/* A file destination is written by appending to its file: the directory
 * must be there. */
static int
check_file_dest(const struct slh_dest *d)
{
    char dir[4096];
    struct stat st = {0};

    parent_dir(dir, sizeof(dir), d->file);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("error: destination %s: %s cannot be written: directory %s: "
               "%s\n",
               d->name, d->file, dir,
               strerror(S_ISDIR(st.st_mode) || errno == 0 ? ENOTDIR : errno));
        return 1;
    }
    if (stat(d->file, &st) == 0 ? access(d->file, W_OK) != 0
                                : access(dir, W_OK | X_OK) != 0) {
        printf("error: destination %s: %s cannot be written by uid %ld: "
               "%s\n",
               d->name, d->file, (long)geteuid(), strerror(errno));
        return 1;
    }
    return 0;
}

/* What the user the tool runs as can do with the spool directory; a
 * spool on a server has no directory here: its database alone. */
static int
check_spool(const char *dir, const char *shown)
{
    struct stat st;
    char parent[4096];

    if (!slh_store_is_local(dir))
        return check_db(dir, shown);
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            printf("spool %s: not a directory\n", dir);
            return 1;
        }
        if (access(dir, W_OK | X_OK) != 0) {
            printf("spool %s: not writable by uid %ld: %s\n", dir,
                   (long)geteuid(), strerror(errno));
            return 1;
        }
        printf("spool %s: writable (owner uid %ld, mode %04o)\n", dir,
               (long)st.st_uid, (unsigned)(st.st_mode & 07777));
        /* Root may write anywhere: what counts is the web server's user,
         * and root opens no spool of theirs (store.h). */
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
            printf("error: spool %s is writable by %s (mode %04o): others "
                   "could add events to relay; chmod go-w it\n",
                   dir, (st.st_mode & S_IWOTH) != 0 ? "others" : "its group",
                   (unsigned)(st.st_mode & 07777));
            return 1;
        }
        if (geteuid() == 0 && st.st_uid != 0) {
            struct passwd *pw = getpwuid(st.st_uid);
            printf("warning: spool %s is uid %ld's: its database is not "
                   "checked as root; check as that user: runuser -u %s -- "
                   "slhook check\n",
                   dir, (long)st.st_uid, pw != NULL ? pw->pw_name : "www-data");
            return 0;
        }
        if (geteuid() == 0)
            printf("  checked as root: check again as the web server's user "
                   "(e.g. runuser -u www-data -- slhook check)\n");
        return check_db(dir, dir);
    }
    parent_dir(parent, sizeof(parent), dir);
    if (access(parent, W_OK | X_OK) != 0) {
        printf("spool %s: missing, and %s is not writable by uid %ld\n", dir,
               parent, (long)geteuid());
        return 1;
    }
    printf("spool %s: will be created on first use\n", dir);
    return 0;
}

/* A CGI's last failure to start a deliverer, if none started since. */
static int
check_deliverer(const struct slh_config *cfg)
{
    struct slh_status_note note;

    slh_status_note_read(cfg, &note);
    if (!note.found)
        return 0;
    printf("delivery: could not start (last tried %s): %s\n"
           "  events are stored but not relayed; the note goes once a "
           "deliverer starts\n",
           note.iso, note.text);
    return 1;
}

/* How long delivered events are kept, and a word when it is shorter than
 * SocketLabs' retry horizon. Never an error: a test spool may want it. */
static int
check_retention(const struct slh_config *cfg)
{
    char keep[32], safe[32];

    slh_when_duration(cfg->retention, keep, sizeof(keep));
    slh_when_duration(SLH_SAFE_RETENTION, safe, sizeof(safe));
    printf("  retention %s: delivered events are kept that long; replay "
           "reaches no further back\n",
           keep);
    if (cfg->retention < SLH_SAFE_RETENTION)
        printf("warning: retention %s is below %s, SocketLabs' retry "
               "horizon: an event it sends again after its copy was "
               "forgotten is relayed twice\n",
               keep, safe);
    return 0;
}

/* Who may see the operator's page: never the token, only whether there is
 * one; a word when the page is open to more than loopback without one. */
static void
check_admin(const struct slh_config *cfg)
{
    const struct slh_admin *a = &cfg->admin;
    bool is_loopback = a->n_allow > 0;

    if (!a->is_set) {
        printf("  admin: none (GET .../health only)\n");
        return;
    }
    for (size_t i = 0; i < a->n_allow; i++)
        is_loopback = is_loopback &&
                      (slh_cidr_match(&a->allow[i], 1, "127.0.0.1") ||
                       slh_cidr_match(&a->allow[i], 1, "::1")) &&
                      a->allow[i].prefix >= 104;
    printf("  admin: page, metrics and API for %zu address block(s)%s, "
           "token %s, actions %s\n",
           a->n_allow, is_loopback ? " (loopback)" : "",
           a->token != NULL ? "required" : "none",
           a->has_actions ? "on" : "off");
    if (!is_loopback && a->token == NULL)
        printf("warning: [admin] is open beyond loopback with no "
               "token_file: anyone in allow_from sees the page%s\n",
               a->has_actions ? " and may retry and replay" : "");
}

/* A destination's TLS and proxy keys: files by path (never what they
 * hold), the proxy masked as a URL is. Warns of a client key anyone may
 * read, and of TLS files an http:// url never uses. */
static void
print_tls(const struct slh_dest *d)
{
    struct stat st;

    if (d->ca_file != NULL)
        printf("    ca_file %s\n", d->ca_file);
    if (d->client_cert != NULL)
        printf("    client_cert %s, client_key %s\n", d->client_cert,
               d->client_key);
    if (d->client_key != NULL && stat(d->client_key, &st) == 0 &&
        (st.st_mode & S_IROTH) != 0)
        printf("warning: destination %s: client_key %s is readable by "
               "anyone (chmod o-r)\n",
               d->name, d->client_key);
    if ((d->ca_file != NULL || d->client_cert != NULL) && d->url != NULL &&
        strncasecmp(d->url, "http://", 7) == 0)
        printf("warning: destination %s: ca_file and client_cert are for "
               "https:// urls; this one is http://\n",
               d->name);
    if (d->proxy != NULL) {
        char *shown = slh_deliver_url_masked(d->proxy);
        printf("    proxy %s\n", shown != NULL ? shown : "(out of memory)");
        free(shown);
    }
}

/* A url destination's rate, concurrency and breaker, when not the
 * defaults, on a line of their own. */
static void
print_protection(const struct slh_dest *d)
{
    static const char unit[] = {'s', 'm', 'h'};
    int u = d->rate_period_ms >= 3600000 ? 2 : d->rate_period_ms >= 60000;

    if (d->rate == 0 && d->breaker == 0 &&
        d->concurrency == SLH_DEFAULT_CONCURRENCY)
        return;
    printf("    at most %d in flight", d->concurrency);
    if (d->rate > 0)
        printf(", %ld/%c", d->rate, unit[u]);
    if (d->breaker > 0)
        printf(", breaker after %d failures in a row", d->breaker);
    putchar('\n');
}

/* Errors make the exit status 1; warnings ("warning: ...") leave it 0. */
static int
cmd_check(const struct slh_config *cfg)
{
    int errors = 0;

    printf("%s: ok: %zu secret key(s), %zu destination(s)\n", cfg->path,
           cfg->n_secret_keys, cfg->n_dests);
    errors += check_retention(cfg);
    check_admin(cfg);
    if (cfg->n_dests == 0)
        printf("warning: no destination: events would be stored but relayed "
               "nowhere\n");
    for (size_t i = 0; i < cfg->n_dests; i++) {
        const struct slh_dest *d = &cfg->dests[i];
        /* A URL may carry credentials: never printed whole. */
        char *shown = d->url != NULL ? slh_deliver_url_masked(d->url) : NULL;

        printf("  destination %s: %s%s\n", d->name,
               d->url == NULL  ? d->file
               : shown != NULL ? shown
                               : "(out of memory)",
               d->signing_key != NULL ? " (signed)" : "");
        free(shown);
        print_tls(d);
        print_protection(d);
        if (d->file != NULL)
            errors += check_file_dest(d);
    }
    errors += check_spool(cfg->spool, cfg->spool_shown);
    errors += check_deliverer(cfg);
    return errors > 0 ? 1 : 0;
}

static int
cmd_sample(int argc, char **argv, const struct slh_config *cfg)
{
    char *body;

    if (argc != 2) {
        fprintf(stderr, "usage: slhook sample TYPE\n");
        return 2;
    }
    body = slh_sample_make(argv[1], cfg, (long long)time(NULL));
    if (body == NULL) {
        fprintf(stderr, "slhook: unknown sample type '%s' (try --help)\n",
                argv[1]);
        return 2;
    }
    puts(body);
    free(body);
    return 0;
}

static int
run_check(int argc, char **argv, const struct slh_config *cfg)
{
    (void)argc;
    (void)argv;
    return cmd_check(cfg);
}

/* Every command: its name, what runs it, and what its --help prints (NULL:
 * the general usage). */
static const struct command {
    const char *name;
    int (*run)(int argc, char **argv, const struct slh_config *cfg);
    const char *usage;
} commands[] = {
    {"check", run_check, NULL},
    {"sample", cmd_sample, NULL},
    {"deliver", cmd_deliver, NULL},
    {"status", cmd_status, NULL},
    {"retry", cmd_retry, NULL},
    {"send", cmd_send, NULL},
    {"events", cmd_events, cmd_events_usage},
    {"show", cmd_show, cmd_show_usage},
    {"replay", cmd_replay, cmd_replay_usage},
    {"migrate", cmd_migrate, cmd_migrate_usage},
};

static const struct command *
command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Whether argv[1..argc) asks for help. */
static bool
is_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

int
main(int argc, char **argv)
{
    const char *option = NULL;
    struct slh_config cfg = {0};
    struct slh_error err = {0};
    const struct command *cmd;
    int i = 1, rc;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            option = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-V") == 0 ||
                   strcmp(argv[i], "--version") == 0) {
            printf("slhook %s\n", SLH_VERSION);
            return 0;
        } else {
            fprintf(stderr, "slhook: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = command(argv[i]);
    if (cmd == NULL) {
        fprintf(stderr, "slhook: unknown command '%s' (try --help)\n", argv[i]);
        return 2;
    }
    argc -= i;
    argv += i;
    /* Before the config: help needs none. */
    if (cmd->usage != NULL && is_help(argc, argv)) {
        fputs(cmd->usage, stdout);
        return 0;
    }
    if (slh_config_load(&cfg, slh_config_path(option), &err) != SLH_OK) {
        slh_log_early("slhook", err.text);
        return 1;
    }
    rc = cmd->run(argc, argv, &cfg);
    slh_config_free(&cfg);
    return rc;
}

/* The relay commands of the operator's tool: deliver, status, retry, send. */
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "deliver.h"
#include "deliver_kicked.h"
#include "handler.h"
#include "kick.h"
#include "log.h"
#include "sample.h"
#include "status.h"
#include "store.h"

#define SEND_TIMEOUT 30          /* seconds */
#define SEND_ANSWER_MAX 65536    /* bytes of an answer printed by send */
#define SEND_FILE_MAX (16 << 20) /* bytes of a file send posts */

bool
cmd_may_make_spool(const char *dir, const char *cmd)
{
    struct stat st;

    /* A database on a server: no directory for the web server's user to
     * be unable to write in. */
    if (!slh_store_is_local(dir) || geteuid() != 0 || stat(dir, &st) == 0 ||
        errno != ENOENT)
        return true;
    fprintf(stderr,
            "slhook: %s: no spool yet at %s, and root makes none from the "
            "command line: the web server's user could not write in it. Run "
            "as that user (e.g. runuser -u www-data -- slhook %s), or make "
            "it theirs first: install -d -m 0700 -o www-data %s\n",
            cmd, dir, cmd, dir);
    return false;
}

/* ---- deliver ---- */

struct sig_ctx {
    sigset_t set;
    pthread_mutex_t mu;      /* guards d and the next_ pair */
    struct slh_deliverer *d; /* the one running */
    atomic_int caught;       /* the stopping signal taken, 0 before */
    bool is_reloading;       /* SIGHUP reloads; else it stops, as SIGTERM */
    const char *path;        /* the config file to reload */
    const char *cfg_log;     /* a kicked deliverer's log target */
    struct slh_deliverer *next_d; /* a reloaded config and its deliverer, */
    struct slh_config *next_cfg;  /* ready to take over; NULL before */
};

static void log_attempt(const struct slh_attempt *a, void *arg);

static void
log_note(const char *text, void *arg)
{
    (void)arg;
    fprintf(stderr, "slhook: deliver: %s\n", text);
}

/* What a deliverer tells, logged: each attempt, and its notes. */
static void
watch(struct slh_deliverer *d)
{
    slh_deliverer_on_attempt(d, log_attempt, NULL);
    slh_deliverer_on_note(d, log_note, NULL);
}

/* Frees a reloaded config and its deliverer (which borrows it). */
static void
drop_reload(struct slh_deliverer *d, struct slh_config *cfg)
{
    slh_deliverer_free(d);
    slh_config_free(cfg);
    free(cfg);
}

/*
 * Loads the config again and readies a deliverer on it; only then stops the
 * running one, for cmd_deliver to swap them. A config that does not load
 * (or whose spool does not open) is refused and the running one goes on.
 */
static void
reload(struct sig_ctx *ctx)
{
    struct slh_error err = {0};
    struct slh_config *cfg = calloc(1, sizeof(*cfg));
    struct slh_deliverer *d = NULL;

    if (cfg == NULL)
        slh_error_set(&err, SLH_ENOMEM, "out of memory");
    else if (slh_config_load(cfg, ctx->path, &err) == SLH_OK &&
             slh_log_check(cfg->log, &err) == SLH_OK &&
             slh_deliverer_new(&d, cfg, &err) == SLH_OK)
        watch(d);
    if (d == NULL) {
        fprintf(stderr,
                "slhook: deliver: reload refused, the running config kept: "
                "%s\n",
                err.text);
        drop_reload(NULL, cfg);
        return;
    }
    pthread_mutex_lock(&ctx->mu);
    drop_reload(ctx->next_d, ctx->next_cfg); /* a reload not yet taken */
    ctx->next_d = d;
    ctx->next_cfg = cfg;
    slh_deliverer_stop(ctx->d);
    pthread_mutex_unlock(&ctx->mu);
}

/* SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken here,
 * so the deliverer is stopped from an ordinary thread, not a signal
 * handler. */
static void *
sig_thread(void *arg)
{
    struct sig_ctx *ctx = arg;
    int sig;

    for (;;) {
        if (sigwait(&ctx->set, &sig) != 0)
            continue;
        if (sig == SIGHUP && ctx->is_reloading) {
            reload(ctx);
            continue;
        }
        pthread_mutex_lock(&ctx->mu);
        atomic_store(&ctx->caught, sig);
        slh_deliverer_stop(ctx->d);
        pthread_mutex_unlock(&ctx->mu);
        return NULL;
    }
}

/*
 * After a run that a reload stopped: the deliverer readied on the new
 * config replaces *d, and the config *owned (NULL: the caller's). The ones
 * replaced go to *old_d and *old_owned, for the caller to drop_reload()
 * once it has no more use of them. Returns false when no reload is waiting
 * (or a stop came too).
 */
static bool
take_reload(struct sig_ctx *ctx, struct slh_deliverer **d,
            struct slh_config **owned, struct slh_deliverer **old_d,
            struct slh_config **old_owned)
{
    struct slh_deliverer *next;
    struct slh_config *cfg;

    pthread_mutex_lock(&ctx->mu);
    next = atomic_load(&ctx->caught) ? NULL : ctx->next_d;
    cfg = ctx->next_cfg;
    if (next != NULL) {
        ctx->d = next;
        ctx->next_d = NULL;
        ctx->next_cfg = NULL;
    }
    pthread_mutex_unlock(&ctx->mu);
    if (next == NULL)
        return false;
    *old_d = *d;
    *old_owned = *owned;
    *d = next;
    *owned = cfg;
    return true;
}

/* What an attempt did to its destination's breaker, when anything. */
static void
log_breaker(const struct slh_attempt *a)
{
    if (a->breaker == SLH_BREAKER_OPENED)
        fprintf(stderr,
                "slhook: %s: breaker open after failed attempts in a row "
                "(the last: %s): one probe at a time until one succeeds\n",
                a->dest, a->error);
    else if (a->breaker == SLH_BREAKER_CLOSED)
        fprintf(stderr, "slhook: %s: breaker closed: HTTP %d\n", a->dest,
                a->status);
}

static void
log_attempt(const struct slh_attempt *a, void *arg)
{
    (void)arg;
    log_breaker(a);
    switch (a->state) {
    case SLH_DELIVERED:
        if (a->status > 0)
            fprintf(stderr, "slhook: %s %s: delivered, HTTP %d (%ld ms)\n",
                    a->dest, a->event_id, a->status, a->ms);
        else
            fprintf(stderr, "slhook: %s %s: delivered (%ld ms)\n", a->dest,
                    a->event_id, a->ms);
        break;
    case SLH_DEAD:
        fprintf(stderr,
                "slhook: %s %s: dead letter after %d attempt(s): %s "
                "(%ld ms)\n",
                a->dest, a->event_id, a->attempts, a->error, a->ms);
        break;
    default: {
        long long wait = (a->due_ms - slh_now_ms() + 999) / 1000;
        fprintf(stderr,
                "slhook: %s %s: attempt %d failed: %s (%ld ms); retry in "
                "%llds\n",
                a->dest, a->event_id, a->attempts, a->error, a->ms,
                wait > 0 ? wait : 0);
        break;
    }
    }
}

static bool
is_caught(void *ctx)
{
    return atomic_load(&((struct sig_ctx *)ctx)->caught) != 0;
}

/* Only once the starter heard: until then stderr was its pipe, and what
 * went wrong went to it. A log file that will not open is the starter's to
 * report too, as it logs to the same file. */
static void
log_when_ready(void *ctx)
{
    struct slh_error err = {0};

    (void)slh_log_to(((struct sig_ctx *)ctx)->cfg_log, "slhook", &err);
}

/* ready_fd: where the CGI that started this deliverer waits to hear that
 * it started (slh_kick_ready()), or -1. */
static int
deliver_kicked(struct slh_deliverer *d, const struct slh_config *cfg,
               struct sig_ctx *sig, int ready_fd)
{
    struct slh_kicked_hooks hooks = {
        .is_stopping = is_caught, .on_ready = log_when_ready, .ctx = sig};
    struct slh_error err = {0};

    sig->cfg_log = cfg->log;
    if (slh_deliver_kicked(d, cfg, ready_fd, &hooks, &err) != SLH_OK) {
        fprintf(stderr, "slhook: deliver: %s\n", err.text);
        return 1;
    }
    return 0;
}

/* A descriptor number given as an argument: true with *fd when text is
 * one (decimal, 0 to INT_MAX), false for anything else, so that a typo is
 * a usage error rather than descriptor 0. */
static bool
fd_arg(const char *text, int *fd)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n < 0 || n > INT_MAX)
        return false;
    *fd = (int)n;
    return true;
}

/* deliver's options. Returns -1 to go on, else the exit status. */
static int
deliver_args(int argc, char **argv, bool *once, bool *kicked, int *ready_fd)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            *once = true;
        } else if (strcmp(argv[i], "--kicked") == 0) {
            *kicked = true;
        } else if (strcmp(argv[i], "--ready-fd") == 0 && i + 1 < argc &&
                   fd_arg(argv[i + 1], ready_fd)) {
            i++;
        } else {
            fprintf(stderr, "usage: slhook deliver [--once]\n");
            return 2;
        }
    }
    return -1;
}

/* Blocks the signals sig_thread() takes (the old mask into *old). A kicked
 * deliverer ends when nothing is pending, and the next one reads the
 * config afresh: SIGHUP only stops it. */
static void
sig_init(struct sig_ctx *sig, const struct slh_config *cfg, bool kicked,
         sigset_t *old)
{
    memset(sig, 0, sizeof(*sig));
    atomic_init(&sig->caught, 0);
    pthread_mutex_init(&sig->mu, NULL);
    sig->is_reloading = !kicked;
    sig->path = cfg->path;
    sigemptyset(&sig->set);
    sigaddset(&sig->set, SIGINT);
    sigaddset(&sig->set, SIGTERM);
    sigaddset(&sig->set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sig->set, old);
}

/*
 * The deliverer that is no kicked one: runs *d until stopped (or, once,
 * until nothing is due), taking up each reloaded config (*owned) as it
 * comes. A looping deliverer holds the kick lock (*lock) when it can, so
 * receivers do not start kicked ones beside it; it finds their rows
 * itself. Returns the exit status.
 */
static int
deliver_loop(struct sig_ctx *sig, struct slh_deliverer **d,
             const struct slh_config *cfg, struct slh_config **owned, bool once,
             int *lock)
{
    struct slh_error err = {0};

    if (!once)
        *lock = slh_kick_lock(cfg->spool);
    for (;;) {
        struct slh_deliverer *old_d = NULL;
        struct slh_config *old_owned = NULL;
        if (slh_deliverer_run(*d, once, &err) != SLH_OK) {
            fprintf(stderr, "slhook: deliver: %s\n", err.text);
            return 1;
        }
        if (once)
            slh_deliverer_index_all(*d);
        if (!take_reload(sig, d, owned, &old_d, &old_owned))
            return 0;
        /* Checked before the swap: this fails only if the file went
         * since. */
        if (slh_log_to((*owned)->log, "slhook", &err) != SLH_OK)
            fprintf(stderr, "slhook: deliver: %s\n", err.text);
        if (*lock >= 0 && strcmp(cfg->spool, (*owned)->spool) != 0) {
            close(*lock);
            *lock = -1;
        }
        if (!once && *lock < 0)
            *lock = slh_kick_lock((*owned)->spool);
        /* Only now: cfg may be the config replaced (a reload's, owned). */
        drop_reload(old_d, old_owned);
        cfg = *owned;
        fprintf(stderr,
                "slhook: deliver: reloaded %s: %zu destination(s), spool "
                "%s\n",
                cfg->path, cfg->n_dests, cfg->spool_shown);
    }
}

int
cmd_deliver(int argc, char **argv, const struct slh_config *cfg)
{
    struct sig_ctx sig;
    struct slh_error err = {0};
    struct slh_deliverer *d = NULL;
    struct slh_config *owned = NULL; /* a reloaded config */
    sigset_t old;
    pthread_t thread;
    bool once = false, kicked = false, have_thread = false;
    int lock = -1, rc, ready_fd = -1;

    rc = deliver_args(argc, argv, &once, &kicked, &ready_fd);
    if (rc >= 0)
        return rc;
    /* A kicked one follows a receiver that made the spool already. */
    if (!kicked && !cmd_may_make_spool(cfg->spool, "deliver"))
        return 1;
    rc = 1;
    sig_init(&sig, cfg, kicked, &old);
    /* A kicked deliverer's stderr leads back to the CGI that started it,
     * which waits to hear that it started: the log target comes after. */
    if ((ready_fd < 0 && slh_log_to(cfg->log, "slhook", &err) != SLH_OK) ||
        slh_deliverer_new(&d, cfg, &err) != SLH_OK) {
        fprintf(stderr, "slhook: deliver: %s\n", err.text);
        goto out;
    }
    watch(d);
    sig.d = d;
    if (pthread_create(&thread, NULL, sig_thread, &sig) != 0) {
        fprintf(stderr, "slhook: deliver: cannot start a thread\n");
        goto out;
    }
    have_thread = true;
    rc = kicked ? deliver_kicked(d, cfg, &sig, ready_fd)
                : deliver_loop(&sig, &d, cfg, &owned, once, &lock);
out:
    if (have_thread) {
        /* Not pthread_cancel(): the thread may be in the middle of a
         * reload, holding the lock. */
        pthread_kill(thread, SIGTERM);
        pthread_join(thread, NULL);
    }
    if (lock >= 0)
        close(lock);
    slh_deliverer_free(d);
    drop_reload(sig.next_d, sig.next_cfg);
    if (owned != NULL) {
        slh_config_free(owned);
        free(owned);
    }
    pthread_mutex_destroy(&sig.mu);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- status ---- */

enum format { TEXT, JSON, PROMETHEUS };

/* "3d4h", "12m5s", "7s": an age for people. */
static void
age_text(char *out, size_t size, int64_t secs)
{
    if (secs >= 86400)
        snprintf(out, size, "%" PRId64 "d%" PRId64 "h", secs / 86400,
                 secs % 86400 / 3600);
    else if (secs >= 3600)
        snprintf(out, size, "%" PRId64 "h%" PRId64 "m", secs / 3600,
                 secs % 3600 / 60);
    else if (secs >= 60)
        snprintf(out, size, "%" PRId64 "m%" PRId64 "s", secs / 60, secs % 60);
    else
        snprintf(out, size, "%" PRId64 "s", secs);
}

static void
print_text(const struct slh_status *status)
{
    const struct slh_status_row *rows = status->rows;
    int64_t now = status->now;

    printf("%-16s %9s %9s %9s %10s %8s %-11s  %s\n", "DESTINATION", "PENDING",
           "RETRYING", "DEAD", "DELIVERED", "OLDEST", "BREAKER", "LAST ERROR");
    for (size_t i = 0; i < status->n; i++) {
        const struct slh_store_stats *s = &rows[i].st;
        char age[32] = "-", name[256], breaker[48] = "-", since[32];
        if (s->oldest_pending > 0)
            age_text(age, sizeof(age), (now - s->oldest_pending) / 1000);
        snprintf(name, sizeof(name), "%s%s", rows[i].name,
                 rows[i].kind != NULL ? "" : " (not configured)");
        if (rows[i].th.opened != 0) {
            age_text(since, sizeof(since), (now - rows[i].th.opened) / 1000);
            snprintf(breaker, sizeof(breaker), "open:%s", since);
        } else if (rows[i].has_breaker) {
            snprintf(breaker, sizeof(breaker), "closed");
        }
        printf("%-16s %9" PRId64 " %9" PRId64 " %9" PRId64 " %10" PRId64
               " %8s %-11s  %s\n",
               name, s->pending, s->retrying, s->dead, s->delivered, age,
               breaker, s->last_error[0] != '\0' ? s->last_error : "-");
    }
    if (status->note.found)
        printf("\ndelivery could not start (last tried %s): %s\n",
               status->note.iso, status->note.text);
}

/* `status --json`: the status's JSON, indented. */
static int
print_json(const struct slh_status *status)
{
    json_t *root = slh_status_json(status);
    int rc = 1;

    if (root != NULL && json_dumpf(root, stdout, JSON_INDENT(2)) == 0) {
        putchar('\n');
        rc = 0;
    }
    json_decref(root);
    return rc;
}

int
cmd_status(int argc, char **argv, const struct slh_config *cfg)
{
    struct slh_error err = {0};
    struct slh_store *sp = NULL;
    struct slh_status status = {0};
    enum format fmt = TEXT;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            fmt = JSON;
        } else if (strcmp(argv[i], "--prometheus") == 0) {
            fmt = PROMETHEUS;
        } else {
            fprintf(stderr, "usage: slhook status [--json|--prometheus]\n");
            return 2;
        }
    }
    /* Reading never makes a spool: one made here, by root say, would be
     * one the web server's user cannot write. No spool yet is no event
     * yet: zeros, and a word on stderr, not a failure that would page
     * whoever monitors a fresh install. */
    switch (slh_store_open(&sp, cfg->spool, SLH_STORE_EXISTING, &err)) {
    case SLH_OK:
        break;
    case SLH_ENOTFOUND:
        fprintf(stderr,
                "slhook: status: no spool yet at %s: nothing received "
                "so far\n",
                cfg->spool_shown);
        break;
    default:
        goto fail;
    }
    if (slh_status_read(&status, sp, cfg, slh_now_ms(), &err) != SLH_OK)
        goto fail;
    if (fmt == JSON) {
        rc = print_json(&status);
    } else if (fmt == PROMETHEUS) {
        slh_status_prometheus(stdout, &status);
        rc = 0;
    } else {
        print_text(&status);
        rc = 0;
    }
    if (fflush(stdout) != 0)
        rc = 1;
    goto out;
fail:
    fprintf(stderr, "slhook: status: %s\n", err.text);
out:
    slh_store_close(sp);
    slh_status_free(&status);
    return rc;
}

/* ---- retry ---- */

int
cmd_retry(int argc, char **argv, const struct slh_config *cfg)
{
    struct slh_error err = {0};
    struct slh_store *sp = NULL;
    enum slh_err e;
    size_t n = 0;
    int rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: slhook retry DEST\n");
        return 2;
    }
    if (slh_config_dest(cfg, argv[1]) == NULL) {
        fprintf(stderr, "slhook: retry: no destination '%s' in %s\n", argv[1],
                cfg->path);
        return 1;
    }
    /* No spool is no dead letter: nothing to make one for. */
    e = slh_store_open(&sp, cfg->spool, SLH_STORE_EXISTING, &err);
    if (e == SLH_ENOTFOUND) {
        printf("no spool yet at %s: no dead letters\n", cfg->spool_shown);
        return 0;
    }
    if (e != SLH_OK ||
        slh_store_retry(sp, argv[1], slh_now_ms(), &n, &err) != SLH_OK) {
        fprintf(stderr, "slhook: retry: %s\n", err.text);
        goto out;
    }
    printf("%zu dead letter(s) of %s back in the queue\n", n, argv[1]);
    if (n > 0 && !slh_kick_held(cfg->spool))
        fprintf(stderr, "slhook: no deliverer is running: `slhook deliver "
                        "--once` sends them now, else the next event "
                        "received does\n");
    rc = 0;
out:
    slh_store_close(sp);
    return rc;
}

/* ---- send ---- */

static bool
is_sample_type(const char *name)
{
    for (size_t i = 0; slh_sample_types[i] != NULL; i++)
        if (strcasecmp(slh_sample_types[i], name) == 0)
            return true;
    return false;
}

/* The body to send: a sample of a known type, else the named file. */
static char *
send_body(const char *what, const struct slh_config *cfg, size_t *len)
{
    struct stat sb;
    FILE *f;
    char *buf;

    if (is_sample_type(what)) {
        buf = slh_sample_make(what, cfg, (long long)time(NULL));
        if (buf != NULL)
            *len = strlen(buf);
        else
            fprintf(stderr, "slhook: send: cannot make a %s sample\n", what);
        return buf;
    }
    f = fopen(what, "rb");
    if (f == NULL || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
        sb.st_size > SEND_FILE_MAX) {
        fprintf(stderr,
                "slhook: send: '%s' is neither a sample type nor a readable "
                "file of at most %d bytes\n",
                what, SEND_FILE_MAX);
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    buf = malloc((size_t)sb.st_size + 1);
    *len = buf != NULL ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
    if (buf == NULL || ferror(f)) {
        fprintf(stderr, "slhook: send: cannot read %s\n", what);
        free(buf);
        buf = NULL;
    } else {
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

int
cmd_send(int argc, char **argv, const struct slh_config *cfg)
{
    struct slh_error err = {0};
    char *body, *answer = NULL;
    size_t len = 0;
    long status = 0;
    int rc = 1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: slhook send URL [TYPE|FILE]\n");
        return 2;
    }
    body = send_body(argc == 3 ? argv[2] : "Delivered", cfg, &len);
    if (body == NULL)
        return 1;
    if (slh_deliver_post(argv[1], slh_body_content_type(body, len), body, len,
                         SEND_TIMEOUT, &status, &answer, SEND_ANSWER_MAX,
                         &err) != SLH_OK) {
        fprintf(stderr, "slhook: send: %s\n", err.text);
        goto out;
    }
    printf("HTTP %ld\n%s", status, answer);
    if (answer[0] != '\0' && answer[strlen(answer) - 1] != '\n')
        putchar('\n');
    rc = status >= 200 && status <= 299 ? 0 : 1;
out:
    free(answer);
    free(body);
    return rc;
}

/* slhook.fcgi: the core handler as a FastCGI responder.
 *
 * Request threads (workers.c) read requests and handle them; those with
 * events to store share disk commits through one committer thread, which
 * answers them once stored, helped by a checkpointer thread (lib/commit.h);
 * unless --no-deliver one more thread relays what was stored, its spool
 * writes made in the committer's transactions. The main thread
 * waits for SIGTERM (or SIGINT, or libfcgi's SIGUSR1), then stops accepting,
 * lets the requests in flight finish, and exits 0. SIGHUP reloads the
 * config: a config that loads is taken by stopping the same way and
 * executing the program again on the same listening socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "commit.h"
#include "config.h"
#include "config_path.h"
#include "deliver.h"
#include "deliver_thread.h"
#include "log.h"
#include "store.h"
#include "workers.h"

#define DEFAULT_THREADS 16
#define MAX_THREADS 256
#define LISTEN_BACKLOG 1024
/* The listening socket a reloading slhook.fcgi hands to itself across
 * exec (fd 0 needs no telling: it stays fd 0). */
#define LISTEN_FD_ENV "SLHOOK_FCGI_LISTEN_FD"

struct options {
    const char *config;
    const char *listen;
    const char *log; /* --log: in place of the config's [receiver] log */
    long threads;
    bool is_delivering;
};

struct delivery {
    struct slh_deliverer *d;
    struct slh_deliver_thread thread;
};

static void
note_delivery_error(void *ctx, const char *text)
{
    (void)ctx;
    fprintf(stderr, "slhook.fcgi: delivery stopped: %s; resuming in %d s\n",
            text, SLH_DELIVER_RESTART_S);
}

static void
note_deliverer(const char *text, void *arg)
{
    (void)arg;
    fprintf(stderr, "slhook.fcgi: deliverer: %s\n", text);
}

static void
wake_deliverer(void *d)
{
    slh_deliverer_wake(d);
}

static void
note_checkpoint(void *ctx, const char *text)
{
    (void)ctx;
    fprintf(stderr, "slhook.fcgi: checkpoint: %s\n", text);
}

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: slhook.fcgi [-c FILE] [--listen ADDR] [--threads N] "
            "[--no-deliver]\n"
            "The SocketLabs Event Webhook endpoint as a FastCGI responder.\n"
            "  -c FILE        config (else $SLHOOK_CONFIG, else %s)\n"
            "  --listen ADDR  listen on HOST:PORT (IPv4) or /path.sock;\n"
            "                 default: the socket on fd 0 (spawn-fcgi,\n"
            "                 lighttpd bin-path, mod_fcgid)\n"
            "  --threads N    request threads (default %d)\n"
            "  --log TARGET   stderr, syslog or /path/to/file, in place of\n"
            "                 the config's [receiver] log (spawn-fcgi gives\n"
            "                 a stderr that leads nowhere)\n"
            "  --no-deliver   only receive; leave relaying to `slhook "
            "deliver`\n"
            "  -h, --help     print this\n"
            "  --version      print the version\n"
            "SIGTERM, SIGINT or SIGUSR1: stop accepting, finish what is in "
            "flight, exit 0.\n"
            "SIGHUP: reload the config (one that does not load is refused "
            "and logged).\n",
            SLH_CONFIG_DEFAULT_PATH, DEFAULT_THREADS);
}

/* Returns -1 to go on, else the exit status. */
static int
parse_options(int argc, char **argv, struct options *opt)
{
    static const struct option longs[] = {
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"log", required_argument, NULL, 'L'},
        {"no-deliver", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    char *end;
    int c;

    while ((c = getopt_long(argc, argv, "c:h", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            opt->config = optarg;
            break;
        case 'l':
            opt->listen = optarg;
            break;
        case 't':
            errno = 0;
            opt->threads = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || opt->threads < 1 ||
                opt->threads > MAX_THREADS) {
                fprintf(stderr, "slhook.fcgi: --threads: 1 to %d\n",
                        MAX_THREADS);
                return 2;
            }
            break;
        case 'n':
            opt->is_delivering = false;
            break;
        case 'L':
            if (!slh_log_target_valid(optarg)) {
                fprintf(stderr, "slhook.fcgi: --log: stderr, syslog or an "
                                "absolute path\n");
                return 2;
            }
            opt->log = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("slhook.fcgi %s\n", SLH_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* The socket this process had before it reloaded itself, else -1. */
static int
inherited_listener(void)
{
    const char *env = getenv(LISTEN_FD_ENV);
    struct stat st;
    char *end;
    long fd;

    if (env == NULL)
        return -1;
    errno = 0;
    fd = strtol(env, &end, 10);
    unsetenv(LISTEN_FD_ENV);
    if (errno != 0 || *end != '\0' || fd < 0 || fd > 65535 ||
        fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return -1;
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return (int)fd;
}

/* The listening socket: --listen, else the one the server gave on fd 0. */
static int
open_listener(const char *addr)
{
    struct sockaddr_un un;
    int fd = inherited_listener();

    if (fd >= 0)
        return fd;
    if (addr == NULL) {
        if (FCGX_IsCGI()) {
            fprintf(stderr, "slhook.fcgi: fd 0 is not a listening socket: "
                            "run under a FastCGI server or give --listen\n");
            return -1;
        }
        return FCGI_LISTENSOCK_FILENO;
    }
    /* libfcgi copies the address unchecked into a fixed buffer, and exits
     * on a path too long for a socket: refuse those here, with a message. */
    if (strlen(addr) >= sizeof(un.sun_path)) {
        fprintf(stderr, "slhook.fcgi: --listen: address too long\n");
        return -1;
    }
    fd = FCGX_OpenSocket(addr, LISTEN_BACKLOG);
    if (fd < 0)
        fprintf(stderr, "slhook.fcgi: cannot listen on %s\n", addr);
    return fd;
}

/*
 * What a reload would run on: the config at path loads, its spool opens
 * (unless it is the running one's, which is open) and its log can be
 * written. SLH_OK, or the reason to keep the running config.
 */
static enum slh_err
check_reload(const char *path, const char *log, const char *running_spool,
             struct slh_error *err)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    enum slh_err rc = slh_config_load(&cfg, path, err);

    /* Opening the running spool once more would only contend with its
     * checkpointer for nothing. */
    if (rc == SLH_OK && strcmp(cfg.spool, running_spool) != 0)
        rc = slh_store_open(&sp, cfg.spool, SLH_STORE_CREATE, err);
    slh_store_close(sp);
    if (rc == SLH_OK)
        rc = slh_log_check(log != NULL ? log : cfg.log, err);
    slh_config_free(&cfg);
    return rc;
}

/*
 * Becomes slhook.fcgi again, on the same listening socket, once everything
 * has stopped. Starting afresh takes up a new config whole (the request
 * threads, the committer and the deliverer all borrow the config, and a
 * new process starts from nothing of the old). Connections wait in the
 * listen backlog meanwhile; blocked signals stay blocked, and pending ones
 * pending, across exec, so a SIGTERM that comes now stops the new process.
 * Returns only on failure.
 */
static void
reexec(char **argv, int listen_fd)
{
    char fd_text[16];

    fcntl(listen_fd, F_SETFD, 0);
    if (listen_fd != FCGI_LISTENSOCK_FILENO) {
        snprintf(fd_text, sizeof(fd_text), "%d", listen_fd);
        setenv(LISTEN_FD_ENV, fd_text, 1);
    }
    fflush(NULL);
    execv("/proc/self/exe", argv);
    execvp(argv[0], argv);
    fprintf(stderr, "slhook.fcgi: reload: cannot execute %s: %s\n", argv[0],
            strerror(errno));
}

/* Loads the config that opt names and points the log where it says. On
 * failure says why (under spawn-fcgi, stderr is /dev/null until the config
 * says where lines go: this one goes to syslog too). */
static bool
load_config(struct options *opt, struct slh_config *cfg)
{
    struct slh_error err = {0};

    opt->config = slh_config_path(opt->config);
    if (slh_config_load(cfg, opt->config, &err) != SLH_OK ||
        slh_log_to(opt->log != NULL ? opt->log : cfg->log, "slhook.fcgi",
                   &err) != SLH_OK) {
        slh_log_early("slhook.fcgi", err.text);
        return false;
    }
    return true;
}

/* The listening socket, after libfcgi is ready; -1 when there is none. */
static int
listen_on(const char *addr)
{
    if (FCGX_Init() != 0) {
        fprintf(stderr, "slhook.fcgi: cannot initialise libfcgi\n");
        return -1;
    }
    return open_listener(addr);
}

/*
 * Every thread inherits this mask: the stop signals reach only the main
 * thread's sigwait(). SIGUSR1 is libfcgi's own graceful stop, kept for
 * servers that send it. A web server gone away must not kill the process:
 * writes to it fail instead.
 */
static void
block_signals(sigset_t *stop)
{
    sigemptyset(stop);
    sigaddset(stop, SIGTERM);
    sigaddset(stop, SIGINT);
    sigaddset(stop, SIGUSR1);
    sigaddset(stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, stop, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* What runs: the deliverer (unless --no-deliver or no destination), the
 * committer, the delivery thread, the request threads, in this order. */
struct running {
    struct slh_commit *commit;
    struct fc_workers *workers;
    struct delivery dl;
};

static enum slh_err
start(struct running *r, const struct options *opt,
      const struct slh_config *cfg, int listen_fd, struct slh_error *err)
{
    struct delivery *dl = &r->dl;
    enum slh_err rc = SLH_OK;

    if (opt->is_delivering && cfg->n_dests > 0)
        rc = slh_deliverer_new(&dl->d, cfg, err);
    if (rc == SLH_OK && dl->d != NULL)
        slh_deliverer_on_note(dl->d, note_deliverer, NULL);
    if (rc == SLH_OK)
        rc = slh_commit_start(&r->commit, cfg,
                              dl->d != NULL ? wake_deliverer : NULL,
                              note_checkpoint, dl->d, err);
    if (rc == SLH_OK && dl->d != NULL)
        rc = slh_deliver_thread_start(&dl->thread, dl->d, r->commit,
                                      note_delivery_error, NULL, err);
    if (rc == SLH_OK)
        rc = fc_workers_start(&r->workers, cfg, r->commit, listen_fd,
                              (size_t)opt->threads, pthread_self(), err);
    if (rc == SLH_OK)
        fprintf(stderr, "slhook.fcgi %s: %ld threads on %s%s\n", SLH_VERSION,
                opt->threads, opt->listen != NULL ? opt->listen : "fd 0",
                dl->d != NULL ? ", delivering" : "");
    return rc;
}

/* Waits for a stop signal, or a SIGHUP whose config would run (then true:
 * reload). A SIGHUP whose config would not is refused and logged. */
static bool
wait_for_signal(const sigset_t *stop, const struct options *opt,
                const struct slh_config *cfg)
{
    int sig;

    while (sigwait(stop, &sig) == 0 && sig == SIGHUP) {
        struct slh_error why = {0};
        if (check_reload(opt->config, opt->log, cfg->spool, &why) == SLH_OK)
            return true;
        fprintf(stderr,
                "slhook.fcgi: reload refused, the running config kept: %s\n",
                why.text);
    }
    return false;
}

/* Stops what start() started, in reverse, and logs the totals (or err). */
static void
stop(struct running *r, bool is_reloading, const struct slh_error *err)
{
    unsigned long n_batches = 0, n_commits = 0;

    /* Its last writes go through the committer; the deliverer is freed
     * only after the committer, which may still wake it. */
    slh_deliver_thread_stop(&r->dl.thread);
    slh_commit_stop(r->commit, &n_batches, &n_commits);
    slh_deliverer_free(r->dl.d);
    if (err->code != SLH_OK)
        fprintf(stderr, "slhook.fcgi: %s\n", err->text);
    else
        fprintf(stderr, "slhook.fcgi: %s; %lu requests stored in %lu commits\n",
                is_reloading ? "reloading" : "stopped", n_batches, n_commits);
}

int
main(int argc, char **argv)
{
    struct options opt = {.threads = DEFAULT_THREADS, .is_delivering = true};
    struct slh_config cfg = {0};
    struct slh_error err = {0};
    struct running r = {0};
    sigset_t stop_set;
    bool is_ok = true, is_reloading = false;
    int rc, listen_fd;

    /* glibc gives each thread that allocates an arena of its own, up to 16
     * on two CPUs, and a request is allocated by its request thread but
     * freed by the committer: every arena kept a share of free memory
     * (BENCHMARKS.md). Two are enough, at the same throughput. */
    mallopt(M_ARENA_MAX, 2);
    rc = parse_options(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    if (!load_config(&opt, &cfg) || (listen_fd = listen_on(opt.listen)) < 0) {
        slh_config_free(&cfg);
        return 1;
    }
    block_signals(&stop_set);
    if (start(&r, &opt, &cfg, listen_fd, &err) == SLH_OK) {
        is_reloading = wait_for_signal(&stop_set, &opt, &cfg);
        is_ok = fc_workers_stop(r.workers);
    }
    stop(&r, is_reloading, &err);
    slh_config_free(&cfg);
    if (is_reloading && is_ok && err.code == SLH_OK)
        reexec(argv, listen_fd);
    return err.code == SLH_OK && is_ok && !is_reloading ? 0 : 1;
}

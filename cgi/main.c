/* slhook.cgi: the core handler as a CGI program.
 *
 * Under a web server (GATEWAY_INTERFACE set) it answers one request. Run
 * from a shell it takes one body on stdin as a POST (JSON if it begins with
 * '{' or '[', else form), so that `slhook sample Delivered | slhook.cgi`
 * works. After a 200 it hands delivery to a detached `slhook deliver
 * --kicked` unless a deliverer already holds the spool's kick lock: the
 * receive path itself never loads libcurl.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "handler.h"
#include "kick.h"
#include "log.h"
#include "spool.h"

#define DRAIN_CAP ((size_t)64 << 20)

#ifndef SLH_BINDIR
#define SLH_BINDIR "/usr/local/bin"
#endif

struct store_ctx {
    const struct slh_config *cfg;
    char detail[SLH_ERROR_TEXT];
};

static enum slh_err
store(void *arg, const struct slh_batch *batch, size_t *n_new)
{
    struct store_ctx *ctx = arg;
    struct slh_error err = {0};
    struct slh_spool *sp = NULL;
    enum slh_err rc;

    rc = slh_spool_open(&sp, ctx->cfg->spool, &err);
    if (rc == SLH_OK)
        rc = slh_spool_put(sp, ctx->cfg, &batch, 1, slh_now_ms(), n_new, &err);
    slh_spool_close(sp);
    if (rc != SLH_OK)
        snprintf(ctx->detail, sizeof(ctx->detail), "%s", err.text);
    return rc;
}

/* Reads up to cap bytes of stdin into a new buffer; *len gets the count. */
static char *
read_stdin(size_t cap, size_t *len)
{
    char *buf = malloc(cap + 1);
    size_t n = 0, got;

    if (buf == NULL)
        return NULL;
    while (n < cap && (got = fread(buf + n, 1, cap - n, stdin)) > 0)
        n += got;
    buf[n] = '\0';
    *len = n;
    return buf;
}

/*
 * Reads and drops the len body bytes of a request answered without them
 * (405, 413, 415, ...). Under Apache's mod_cgid stdin and stdout are one
 * socket, and closing it with unread data resets the connection before the
 * answer arrives. Bodies beyond the cap are left: the sender was told 413.
 */
static void
drain_stdin(size_t len)
{
    char buf[65536];
    size_t left = len < DRAIN_CAP ? len : DRAIN_CAP;

    while (left > 0) {
        size_t got =
            fread(buf, 1, left < sizeof(buf) ? left : sizeof(buf), stdin);
        if (got == 0)
            break;
        left -= got;
    }
}

/* The slhook tool: beside this program, else where `make install` put it. */
static void
tool_path(char *path, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 16);

    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            int n2 = snprintf(path, size, "%s/slhook", self);
            if (n2 > 0 && (size_t)n2 < size && access(path, X_OK) == 0)
                return;
        }
    }
    snprintf(path, size, "%s/slhook", SLH_BINDIR);
}

/*
 * Starts `slhook -c CONFIG deliver --kicked` detached (double fork, new
 * session, stdio on /dev/null) so the web server sees the response end now.
 */
static void
kick_deliverer(const struct slh_config *cfg)
{
    char tool[PATH_MAX];
    pid_t pid;

    if (slh_kick_held(cfg->spool))
        return;
    tool_path(tool, sizeof(tool));
    pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || setsid() < 0)
            _exit(1);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (fork() != 0)
            _exit(0);
        signal(SIGTERM, SIG_DFL); /* an ignored signal would stay ignored */
        execl(tool, "slhook", "-c", cfg->path, "deliver", "--kicked",
              (char *)NULL);
        _exit(127);
    }
    waitpid(pid, NULL, 0);
}

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: slhook.cgi [-c FILE]\n"
            "Under a web server: the SocketLabs Event Webhook endpoint (CGI).\n"
            "From a shell: reads one request body on stdin and prints the\n"
            "CGI response, e.g.  slhook sample Delivered | slhook.cgi\n"
            "The config is FILE, else $SLHOOK_CONFIG, else %s.\n",
            SLH_CONFIG_DEFAULT_PATH);
}

int
main(int argc, char **argv)
{
    bool is_cgi = getenv("GATEWAY_INTERFACE") != NULL;
    const char *path = getenv("SLHOOK_CONFIG");
    struct slh_config cfg = {0};
    struct slh_error err = {0};
    struct slh_request req = {0};
    struct slh_response resp;
    struct store_ctx ctx = {.cfg = &cfg};
    struct timespec t0;
    char length[32], out[SLH_RESPONSE_BODY + 256], line[512];
    char *body = NULL;
    size_t body_len = 0, n;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* A CGI's arguments come from the query string: only a shell's count. */
    for (int i = 1; !is_cgi && i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else {
            usage(strcmp(argv[i], "--help") == 0 ? stdout : stderr);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (path == NULL || *path == '\0')
        path = SLH_CONFIG_DEFAULT_PATH;
    if (slh_config_load(&cfg, path, &err) != SLH_OK) {
        slh_log_early("slhook", err.text);
        /* SocketLabs retries a 503: nothing is lost to a broken config. */
        if (is_cgi)
            printf("Status: 503 Service Unavailable\r\nRetry-After: 60\r\n"
                   "Content-Type: text/plain\r\n\r\nnot configured\n");
        return is_cgi ? 0 : 1;
    }
    /* The default (stderr, the web server's error log) costs nothing: no
     * system call. A log file that cannot be opened does not cost the
     * request its answer: the line goes to stderr then. */
    if (slh_log_to(cfg.log, "slhook", &err) != SLH_OK)
        fprintf(stderr, "slhook: %s\n", err.text);

    if (is_cgi) {
        req.method = getenv("REQUEST_METHOD");
        req.content_type = getenv("CONTENT_TYPE");
        req.content_length = getenv("CONTENT_LENGTH");
        req.remote_addr = getenv("REMOTE_ADDR");
    } else {
        body = read_stdin(cfg.max_body + 1, &body_len);
        if (body == NULL) {
            fprintf(stderr, "slhook: out of memory\n");
            slh_config_free(&cfg);
            return 1;
        }
        n = strspn(body, " \t\r\n");
        snprintf(length, sizeof(length), "%zu", body_len);
        req.method = "POST";
        req.content_type = body[n] == '{' || body[n] == '['
                               ? "application/json"
                               : "application/x-www-form-urlencoded";
        req.content_length = length;
        req.remote_addr = "127.0.0.1";
        req.body = body;
        req.body_len = body_len;
    }

    if (slh_handler_head(&cfg, &req, &body_len, &resp)) {
        if (is_cgi)
            drain_stdin(body_len);
    } else {
        if (is_cgi) {
            body = read_stdin(body_len, &n);
            req.body = body;
            req.body_len = n;
        }
        if (body == NULL)
            resp.status = 0; /* out of memory: answered below as 503 */
        else
            slh_handle(&cfg, &req, store, &ctx, &resp);
    }
    n = slh_response_format(&resp, out, sizeof(out));
    if (resp.status == 0 || n == 0) {
        n = (size_t)snprintf(out, sizeof(out),
                             "Status: 503 Service Unavailable\r\n"
                             "Retry-After: 30\r\n\r\n");
    }
    /* lighttpd sends SIGTERM about 1 ms after a CGI closes stdout; the log
     * line and the kick still have to happen (4-8 % of them were lost). */
    signal(SIGTERM, SIG_IGN);
    fwrite(out, 1, n, stdout);
    fflush(stdout);
    fclose(stdout);

    slh_response_logline(&req, &resp, slh_elapsed_ms(&t0), line, sizeof(line));
    if (ctx.detail[0] != '\0')
        fprintf(stderr, "%s: %s\n", line, ctx.detail);
    else
        fprintf(stderr, "%s\n", line);
    if (resp.status == 200 && resp.n_new > 0 && cfg.n_dests > 0)
        kick_deliverer(&cfg);
    free(body);
    slh_config_free(&cfg);
    return 0;
}

/* slhook.cgi: the core handler as a CGI program.
 *
 * Under a web server (GATEWAY_INTERFACE set) it answers one request. Run
 * from a shell it takes one body on stdin as a POST (JSON if it begins with
 * '{' or '[', else form), so that `slhook sample Delivered | slhook.cgi`
 * works. After a 200 it hands delivery to a detached `slhook deliver
 * --kicked` unless a deliverer already holds the spool's kick lock: the
 * slhook tool it carries (cgi/tool.S), run from memory, so that this
 * program alone relays, wherever it was copied. The receive path itself
 * never loads libcurl, nor touches those bytes. A PostgreSQL spool is
 * slhook-pg.cgi's, which this program runs in its place (cgi.h).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgi.h"
#include "config.h"
#include "config_path.h"
#include "handler.h"
#include "log.h"
#include "store.h"
#include "web.h"

#define DRAIN_CAP ((size_t)64 << 20)

struct store_ctx {
    const struct slh_config *cfg;
    enum slh_store_create how; /* what a store may make */
    char detail[SLH_ERROR_TEXT + 256];
};

static enum slh_err
store(void *arg, const struct slh_batch *batch, size_t *n_new)
{
    struct store_ctx *ctx = arg;
    struct slh_error err = {0};
    struct slh_store *sp = NULL;
    enum slh_err rc;

    rc = slh_store_open(&sp, ctx->cfg->spool, ctx->how, &err);
    if (rc == SLH_OK)
        rc = slh_store_put(sp, ctx->cfg, &batch, 1, slh_now_ms(), n_new, &err);
    slh_store_close(sp);
    if (rc == SLH_ENOTFOUND) {
        snprintf(ctx->detail, sizeof(ctx->detail),
                 "%s; root makes none from a shell: the web server's user "
                 "could not write in it. Run as that user (e.g. runuser -u "
                 "www-data -- slhook.cgi), or make it theirs first: install "
                 "-d -m 0700 -o www-data %s",
                 err.text, ctx->cfg->spool_shown);
        return SLH_ESTORE;
    }
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

/* Points stdin at /dev/null, closing what it was. */
static void
close_stdin(void)
{
    int null = open("/dev/null", O_RDONLY);

    if (null >= 0 && null != STDIN_FILENO) {
        dup2(null, STDIN_FILENO);
        close(null);
    }
}

/*
 * Every 503 this program writes, through the handler's formatter: a
 * complete answer (Content-Length, Retry-After), which SocketLabs retries.
 */
static size_t
unavailable(struct slh_response *resp, const char *body, char *out, size_t size)
{
    slh_response_unavailable(resp, body);
    return slh_response_format(resp, out, size);
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

/* From a shell, -c FILE into *option. Returns -1 to go on, else the exit
 * status. A CGI's arguments come from the query string: only a shell's
 * count. */
static int
parse_args(int argc, char **argv, bool is_cgi, const char **option)
{
    for (int i = 1; !is_cgi && i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            *option = argv[++i];
        } else {
            usage(strcmp(argv[i], "--help") == 0 ? stdout : stderr);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (!is_cgi && isatty(STDIN_FILENO)) {
        /* Waiting silently for a body nobody types helps nobody. */
        usage(stderr);
        return 2;
    }
    return -1;
}

/* The config did not load: SocketLabs retries a 503, so nothing is lost to
 * a broken config. The body is read first, as for any answer given without
 * it. Returns the exit status. */
static int
answer_unconfigured(bool is_cgi, const char *why)
{
    struct slh_response resp = {0};
    char out[SLH_RESPONSE_BODY + 256];
    size_t n;

    slh_log_early("slhook", why);
    if (!is_cgi)
        return 1;
    drain_stdin(slh_request_length(getenv("CONTENT_LENGTH")));
    n = unavailable(&resp, SLH_UNAVAILABLE_CONFIG, out, sizeof(out));
    fwrite(out, 1, n, stdout);
    fflush(stdout);
    return 0;
}

/* The request as the web server's meta-variables give it. */
static void
request_from_env(struct slh_request *req)
{
    req->method = getenv("REQUEST_METHOD");
    req->content_type = getenv("CONTENT_TYPE");
    req->content_length = getenv("CONTENT_LENGTH");
    req->remote_addr = getenv("REMOTE_ADDR");
}

/* A shell's request: stdin, up to one byte past max_body (so that 413 can
 * be told), POSTed from 127.0.0.1 as its first byte says. length holds the
 * CONTENT_LENGTH text. Returns the body (the caller's), NULL when out of
 * memory. */
static char *
request_from_shell(const struct slh_config *cfg, struct slh_request *req,
                   char *length, size_t size)
{
    size_t len = 0;
    char *body = read_stdin(cfg->max_body + 1, &len);

    if (body == NULL)
        return NULL;
    snprintf(length, size, "%zu", len);
    req->method = "POST";
    req->content_type = slh_body_content_type(body, len);
    req->content_length = length;
    req->remote_addr = "127.0.0.1";
    req->body = body;
    req->body_len = len;
    return body;
}

/* Decides the answer into resp, reading (or dropping) the body of a CGI
 * request. *body gets what was read (the caller's); resp->status is 0 when
 * memory for it ran out. */
static void
handle(const struct slh_config *cfg, struct slh_request *req, bool is_cgi,
       char **body, struct store_ctx *ctx, struct slh_response *resp)
{
    size_t body_len = 0, n = 0;

    if (slh_handler_head(cfg, req, &body_len, resp)) {
        if (is_cgi)
            drain_stdin(body_len);
        return;
    }
    if (is_cgi) {
        *body = read_stdin(body_len, &n);
        req->body = *body;
        req->body_len = n;
    }
    if (*body == NULL)
        resp->status = 0; /* out of memory: answered as 503 */
    else
        slh_handle(cfg, req, store, ctx, resp);
}

/* Writes the answer and lets the web server have it whole. */
static void
write_answer(struct slh_response *resp, bool is_cgi)
{
    char out[SLH_RESPONSE_BODY + 256];
    size_t n;

    n = resp->status != 0 ? slh_response_format(resp, out, sizeof(out)) : 0;
    if (n == 0)
        n = unavailable(resp, SLH_UNAVAILABLE_NOMEM, out, sizeof(out));
    /* lighttpd sends SIGTERM about 1 ms after a CGI closes stdout; the log
     * line and the kick still have to happen (4-8 % of them were lost). */
    signal(SIGTERM, SIG_IGN);
    fwrite(out, 1, n, stdout);
    fflush(stdout);
    fclose(stdout);
    /* Under mod_cgid stdin is the same socket as stdout: the client sees
     * the answer end only once both are closed, and a kick may take a
     * moment (it waits for the deliverer to say it started). */
    if (is_cgi)
        close_stdin();
}

/* After the answer: the log line, and delivery for new events. */
static void
after_answer(const struct slh_config *cfg, const struct slh_request *req,
             const struct slh_response *resp, const struct store_ctx *ctx,
             const struct timespec *t0)
{
    char line[512];

    slh_response_logline(req, resp, slh_elapsed_ms(t0), line, sizeof(line));
    if (ctx->detail[0] != '\0')
        fprintf(stderr, "%s: %s\n", line, ctx->detail);
    else
        fprintf(stderr, "%s\n", line);
    if (resp->status == 200 && resp->n_new > 0 && cfg->n_dests > 0)
        cgi_kick(cfg);
}

/* A GET (health, metrics, the operator's page) or an operator's form:
 * web.h decides, this reads the form and writes the answer. Returns the
 * exit status. */
static int
serve_web(const struct slh_config *cfg, const struct timespec *t0)
{
    struct slh_web_env env = {.cfg = cfg};
    struct slh_web_request req = {
        .method = getenv("REQUEST_METHOD"),
        .path = getenv("PATH_INFO"),
        .script_name = getenv("SCRIPT_NAME"),
        .query = getenv("QUERY_STRING"),
        .remote_addr = getenv("REMOTE_ADDR"),
        .cookie = getenv("HTTP_COOKIE"),
        .authorization = getenv("HTTP_AUTHORIZATION"),
        .accept_encoding = getenv("HTTP_ACCEPT_ENCODING"),
        .content_type = getenv("CONTENT_TYPE"),
        .https = getenv("HTTPS"),
    };
    struct slh_web_answer ans;
    size_t len = slh_request_length(getenv("CONTENT_LENGTH")), n;
    char head[2048], line[512], *form = NULL;

    if (len > 0 && len <= SLH_WEB_MAX_FORM)
        form = read_stdin(len, &req.body_len);
    else
        drain_stdin(len);
    req.body = form;
    slh_web_handle(&env, &req, &ans);
    n = slh_web_format_head(&ans, head, sizeof(head));
    signal(SIGTERM, SIG_IGN);
    fwrite(head, 1, n, stdout);
    if (!ans.is_head)
        fwrite(ans.body, 1, ans.len, stdout);
    fflush(stdout);
    fclose(stdout);
    close_stdin();
    slh_web_logline(&req, &ans, slh_elapsed_ms(t0), line, sizeof(line));
    if (line[0] != '\0')
        fprintf(stderr, "%s\n", line);
    if (ans.is_work_queued && cfg->n_dests > 0)
        cgi_kick(cfg);
    slh_web_answer_free(&ans);
    free(form);
    return 0;
}

int
main(int argc, char **argv)
{
    bool is_cgi = getenv("GATEWAY_INTERFACE") != NULL;
    const char *option = NULL;
    struct slh_config cfg = {0};
    struct slh_error err = {0};
    struct slh_request req = {0};
    struct slh_response resp = {0};
    struct store_ctx ctx = {.cfg = &cfg};
    struct timespec t0;
    char length[32], *body = NULL;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = parse_args(argc, argv, is_cgi, &option);
    if (rc >= 0)
        return rc;
    if (slh_config_load(&cfg, slh_config_path(option), &err) != SLH_OK)
        return answer_unconfigured(is_cgi, err.text);
    /* The default (stderr, the web server's error log) costs nothing: no
     * system call. A log file that cannot be opened does not cost the
     * request its answer: the line goes to stderr then. */
    if (slh_log_to(cfg.log, "slhook", &err) != SLH_OK)
        fprintf(stderr, "slhook: %s\n", err.text);
    cgi_handoff(&cfg, argv);
    /* Under a web server the first request makes the spool, as its user.
     * Root running the pipe test from a shell would make it root's, and
     * every request after that would fail: root uses a spool directory
     * that is there (its own; another user's is refused, store.h), and
     * makes none. */
    ctx.how = is_cgi || geteuid() != 0 ? SLH_STORE_CREATE : SLH_STORE_CREATE_DB;
    if (is_cgi &&
        slh_web_wants(getenv("REQUEST_METHOD"), getenv("PATH_INFO"))) {
        rc = serve_web(&cfg, &t0);
        slh_config_free(&cfg);
        return rc;
    }
    if (is_cgi) {
        request_from_env(&req);
    } else if ((body = request_from_shell(&cfg, &req, length,
                                          sizeof(length))) == NULL) {
        fprintf(stderr, "slhook: out of memory\n");
        slh_config_free(&cfg);
        return 1;
    }
    handle(&cfg, &req, is_cgi, &body, &ctx, &resp);
    write_answer(&resp, is_cgi);
    after_answer(&cfg, &req, &resp, &ctx, &t0);
    free(body);
    slh_config_free(&cfg);
    /* From a shell, say how it went; a web server reads the Status. */
    return is_cgi || resp.status == 200 ? 0 : 1;
}

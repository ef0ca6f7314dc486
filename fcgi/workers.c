#include "workers.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcgiapp.h>

#include "handler.h"

struct worker {
    pthread_t thread;
    struct slh_workers *ws;
    bool is_waiting; /* between requests: safe to interrupt */
};

struct slh_workers {
    const struct slh_config *cfg;
    struct slh_commit *commit;
    int listen_fd;
    pthread_t notify;
    pthread_mutex_t mu;     /* guards the fields below */
    pthread_cond_t changed; /* a thread ended */
    bool is_stopping;
    bool is_failed;
    size_t n_running;
    struct worker *workers;
    size_t n_workers;
};

static void
on_wake(int sig)
{
    (void)sig;
}

/* Reads up to len body bytes; fewer when the stream ends early, which the
 * core answers with 400. NULL when out of memory. */
static char *
read_body(FCGX_Stream *in, size_t len, size_t *got)
{
    char *buf = malloc(len + 1);
    size_t n = 0;

    if (buf == NULL)
        return NULL;
    while (n < len) {
        size_t want = len - n < INT_MAX ? len - n : INT_MAX;
        int r = FCGX_GetStr(buf + n, (int)want, in);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *got = n;
    return buf;
}

/*
 * libfcgi ends a connection with a lingering close: shutdown(), then poll()
 * and read() until the server hangs up, so that bytes still unread cannot
 * turn the close into a reset that loses the answer. That wait costs each
 * request a sleep and a wake-up, a third of slhook.fcgi's context switches.
 * When the request's stdin has been read to its end record nothing is left
 * unread, and a plain close() is as safe: FCGX_Detach() makes FCGX_Free()
 * skip the lingering (it resets the flag when it closes). A kept connection
 * is not closed at all, so it is left alone.
 */
static void
close_plainly_at_eof(FCGX_Request *fr)
{
    if (!fr->keepConnection && FCGX_GetChar(fr->in) == EOF &&
        FCGX_GetError(fr->in) == 0)
        FCGX_Detach(fr);
}

static void
serve(struct slh_workers *ws, FCGX_Request *fr)
{
    const struct slh_config *cfg = ws->cfg;
    struct slh_request req = {0};
    struct slh_response resp;
    struct slh_batch batch = {0};
    struct slh_error err = {0};
    struct timespec t0;
    char out[SLH_RESPONSE_BODY + 256], line[1024];
    char *body = NULL;
    size_t body_len = 0, n, n_new = 0;
    bool is_exact = true;
    enum slh_err rc;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    req.method = FCGX_GetParam("REQUEST_METHOD", fr->envp);
    req.content_type = FCGX_GetParam("CONTENT_TYPE", fr->envp);
    req.content_length = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
    req.remote_addr = FCGX_GetParam("REMOTE_ADDR", fr->envp);

    if (!slh_handler_head(cfg, &req, &body_len, &resp)) {
        body = read_body(fr->in, body_len, &req.body_len);
        req.body = body;
        if (body == NULL) {
            slh_error_set(&err, SLH_ENOMEM, "out of memory for the body");
            slh_handler_stored(cfg, &batch, SLH_ENOMEM, 0, &resp);
        } else if (!slh_handler_body(cfg, &req, &batch, &resp)) {
            rc = slh_commit_put(ws->commit, &batch, &n_new, &is_exact, &err);
            slh_handler_stored(cfg, &batch, rc, n_new, &resp);
        }
    }
    n = slh_response_format(&resp, out, sizeof(out));
    FCGX_PutStr(out, (int)n, fr->out);
    if (body != NULL && req.body_len == body_len)
        close_plainly_at_eof(fr);

    /* The line borrows the request's params, which finishing frees; the
     * request is finished before logging so the answer goes out first. */
    slh_response_logline(&req, &resp, slh_elapsed_ms(&t0), line, sizeof(line));
    FCGX_Finish_r(fr);
    fprintf(stderr, "%s%s%s%s\n", line,
            is_exact ? "" : " (new: counted per shared commit)",
            err.text[0] != '\0' ? ": " : "", err.text);
    slh_batch_free(&batch);
    free(body);
}

/* Errors of accept() that pass: out of descriptors or memory for now. */
static bool
is_transient(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM ||
           e == EINTR;
}

/* Waits for the next request; false when the thread is to end. */
static bool
next_request(struct worker *w, FCGX_Request *fr)
{
    struct slh_workers *ws = w->ws;
    sigset_t wake;
    bool is_stopping;
    int rc;

    sigemptyset(&wake);
    sigaddset(&wake, SLH_WAKE_SIGNAL);
    for (;;) {
        pthread_mutex_lock(&ws->mu);
        is_stopping = ws->is_stopping;
        w->is_waiting = !is_stopping;
        pthread_mutex_unlock(&ws->mu);
        if (is_stopping)
            return false;

        /* No accept mutex, unlike libfcgi's threaded example: Linux wakes
         * one thread in accept() per connection, and a thread holding the
         * mutex while it waits on a kept-alive connection would stall the
         * rest. */
        pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
        rc = FCGX_Accept_r(fr);
        pthread_sigmask(SIG_BLOCK, &wake, NULL);

        pthread_mutex_lock(&ws->mu);
        w->is_waiting = false;
        is_stopping = ws->is_stopping;
        pthread_mutex_unlock(&ws->mu);
        if (rc >= 0)
            return true;
        if (is_stopping)
            return false;
        if (!is_transient(-rc)) {
            fprintf(stderr, "slhook.fcgi: accept: %s\n", strerror(-rc));
            pthread_mutex_lock(&ws->mu);
            ws->is_failed = true;
            pthread_mutex_unlock(&ws->mu);
            pthread_kill(ws->notify, SIGTERM);
            return false;
        }
        fprintf(stderr, "slhook.fcgi: accept: %s; retrying\n", strerror(-rc));
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct slh_workers *ws = w->ws;
    FCGX_Request fr;

    FCGX_InitRequest(&fr, ws->listen_fd, 0);
    while (next_request(w, &fr))
        serve(ws, &fr);
    FCGX_Free(&fr, 1);

    pthread_mutex_lock(&ws->mu);
    ws->n_running--;
    pthread_cond_broadcast(&ws->changed);
    pthread_mutex_unlock(&ws->mu);
    return NULL;
}

enum slh_err
slh_workers_start(struct slh_workers **out, const struct slh_config *cfg,
                  struct slh_commit *commit, int listen_fd, size_t n,
                  pthread_t notify, struct slh_error *err)
{
    struct sigaction sa = {.sa_handler = on_wake};
    struct slh_workers *ws;
    int e;

    *out = NULL;
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL || (ws->workers = calloc(n, sizeof(*ws->workers))) == NULL) {
        free(ws);
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    }
    ws->cfg = cfg;
    ws->commit = commit;
    ws->listen_fd = listen_fd;
    ws->notify = notify;
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->changed, NULL);
    /* No SA_RESTART: the point is that accept() and read() return. */
    sigemptyset(&sa.sa_mask);
    sigaction(SLH_WAKE_SIGNAL, &sa, NULL);

    for (size_t i = 0; i < n; i++) {
        struct worker *w = &ws->workers[i];
        w->ws = ws;
        pthread_mutex_lock(&ws->mu);
        ws->n_running++;
        pthread_mutex_unlock(&ws->mu);
        e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e != 0) {
            pthread_mutex_lock(&ws->mu);
            ws->n_running--;
            pthread_mutex_unlock(&ws->mu);
            slh_workers_stop(ws);
            return slh_error_set(err, SLH_ENOMEM,
                                 "cannot start request thread %zu: %s", i + 1,
                                 strerror(e));
        }
        ws->n_workers++;
    }
    *out = ws;
    return SLH_OK;
}

/* *ts = now + ms, on the clock pthread_cond_timedwait() uses. */
static void
deadline(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += ms % 1000 * 1000 * 1000;
    if (ts->tv_nsec >= 1000 * 1000 * 1000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000 * 1000 * 1000;
    }
}

/*
 * A thread between requests is interrupted with SLH_WAKE_SIGNAL, again
 * every 50 ms, since a signal that lands just before it blocks is lost;
 * libfcgi's shutdown flag then makes its accept give up instead of
 * retrying, and a kept-alive connection is closed rather than read again.
 */
bool
slh_workers_stop(struct slh_workers *ws)
{
    struct timespec until;
    bool is_failed;

    if (ws == NULL)
        return true;
    FCGX_ShutdownPending();
    pthread_mutex_lock(&ws->mu);
    ws->is_stopping = true;
    while (ws->n_running > 0) {
        for (size_t i = 0; i < ws->n_workers; i++)
            if (ws->workers[i].is_waiting)
                pthread_kill(ws->workers[i].thread, SLH_WAKE_SIGNAL);
        deadline(&until, 50);
        pthread_cond_timedwait(&ws->changed, &ws->mu, &until);
    }
    is_failed = ws->is_failed;
    pthread_mutex_unlock(&ws->mu);

    for (size_t i = 0; i < ws->n_workers; i++)
        pthread_join(ws->workers[i].thread, NULL);
    pthread_cond_destroy(&ws->changed);
    pthread_mutex_destroy(&ws->mu);
    free(ws->workers);
    free(ws);
    return !is_failed;
}

#include "workers.h"

#include <errno.h>
#include <limits.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "handler.h"

/* 3 rather than 4: after 200,000 requests at 64 connections, 14.5-14.6 MiB
 * against 14.8 (15.8-15.9 against 16.2-16.4 before let_go()), the same
 * requests/s (bench/ab -c 64, three rounds each). */
#define REQUESTS_PER_THREAD 3

/* Request threads waiting in accept() at once; the others park until both
 * have taken a connection (next_request()). */
#define ACCEPTING_MAX 2

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
    pthread_mutex_t mu;      /* guards the fields below */
    pthread_cond_t changed;  /* a thread ended */
    pthread_cond_t unparked; /* no thread is left in accept() */
    size_t n_accepting;      /* threads in accept() for a new connection */
    bool is_stopping;
    bool is_failed;
    size_t n_running;
    struct worker *workers;
    size_t n_workers;
    /* Requests that may exist at once, each with its buffers (libfcgi's
     * alone are 16 KiB): without a bound, every connection the server
     * opens could have one waiting on the committer. REQUESTS_PER_THREAD
     * per request thread; the server's other connections wait to be
     * accepted. */
    sem_t slots;
    size_t n_slots;
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
 * One request, from accept to its log line. It is handed to the committer
 * with its job when its events are to be stored, and then answered, closed,
 * logged and freed on the committer's thread (committed()), so that the
 * request thread goes back to accepting instead of sleeping until the
 * commit is done. A request on a connection the server keeps open is the
 * exception: its thread waits (is_waited) and answers it itself, since the
 * connection's next request must be read by a request thread.
 */
struct request {
    struct slh_commit_job job; /* first: committed() gets the job */
    FCGX_Request fr;
    bool is_let_go;  /* libfcgi's part freed (let_go()), and taken from it: */
    int fd;          /* the connection, which answer_on_fd() closes, */
    int request_id;  /* and the FastCGI request id to answer */
    char remote[64]; /* REMOTE_ADDR for the log line, once params are gone */
    const struct slh_config *cfg;
    sem_t *slot; /* given back when freed; outlives r (see stop) */
    struct slh_request req;
    struct slh_response resp;
    struct slh_batch batch;
    struct slh_error err;
    struct timespec t0;
    char *body;
    bool is_waited;
    sem_t committed; /* posted for a waited request */
};

/* A request for the next accept, once a slot is free. */
static struct request *
request_new(struct slh_workers *ws)
{
    struct request *r;

    while (sem_wait(&ws->slots) != 0 && errno == EINTR)
        ;
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        sem_post(&ws->slots);
        return NULL;
    }
    r->cfg = ws->cfg;
    r->slot = &ws->slots;
    sem_init(&r->committed, 0, 0);
    FCGX_InitRequest(&r->fr, ws->listen_fd, 0);
    return r;
}

static void
request_free(struct request *r)
{
    if (r == NULL)
        return;
    if (!r->is_let_go)
        FCGX_Free(&r->fr, 1);
    sem_destroy(&r->committed);
    sem_post(r->slot);
    free(r);
}

/* Forgets one request's data, keeping r (and a kept connection) for the
 * next. */
static void
request_reset(struct request *r)
{
    slh_batch_free(&r->batch);
    free(r->body);
    r->body = NULL;
    memset(&r->req, 0, sizeof(r->req));
    memset(&r->resp, 0, sizeof(r->resp));
    slh_error_clear(&r->err);
    r->job.n_new = 0;
    r->job.is_exact = true;
}

/*
 * libfcgi ends a connection with a lingering close: shutdown(), then poll()
 * and read() until the server hangs up, so that bytes still unread cannot
 * turn the close into a reset that loses the answer. That wait costs each
 * request a sleep and a wake-up, a third of slhook.fcgi's context switches.
 * When the request's stdin has been read to its end record nothing is left
 * unread, and a plain close() is as safe. True for such a request on a
 * connection that is closed after it (a kept connection is not closed).
 */
static bool
ends_here(FCGX_Request *fr)
{
    return !fr->keepConnection && FCGX_GetChar(fr->in) == EOF &&
           FCGX_GetError(fr->in) == 0;
}

/*
 * Lets libfcgi's part of a request that ends here (ends_here()) go before
 * the request waits for its commit: its streams' buffers (16 KiB) and params
 * are freed on the request thread that allocated them, and the committer
 * answers on the bare connection (answer_on_fd()) and closes it plainly.
 * Every request waiting on the committer used to hold them: with 48
 * waiting, 0.8 MiB. libfcgi has no call that hands a connection over; its
 * descriptor is taken from the request and the request's field cleared, so
 * that libfcgi never closes it.
 */
static void
let_go(struct request *r)
{
    FCGX_Request *fr = &r->fr;

    snprintf(r->remote, sizeof(r->remote), "%s",
             r->req.remote_addr != NULL ? r->req.remote_addr : "-");
    r->req.remote_addr = r->remote;
    r->req.method = r->req.content_type = r->req.content_length = NULL;
    r->fd = fr->ipcFd;
    r->request_id = fr->requestId;
    fr->ipcFd = -1;
    FCGX_Free(fr, 0);
    r->is_let_go = true;
}

/* One FastCGI record header (fastcgi.h) into h. */
static void
record_header(unsigned char *h, int type, int request_id, size_t len)
{
    FCGI_Header hd = {
        .version = FCGI_VERSION_1,
        .type = (unsigned char)type,
        .requestIdB1 = (unsigned char)(request_id >> 8),
        .requestIdB0 = (unsigned char)request_id,
        .contentLengthB1 = (unsigned char)(len >> 8),
        .contentLengthB0 = (unsigned char)len,
    };
    memcpy(h, &hd, FCGI_HEADER_LEN);
}

/*
 * What FCGX_Finish_r() sends, in one write: the answer as FCGI_STDOUT, the
 * empty record that ends stdout, FCGI_END_REQUEST (status 0, complete).
 * The connection is then closed. A write that fails (the server went away)
 * leaves nothing to do but close: the events are stored either way, and the
 * sender will post them again and get a 200 for a duplicate.
 */
static void
answer_on_fd(struct request *r, const char *out, size_t n)
{
    unsigned char buf[3 * FCGI_HEADER_LEN + SLH_RESPONSE_BODY + 256 +
                      sizeof(FCGI_EndRequestBody)];
    FCGI_EndRequestBody end = {.protocolStatus = FCGI_REQUEST_COMPLETE};
    size_t len = 0, done = 0;

    if (n > sizeof(buf) - 3 * FCGI_HEADER_LEN - sizeof(end))
        n = sizeof(buf) - 3 * FCGI_HEADER_LEN - sizeof(end);
    record_header(buf, FCGI_STDOUT, r->request_id, n);
    memcpy(buf + FCGI_HEADER_LEN, out, n);
    len = FCGI_HEADER_LEN + n;
    record_header(buf + len, FCGI_STDOUT, r->request_id, 0);
    len += FCGI_HEADER_LEN;
    record_header(buf + len, FCGI_END_REQUEST, r->request_id, sizeof(end));
    len += FCGI_HEADER_LEN;
    memcpy(buf + len, &end, sizeof(end));
    len += sizeof(end);
    while (done < len) {
        ssize_t w = write(r->fd, buf + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    close(r->fd);
}

/* Writes the answer and ends the request, then logs it. The line borrows
 * the request's params, which finishing frees; it is made first, and the
 * request finished before logging, so that the answer goes out first. */
static void
answer(struct request *r)
{
    char out[SLH_RESPONSE_BODY + 256], line[1024];
    size_t n = slh_response_format(&r->resp, out, sizeof(out));

    slh_response_logline(&r->req, &r->resp, slh_elapsed_ms(&r->t0), line,
                         sizeof(line));
    if (r->is_let_go) {
        answer_on_fd(r, out, n);
    } else {
        FCGX_PutStr(out, (int)n, r->fr.out);
        FCGX_Finish_r(&r->fr);
    }
    fprintf(stderr, "%s%s%s%s\n", line,
            r->job.is_exact ? "" : " (new: counted per shared commit)",
            r->err.text[0] != '\0' ? ": " : "", r->err.text);
}

/* The committer's callback: the events are stored, or failed to be. */
static void
committed(struct slh_commit_job *job)
{
    struct request *r = (struct request *)job;

    if (job->rc != SLH_OK)
        slh_error_set(&r->err, job->rc, "%s", job->err.text);
    slh_handler_stored(r->cfg, &r->batch, job->rc, job->n_new, &r->resp);
    if (r->is_waited) {
        sem_post(&r->committed);
        return;
    }
    answer(r);
    request_reset(r);
    request_free(r);
}

/* Handles the request r has accepted. Returns true when r went to the
 * committer, which answers and frees it; false when it was answered here
 * and r is the caller's again. */
static bool
serve(struct slh_workers *ws, struct request *r)
{
    const struct slh_config *cfg = ws->cfg;
    FCGX_Request *fr = &r->fr;
    size_t body_len = 0;

    request_reset(r);
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    r->req.method = FCGX_GetParam("REQUEST_METHOD", fr->envp);
    r->req.content_type = FCGX_GetParam("CONTENT_TYPE", fr->envp);
    r->req.content_length = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
    r->req.remote_addr = FCGX_GetParam("REMOTE_ADDR", fr->envp);

    if (!slh_handler_head(cfg, &r->req, &body_len, &r->resp)) {
        r->body = read_body(fr->in, body_len, &r->req.body_len);
        r->req.body = r->body;
        if (r->body == NULL) {
            slh_error_set(&r->err, SLH_ENOMEM, "out of memory for the body");
            slh_handler_stored(cfg, &r->batch, SLH_ENOMEM, 0, &r->resp);
        } else {
            bool is_last = r->req.body_len == body_len && ends_here(fr);

            if (!slh_handler_body(cfg, &r->req, &r->batch, &r->resp)) {
                bool is_waited = fr->keepConnection;

                if (is_last)
                    let_go(r);
                r->job.batch = &r->batch;
                r->job.done = committed;
                r->is_waited = is_waited;
                slh_commit_submit(ws->commit, &r->job);
                /* Not r->is_waited: once submitted, an r not waited for is
                 * the committer's, which may have freed it already. */
                if (!is_waited)
                    return true;
                while (sem_wait(&r->committed) != 0 && errno == EINTR)
                    ;
            } else if (is_last) {
                /* FCGX_Free() then closes plainly (it resets the flag). */
                FCGX_Detach(fr);
            }
        }
    }
    answer(r);
    request_reset(r);
    return false;
}

/* Errors of accept() that pass: out of descriptors or memory for now. */
static bool
is_transient(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM ||
           e == EINTR;
}

static bool
is_stopping(struct slh_workers *ws)
{
    bool is;

    pthread_mutex_lock(&ws->mu);
    is = ws->is_stopping;
    pthread_mutex_unlock(&ws->mu);
    return is;
}

/*
 * Waits for the next request; false when the thread is to end.
 *
 * At most ACCEPTING_MAX threads wait in accept() for a new connection; the
 * rest park, and the thread that leaves none behind in accept() unparks
 * one. With all 16 in accept(), every connection woke a sleeping thread
 * (Linux wakes the longest waiting): 2.2 context switches per request at 16
 * connections, 1.75 with two, and a thread back from a request usually
 * finds the next connection already queued. Threads that read a kept-alive
 * connection's next request do not count, so however many kept connections
 * hold threads, one is in accept() while any is parked.
 */
static bool
next_request(struct worker *w, FCGX_Request *fr)
{
    struct slh_workers *ws = w->ws;
    bool is_new = fr->ipcFd < 0; /* not a kept connection's next request */
    sigset_t wake;
    bool is_stopping;
    int rc;

    sigemptyset(&wake);
    sigaddset(&wake, SLH_WAKE_SIGNAL);
    for (;;) {
        pthread_mutex_lock(&ws->mu);
        while (is_new && !ws->is_stopping && ws->n_accepting >= ACCEPTING_MAX)
            pthread_cond_wait(&ws->unparked, &ws->mu);
        is_stopping = ws->is_stopping;
        ws->n_accepting += is_new && !is_stopping;
        w->is_waiting = !is_stopping;
        pthread_mutex_unlock(&ws->mu);
        if (is_stopping)
            return false;

        pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
        rc = FCGX_Accept_r(fr);
        pthread_sigmask(SIG_BLOCK, &wake, NULL);

        pthread_mutex_lock(&ws->mu);
        ws->n_accepting -= is_new;
        if (ws->n_accepting == 0)
            pthread_cond_signal(&ws->unparked);
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

/* A request of its own for each accept: the one before may still be with
 * the committer. Out of memory, it waits a moment and tries again. */
static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct slh_workers *ws = w->ws;
    struct request *r = NULL;

    for (;;) {
        if (r == NULL && (r = request_new(ws)) == NULL) {
            if (is_stopping(ws))
                break;
            fprintf(stderr, "slhook.fcgi: out of memory; retrying\n");
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
            continue;
        }
        if (!next_request(w, &r->fr))
            break;
        if (serve(ws, r))
            r = NULL;
    }
    request_free(r);

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
    pthread_cond_init(&ws->unparked, NULL);
    ws->n_slots = REQUESTS_PER_THREAD * n;
    sem_init(&ws->slots, 0, (unsigned)ws->n_slots);
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
    /* is_stopping before libfcgi's flag: an accept that gives up because of
     * the flag must find the stop already known, or it reads as an accept
     * failure (-9999, errno 0) and the process exits 1. */
    pthread_mutex_lock(&ws->mu);
    ws->is_stopping = true;
    FCGX_ShutdownPending();
    pthread_cond_broadcast(&ws->unparked);
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
    /* Every slot back: the committer has answered and freed every request
     * handed to it, and none will touch ws again. */
    for (size_t i = 0; i < ws->n_slots; i++)
        while (sem_wait(&ws->slots) != 0 && errno == EINTR)
            ;
    sem_destroy(&ws->slots);
    pthread_cond_destroy(&ws->changed);
    pthread_cond_destroy(&ws->unparked);
    pthread_mutex_destroy(&ws->mu);
    free(ws->workers);
    free(ws);
    return !is_failed;
}

/* accept4(): a connection non-blocking from the start, one call fewer. */
#define _GNU_SOURCE
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "handler.h"
#include "metrics.h"
#include "proto.h"
#include "thread.h"
#include "web.h"

/*
 * Why it is built this way.
 *
 * libfcgi's FCGX_Accept_r() reads a request's params and body with
 * blocking reads: two idle connections held both accepting threads, and
 * a slow body its thread, for as long as the client liked. libfcgi has no
 * non-blocking interface, so requests are read here: every connection is
 * non-blocking, and its bytes go through the record parser (proto.c) as
 * they come. No thread waits on a client: reads never block, an answer's
 * write waits at most WRITE_WAIT_MS, and a request not complete by its
 * deadline is expired by the sweep (a timer event every SWEEP_MS).
 *
 * The request threads share one epoll set (leader/follower: at most
 * POLLING_MAX wait in it, the rest park) rather than a reader thread that
 * hands requests over: the thread that completes a request handles it, so
 * a request costs no extra context switch. Every descriptor is armed
 * one-shot, so that one thread at a time has a connection; its key is its
 * descriptor and a generation, and claim() takes it only if the table
 * still holds that generation armed: an event for a connection the sweep
 * or the stop closed meanwhile (its descriptor perhaps reused) is dropped.
 *
 * A request whose connection ends with it goes to the committer whole,
 * connection and all, out of the table; the committer answers on it and
 * closes it. A kept connection's thread waits for the commit instead and
 * answers itself, then goes on with the connection's next request.
 */

/* Requests handed to the committer (or waiting for it) per request thread:
 * each holds its body and parsed events. 3 rather than 4: less memory held,
 * as many requests/s (BENCHMARKS.md). */
#define REQUESTS_PER_THREAD 3

/* A kept connection may sit idle between requests this long (nginx's
 * upstream keepalive_timeout is 60 s by default). */
#define KEEP_IDLE_MS (300 * 1000)

/* How long a request thread waits for a full socket buffer to take its
 * answer; the committer never waits. The answer is a few hundred bytes,
 * so only a client that stopped reading fills the buffer. */
#define WRITE_WAIT_MS 2000

/* Bytes one connection may be read in a row before the others get a turn. */
#define READ_TURN (256 * 1024)
#define READ_BUF (16 * 1024)

/* Request threads waiting in epoll_wait() at once; the others park until
 * none is left waiting (wait_event()). */
#define POLLING_MAX 2

/* How often expired connections are looked for. */
#define SWEEP_MS 500

/* A stop lets requests already begun (and connections just accepted, whose
 * request is on its way) arrive for this long, at most read_timeout: a web
 * server sends a request within milliseconds, a reload's new process then
 * has lost no connection, and a sender trickling on costs the stop no more
 * than this. */
#define STOP_GRACE_MS 1000

/* A body this large marks a request large: when the last large one is
 * freed, the allocator's free memory is given back (malloc_trim()). */
#define LARGE_BODY (64 * 1024)

/* epoll keys: a connection's is its descriptor and its generation, so that
 * an event for a connection closed meanwhile (its descriptor maybe reused)
 * is recognised as stale; generations start at 1, leaving these. */
#define KEY_LISTEN 1
#define KEY_TIMER 2
#define KEY_STOP 3

struct request;

/*
 * A connection: in the epoll set and nobody's (is_armed), or its one
 * thread's (which took it from the set, or accepted it), or, once its last
 * request went to the committer, the committer's (and out of the table).
 * The table lock guards is_armed and the table; arming happens under it,
 * so that the sweeper never closes a connection a thread is arming.
 */
struct conn {
    int fd;
    uint32_t gen;
    bool is_armed;
    bool is_in_epoll;
    bool is_new;         /* no request yet: its deadline runs from accept */
    int64_t deadline_ms; /* monotonic */
    struct fc_conn p;
    unsigned char *pending; /* bytes read past a complete request */
    size_t pending_len;
    struct request *rq; /* from its params (HEAD) to its answer */
    struct conn *next;  /* the sweeper's list */
};

struct fc_workers {
    const struct slh_config *cfg;
    struct slh_commit *commit;
    int listen_fd, ep, timer_fd, stop_fd;
    pthread_t notify;
    pthread_t *threads;
    size_t n_threads;
    atomic_bool is_draining; /* stopping: no new connection, none kept */
    atomic_bool is_stopping; /* the threads are to end */
    atomic_bool is_failed;

    pthread_mutex_t wait_mu; /* guards n_polling */
    pthread_cond_t unparked; /* no thread is left in epoll_wait() */
    size_t n_polling;

    pthread_mutex_t mu; /* the table and every conn's is_armed */
    struct conn **table;
    size_t table_cap;
    uint32_t gen;

    /* Requests with the committer, or waiting for it, at once. */
    sem_t slots;
    size_t n_slots;
    /* Bytes of params and bodies held, of all connections and requests
     * together: at most n_slots bodies of max_body, what the slots alone
     * bounded when a request thread read one request at a time. A body
     * over it is dropped and answered 503 (the sender retries). */
    atomic_long held;
    long held_max;
    atomic_long n_large;
    atomic_bool is_trim_due;
};

/*
 * One request, from its params to its log line. One whose events are to be
 * stored is handed to the committer with its job; when its connection ends
 * with it, the committer answers it, closes the connection and frees both
 * (committed()), so that the request thread goes back to the epoll set
 * instead of sleeping until the commit is done. On a kept connection its
 * thread waits (is_waited) and answers itself, since the connection's next
 * request must be read by a request thread.
 */
struct request {
    struct slh_commit_job job; /* first: committed() gets the job */
    struct fc_workers *ws;
    struct conn *c;
    struct slh_request req;
    struct slh_response resp;
    struct slh_batch batch;
    struct slh_error err;
    struct timespec t0;
    bool is_answered; /* resp decided by the head checks */
    bool is_web;      /* for web.h (health, metrics, the page), not the
                         webhook */
    bool is_large;
    bool has_slot;
    bool is_waited;
    sem_t committed; /* posted for a waited request */
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
charge(void *ctx, long delta)
{
    struct fc_workers *ws = ctx;

    if (atomic_fetch_add(&ws->held, delta) + delta > ws->held_max &&
        delta > 0) {
        atomic_fetch_sub(&ws->held, delta);
        return false;
    }
    return true;
}

static void
request_free(struct fc_workers *ws, struct request *rq)
{
    if (rq == NULL)
        return;
    bool has_slot = rq->has_slot;

    slh_batch_free(&rq->batch);
    sem_destroy(&rq->committed);
    /* glibc keeps what a large request's parse freed (hundreds of MiB for
     * a few hostile bodies) in its arenas for the next; it is given back
     * once no large request is left to reuse it, by the next sweep:
     * malloc_trim() takes tens of ms then (BENCHMARKS.md), too long for the
     * committer, which may be the one freeing. */
    if (rq->is_large && atomic_fetch_sub(&ws->n_large, 1) == 1)
        atomic_store(&ws->is_trim_due, true);
    free(rq);
    /* Last: once every slot is back, fc_workers_stop() frees ws. */
    if (has_slot)
        sem_post(&ws->slots);
}

/* Frees c and what it holds; its descriptor is closed and out of the
 * table. */
static void
conn_free(struct fc_workers *ws, struct conn *c)
{
    struct request *rq = c->rq;

    fc_conn_free(&c->p);
    free(c->pending);
    free(c);
    request_free(ws, rq);
}

static void
table_remove(struct fc_workers *ws, struct conn *c)
{
    pthread_mutex_lock(&ws->mu);
    if ((size_t)c->fd < ws->table_cap && ws->table[c->fd] == c)
        ws->table[c->fd] = NULL;
    pthread_mutex_unlock(&ws->mu);
}

/* Closes c, owned by the caller, and frees it. */
static void
conn_close(struct fc_workers *ws, struct conn *c)
{
    table_remove(ws, c);
    close(c->fd);
    conn_free(ws, c);
}

static uint64_t
key_of(const struct conn *c)
{
    return (uint64_t)c->gen << 32 | (uint32_t)c->fd;
}

/* Gives c back to the epoll set, to wait for its next bytes. */
static void
arm(struct fc_workers *ws, struct conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT,
                             .data.u64 = key_of(c)};
    int rc;

    if (atomic_load(&ws->is_stopping)) {
        conn_close(ws, c);
        return;
    }
    pthread_mutex_lock(&ws->mu);
    c->is_armed = true;
    rc = epoll_ctl(ws->ep, c->is_in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
                   c->fd, &ev);
    c->is_in_epoll = true;
    if (rc != 0)
        c->is_armed = false;
    pthread_mutex_unlock(&ws->mu);
    if (rc != 0) {
        fprintf(stderr, "slhook.fcgi: epoll: %s; connection closed\n",
                strerror(errno));
        conn_close(ws, c);
    }
}

/* The connection an event is for, now the caller's; NULL when stale. */
static struct conn *
claim(struct fc_workers *ws, uint64_t key)
{
    size_t fd = (uint32_t)key;
    struct conn *c = NULL;

    pthread_mutex_lock(&ws->mu);
    if (fd < ws->table_cap && ws->table[fd] != NULL &&
        key_of(ws->table[fd]) == key && ws->table[fd]->is_armed) {
        c = ws->table[fd];
        c->is_armed = false;
    }
    pthread_mutex_unlock(&ws->mu);
    return c;
}

/*
 * Writes buf whole: waits at most wait_ms in all for room in a full socket
 * buffer. False when the client is gone or did not take it in time.
 */
static bool
send_all(int fd, const unsigned char *buf, size_t len, int wait_ms)
{
    int64_t until = now_ms() + wait_ms;

    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        int64_t left;

        if (w > 0) {
            buf += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return false;
        left = until - now_ms();
        if (left <= 0)
            return false;
        poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1, (int)left);
    }
    return true;
}

/* Writes the answer, then logs it (the answer goes out first). */
static void
answer(struct request *rq, int wait_ms)
{
    char out[SLH_RESPONSE_BODY + 256], line[1024];
    unsigned char buf[FC_ANSWER_EXTRA + sizeof(out)];
    size_t n = slh_response_format(&rq->resp, out, sizeof(out));

    slh_metrics_request(rq->resp.status);
    slh_response_logline(&rq->req, &rq->resp, slh_elapsed_ms(&rq->t0), line,
                         sizeof(line));
    n = fc_answer(buf, rq->c->p.id, out, n);
    /* A write that fails (the server went away) leaves nothing to do but
     * close: stored events stay stored, and the sender will post them again
     * and get a 200 for a duplicate. */
    send_all(rq->c->fd, buf, n, wait_ms);
    fprintf(stderr, "%s%s%s%s\n", line,
            rq->job.is_exact ? "" : " (new: counted per shared commit)",
            rq->err.text[0] != '\0' ? ": " : "", rq->err.text);
}

/* A web.h request (health, metrics, the operator's page): answered here,
 * on the request thread; its body is a small form at most. */
static void
answer_web(struct fc_workers *ws, struct request *rq)
{
    const struct fc_conn *p = &rq->c->p;
    struct slh_web_env env = {.cfg = ws->cfg, .has_process_metrics = true};
    struct slh_web_request req = {
        .method = rq->req.method,
        .path = fc_param(p, "PATH_INFO"),
        .script_name = fc_param(p, "SCRIPT_NAME"),
        .query = fc_param(p, "QUERY_STRING"),
        .remote_addr = rq->req.remote_addr,
        .cookie = fc_param(p, "HTTP_COOKIE"),
        .authorization = fc_param(p, "HTTP_AUTHORIZATION"),
        .accept_encoding = fc_param(p, "HTTP_ACCEPT_ENCODING"),
        .content_type = rq->req.content_type,
        .https = fc_param(p, "HTTPS"),
        .body = p->body,
        .body_len = p->body_len,
    };
    struct slh_web_answer ans;
    char head[2048], line[1024];
    unsigned char *buf;
    size_t n, len;

    slh_web_handle(&env, &req, &ans);
    slh_metrics_request(ans.status);
    n = slh_web_format_head(&ans, head, sizeof(head));
    len = n + (ans.is_head ? 0 : ans.len);
    buf = malloc(FC_ANSWER_SIZE(len) + len);
    if (buf != NULL) {
        /* The text first (head and body together), then its records. */
        char *text = (char *)buf + FC_ANSWER_SIZE(len);
        memcpy(text, head, n);
        if (!ans.is_head)
            memcpy(text + n, ans.body, ans.len);
        send_all(rq->c->fd, buf, fc_answer(buf, p->id, text, len),
                 WRITE_WAIT_MS);
        free(buf);
    }
    slh_web_logline(&req, &ans, slh_elapsed_ms(&rq->t0), line, sizeof(line));
    if (buf == NULL)
        fprintf(stderr, "slhook: %d %s: out of memory for the answer\n",
                ans.status, req.path != NULL ? req.path : "/");
    else if (line[0] != '\0')
        fprintf(stderr, "%s\n", line);
    slh_web_answer_free(&ans);
}

/* The committer's callback: the events are stored, or failed to be. */
static void
committed(struct slh_commit_job *job)
{
    struct request *rq = (struct request *)job;

    if (job->rc != SLH_OK)
        slh_error_set(&rq->err, job->rc, "%s", job->err.text);
    slh_handler_stored(rq->ws->cfg, &rq->batch, job->rc, job->n_new, &rq->resp);
    if (rq->is_waited) {
        sem_post(&rq->committed);
        return;
    }
    /* The connection ends here and is out of the table: the committer's.
     * Its whole request was read, so a plain close loses nothing. */
    answer(rq, 0);
    close(rq->c->fd);
    conn_free(rq->ws, rq->c);
}

/* The params are complete: the checks that need only them. False when out
 * of memory. */
static bool
head(struct fc_workers *ws, struct conn *c)
{
    struct request *rq = calloc(1, sizeof(*rq));
    size_t body_len = 0;

    if (rq == NULL)
        return false;
    rq->ws = ws;
    rq->c = c;
    rq->job.is_exact = true;
    sem_init(&rq->committed, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &rq->t0);
    rq->req.method = fc_param(&c->p, "REQUEST_METHOD");
    rq->req.content_type = fc_param(&c->p, "CONTENT_TYPE");
    rq->req.content_length = fc_param(&c->p, "CONTENT_LENGTH");
    rq->req.remote_addr = fc_param(&c->p, "REMOTE_ADDR");
    c->rq = rq;
    if (slh_web_wants(rq->req.method, fc_param(&c->p, "PATH_INFO"))) {
        /* A form's bytes are kept; a longer body is dropped unread. */
        body_len = slh_request_length(rq->req.content_length);
        rq->is_web = true;
        c->p.body_want = body_len <= SLH_WEB_MAX_FORM ? body_len : 0;
        return true;
    }
    rq->is_answered = slh_handler_head(ws->cfg, &rq->req, &body_len, &rq->resp);
    /* An answered request's body is read to its end and dropped, so that
     * the answer is not lost to a reset, and a kept connection goes on. */
    c->p.body_want = rq->is_answered ? 0 : body_len;
    if (body_len >= LARGE_BODY && !rq->is_answered) {
        rq->is_large = true;
        atomic_fetch_add(&ws->n_large, 1);
    }
    return true;
}

/* Forgets c's request once answered; a kept connection then waits for its
 * next. Returns false when c is closed. */
static bool
finish(struct fc_workers *ws, struct conn *c)
{
    if (!c->p.keep_conn || atomic_load(&ws->is_draining)) {
        conn_close(ws, c);
        return false;
    }
    fc_next(&c->p);
    request_free(ws, c->rq);
    c->rq = NULL;
    c->is_new = false;
    c->deadline_ms = now_ms() + (c->p.is_started || c->pending_len > 0
                                     ? ws->cfg->read_timeout * 1000
                                     : KEEP_IDLE_MS);
    return true;
}

/*
 * Serves c's complete request. Returns false when c is no longer the
 * caller's (closed, or handed to the committer with its request); true
 * when it is a kept connection waiting for its next request.
 */
static bool
serve(struct fc_workers *ws, struct conn *c)
{
    struct request *rq = c->rq;

    if (rq->is_web) {
        answer_web(ws, rq);
        return finish(ws, c);
    }
    if (!rq->is_answered) {
        rq->req.body = c->p.body != NULL ? c->p.body : "";
        rq->req.body_len = c->p.body_len;
        if (c->p.is_busy) {
            slh_error_set(&rq->err, SLH_ENOMEM,
                          "request bodies over their memory bound");
            slh_handler_stored(ws->cfg, &rq->batch, SLH_ENOMEM, 0, &rq->resp);
        } else if (!slh_handler_body(ws->cfg, &rq->req, &rq->batch,
                                     &rq->resp)) {
            /* The committer, not a client, decides how long this waits. */
            while (sem_wait(&ws->slots) != 0 && errno == EINTR)
                ;
            rq->has_slot = true;
            rq->job.batch = &rq->batch;
            rq->job.done = committed;
            rq->is_waited = c->p.keep_conn;
            if (!rq->is_waited) {
                table_remove(ws, c);
                slh_commit_submit(ws->commit, &rq->job);
                return false;
            }
            slh_commit_submit(ws->commit, &rq->job);
            while (sem_wait(&rq->committed) != 0 && errno == EINTR)
                ;
        }
    }
    answer(rq, WRITE_WAIT_MS);
    return finish(ws, c);
}

/*
 * c's deadline passed before its request was complete. With its params in,
 * the request is answered: with the answer the head checks gave, else 400
 * (nothing is stored from a body not wholly received). Then closed.
 */
static void
expire(struct fc_workers *ws, struct conn *c)
{
    struct request *rq = c->rq;

    if (rq != NULL) {
        if (!rq->is_answered) {
            rq->resp.status = 400;
            snprintf(rq->resp.type, sizeof(rq->resp.type), "-");
            snprintf(rq->resp.body, sizeof(rq->resp.body),
                     "request not received within %ld s\n",
                     ws->cfg->read_timeout);
        }
        slh_error_set(
            &rq->err, SLH_EINVAL, "read_timeout: %zu of %s body bytes in %ld s",
            c->p.stdin_len,
            rq->req.content_length != NULL ? rq->req.content_length : "?",
            ws->cfg->read_timeout);
        answer(rq, WRITE_WAIT_MS);
    } else if (c->p.is_started || c->is_new) {
        fprintf(stderr,
                "slhook.fcgi: connection closed: no complete request "
                "within read_timeout (%ld s)\n",
                ws->cfg->read_timeout);
    }
    conn_close(ws, c);
}

/* Why a connection was closed before its request was complete. */
static void
drop(struct fc_workers *ws, struct conn *c, const char *why)
{
    if (c->rq != NULL || c->p.is_started)
        fprintf(stderr, "slhook.fcgi: connection closed: %s\n", why);
    conn_close(ws, c);
}

/* Feeds n bytes of buf to c. Returns false when c is no longer the
 * caller's; true when all were taken and c wants more. */
static bool
feed(struct fc_workers *ws, struct conn *c, const unsigned char *buf, size_t n)
{
    unsigned char out[FC_OUT_MIN];
    size_t at = 0;

    if (!c->p.is_started && !c->is_new)
        c->deadline_ms = now_ms() + ws->cfg->read_timeout * 1000;
    for (;;) {
        size_t used = 0, out_len = 0;
        enum fc_step step =
            fc_feed(&c->p, buf + at, n - at, &used, out, sizeof(out), &out_len);

        at += used;
        if (out_len > 0 && !send_all(c->fd, out, out_len, WRITE_WAIT_MS)) {
            drop(ws, c, "the server stopped reading");
            return false;
        }
        switch (step) {
        case FC_MORE:
            return true;
        case FC_FLUSH:
            break;
        case FC_HEAD:
            if (!head(ws, c)) {
                drop(ws, c, "out of memory");
                return false;
            }
            break;
        case FC_CLOSE:
            drop(ws, c, c->p.why);
            return false;
        case FC_READY:
            if (at < n) {
                /* A client that sends its next request before the answer
                 * to this one: rare, and kept until this one is served. */
                c->pending = malloc(n - at);
                if (c->pending == NULL) {
                    drop(ws, c, "out of memory");
                    return false;
                }
                memcpy(c->pending, buf + at, n - at);
                c->pending_len = n - at;
            }
            if (!serve(ws, c))
                return false;
            return true; /* handle() feeds what is pending */
        }
    }
}

/*
 * Reads c (the caller's) as far as it has sent, serving what completes,
 * and gives it back to the epoll set, or closes it, or hands it over.
 * Never waits for the client.
 */
static void
handle(struct fc_workers *ws, struct conn *c, unsigned char *buf)
{
    size_t turn = 0;

    for (;;) {
        ssize_t r;

        /* A kept connection idle past its deadline is the sweeper's to
         * close; one whose next request has begun is served. */
        if (now_ms() >= c->deadline_ms &&
            (c->p.is_started || c->is_new || c->pending_len > 0)) {
            expire(ws, c);
            return;
        }
        if (c->pending_len > 0) {
            unsigned char *p = c->pending;
            size_t n = c->pending_len;

            c->pending = NULL;
            c->pending_len = 0;
            if (!feed(ws, c, p, n)) {
                free(p);
                return;
            }
            free(p);
            continue;
        }
        if (turn >= READ_TURN) {
            arm(ws, c);
            return;
        }
        r = read(c->fd, buf, READ_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm(ws, c);
            return;
        }
        if (r <= 0) {
            drop(ws, c, r == 0 ? "closed by the server" : strerror(errno));
            return;
        }
        turn += (size_t)r;
        if (!feed(ws, c, buf, (size_t)r))
            return;
    }
}

/* Puts a new connection in the table, the caller's. */
static struct conn *
conn_new(struct fc_workers *ws, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->is_new = true;
    c->deadline_ms = now_ms() + ws->cfg->read_timeout * 1000;
    c->p.max_conns = c->p.max_reqs = (unsigned)ws->n_slots;
    c->p.charge = charge;
    c->p.charge_ctx = ws;
    pthread_mutex_lock(&ws->mu);
    if ((size_t)fd >= ws->table_cap) {
        size_t cap = ws->table_cap * 2;
        struct conn **t;

        while (cap <= (size_t)fd)
            cap *= 2;
        t = realloc(ws->table, cap * sizeof(*t));
        if (t == NULL) {
            pthread_mutex_unlock(&ws->mu);
            free(c);
            return NULL;
        }
        memset(t + ws->table_cap, 0, (cap - ws->table_cap) * sizeof(*t));
        ws->table = t;
        ws->table_cap = cap;
    }
    c->gen = ++ws->gen;
    if (c->gen == 0)
        c->gen = ++ws->gen;
    ws->table[fd] = c;
    pthread_mutex_unlock(&ws->mu);
    return c;
}

/* Errors of accept() that pass: out of descriptors or memory for now, or
 * a connection gone before it was taken. */
static bool
is_transient(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM ||
           e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM;
}

static void
rearm_key(struct fc_workers *ws, int fd, uint64_t key)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = key};

    epoll_ctl(ws->ep, EPOLL_CTL_MOD, fd, &ev);
}

/*
 * Takes one connection, lets another thread take the next, and reads the
 * new one at once: the web server sends its request right after
 * connecting, so it is usually there already.
 */
static void
accept_one(struct fc_workers *ws, unsigned char *buf)
{
    int fd = accept4(ws->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int e = errno;
    struct conn *c;

    if (fd < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
        rearm_key(ws, ws->listen_fd, KEY_LISTEN);
        return;
    }
    if (fd < 0) {
        if (!is_transient(e)) {
            fprintf(stderr, "slhook.fcgi: accept: %s\n", strerror(e));
            atomic_store(&ws->is_failed, true);
            pthread_kill(ws->notify, SIGTERM);
            return;
        }
        fprintf(stderr, "slhook.fcgi: accept: %s; retrying\n", strerror(e));
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        rearm_key(ws, ws->listen_fd, KEY_LISTEN);
        return;
    }
    rearm_key(ws, ws->listen_fd, KEY_LISTEN);
    c = conn_new(ws, fd);
    if (c == NULL) {
        fprintf(stderr, "slhook.fcgi: out of memory for a connection\n");
        close(fd);
        return;
    }
    handle(ws, c, buf);
}

/* Closes the connections whose deadline passed while they waited. */
static void
sweep(struct fc_workers *ws)
{
    int64_t now = now_ms();
    struct conn *expired = NULL, *next;
    uint64_t ticks;

    if (read(ws->timer_fd, &ticks, sizeof(ticks)) < 0) {
        /* Another tick's read got it: nothing is lost. */
    }
    pthread_mutex_lock(&ws->mu);
    for (size_t i = 0; i < ws->table_cap; i++) {
        struct conn *c = ws->table[i];

        if (c != NULL && c->is_armed && c->deadline_ms <= now) {
            c->is_armed = false;
            c->next = expired;
            expired = c;
        }
    }
    pthread_mutex_unlock(&ws->mu);
    rearm_key(ws, ws->timer_fd, KEY_TIMER);
    for (struct conn *c = expired; c != NULL; c = next) {
        next = c->next;
        expire(ws, c);
    }
    if (atomic_exchange(&ws->is_trim_due, false) &&
        atomic_load(&ws->n_large) == 0)
        malloc_trim(0);
}

/*
 * Waits for the next event. At most POLLING_MAX threads wait in
 * epoll_wait(); the rest park, and the thread that leaves none behind
 * unparks one. With all of them waiting, every connection woke a sleeping
 * thread (context switches per request: BENCHMARKS.md), where a thread back
 * from a request usually finds the next event already there.
 */
static int
wait_event(struct fc_workers *ws, struct epoll_event *ev)
{
    int n;

    pthread_mutex_lock(&ws->wait_mu);
    while (ws->n_polling >= POLLING_MAX && !atomic_load(&ws->is_stopping))
        pthread_cond_wait(&ws->unparked, &ws->wait_mu);
    ws->n_polling++;
    pthread_mutex_unlock(&ws->wait_mu);
    n = epoll_wait(ws->ep, ev, 1, -1);
    pthread_mutex_lock(&ws->wait_mu);
    if (--ws->n_polling == 0)
        pthread_cond_signal(&ws->unparked);
    pthread_mutex_unlock(&ws->wait_mu);
    return n;
}

static void *
worker_main(void *arg)
{
    struct fc_workers *ws = arg;
    unsigned char *buf = malloc(READ_BUF);

    while (buf != NULL) {
        struct epoll_event ev;
        struct conn *c;
        int n = wait_event(ws, &ev);

        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "slhook.fcgi: epoll_wait: %s\n", strerror(errno));
            break;
        }
        if (atomic_load(&ws->is_stopping))
            break;
        if (n <= 0)
            continue;
        switch (ev.data.u64) {
        case KEY_LISTEN:
            accept_one(ws, buf);
            break;
        case KEY_TIMER:
            sweep(ws);
            break;
        case KEY_STOP:
            break;
        default:
            c = claim(ws, ev.data.u64);
            if (c != NULL)
                handle(ws, c, buf);
        }
    }
    if (buf == NULL)
        fprintf(stderr, "slhook.fcgi: out of memory for a request thread\n");
    free(buf);
    return NULL;
}

static bool
watch(int ep, int fd, uint64_t key, bool is_oneshot)
{
    struct epoll_event ev = {
        .events = EPOLLIN | (is_oneshot ? EPOLLONESHOT : 0u), .data.u64 = key};

    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
}

enum slh_err
fc_workers_start(struct fc_workers **out, const struct slh_config *cfg,
                 struct slh_commit *commit, int listen_fd, size_t n,
                 pthread_t notify, struct slh_error *err)
{
    struct itimerspec tick = {
        .it_interval = {.tv_nsec = SWEEP_MS * 1000 * 1000},
        .it_value = {.tv_nsec = SWEEP_MS * 1000 * 1000}};
    struct fc_workers *ws;
    int e;

    *out = NULL;
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL || (ws->threads = calloc(n, sizeof(*ws->threads))) == NULL ||
        (ws->table = calloc(256, sizeof(*ws->table))) == NULL) {
        if (ws != NULL)
            free(ws->threads);
        free(ws);
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    }
    ws->table_cap = 256;
    ws->cfg = cfg;
    ws->commit = commit;
    ws->listen_fd = listen_fd;
    ws->notify = notify;
    ws->ep = ws->timer_fd = ws->stop_fd = -1;
    atomic_init(&ws->is_draining, false);
    atomic_init(&ws->is_stopping, false);
    atomic_init(&ws->is_failed, false);
    atomic_init(&ws->held, 0);
    atomic_init(&ws->n_large, 0);
    atomic_init(&ws->is_trim_due, false);
    pthread_mutex_init(&ws->mu, NULL);
    pthread_mutex_init(&ws->wait_mu, NULL);
    pthread_cond_init(&ws->unparked, NULL);
    ws->n_slots = REQUESTS_PER_THREAD * n;
    ws->held_max = (long)(ws->n_slots * cfg->max_body);
    sem_init(&ws->slots, 0, (unsigned)ws->n_slots);

    /* The listening socket may be shared with other processes (spawn-fcgi
     * -F): one of them may take the connection a readiness event was for,
     * and accept() must then not wait. */
    fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
    ws->ep = epoll_create1(EPOLL_CLOEXEC);
    ws->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    ws->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ws->ep < 0 || ws->timer_fd < 0 || ws->stop_fd < 0 ||
        timerfd_settime(ws->timer_fd, 0, &tick, NULL) != 0 ||
        !watch(ws->ep, listen_fd, KEY_LISTEN, true) ||
        !watch(ws->ep, ws->timer_fd, KEY_TIMER, true) ||
        /* Not one-shot: every thread is to see the stop. */
        !watch(ws->ep, ws->stop_fd, KEY_STOP, false)) {
        e = errno;
        fc_workers_stop(ws);
        return slh_error_set(err, SLH_EIO, "cannot set up epoll: %s",
                             strerror(e));
    }

    for (size_t i = 0; i < n; i++) {
        e = pthread_create(&ws->threads[i], NULL, worker_main, ws);
        if (e != 0) {
            fc_workers_stop(ws);
            return slh_error_set(err, SLH_ENOMEM,
                                 "cannot start request thread %zu: %s", i + 1,
                                 strerror(e));
        }
        slh_thread_name(ws->threads[i], "slh-request");
        ws->n_threads++;
    }
    *out = ws;
    return SLH_OK;
}

/* Connections in the table: being read, or kept and idle. */
static size_t
n_open(struct fc_workers *ws)
{
    size_t n = 0;

    pthread_mutex_lock(&ws->mu);
    for (size_t i = 0; i < ws->table_cap; i++)
        n += ws->table[i] != NULL;
    pthread_mutex_unlock(&ws->mu);
    return n;
}

/*
 * The first part of a stop: no connection is accepted any more (those
 * waiting in the listen backlog stay there, for a reload's new process),
 * kept connections idle between requests are closed, and every other is
 * closed after its answer; requests already begun have STOP_GRACE_MS (at
 * most read_timeout) to arrive. The threads go on meanwhile.
 */
static void
drain(struct fc_workers *ws)
{
    int64_t grace = ws->cfg->read_timeout * 1000 < STOP_GRACE_MS
                        ? ws->cfg->read_timeout * 1000
                        : STOP_GRACE_MS;
    int64_t until = now_ms() + grace;
    struct conn *idle = NULL, *next;

    atomic_store(&ws->is_draining, true);
    epoll_ctl(ws->ep, EPOLL_CTL_DEL, ws->listen_fd, NULL);
    pthread_mutex_lock(&ws->mu);
    for (size_t i = 0; i < ws->table_cap; i++) {
        struct conn *c = ws->table[i];

        if (c != NULL && c->is_armed && !c->is_new && !c->p.is_started &&
            c->pending_len == 0) {
            c->is_armed = false;
            c->next = idle;
            idle = c;
        }
    }
    pthread_mutex_unlock(&ws->mu);
    for (struct conn *c = idle; c != NULL; c = next) {
        next = c->next;
        conn_close(ws, c);
    }
    while (n_open(ws) > 0 && now_ms() < until)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
}

/*
 * The stop event wakes every thread (it stays readable); a thread handling
 * a request finishes it first, and none ever waits on a client, so the
 * joins are bounded. What is left in the table then is nobody's:
 * connections idle or still being read, closed here.
 */
bool
fc_workers_stop(struct fc_workers *ws)
{
    bool is_failed;

    if (ws == NULL)
        return true;
    drain(ws);
    atomic_store(&ws->is_stopping, true);
    if (ws->stop_fd >= 0 && write(ws->stop_fd, &(uint64_t){1}, 8) < 0)
        fprintf(stderr, "slhook.fcgi: stop: %s\n", strerror(errno));
    pthread_mutex_lock(&ws->wait_mu);
    pthread_cond_broadcast(&ws->unparked);
    pthread_mutex_unlock(&ws->wait_mu);
    for (size_t i = 0; i < ws->n_threads; i++)
        pthread_join(ws->threads[i], NULL);
    for (size_t i = 0; i < ws->table_cap; i++) {
        struct conn *c = ws->table[i];

        if (c == NULL)
            continue;
        if (c->rq != NULL || c->p.phase != FC_IDLE)
            fprintf(stderr, "slhook.fcgi: connection closed at the stop "
                            "before its request was complete\n");
        conn_close(ws, c);
    }
    /* Every slot back: the committer has answered and freed every request
     * handed to it, and none will touch ws again. */
    for (size_t i = 0; i < ws->n_slots; i++)
        while (sem_wait(&ws->slots) != 0 && errno == EINTR)
            ;
    is_failed = atomic_load(&ws->is_failed);
    if (ws->ep >= 0)
        close(ws->ep);
    if (ws->timer_fd >= 0)
        close(ws->timer_fd);
    if (ws->stop_fd >= 0)
        close(ws->stop_fd);
    sem_destroy(&ws->slots);
    pthread_mutex_destroy(&ws->mu);
    pthread_cond_destroy(&ws->unparked);
    pthread_mutex_destroy(&ws->wait_mu);
    free(ws->table);
    free(ws->threads);
    free(ws);
    return !is_failed;
}

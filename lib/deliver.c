#include "deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <curl/curl.h>

#include "retry.h"
#include "sign.h"
#include "store.h"

#define MAX_INFLIGHT 8 /* attempts in flight per destination */
/* Rows claimed per transaction for an http destination; those beyond the
 * free slots wait in a local queue. One SQLite transaction per few events
 * would bound the throughput well below what a receiver can take. */
#define CLAIM_BATCH 64
#define FILE_BATCH 256 /* lines appended per fsync */
/* Outcomes are recorded in one transaction once this many are waiting, or
 * FLUSH_MS after the first, or GATHER_MS after it when nothing else is in
 * flight (at once for --once). */
#define FLUSH_BATCH 64
#define FLUSH_MS 20
/* A receiver that commits every half millisecond wakes the deliverer as
 * often: claiming and recording at each wake-up would cost a transaction
 * per few events. So a destination claims at most once per GATHER_MS
 * (unless its last claim filled a batch: a backlog), and outcomes wait as
 * long for company once nothing is in flight. Light load pays at most this
 * much more latency. */
#define GATHER_MS 2
/* A claim outlives its attempt's timeout by this much, so that a slow
 * moment in this process never lets another deliverer take a row that is
 * still in flight here. */
#define LEASE_MARGIN_MS 30000
/* How often an idle deliverer looks whether another process stored rows:
 * a CGI that finds a deliverer running does not wake it. */
#define IDLE_POLL_MS 250
/* How often a deliverer looks for dead ones whose claims to take back (at
 * start, then this often): an open() and a flock() per other deliverer. */
#define RECOVER_EVERY_MS 1000
#define RECOVER_MAX 16               /* dead owners taken back per look */
#define PURGE_EVERY_MS (3600 * 1000) /* per spool, whoever delivers */
#define PURGE_STAMP "purge.stamp"    /* its mtime: the last purge */
#define STOP_GRACE_MS 1000 /* how long stop lets attempts in flight finish */
#define ANSWER_KEEP 200    /* bytes of a downstream answer kept for its error */
#define USER_AGENT "slhook/" SLH_VERSION

struct dest_state;

/* A response body sink that keeps the first cap bytes and drops the rest,
 * so a downstream answer never reaches stdout nor grows without bound. */
struct sink {
    char *buf;
    size_t len;
    size_t cap;
};

struct slot {
    struct dest_state *ds;
    CURL *easy;
    struct curl_slist *headers;
    struct slh_claim claim;
    char answer[ANSWER_KEEP + 1];
    struct sink sink;
    int64_t started;
    bool busy;
};

struct dest_state {
    const struct slh_dest *dest;
    struct slot slots[MAX_INFLIGHT]; /* url destinations only */
    size_t inflight;
    struct slh_claim queue[CLAIM_BATCH]; /* claimed, waiting for a slot */
    size_t q_head;
    size_t q_len;
    int64_t next_due;   /* when to look for due rows again; INT64_MIN: now */
    int64_t claimed_at; /* when rows were last claimed */
    bool claimed_full;  /* and whether that claim filled a batch */
};

/* An outcome waiting to be recorded, with what its log line needs. */
struct finished {
    struct slh_outcome o;
    int attempts;
    long ms;
};

struct slh_deliverer {
    const struct slh_config *cfg;
    struct slh_store *sp;
    CURLM *multi;
    struct dest_state *ds;
    size_t n_ds;
    struct finished *fin;
    size_t n_fin;
    size_t cap_fin;
    int64_t fin_since;       /* when the oldest unrecorded outcome came */
    struct slh_claim *batch; /* FILE_BATCH claims for file destinations */
    void (*on_attempt)(const struct slh_attempt *a, void *arg);
    void *arg;
    slh_deliver_write_fn write; /* slh_deliverer_write_through()'s */
    void *write_ctx;
    atomic_bool stop;
    atomic_bool wake;
    uint32_t rnd;
    int64_t version;
    int64_t version_checked;
    int64_t purge_checked; /* when the purge stamp was last looked at */
    int64_t recovered_at;  /* when dead deliverers were last looked for */
    struct slh_store_owner *owner; /* whose claims these are (store.h) */
    bool curl_ready;
};

static size_t
sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;
    size_t room = s->cap - s->len;
    size_t take = n < room ? n : room;

    memcpy(s->buf + s->len, data, take);
    s->len += take;
    s->buf[s->len] = '\0';
    return n;
}

static uint32_t
next_rnd(struct slh_deliverer *d)
{
    uint32_t x = d->rnd;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    d->rnd = x;
    return x;
}

/* Long enough for the last row of a claimed batch to wait for a slot while
 * every attempt before it times out. */
static int64_t
lease_ms(const struct slh_dest *dest)
{
    return (int64_t)(CLAIM_BATCH / MAX_INFLIGHT + 1) * dest->timeout * 1000 +
           LEASE_MARGIN_MS;
}

/* "HTTP 503: <the answer's first bytes>", printable ASCII only, as the
 * error text must stay one line and valid UTF-8 for status --json. */
static void
http_error(char *out, size_t size, long status, const char *answer)
{
    size_t n = (size_t)snprintf(out, size, "HTTP %ld", status);
    bool space = true;

    if (answer[0] == '\0' || n + 3 >= size)
        return;
    memcpy(out + n, ": ", 2);
    n += 2;
    for (const char *p = answer; *p != '\0' && n + 1 < size; p++) {
        char c = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
        if (c == ' ' && space)
            continue;
        space = c == ' ';
        out[n++] = c;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    if (n >= 2 && out[n - 1] == ':')
        n -= 1;
    out[n] = '\0';
}

/*
 * The deliverer's spool writes: fn(sp, arg, err) on d->sp, in a transaction
 * of its own, or, written through (slh_deliverer_write_through()), in the
 * front end's writer's transaction, on its connection.
 */
static enum slh_err
write_spool(struct slh_deliverer *d,
            enum slh_err (*fn)(struct slh_store *sp, void *arg,
                               struct slh_error *err),
            void *arg, struct slh_error *err)
{
    struct slh_store_task task = {.fn = fn, .arg = arg};

    if (d->write == NULL)
        return fn(d->sp, arg, err);
    return d->write(&task, d->write_ctx, err);
}

struct claim_args {
    const struct slh_dest *dest;
    int64_t owner;
    int64_t now;
    size_t max;
    struct slh_claim *claims;
    size_t *n;
    int64_t *next_due;
};

static enum slh_err
claim_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    struct claim_args *a = arg;

    /* What a run of this task rolled back since had claimed. */
    for (size_t i = 0; i < *a->n; i++)
        slh_store_claim_free(&a->claims[i]);
    return slh_store_claim(sp, a->dest->name, a->owner, a->now,
                           lease_ms(a->dest), a->max, a->claims, a->n,
                           a->next_due, err);
}

/* slh_store_claim() through write_spool(). */
static enum slh_err
claim(struct slh_deliverer *d, const struct slh_dest *dest, int64_t now,
      size_t max, struct slh_claim *claims, size_t *n, int64_t *next_due,
      struct slh_error *err)
{
    struct claim_args a = {
        dest, slh_store_owner_token(d->owner), now, max, claims, n, next_due};
    enum slh_err rc;

    *n = 0;
    rc = write_spool(d, claim_task, &a, err);
    if (rc != SLH_OK) {
        /* Claimed in a writer's transaction that failed to commit. */
        for (size_t i = 0; i < *n; i++)
            slh_store_claim_free(&claims[i]);
        *n = 0;
    }
    return rc;
}

struct finish_args {
    const struct slh_outcome *o;
    size_t n;
    int64_t now;
};

static enum slh_err
finish_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    struct finish_args *a = arg;

    return slh_store_finish(sp, a->o, a->n, a->now, err);
}

struct unclaim_args {
    const char *dest;
    const int64_t *seqs;
    size_t n;
    int64_t now;
};

static enum slh_err
unclaim_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    struct unclaim_args *a = arg;

    return slh_store_unclaim(sp, a->dest, a->seqs, a->n, a->now, err);
}

/*
 * Takes back at once what dead deliverers had claimed (store.h), rather
 * than leaving it to their leases: at the first look of a run, then every
 * RECOVER_EVERY_MS. True when rows may be due now. On d->sp itself, not
 * written through: it writes nothing unless a deliverer died, which is
 * rare, and a take-back that fails leaves the dead for the next look.
 */
static bool
recover(struct slh_deliverer *d, int64_t now)
{
    size_t taken = 0;

    if (now - d->recovered_at < RECOVER_EVERY_MS)
        return false;
    d->recovered_at = now;
    return slh_store_take_back(d->sp, slh_store_owner_token(d->owner), now,
                               &taken, NULL) == SLH_OK &&
           taken > 0;
}

/* Queues the outcome of attempt c of ds for recording. status 0 with a
 * NULL error means a file destination's line is on disk. */
static void
record(struct slh_deliverer *d, struct dest_state *ds,
       const struct slh_claim *c, int status, int64_t retry_after_ms,
       const char *error, int64_t now, long ms)
{
    struct finished *f = &d->fin[d->n_fin++];

    if (d->n_fin == 1)
        d->fin_since = now;
    memset(f, 0, sizeof(*f));
    if (status == 0 && error == NULL) {
        f->o.seq = c->seq;
        memcpy(f->o.id, c->id, sizeof(f->o.id));
        f->o.state = SLH_DELIVERED;
        f->o.due = now;
    } else {
        slh_retry_decide(&f->o, c, ds->dest->max_age, status, retry_after_ms,
                         now, next_rnd(d));
        snprintf(f->o.error, sizeof(f->o.error), "%s",
                 error != NULL ? error : "");
        if (f->o.state == SLH_PENDING && f->o.due < ds->next_due)
            ds->next_due = f->o.due;
    }
    f->o.dest = ds->dest->name;
    f->attempts = c->attempts;
    f->ms = ms;
}

/* Records every queued outcome in one transaction, then tells the log. */
static enum slh_err
flush(struct slh_deliverer *d, int64_t now, struct slh_error *err)
{
    struct slh_outcome *o;
    enum slh_err rc = SLH_OK;
    size_t i;

    if (d->n_fin == 0)
        return SLH_OK;
    o = malloc(d->n_fin * sizeof(*o));
    if (o == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    for (i = 0; i < d->n_fin; i++)
        o[i] = d->fin[i].o;
    rc = write_spool(d, finish_task, &(struct finish_args){o, d->n_fin, now},
                     err);
    free(o);
    if (rc != SLH_OK)
        return rc;
    for (i = 0; d->on_attempt != NULL && i < d->n_fin; i++) {
        const struct finished *f = &d->fin[i];
        struct slh_attempt a = {
            .dest = f->o.dest,
            .event_id = f->o.id,
            .attempts = f->attempts,
            .state = f->o.state,
            .status = f->o.status,
            .error = f->o.error,
            .due_ms = f->o.due,
            .ms = f->ms,
        };
        d->on_attempt(&a, d->arg);
    }
    d->n_fin = 0;
    return SLH_OK;
}

/* flock(LOCK_EX), again when a signal interrupts it. */
static int
flock_ex(int fd)
{
    int rc;

    while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    return rc;
}

/*
 * Drops a torn last line: a writer killed inside its write() leaves part of a
 * line (the kernel may stop a write between pages for SIGKILL), which the
 * line appended next would run into, and its event was never counted as
 * delivered, so it comes again whole. Only under the file's lock, which
 * every writer holds while it writes whole lines: a tail without its newline
 * is then always a dead writer's. False when the file cannot be read or cut.
 */
static bool
mend_torn_tail(int fd)
{
    char buf[4096];
    off_t end = lseek(fd, 0, SEEK_END), pos = end;

    while (pos > 0) {
        size_t want = pos < (off_t)sizeof(buf) ? (size_t)pos : sizeof(buf);
        ssize_t got = pread(fd, buf, want, pos - (off_t)want);
        if (got != (ssize_t)want)
            return false;
        for (size_t i = want; i > 0; i--) {
            if (buf[i - 1] == '\n') {
                off_t cut = pos - (off_t)want + (off_t)i;
                return cut == end || ftruncate(fd, cut) == 0;
            }
        }
        pos -= (off_t)want;
    }
    return end <= 0 ? end == 0 : ftruncate(fd, 0) == 0;
}

/* Appends each claimed body as one line with one writev() on an O_APPEND
 * descriptor under the file's lock (flock), after mending a torn last line,
 * and fsyncs before any of them counts as delivered. */
static void
append_lines(struct slh_deliverer *d, struct dest_state *ds,
             struct slh_claim *c, size_t n, int64_t now)
{
    const char *path = ds->dest->file;
    char error[SLH_STORE_ERROR_LEN] = "";
    size_t written = 0;
    int fd;

    fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(error, sizeof(error), "open %s: %s", path, strerror(errno));
    } else if (flock_ex(fd) != 0 || !mend_torn_tail(fd)) {
        snprintf(error, sizeof(error), "mend %s: %s", path, strerror(errno));
        close(fd);
    } else {
        for (; written < n; written++) {
            struct iovec iov[2] = {
                {.iov_base = c[written].body, .iov_len = c[written].body_len},
                {.iov_base = (void *)(uintptr_t) "\n", .iov_len = 1},
            };
            ssize_t w = writev(fd, iov, 2);
            if (w != (ssize_t)(c[written].body_len + 1)) {
                snprintf(error, sizeof(error), "write %s: %s", path,
                         w < 0 ? strerror(errno) : "short write");
                break;
            }
        }
        if (written > 0 && fsync(fd) != 0) {
            snprintf(error, sizeof(error), "fsync %s: %s", path,
                     strerror(errno));
            written = 0;
        }
        close(fd);
    }
    for (size_t i = 0; i < n; i++)
        record(d, ds, &c[i], 0, 0, i < written ? NULL : error, now,
               (long)(slh_now_ms() - now));
}

static enum slh_err
fill_file(struct slh_deliverer *d, struct dest_state *ds, int64_t now,
          struct slh_error *err)
{
    size_t n = 0;
    enum slh_err rc;

    rc = claim(d, ds->dest, now, FILE_BATCH, d->batch, &n, &ds->next_due, err);
    if (rc != SLH_OK)
        return rc;
    append_lines(d, ds, d->batch, n, now);
    for (size_t i = 0; i < n; i++)
        slh_store_claim_free(&d->batch[i]);
    return flush(d, now, err);
}

static bool
add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);

    if (l == NULL)
        return false;
    *list = l;
    return true;
}

/* Builds this attempt's headers (the timestamp and signature are per
 * attempt) and hands the slot to the multi handle. */
static enum slh_err
start(struct slh_deliverer *d, struct slot *s, int64_t now)
{
    const struct slh_dest *dest = s->ds->dest;
    long long ts = (long long)(now / 1000);
    char line[128];
    char sig[SLH_SIGNATURE_LEN];
    bool ok;

    ok = add_header(&s->headers, "Content-Type: application/json") &&
         add_header(&s->headers, "Expect:");
    snprintf(line, sizeof(line), "webhook-id: %s", s->claim.id);
    ok = ok && add_header(&s->headers, line);
    snprintf(line, sizeof(line), "webhook-timestamp: %lld", ts);
    ok = ok && add_header(&s->headers, line);
    if (ok && dest->signing_key != NULL) {
        ok = slh_sign_webhook(sig, dest->signing_key, dest->signing_key_len,
                              s->claim.id, ts, s->claim.body, s->claim.body_len,
                              NULL) == SLH_OK;
        snprintf(line, sizeof(line), "webhook-signature: %s", sig);
        ok = ok && add_header(&s->headers, line);
    }
    for (size_t i = 0; ok && i < dest->n_headers; i++)
        ok = add_header(&s->headers, dest->headers[i]);
    if (!ok)
        return SLH_ENOMEM;
    s->sink.len = 0;
    s->answer[0] = '\0';
    s->started = now;
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)s->claim.body_len);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->claim.body);
    if (curl_multi_add_handle(d->multi, s->easy) != CURLM_OK)
        return SLH_ENOMEM;
    return SLH_OK;
}

static void
release_slot(struct slot *s)
{
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    slh_store_claim_free(&s->claim);
    s->busy = false;
    s->ds->inflight--;
}

/* When a url destination with an empty queue claims next: once rows may
 * be due, and GATHER_MS after its last claim unless that one was full. */
static int64_t
claim_at(const struct dest_state *ds)
{
    int64_t gathered = ds->claimed_at + GATHER_MS;

    if (ds->claimed_full || ds->next_due >= gathered)
        return ds->next_due;
    return gathered;
}

/* Starts queued rows in free slots, claiming a new batch when the queue
 * is empty and it is time (claim_at()). */
static enum slh_err
fill_url(struct slh_deliverer *d, struct dest_state *ds, int64_t now,
         struct slh_error *err)
{
    size_t k = 0;

    if (ds->inflight >= MAX_INFLIGHT)
        return SLH_OK;
    if (ds->q_len == 0 && claim_at(ds) <= now) {
        enum slh_err rc = claim(d, ds->dest, now, CLAIM_BATCH, ds->queue,
                                &ds->q_len, &ds->next_due, err);
        ds->q_head = 0;
        ds->claimed_at = now;
        ds->claimed_full = ds->q_len == CLAIM_BATCH;
        if (rc != SLH_OK)
            return rc;
    }
    while (ds->q_len > 0 && ds->inflight < MAX_INFLIGHT) {
        struct slot *s;
        while (ds->slots[k].busy)
            k++;
        s = &ds->slots[k];
        s->claim = ds->queue[ds->q_head];
        memset(&ds->queue[ds->q_head], 0, sizeof(ds->queue[0]));
        ds->q_head++;
        ds->q_len--;
        s->busy = true;
        ds->inflight++;
        if (start(d, s, now) != SLH_OK) {
            record(d, ds, &s->claim, 0, 0, "out of memory", now, 0);
            release_slot(s);
        }
    }
    return SLH_OK;
}

static void
harvest(struct slh_deliverer *d)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
        struct slot *s;
        char *priv = NULL;
        char error[SLH_STORE_ERROR_LEN];
        long status = 0;
        curl_off_t retry_after = 0;
        int64_t now = slh_now_ms();

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        s = (struct slot *)(void *)priv;
        if (msg->data.result == CURLE_OK) {
            curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &retry_after);
            http_error(error, sizeof(error), status, s->answer);
        } else {
            snprintf(error, sizeof(error), "%s",
                     curl_easy_strerror(msg->data.result));
        }
        curl_multi_remove_handle(d->multi, s->easy);
        if (retry_after < 0 || retry_after > INT64_MAX / 1000)
            retry_after = 0;
        record(d, s->ds, &s->claim, (int)status, (int64_t)retry_after * 1000,
               status >= 200 && status <= 299 ? "" : error, now,
               (long)(now - s->started));
        release_slot(s);
    }
}

/* Gives back what is in flight, for another run or deliverer to retry. */
static void
abandon(struct slh_deliverer *d)
{
    int64_t seqs[MAX_INFLIGHT + CLAIM_BATCH];
    int64_t now = slh_now_ms();

    for (size_t i = 0; i < d->n_ds; i++) {
        struct dest_state *ds = &d->ds[i];
        size_t n = 0;

        if (ds->dest->url == NULL)
            continue;
        for (size_t k = 0; k < MAX_INFLIGHT; k++) {
            struct slot *s = &ds->slots[k];
            if (!s->busy)
                continue;
            curl_multi_remove_handle(d->multi, s->easy);
            seqs[n++] = s->claim.seq;
            release_slot(s);
        }
        for (; ds->q_len > 0; ds->q_len--, ds->q_head++) {
            seqs[n++] = ds->queue[ds->q_head].seq;
            slh_store_claim_free(&ds->queue[ds->q_head]);
        }
        if (n > 0)
            write_spool(d, unclaim_task,
                        &(struct unclaim_args){ds->dest->name, seqs, n, now},
                        NULL);
    }
}

static size_t
in_flight(const struct slh_deliverer *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n_ds; i++)
        n += d->ds[i].inflight;
    return n;
}

/* How long to sleep: until the first destination with room has rows due,
 * at most IDLE_POLL_MS. */
static long
poll_timeout(const struct slh_deliverer *d, int64_t now)
{
    int64_t t = IDLE_POLL_MS;

    if (d->n_fin > 0)
        t = d->fin_since + (in_flight(d) == 0 ? GATHER_MS : FLUSH_MS) - now;
    for (size_t i = 0; i < d->n_ds; i++) {
        const struct dest_state *ds = &d->ds[i];
        int64_t due = ds->next_due;
        if (ds->dest->url != NULL && ds->inflight >= MAX_INFLIGHT)
            continue;
        if (ds->dest->url != NULL && ds->q_len == 0)
            due = claim_at(ds);
        if (due <= now)
            t = 0;
        else if (due - now < t)
            t = due - now;
    }
    return (long)(t > 0 ? t : 0);
}

static bool
any_due(const struct slh_deliverer *d, int64_t now)
{
    for (size_t i = 0; i < d->n_ds; i++)
        if (d->ds[i].next_due <= now || d->ds[i].q_len > 0)
            return true;
    return false;
}

/*
 * The spool directory was removed (or its file system replaced) and a
 * receiver made a new spool at the path: d->sp still reads the unlinked
 * files, where nothing new ever arrives, so follow the receiver there. Only
 * when nothing is in flight or waiting to be recorded: a claim's seq means
 * nothing in another database. A path with no database yet is left to the
 * receiver to create; the old handle is kept until a new one works.
 */
static bool
follow_spool(struct slh_deliverer *d)
{
    struct slh_store *sp = NULL;

    if (!slh_store_is_replaced(d->sp))
        return false;
    if (in_flight(d) > 0 || d->n_fin > 0)
        return false;
    for (size_t i = 0; i < d->n_ds; i++)
        if (d->ds[i].q_len > 0)
            return false;
    if (slh_store_open(&sp, d->cfg->spool, SLH_STORE_CREATE, NULL) != SLH_OK)
        return false;
    if (slh_store_role(sp, SLH_STORE_DELIVERER, NULL) != SLH_OK) {
        slh_store_close(sp);
        return false;
    }
    slh_store_close(d->sp);
    d->sp = sp;
    /* An owner of the store that was replaced tells no one here. */
    slh_store_owner_close(d->owner);
    (void)slh_store_owner_open(d->sp, &d->owner, NULL);
    d->recovered_at = 0; /* now */
    return true;
}

/*
 * Once an hour per spool, whichever deliverer comes first (the stamp file's
 * mtime tells, across processes), forgets delivered events older than
 * SLH_STORE_KEEP_MS so the spool does not grow without end. A failed purge
 * is tried again next hour: it never holds up delivery.
 */
static void
purge_now_and_then(struct slh_deliverer *d, int64_t now)
{
    char path[4096];
    struct stat st;
    int fd;

    if (now - d->purge_checked < PURGE_EVERY_MS / 60)
        return;
    d->purge_checked = now;
    if (snprintf(path, sizeof(path), "%s/%s", d->cfg->spool, PURGE_STAMP) >=
        (int)sizeof(path))
        return;
    if (stat(path, &st) == 0 &&
        now - (int64_t)st.st_mtime * 1000 < PURGE_EVERY_MS)
        return;
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    (void)futimens(fd, NULL);
    close(fd);
    (void)slh_store_purge(d->sp, now - SLH_STORE_KEEP_MS, NULL, NULL);
}

enum slh_err
slh_deliverer_run(struct slh_deliverer *d, bool once, struct slh_error *err)
{
    int64_t grace_end = 0;
    enum slh_err rc = SLH_OK;
    int running;

    /* Outcomes that a failed flush left from the last run (the spool full
     * or read-only for a while) are recorded first: claiming more before
     * they are would let d->fin grow past its size. */
    rc = flush(d, slh_now_ms(), err);
    if (rc != SLH_OK)
        return rc;
    for (size_t i = 0; i < d->n_ds; i++)
        d->ds[i].next_due = INT64_MIN;
    d->version = slh_store_data_version(d->sp);
    d->version_checked = slh_now_ms();
    d->recovered_at = 0; /* now */
    for (;;) {
        int64_t now = slh_now_ms();
        bool stopping = atomic_load(&d->stop);
        bool look = atomic_exchange(&d->wake, false);

        if (!stopping)
            purge_now_and_then(d, now);
        if (!stopping && recover(d, now))
            look = true;
        if (!stopping && now - d->version_checked >= IDLE_POLL_MS) {
            int64_t v;
            if (follow_spool(d))
                look = true;
            v = slh_store_data_version(d->sp);
            look = look || v != d->version;
            d->version = v;
            d->version_checked = now;
        }
        for (size_t i = 0; !stopping && i < d->n_ds; i++) {
            struct dest_state *ds = &d->ds[i];
            if (look)
                ds->next_due = INT64_MIN;
            if (ds->dest->url != NULL)
                rc = fill_url(d, ds, now, err);
            else if (ds->next_due <= now)
                rc = fill_file(d, ds, now, err);
            if (rc != SLH_OK)
                goto out;
        }
        if (curl_multi_perform(d->multi, &running) != CURLM_OK) {
            rc = slh_error_set(err, SLH_EDELIVER, "curl_multi_perform failed");
            goto out;
        }
        harvest(d);
        if (d->n_fin >= FLUSH_BATCH || stopping ||
            (d->n_fin > 0 && (now - d->fin_since >= FLUSH_MS ||
                              (in_flight(d) == 0 &&
                               (once || now - d->fin_since >= GATHER_MS))))) {
            rc = flush(d, slh_now_ms(), err);
            if (rc != SLH_OK)
                goto out;
        }
        if (stopping) {
            if (in_flight(d) == 0)
                break;
            if (grace_end == 0)
                grace_end = now + STOP_GRACE_MS;
            else if (now >= grace_end)
                break;
        } else if (once && in_flight(d) == 0 && !any_due(d, now)) {
            break;
        }
        curl_multi_poll(d->multi, NULL, 0,
                        stopping ? 50 : (int)poll_timeout(d, slh_now_ms()),
                        NULL);
    }
out:
    abandon(d);
    return rc;
}

void
slh_deliverer_wake(struct slh_deliverer *d)
{
    atomic_store(&d->wake, true);
    curl_multi_wakeup(d->multi);
}

void
slh_deliverer_stop(struct slh_deliverer *d)
{
    atomic_store(&d->stop, true);
    curl_multi_wakeup(d->multi);
}

void
slh_deliverer_write_through(struct slh_deliverer *d, slh_deliver_write_fn fn,
                            void *ctx)
{
    d->write = fn;
    d->write_ctx = ctx;
}

void
slh_deliverer_on_attempt(struct slh_deliverer *d,
                         void (*fn)(const struct slh_attempt *a, void *arg),
                         void *arg)
{
    d->on_attempt = fn;
    d->arg = arg;
}

/* The options every attempt shares: only http and https, no redirects,
 * TLS verified (curl's default, stated so nobody turns it off by accident),
 * no signals (deliverers run in threads). */
static bool
common_options(CURL *easy, const char *url, long timeout, struct sink *sink)
{
    return curl_easy_setopt(easy, CURLOPT_URL, url) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") ==
               CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") ==
               CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_TIMEOUT, timeout) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_USERAGENT, USER_AGENT) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_POST, 1L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink_write) ==
               CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_WRITEDATA, sink) == CURLE_OK;
}

enum slh_err
slh_deliverer_new(struct slh_deliverer **out, const struct slh_config *cfg,
                  struct slh_error *err)
{
    struct slh_deliverer *d;
    enum slh_err rc = SLH_OK;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    d->cfg = cfg;
    atomic_init(&d->stop, false);
    atomic_init(&d->wake, false);
    d->rnd = (uint32_t)slh_now_ms() ^ ((uint32_t)getpid() << 16) ^
             (uint32_t)(uintptr_t)d;
    if (d->rnd == 0)
        d->rnd = 0x9e3779b9u;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = slh_error_set(err, SLH_EDELIVER, "curl_global_init failed");
        goto fail;
    }
    d->curl_ready = true;
    rc = slh_store_open(&d->sp, cfg->spool, SLH_STORE_CREATE, err);
    if (rc != SLH_OK)
        goto fail;
    rc = slh_store_role(d->sp, SLH_STORE_DELIVERER, err);
    if (rc != SLH_OK)
        goto fail;
    /* Without an owner of its own (a full inode table, too many open
     * files) it claims for no owner: what it holds when killed waits for
     * the lease, as it always did. */
    (void)slh_store_owner_open(d->sp, &d->owner, NULL);
    d->multi = curl_multi_init();
    d->ds = calloc(cfg->n_dests > 0 ? cfg->n_dests : 1, sizeof(*d->ds));
    d->n_ds = cfg->n_dests;
    /* What can pile up between two flushes: FLUSH_BATCH - 1 outcomes, a
     * failed start per slot, a file batch, and an outcome per slot. */
    d->cap_fin = FLUSH_BATCH + 2 * cfg->n_dests * MAX_INFLIGHT + FILE_BATCH;
    d->fin = calloc(d->cap_fin, sizeof(*d->fin));
    d->batch = calloc(FILE_BATCH, sizeof(*d->batch));
    if (d->multi == NULL || d->ds == NULL || d->fin == NULL ||
        d->batch == NULL) {
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto fail;
    }
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS,
                      (long)(cfg->n_dests * MAX_INFLIGHT));
    for (size_t i = 0; i < d->n_ds; i++) {
        struct dest_state *ds = &d->ds[i];
        ds->dest = &cfg->dests[i];
        for (size_t k = 0; ds->dest->url != NULL && k < MAX_INFLIGHT; k++) {
            struct slot *s = &ds->slots[k];
            s->ds = ds;
            s->sink.buf = s->answer;
            s->sink.cap = ANSWER_KEEP;
            s->easy = curl_easy_init();
            if (s->easy == NULL ||
                !common_options(s->easy, ds->dest->url, ds->dest->timeout,
                                &s->sink) ||
                curl_easy_setopt(s->easy, CURLOPT_PRIVATE, (void *)s) !=
                    CURLE_OK) {
                rc = slh_error_set(err, SLH_EDELIVER,
                                   "destination %s: cannot set up curl",
                                   ds->dest->name);
                goto fail;
            }
        }
    }
    *out = d;
    return SLH_OK;
fail:
    slh_deliverer_free(d);
    return rc;
}

void
slh_deliverer_free(struct slh_deliverer *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; d->ds != NULL && i < d->n_ds; i++) {
        for (size_t k = 0; k < MAX_INFLIGHT; k++) {
            struct slot *s = &d->ds[i].slots[k];
            if (s->busy) {
                curl_multi_remove_handle(d->multi, s->easy);
                release_slot(s);
            }
            if (s->easy != NULL)
                curl_easy_cleanup(s->easy);
        }
        for (size_t k = 0; k < CLAIM_BATCH; k++)
            slh_store_claim_free(&d->ds[i].queue[k]);
    }
    if (d->multi != NULL)
        curl_multi_cleanup(d->multi);
    /* Its claims are given back (run's end) or finished: nothing to take. */
    slh_store_owner_close(d->owner);
    slh_store_close(d->sp);
    free(d->ds);
    free(d->fin);
    free(d->batch);
    if (d->curl_ready)
        curl_global_cleanup();
    free(d);
}

enum slh_err
slh_deliver_post(const char *url, const char *content_type, const char *body,
                 size_t len, long timeout, long *status, char **answer,
                 size_t max, struct slh_error *err)
{
    struct curl_slist *headers = NULL;
    struct sink sink = {0};
    char line[256];
    CURL *easy = NULL;
    CURLcode res;
    enum slh_err rc = SLH_OK;

    *status = 0;
    if (answer != NULL)
        *answer = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return slh_error_set(err, SLH_EDELIVER, "curl_global_init failed");
    sink.cap = answer != NULL ? max : 0;
    sink.buf = malloc(sink.cap + 1);
    easy = curl_easy_init();
    snprintf(line, sizeof(line), "Content-Type: %s", content_type);
    if (sink.buf == NULL || easy == NULL || !add_header(&headers, line) ||
        !add_header(&headers, "Expect:")) {
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto out;
    }
    sink.buf[0] = '\0';
    if (!common_options(easy, url, timeout, &sink) ||
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) !=
            CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body) != CURLE_OK) {
        rc = slh_error_set(err, SLH_EINVAL, "%s: cannot set up curl", url);
        goto out;
    }
    res = curl_easy_perform(easy);
    if (res != CURLE_OK) {
        rc = slh_error_set(err, SLH_EDELIVER, "%s: %s", url,
                           curl_easy_strerror(res));
        goto out;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
    if (answer != NULL) {
        *answer = sink.buf;
        sink.buf = NULL;
    }
out:
    free(sink.buf);
    curl_slist_free_all(headers);
    if (easy != NULL)
        curl_easy_cleanup(easy);
    curl_global_cleanup();
    return rc;
}

/* Linux keeps a nice value per thread, addressed by its thread id. */
void
slh_deliver_yield_priority(void)
{
    id_t tid = (id_t)syscall(SYS_gettid);
    int now;

    errno = 0;
    now = getpriority(PRIO_PROCESS, tid);
    if (errno == 0)
        (void)setpriority(PRIO_PROCESS, tid, now + SLH_DELIVER_NICE);
}

char *
slh_deliver_url_masked(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *user = NULL, *password = NULL, *host = NULL;
    char *port = NULL, *path = NULL, *query = NULL, *out = NULL;
    size_t size, n = 0;

    if (u == NULL)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        out = strdup("(a URL that does not parse)");
        goto out;
    }
    (void)curl_url_get(u, CURLUPART_USER, &user, 0);
    (void)curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
    (void)curl_url_get(u, CURLUPART_PORT, &port, 0);
    (void)curl_url_get(u, CURLUPART_PATH, &path, 0);
    (void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
    /* Each query item shrinks to its key and "=***", at most 4 bytes
     * more than itself (a bare item becomes "***"). */
    size = strlen(scheme) + strlen(host) + (port != NULL ? strlen(port) : 0) +
           (path != NULL ? strlen(path) : 0) +
           (query != NULL ? strlen(query) * 5 : 0) + 16;
    out = malloc(size);
    if (out == NULL)
        goto out;
    n = (size_t)snprintf(out, size, "%s://%s%s%s%s%s", scheme,
                         user != NULL || password != NULL ? "***@" : "", host,
                         port != NULL ? ":" : "", port != NULL ? port : "",
                         path != NULL ? path : "/");
    for (char *item = query, *next; item != NULL && n < size; item = next) {
        char *eq;

        next = strchr(item, '&');
        if (next != NULL)
            *next++ = '\0';
        eq = strchr(item, '=');
        n += (size_t)snprintf(out + n, size - n, "%s%.*s%s",
                              item == query ? "?" : "&",
                              eq != NULL ? (int)(eq - item) : 0, item,
                              eq != NULL ? "=***" : "***");
    }
out:
    curl_free(scheme);
    curl_free(user);
    curl_free(password);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return out;
}

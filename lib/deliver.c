/* deliver.c: the deliverer's scheduler (deliver.h): when each destination
 * claims, when outcomes are recorded, sleeping and waking, stopping, and
 * the deliverer's making and freeing. The transport is deliver_http.c, the
 * file destination deliver_file.c, the spool deliver_spool.c. */
#include "deliver_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

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
/* How often an idle deliverer looks whether another process stored rows:
 * a CGI that finds a deliverer running does not wake it. */
#define IDLE_POLL_MS 250
/* Idle enough to index events for lookups (dl_spool_index()): nothing due
 * for this long. Under load rows are due every GATHER_MS, so that indexing
 * waits for the load to pass rather than delay deliveries. */
#define INDEX_IDLE_MS 50
#define STOP_GRACE_MS 1000 /* how long stop lets attempts in flight finish */

/* ---- What the deliverer holds ---- */

static size_t
in_flight(const struct slh_deliverer *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n_ds; i++)
        n += d->ds[i].inflight;
    return n;
}

/* No claim in flight or waiting for a slot, no outcome waiting to be
 * recorded: d may move to another spool. */
static bool
holds_nothing(const struct slh_deliverer *d)
{
    if (in_flight(d) > 0 || d->n_fin > 0)
        return false;
    for (size_t i = 0; i < d->n_ds; i++)
        if (d->ds[i].q_len > 0)
            return false;
    return true;
}

static bool
any_due(const struct slh_deliverer *d, int64_t now)
{
    for (size_t i = 0; i < d->n_ds; i++)
        if (d->ds[i].next_due <= now || d->ds[i].q_len > 0 ||
            d->ds[i].is_rate_held)
            return true;
    return false;
}

/* ---- Claiming and starting ---- */

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

static enum slh_err
fill_file(struct slh_deliverer *d, struct dest_state *ds, int64_t now,
          struct slh_error *err)
{
    size_t n = 0;
    enum slh_err rc;

    rc = dl_claim(d, ds->dest, now, FILE_BATCH, d->batch, &n, &ds->next_due,
                  err);
    if (rc != SLH_OK)
        return rc;
    dl_file_append(d, ds, d->batch, n, now);
    for (size_t i = 0; i < n; i++)
        dl_claim_free(&d->batch[i]);
    return dl_flush(d, now, err);
}

/* Claims a batch into ds's empty queue, through the throttle when ds has
 * a rate or a breaker. */
static enum slh_err
claim_url(struct slh_deliverer *d, struct dest_state *ds, int64_t now,
          struct slh_error *err)
{
    enum slh_err rc;

    if (ds->is_throttled)
        rc = dl_claim_throttled(d, ds, now, CLAIM_BATCH, &ds->q_len, err);
    else
        rc = dl_claim(d, ds->dest, now, CLAIM_BATCH, ds->queue, &ds->q_len,
                      &ds->next_due, err);
    ds->q_head = 0;
    ds->claimed_at = now;
    ds->claimed_full = ds->q_len == CLAIM_BATCH;
    return rc;
}

/* Starts queued rows in free slots, as the rate lets them, claiming a new
 * batch when the queue is empty and it is time (claim_at()). */
static enum slh_err
fill_url(struct slh_deliverer *d, struct dest_state *ds, int64_t now,
         struct slh_error *err)
{
    size_t k = 0;

    dl_throttle_look(d, ds, now);
    if (ds->inflight >= ds->n_slots)
        return SLH_OK;
    if (ds->q_len == 0 && claim_at(ds) <= now) {
        enum slh_err rc = claim_url(d, ds, now, err);
        if (rc != SLH_OK)
            return rc;
    }
    while (ds->q_len > 0 && ds->inflight < ds->n_slots &&
           dl_may_start(ds, now)) {
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
        dl_started(ds, now);
        if (dl_http_start(d, s, now) != SLH_OK) {
            dl_record(d, ds, &s->claim, 0, false, 0, "out of memory", now, 0);
            dl_http_release(s);
        }
    }
    return SLH_OK;
}

/* Every destination claims and starts what is due (look: whether or not
 * it thinks so: rows may have come). */
static enum slh_err
fill(struct slh_deliverer *d, bool look, int64_t now, struct slh_error *err)
{
    enum slh_err rc = SLH_OK;

    for (size_t i = 0; i < d->n_ds; i++) {
        struct dest_state *ds = &d->ds[i];
        if (look)
            ds->next_due = INT64_MIN;
        if (ds->dest->url != NULL)
            rc = fill_url(d, ds, now, err);
        else if (ds->next_due <= now)
            rc = fill_file(d, ds, now, err);
        if (rc != SLH_OK)
            return rc;
    }
    return SLH_OK;
}

/* Ends ds's attempts in flight, unfinished, and empties its queue; their
 * seqs into seqs (room for SLH_MAX_CONCURRENCY + CLAIM_BATCH), how many
 * the result. */
static size_t
drop_held(struct slh_deliverer *d, struct dest_state *ds, int64_t *seqs)
{
    size_t n = 0;

    for (size_t k = 0; k < ds->n_slots; k++) {
        struct slot *s = &ds->slots[k];
        if (!s->busy)
            continue;
        seqs[n++] = s->claim.seq;
        dl_http_cancel(d, s);
    }
    for (; ds->q_len > 0; ds->q_len--, ds->q_head++) {
        seqs[n++] = ds->queue[ds->q_head].seq;
        dl_claim_free(&ds->queue[ds->q_head]);
    }
    return n;
}

/* Gives back what is in flight, for another run or deliverer to retry. */
static void
abandon(struct slh_deliverer *d)
{
    int64_t seqs[SLH_MAX_CONCURRENCY + CLAIM_BATCH];
    int64_t now = slh_now_ms();

    for (size_t i = 0; i < d->n_ds; i++) {
        struct dest_state *ds = &d->ds[i];
        size_t n;

        if (ds->dest->url == NULL)
            continue;
        n = drop_held(d, ds, seqs);
        if (n > 0)
            dl_unclaim(d, ds->dest->name, seqs, n, now);
    }
}

/*
 * d's owner has had no good beat for SLH_STORE_FENCE_MS (store.h): what it
 * claimed may be taken back by the others soon, and posted by them. So its
 * attempts in flight end here, unfinished (as not made: whoever gives the
 * rows back uncounts them), and nothing is claimed until a beat works
 * again (dl_spool_recover()). Nothing is given back from here: a row may
 * be another's by now, and unclaim does not ask whose it is.
 */
static void
fence(struct slh_deliverer *d)
{
    int64_t seqs[SLH_MAX_CONCURRENCY + CLAIM_BATCH];
    size_t n = 0;

    for (size_t i = 0; i < d->n_ds; i++)
        if (d->ds[i].dest->url != NULL)
            n += drop_held(d, &d->ds[i], seqs);
    d->is_fenced = true;
    dl_note(d,
            "fenced: no good beat for %d ms (%s): the %zu row(s) it held "
            "dropped, attempts in flight stopped; claims nothing until a "
            "beat works",
            SLH_STORE_FENCE_MS,
            d->beat_err.text[0] != '\0' ? d->beat_err.text : "no answer yet",
            n);
}

/* ---- The loop ---- */

/* What a pass looks at before it fills, true when rows may be due: the
 * owner's beat (fenced without one) and dead deliverers' claims, the
 * hourly purge, and, every IDLE_POLL_MS, whether the spool moved or
 * another connection wrote to it. */
static bool
look_around(struct slh_deliverer *d, int64_t now)
{
    bool look = false;
    int64_t v;

    if (dl_spool_recover(d, now))
        look = true;
    /* By the pass's start: a beat that works is never older, so that an
     * owner that cannot lapse (SQLite's) is never fenced. */
    if (!d->is_fenced && now - d->beat_at > SLH_STORE_FENCE_MS)
        fence(d);
    dl_spool_purge(d, now);
    if (now - d->version_checked < IDLE_POLL_MS)
        return look;
    if (holds_nothing(d) && dl_spool_follow(d))
        look = true;
    v = dl_spool_version(d);
    look = look || v != d->version;
    d->version = v;
    d->version_checked = now;
    return look;
}

static bool
must_flush(const struct slh_deliverer *d, int64_t now, bool once, bool stopping)
{
    if (d->n_fin >= FLUSH_BATCH || stopping)
        return true;
    if (d->n_fin == 0)
        return false;
    return now - d->fin_since >= FLUSH_MS ||
           (in_flight(d) == 0 && (once || now - d->fin_since >= GATHER_MS));
}

/* How long to sleep: until the first destination with room has rows due,
 * at most IDLE_POLL_MS. */
static long
poll_timeout(const struct slh_deliverer *d, int64_t now)
{
    int64_t t = IDLE_POLL_MS;

    if (d->is_fenced) /* nothing starts before a beat, once a second */
        return IDLE_POLL_MS;
    if (d->n_fin > 0)
        t = d->fin_since + (in_flight(d) == 0 ? GATHER_MS : FLUSH_MS) - now;
    for (size_t i = 0; i < d->n_ds; i++) {
        const struct dest_state *ds = &d->ds[i];
        int64_t due = ds->next_due;
        if (ds->dest->url != NULL && ds->inflight >= ds->n_slots)
            continue;
        if (ds->dest->url != NULL && ds->q_len == 0)
            due = claim_at(ds);
        else if (ds->q_len > 0) /* what fill left: its rate holds it */
            due = ds->start_at;
        if (due <= now)
            t = 0;
        else if (due - now < t)
            t = due - now;
    }
    return (long)(t > 0 ? t : 0);
}

enum slh_err
slh_deliverer_run(struct slh_deliverer *d, bool once, struct slh_error *err)
{
    int64_t grace_end = 0;
    enum slh_err rc;

    /* Outcomes that a failed flush left from the last run (the spool full
     * or read-only for a while) are recorded first: claiming more before
     * they are would let d->fin grow past its size. */
    rc = dl_flush(d, slh_now_ms(), err);
    if (rc != SLH_OK)
        return rc;
    for (size_t i = 0; i < d->n_ds; i++)
        d->ds[i].next_due = INT64_MIN;
    d->version = dl_spool_version(d);
    d->version_checked = slh_now_ms();
    d->recovered_at = 0; /* now */
    d->is_index_behind = true;
    for (;;) {
        int64_t now = slh_now_ms();
        bool stopping = atomic_load(&d->stop);
        bool look = atomic_exchange(&d->wake, false);
        long wait;

        if (!stopping && look_around(d, now))
            look = true;
        d->is_index_behind = d->is_index_behind || look;
        if (!stopping && !d->is_fenced)
            rc = fill(d, look, now, err);
        if (rc == SLH_OK)
            rc = dl_http_perform(d, err);
        if (rc == SLH_OK && must_flush(d, now, once, stopping))
            rc = dl_flush(d, slh_now_ms(), err);
        if (rc != SLH_OK)
            break;
        if (stopping) {
            if (in_flight(d) == 0)
                break;
            if (grace_end == 0)
                grace_end = now + STOP_GRACE_MS;
            else if (now >= grace_end)
                break;
        } else if (once && in_flight(d) == 0 && !any_due(d, now)) {
            break;
        } else if (once && d->is_fenced) {
            rc = slh_error_set(
                err, SLH_ESTORE, "%s%sno good beat for %d ms: claims dropped",
                d->beat_err.text, d->beat_err.text[0] != '\0' ? ": " : "",
                SLH_STORE_FENCE_MS);
            break;
        }
        /* Idle, with nothing in flight and nothing due soon, it indexes
         * events for lookups, a batch a turn, until none is left: work
         * the receive path left, which waits while deliveries go on
         * (--once does it after: slh_deliverer_index_all()). */
        wait = stopping ? 50 : poll_timeout(d, slh_now_ms());
        if (!stopping && !once && wait >= INDEX_IDLE_MS && in_flight(d) == 0) {
            dl_spool_index(d);
            wait = d->is_index_behind ? 0 : poll_timeout(d, slh_now_ms());
        }
        dl_http_wait(d, (int)wait);
    }
    abandon(d);
    /* Ended on the spool's error, what it held may not have gone back (the
     * database down): the next run's first good beat is then a fresh one,
     * which gives back what still names this owner, not its leases. */
    if (rc != SLH_OK)
        d->is_fenced = true;
    return rc;
}

void
slh_deliverer_index_all(struct slh_deliverer *d)
{
    d->is_index_behind = true;
    while (d->is_index_behind && !atomic_load(&d->stop))
        dl_spool_index(d);
}

/* ---- From other threads, and before run ---- */

void
slh_deliverer_wake(struct slh_deliverer *d)
{
    atomic_store(&d->wake, true);
    dl_http_wakeup(d);
}

void
slh_deliverer_stop(struct slh_deliverer *d)
{
    atomic_store(&d->stop, true);
    dl_http_wakeup(d);
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

void
slh_deliverer_on_note(struct slh_deliverer *d,
                      void (*fn)(const char *text, void *arg), void *arg)
{
    d->on_note = fn;
    d->note_arg = arg;
}

void
dl_note(struct slh_deliverer *d, const char *fmt, ...)
{
    char text[SLH_ERROR_TEXT + 256];
    va_list ap;

    if (d->on_note == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    d->on_note(text, d->note_arg);
}

/* ---- Making and freeing ---- */

/* A url destination's slots, as many as its concurrency. */
static bool
alloc_slots(struct dest_state *ds)
{
    const struct slh_dest *dest = ds->dest;

    if (dest->url == NULL)
        return true;
    ds->n_slots = dest->concurrency > 0 ? (size_t)dest->concurrency
                                        : SLH_DEFAULT_CONCURRENCY;
    ds->slots = calloc(ds->n_slots, sizeof(*ds->slots));
    ds->is_throttled = dest->rate > 0 || dest->breaker > 0;
    if (dest->rate > 0) {
        ds->win = calloc(1, sizeof(*ds->win));
        if (ds->win == NULL)
            return false;
    }
    return ds->slots != NULL;
}

/* The destinations' states and room for outcomes and a file batch. */
static enum slh_err
alloc_state(struct slh_deliverer *d, struct slh_error *err)
{
    size_t n = d->cfg->n_dests;

    d->ds = calloc(n > 0 ? n : 1, sizeof(*d->ds));
    if (d->ds == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    d->n_ds = n;
    for (size_t i = 0; i < n; i++) {
        d->ds[i].dest = &d->cfg->dests[i];
        if (!alloc_slots(&d->ds[i]))
            return slh_error_set(err, SLH_ENOMEM, "out of memory");
        d->n_slots += d->ds[i].n_slots;
    }
    /* What can pile up between two flushes: FLUSH_BATCH - 1 outcomes, a
     * failed start per slot, a file batch, and an outcome per slot. */
    d->cap_fin = FLUSH_BATCH + 2 * d->n_slots + FILE_BATCH;
    d->fin = calloc(d->cap_fin, sizeof(*d->fin));
    d->batch = calloc(FILE_BATCH, sizeof(*d->batch));
    if (d->fin == NULL || d->batch == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    return SLH_OK;
}

void
slh_deliverer_free(struct slh_deliverer *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; d->ds != NULL && i < d->n_ds; i++)
        for (size_t k = 0; k < CLAIM_BATCH; k++)
            dl_claim_free(&d->ds[i].queue[k]);
    dl_http_close(d);
    dl_spool_close(d);
    for (size_t i = 0; d->ds != NULL && i < d->n_ds; i++) {
        free(d->ds[i].slots);
        free(d->ds[i].win);
    }
    free(d->ds);
    free(d->fin);
    free(d->batch);
    free(d);
}

enum slh_err
slh_deliverer_new(struct slh_deliverer **out, const struct slh_config *cfg,
                  struct slh_error *err)
{
    struct slh_deliverer *d;
    enum slh_err rc;

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
    rc = dl_spool_open(d, err);
    if (rc == SLH_OK)
        rc = alloc_state(d, err);
    if (rc == SLH_OK)
        rc = dl_http_open(d, err);
    if (rc != SLH_OK) {
        slh_deliverer_free(d);
        return rc;
    }
    *out = d;
    return SLH_OK;
}

/* ---- Yielding to the receiving side ---- */

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

/* deliver_spool.c: every read and write of the spool a deliverer makes
 * (deliver_int.h). The only deliver*.c that calls store.h. */
#include "deliver_int.h"

#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "retry.h"
#include "store.h"

/* A claim outlives its attempt's timeout by this much, so that a slow
 * moment in this process never lets another deliverer take a row that is
 * still in flight here. */
#define LEASE_MARGIN_MS 30000
/* How often a deliverer beats and looks for dead ones whose claims to take
 * back (at start, then this often): an open() and a flock() per other
 * deliverer (SQLite), a statement or two (PostgreSQL). Well under
 * SLH_STORE_FENCE_MS, so that one beat lost costs nothing. */
#define RECOVER_EVERY_MS 1000
#define PURGE_EVERY_MS (3600 * 1000) /* per spool, whoever delivers */

/* ---- Opening and following the spool ---- */

enum slh_err
dl_spool_open(struct slh_deliverer *d, struct slh_error *err)
{
    const char *dir = d->cfg->spool;
    enum slh_err rc;

    rc = slh_store_open(&d->sp, dir, SLH_STORE_CREATE, err);
    if (rc != SLH_OK)
        return rc;
    rc = slh_store_role(d->sp, SLH_STORE_DELIVERER, err);
    if (rc != SLH_OK)
        return rc;
    /* Without an owner of its own (a full inode table, too many open
     * files) it claims for no owner: what it holds when killed waits for
     * the lease, as it always did. */
    (void)slh_store_owner_open(d->sp, &d->owner, NULL);
    d->beat_at = slh_now_ms();
    return SLH_OK;
}

void
dl_spool_close(struct slh_deliverer *d)
{
    /* Its claims are given back (run's end) or finished: nothing to take. */
    slh_store_owner_close(d->owner);
    d->owner = NULL;
    slh_store_close(d->sp);
    d->sp = NULL;
}

int64_t
dl_spool_version(struct slh_deliverer *d)
{
    return slh_store_data_version(d->sp);
}

/*
 * The spool directory was removed (or its file system replaced) and a
 * receiver made a new spool at the path: d->sp still reads the unlinked
 * files, where nothing new ever arrives, so follow the receiver there. A
 * path with no database yet is left to the receiver to create; the old
 * handle is kept until a new one works.
 */
bool
dl_spool_follow(struct slh_deliverer *d)
{
    struct slh_store *sp = NULL;

    if (!slh_store_is_replaced(d->sp))
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
    d->beat_at = slh_now_ms();
    d->is_fenced = false; /* a new owner, holding nothing */
    d->recovered_at = 0;  /* now */
    return true;
}

/* ---- Writes: in a transaction of their own, or written through ---- */

/* A transaction is asked for (tx) when what fn reads decides what it
 * writes, a throttled claim say: on d->sp that is a put of tasks alone. */
enum slh_err
dl_write(struct slh_deliverer *d,
         enum slh_err (*fn)(struct slh_store *sp, void *arg,
                            struct slh_error *err),
         void *arg, bool tx, struct slh_error *err)
{
    struct slh_store_task task = {.fn = fn, .arg = arg};

    if (d->write != NULL)
        return d->write(&task, d->write_ctx, err);
    if (tx)
        return slh_store_put_tasks(d->sp, d->cfg, NULL, 0, &task, 1,
                                   slh_now_ms(), NULL, err);
    return fn(d->sp, arg, err);
}

/* Long enough for the last row of a claimed batch to wait for a slot while
 * every attempt before it times out. */
int64_t
dl_lease_ms(const struct slh_dest *dest)
{
    int64_t slots = dest->concurrency > 0 ? dest->concurrency : 1;

    return (CLAIM_BATCH / slots + 1) * dest->timeout * 1000 + LEASE_MARGIN_MS;
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
                           dl_lease_ms(a->dest), a->max, a->claims, a->n,
                           a->next_due, err);
}

enum slh_err
dl_claim(struct slh_deliverer *d, const struct slh_dest *dest, int64_t now,
         size_t max, struct slh_claim *claims, size_t *n, int64_t *next_due,
         struct slh_error *err)
{
    struct claim_args a = {.dest = dest,
                           .owner = slh_store_owner_token(d->owner),
                           .now = now,
                           .max = max,
                           .claims = claims,
                           .n = n};
    enum slh_err rc;

    a.next_due = next_due; /* written by the task (claim_task()) */
    *n = 0;
    rc = dl_write(d, claim_task, &a, false, err);
    if (rc != SLH_OK) {
        /* Claimed in a writer's transaction that failed to commit. */
        for (size_t i = 0; i < *n; i++)
            slh_store_claim_free(&claims[i]);
        *n = 0;
    }
    return rc;
}

void
dl_claim_free(struct slh_claim *c)
{
    slh_store_claim_free(c);
}

/* Rows given back untried. */
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

void
dl_unclaim(struct slh_deliverer *d, const char *dest, const int64_t *seqs,
           size_t n, int64_t now)
{
    dl_write(d, unclaim_task, &(struct unclaim_args){dest, seqs, n, now}, false,
             NULL);
}

/*
 * Beats, then takes back at once what dead deliverers had claimed
 * (store.h), rather than leaving it to their leases: at the first look of
 * a run, then every RECOVER_EVERY_MS. On d->sp itself, not written
 * through: the beat must run on the connection that holds the owner, and
 * the take-back writes nothing unless a deliverer died, which is rare (one
 * that fails leaves the dead for the next look). A fenced deliverer's
 * outcomes are recorded before it beats is_fresh, which gives back what
 * still names it: those rows would be given back first, and the outcomes
 * then dropped as another's.
 */
bool
dl_spool_recover(struct slh_deliverer *d, int64_t now)
{
    bool is_fresh = d->is_fenced && d->n_fin == 0, is_back = false;
    size_t taken = 0;
    int64_t at;

    if (now - d->recovered_at < RECOVER_EVERY_MS)
        return false;
    d->recovered_at = now;
    slh_error_clear(&d->beat_err);
    at = slh_now_ms(); /* the beat is no older than this on the server */
    if (slh_store_owner_beat(d->sp, d->owner, now, is_fresh, &d->beat_err) ==
        SLH_OK) {
        d->beat_at = at;
        is_back = is_fresh;
        d->is_fenced = d->is_fenced && !is_fresh;
    }
    if (is_back)
        dl_note(d, "fenced no more: a beat worked; the rows that still named "
                   "this deliverer given back");
    if (slh_store_take_back(d->sp, slh_store_owner_token(d->owner), now, &taken,
                            NULL) != SLH_OK ||
        taken == 0)
        return is_back;
    dl_note(d, "took back %zu row(s) that dead deliverers had claimed", taken);
    return true;
}

/*
 * Once an hour per spool, whichever deliverer of any host asks first (the
 * store keeps the turn: slh_store_purge_due()), forgets delivered events
 * older than [receiver] retention so the spool does not grow without end.
 * The turn is asked for once a minute. A failed purge is tried again next
 * hour: it never holds up delivery.
 */
void
dl_spool_purge(struct slh_deliverer *d, int64_t now)
{
    bool is_due = false;

    if (now - d->purge_checked < PURGE_EVERY_MS / 60)
        return;
    d->purge_checked = now;
    if (slh_store_purge_due(d->sp, PURGE_EVERY_MS, now, &is_due, NULL) ==
            SLH_OK &&
        is_due)
        (void)slh_store_purge(d->sp, now - d->cfg->retention * 1000, NULL,
                              NULL);
}

/* arg: the size_t that gets how many were indexed. */
static enum slh_err
index_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    return slh_store_index(sp, SLH_STORE_INDEX_BATCH, arg, err);
}

/*
 * Makes SLH_STORE_INDEX_BATCH more events findable by MessageId (store.h),
 * while events may be waiting for it: work the receive path no longer
 * does, left for the moments a deliverer has nothing else to do. Written
 * through, in slhook.fcgi it joins the committer's next transaction. A
 * failure (a full disk) waits for the next event to try again.
 */
void
dl_spool_index(struct slh_deliverer *d)
{
    size_t n = 0;

    if (!d->is_index_behind)
        return;
    d->is_index_behind = dl_write(d, index_task, &n, false, NULL) == SLH_OK &&
                         n == SLH_STORE_INDEX_BATCH;
}

/* ---- Outcomes ---- */

/* The retry jitter's generator (xorshift32): no need for more. */
uint32_t
dl_rnd(struct slh_deliverer *d)
{
    uint32_t x = d->rnd;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    d->rnd = x;
    return x;
}

void
dl_record(struct slh_deliverer *d, struct dest_state *ds,
          const struct slh_claim *c, int status, bool is_abort,
          int64_t retry_after_ms, const char *error, int64_t now, long ms)
{
    struct finished *f = &d->fin[d->n_fin++];

    if (d->n_fin == 1)
        d->fin_since = now;
    memset(f, 0, sizeof(*f));
    /* Recorded only while the row still names it (store.h). */
    f->o.owner = slh_store_owner_token(d->owner);
    if (status == 0 && error == NULL) {
        f->o.seq = c->seq;
        memcpy(f->o.id, c->id, sizeof(f->o.id));
        f->o.state = SLH_DELIVERED;
        f->o.due = now;
    } else {
        slh_retry_decide(&f->o, c, ds->dest->max_age, status, is_abort,
                         retry_after_ms, now, dl_rnd(d));
        snprintf(f->o.error, sizeof(f->o.error), "%s",
                 error != NULL ? error : "");
        if (f->o.state == SLH_PENDING && f->o.due < ds->next_due)
            ds->next_due = f->o.due;
    }
    /* An endpoint that answers "abort" is up, whatever its status says. */
    if (status != 0 || error != NULL)
        dl_throttle_note(d, ds, !is_abort && slh_throttle_is_failure(status),
                         now);
    f->o.dest = ds->dest->name;
    f->ds = ds;
    f->at = now;
    f->received = c->received;
    f->attempts = c->attempts;
    f->ms = ms;
}

/* Tells the front end's log what each recorded attempt came to, and the
 * metrics each delivery's latency. */
static void
tell_attempts(const struct slh_deliverer *d)
{
    for (size_t i = 0; i < d->n_fin; i++)
        if (d->fin[i].o.state == SLH_DELIVERED)
            slh_metrics_delivered(d->fin[i].o.dest,
                                  (double)(d->fin[i].at - d->fin[i].received) /
                                      1000.0);
    for (size_t i = 0; d->on_attempt != NULL && i < d->n_fin; i++) {
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
            .breaker = f->breaker,
        };
        d->on_attempt(&a, d->arg);
    }
}

/* The outcomes, and what they do to their destinations' breakers, in one
 * write. */
struct flush_args {
    struct slh_deliverer *d;
    const struct slh_outcome *o;
    size_t n;
    int64_t now;
    bool is_throttled;
};

static enum slh_err
flush_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    struct flush_args *a = arg;
    enum slh_err rc = slh_store_finish(sp, a->o, a->n, a->now, err);

    if (rc == SLH_OK && a->is_throttled)
        rc = dl_throttle_record(a->d, sp, a->d->fin, a->n, err);
    return rc;
}

enum slh_err
dl_flush(struct slh_deliverer *d, int64_t now, struct slh_error *err)
{
    struct flush_args a = {.d = d, .n = d->n_fin, .now = now};
    struct slh_outcome *o;
    enum slh_err rc = SLH_OK;

    if (d->n_fin == 0)
        return SLH_OK;
    o = malloc(d->n_fin * sizeof(*o));
    if (o == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n_fin; i++) {
        o[i] = d->fin[i].o;
        a.is_throttled = a.is_throttled || (d->fin[i].ds->is_throttled &&
                                            d->fin[i].ds->dest->breaker > 0);
    }
    a.o = o;
    rc = dl_write(d, flush_task, &a, a.is_throttled, err);
    free(o);
    if (rc != SLH_OK)
        return rc;
    tell_attempts(d);
    d->n_fin = 0;
    return SLH_OK;
}

/* deliver_throttle.c: the deliverer's side of protecting a destination
 * (throttle.h decides, the store keeps the state): throttled claims, the
 * breaker fed with outcomes, the queue's pace, an open breaker's queue
 * given back and its rows swept past max_age. */
#include "deliver_int.h"

#include <string.h>

/* ds->th changed: when it is open the next claim is its probe, and when
 * it closed the backlog is claimed now, whatever a claim made while it was
 * open (a probe in flight: no claim until its lease ends) had set. */
static void
retime(struct dest_state *ds)
{
    int64_t at =
        slh_throttle_is_open(&ds->th, ds->dest) ? ds->th.probe_at : INT64_MIN;

    if (at < ds->next_due)
        ds->next_due = at;
}

struct tclaim {
    struct slh_deliverer *d;
    struct dest_state *ds;
    int64_t now;
    size_t max;
    size_t *n;
    int64_t next_due;
    struct slh_throttle_state th;
    int64_t first_us;
    bool is_rate_held;
};

/* Read the state, ask, claim, reserve, write: one transaction, so that
 * deliverers sharing the spool share the breaker and the pace. */
static enum slh_err
tclaim_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    struct tclaim *a = arg;
    const struct slh_dest *dest = a->ds->dest;
    int64_t again, lease = dl_lease_ms(dest);
    size_t allow;
    enum slh_err rc;

    for (size_t i = 0; i < *a->n; i++) /* a rolled-back run's */
        slh_store_claim_free(&a->ds->queue[i]);
    *a->n = 0;
    rc = slh_store_throttle_get(sp, dest->name, &a->th, err);
    if (rc != SLH_OK)
        return rc;
    allow = slh_throttle_allow(&a->th, dest, a->now, a->max, &again);
    a->is_rate_held = false;
    if (allow == 0) {
        rc = slh_store_next_due(sp, dest->name, &a->next_due, err);
        a->is_rate_held =
            a->next_due <= a->now && !slh_throttle_is_open(&a->th, dest);
        if (a->next_due != INT64_MAX && a->next_due < again)
            a->next_due = again;
        return rc;
    }
    rc = slh_store_claim(sp, dest->name, slh_store_owner_token(a->d->owner),
                         a->now, lease, allow, a->ds->queue, a->n, &a->next_due,
                         err);
    if (rc != SLH_OK || *a->n == 0)
        return rc;
    slh_throttle_take(&a->th, dest, a->now, *a->n, lease, &a->first_us);
    return slh_store_throttle_put(sp, dest->name, &a->th, err);
}

enum slh_err
dl_claim_throttled(struct slh_deliverer *d, struct dest_state *ds, int64_t now,
                   size_t max, size_t *n, struct slh_error *err)
{
    struct tclaim a = {.d = d, .ds = ds, .now = now, .max = max, .n = n};
    int64_t again;
    enum slh_err rc;

    *n = 0;
    /* Open and no probe due, or the rate reserved a second ahead, as far
     * as this deliverer knows (others only reserve more): nothing to ask
     * the store (a write transaction) until then. */
    if (slh_throttle_allow(&ds->th, ds->dest, now, max, &again) == 0) {
        ds->next_due = again;
        ds->is_rate_held = !slh_throttle_is_open(&ds->th, ds->dest);
        return SLH_OK;
    }
    a.next_due = INT64_MAX;
    rc = dl_write(d, tclaim_task, &a, true, err);
    if (rc != SLH_OK) {
        for (size_t i = 0; i < *n; i++)
            dl_claim_free(&ds->queue[i]);
        *n = 0;
        return rc;
    }
    ds->th = a.th;
    ds->next_due = a.next_due;
    ds->is_rate_held = a.is_rate_held;
    ds->claimed_opened = a.th.opened;
    /* Never before the next start this deliverer's own schedule holds. */
    if (*n > 0 && a.first_us > ds->pace_us)
        ds->pace_us = a.first_us;
    return SLH_OK;
}

/* Applies f's outcome to s, marking f when it opened or closed the
 * breaker. */
static void
apply(struct slh_deliverer *d, struct slh_throttle_state *s, struct finished *f)
{
    bool was_open = slh_throttle_is_open(s, f->ds->dest);
    bool is_open;

    slh_throttle_outcome(s, f->ds->dest, slh_throttle_is_failure(f->o.status),
                         f->at, dl_rnd(d));
    is_open = slh_throttle_is_open(s, f->ds->dest);
    f->breaker = is_open == was_open ? 0
                 : is_open           ? SLH_BREAKER_OPENED
                                     : SLH_BREAKER_CLOSED;
}

enum slh_err
dl_throttle_record(struct slh_deliverer *d, struct slh_store *sp,
                   struct finished *f, size_t n, struct slh_error *err)
{
    for (size_t i = 0; i < d->n_ds; i++) {
        struct dest_state *ds = &d->ds[i];
        struct slh_throttle_state s;
        bool is_mine = false;
        enum slh_err rc;

        for (size_t k = 0; k < n && !is_mine; k++)
            is_mine = f[k].ds == ds;
        if (!ds->is_throttled || !is_mine || ds->dest->breaker <= 0)
            continue;
        rc = slh_store_throttle_get(sp, ds->dest->name, &s, err);
        for (size_t k = 0; rc == SLH_OK && k < n; k++)
            if (f[k].ds == ds)
                apply(d, &s, &f[k]);
        if (rc == SLH_OK)
            rc = slh_store_throttle_put(sp, ds->dest->name, &s, err);
        if (rc != SLH_OK)
            return rc;
        ds->th = s;
        retime(ds);
    }
    return SLH_OK;
}

void
dl_throttle_note(struct slh_deliverer *d, struct dest_state *ds,
                 bool is_failure, int64_t now)
{
    if (!ds->is_throttled)
        return;
    slh_throttle_outcome(&ds->th, ds->dest, is_failure, now, dl_rnd(d));
    retime(ds);
}

bool
dl_may_start(struct dest_state *ds, int64_t now)
{
    if (!ds->is_throttled)
        return true;
    if (!slh_throttle_may_start(ds->pace_us, now)) {
        ds->start_at = ds->pace_us / 1000;
        return false;
    }
    return ds->win == NULL ||
           slh_throttle_window_allows(ds->win, ds->dest, now, &ds->start_at);
}

void
dl_started(struct dest_state *ds, int64_t now)
{
    if (!ds->is_throttled)
        return;
    ds->pace_us = slh_throttle_started(ds->dest, ds->pace_us, now);
    if (ds->win != NULL)
        slh_throttle_window_add(ds->win, ds->dest, now);
}

/* The queue, claimed before the breaker opened, goes back untried. */
static void
give_back_queue(struct slh_deliverer *d, struct dest_state *ds, int64_t now)
{
    int64_t seqs[CLAIM_BATCH];
    size_t n = 0;

    for (; ds->q_len > 0; ds->q_len--, ds->q_head++) {
        seqs[n++] = ds->queue[ds->q_head].seq;
        dl_claim_free(&ds->queue[ds->q_head]);
    }
    if (n > 0)
        dl_unclaim(d, ds->dest->name, seqs, n, now);
}

struct expire_args {
    const struct slh_dest *dest;
    int64_t now;
};

static enum slh_err
expire_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    const struct expire_args *a = arg;

    return slh_store_expire(sp, a->dest->name, a->dest->max_age, a->now,
                            "max_age passed while the breaker was open", NULL,
                            err);
}

void
dl_throttle_look(struct slh_deliverer *d, struct dest_state *ds, int64_t now)
{
    struct expire_args a = {ds->dest, now};

    if (!ds->is_throttled || !slh_throttle_is_open(&ds->th, ds->dest))
        return;
    if (ds->th.opened != ds->claimed_opened) {
        give_back_queue(d, ds, now);
        ds->claimed_opened = ds->th.opened;
    }
    if (now - ds->swept_at < slh_throttle_sweep_ms(ds->dest))
        return;
    ds->swept_at = now;
    (void)dl_write(d, expire_task, &a, false, NULL);
}

/* throttle.c: a destination's pace and circuit breaker (throttle.h). */
#include "throttle.h"

#include <string.h>

#include "retry.h"

#define SWEEP_MIN_MS 1000
#define SWEEP_MAX_MS 60000

int64_t
slh_throttle_interval_us(const struct slh_dest *d)
{
    int64_t period_us = d->rate_period_ms * 1000;

    if (d->rate <= 0)
        return 0;
    /* Rounded up: N starts an interval apart must never fit in less than
     * the period, or a window of it could hold N + 1. */
    return (period_us + d->rate - 1) / d->rate;
}

/* The schedule's next start after next_us at now_ms: kept when it is
 * ahead or behind by less than the slack (a deliverer a little late
 * catches up, not slowing every start after); else, idle or stalled, it
 * starts over at now_ms, with no burst to make up for the past. */
static int64_t
resume(int64_t next_us, int64_t now_ms)
{
    return next_us >= (now_ms - SLH_THROTTLE_SLACK_MS) * 1000 ? next_us
                                                              : now_ms * 1000;
}

/* The earliest start not yet reserved. */
static int64_t
pace_base(const struct slh_throttle_state *s, int64_t now_ms)
{
    return resume(s->pace_us, now_ms);
}

size_t
slh_throttle_allow(const struct slh_throttle_state *s, const struct slh_dest *d,
                   int64_t now_ms, size_t max, int64_t *again_ms)
{
    int64_t interval = slh_throttle_interval_us(d);
    int64_t ahead = (now_ms + SLH_THROTTLE_AHEAD_MS) * 1000;

    *again_ms = now_ms;
    if (slh_throttle_is_open(s, d)) {
        if (now_ms < s->probe_at) {
            *again_ms = s->probe_at;
            return 0;
        }
        max = max < 1 ? max : 1;
    }
    if (interval > 0 && max > 0) {
        int64_t base = pace_base(s, now_ms);
        int64_t fit;
        if (base >= ahead) {
            *again_ms = base / 1000 - SLH_THROTTLE_AHEAD_MS + 1;
            return 0;
        }
        fit = (ahead - base + interval - 1) / interval;
        if ((uint64_t)fit < max)
            max = (size_t)fit;
    }
    return max;
}

void
slh_throttle_take(struct slh_throttle_state *s, const struct slh_dest *d,
                  int64_t now_ms, size_t n, int64_t lease_ms, int64_t *first_us)
{
    int64_t interval = slh_throttle_interval_us(d);

    *first_us = pace_base(s, now_ms);
    if (n == 0)
        return;
    if (interval > 0)
        s->pace_us = *first_us + (int64_t)n * interval;
    if (slh_throttle_is_open(s, d)) {
        s->is_probing = true;
        s->probe_at = now_ms + lease_ms;
    }
}

bool
slh_throttle_is_open(const struct slh_throttle_state *s,
                     const struct slh_dest *d)
{
    return d->breaker > 0 && s->opened != 0;
}

bool
slh_throttle_is_failure(int status)
{
    return status == 0 || status == 429 || (status >= 500 && status <= 599);
}

/* Closed again: the count and the probe schedule start over; the pace is
 * kept, so the backlog drains at the rate. */
static void
close_breaker(struct slh_throttle_state *s)
{
    int64_t pace = s->pace_us;

    memset(s, 0, sizeof(*s));
    s->pace_us = pace;
}

void
slh_throttle_outcome(struct slh_throttle_state *s, const struct slh_dest *d,
                     bool is_failure, int64_t now_ms, uint32_t rnd)
{
    if (d->breaker <= 0)
        return;
    if (!is_failure) {
        close_breaker(s);
        return;
    }
    if (s->opened == 0) {
        if (++s->failures < d->breaker)
            return;
        s->opened = now_ms;
        s->probes = 0;
        s->is_probing = false;
        s->probe_at = now_ms + slh_retry_backoff(1, rnd);
        return;
    }
    if (!s->is_probing)
        return; /* started before it opened */
    s->is_probing = false;
    s->probes++;
    s->probe_at = now_ms + slh_retry_backoff(s->probes + 1, rnd);
}

bool
slh_throttle_may_start(int64_t next_us, int64_t now_ms)
{
    return next_us < (now_ms + 1) * 1000;
}

int64_t
slh_throttle_started(const struct slh_dest *d, int64_t next_us, int64_t now_ms)
{
    int64_t interval = slh_throttle_interval_us(d);

    if (interval == 0)
        return next_us;
    return resume(next_us, now_ms) + interval;
}

/* A slice of d's period: rounded up, so SLH_THROTTLE_BUCKETS of them cover
 * it. */
static int64_t
slice_ms(const struct slh_dest *d)
{
    int64_t ms =
        (d->rate_period_ms + SLH_THROTTLE_BUCKETS - 1) / SLH_THROTTLE_BUCKETS;

    return ms > 0 ? ms : 1;
}

/* Moves w on to the slice of now_ms, forgetting those out of reach. */
static void
advance(struct slh_throttle_window *w, const struct slh_dest *d, int64_t now_ms)
{
    const int64_t kept = SLH_THROTTLE_BUCKETS + 1;
    int64_t c = now_ms / slice_ms(d);

    if (c - w->head >= kept) {
        memset(w->count, 0, sizeof(w->count));
        w->sum = 0;
    } else {
        for (int64_t b = w->head + 1; b <= c; b++) {
            w->sum -= w->count[b % kept];
            w->count[b % kept] = 0;
        }
    }
    if (c > w->head)
        w->head = c;
}

bool
slh_throttle_window_allows(struct slh_throttle_window *w,
                           const struct slh_dest *d, int64_t now_ms,
                           int64_t *again_ms)
{
    int64_t slice = slice_ms(d);

    if (d->rate <= 0)
        return true;
    advance(w, d, now_ms);
    /* A window of the period through now touches at most the kept slices
     * (the period's, and the one it starts in). */
    if (w->sum < d->rate)
        return true;
    *again_ms = (now_ms / slice + 1) * slice;
    return false;
}

void
slh_throttle_window_add(struct slh_throttle_window *w, const struct slh_dest *d,
                        int64_t now_ms)
{
    if (d->rate <= 0)
        return;
    advance(w, d, now_ms);
    w->count[w->head % (SLH_THROTTLE_BUCKETS + 1)]++;
    w->sum++;
}

int64_t
slh_throttle_sweep_ms(const struct slh_dest *d)
{
    int64_t ms = d->max_age > INT64_MAX / 250 ? SWEEP_MAX_MS : d->max_age * 250;

    if (ms < SWEEP_MIN_MS)
        return SWEEP_MIN_MS;
    return ms > SWEEP_MAX_MS ? SWEEP_MAX_MS : ms;
}

int64_t
slh_throttle_due(const struct slh_throttle_state *s, const struct slh_dest *d,
                 int64_t due, int64_t now_ms)
{
    int64_t sweep = now_ms + slh_throttle_sweep_ms(d);

    if (due == INT64_MAX || !slh_throttle_is_open(s, d) || due >= s->probe_at)
        return due;
    return s->probe_at < sweep ? s->probe_at : sweep;
}

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

/* The earliest start not yet reserved, never in the past. */
static int64_t
pace_base(const struct slh_throttle_state *s, int64_t now_ms)
{
    return s->pace_us > now_ms * 1000 ? s->pace_us : now_ms * 1000;
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
    /* A start later than its time moves the next ones with it: catching
     * up would put more than the rate in the window it falls in. */
    return (next_us > now_ms * 1000 ? next_us : now_ms * 1000) + interval;
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

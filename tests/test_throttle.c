/* test_throttle: a destination's pace and circuit breaker (throttle.h),
 * pure: times are arguments, the state a struct. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "retry.h"
#include "throttle.h"

#define T0 INT64_C(1700000000000)

static struct slh_dest
dest(long rate, int64_t period_ms, int breaker)
{
    struct slh_dest d;

    memset(&d, 0, sizeof(d));
    d.name = (char *)"x";
    d.rate = rate;
    d.rate_period_ms = period_ms;
    d.breaker = breaker;
    d.concurrency = 8;
    d.timeout = 10;
    d.max_age = 4 * 24 * 3600;
    return d;
}

static void
test_interval(void)
{
    struct slh_dest d = dest(100, 1000, 0);

    CHECK(slh_throttle_interval_us(&d) == 10000, "100/s: 10 ms");
    d = dest(7, 1000, 0);
    CHECK(slh_throttle_interval_us(&d) == 142858, "7/s rounded up: %" PRId64,
          slh_throttle_interval_us(&d));
    CHECK(7 * slh_throttle_interval_us(&d) >= 1000000,
          "7 intervals never fit in less than a second");
    d = dest(60, 60000, 0);
    CHECK(slh_throttle_interval_us(&d) == 1000000, "60/m: 1 s");
    d = dest(3600, 3600000, 0);
    CHECK(slh_throttle_interval_us(&d) == 1000000, "3600/h: 1 s");
    d = dest(0, 0, 0);
    CHECK(slh_throttle_interval_us(&d) == 0, "no rate: no interval");
}

/* Simulates a deliverer that claims what it may and starts each row when
 * its reserved time comes and the window lets it, looking every step ms
 * (1 to 4, varying, when jumpy: a busy deliverer is late); counts the
 * starts in every window of the period (sliding, by the millisecond) and
 * the span. */
static void
pace_run(struct slh_dest *d, int total, bool jumpy, int64_t *max_window,
         int64_t *span)
{
    static int64_t starts[20000];
    static struct slh_throttle_window w;
    struct slh_throttle_state s = {0};
    int64_t now = T0, next_us = 0, first, again;
    uint32_t rnd = 12345;
    size_t queued = 0;
    int n = 0;

    memset(&w, 0, sizeof(w));
    while (n < total) {
        if (queued == 0) {
            size_t k = slh_throttle_allow(&s, d, now, 64, &again);
            if (k > (size_t)(total - n))
                k = (size_t)(total - n);
            slh_throttle_take(&s, d, now, k, 60000, &first);
            if (k > 0 && first > next_us)
                next_us = first;
            queued = k;
        }
        while (queued > 0 && slh_throttle_may_start(next_us, now) &&
               slh_throttle_window_allows(&w, d, now, &again)) {
            starts[n++] = now;
            next_us = slh_throttle_started(d, next_us, now);
            slh_throttle_window_add(&w, d, now);
            queued--;
        }
        rnd = rnd * 1103515245u + 12345u;
        now += jumpy ? 1 + (int64_t)(rnd >> 16) % 4 : 1;
    }
    *max_window = 0;
    for (int i = 0, j = 0; i < n; i++) {
        while (starts[i] - starts[j] >= d->rate_period_ms)
            j++;
        if (i - j + 1 > *max_window)
            *max_window = i - j + 1;
    }
    *span = starts[n - 1] - starts[0];
}

static void
test_pace(void)
{
    struct slh_dest d = dest(100, 1000, 0);
    int64_t most, span;

    pace_run(&d, 1000, false, &most, &span);
    CHECK(most == 100, "100/s: at most 100 starts in any second (%" PRId64 ")",
          most);
    CHECK(span >= 9900 && span <= 10020,
          "100/s: 1000 starts spread over 9.99 s (%" PRId64 " ms)", span);
    pace_run(&d, 1000, true, &most, &span);
    CHECK(most <= 100, "100/s, late now and then: at most 100 (%" PRId64 ")",
          most);
    CHECK(span >= 9900 && span <= 10100,
          "100/s, late now and then: still 10 s (%" PRId64 " ms)", span);
    d = dest(7, 1000, 0);
    pace_run(&d, 100, true, &most, &span);
    CHECK(most == 7, "7/s: at most 7 in any second (%" PRId64 ")", most);
    d = dest(5000, 1000, 0);
    pace_run(&d, 12000, false, &most, &span);
    CHECK(most <= 5000, "5000/s: at most 5000 in any second (%" PRId64 ")",
          most);
    CHECK(span >= 2390 && span <= 2450, "5000/s: 12000 in 2.4 s (%" PRId64 ")",
          span);
    pace_run(&d, 12000, true, &most, &span);
    CHECK(most <= 5000 && span <= 2500,
          "5000/s, late: at most 5000 a second (%" PRId64 "), 12000 in %" PRId64
          " ms",
          most, span);
    d = dest(2, 60000, 0);
    pace_run(&d, 6, true, &most, &span);
    CHECK(most == 2, "2/m: two a minute (%" PRId64 ")", most);
}

/* The window alone: the rate in any period, whatever asks. */
static void
test_window(void)
{
    static struct slh_throttle_window w;
    struct slh_dest d = dest(3, 1000, 0), none = dest(0, 0, 0);
    int64_t again = 0;
    int let = 0;

    memset(&w, 0, sizeof(w));
    for (int i = 0; i < 10; i++) {
        if (slh_throttle_window_allows(&w, &d, T0 + i, &again)) {
            slh_throttle_window_add(&w, &d, T0 + i);
            let++;
        }
    }
    CHECK(let == 3, "3/s: a burst of asks, 3 let go (%d)", let);
    CHECK(!slh_throttle_window_allows(&w, &d, T0 + 999, &again) &&
              again == T0 + 1000,
          "not within the second; again at the next slice (%" PRId64 ")",
          again - T0);
    CHECK(!slh_throttle_window_allows(&w, &d, T0 + 1000, &again),
          "nor at the second's end: the window is kept a slice longer");
    CHECK(slh_throttle_window_allows(&w, &d, T0 + 1001, &again),
          "the first out of every window: one more");
    slh_throttle_window_add(&w, &d, T0 + 1001);
    CHECK(slh_throttle_window_allows(&w, &d, T0 + 1002, &again) &&
              slh_throttle_window_allows(&w, &d, T0 + 1003, &again) == true,
          "the second and third slices freed");
    CHECK(slh_throttle_window_allows(&w, &d, T0 + 500000, &again),
          "long idle: all forgotten");
    CHECK(slh_throttle_window_allows(&w, &none, T0, &again), "no rate: always");
}

static void
test_allow(void)
{
    struct slh_dest d = dest(100, 1000, 0), none = dest(0, 0, 0);
    struct slh_throttle_state s = {0};
    int64_t again, first;

    CHECK(slh_throttle_allow(&s, &none, T0, 64, &again) == 64 && again == T0,
          "no rate, no breaker: the whole batch");
    CHECK(slh_throttle_allow(&s, &d, T0, 64, &again) == 64, "64 of 100/s");
    CHECK(slh_throttle_allow(&s, &d, T0, 500, &again) == 100,
          "a second's worth ahead at most");
    slh_throttle_take(&s, &d, T0, 100, 60000, &first);
    CHECK(first == T0 * 1000, "the first start is now");
    CHECK(s.pace_us == (T0 + 1000) * 1000, "a second reserved");
    CHECK(slh_throttle_allow(&s, &d, T0, 64, &again) == 0 && again == T0 + 1,
          "all reserved: ask again in a millisecond, got %" PRId64, again - T0);
    CHECK(slh_throttle_allow(&s, &d, T0 + 10, 64, &again) == 1,
          "10 ms on: one more");
    slh_throttle_take(&s, &d, T0 + 10, 1, 60000, &first);
    CHECK(first == (T0 + 1000) * 1000, "after the reserved ones");
    /* Idle for a minute: no credit saved up, no burst. */
    CHECK(slh_throttle_allow(&s, &d, T0 + 60000, 500, &again) == 100,
          "after idling, still a second's worth");
    slh_throttle_take(&s, &d, T0 + 60000, 0, 60000, &first);
    CHECK(s.pace_us == (T0 + 1010) * 1000, "taking none reserves nothing");
    d = dest(1, 3600000, 0);
    memset(&s, 0, sizeof(s));
    CHECK(slh_throttle_allow(&s, &d, T0, 64, &again) == 1, "1/h: one");
    slh_throttle_take(&s, &d, T0, 1, 60000, &first);
    CHECK(slh_throttle_allow(&s, &d, T0 + 1000, 64, &again) == 0 &&
              again == T0 + 3600000 - 1000 + 1,
          "1/h: the next an hour on (%" PRId64 ")", again - T0);
}

static void
test_started(void)
{
    struct slh_dest d = dest(100, 1000, 0), none = dest(0, 0, 0);

    CHECK(slh_throttle_started(&d, T0 * 1000, T0) == (T0 + 10) * 1000,
          "on time: an interval on");
    CHECK(slh_throttle_started(&d, T0 * 1000 + 500, T0) == T0 * 1000 + 10500,
          "early in its millisecond: from its own time");
    CHECK(slh_throttle_started(&d, T0 * 1000, T0 + 35) == (T0 + 10) * 1000,
          "a little late: the schedule kept, to catch up");
    CHECK(slh_throttle_started(&d, T0 * 1000, T0 + 5000) == (T0 + 5010) * 1000,
          "after a stall: from when it went, no burst");
    CHECK(slh_throttle_started(&none, 5, T0) == 5, "no rate: no pace");
}

static void
test_failure(void)
{
    CHECK(slh_throttle_is_failure(0), "no answer fails");
    CHECK(slh_throttle_is_failure(500) && slh_throttle_is_failure(503) &&
              slh_throttle_is_failure(599),
          "5xx fails");
    CHECK(slh_throttle_is_failure(429), "429 fails");
    CHECK(!slh_throttle_is_failure(200) && !slh_throttle_is_failure(204),
          "2xx succeeds");
    CHECK(!slh_throttle_is_failure(400) && !slh_throttle_is_failure(404) &&
              !slh_throttle_is_failure(410),
          "other 4xx: the endpoint answers");
}

static void
test_breaker(void)
{
    struct slh_dest d = dest(0, 0, 3), off = dest(0, 0, 0);
    struct slh_throttle_state s = {0};
    int64_t again, first, now = T0;

    for (int i = 0; i < 50; i++)
        slh_throttle_outcome(&s, &off, true, now, 0);
    CHECK(s.opened == 0 && s.failures == 0, "breaker 0: never opens");
    slh_throttle_outcome(&s, &d, true, now, 0);
    slh_throttle_outcome(&s, &d, true, now, 0);
    slh_throttle_outcome(&s, &d, false, now, 0);
    CHECK(s.failures == 0 && s.opened == 0, "a success resets the count");
    slh_throttle_outcome(&s, &d, true, now, 0);
    slh_throttle_outcome(&s, &d, true, now, 0);
    CHECK(s.opened == 0 && s.failures == 2, "two failures: closed");
    slh_throttle_outcome(&s, &d, true, now, 0);
    CHECK(s.opened == now, "the third in a row opens it");
    CHECK(s.probe_at == now + SLH_BACKOFF_FIRST_MS, "first probe in 1 s");
    CHECK(slh_throttle_allow(&s, &d, now + 500, 64, &again) == 0 &&
              again == s.probe_at,
          "open: nothing before the probe");
    /* Attempts in flight when it opened fail without moving the probe. */
    slh_throttle_outcome(&s, &d, true, now + 100, 0);
    CHECK(s.probes == 0 && s.probe_at == now + SLH_BACKOFF_FIRST_MS,
          "a straggler's failure moves nothing");
    now += SLH_BACKOFF_FIRST_MS;
    CHECK(slh_throttle_allow(&s, &d, now, 64, &again) == 1,
          "the probe: one row");
    slh_throttle_take(&s, &d, now, 1, 120000, &first);
    CHECK(s.is_probing && s.probe_at == now + 120000,
          "in flight: no other probe until its lease ends");
    CHECK(slh_throttle_allow(&s, &d, now + 10, 64, &again) == 0,
          "one probe at a time");
    slh_throttle_outcome(&s, &d, true, now + 50, 0);
    CHECK(s.probes == 1 && !s.is_probing &&
              s.probe_at == now + 50 + slh_retry_backoff(2, 0),
          "a failed probe: the next a backoff step on (%" PRId64 ")",
          s.probe_at - now - 50);
    now = s.probe_at;
    slh_throttle_take(&s, &d, now, 1, 120000, &first);
    slh_throttle_outcome(&s, &d, true, now + 5, 0);
    CHECK(s.probes == 2 && s.probe_at == now + 5 + slh_retry_backoff(3, 0),
          "and the next one step further");
    CHECK(s.opened == T0, "opened stays when it first opened");
    now = s.probe_at;
    slh_throttle_take(&s, &d, now, 1, 120000, &first);
    slh_throttle_outcome(&s, &d, false, now + 5, 0);
    CHECK(s.opened == 0 && s.failures == 0 && s.probes == 0 && !s.is_probing,
          "a success closes it");
    CHECK(slh_throttle_allow(&s, &d, now + 6, 64, &again) == 64,
          "closed: the whole batch again");
}

static void
test_breaker_rate(void)
{
    struct slh_dest d = dest(10, 1000, 1);
    struct slh_throttle_state s = {0};
    int64_t first;

    slh_throttle_take(&s, &d, T0, 10, 60000, &first);
    slh_throttle_outcome(&s, &d, true, T0 + 5, 0);
    CHECK(s.opened == T0 + 5 && s.pace_us == (T0 + 1000) * 1000,
          "opening keeps the pace");
    slh_throttle_outcome(&s, &d, false, T0 + 6, 0);
    CHECK(s.opened == 0 && s.pace_us == (T0 + 1000) * 1000,
          "closing keeps it too: the backlog drains at the rate");
    slh_throttle_take(&s, &d, T0 + 6, 1, 60000, &first);
    CHECK(first == (T0 + 1000) * 1000, "the rate still holds after it closed");
}

static void
test_sweep_due(void)
{
    struct slh_dest d = dest(0, 0, 3);
    struct slh_throttle_state s = {0};

    d.max_age = 8;
    CHECK(slh_throttle_sweep_ms(&d) == 2000, "max_age 8 s: sweep every 2 s");
    d.max_age = 1;
    CHECK(slh_throttle_sweep_ms(&d) == 1000, "at least 1 s");
    d.max_age = 4 * 24 * 3600;
    CHECK(slh_throttle_sweep_ms(&d) == 60000, "at most 60 s");
    d.max_age = INT64_MAX;
    CHECK(slh_throttle_sweep_ms(&d) == 60000, "no overflow");
    CHECK(slh_throttle_due(&s, &d, T0, T0) == T0, "closed: as due");
    {
        struct slh_dest off = dest(10, 1000, 0);
        struct slh_throttle_state left = {.opened = T0, .probe_at = T0 + 9000};
        int64_t again;
        CHECK(!slh_throttle_is_open(&left, &off) &&
                  slh_throttle_allow(&left, &off, T0, 64, &again) == 10 &&
                  slh_throttle_due(&left, &off, T0, T0) == T0,
              "a breaker removed from the config: its state counts for "
              "nothing");
    }
    s.opened = T0;
    s.probe_at = T0 + 30000;
    CHECK(slh_throttle_due(&s, &d, T0, T0) == T0 + 30000, "open: at the probe");
    CHECK(slh_throttle_due(&s, &d, INT64_MAX, T0) == INT64_MAX,
          "nothing pending: never");
    s.probe_at = T0 + 7200000;
    CHECK(slh_throttle_due(&s, &d, T0, T0) == T0 + 60000,
          "a far probe: the sweep first");
    CHECK(slh_throttle_due(&s, &d, T0 + 9000000, T0) == T0 + 9000000,
          "rows due after the probe: as due");
}

int
main(void)
{
    test_interval();
    test_pace();
    test_window();
    test_allow();
    test_started();
    test_failure();
    test_breaker();
    test_breaker_rate();
    test_sweep_due();
    return check_summary();
}

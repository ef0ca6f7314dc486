/* throttle.h: what protects a destination from slhook, decided purely: the
 * pace of its attempts (rate) and its circuit breaker (breaker).
 *
 * No clock, no store, no network: times are arguments, and the state is a
 * struct slh_throttle_state that the store keeps for every deliverer of the
 * spool (store.h), read and written inside the transaction that claims or
 * records. deliver.c asks here how many rows a destination may claim, when
 * each claimed row may start, and what an outcome does to the breaker.
 *
 * Rate: a destination with `rate = N/s` (or /m, /h) has its attempts
 * scheduled one interval (the period over N, rounded up to a microsecond)
 * apart, evenly spread, not in a burst at each period's start; a start a
 * little late is caught up, and a window of the last period's starts
 * (struct slh_throttle_window) makes sure no period-long window ever holds
 * more than N. The next free start time (pace_us) is reserved at claim
 * time for every row claimed, so deliverers sharing a spool share the
 * schedule too (the window is each deliverer's own).
 *
 * Breaker: after `breaker = N` consecutive failed attempts (no answer:
 * timeout, connection or TLS error; 5xx; 429) the destination is open: it
 * claims nothing but one probe at a time, the first SLH_BACKOFF_FIRST_MS
 * after it opened, then on retry.h's backoff schedule after each failed
 * probe. Any other answer (2xx, or a 4xx but 429: the endpoint is up and
 * answering) closes it, and its backlog drains at its rate. An attempt
 * already in flight when it opened fails without pushing the schedule.
 */
#ifndef SLH_THROTTLE_H
#define SLH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

/* A rate's starts are reserved this far ahead at most: what one claim may
 * take at once, so a slow rate never leaves claimed rows waiting long. */
#define SLH_THROTTLE_AHEAD_MS 1000

/*
 * The least time between two starts of d's attempts, in microseconds
 * (d->rate_period_ms * 1000 / d->rate, rounded up), 0 without a rate.
 */
int64_t slh_throttle_interval_us(const struct slh_dest *d);

/*
 * How many rows of d may be claimed at now_ms, at most max: while the
 * breaker is open, 0 until its probe is due (s->probe_at), then 1; with a
 * rate, no more than can start within SLH_THROTTLE_AHEAD_MS of now_ms.
 * When the answer is 0, *again_ms gets when to ask again (unix ms); else
 * now_ms.
 */
size_t slh_throttle_allow(const struct slh_throttle_state *s,
                          const struct slh_dest *d, int64_t now_ms, size_t max,
                          int64_t *again_ms);

/*
 * Records in s that n rows of d were claimed at now_ms (n at most what
 * slh_throttle_allow() gave): their starts are reserved, the first at
 * *first_us (unix microseconds; before now_ms only when the last ones
 * went late, by less than SLH_THROTTLE_SLACK_MS), each next one an
 * interval later; and, while open, the probe (n 1) is in flight until
 * lease_ms from now (no other probe before then, in case its deliverer
 * dies). n 0 changes nothing.
 */
void slh_throttle_take(struct slh_throttle_state *s, const struct slh_dest *d,
                       int64_t now_ms, size_t n, int64_t lease_ms,
                       int64_t *first_us);

/* Whether d's breaker is open by s: one configured (a state left by a
 * breaker since removed from the config counts for nothing). */
bool slh_throttle_is_open(const struct slh_throttle_state *s,
                          const struct slh_dest *d);

/* Whether an attempt that came to HTTP status (0: no answer) counts as a
 * failure for the breaker: no answer, 429, 5xx. */
bool slh_throttle_is_failure(int status);

/*
 * What one attempt's outcome (is_failure, at now_ms) does to d's breaker
 * state s: closed, a failure counts and the breaker-th in a row opens it
 * (opened now_ms, first probe SLH_BACKOFF_FIRST_MS on, with jitter from
 * rnd); anything else resets the count. Open, a failed probe sets the next
 * probe one backoff step later; a failure that was no probe (started
 * before it opened) changes nothing; anything else closes it. Without a
 * breaker (d->breaker 0) s is left as it is.
 */
void slh_throttle_outcome(struct slh_throttle_state *s,
                          const struct slh_dest *d, bool is_failure,
                          int64_t now_ms, uint32_t rnd);

/* Whether a start reserved for next_us may go at now_ms: the clock has
 * milliseconds, so any time in the current millisecond does. */
bool slh_throttle_may_start(int64_t next_us, int64_t now_ms);

/*
 * The time of the start after one reserved for next_us went at now_ms: an
 * interval after next_us, the schedule kept, so that a start a little late
 * (less than SLH_THROTTLE_SLACK_MS) does not slow all the next ones, and
 * the window (below) keeps the catching up within the rate; after a longer
 * stall, an interval after now_ms: no burst for the time lost.
 */
#define SLH_THROTTLE_SLACK_MS 100
int64_t slh_throttle_started(const struct slh_dest *d, int64_t next_us,
                             int64_t now_ms);

/*
 * What makes the rate exact whatever the schedule: the starts of the last
 * period, counted in SLH_THROTTLE_BUCKETS slices of it (a millisecond each
 * for /s), one deliverer's. A start is let go only when the slices any
 * period-long window through now can touch hold fewer than the rate, so
 * no such window ever holds more (at the cost of a slice: 0.1 %).
 * Zero it before the first use.
 */
#define SLH_THROTTLE_BUCKETS 1000
struct slh_throttle_window {
    int64_t head; /* the newest slice's number (time / slice) */
    int64_t sum;  /* starts in the slices kept */
    uint32_t count[SLH_THROTTLE_BUCKETS + 1];
};

/* Whether one more start at now_ms keeps d's rate in every window; when
 * not, *again_ms gets when to ask again. */
bool slh_throttle_window_allows(struct slh_throttle_window *w,
                                const struct slh_dest *d, int64_t now_ms,
                                int64_t *again_ms);

/* Counts a start at now_ms (after slh_throttle_window_allows()). */
void slh_throttle_window_add(struct slh_throttle_window *w,
                             const struct slh_dest *d, int64_t now_ms);

/*
 * How often the rows of an open destination are swept for those past
 * max_age, which no attempt will find: a quarter of max_age, between 1 s
 * and 60 s.
 */
int64_t slh_throttle_sweep_ms(const struct slh_dest *d);

/*
 * When d's pending rows, the earliest due at due (INT64_MAX: none), are
 * worth a deliverer's waking, as far as s tells at now_ms: while the
 * breaker is open, at its next probe, or sooner at the next sweep
 * (slh_throttle_sweep_ms()); else at due.
 */
int64_t slh_throttle_due(const struct slh_throttle_state *s,
                         const struct slh_dest *d, int64_t due, int64_t now_ms);

#endif

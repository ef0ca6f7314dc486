/* retry.h: when to try a failed delivery again, and when to give up.
 *
 * The policy is pure (no store, no clock, no network), so it is tested on
 * its own: exponential backoff with jitter, the answer's Retry-After
 * honoured, a destination's max_age as the horizon, 410 and the answer
 * header "webhook-delivery: abort" as a refusal.
 */
#ifndef SLH_RETRY_H
#define SLH_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define SLH_BACKOFF_FIRST_MS 1000 /* the wait after the first failure */
#define SLH_BACKOFF_CAP_MS                                                     \
    (INT64_C(2) * 3600 * 1000) /* the longest wait, jitter aside */

/*
 * The wait in ms before the next attempt after the given number of failed
 * attempts (1 for the first failure): SLH_BACKOFF_FIRST_MS doubled per
 * further failure up to SLH_BACKOFF_CAP_MS, plus a jitter of up to a quarter
 * taken from rnd (any random 32 bits).
 */
int64_t slh_retry_backoff(int attempts, uint32_t rnd);

/* The answer header that makes an event a dead letter at once, whatever the
 * status: a destination's way to say "never send me this one again". */
#define SLH_ABORT_HEADER "webhook-delivery: abort"

/*
 * Whether the header line line[0..len) (as received: "Name: value", its
 * CRLF or LF included or not) is SLH_ABORT_HEADER: name and value compared
 * without regard to case, blanks around the value ignored.
 */
bool slh_retry_is_abort_header(const char *line, size_t len);

/*
 * Decides what attempt c (of a destination with the given max_age in
 * seconds) came to, at now_ms: an answer carrying SLH_ABORT_HEADER
 * (is_abort) is dead at once, whatever its status; else status 2xx is
 * delivered; 410 is dead at once; anything else (status 0: no answer) is a
 * retry at now_ms plus the larger of the backoff and retry_after_ms (the
 * answer's Retry-After, 0 for none), but never later than the horizon
 * (received or revived + max_age), so the last attempt falls on it; an
 * attempt failing at or after the horizon is dead. Sets o's seq, id, state,
 * due and status; leaves dest and error to the caller.
 */
void slh_retry_decide(struct slh_outcome *o, const struct slh_claim *c,
                      int64_t max_age, int status, bool is_abort,
                      int64_t retry_after_ms, int64_t now_ms, uint32_t rnd);

#endif

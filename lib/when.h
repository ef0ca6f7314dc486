/* when.h: the times an operator types and reads (`slhook events --since`,
 * `replay --until`, the received times shown). Pure functions of their
 * arguments: no clock is read here, the caller passes "now". */
#ifndef SLH_WHEN_H
#define SLH_WHEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Room for the longest text slh_when_format() writes, NUL included. */
#define SLH_WHEN_LEN 32

/*
 * Parses an operator's TIME into *ms (unix milliseconds):
 *   - RFC 3339: 2026-12-02T10:00:00Z, with a fraction of a second
 *     (.5, .123456: kept to the millisecond) and an offset (+01:00,
 *     -0530 not accepted: the colon is RFC 3339's), 't'/' ' for 'T' and
 *     'z' for 'Z' too;
 *   - a date, 2026-12-02: that day's midnight UTC;
 *   - an age before now_ms: a whole number with s, m, h or d ("90m", "3d").
 * Years 1970 to 9999 only. On failure *ms is untouched and the result is
 * SLH_EINVAL, with err saying what TIME may be.
 */
enum slh_err slh_when_parse(const char *text, int64_t now_ms, int64_t *ms,
                            struct slh_error *err);

/*
 * Writes ms as RFC 3339 in UTC into buf (size SLH_WHEN_LEN or more):
 * "2026-12-02T10:00:00Z", or with is_ms "2026-12-02T10:00:00.123Z". A time
 * outside 1970..9999 is written "-".
 */
void slh_when_format(int64_t ms, bool is_ms, char *buf, size_t size);

/*
 * Writes a number of seconds as the config spells a duration, in the
 * largest unit that divides it: "7d", "36h", "90m", "45s" (0: "0s").
 */
void slh_when_duration(int64_t secs, char *buf, size_t size);

#endif

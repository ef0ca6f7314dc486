/* config_throttle.c: the [destination] keys that protect a destination
 * (rate, concurrency, breaker; throttle.h decides with them). */
#include "config_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RATE 1000000L  /* attempts per period */
#define MAX_BREAKER 100000 /* consecutive failures */

/* A whole number from 1 to max, all of text; -1 for anything else. */
static long
whole(const char *text, const char *end, long max)
{
    char *stop;
    long n;

    if (text == end || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    n = strtol(text, &stop, 10);
    if (errno != 0 || stop != end || n < 1 || n > max)
        return -1;
    return n;
}

int
config_set_rate(struct parser *p, const char *value)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *slash = strchr(value, '/');
    long n = slash != NULL ? whole(value, slash, MAX_RATE) : -1;

    for (size_t i = 0; n > 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(slash + 1, units[i].unit) == 0) {
            config_cur_dest(p)->rate = n;
            config_cur_dest(p)->rate_period_ms = units[i].ms;
            return 1;
        }
    }
    return fail(p, "bad rate '%.40s' (N/s, N/m or N/h, N from 1 to %ld)", value,
                MAX_RATE);
}

int
config_set_concurrency(struct parser *p, const char *value)
{
    long n = whole(value, value + strlen(value), SLH_MAX_CONCURRENCY);

    if (n < 0)
        return fail(p, "bad concurrency '%.40s' (1 to %d)", value,
                    SLH_MAX_CONCURRENCY);
    config_cur_dest(p)->concurrency = (int)n;
    return 1;
}

int
config_set_breaker(struct parser *p, const char *value)
{
    long n = strcmp(value, "0") == 0
                 ? 0
                 : whole(value, value + strlen(value), MAX_BREAKER);

    if (n < 0)
        return fail(p,
                    "bad breaker '%.40s' (failures in a row that open it, 1 "
                    "to %d; 0: none)",
                    value, MAX_BREAKER);
    config_cur_dest(p)->breaker = (int)n;
    return 1;
}

bool
config_finish_throttle(struct parser *p, struct slh_dest *d)
{
    if (d->file != NULL &&
        (d->rate > 0 || d->breaker > 0 || d->concurrency > 0))
        return config_fail_at(p, d->line,
                              "[destination %s]: rate, concurrency and "
                              "breaker are for url destinations",
                              d->name) != 0;
    if (d->concurrency == 0)
        d->concurrency = SLH_DEFAULT_CONCURRENCY;
    return true;
}

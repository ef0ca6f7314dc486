/* when.c: parsing and writing the times of when.h. */
#include "when.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"

#define MS_PER_S INT64_C(1000)
#define MIN_YEAR 1970
#define MAX_YEAR 9999

static const char what[] =
    "TIME is RFC 3339 (2026-12-02T10:00:00Z), a date (2026-12-02) or an "
    "age (90m, 2h, 3d)";

/* n decimal digits at *p into *v, moving *p past them. */
static bool
digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        *v = *v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return true;
}

static bool
is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days in month m (1..12) of year y. */
static int
month_days(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* YYYY-MM-DD at *p into tm, moving *p past it. */
static bool
date_part(const char **p, struct tm *tm)
{
    int y, m, d;

    if (!digits(p, 4, &y) || *(*p)++ != '-' || !digits(p, 2, &m) ||
        *(*p)++ != '-' || !digits(p, 2, &d))
        return false;
    if (y < MIN_YEAR || y > MAX_YEAR || m < 1 || m > 12 || d < 1 ||
        d > month_days(y, m))
        return false;
    tm->tm_year = y - 1900;
    tm->tm_mon = m - 1;
    tm->tm_mday = d;
    return true;
}

/* The fraction after a '.', to the millisecond, moving *p past it all. */
static bool
fraction(const char **p, int64_t *ms)
{
    int64_t scale = 100;
    const char *start = *p;

    *ms = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++) {
        *ms += (**p - '0') * scale;
        scale /= 10;
    }
    return *p > start;
}

/* Z, or +HH:MM / -HH:MM, into *offset (seconds east of UTC). */
static bool
zone(const char **p, int64_t *offset)
{
    int h, m, sign;

    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        *offset = 0;
        return true;
    }
    if (**p != '+' && **p != '-')
        return false;
    sign = *(*p)++ == '-' ? -1 : 1;
    if (!digits(p, 2, &h) || *(*p)++ != ':' || !digits(p, 2, &m) || h > 23 ||
        m > 59)
        return false;
    *offset = sign * (h * 3600 + m * 60);
    return true;
}

/* RFC 3339, or a date alone, into *ms. */
static bool
rfc3339(const char *p, int64_t *ms)
{
    struct tm tm = {0};
    int64_t frac = 0, offset = 0;

    if (!date_part(&p, &tm))
        return false;
    if (*p != '\0') {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return false;
        p++;
        if (!digits(&p, 2, &tm.tm_hour) || *p++ != ':' ||
            !digits(&p, 2, &tm.tm_min) || *p++ != ':' ||
            !digits(&p, 2, &tm.tm_sec) || tm.tm_hour > 23 || tm.tm_min > 59 ||
            tm.tm_sec > 60)
            return false;
        if (*p == '.' && (p++, !fraction(&p, &frac)))
            return false;
        if (!zone(&p, &offset) || *p != '\0')
            return false;
    }
    *ms = ((int64_t)timegm(&tm) - offset) * MS_PER_S + frac;
    return true;
}

enum slh_err
slh_when_parse(const char *text, int64_t now_ms, int64_t *ms,
               struct slh_error *err)
{
    size_t len = text != NULL ? strlen(text) : 0;
    int64_t secs = 0;

    if (len > 1 && strchr("smhd", text[len - 1]) != NULL && text[0] >= '0' &&
        text[0] <= '9' && slh_duration_parse(text, &secs) &&
        secs <= now_ms / MS_PER_S) {
        *ms = now_ms - secs * MS_PER_S;
        return SLH_OK;
    }
    if (len > 0 && rfc3339(text, ms))
        return SLH_OK;
    return slh_error_set(err, SLH_EINVAL, "bad time '%.40s': %s",
                         text != NULL ? text : "", what);
}

void
slh_when_format(int64_t ms, bool is_ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / MS_PER_S);
    struct tm tm;

    if (ms < 0 || gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > MAX_YEAR) {
        snprintf(buf, size, "-");
        return;
    }
    if (is_ms)
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)(ms % MS_PER_S));
    else
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void
slh_when_duration(int64_t secs, char *buf, size_t size)
{
    static const struct {
        int64_t secs;
        char unit;
    } units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (secs > 0 && secs % units[i].secs == 0) {
            snprintf(buf, size, "%lld%c", (long long)(secs / units[i].secs),
                     units[i].unit);
            return;
        }
    snprintf(buf, size, "%llds", (long long)secs);
}

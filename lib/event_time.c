#include "event.h"

#include <string.h>
#include <time.h>

/* Reads exactly n digits at *s into *v, moving *s past them. */
static bool
digits(const char **s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*s)++) {
        if (**s < '0' || **s > '9')
            return false;
        *v = *v * 10 + (**s - '0');
    }
    return true;
}

/* Reads c at *s, moving past it. */
static bool
expect(const char **s, char c)
{
    if (**s != c)
        return false;
    (*s)++;
    return true;
}

/* "HH:MM:SS" at *s into t. */
static bool
clock_time(const char **s, struct tm *t)
{
    return digits(s, 2, &t->tm_hour) && expect(s, ':') &&
           digits(s, 2, &t->tm_min) && expect(s, ':') &&
           digits(s, 2, &t->tm_sec);
}

/* ISO 8601: "YYYY-MM-DDTHH:MM:SS[.f...][Z|+hh:mm|-hh:mm]". */
static bool
iso_time(const char *s, struct tm *t, int *usec, int *offset)
{
    int oh, om;

    if (!digits(&s, 4, &t->tm_year) || !expect(&s, '-') ||
        !digits(&s, 2, &t->tm_mon) || !expect(&s, '-') ||
        !digits(&s, 2, &t->tm_mday) || (*s != 'T' && *s != ' '))
        return false;
    s++;
    if (!clock_time(&s, t))
        return false;
    if (expect(&s, '.')) {
        int scale = 100000;
        if (*s < '0' || *s > '9')
            return false;
        for (; *s >= '0' && *s <= '9'; s++, scale /= 10)
            *usec += (*s - '0') * scale;
    }
    if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1;
        if (!digits(&s, 2, &oh) || !expect(&s, ':') || !digits(&s, 2, &om))
            return false;
        *offset = sign * (oh * 3600 + om * 60);
    } else {
        expect(&s, 'Z');
    }
    return *s == '\0';
}

/* RFC 1123: "Www, DD Mon YYYY HH:MM:SS GMT". */
static bool
http_time(const char *s, struct tm *t)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

    if (strlen(s) != sizeof("Thu, 02 May 2024 08:16:01 GMT") - 1 ||
        s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        strcmp(s + 25, " GMT") != 0)
        return false;
    s += 5;
    if (!digits(&s, 2, &t->tm_mday))
        return false;
    t->tm_mon = 0;
    for (int m = 0; m < 12; m++)
        if (strncmp(s + 1, months + 3 * m, 3) == 0)
            t->tm_mon = m + 1;
    s += 5;
    return t->tm_mon != 0 && digits(&s, 4, &t->tm_year) && expect(&s, ' ') &&
           clock_time(&s, t);
}

/* Days from 1970-01-01 to the proleptic Gregorian y-m-d (m 1..12). By hand
 * rather than timegm(), whose first call reads /etc/localtime: a file read
 * for every slhook.cgi process, for a zone this never uses. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t
slh_event_at(const json_t *datetime)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *s = json_string_value(datetime);
    struct tm t = {0};
    int usec = 0, offset = 0;
    int64_t secs;

    if (s == NULL || (!iso_time(s, &t, &usec, &offset) && !http_time(s, &t)))
        return 0;
    if (t.tm_mon < 1 || t.tm_mon > 12 || t.tm_mday < 1 ||
        t.tm_mday > mdays[t.tm_mon - 1] || t.tm_hour > 23 || t.tm_min > 59 ||
        t.tm_sec > 60)
        return 0;
    secs = days_from_civil(t.tm_year, t.tm_mon, t.tm_mday) * 86400 +
           t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec - offset;
    if (secs < 0)
        return 0;
    return secs * 1000000 + usec;
}

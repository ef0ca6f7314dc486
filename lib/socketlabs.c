#include "socketlabs.h"

#include <string.h>
#include <strings.h>

const char *const slh_sl_types[SLH_SL_TYPES] = {SLH_SL_TYPE_NAMES};

const char *const slh_sl_tracking_kinds[SLH_SL_ENUM_VALUES] = {
    SLH_SL_TRACKING_NAMES};

const char *const slh_sl_failure_kinds[SLH_SL_ENUM_VALUES] = {
    "Temporary", "Permanent", "Suppressed"};

int
slh_sl_find(const char *const *names, size_t n, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strlen(names[i]) == len && strncasecmp(s, names[i], len) == 0)
            return (int)i;
    }
    return -1;
}

int
slh_sl_enum_text(const char *const names[SLH_SL_ENUM_VALUES], const char *s)
{
    int i;

    if (s[0] == '\0')
        return -1;
    if (s[0] >= '0' && s[0] <= '2' && s[1] == '\0')
        return s[0] - '0';
    i = slh_sl_find(names, SLH_SL_ENUM_VALUES, s, strlen(s));
    return i >= 0 ? i : -2;
}

/* test_when: the operator's times (when.h), pure: "now" is passed in. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "when.h"

/* 2026-12-02T10:00:00Z */
#define T0 INT64_C(1796205600000)

static int64_t
parse(const char *text, int64_t *ms)
{
    struct slh_error err = {0};

    *ms = -1;
    return slh_when_parse(text, T0, ms, &err) == SLH_OK;
}

static void
test_parse(void)
{
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"2026-12-02T10:00:00Z", T0},
        {"2026-12-02t10:00:00z", T0},
        {"2026-12-02 10:00:00Z", T0},
        {"2026-12-02T10:00:00.5Z", T0 + 500},
        {"2026-12-02T10:00:00.123456Z", T0 + 123},
        {"2026-12-02T11:30:00+01:30", T0},
        {"2026-12-02T05:00:00-05:00", T0},
        {"2026-12-02", T0 - 10 * 3600 * 1000},
        {"1970-01-01", 0},
        {"2024-02-29", INT64_C(1709164800000)},
        {"90m", T0 - 90 * 60 * 1000},
        {"2h", T0 - 2 * 3600 * 1000},
        {"3d", T0 - 3 * 86400 * INT64_C(1000)},
        {"45s", T0 - 45 * 1000},
        {"0m", T0},
    };
    static const char *const bad[] = {
        "",
        "now",
        "90",
        "2h30m",
        "-2h",
        "2026-13-01",
        "2026-02-29",
        "2026-12-32",
        "2026-12-2",
        "1969-12-31",
        "2026-12-02T",
        "2026-12-02T10:00Z",
        "2026-12-02T24:00:00Z",
        "2026-12-02T10:00:00",
        "2026-12-02T10:00:00+0100",
        "2026-12-02T10:00:00.Z",
        "2026-12-02T10:00:00Zjunk",
        "10000-01-01",
        "99999999d",
    };
    struct slh_error err = {0};
    int64_t ms;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK(parse(good[i].text, &ms) && ms == good[i].ms,
              "%s: %" PRId64 ", want %" PRId64, good[i].text, ms, good[i].ms);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!parse(bad[i], &ms) && ms == -1, "'%s' refused", bad[i]);
    CHECK(slh_when_parse("soon", T0, &ms, &err) == SLH_EINVAL &&
              strstr(err.text, "'soon'") != NULL &&
              strstr(err.text, "RFC 3339") != NULL,
          "the error names the text and the forms: %s", err.text);
    CHECK(slh_when_parse(NULL, T0, &ms, NULL) == SLH_EINVAL, "NULL refused");
}

static void
test_format(void)
{
    char buf[SLH_WHEN_LEN];
    int64_t back = 0;

    slh_when_format(T0, false, buf, sizeof(buf));
    CHECK(strcmp(buf, "2026-12-02T10:00:00Z") == 0, "seconds: %s", buf);
    slh_when_format(T0 + 7, true, buf, sizeof(buf));
    CHECK(strcmp(buf, "2026-12-02T10:00:00.007Z") == 0, "ms: %s", buf);
    CHECK(parse(buf, &back) && back == T0 + 7, "read back: %" PRId64, back);
    slh_when_format(-1, false, buf, sizeof(buf));
    CHECK(strcmp(buf, "-") == 0, "before 1970: %s", buf);
    slh_when_format(INT64_MAX, true, buf, sizeof(buf));
    CHECK(strcmp(buf, "-") == 0, "far future: %s", buf);
}

static void
test_duration(void)
{
    static const struct {
        int64_t secs;
        const char *text;
    } cases[] = {
        {7 * 86400, "7d"}, {36 * 3600, "36h"}, {90 * 60, "90m"},
        {45, "45s"},       {0, "0s"},          {86401, "86401s"},
    };
    char buf[32];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        slh_when_duration(cases[i].secs, buf, sizeof(buf));
        CHECK(strcmp(buf, cases[i].text) == 0, "%" PRId64 ": %s, want %s",
              cases[i].secs, buf, cases[i].text);
    }
}

int
main(void)
{
    test_parse();
    test_format();
    test_duration();
    return check_summary();
}

/* test_retry: the retry policy of retry.h, pure: no store, no clock. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "retry.h"

#define T0 INT64_C(1700000000000)

static void
test_backoff(void)
{
    int64_t prev = 0;
    bool grows = true, bounded = true;

    CHECK(slh_retry_backoff(1, 0) == SLH_BACKOFF_FIRST_MS,
          "first wait %" PRId64, slh_retry_backoff(1, 0));
    CHECK(slh_retry_backoff(2, 0) == 2 * SLH_BACKOFF_FIRST_MS, "doubles");
    CHECK(slh_retry_backoff(3, 0) == 4 * SLH_BACKOFF_FIRST_MS, "doubles");
    for (int a = 1; a < 60; a++) {
        int64_t w = slh_retry_backoff(a, 0);
        grows = grows && w >= prev;
        prev = w;
        for (uint32_t r = 1; r != 0 && r < 0xf0000000u; r = r * 7 + 12345) {
            int64_t j = slh_retry_backoff(a, r);
            bounded = bounded && j >= w && j <= w + w / 4;
        }
    }
    CHECK(grows, "never shrinks");
    CHECK(bounded, "jitter stays within a quarter");
    CHECK(slh_retry_backoff(60, 0) == SLH_BACKOFF_CAP_MS, "capped at %" PRId64,
          slh_retry_backoff(60, 0));
    CHECK(slh_retry_backoff(1000000, 0) == SLH_BACKOFF_CAP_MS,
          "huge attempt counts stay capped");
    CHECK(slh_retry_backoff(2, 12345) != slh_retry_backoff(2, 54321),
          "jitter varies");
}

static void
test_decide(void)
{
    struct slh_claim c = {.seq = 7, .attempts = 1, .received = T0};
    struct slh_outcome o;
    int64_t now = T0 + 1000;

    memset(&o, 0, sizeof(o));
    slh_retry_decide(&o, &c, 3600, 200, false, 0, now, 0);
    CHECK(o.state == SLH_DELIVERED && o.seq == 7 && o.status == 200, "200");
    slh_retry_decide(&o, &c, 3600, 299, false, 0, now, 0);
    CHECK(o.state == SLH_DELIVERED, "299 delivered");
    slh_retry_decide(&o, &c, 3600, 410, false, 0, now, 0);
    CHECK(o.state == SLH_DEAD, "410 dead at once");
    slh_retry_decide(&o, &c, 3600, 500, false, 0, now, 0);
    CHECK(o.state == SLH_PENDING && o.due == now + SLH_BACKOFF_FIRST_MS,
          "500 retried after the first backoff");
    slh_retry_decide(&o, &c, 3600, 0, false, 0, now, 0);
    CHECK(o.state == SLH_PENDING && o.status == 0, "no answer retried");
    slh_retry_decide(&o, &c, 3600, 301, false, 0, now, 0);
    CHECK(o.state == SLH_PENDING, "a redirect is not delivered");
    slh_retry_decide(&o, &c, 3600, 429, false, 30000, now, 0);
    CHECK(o.due == now + 30000, "Retry-After longer than backoff honoured");
    slh_retry_decide(&o, &c, 3600, 429, false, 10, now, 0);
    CHECK(o.due == now + SLH_BACKOFF_FIRST_MS,
          "Retry-After shorter than backoff: backoff");
    c.attempts = 40;
    slh_retry_decide(&o, &c, 3600, 500, false, 0, now, 0);
    CHECK(o.state == SLH_PENDING && o.due == T0 + 3600 * 1000,
          "the last retry falls on the horizon");
    slh_retry_decide(&o, &c, 3600, 500, false, 0, T0 + 3600 * 1000, 0);
    CHECK(o.state == SLH_DEAD, "failing at the horizon: dead");
    slh_retry_decide(&o, &c, 3600, 200, false, 0, T0 + 3600 * 1000 + 5, 0);
    CHECK(o.state == SLH_DELIVERED, "a late success still counts");
    c.revived = T0 + 3600 * 1000 + 10;
    slh_retry_decide(&o, &c, 3600, 500, false, 0, T0 + 3600 * 1000 + 20, 0);
    CHECK(o.state == SLH_PENDING, "revived: max_age counts from the revival");
    slh_retry_decide(&o, &c, INT64_MAX / 2, 500, false, INT64_MAX / 2, now, 0);
    CHECK(o.state == SLH_PENDING && o.due > now, "no overflow");
    c.revived = 0;
    slh_retry_decide(&o, &c, 0, 500, false, 0, now, 0);
    CHECK(o.state == SLH_DEAD, "max_age 0: dead on the first failure");
}

static void
test_abort(void)
{
    struct slh_claim c = {.seq = 9, .attempts = 1, .received = T0};
    struct slh_outcome o;
    int64_t now = T0 + 1000;
    static const char *const yes[] = {
        "webhook-delivery: abort\r\n", "Webhook-Delivery: Abort\r\n",
        "WEBHOOK-DELIVERY:ABORT", "webhook-delivery: \t abort \t\r\n",
        "webhook-delivery: abort\n"};
    static const char *const no[] = {"webhook-delivery: aborted\r\n",
                                     "webhook-delivery: retry\r\n",
                                     "webhook-delivery:\r\n",
                                     "webhook-delivery abort\r\n",
                                     "x-webhook-delivery: abort\r\n",
                                     "webhook-deliveryx: abort\r\n",
                                     "webhook-delivery: abort, later\r\n",
                                     "HTTP/1.1 200 OK\r\n",
                                     "\r\n",
                                     "",
                                     "webhook-delivery: abor"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        CHECK(slh_retry_is_abort_header(yes[i], strlen(yes[i])),
              "abort header: '%s'", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        CHECK(!slh_retry_is_abort_header(no[i], strlen(no[i])),
              "not the abort header: '%s'", no[i]);
    CHECK(!slh_retry_is_abort_header("webhook-delivery: abort", 20),
          "only len bytes are read");
    CHECK(!slh_retry_is_abort_header(NULL, 0), "NULL is no header");

    memset(&o, 0, sizeof(o));
    slh_retry_decide(&o, &c, 3600, 500, true, 0, now, 0);
    CHECK(o.state == SLH_DEAD && o.status == 500 && o.seq == 9,
          "500 with abort: dead at once");
    slh_retry_decide(&o, &c, 3600, 200, true, 0, now, 0);
    CHECK(o.state == SLH_DEAD && o.status == 200,
          "200 with abort: dead, not delivered");
    slh_retry_decide(&o, &c, 3600, 429, true, 30000, now, 0);
    CHECK(o.state == SLH_DEAD, "429 with abort: Retry-After does not matter");
    slh_retry_decide(&o, &c, 3600, 500, false, 0, now, 0);
    CHECK(o.state == SLH_PENDING, "500 without abort: retried");
}

int
main(void)
{
    test_backoff();
    test_decide();
    test_abort();
    return check_summary();
}

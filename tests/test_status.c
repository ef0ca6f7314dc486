/* test_status: lib/status.c against a real SQLite spool with known rows:
 * the rows (configured destinations, then those only the spool names), the
 * kick note, the JSON of `status --json` and the exposition of `status
 * --prometheus`, and a status with no spool yet. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "config.h"
#include "event.h"
#include "status.h"
#include "store.h"

#define T0 1796200000000LL /* 2026-12-02T08:26:40Z */

static char tmp[64];

/* A config on spool with the [destination] sections dests. */
static bool
config(struct slh_config *cfg, const char *spool, const char *dests)
{
    char text[2048];
    struct slh_error err = {0};

    memset(cfg, 0, sizeof(*cfg));
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s\n%s",
             spool, dests);
    return CHECK(slh_config_parse(cfg, text, "test.ini", &err) == SLH_OK,
                 "config: %s", err.text);
}

/* Stores one event of Type type, MessageId mid, received at now. */
static void
put(struct slh_store *st, const struct slh_config *cfg, const char *type,
    const char *mid, int64_t now)
{
    char body[512];
    struct slh_batch b = {0};
    const struct slh_batch *one = &b;
    struct slh_error err = {0};
    int len = snprintf(body, sizeof(body),
                       "{\"Type\":\"%s\",\"ServerId\":40211,\"MessageId\":"
                       "\"%s\",\"Address\":\"u@example.org\",\"DateTime\":"
                       "\"2026-12-02T10:00:00Z\",\"SecretKey\":"
                       "\"q7Rt2mXw9LpB4sKd8Zf3\"}",
                       type, mid);

    if (CHECK(slh_batch_parse(&b, body, (size_t)len, SLH_MEDIA_JSON, &err) ==
                  SLH_OK,
              "parse: %s", err.text))
        CHECK(slh_store_put(st, cfg, &one, 1, now, NULL, &err) == SLH_OK,
              "put %s: %s", mid, err.text);
    slh_batch_free(&b);
}

/* Claims up to n of dest's rows due at now and finishes them as states
 * (a status, 0 for delivered) say; returns how many were claimed. */
static size_t
attempt(struct slh_store *st, const char *dest, int64_t now, const int *states,
        size_t n)
{
    struct slh_claim c[8];
    struct slh_outcome o[8];
    struct slh_error err = {0};
    size_t got = 0;

    if (!CHECK(slh_store_claim(st, dest, 0, now, 60000, n, c, &got, NULL,
                               &err) == SLH_OK,
               "claim %s: %s", dest, err.text))
        return 0;
    memset(o, 0, sizeof(o));
    for (size_t i = 0; i < got; i++) {
        o[i].dest = dest;
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
        o[i].status = states[i];
        o[i].state = states[i] == 0     ? SLH_DELIVERED
                     : states[i] == 410 ? SLH_DEAD
                                        : SLH_PENDING;
        o[i].due = now + 5000;
        if (states[i] != 0)
            snprintf(o[i].error, sizeof(o[i].error), "HTTP %d", states[i]);
        slh_store_claim_free(&c[i]);
    }
    CHECK(slh_store_finish(st, o, got, now, &err) == SLH_OK, "finish: %s",
          err.text);
    return got;
}

#define DESTS_AB                                                               \
    "[destination a]\nurl = http://127.0.0.1:9/a\nbreaker = 3\n"               \
    "[destination b]\nfile = /dev/null\n"

/*
 * The spool: a (url, breaker) with one delivered, one dead (410) and one
 * retrying (503) of three; b (file) with three pending; gone, in the
 * config no more, with one dead and two pending. a's breaker opened at
 * T0 + 4000. A kick note. *cfg names a and b.
 */
static struct slh_store *
make_spool(struct slh_config *cfg)
{
    char spool[128], note[192];
    struct slh_config all;
    struct slh_store *st = NULL;
    struct slh_throttle_state th = {.opened = T0 + 4000};
    struct slh_error err = {0};
    static const int a_states[] = {0, 410, 503}, gone_states[] = {410};
    FILE *f;

    snprintf(spool, sizeof(spool), "%s/spool", tmp);
    if (!config(&all, spool,
                DESTS_AB "[destination gone]\nurl = http://127.0.0.1:9/g\n") ||
        !config(cfg, spool, DESTS_AB))
        return NULL;
    if (CHECK(slh_store_open(&st, spool, SLH_STORE_CREATE, &err) == SLH_OK,
              "open: %s", err.text)) {
        put(st, &all, "Delivered", "m1", T0);
        put(st, &all, "Failed", "m2", T0 + 1000);
        put(st, &all, "Queued", "m3", T0 + 2000);
        CHECK(attempt(st, "a", T0 + 3000, a_states, 3) == 3, "a: 3 claimed");
        CHECK(attempt(st, "gone", T0 + 3000, gone_states, 1) == 1,
              "gone: 1 claimed");
        CHECK(slh_store_throttle_put(st, "a", &th, &err) == SLH_OK,
              "throttle: %s", err.text);
    }
    slh_config_free(&all);
    snprintf(note, sizeof(note), "%s/deliver.error", spool);
    f = fopen(note, "w");
    if (CHECK(f != NULL, "write %s", note)) {
        fputs("1764000000 could not start: \"x\"\n", f);
        fclose(f);
    }
    return st;
}

static void
test_rows(const struct slh_status *s)
{
    const struct slh_status_row *r = s->rows;

    if (!CHECK(s->n == 3, "3 rows, not %zu", s->n))
        return;
    CHECK(strcmp(r[0].name, "a") == 0 && strcmp(r[0].kind, "url") == 0 &&
              r[0].has_breaker,
          "row 0: a, url, a breaker");
    CHECK(strcmp(r[1].name, "b") == 0 && strcmp(r[1].kind, "file") == 0 &&
              !r[1].has_breaker,
          "row 1: b, file, no breaker");
    CHECK(strcmp(r[2].name, "gone") == 0 && r[2].kind == NULL &&
              !r[2].has_breaker,
          "row 2: gone, not configured");
    CHECK(r[0].st.pending == 1 && r[0].st.retrying == 1 && r[0].st.dead == 1 &&
              r[0].st.delivered == 1,
          "a: 1 pending (retrying), 1 dead, 1 delivered");
    CHECK(r[0].st.oldest_pending == T0 + 2000 && r[0].st.last_status == 503 &&
              strcmp(r[0].st.last_error, "HTTP 503") == 0,
          "a: oldest %" PRId64 ", last %d %s", r[0].st.oldest_pending,
          r[0].st.last_status, r[0].st.last_error);
    CHECK(r[0].th.opened == T0 + 4000, "a: breaker opened at T0 + 4000");
    CHECK(r[1].st.pending == 3 && r[1].st.retrying == 0 &&
              r[1].st.oldest_pending == T0,
          "b: 3 pending since T0");
    CHECK(r[2].st.pending == 2 && r[2].st.dead == 1, "gone: 2 pending, 1 dead");
    CHECK(s->note.found && s->note.when == 1764000000 &&
              strcmp(s->note.iso, "2025-11-24T16:00:00Z") == 0 &&
              strcmp(s->note.text, "could not start: \"x\"") == 0,
          "the kick note: %s %s", s->note.iso, s->note.text);
}

static void
test_json(const struct slh_status *s)
{
    json_t *root = slh_status_json(s);
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    const char *want[] = {
        "{\"name\":\"a\",\"kind\":\"url\",\"configured\":true,\"pending\":1,"
        "\"retrying\":1,\"dead\":1,\"delivered\":1,\"oldest_pending\":"
        "\"2026-12-02T08:26:42Z\",\"oldest_pending_seconds\":10,\"last_"
        "status\":503,\"last_error\":\"HTTP 503\","
        "\"breaker\":{\"state\":\"open\",\"opened\":\"2026-12-02T08:26:"
        "44Z\"}}",
        "{\"name\":\"b\",\"kind\":\"file\",\"configured\":true,\"pending\":3,"
        "\"retrying\":0,\"dead\":0,\"delivered\":0,\"oldest_pending\":"
        "\"2026-12-02T08:26:40Z\",\"oldest_pending_seconds\":12,\"last_"
        "status\":null,\"last_error\":null,\"breaker\":"
        "null}",
        "{\"name\":\"gone\",\"kind\":null,\"configured\":false",
        "\"deliver_start_error\":{\"time\":\"2025-11-24T16:00:00Z\","
        "\"error\":\"could not start: \\\"x\\\"\"}",
    };

    if (!CHECK(text != NULL, "status JSON"))
        goto out;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK(strstr(text, want[i]) != NULL, "JSON has %s: %s", want[i], text);
out:
    free(text);
    json_decref(root);
}

/* The exposition of s, a new string. */
static char *
prometheus(const struct slh_status *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL)
        return NULL;
    slh_status_prometheus(f, s);
    fclose(f);
    return text;
}

static void
test_prometheus(const struct slh_status *s)
{
    char *text = prometheus(s);
    const char *want[] = {
        "# HELP slhook_deliveries Deliveries per destination and state "
        "(pending includes retrying).\n# TYPE slhook_deliveries gauge\n"
        "slhook_deliveries{destination=\"a\",state=\"pending\"} 1\n"
        "slhook_deliveries{destination=\"a\",state=\"dead\"} 1\n"
        "slhook_deliveries{destination=\"a\",state=\"delivered\"} 1\n",
        "\nslhook_deliveries{destination=\"gone\",state=\"pending\"} 2\n",
        "\nslhook_deliveries_retrying{destination=\"a\"} 1\n",
        "\nslhook_oldest_pending_age_seconds{destination=\"a\"} 10\n",
        "\nslhook_oldest_pending_age_seconds{destination=\"gone\"} 11\n",
        "\nslhook_last_error_status{destination=\"a\"} 503\n",
        "\nslhook_destination_configured{destination=\"gone\"} 0\n",
        "\nslhook_deliver_start_failure_timestamp_seconds 1764000000\n",
        "\nslhook_breaker_open{destination=\"a\"} 1\n",
        "\nslhook_breaker_opened_timestamp_seconds{destination=\"a\"} "
        "1796200004\n",
        "\nslhook_breaker_open{destination=\"b\"} 0\n",
    };

    if (!CHECK(text != NULL, "exposition"))
        return;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK(strstr(text, want[i]) != NULL, "exposition has %s", want[i]);
    free(text);
}

/* No spool yet: the configured destinations with zeros, no note. */
static void
test_no_spool(void)
{
    struct slh_config cfg;
    struct slh_status s;
    struct slh_error err = {0};
    char spool[128], *text;

    snprintf(spool, sizeof(spool), "%s/none", tmp);
    if (!config(&cfg, spool, DESTS_AB))
        return;
    if (CHECK(slh_status_read(&s, NULL, &cfg, T0, &err) == SLH_OK,
              "no spool: %s", err.text)) {
        CHECK(s.n == 2 && s.rows[0].st.pending == 0 && !s.note.found &&
                  s.rows[1].kind != NULL,
              "no spool: the 2 configured, zeros, no note");
        text = prometheus(&s);
        CHECK(text != NULL &&
                  strstr(text, "\nslhook_deliver_start_failure_timestamp_"
                               "seconds 0\n") != NULL &&
                  strstr(text, "slhook_breaker_open{destination=\"a\"} 0\n"),
              "no spool: zeros in the exposition");
        free(text);
    }
    slh_status_free(&s);
    slh_status_free(&s); /* zeroed: fine */
    slh_status_free(NULL);
    slh_config_free(&cfg);
}

/* A label value with every character the format escapes. */
static void
test_label(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (!CHECK(f != NULL, "memstream"))
        return;
    slh_prom_label(f, "a\"b\\c\nd\te");
    fclose(f);
    CHECK(strcmp(text, "a\\\"b\\\\c\\nd\te") == 0, "escaped: %s", text);
    free(text);
}

int
main(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_status s;
    struct slh_error err = {0};

    snprintf(tmp, sizeof(tmp), "/tmp/test_status.XXXXXX");
    if (mkdtemp(tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    st = make_spool(&cfg);
    if (st != NULL &&
        CHECK(slh_status_read(&s, st, &cfg, T0 + 12000, &err) == SLH_OK,
              "status: %s", err.text)) {
        test_rows(&s);
        test_json(&s);
        test_prometheus(&s);
        slh_status_free(&s);
        CHECK(s.rows == NULL && s.n == 0, "freed: zeroed");
    }
    slh_store_close(st);
    slh_config_free(&cfg);
    test_no_spool();
    test_label();
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        if (check_failed == 0 && system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
    }
    return check_summary();
}

/* test_store: the conformance suite of store.h, run against every backend
 * in the table below. Written against store.h alone: what one backend
 * does its own way (SQLite's files, locks, schema versions) is tested in
 * that backend's own tests (test_spool, test_queue). */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fixture_each.h"
#include "config.h"
#include "event.h"
#include "store.h"

#define T0 INT64_C(1700000000000)
#define LEASE 10000
#define HOUR INT64_C(3600000)
#define MAX_EVENTS 64

#include "fixture_store.h" /* after T0, MAX_EVENTS */

/* A backend under test: make(spool, size, name) writes into spool the
 * string that names a new, empty store of it. */
struct backend {
    const char *name;
    bool (*make)(char *spool, size_t size, const char *name);
};

static char tmp[64];

static bool
sqlite_make(char *spool, size_t size, const char *name)
{
    return snprintf(spool, size, "%s/%s", tmp, name) < (int)size;
}

/* A database of the cluster tests/t_pg_store.sh starts, named for the
 * store and this process: SLH_TEST_PG holds the URI's parameters (the
 * socket directory and the user), and the backend makes the database on
 * first open. Run without it, the PostgreSQL half fails, loudly. */
static bool
pg_make(char *spool, size_t size, const char *name)
{
    const char *args = getenv("SLH_TEST_PG");

    if (!CHECK(args != NULL && *args != '\0',
               "SLH_TEST_PG is not set: run tests/t_pg_store.sh, which starts "
               "a PostgreSQL cluster for this test"))
        return false;
    return snprintf(spool, size, "postgresql:///slh_%s_%ld?%s", name,
                    (long)getpid(), args) < (int)size;
}

static const struct backend backends[] = {
    {"sqlite", sqlite_make},
    {"postgresql", pg_make},
};

static const struct backend *be; /* the one running */

/* A store of the running backend with dests configured (an INI
 * [destination] text); false when it cannot be made. */
static bool
open_store(struct slh_config *cfg, struct slh_store **st, const char *name,
           const char *dests)
{
    char spool[256];
    struct slh_error err = {0};

    *st = NULL;
    memset(cfg, 0, sizeof(*cfg));
    if (!CHECK(be->make(spool, sizeof(spool), name), "%s: make %s", be->name,
               name))
        return false;
    return load_config(cfg, spool, dests) &&
           CHECK(slh_store_open(st, cfg->spool, SLH_STORE_CREATE, &err) ==
                     SLH_OK,
                 "%s: open: %s", be->name, err.text);
}

static void
close_store(struct slh_config *cfg, struct slh_store *st)
{
    struct slh_error err = {0};

    /* Whatever the test did, the store still agrees with itself (for
     * SQLite: the tally of delivered rows is their count). */
    if (st != NULL)
        CHECK(slh_store_verify(st, &err) == SLH_OK, "verify after: %s",
              err.text);
    slh_store_close(st);
    slh_config_free(cfg);
}

/* Stores one event (JSON, Type type, MessageId mid) received at now;
 * returns how many were new, or -1. */
static int
put(struct slh_store *st, const struct slh_config *cfg, const char *type,
    const char *mid, int64_t now)
{
    char body[512];
    struct slh_batch b = {0};
    const struct slh_batch *one = &b;
    struct slh_error err = {0};
    size_t n_new = 0;
    int len = snprintf(body, sizeof(body),
                       "{\"Type\":\"%s\",\"ServerId\":40211,\"MessageId\":"
                       "\"%s\",\"Address\":\"u@example.org\",\"DateTime\":"
                       "\"2026-12-02T10:00:00Z\",\"SecretKey\":"
                       "\"q7Rt2mXw9LpB4sKd8Zf3\"}",
                       type, mid);
    int rc = -1;

    if (CHECK(slh_batch_parse(&b, body, (size_t)len, SLH_MEDIA_JSON, &err) ==
                  SLH_OK,
              "parse: %s", err.text) &&
        CHECK(slh_store_put(st, cfg, &one, 1, now, &n_new, &err) == SLH_OK,
              "put %s: %s", mid, err.text))
        rc = (int)n_new;
    slh_batch_free(&b);
    return rc;
}

static struct slh_store_stats
stats(struct slh_store *st, const char *dest)
{
    struct slh_store_stats s;

    if (slh_store_stats(st, dest, &s, NULL) != SLH_OK)
        memset(&s, -1, sizeof(s));
    return s;
}

static void
free_claims(struct slh_claim *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        slh_store_claim_free(&c[i]);
}

/* open_store(), with every fixture stored in it. */
static bool
fixture_spool(struct slh_config *cfg, struct slh_store **sp, const char *name,
              const char *dests)
{
    if (!open_store(cfg, sp, name, dests))
        return false;
    put_fixtures(*sp, cfg);
    return true;
}

/* The page's minutes: events received in each minute, and the rows of the
 * window's events delivered in each; an event received before from_ms has
 * its delivery left out (store.h). */
static void
test_minutes(void)
{
    const int64_t s0 = T0 - T0 % 60000; /* a whole minute */
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_error err = {0};
    struct slh_claim c[4];
    struct slh_outcome o[4];
    int64_t rec[3] = {-1, -1, -1}, del[3] = {-1, -1, -1};
    size_t n = 0;

    if (!open_store(&cfg, &st, "minutes",
                    "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        goto out;
    put(st, &cfg, "Delivered", "m0", s0 - HOUR);
    put(st, &cfg, "Delivered", "m1", s0);
    put(st, &cfg, "Delivered", "m2", s0 + 1000);
    put(st, &cfg, "Delivered", "m3", s0 + 60000);
    if (!CHECK(slh_store_claim(st, "a", 0, s0 + 60000, LEASE, 4, c, &n, NULL,
                               &err) == SLH_OK &&
                   n == 4,
               "claim 4: %s", err.text))
        goto out;
    memset(o, 0, sizeof(o));
    for (size_t i = 0; i < n; i++) {
        o[i].dest = "a";
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
        o[i].state = SLH_DELIVERED;
    }
    CHECK(slh_store_finish(st, o, n, s0 + 120000 + 5, &err) == SLH_OK,
          "finish: %s", err.text);
    free_claims(c, n);
    CHECK(slh_store_minutes(st, s0, 3, s0, rec, del, &err) == SLH_OK,
          "minutes: %s", err.text);
    CHECK(rec[0] == 2 && rec[1] == 1 && rec[2] == 0,
          "received a minute: %lld %lld %lld", (long long)rec[0],
          (long long)rec[1], (long long)rec[2]);
    CHECK(del[0] == 0 && del[1] == 0 && del[2] == 3,
          "delivered a minute, m0's left out: %lld %lld %lld",
          (long long)del[0], (long long)del[1], (long long)del[2]);
out:
    close_store(&cfg, st);
}

/* Put: one event and a row per destination whose filter wants it;
 * duplicates and Validations add nothing; dests, next_due. */
static void
test_put(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_error err = {0};
    char **names = NULL;
    size_t n = 0;
    int64_t due = 0;

    if (!open_store(&cfg, &st, "put",
                    "[destination a]\nurl = http://127.0.0.1:9/a\n"
                    "[destination b]\nurl = http://127.0.0.1:9/b\n"
                    "events = Failed\n"))
        goto out;
    CHECK(slh_store_next_due(st, NULL, &due, &err) == SLH_OK &&
              due == INT64_MAX,
          "empty: nothing due");
    CHECK(slh_store_dests(st, &names, &n, &err) == SLH_OK && n == 0,
          "empty: no destination");
    slh_store_dests_free(names, n);
    CHECK(put(st, &cfg, "Delivered", "m1", T0) == 1, "a new event");
    CHECK(put(st, &cfg, "Failed", "m2", T0 + 1) == 1, "another");
    CHECK(put(st, &cfg, "Delivered", "m1", T0 + 2) == 0, "a duplicate");
    CHECK(put(st, &cfg, "Validation", "v", T0 + 3) == 0,
          "a Validation is not stored");
    CHECK(stats(st, "a").pending == 2 && stats(st, "b").pending == 1,
          "a wants both, b only the Failed one");
    CHECK(slh_store_next_due(st, "a", &due, &err) == SLH_OK && due == T0,
          "a due at its first put: %" PRId64, due);
    CHECK(slh_store_next_due(st, NULL, &due, &err) == SLH_OK && due == T0,
          "anyone: the earliest");
    CHECK(slh_store_next_due(st, "zz", &due, &err) == SLH_OK &&
              due == INT64_MAX,
          "a destination without rows: nothing due");
    if (CHECK(slh_store_dests(st, &names, &n, &err) == SLH_OK && n == 2,
              "two destinations: %zu", n))
        CHECK(strcmp(names[0], "a") == 0 && strcmp(names[1], "b") == 0,
              "in byte order");
    slh_store_dests_free(names, n);
    slh_store_dests_free(NULL, 0);
    CHECK(stats(st, "zz").pending == 0 && stats(st, "zz").delivered == 0,
          "unknown destination: zeros");
    CHECK(slh_store_where(st)[0] != '\0', "where: %s", slh_store_where(st));
    CHECK(slh_store_verify(st, &err) == SLH_OK, "verify: %s", err.text);
out:
    close_store(&cfg, st);
}

/* Claims lease rows (no row twice), finish records outcomes, unclaim gives
 * back; stats follow. */
static void
test_claim(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_error err = {0};
    struct slh_claim c[8], d[8];
    struct slh_outcome o[3];
    struct slh_store_stats s;
    size_t n = 0, m = 0;
    int64_t next = 0;

    if (!open_store(&cfg, &st, "claim",
                    "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        goto out;
    for (int i = 0; i < 4; i++) {
        char mid[8];
        snprintf(mid, sizeof(mid), "c%d", i);
        put(st, &cfg, "Delivered", mid, T0 + i);
    }
    CHECK(slh_store_role(st, SLH_STORE_DELIVERER, &err) == SLH_OK,
          "deliverer role: %s", err.text);
    CHECK(slh_store_claim(st, "a", 0, T0 + 10, LEASE, 3, c, &n, &next, &err) ==
                  SLH_OK &&
              n == 3,
          "3 claimed: %zu %s", n, err.text);
    CHECK(next == T0 + 3, "the 4th still due: %" PRId64, next);
    CHECK(n == 3 && c[0].attempts == 1 && c[0].received == T0 &&
              c[0].revived == 0 && strlen(c[0].id) == SLH_EVENT_ID_LEN &&
              c[0].body_len == strlen(c[0].body) &&
              strstr(c[0].body, "SecretKey") == NULL &&
              strstr(c[0].body, "\"c0\"") != NULL,
          "the earliest due first, its body without SecretKey");
    CHECK(slh_store_claim(st, "a", 0, T0 + 10, LEASE, 8, d, &m, &next, &err) ==
                  SLH_OK &&
              m == 1 && d[0].seq != c[0].seq && d[0].seq != c[1].seq &&
              d[0].seq != c[2].seq,
          "a second claim gets only the 4th");
    CHECK(next == T0 + 10 + LEASE, "then all leased: %" PRId64, next);
    if (n != 3 || m != 1)
        goto free;
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 3; i++) {
        o[i].dest = "a";
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
    }
    o[0].state = SLH_DELIVERED;
    o[0].status = 200;
    o[1].state = SLH_PENDING;
    o[1].due = T0 + 500;
    o[1].status = 503;
    snprintf(o[1].error, sizeof(o[1].error), "HTTP 503 caf\xc3");
    o[2].state = SLH_DEAD;
    o[2].status = 410;
    snprintf(o[2].error, sizeof(o[2].error), "HTTP 410");
    CHECK(slh_store_finish(st, o, 3, T0 + 20, &err) == SLH_OK, "finish: %s",
          err.text);
    CHECK(slh_store_unclaim(st, "a", &d[0].seq, 1, T0 + 30, &err) == SLH_OK,
          "unclaim: %s", err.text);
    s = stats(st, "a");
    CHECK(s.delivered == 1 && s.dead == 1 && s.pending == 2 && s.retrying == 1,
          "1 delivered, 1 dead, 2 pending of which 1 retrying");
    CHECK(s.oldest_pending == T0 + 1, "oldest pending: %" PRId64,
          s.oldest_pending);
    CHECK(s.last_status == 503 && strcmp(s.last_error, "HTTP 503 caf") == 0,
          "the latest failure standing: %d %s", s.last_status, s.last_error);
    /* Finishing again (a lease outlived), or for another event: nothing. */
    o[0].state = SLH_DEAD;
    memset(o[1].id, 'f', SLH_EVENT_ID_LEN);
    o[1].state = SLH_DELIVERED;
    CHECK(slh_store_finish(st, o, 2, T0 + 40, &err) == SLH_OK, "finish: %s",
          err.text);
    s = stats(st, "a");
    CHECK(s.delivered == 1 && s.dead == 1 && s.pending == 2,
          "a finished row, and another event's seq, left as they were");
    free_claims(d, m);
    /* The given-back row: due at once, its attempt uncounted. */
    CHECK(slh_store_claim(st, "a", 0, T0 + 31, LEASE, 8, d, &m, NULL, &err) ==
                  SLH_OK &&
              m == 1 && d[0].attempts == 1,
          "given back: claimable at once, attempt 1 again: %zu", m);
    CHECK(slh_store_claim(st, "a", 0, T0 + 500, LEASE, 8, d + 1, &n, NULL,
                          &err) == SLH_OK &&
              n == 1 && d[1].attempts == 2 && d[1].seq == o[1].seq,
          "the retry due at its time, its 2nd attempt");
    free_claims(d, 2);
    CHECK(slh_store_finish(st, o, 0, T0, &err) == SLH_OK &&
              slh_store_unclaim(st, "a", NULL, 0, T0, &err) == SLH_OK,
          "nothing to record: fine");
    n = 3;
free:
    free_claims(c, n);
    free_claims(d, m);
out:
    close_store(&cfg, st);
}

/* Dead letters revived with a fresh horizon; the purge forgets only what
 * is delivered and old. */
static void
test_retry_purge(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_error err = {0};
    struct slh_claim c[4];
    struct slh_outcome o[2];
    size_t n = 0, k = 99;

    if (!open_store(&cfg, &st, "retry",
                    "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        goto out;
    put(st, &cfg, "Delivered", "r1", T0);
    put(st, &cfg, "Delivered", "r2", T0);
    put(st, &cfg, "Delivered", "r3", T0 + HOUR);
    CHECK(slh_store_index(st, 10, &k, &err) == SLH_OK, "index: %s", err.text);
    if (!CHECK(slh_store_claim(st, "a", 0, T0, LEASE, 2, c, &n, NULL, &err) ==
                       SLH_OK &&
                   n == 2,
               "claim 2: %s", err.text))
        goto out;
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 2; i++) {
        o[i].dest = "a";
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
    }
    o[0].state = SLH_DELIVERED;
    o[1].state = SLH_DEAD;
    CHECK(slh_store_finish(st, o, 2, T0 + 1, &err) == SLH_OK, "finish: %s",
          err.text);
    free_claims(c, n);
    CHECK(slh_store_retry(st, "a", T0 + 100, &k, &err) == SLH_OK && k == 1,
          "one dead letter back: %zu", k);
    CHECK(stats(st, "a").dead == 0 && stats(st, "a").pending == 2,
          "pending again");
    CHECK(slh_store_claim(st, "a", 0, T0 + 100, LEASE, 4, c, &n, NULL, &err) ==
                  SLH_OK &&
              n == 1 && c[0].revived == T0 + 100 && c[0].attempts == 1,
          "revived: attempts from 0, horizon from now");
    free_claims(c, n);
    CHECK(slh_store_retry(st, "a", T0 + 100, &k, &err) == SLH_OK && k == 0,
          "no dead letter: none");
    CHECK(slh_store_purge(st, T0, &k, &err) == SLH_OK && k == 0,
          "cutoff before everything: nothing forgotten");
    CHECK(slh_store_purge(st, T0 + 2 * HOUR, &k, &err) == SLH_OK && k == 1,
          "the delivered event forgotten, the pending ones kept: %zu", k);
    CHECK(stats(st, "a").delivered == 0 && stats(st, "a").pending == 2,
          "its row gone");
    CHECK(put(st, &cfg, "Delivered", "r1", T0 + 3 * HOUR) == 1,
          "a forgotten event is new again");
out:
    close_store(&cfg, st);
}

/* A breaker's state read, changed and written inside a writer's task. */
static enum slh_err
throttle_task(struct slh_store *st, void *arg, struct slh_error *err)
{
    struct slh_throttle_state s;
    enum slh_err rc = slh_store_throttle_get(st, "a", &s, err);

    (void)arg;
    s.failures++;
    return rc == SLH_OK ? slh_store_throttle_put(st, "a", &s, err) : rc;
}

/* Two destinations' rows of four events in every state, in src: m0
 * delivered to a, m1 retrying on a, m2 dead on a, m3 given back (pending,
 * no attempt); on b m0 revived from dead (retry), the rest pending. */
static bool
import_source(struct slh_store *src, const struct slh_config *cfg)
{
    struct slh_error err = {0};
    struct slh_claim c[4], d[4];
    struct slh_outcome o[3];
    size_t n = 0, m = 0, revived = 0;
    bool is_ok;

    for (int i = 0; i < 4; i++) {
        char mid[8];
        snprintf(mid, sizeof(mid), "m%d", i);
        put(src, cfg, i == 2 ? "Failed" : "Delivered", mid, T0 + i);
    }
    is_ok = CHECK(slh_store_claim(src, "a", 0, T0 + 10, LEASE, 4, c, &n, NULL,
                                  &err) == SLH_OK &&
                      n == 4,
                  "source: a's 4 claimed: %s", err.text) &&
            CHECK(slh_store_claim(src, "b", 0, T0 + 10, LEASE, 1, d, &m, NULL,
                                  &err) == SLH_OK &&
                      m == 1,
                  "source: b's first claimed: %s", err.text);
    memset(o, 0, sizeof(o));
    for (size_t i = 0; is_ok && i < 3; i++) {
        o[i].dest = "a";
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
        o[i].status = i == 0 ? 200 : i == 1 ? 503 : 410;
        o[i].due = T0 + HOUR;
        if (i > 0)
            snprintf(o[i].error, sizeof(o[i].error), "HTTP %d", o[i].status);
    }
    /* o[0] delivered, o[1] pending (retrying), o[2] dead. */
    o[0].state = SLH_DELIVERED;
    o[1].state = SLH_PENDING;
    o[2].state = SLH_DEAD;
    is_ok =
        is_ok && CHECK(slh_store_finish(src, o, 3, T0 + 20, &err) == SLH_OK &&
                           slh_store_unclaim(src, "a", &c[3].seq, 1, T0 + 30,
                                             &err) == SLH_OK,
                       "source: a's outcomes: %s", err.text);
    if (is_ok) {
        o[0].dest = "b";
        o[0].seq = d[0].seq;
        memcpy(o[0].id, d[0].id, sizeof(o[0].id));
        o[0].state = SLH_DEAD;
        snprintf(o[0].error, sizeof(o[0].error), "HTTP 410");
        o[0].status = 410;
    }
    is_ok =
        is_ok && CHECK(slh_store_finish(src, o, 1, T0 + 40, &err) == SLH_OK &&
                           slh_store_retry(src, "b", T0 + 50, &revived, &err) ==
                               SLH_OK &&
                           revived == 1,
                       "source: b's dead letter revived: %s", err.text);
    free_claims(c, n);
    free_claims(d, m);
    return is_ok;
}

/* Whether two exported events agree in all but their seq. */
static bool
same_event(const struct slh_store_event *x, const struct slh_store_event *y)
{
    bool is_same = strcmp(x->id, y->id) == 0 && x->at == y->at &&
                   strcmp(x->type, y->type) == 0 &&
                   x->tracking == y->tracking && x->received == y->received &&
                   strcmp(x->body, y->body) == 0 && x->n_rows == y->n_rows;

    for (size_t i = 0; is_same && i < x->n_rows; i++) {
        const struct slh_store_row *a = &x->rows[i], *b = &y->rows[i];

        is_same =
            strcmp(a->dest, b->dest) == 0 && a->state == b->state &&
            a->attempts == b->attempts && a->last_status == b->last_status &&
            strcmp(a->last_error, b->last_error) == 0 && a->due == b->due &&
            a->revived == b->revived && a->is_retrying == b->is_retrying;
    }
    return is_same;
}

/* Export reads in seq order, in batches; import stores as given, once. */
static void
test_import(void)
{
    static const char dests[] = "[destination a]\nurl = http://127.0.0.1:9/a\n"
                                "[destination b]\nurl = http://127.0.0.1:9/b\n";
    struct slh_config cfg, cfg2;
    struct slh_store *src = NULL, *dst = NULL;
    struct slh_store_event *ev = NULL, *got = NULL;
    struct slh_store_event bad = {0};
    char type[] = "Delivered";
    struct slh_store_owner *ow = NULL;
    struct slh_error err = {0};
    struct slh_claim c[4];
    size_t n = 0, k = 0, m = 0, fresh = 99, alive = 99;

    memset(&cfg2, 0, sizeof(cfg2));
    if (!open_store(&cfg, &src, "import_src", dests) ||
        !open_store(&cfg2, &dst, "import_dst", dests) ||
        !import_source(src, &cfg))
        goto out;
    CHECK(slh_store_export(src, 0, 8, &ev, &n, &err) == SLH_OK && n == 4,
          "export: the 4 events: %zu %s", n, err.text);
    for (size_t i = 1; i < n; i++)
        CHECK(ev[i].seq > ev[i - 1].seq, "in seq order");
    CHECK(n == 4 && ev[0].n_rows == 2 && ev[0].rows[0].state == SLH_DELIVERED &&
              ev[0].rows[1].state == SLH_PENDING &&
              ev[0].rows[1].revived == T0 + 50 && ev[1].rows[0].is_retrying &&
              ev[1].rows[0].revived == 0,
          "with their rows, a revival told");
    CHECK(slh_store_export(src, n == 4 ? ev[1].seq : 0, 2, &got, &k, &err) ==
                  SLH_OK &&
              k == 2 && n == 4 && got[0].seq == ev[2].seq,
          "after a seq, up to max: %zu", k);
    slh_store_events_free(got, k);
    got = NULL;
    CHECK(slh_store_import(dst, ev, n, &fresh, &err) == SLH_OK && fresh == 4,
          "import: 4 new: %zu %s", fresh, err.text);
    CHECK(slh_store_import(dst, ev, n, &fresh, &err) == SLH_OK && fresh == 0,
          "again: none new: %zu", fresh);
    CHECK(slh_store_export(dst, 0, 8, &got, &k, &err) == SLH_OK && k == n,
          "the copy exported: %zu", k);
    for (size_t i = 0; i < k && i < n; i++)
        CHECK(same_event(&ev[i], &got[i]), "event %zu copied as it was", i);
    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? "a" : "b";
        struct slh_store_stats x = stats(src, name), y = stats(dst, name);

        CHECK(memcmp(&x, &y, sizeof(x)) == 0 && x.pending > 0,
              "%s's numbers the same: delivered %lld, pending %lld", name,
              (long long)y.delivered, (long long)y.pending);
    }
    CHECK(put(dst, &cfg2, "Delivered", "m0", T0 + HOUR) == 0,
          "a copied event posted again: a duplicate");
    CHECK(slh_store_claim(dst, "a", 0, T0 + HOUR, LEASE, 4, c, &m, NULL,
                          &err) == SLH_OK &&
              m == 2 && c[0].attempts + c[1].attempts == 3,
          "a's pending rows due as they were: %zu", m);
    free_claims(c, m);
    bad.type = type;
    CHECK(slh_store_import(dst, &bad, 1, NULL, &err) == SLH_EINVAL,
          "an event without id or body: refused");
    CHECK(slh_store_owners_alive(src, 0, &alive, &err) == SLH_OK && alive == 0,
          "no deliverer: %zu %s", alive, err.text);
    CHECK(slh_store_owner_open(src, &ow, &err) == SLH_OK, "owner: %s",
          err.text);
    CHECK(slh_store_owners_alive(src, 0, &alive, &err) == SLH_OK && alive == 1,
          "one alive: %zu", alive);
    CHECK(slh_store_owners_alive(src, slh_store_owner_token(ow), &alive,
                                 &err) == SLH_OK &&
              alive == 0,
          "self not counted: %zu", alive);
    slh_store_owner_close(ow);
    CHECK(slh_store_owners_alive(src, 0, &alive, &err) == SLH_OK && alive == 0,
          "gone: %zu", alive);
out:
    slh_store_events_free(ev, n);
    slh_store_events_free(got, k);
    close_store(&cfg2, dst);
    close_store(&cfg, src);
}

/* Protecting a destination: each one's breaker and pace kept, shared by
 * handles, written in a task; the sweep of rows past max_age. */
static void
test_throttle_state(void)
{
    struct slh_config cfg;
    struct slh_store *st, *other = NULL;
    struct slh_error err = {0};
    struct slh_throttle_state s, got;
    struct slh_store_task task = {throttle_task, NULL};
    struct slh_claim c[4];
    size_t n = 0, k = 99;

    if (!open_store(&cfg, &st, "throttle",
                    "[destination a]\nurl = http://127.0.0.1:9/a\n"
                    "[destination b]\nurl = http://127.0.0.1:9/b\n"))
        goto out;
    memset(&got, 0x55, sizeof(got));
    CHECK(slh_store_throttle_get(st, "a", &got, &err) == SLH_OK &&
              got.opened == 0 && got.failures == 0 && got.pace_us == 0 &&
              !got.is_probing,
          "none written: closed, all zero: %s", err.text);
    memset(&s, 0, sizeof(s));
    s.failures = 3;
    s.opened = T0;
    s.probes = 2;
    s.probe_at = T0 + 4000;
    s.is_probing = true;
    s.pace_us = T0 * 1000 + 7;
    CHECK(slh_store_throttle_put(st, "a", &s, &err) == SLH_OK, "put: %s",
          err.text);
    CHECK(slh_store_open(&other, cfg.spool, SLH_STORE_EXISTING, &err) == SLH_OK,
          "second handle: %s", err.text);
    CHECK(slh_store_throttle_get(other, "a", &got, &err) == SLH_OK &&
              memcmp(&got, &s, sizeof(s)) == 0,
          "another handle reads it field by field");
    CHECK(slh_store_throttle_get(other, "b", &got, &err) == SLH_OK &&
              got.opened == 0,
          "b's own: closed");
    CHECK(slh_store_put_tasks(other, &cfg, NULL, 0, &task, 1, T0, NULL, &err) ==
              SLH_OK,
          "read and write in a task: %s", err.text);
    CHECK(slh_store_throttle_get(st, "a", &got, &err) == SLH_OK &&
              got.failures == 4 && got.opened == T0,
          "the task's write stands: %d", got.failures);
    slh_store_close(other);
    /* The sweep: r1, r2 received at T0, r3 an hour on; max_age 1 h. */
    put(st, &cfg, "Delivered", "r1", T0);
    put(st, &cfg, "Delivered", "r2", T0);
    put(st, &cfg, "Delivered", "r3", T0 + HOUR);
    CHECK(slh_store_claim(st, "a", 42, T0, LEASE, 1, c, &n, NULL, &err) ==
                  SLH_OK &&
              n == 1,
          "r1 claimed by an owner");
    CHECK(slh_store_expire(st, "a", 3600, T0 + HOUR - 1, "why", &k, &err) ==
                  SLH_OK &&
              k == 0,
          "nothing past max_age yet: %zu", k);
    CHECK(slh_store_expire(st, "a", 3600, T0 + HOUR, "past max_age", &k,
                           &err) == SLH_OK &&
              k == 1,
          "at max_age: r2 dead, r1 in flight left alone: %zu", k);
    CHECK(stats(st, "a").dead == 1 && stats(st, "a").pending == 2 &&
              strcmp(stats(st, "a").last_error, "past max_age") == 0,
          "a: 1 dead with its reason, 2 pending");
    CHECK(stats(st, "b").dead == 0 && stats(st, "b").pending == 3,
          "b untouched");
    CHECK(slh_store_retry(st, "a", T0 + 2 * HOUR, &k, &err) == SLH_OK && k == 1,
          "r2 revived");
    CHECK(slh_store_expire(st, "a", 3600, T0 + 2 * HOUR + 1, "x", &k, &err) ==
                  SLH_OK &&
              k == 1,
          "r3 past; revived r2 counts from its revival: %zu", k);
    free_claims(c, n);
out:
    close_store(&cfg, st);
}

static enum slh_err
claim_task(struct slh_store *st, void *arg, struct slh_error *err)
{
    size_t *n = arg;
    struct slh_claim c[8];
    enum slh_err rc =
        slh_store_claim(st, "a", 0, T0, LEASE, 8, c, n, NULL, err);

    free_claims(c, *n);
    return rc;
}

static enum slh_err
failing_task(struct slh_store *st, void *arg, struct slh_error *err)
{
    (void)st;
    (void)arg;
    return slh_error_set(err, SLH_ESTORE, "task failed");
}

/* Tasks share a put's transaction, and a failing one undoes it all. */
static void
test_tasks(void)
{
    struct slh_config cfg;
    struct slh_store *st, *other = NULL;
    struct slh_error err = {0};
    struct slh_batch b = {0};
    const struct slh_batch *one = &b;
    static const char body[] =
        "{\"Type\":\"Failed\",\"ServerId\":1,\"MessageId\":\"t1\","
        "\"Address\":\"x@example.org\",\"SecretKey\":\"q7Rt2mXw9LpB4sKd8Zf3\"}";
    size_t claimed = 0, n_new = 9;
    struct slh_store_task t[2] = {{claim_task, &claimed}, {failing_task, NULL}};
    int64_t v;

    if (!open_store(&cfg, &st, "tasks",
                    "[destination a]\nurl = http://127.0.0.1:9/a\n") ||
        !CHECK(slh_batch_parse(&b, body, sizeof(body) - 1, SLH_MEDIA_JSON,
                               &err) == SLH_OK,
               "parse: %s", err.text) ||
        !CHECK(slh_store_open(&other, cfg.spool, SLH_STORE_EXISTING, &err) ==
                   SLH_OK,
               "a second handle: %s", err.text))
        goto out;
    v = slh_store_data_version(other);
    CHECK(slh_store_put_tasks(st, &cfg, &one, 1, t, 2, T0, &n_new, &err) ==
                  SLH_ESTORE &&
              strcmp(err.text, "task failed") == 0 && n_new == 0,
          "a failing task fails the put: %s", err.text);
    CHECK(stats(other, "a").pending == 0, "and nothing is stored");
    slh_error_clear(&err);
    CHECK(slh_store_put_tasks(st, &cfg, &one, 1, t, 1, T0, &n_new, &err) ==
                  SLH_OK &&
              n_new == 1 && claimed == 1,
          "the task claims the event stored before it: %zu %s", claimed,
          err.text);
    CHECK(slh_store_data_version(other) != v,
          "another handle sees a change: %" PRId64, v);
    CHECK(stats(other, "a").pending == 1 &&
              slh_store_put_tasks(st, &cfg, NULL, 0, t, 1, T0, NULL, &err) ==
                  SLH_OK &&
              claimed == 0,
          "tasks alone: leased, nothing more to claim");
out:
    slh_batch_free(&b);
    slh_store_close(other);
    close_store(&cfg, st);
}

/* A child that makes an owner, claims n rows of "a" and then either dies
 * at once (is_dying) or waits to be killed; its pid, or -1. */
static pid_t
child_owner(const char *spool, size_t n, bool is_dying)
{
    int fds[2];
    char ok = 0;
    pid_t pid;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        struct slh_store *st = NULL;
        struct slh_store_owner *o = NULL;
        struct slh_claim c[16];
        size_t got = 0;
        char yes = 1;

        close(fds[0]);
        if (slh_store_open(&st, spool, SLH_STORE_EXISTING, NULL) == SLH_OK &&
            slh_store_owner_open(st, &o, NULL) == SLH_OK &&
            slh_store_claim(st, "a", slh_store_owner_token(o), T0, LEASE, n, c,
                            &got, NULL, NULL) == SLH_OK &&
            got == n)
            (void)!write(fds[1], &yes, 1);
        if (!is_dying)
            pause();
        _exit(0); /* dead, as killed: nothing closed, nothing given back */
    }
    close(fds[1]);
    if (pid > 0 && (read(fds[0], &ok, 1) != 1 || !ok)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pid = -1;
    }
    close(fds[0]);
    return pid;
}

/* Takes back for self until want rows came back, or 10 s passed (store.h:
 * a killed process's rows come back within twice SLH_STORE_FENCE_MS and a
 * second; SQLite's at once); how many rows, *ms how long it took. */
static size_t
take_back_within(struct slh_store *st, int64_t self, int64_t now, size_t want,
                 int64_t *ms)
{
    int64_t start = slh_now_ms();
    size_t total = 0;

    for (;;) {
        size_t taken = 0;
        struct slh_error err = {0};

        if (!CHECK(slh_store_take_back(st, self, now, &taken, &err) == SLH_OK,
                   "take back: %s", err.text))
            break;
        total += taken;
        if (total >= want || slh_now_ms() - start > 10000)
            break;
        usleep(100 * 1000);
    }
    *ms = slh_now_ms() - start;
    return total;
}

/* What a dead owner held is taken back within 10 s (at once for SQLite);
 * a live one's is not. */
static void
test_owners(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_store_owner *me = NULL;
    struct slh_error err = {0};
    struct slh_claim c[16];
    size_t n = 0, taken = 99;
    int64_t ms = 0;
    pid_t live = -1, dead;

    if (!open_store(&cfg, &st, "owners",
                    "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        goto out;
    for (int i = 0; i < 6; i++) {
        char mid[8];
        snprintf(mid, sizeof(mid), "o%d", i);
        put(st, &cfg, "Delivered", mid, T0);
    }
    CHECK(slh_store_owner_open(st, &me, &err) == SLH_OK &&
              slh_store_owner_token(me) > 0,
          "an owner: %s", err.text);
    CHECK(slh_store_owner_token(NULL) == 0, "no owner: token 0");
    CHECK(slh_store_take_back(st, slh_store_owner_token(me), T0, &taken,
                              &err) == SLH_OK &&
              taken == 0,
          "no one dead: nothing taken");
    live = child_owner(cfg.spool, 2, false);
    dead = child_owner(cfg.spool, 3, true);
    if (!CHECK(live > 0 && dead > 0, "two children claimed"))
        goto out;
    waitpid(dead, NULL, 0);
    taken = take_back_within(st, slh_store_owner_token(me), T0 + 1, 3, &ms);
    CHECK(taken == 3, "the dead one's 3 taken back: %zu in %lld ms", taken,
          (long long)ms);
    printf("%s: a dead owner's rows back in %lld ms\n", be->name,
           (long long)ms);
    CHECK(slh_store_owner_beat(st, me, T0 + 1, false, &err) == SLH_OK,
          "a live owner beats: %s", err.text);
    CHECK(slh_store_owner_beat(st, NULL, T0 + 1, false, &err) == SLH_OK,
          "no owner: a beat is fine");
    CHECK(slh_store_take_back(st, slh_store_owner_token(me), T0 + 1, &taken,
                              &err) == SLH_OK &&
              taken == 0,
          "once");
    CHECK(slh_store_claim(st, "a", slh_store_owner_token(me), T0 + 2, LEASE, 16,
                          c, &n, NULL, &err) == SLH_OK &&
              n == 4,
          "its 3 claimable long before their lease, and the 6th: %zu", n);
    CHECK(n == 4 && c[0].attempts == 1, "the dead one's attempts uncounted: %d",
          c[0].attempts);
    free_claims(c, n);
    CHECK(slh_store_take_back(st, slh_store_owner_token(me), T0 + 3, &taken,
                              &err) == SLH_OK &&
              taken == 0,
          "the live one's kept while it lives, beat or not: %zu", taken);
    kill(live, SIGKILL);
    waitpid(live, NULL, 0);
    live = -1;
    taken = take_back_within(st, slh_store_owner_token(me), T0 + 3, 2, &ms);
    CHECK(taken == 2, "the live one's 2 only once it is killed: %zu", taken);
    /* Our own are never taken for dead. */
    CHECK(slh_store_take_back(st, slh_store_owner_token(me), T0 + 3, &taken,
                              &err) == SLH_OK &&
              taken == 0 && stats(st, "a").pending == 6,
          "ours left alone");
out:
    if (live > 0) {
        kill(live, SIGKILL);
        waitpid(live, NULL, 0);
    }
    slh_store_owner_close(me);
    slh_store_owner_close(NULL);
    close_store(&cfg, st);
}

/* The purge's turn: once per every_ms for the whole store, whichever of
 * its handles asks first. */
static void
test_purge_due(void)
{
    struct slh_config cfg;
    struct slh_store *st, *other = NULL;
    struct slh_error err = {0};
    bool due[4] = {false, true, true, false};

    if (!open_store(&cfg, &st, "purge_due",
                    "[destination a]\nurl = http://127.0.0.1:9/a\n") ||
        !CHECK(slh_store_open(&other, cfg.spool, SLH_STORE_EXISTING, &err) ==
                   SLH_OK,
               "a second handle: %s", err.text))
        goto out;
    CHECK(slh_store_purge_due(st, 1500, slh_now_ms(), &due[0], &err) ==
                  SLH_OK &&
              due[0],
          "a new store: the first to ask purges: %s", err.text);
    CHECK(slh_store_purge_due(other, 1500, slh_now_ms(), &due[1], &err) ==
                  SLH_OK &&
              !due[1],
          "the next, on another handle, does not");
    CHECK(slh_store_purge_due(st, 1500, slh_now_ms(), &due[2], &err) ==
                  SLH_OK &&
              !due[2],
          "nor the first again");
    usleep(1600 * 1000);
    CHECK(slh_store_purge_due(other, 1500, slh_now_ms(), &due[3], &err) ==
                  SLH_OK &&
              due[3],
          "past the interval: the first to ask, the other handle");
    CHECK(slh_store_purge_due(st, 1500, slh_now_ms(), &due[0], &err) ==
                  SLH_OK &&
              !due[0],
          "and then not the first");
out:
    slh_store_close(other);
    close_store(&cfg, st);
}

/* Records the outcome state for (dest, the i-th claim of c). */
static void
settle(struct slh_store *st, const char *dest, struct slh_claim *c, int state,
       int64_t now)
{
    struct slh_outcome o = {0};

    o.dest = dest;
    o.seq = c->seq;
    memcpy(o.id, c->id, sizeof(o.id));
    o.state = state;
    o.due = now + HOUR;
    o.status = state == SLH_DELIVERED ? 200 : 500;
    if (state != SLH_DELIVERED)
        snprintf(o.error, sizeof(o.error), "HTTP 500");
    CHECK(slh_store_finish(st, &o, 1, now, NULL) == SLH_OK, "settle");
}

/* Six events an hour apart (e0 oldest): "a" wants all, "b" Failed ones
 * (e1, e3, e5). a's e0 delivered, e1 dead, e2 retrying. */
static bool
window_store(struct slh_config *cfg, struct slh_store **st, const char *name)
{
    struct slh_claim c[3];
    size_t n = 0;

    if (!open_store(cfg, st, name,
                    "[destination a]\nurl = http://127.0.0.1:9/a\n"
                    "[destination b]\nurl = http://127.0.0.1:9/b\n"
                    "events = Failed\n"))
        return false;
    for (int i = 0; i < 6; i++) {
        char mid[8];
        snprintf(mid, sizeof(mid), "e%d", i);
        put(*st, cfg, i % 2 ? "Failed" : "Delivered", mid, T0 + i * HOUR);
    }
    if (!CHECK(slh_store_claim(*st, "a", 0, T0 + 6 * HOUR, LEASE, 3, c, &n,
                               NULL, NULL) == SLH_OK &&
                   n == 3,
               "claim 3"))
        return false;
    settle(*st, "a", &c[0], SLH_DELIVERED, T0 + 6 * HOUR);
    settle(*st, "a", &c[1], SLH_DEAD, T0 + 6 * HOUR);
    settle(*st, "a", &c[2], SLH_PENDING, T0 + 6 * HOUR);
    free_claims(c, n);
    return true;
}

/* The MessageId in an event's body ("e3"), for checks. */
static bool
is_mid(const struct slh_store_event *ev, const char *mid)
{
    char want[32];

    snprintf(want, sizeof(want), "\"MessageId\":\"%s\"", mid);
    return ev->body != NULL && strstr(ev->body, want) != NULL;
}

static size_t
list(struct slh_store *st, const struct slh_store_filter *f,
     struct slh_store_event **ev)
{
    size_t n = 0;
    struct slh_error err = {0};

    if (!CHECK(slh_store_events(st, f, ev, &n, &err) == SLH_OK, "events: %s",
               err.text))
        *ev = NULL;
    return n;
}

/* Stored events listed newest first, filtered, each with its rows. */
static void
test_events(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_store_event *ev = NULL;
    struct slh_store_filter f;
    size_t n;

    if (!window_store(&cfg, &st, "events"))
        goto out;
    n = list(st, NULL, &ev);
    CHECK(n == 6 && is_mid(&ev[0], "e5") && is_mid(&ev[5], "e0"),
          "all six, newest first: %zu", n);
    if (n == 6) {
        CHECK(ev[0].received == T0 + 5 * HOUR &&
                  strcmp(ev[0].type, "Failed") == 0 &&
                  strlen(ev[0].id) == SLH_EVENT_ID_LEN &&
                  strstr(ev[0].body, "SecretKey") == NULL,
              "an event's fields");
        CHECK(ev[0].n_rows == 2 && strcmp(ev[0].rows[0].dest, "a") == 0 &&
                  strcmp(ev[0].rows[1].dest, "b") == 0 &&
                  ev[0].rows[0].state == SLH_PENDING &&
                  ev[0].rows[0].attempts == 0 &&
                  ev[0].rows[0].due == T0 + 5 * HOUR,
              "e5: a row for a and for b, pending, due at receipt");
        CHECK(ev[5].n_rows == 1 && ev[5].rows[0].state == SLH_DELIVERED &&
                  ev[5].rows[0].last_status == 200 &&
                  ev[5].rows[0].last_error[0] == '\0',
              "e0: a's row only, delivered");
        CHECK(ev[3].n_rows == 1 && ev[3].rows[0].is_retrying &&
                  ev[3].rows[0].attempts == 1 &&
                  ev[3].rows[0].last_status == 500 &&
                  strcmp(ev[3].rows[0].last_error, "HTTP 500") == 0 &&
                  ev[3].rows[0].due == T0 + 7 * HOUR,
              "e2: retrying, its next attempt");
    }
    slh_store_events_free(ev, n);
    memset(&f, 0, sizeof(f));
    f.limit = 2;
    n = list(st, &f, &ev);
    CHECK(n == 2 && is_mid(&ev[0], "e5") && is_mid(&ev[1], "e4"), "limit 2");
    slh_store_events_free(ev, n);
    memset(&f, 0, sizeof(f));
    f.dest = "b";
    n = list(st, &f, &ev);
    CHECK(n == 3 && is_mid(&ev[0], "e5") && is_mid(&ev[2], "e1"),
          "with a row for b: the Failed three: %zu", n);
    slh_store_events_free(ev, n);
    f.dest = "a";
    f.states = 1u << SLH_DEAD | 1u << SLH_DELIVERED;
    n = list(st, &f, &ev);
    CHECK(n == 2 && is_mid(&ev[0], "e1") && is_mid(&ev[1], "e0"),
          "a's dead or delivered: %zu", n);
    slh_store_events_free(ev, n);
    f.states = 1u << SLH_PENDING;
    f.is_retrying = true;
    n = list(st, &f, &ev);
    CHECK(n == 1 && is_mid(&ev[0], "e2"), "a's retrying: %zu", n);
    slh_store_events_free(ev, n);
    memset(&f, 0, sizeof(f));
    f.type = "Delivered";
    f.since = T0 + HOUR;
    f.until = T0 + 4 * HOUR;
    n = list(st, &f, &ev);
    CHECK(n == 1 && is_mid(&ev[0], "e2"),
          "Delivered in [T0+1h, T0+4h): e2 only: %zu", n);
    slh_store_events_free(ev, n);
    f.type = NULL;
    n = list(st, &f, &ev);
    CHECK(n == 3 && is_mid(&ev[0], "e3") && is_mid(&ev[2], "e1"),
          "the window's three, since included, until not: %zu", n);
    slh_store_events_free(ev, n);
    memset(&f, 0, sizeof(f));
    f.type = "delivered";
    n = list(st, &f, &ev);
    CHECK(n == 3 && is_mid(&ev[0], "e4"), "Type in any case: %zu", n);
    slh_store_events_free(ev, n);
    memset(&f, 0, sizeof(f));
    f.message_id = "e3";
    n = list(st, &f, &ev);
    CHECK(n == 1 && is_mid(&ev[0], "e3") && ev[0].n_rows == 2,
          "by MessageId, with its rows: %zu", n);
    slh_store_events_free(ev, n);
    f.type = "Delivered";
    n = list(st, &f, &ev);
    CHECK(n == 0, "by MessageId and another Type: none: %zu", n);
    slh_store_events_free(ev, n);
    f.type = NULL;
    f.message_id = "e";
    n = list(st, &f, &ev);
    CHECK(n == 0, "a MessageId is matched whole: %zu", n);
    slh_store_events_free(ev, n);
    slh_store_events_free(NULL, 0);
out:
    close_store(&cfg, st);
}

/* A state many rows are in is listed by reading events newest first; a
 * rare one through its rows (store_sqlite_events.c's RARE_ROWS: 10000):
 * either way the same answer. */
#define MANY 10050
static void
test_events_many(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_store_event *ev = NULL;
    struct slh_store_filter f = {.dest = "a", .limit = 3};
    struct slh_batch b = {0};
    const struct slh_batch *one = &b;
    struct slh_error err = {0};
    size_t n = 0, len = 0, size = (size_t)MANY * 160 + 2;
    char *body = malloc(size);

    if (body == NULL ||
        !open_store(&cfg, &st, "many", "[destination a]\nurl = http://h/a\n")) {
        free(body);
        return;
    }
    body[len++] = '[';
    for (int i = 0; i < MANY; i++)
        len += (size_t)snprintf(body + len, size - len,
                                "%s{\"Type\":\"Open\",\"MessageId\":\"m%d\","
                                "\"SecretKey\":\"q7Rt2mXw9LpB4sKd8Zf3\"}",
                                i > 0 ? "," : "", i);
    body[len++] = ']';
    if (CHECK(slh_batch_parse(&b, body, len, SLH_MEDIA_JSON, &err) == SLH_OK &&
                  slh_store_put(st, &cfg, &one, 1, T0, &n, &err) == SLH_OK &&
                  n == MANY,
              "%d events stored: %s", MANY, err.text)) {
        f.states = 1u << SLH_PENDING;
        n = list(st, &f, &ev);
        CHECK(n == 3 && is_mid(&ev[0], "m10049") && is_mid(&ev[2], "m10047"),
              "pending, more than 10000: the newest 3: %zu", n);
        slh_store_events_free(ev, n);
        f.states = 1u << SLH_DEAD;
        n = list(st, &f, &ev);
        CHECK(n == 0, "dead: none: %zu", n);
        slh_store_events_free(ev, n);
        f.dest = NULL;
        f.states = 1u << SLH_PENDING | 1u << SLH_DEAD;
        f.limit = 1;
        n = list(st, &f, &ev);
        CHECK(n == 1 && is_mid(&ev[0], "m10049"),
              "any destination's pending or dead: the newest: %zu", n);
        slh_store_events_free(ev, n);
    }
    slh_batch_free(&b);
    free(body);
    close_store(&cfg, st);
}

/* Events by MessageId whether the index has them yet or not, and the
 * index caught up in batches; a purge takes what it indexed with it (the
 * verify of close_store()). */
static void
test_index(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_store_event *ev = NULL;
    struct slh_store_filter f = {0};
    struct slh_error err = {0};
    size_t n = 0, total = 0;
    int rounds = 0;

    if (!open_store(&cfg, &st, "index", "[destination a]\nurl = http://h/a\n"))
        goto out;
    put(st, &cfg, "Delivered", "i0", T0);
    put(st, &cfg, "Failed", "i1", T0 + 1);
    put(st, &cfg, "Delivered", "i2", T0 + 2);
    put(st, &cfg, "Open", "i1", T0 + 3);
    f.message_id = "i1";
    n = list(st, &f, &ev);
    CHECK(n == 2 && is_mid(&ev[0], "i1") && strcmp(ev[0].type, "Open") == 0,
          "none indexed: both of i1 found, newest first: %zu", n);
    slh_store_events_free(ev, n);
    do {
        n = 99;
        CHECK(slh_store_index(st, 3, &n, &err) == SLH_OK && n <= 3,
              "%s: index 3 more: %zu %s", be->name, n, err.text);
        total += n;
    } while (n == 3 && ++rounds < 5);
    CHECK(n < 3 && (total == 4 || total == 0),
          "caught up in batches, or nothing to do: %zu", total);
    CHECK(slh_store_index(st, 3, &n, &err) == SLH_OK && n == 0,
          "nothing left: %zu", n);
    n = list(st, &f, &ev);
    CHECK(n == 2 && strcmp(ev[1].type, "Failed") == 0,
          "all indexed: both of i1 found: %zu", n);
    slh_store_events_free(ev, n);
    put(st, &cfg, "Complaint", "i1", T0 + 4);
    n = list(st, &f, &ev);
    CHECK(n == 3 && strcmp(ev[0].type, "Complaint") == 0,
          "the indexed two and one past them: %zu", n);
    slh_store_events_free(ev, n);
    f.since = T0 + 2;
    n = list(st, &f, &ev);
    CHECK(n == 2, "and the window still bounds them: %zu", n);
    slh_store_events_free(ev, n);
    CHECK(slh_store_index(st, 100, &n, &err) == SLH_OK, "index: %s", err.text);
    CHECK(slh_store_purge(st, T0 + 10, &n, &err) == SLH_OK, "purge: %s",
          err.text); /* pending rows: the events stay */
out:
    close_store(&cfg, st);
}

/* One event read by its id or a unique prefix. */
static void
test_event(void)
{
    struct slh_config cfg;
    struct slh_store *st;
    struct slh_store_event *all = NULL, one;
    struct slh_error err = {0};
    char prefix[SLH_EVENT_ID_LEN + 1];
    size_t n = 0;

    if (!window_store(&cfg, &st, "event"))
        goto out;
    n = list(st, NULL, &all);
    if (!CHECK(n == 6, "six events"))
        goto out;
    CHECK(slh_store_event(st, all[4].id, &one, &err) == SLH_OK &&
              one.seq == all[4].seq && is_mid(&one, "e1") && one.n_rows == 2 &&
              one.rows[0].state == SLH_DEAD && one.rows[1].state == SLH_PENDING,
          "by its id, with its rows: %s", err.text);
    slh_store_event_free(&one);
    memcpy(prefix, all[2].id, SLH_STORE_PREFIX_MIN);
    prefix[SLH_STORE_PREFIX_MIN] = '\0';
    CHECK(slh_store_event(st, prefix, &one, &err) == SLH_OK &&
              strcmp(one.id, all[2].id) == 0,
          "by a prefix of %d: %s", SLH_STORE_PREFIX_MIN, err.text);
    slh_store_event_free(&one);
    prefix[SLH_STORE_PREFIX_MIN - 1] = '\0';
    CHECK(slh_store_event(st, prefix, &one, &err) == SLH_EINVAL &&
              one.body == NULL,
          "a prefix too short: %s", err.text);
    CHECK(slh_store_event(st, "XYZ12345", &one, &err) == SLH_EINVAL,
          "not hex: %s", err.text);
    snprintf(prefix, sizeof(prefix), "%s", all[2].id);
    prefix[0] = prefix[0] == '0' ? '1' : '0';
    prefix[SLH_STORE_PREFIX_MIN + 4] = '\0';
    CHECK(slh_store_event(st, prefix, &one, &err) == SLH_ENOTFOUND,
          "no such event: %s", err.text);
    slh_store_event_free(NULL);
out:
    slh_store_events_free(all, n);
    close_store(&cfg, st);
}

/* A window queued again for one destination, and backfilled for one
 * added after the events arrived. */
static void
test_requeue(void)
{
    struct slh_config cfg, cfg2 = {0};
    struct slh_store *st;
    struct slh_store_owner *me = NULL;
    struct slh_error err = {0};
    struct slh_claim c[8];
    struct slh_store_replay r = {0};
    static const char *const failed[] = {"failed"};
    static const char *const delivered[] = {"Open", "Delivered"};
    char text[1024];
    size_t n = 99, m = 0;

    if (!window_store(&cfg, &st, "requeue"))
        goto out;
    r.dest = &cfg.dests[0];
    r.since = T0;
    r.until = T0 + 6 * HOUR;
    r.states = 1u << SLH_DELIVERED | 1u << SLH_DEAD;
    r.is_dry_run = true;
    CHECK(slh_store_requeue(st, &r, T0 + 8 * HOUR, &n, &err) == SLH_OK &&
              n == 2 && stats(st, "a").pending == 4 &&
              stats(st, "a").delivered == 1 && stats(st, "a").dead == 1,
          "dry run: 2 would be queued, nothing changed: %zu %s", n, err.text);
    r.is_dry_run = false;
    r.types = failed;
    r.n_types = 1;
    CHECK(slh_store_requeue(st, &r, T0 + 8 * HOUR, &n, &err) == SLH_OK &&
              n == 1 && stats(st, "a").dead == 0 &&
              stats(st, "a").delivered == 1,
          "of Type failed (any case): e1, the dead one: %zu %s", n, err.text);
    r.types = delivered;
    r.n_types = 2;
    CHECK(slh_store_requeue(st, &r, T0 + 8 * HOUR, &n, &err) == SLH_OK &&
              n == 1,
          "of Types Delivered or Open: e0: %zu %s", n, err.text);
    CHECK(stats(st, "a").pending == 6 && stats(st, "b").pending == 3,
          "every a row pending; b untouched");
    CHECK(slh_store_owner_open(st, &me, &err) == SLH_OK, "owner: %s", err.text);
    CHECK(slh_store_claim(st, "a", slh_store_owner_token(me), T0 + 8 * HOUR,
                          LEASE, 8, c, &m, NULL, &err) == SLH_OK &&
              m == 6,
          "all due: %zu", m);
    for (size_t i = 0; i < m; i++)
        if (c[i].received == T0 || c[i].received == T0 + HOUR)
            CHECK(c[i].attempts == 1 && c[i].revived == T0 + 8 * HOUR,
                  "a requeued row: attempts afresh, horizon from now");
    memset(&r, 0, sizeof(r));
    r.dest = &cfg.dests[0];
    r.states = 1u << SLH_PENDING;
    CHECK(slh_store_requeue(st, &r, T0 + 8 * HOUR, &n, &err) == SLH_OK &&
              n == 0,
          "rows leased to a live owner are left alone");
    free_claims(c, m);
    /* A destination added later: rows for what its filter accepts. */
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s\n"
             "[destination c]\nurl = http://127.0.0.1:9/c\nevents = Failed\n",
             cfg.spool);
    if (!CHECK(slh_config_parse(&cfg2, text, "test.ini", &err) == SLH_OK,
               "config: %s", err.text))
        goto out;
    memset(&r, 0, sizeof(r));
    r.dest = &cfg2.dests[0];
    r.since = T0 + HOUR;
    r.until = T0 + 5 * HOUR;
    CHECK(slh_store_requeue(st, &r, T0 + 9 * HOUR, &n, &err) == SLH_OK &&
              n == 2,
          "backfill by default: c gets e1 and e3, its Failed ones in the "
          "window: %zu",
          n);
    CHECK(stats(st, "c").pending == 2, "c: 2 pending");
    r.since = r.until = 0;
    r.states = SLH_STORE_NO_ROW;
    CHECK(slh_store_requeue(st, &r, T0 + 9 * HOUR, &n, &err) == SLH_OK &&
              n == 1,
          "then e5 only, the others have a row");
out:
    slh_store_owner_close(me);
    slh_config_free(&cfg2);
    close_store(&cfg, st);
}

/* ---- moved from test_queue: generic cases ---- */

#define RACE_EVENTS 1000

static pthread_barrier_t race_start;
struct racer {
    const char *spool;
    int64_t *seqs;
    size_t n;
    bool ok;
};
static void
test_claim_finish_stats(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_claim c[MAX_EVENTS];
    struct slh_outcome o[3];
    struct slh_store_stats st;
    int64_t next = 0, due = 0;
    size_t n = 0, n2 = 0, bodies_ok = 0;

    if (!fixture_spool(&cfg, &sp, "spool",
                       "[destination a]\nurl = http://127.0.0.1:9/a\n"
                       "timeout = 5\nmax_age = 1h\n"
                       "[destination b]\nurl = http://127.0.0.1:9/b\n"
                       "events = Failed\n"))
        goto out;
    CHECK(n_events >= 15, "fixtures give %zu events", n_events);
    CHECK(slh_store_role(sp, SLH_STORE_DELIVERER, &err) == SLH_OK, "setup: %s",
          err.text);

    /* Everything is due for a; its claim leases every row. */
    CHECK(slh_store_claim(sp, "a", 0, T0, LEASE, MAX_EVENTS, c, &n, &next,
                          &err) == SLH_OK,
          "claim: %s", err.text);
    CHECK(n == n_events, "claimed %zu of %zu", n, n_events);
    CHECK(next == T0 + LEASE, "next due is the lease's end: %" PRId64,
          next - T0);
    for (size_t i = 0; i < n; i++) {
        const char *want = body_of(c[i].id);
        bodies_ok += want != NULL && strcmp(want, c[i].body) == 0 &&
                     c[i].body_len == strlen(want) && c[i].attempts == 1 &&
                     c[i].received == T0 && c[i].revived == 0;
    }
    CHECK(bodies_ok == n, "%zu of %zu claims carry body, attempt 1, received",
          bodies_ok, n);
    CHECK(strstr(c[0].body, "SecretKey") == NULL, "no SecretKey in bodies");
    free_claims(c, n);

    /* Leased: nobody else gets them until the lease ends. */
    CHECK(slh_store_claim(sp, "a", 0, T0 + LEASE - 1, LEASE, MAX_EVENTS, c, &n,
                          NULL, &err) == SLH_OK &&
              n == 0,
          "leased rows are not claimed again (%zu)", n);
    /* A crashed deliverer's rows come back after the lease. */
    CHECK(slh_store_claim(sp, "a", 0, T0 + LEASE, LEASE, MAX_EVENTS, c, &n,
                          NULL, &err) == SLH_OK &&
              n == n_events && c[0].attempts == 2,
          "after the lease: %zu rows, attempt %d", n,
          n > 0 ? c[0].attempts : -1);

    /* b wants only Failed events. */
    CHECK(slh_store_claim(sp, "b", 0, T0, LEASE, MAX_EVENTS, c + n, &n2, NULL,
                          &err) == SLH_OK &&
              n2 == count_type("Failed"),
          "b's filter: %zu claimed, %zu Failed", n2, count_type("Failed"));
    free_claims(c + n, n2);

    /* Outcomes: one delivered, one retrying, one dead. */
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 3; i++) {
        o[i].dest = "a";
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
    }
    o[0].state = SLH_DELIVERED;
    o[0].status = 204;
    o[1].state = SLH_PENDING;
    o[1].due = T0 + 3 * LEASE;
    o[1].status = 500;
    snprintf(o[1].error, sizeof(o[1].error), "HTTP 500");
    o[2].state = SLH_DEAD;
    o[2].status = 410;
    snprintf(o[2].error, sizeof(o[2].error), "HTTP 410");
    CHECK(slh_store_finish(sp, o, 3, T0 + LEASE + 5, &err) == SLH_OK,
          "finish: %s", err.text);
    /* The rest are given back unattempted. */
    {
        int64_t seqs[MAX_EVENTS];
        for (size_t i = 3; i < n; i++)
            seqs[i - 3] = c[i].seq;
        CHECK(slh_store_unclaim(sp, "a", seqs, n - 3, T0 + LEASE + 5, &err) ==
                  SLH_OK,
              "unclaim: %s", err.text);
    }
    free_claims(c, n);

    CHECK(slh_store_stats(sp, "a", &st, &err) == SLH_OK, "stats: %s", err.text);
    CHECK(st.delivered == 1 && st.dead == 1 &&
              st.pending == (int64_t)n_events - 2 && st.retrying == 1,
          "stats: delivered %" PRId64 " dead %" PRId64 " pending %" PRId64
          " retrying %" PRId64,
          st.delivered, st.dead, st.pending, st.retrying);
    CHECK(st.oldest_pending == T0, "oldest pending %" PRId64,
          st.oldest_pending);
    CHECK(st.last_status == 500 && strcmp(st.last_error, "HTTP 500") == 0,
          "last error %d '%s'", st.last_status, st.last_error);

    /* Given-back rows are due at once with their attempt uncounted; the
     * retrying one waits for its due time. */
    CHECK(slh_store_claim(sp, "a", 0, T0 + LEASE + 5, LEASE, MAX_EVENTS, c, &n,
                          &next, &err) == SLH_OK &&
              n == n_events - 3 && c[0].attempts == 2,
          "given back: %zu rows, attempt %d", n, n > 0 ? c[0].attempts : -1);
    CHECK(next == T0 + 2 * LEASE + 5, "next due %" PRId64, next - T0);
    free_claims(c, n);
    CHECK(slh_store_claim(sp, "a", 0, T0 + 3 * LEASE, 1, MAX_EVENTS, c, &n,
                          NULL, &err) == SLH_OK &&
              n >= 1,
          "the retrying row is due at its time");
    {
        int attempts = -1;
        for (size_t i = 0; i < n; i++)
            if (c[i].seq == o[1].seq)
                attempts = c[i].attempts;
        CHECK(attempts == 3, "retrying row claimed, attempt %d", attempts);
    }
    free_claims(c, n);

    /* A late outcome for a finished row changes nothing. */
    o[0].state = SLH_PENDING;
    o[0].due = T0;
    CHECK(slh_store_finish(sp, o, 1, T0 + 4 * LEASE, &err) == SLH_OK,
          "late finish");
    CHECK(slh_store_stats(sp, "a", &st, &err) == SLH_OK && st.delivered == 1,
          "a delivered row stays delivered");

    /* retry brings the dead letter back, with a fresh horizon. */
    CHECK(slh_store_retry(sp, "a", T0 + 5 * LEASE, &n, &err) == SLH_OK &&
              n == 1,
          "retry: %zu back (%s)", n, err.text);
    CHECK(slh_store_retry(sp, "b", T0 + 5 * LEASE, &n, &err) == SLH_OK &&
              n == 0,
          "retry of a destination without dead letters: %zu", n);
    CHECK(slh_store_stats(sp, "a", &st, &err) == SLH_OK && st.dead == 0 &&
              st.pending == (int64_t)n_events - 1,
          "after retry: dead %" PRId64 " pending %" PRId64, st.dead,
          st.pending);
    CHECK(slh_store_claim(sp, "a", 0, T0 + 5 * LEASE, LEASE, MAX_EVENTS, c, &n,
                          NULL, &err) == SLH_OK,
          "claim after retry");
    {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            if (c[i].seq == o[2].seq)
                found = c[i].attempts == 1 && c[i].revived == T0 + 5 * LEASE;
        CHECK(found, "the revived row: attempt 1, revived stamped");
    }
    free_claims(c, n);

    CHECK(slh_store_next_due(sp, "nobody", &due, &err) == SLH_OK &&
              due == INT64_MAX,
          "no rows: next due INT64_MAX");
    CHECK(slh_store_next_due(sp, NULL, &due, &err) == SLH_OK &&
              due == T0 + LEASE,
          "every destination: b's leased rows are due at T0 + LEASE (%" PRId64
          ") %s",
          due - T0, err.text);
    CHECK(slh_store_stats(sp, "nobody", &st, &err) == SLH_OK &&
              st.pending == 0 && st.delivered == 0 && st.last_error[0] == 0,
          "stats of an unknown destination are zeros");
out:
    slh_store_close(sp);
    slh_config_free(&cfg);
}
static void *
race(void *arg)
{
    struct racer *r = arg;
    struct slh_store *sp = NULL;
    struct slh_claim c[16];
    size_t n;

    r->ok = slh_store_open(&sp, r->spool, SLH_STORE_CREATE, NULL) == SLH_OK;
    pthread_barrier_wait(&race_start);
    while (r->ok) {
        r->ok = slh_store_claim(sp, "a", 0, T0, LEASE, 4, c, &n, NULL, NULL) ==
                SLH_OK;
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            r->seqs[r->n++] = c[i].seq;
        free_claims(c, n);
        usleep(500); /* the attempts, so that the two take turns */
    }
    slh_store_close(sp);
    return NULL;
}
static int
cmp_seq(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}
static void
test_race(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct racer r[2];
    pthread_t t[2];
    int64_t *all;
    char spool[128], body[256];
    size_t dups = 0;
    int64_t v1, v2;

    if (!CHECK(be->make(spool, sizeof(spool), "race"), "make race") ||
        !load_config(&cfg, spool,
                     "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        return;
    if (!CHECK(slh_store_open(&sp, spool, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        goto out;
    v1 = slh_store_data_version(sp);
    for (int i = 0; i < RACE_EVENTS; i++) {
        struct slh_batch batch = {0};
        const struct slh_batch *one = &batch;
        int len = snprintf(body, sizeof(body),
                           "{\"Type\":\"Delivered\",\"ServerId\":40211,"
                           "\"MessageId\":\"race-%d\",\"Address\":"
                           "\"a@b.example\"}",
                           i);
        if (slh_batch_parse(&batch, body, (size_t)len, SLH_MEDIA_JSON, &err) !=
                SLH_OK ||
            slh_store_put(sp, &cfg, &one, 1, T0, NULL, &err) != SLH_OK) {
            CHECK(0, "put %d: %s", i, err.text);
            slh_batch_free(&batch);
            goto out;
        }
        slh_batch_free(&batch);
    }
    /* Our own commits do not change our data_version... */
    v2 = slh_store_data_version(sp);
    CHECK(v1 != 0 && v1 == v2, "data_version ignores own commits");
    pthread_barrier_init(&race_start, NULL, 2);
    for (int i = 0; i < 2; i++) {
        r[i] = (struct racer){.spool = spool,
                              .seqs = calloc(RACE_EVENTS, sizeof(int64_t))};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&race_start);
    /* ... another connection's do. */
    CHECK(slh_store_data_version(sp) != v2,
          "data_version sees other connections' commits");
    CHECK(r[0].ok && r[1].ok, "both claimers ran without error");
    CHECK(r[0].n + r[1].n == RACE_EVENTS, "claimed %zu + %zu of %d", r[0].n,
          r[1].n, RACE_EVENTS);
    CHECK(r[0].n > 0 && r[1].n > 0, "both claimers got rows (%zu, %zu)", r[0].n,
          r[1].n);
    all = calloc(RACE_EVENTS * 2, sizeof(int64_t));
    if (all != NULL) {
        memcpy(all, r[0].seqs, r[0].n * sizeof(int64_t));
        memcpy(all + r[0].n, r[1].seqs, r[1].n * sizeof(int64_t));
        qsort(all, r[0].n + r[1].n, sizeof(int64_t), cmp_seq);
        for (size_t i = 1; i < r[0].n + r[1].n; i++)
            dups += all[i] == all[i - 1];
        CHECK(dups == 0, "%zu rows claimed by both", dups);
    }
    free(all);
    free(r[0].seqs);
    free(r[1].seqs);
out:
    slh_store_close(sp);
    slh_config_free(&cfg);
}

int
main(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/test_store.XXXXXX");
    if (mkdtemp(tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        be = &backends[i];
        printf("backend %s\n", be->name);
        test_put();
        test_claim();
        test_retry_purge();
        test_tasks();
        test_owners();
        test_purge_due();
        test_events();
        test_events_many();
        test_index();
        test_event();
        test_requeue();
        test_claim_finish_stats();
        test_race();
        test_throttle_state();
        test_import();
        test_minutes();
    }
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        if (check_failed == 0 && system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
    }
    fixture_store_free();
    return check_summary();
}

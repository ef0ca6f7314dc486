/* test_metrics: lib/metrics.c's counters and exposition. Requests by
 * status, events by Type, the histograms' cumulative buckets, a
 * destination label that needs escaping, counting from many threads at
 * once, and slh_metrics_write() on a real spool with and without the
 * process's part. Every exposition written is also checked for what
 * promtool asks (HELP and TYPE before samples, _total on counters,
 * cumulative buckets ending in +Inf equal to _count).
 *
 * With an argument, also writes the whole exposition (a spool and every
 * counter bumped) to that file, for tests/t_metrics.sh to give promtool. */
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "commit.h"
#include "config.h"
#include "deliver.h"
#include "event.h"
#include "metrics.h"
#include "status.h"
#include "store.h"

#define T0 1796200000000LL
#define THREADS 8
#define PER_THREAD 20000

static char tmp[64];

/* The exposition, a new string; NULL when slh_metrics_write() failed. */
static char *
exposition(struct slh_store *sp, const struct slh_config *cfg, bool has_process)
{
    struct slh_error err = {0};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    enum slh_err rc;

    if (f == NULL)
        return NULL;
    rc = slh_metrics_write(f, sp, cfg, has_process, T0, &err);
    fclose(f);
    if (!CHECK(rc == SLH_OK, "slh_metrics_write: %s", err.text)) {
        free(text);
        return NULL;
    }
    return text;
}

/* The value of the sample line that begins with series (name and labels);
 * -1 when there is none. */
static double
value(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* How many lines of text begin with prefix. */
static int
lines_with(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);

    for (const char *p = text; p != NULL && *p != '\0';) {
        n += strncmp(p, prefix, len) == 0;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return n;
}

/* What a family declared: its name and type, while its samples follow. */
struct lint {
    char name[128];
    char type[16];
    char series[512]; /* a histogram's labels but le, of the last bucket */
    double last;      /* that series' last bucket */
    bool is_inf;      /* and whether that was +Inf */
    int problems;
};

/* test_lint()'s made-up problems are counted, not printed. */
static bool lint_quiet;

/* Counts a problem unless ok, saying which; returns ok. */
__attribute__((format(printf, 3, 4))) static bool
lint_ok(struct lint *l, bool ok, const char *fmt, ...)
{
    va_list ap;

    if (ok)
        return true;
    l->problems++;
    if (lint_quiet)
        return false;
    fputs("lint: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    return false;
}

static void
lint_bucket(struct lint *l, const char *line, double v)
{
    const char *le = strstr(line, "le=\"");
    size_t n = le != NULL ? (size_t)(le - line) : 0;

    if (!lint_ok(l, le != NULL && n < sizeof(l->series), "a bucket: %s", line))
        return;
    if (strncmp(l->series, line, n) != 0 || l->series[n] != '\0') {
        lint_ok(l, l->series[0] == '\0' || l->is_inf,
                "%s: the series before ends in +Inf", l->series);
        memcpy(l->series, line, n);
        l->series[n] = '\0';
        l->last = 0;
    }
    lint_ok(l, v >= l->last, "cumulative: %s after %g", line, l->last);
    l->last = v;
    l->is_inf = strncmp(le, "le=\"+Inf\"}", 10) == 0;
}

/* One sample line of the family l declared. */
static void
lint_sample(struct lint *l, const char *line)
{
    size_t n = strlen(l->name);
    const char *rest = line + n, *sp = strrchr(line, ' ');
    double v = sp != NULL ? strtod(sp + 1, NULL) : -1;

    if (!lint_ok(l, l->name[0] != '\0' && strncmp(line, l->name, n) == 0,
                 "a sample of its family (%s): %s", l->name, line))
        return;
    if (strcmp(l->type, "histogram") != 0) {
        lint_ok(l, *rest == '{' || *rest == ' ', "no suffix: %s", line);
        return;
    }
    if (strncmp(rest, "_bucket{", 8) == 0)
        lint_bucket(l, line, v);
    else if (strncmp(rest, "_count", 6) == 0)
        lint_ok(l, l->is_inf && v == l->last, "_count is the +Inf bucket: %s",
                line);
    else
        lint_ok(l, strncmp(rest, "_sum", 4) == 0, "a histogram's line: %s",
                line);
}

/* A # HELP or # TYPE line. */
static void
lint_family(struct lint *l, const char *line)
{
    char name[128];
    size_t n;

    if (strncmp(line, "# HELP ", 7) == 0) {
        int problems = l->problems;
        lint_ok(l, l->series[0] == '\0' || l->is_inf, "%s ends in +Inf",
                l->series);
        memset(l, 0, sizeof(*l));
        l->problems = problems;
        lint_ok(l,
                sscanf(line, "# HELP %127s", l->name) == 1 &&
                    strncmp(l->name, "slhook_", 7) == 0,
                "HELP of an slhook_ name: %s", line);
        return;
    }
    lint_ok(l,
            sscanf(line, "# TYPE %127s %15s", name, l->type) == 2 &&
                strcmp(name, l->name) == 0,
            "TYPE after its HELP: %s", line);
    n = strlen(name);
    lint_ok(l,
            (strcmp(l->type, "counter") == 0) ==
                (n > 6 && strcmp(name + n - 6, "_total") == 0),
            "_total on counters only: %s", line);
}

/* Checks text line by line for what promtool checks too; returns the
 * number of problems, each printed. */
static int
lint(const char *text)
{
    struct lint l = {0};
    char line[1024];
    const char *p = text;

    while (*p != '\0') {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        p += n + (p[n] == '\n');
        if (strncmp(line, "# ", 2) == 0)
            lint_family(&l, line);
        else
            lint_sample(&l, line);
    }
    lint_ok(&l, l.series[0] == '\0' || l.is_inf, "%s ends in +Inf", l.series);
    return l.problems;
}

/* The checker itself, on made-up expositions that break each rule. */
static void
test_lint(void)
{
    static const struct {
        const char *text;
        int problems;
    } cases[] = {
        {"# HELP slhook_x_total x\n# TYPE slhook_x_total counter\n"
         "slhook_x_total{a=\"b\"} 1\n"
         "# HELP slhook_h h\n# TYPE slhook_h histogram\n"
         "slhook_h_bucket{le=\"1\"} 1\nslhook_h_bucket{le=\"+Inf\"} 2\n"
         "slhook_h_sum 3\nslhook_h_count 2\n",
         0},
        {"slhook_x 1\n", 1},
        {"# HELP slhook_x x\n# TYPE slhook_x counter\nslhook_x 1\n", 1},
        {"# HELP slhook_x_total x\n# TYPE slhook_x_total gauge\n", 1},
        {"# HELP slhook_x x\n# TYPE slhook_x gauge\nslhook_y 1\n", 1},
        {"# HELP slhook_h h\n# TYPE slhook_h histogram\n"
         "slhook_h_bucket{le=\"1\"} 2\nslhook_h_bucket{le=\"+Inf\"} 1\n"
         "slhook_h_count 1\n",
         1},
        {"# HELP slhook_h h\n# TYPE slhook_h histogram\n"
         "slhook_h_bucket{le=\"1\"} 2\nslhook_h_count 2\n",
         2},
        {"# HELP other x\n# TYPE other gauge\n", 1},
    };

    lint_quiet = true;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(lint(cases[i].text) == cases[i].problems,
              "lint case %zu: %d problem(s)", i, cases[i].problems);
    lint_quiet = false;
}

static void
test_requests(void)
{
    char *text;

    for (int i = 0; i < 3; i++)
        slh_metrics_request(200);
    slh_metrics_request(503);
    slh_metrics_request(42);
    slh_metrics_request(600);
    text = exposition(NULL, &(struct slh_config){.spool = tmp}, true);
    if (text == NULL)
        return;
    CHECK(value(text, "slhook_requests_total{status=\"200\"}") == 3,
          "3 answered 200");
    CHECK(value(text, "slhook_requests_total{status=\"503\"}") == 1,
          "1 answered 503");
    CHECK(value(text, "slhook_requests_total{status=\"other\"}") == 2,
          "42 and 600 are other");
    CHECK(value(text, "slhook_requests_total{status=\"404\"}") == -1,
          "no line for a status never given");
    CHECK(lint(text) == 0, "the exposition lints clean");
    free(text);
}

/* A batch of events with these Types. */
static bool
batch_of(struct slh_batch *b, const char *const *types, size_t n)
{
    char body[4096];
    size_t len = 0;
    struct slh_error err = {0};

    len += (size_t)snprintf(body, sizeof(body), "[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "%s{\"Type\":\"%s\",\"ServerId\":1,"
                                "\"MessageId\":\"m%zu\",\"DateTime\":"
                                "\"2026-12-02T10:00:00Z\"}",
                                i > 0 ? "," : "", types[i], i);
    len += (size_t)snprintf(body + len, sizeof(body) - len, "]");
    memset(b, 0, sizeof(*b));
    return CHECK(slh_batch_parse(b, body, len, SLH_MEDIA_JSON, &err) == SLH_OK,
                 "parse: %s", err.text);
}

static void
test_events(void)
{
    static const char *const types[] = {"Queued", "queued",     "Delivered",
                                        "Bounce", "Validation", "TRACKING"};
    struct slh_batch b;
    char *text;

    if (!batch_of(&b, types, 6))
        return;
    slh_metrics_events(&b, true);
    slh_metrics_events(&b, false);
    slh_batch_free(&b);
    text = exposition(NULL, &(struct slh_config){.spool = tmp}, true);
    if (text == NULL)
        return;
    CHECK(value(text, "slhook_events_received_total{type=\"Queued\"}") == 4 &&
              value(text, "slhook_events_stored_total{type=\"Queued\"}") == 2,
          "Queued in any case: 4 received, 2 stored");
    CHECK(value(text, "slhook_events_received_total{type=\"Tracking\"}") == 2,
          "TRACKING is Tracking");
    CHECK(value(text, "slhook_events_received_total{type=\"other\"}") == 2 &&
              value(text, "slhook_events_stored_total{type=\"other\"}") == 1,
          "Bounce is other");
    CHECK(value(text, "slhook_events_received_total{type=\"Validation\"}") ==
                  2 &&
              value(text, "slhook_events_stored_total{type=\"Validation\"}") ==
                  -1,
          "Validation received, never stored");
    CHECK(value(text, "slhook_events_received_total{type=\"Complaint\"}") == 0,
          "every Type has a line, 0 when none came");
    free(text);
}

static void
test_histograms(void)
{
    char *text;

    slh_metrics_commit(0.003, 5);
    slh_metrics_commit(0.0005, 1); /* on a bound: in it (le) */
    slh_metrics_commit(20, 7000);  /* past every bound */
    slh_metrics_commit(-1, 0);     /* a clock set back: 0 */
    text = exposition(NULL, &(struct slh_config){.spool = tmp}, true);
    if (text == NULL)
        return;
#define COMMIT "slhook_commit_duration_seconds"
    CHECK(value(text, COMMIT "_bucket{le=\"0.0005\"}") == 2 &&
              value(text, COMMIT "_bucket{le=\"0.001\"}") == 2 &&
              value(text, COMMIT "_bucket{le=\"0.005\"}") == 3 &&
              value(text, COMMIT "_bucket{le=\"10\"}") == 3 &&
              value(text, COMMIT "_bucket{le=\"+Inf\"}") == 4 &&
              value(text, COMMIT "_count") == 4,
          "commit durations: cumulative buckets");
    CHECK(value(text, COMMIT "_sum") == 20.0035, "commit durations: sum %g",
          value(text, COMMIT "_sum"));
    CHECK(value(text, "slhook_commit_events_bucket{le=\"1\"}") == 2 &&
              value(text, "slhook_commit_events_bucket{le=\"5\"}") == 3 &&
              value(text, "slhook_commit_events_bucket{le=\"5000\"}") == 3 &&
              value(text, "slhook_commit_events_bucket{le=\"+Inf\"}") == 4 &&
              value(text, "slhook_commit_events_sum") == 7006,
          "events per commit");
    CHECK(lint(text) == 0, "the exposition lints clean");
    free(text);
}

/* A destination named with every character a label escapes. */
static void
test_escaping(void)
{
    char *text;

    slh_metrics_delivered("we\"ird\\dest\nx", 0.2);
    slh_metrics_delivered("we\"ird\\dest\nx", 7200);
    text = exposition(NULL, &(struct slh_config){.spool = tmp}, true);
    if (text == NULL)
        return;
#define WEIRD "{destination=\"we\\\"ird\\\\dest\\nx\""
    CHECK(value(text, "slhook_delivery_latency_seconds_bucket" WEIRD
                      ",le=\"0.25\"}") == 1 &&
              value(text, "slhook_delivery_latency_seconds_bucket" WEIRD
                          ",le=\"3600\"}") == 1 &&
              value(text, "slhook_delivery_latency_seconds_bucket" WEIRD
                          ",le=\"14400\"}") == 2,
          "the destination escaped, its buckets");
    CHECK(value(text, "slhook_delivery_latency_seconds_count" WEIRD "}") == 2 &&
              value(text, "slhook_delivery_latency_seconds_sum" WEIRD "}") ==
                  7200.2,
          "its count and sum");
    CHECK(strstr(text, "we\"ird") == NULL && strstr(text, "dest\nx") == NULL,
          "nothing unescaped");
    CHECK(lint(text) == 0, "the exposition lints clean");
    free(text);
}

static void *
bumper(void *arg)
{
    char own[32];

    snprintf(own, sizeof(own), "thread-%d", *(int *)arg);
    for (int i = 0; i < PER_THREAD; i++) {
        slh_metrics_request(299);
        slh_metrics_delivered(i % 2 == 0 ? "shared" : own, 0.5);
    }
    return NULL;
}

/* THREADS threads at once, two of them racing to make each destination. */
static void
test_threads(void)
{
    pthread_t t[THREADS];
    int ids[THREADS];
    char *text, series[128];
    bool all = true;

    for (int i = 0; i < THREADS; i++) {
        ids[i] = i % (THREADS / 2);
        pthread_create(&t[i], NULL, bumper, &ids[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    text = exposition(NULL, &(struct slh_config){.spool = tmp}, true);
    if (text == NULL)
        return;
    CHECK(value(text, "slhook_requests_total{status=\"299\"}") ==
              THREADS * PER_THREAD,
          "every request counted");
    CHECK(value(text, "slhook_delivery_latency_seconds_count{destination="
                      "\"shared\"}") == THREADS * PER_THREAD / 2 &&
              value(text, "slhook_delivery_latency_seconds_sum{destination="
                          "\"shared\"}") == THREADS * PER_THREAD / 4,
          "shared: every delivery counted, and its sum");
    CHECK(lines_with(text, "slhook_delivery_latency_seconds_count{destination="
                           "\"shared\"}") == 1,
          "shared: one series, though made by racing threads");
    for (int i = 0; i < THREADS / 2; i++) {
        snprintf(series, sizeof(series),
                 "slhook_delivery_latency_seconds_count{destination=\"thread-"
                 "%d\"}",
                 i);
        all = all && value(text, series) == PER_THREAD &&
              lines_with(text, series) == 1;
    }
    CHECK(all, "each thread's own destination: one series, all counted");
    CHECK(lint(text) == 0, "the exposition lints clean");
    free(text);
}

/* The spool's part always, the process's only with has_process; a spool
 * with a row to show. */
static void
test_write(const char *out_path)
{
    char spool[128], *text;
    struct slh_config cfg = {0};
    struct slh_store *st = NULL;
    struct slh_error err = {0};
    FILE *f;

    snprintf(spool, sizeof(spool), "%s/spool", tmp);
    {
        char ini[512];
        snprintf(ini, sizeof(ini),
                 "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s\n"
                 "[destination a]\nurl = http://127.0.0.1:9/a\nbreaker = 2\n",
                 spool);
        if (!CHECK(slh_config_parse(&cfg, ini, "t.ini", &err) == SLH_OK &&
                       slh_store_open(&st, spool, SLH_STORE_CREATE, &err) ==
                           SLH_OK,
                   "spool: %s", err.text))
            goto out;
    }
    text = exposition(st, &cfg, false);
    CHECK(text != NULL &&
              value(text, "slhook_deliveries{destination=\"a\",state="
                          "\"pending\"}") == 0 &&
              value(text, "slhook_breaker_open{destination=\"a\"}") == 0 &&
              strstr(text, "slhook_requests_total") == NULL &&
              strstr(text, "slhook_commit_") == NULL,
          "without the process: the spool's figures alone");
    if (text != NULL)
        CHECK(lint(text) == 0, "the exposition lints clean");
    free(text);
    text = exposition(st, &cfg, true);
    CHECK(text != NULL && strstr(text, "# TYPE slhook_deliveries gauge\n") &&
              strstr(text, "# TYPE slhook_requests_total counter\n") &&
              strstr(text, "# TYPE slhook_delivery_latency_seconds "
                           "histogram\n"),
          "with the process: both");
    if (text != NULL && out_path != NULL) {
        f = fopen(out_path, "w");
        CHECK(f != NULL && fputs(text, f) >= 0 && fclose(f) == 0, "write %s",
              out_path);
    }
    if (text != NULL)
        CHECK(lint(text) == 0, "the exposition lints clean");
    free(text);
out:
    slh_store_close(st);
    slh_config_free(&cfg);
}

/* ---- the hooks: a real committer and a real deliverer ---- */

struct hook_job {
    struct slh_commit_job job; /* first: job_done() gets the job */
    sem_t done;
};

static void
job_done(struct slh_commit_job *j)
{
    sem_post(&((struct hook_job *)(void *)j)->done);
}

/* What the exposition says of series, or -1 (no spool: no figure). */
static double
now_value(const char *series)
{
    char *text = exposition(NULL, &(struct slh_config){.spool = tmp}, true);
    double v = text != NULL ? value(text, series) : -1;

    free(text);
    return v;
}

/* Commits a batch of a Deferred and a Complaint event through the
 * committer (commit.c), then delivers them to a file destination
 * (deliver*.c): each counts what it did. */
static void
test_hooks(void)
{
    static const char *const types[] = {"Deferred", "Complaint"};
    struct hook_job j = {0};
    struct slh_config cfg = {0};
    struct slh_commit *c = NULL;
    struct slh_deliverer *d = NULL;
    struct slh_batch b = {0};
    struct slh_error err = {0};
    char ini[512];
    double commits = now_value("slhook_commit_duration_seconds_count");

    snprintf(ini, sizeof(ini),
             "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s/hooks\n"
             "[destination hookfile]\nfile = %s/hooks.jsonl\n",
             tmp, tmp);
    if (!CHECK(slh_config_parse(&cfg, ini, "t.ini", &err) == SLH_OK &&
                   batch_of(&b, types, 2) && slh_batch_bodies(&b) == SLH_OK &&
                   slh_commit_start(&c, &cfg, NULL, NULL, NULL, &err) == SLH_OK,
               "committer: %s", err.text))
        goto out;
    sem_init(&j.done, 0, 0);
    j.job.batch = &b;
    j.job.done = job_done;
    slh_commit_submit(c, &j.job);
    while (sem_wait(&j.done) != 0)
        ;
    slh_commit_stop(c, NULL, NULL);
    sem_destroy(&j.done);
    CHECK(j.job.rc == SLH_OK, "committed: %s", j.job.err.text);
    CHECK(now_value("slhook_events_stored_total{type=\"Deferred\"}") == 1 &&
              now_value("slhook_events_received_total{type=\"Complaint\"}") ==
                  1,
          "the committer counted the events, received and stored");
    CHECK(now_value("slhook_commit_duration_seconds_count") == commits + 1,
          "and its commit");
    CHECK(slh_deliverer_new(&d, &cfg, &err) == SLH_OK &&
              slh_deliverer_run(d, true, &err) == SLH_OK,
          "deliver: %s", err.text);
    CHECK(now_value("slhook_delivery_latency_seconds_count{destination="
                    "\"hookfile\"}") == 2,
          "the deliverer counted both deliveries");
out:
    slh_deliverer_free(d);
    slh_batch_free(&b);
    slh_config_free(&cfg);
}

int
main(int argc, char **argv)
{
    snprintf(tmp, sizeof(tmp), "/tmp/test_metrics.XXXXXX");
    if (mkdtemp(tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_lint();
    test_requests();
    test_events();
    test_histograms();
    test_escaping();
    test_threads();
    test_hooks();
    test_write(argc > 1 ? argv[1] : NULL);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        if (check_failed == 0 && system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
    }
    return check_summary();
}

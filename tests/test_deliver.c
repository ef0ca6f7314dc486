/* test_deliver: the deliverer against a real HTTP receiver on loopback
 * (tests/receiver.py, which checks signatures with Python's hmac module):
 * routing by filter, bodies and headers, file destinations, down then up,
 * flapping, 410 and retry, Retry-After, max_age, a hanging destination,
 * redirects, two deliverers racing, a dead deliverer's claims taken back,
 * and slh_deliver_post(). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "sql_int.h"
#include "fixture_each.h"
#include "config.h"
#include "deliver.h"
#include "event.h"
#include "retry.h"
#include "store.h"
#include "store_sqlite.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define MAX_EVENTS 400

static char dir[64];
static int case_no;

/* What was stored, to compare with what arrived. */
struct stored {
    char id[SLH_EVENT_ID_LEN + 1];
    char type[32];
    int tracking;
    char *body;
};

struct setup {
    char spool[128];
    char log[128];
    struct slh_config cfg;
    struct slh_store *sp;
    struct stored ev[MAX_EVENTS];
    size_t n;
    pid_t receiver;
    int port;
};

/* ---- the receiver ---- */

static int
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts tests/receiver.py logging to s->log on port (0: any), with up to
 * two more arguments; sets s->receiver and s->port. */
static bool
start_receiver(struct setup *s, int port, const char *arg1, const char *arg2)
{
    char port_text[16], line[32] = "";
    int fds[2];
    FILE *f;

    snprintf(port_text, sizeof(port_text), "%d", port);
    if (pipe(fds) != 0)
        return false;
    s->receiver = fork();
    if (s->receiver == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", "tests/receiver.py", "--log", s->log,
               "--port", port_text, "--secret", "signed=" SECRET, arg1, arg2,
               (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    if (f == NULL || fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    if (f != NULL)
        fclose(f);
    s->port = atoi(line);
    return CHECK(s->receiver > 0 && s->port > 0, "receiver started (%s)", line);
}

static void
stop_receiver(struct setup *s)
{
    if (s->receiver > 0) {
        kill(s->receiver, SIGTERM);
        waitpid(s->receiver, NULL, 0);
        s->receiver = 0;
    }
}

/* Tells the receiver how to answer the destination called name. */
static void
set_mode(const struct setup *s, const char *name, const char *mode)
{
    char url[128];
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mode/%s", s->port, name);
    CHECK(slh_deliver_post(url, "text/plain", mode, strlen(mode), 5, &status,
                           NULL, 0, NULL) == SLH_OK &&
              status == 204,
          "mode %s=%s set (%ld)", name, mode, status);
}

/* Every request the receiver recorded, as a JSON array (new reference). */
static json_t *
received(const struct setup *s)
{
    json_t *all = json_array();
    char *text = check_slurp(s->log, NULL);

    for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
        json_t *rec;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        rec = json_loads(line, 0, NULL);
        if (rec != NULL)
            json_array_append_new(all, rec);
    }
    free(text);
    return all;
}

static const char *
rec_str(const json_t *rec, const char *key)
{
    const char *v = json_string_value(json_object_get(rec, key));
    return v != NULL ? v : "";
}

static const char *
rec_header(const json_t *rec, const char *name)
{
    const char *v = json_string_value(
        json_object_get(json_object_get(rec, "headers"), name));
    return v != NULL ? v : "";
}

/* How many requests for destination name carried webhook-id id (any id
 * when NULL) and, when status is not 0, were answered status. */
static size_t
count_posts(const json_t *all, const char *name, const char *id, int status)
{
    size_t i, n = 0;
    json_t *rec;

    json_array_foreach(all, i, rec)
    {
        if (strcmp(rec_str(rec, "name"), name) != 0)
            continue;
        if (id != NULL && strcmp(rec_header(rec, "webhook-id"), id) != 0)
            continue;
        if (status != 0 &&
            json_integer_value(json_object_get(rec, "status")) != status)
            continue;
        n++;
    }
    return n;
}

/* ---- the spool ---- */

/* Copies in to out with {port} replaced by port and {dir} by the test's
 * directory. */
static void
expand(char *out, size_t size, const char *in, int port)
{
    size_t n = 0;

    while (*in != '\0' && n + 1 < size) {
        if (strncmp(in, "{port}", 6) == 0) {
            n += (size_t)snprintf(out + n, size - n, "%d", port);
            in += 6;
        } else if (strncmp(in, "{dir}", 5) == 0) {
            n += (size_t)snprintf(out + n, size - n, "%s", dir);
            in += 5;
        } else {
            out[n++] = *in++;
        }
        if (n >= size)
            n = size - 1;
    }
    out[n] = '\0';
}

static bool
setup(struct setup *s, const char *templ)
{
    char text[4096], dests[3072];
    struct slh_error err = {0};

    memset(s, 0, sizeof(*s));
    case_no++;
    snprintf(s->spool, sizeof(s->spool), "%s/spool%d", dir, case_no);
    snprintf(s->log, sizeof(s->log), "%s/received%d.jsonl", dir, case_no);
    if (!start_receiver(s, 0, "--mode", "x=200"))
        return false;
    expand(dests, sizeof(dests), templ, s->port);
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s\n%s",
             s->spool, dests);
    if (!CHECK(slh_config_parse(&s->cfg, text, "test.ini", &err) == SLH_OK,
               "config: %s", err.text))
        return false;
    return CHECK(slh_store_open(&s->sp, s->spool, SLH_STORE_CREATE, &err) ==
                     SLH_OK,
                 "spool: %s", err.text);
}

static void
teardown(struct setup *s)
{
    stop_receiver(s);
    slh_store_close(s->sp);
    slh_config_free(&s->cfg);
    for (size_t i = 0; i < s->n; i++)
        free(s->ev[i].body);
}

static bool
put_body(struct setup *s, const char *body, size_t len, enum slh_media media)
{
    struct slh_batch batch = {0};
    const struct slh_batch *one = &batch;
    struct slh_error err = {0};
    bool ok;

    /* Failures only are counted: a pass per stored event would swamp the
     * summary. */
    ok = slh_batch_parse(&batch, body, len, media, &err) == SLH_OK &&
         slh_store_put(s->sp, &s->cfg, &one, 1, slh_now_ms(), NULL, &err) ==
             SLH_OK;
    if (!ok)
        CHECK(0, "store: %s", err.text);
    for (size_t i = 0; ok && i < batch.n; i++) {
        const struct slh_event *ev = &batch.events[i];
        bool dup = false;
        for (size_t k = 0; k < s->n; k++)
            dup = dup || strcmp(s->ev[k].id, ev->id) == 0;
        if (ev->is_validation || dup || s->n == MAX_EVENTS)
            continue;
        memcpy(s->ev[s->n].id, ev->id, sizeof(ev->id));
        snprintf(s->ev[s->n].type, sizeof(s->ev[0].type), "%s", ev->type);
        s->ev[s->n].tracking = ev->tracking;
        s->ev[s->n].body = slh_event_body(ev);
        s->n++;
    }
    slh_batch_free(&batch);
    return ok;
}

static void
put_fixture(const char *name, const char *body, size_t len,
            enum slh_media media, void *arg)
{
    (void)name;
    put_body(arg, body, len, media);
}

static void
put_fixtures(struct setup *s)
{
    fixture_each(put_fixture, s);
}

static void
put_synthetic(struct setup *s, int n)
{
    static int serial;
    char body[256];

    for (int i = 0; i < n; i++) {
        int len = snprintf(body, sizeof(body),
                           "{\"Type\":\"Delivered\",\"ServerId\":40211,"
                           "\"MessageId\":\"t%d\",\"Address\":"
                           "\"u%d@example.org\",\"SecretKey\":\"q7Rt2mXw9LpB4"
                           "sKd8Zf3\"}",
                           ++serial, i);
        put_body(s, body, (size_t)len, SLH_MEDIA_JSON);
    }
}

static struct slh_store_stats
stats(struct setup *s, const char *dest)
{
    struct slh_store_stats st;

    if (slh_store_stats(s->sp, dest, &st, NULL) != SLH_OK)
        memset(&st, 0, sizeof(st));
    return st;
}

/* ---- running deliverers ---- */

struct runner {
    struct slh_deliverer *d;
    pthread_t thread;
    bool once;
    enum slh_err rc;
    struct slh_error err;
    atomic_int attempts;
    atomic_llong last_due; /* of the latest pending outcome, minus now */
    char notes[1024];      /* its notes, one a line: read after the join */
};

static void
keep_note(const char *text, void *arg)
{
    struct runner *r = arg;
    size_t len = strlen(r->notes);

    snprintf(r->notes + len, sizeof(r->notes) - len, "%s\n", text);
}

static void
count_attempt(const struct slh_attempt *a, void *arg)
{
    struct runner *r = arg;

    atomic_fetch_add(&r->attempts, 1);
    if (a->state == SLH_PENDING)
        atomic_store(&r->last_due, a->due_ms - slh_now_ms());
}

static void *
run_thread(void *arg)
{
    struct runner *r = arg;

    r->rc = slh_deliverer_run(r->d, r->once, &r->err);
    return NULL;
}

static bool
start_runner(struct runner *r, struct setup *s, bool once)
{
    struct slh_error err = {0};

    memset(r, 0, sizeof(*r));
    atomic_init(&r->attempts, 0);
    atomic_init(&r->last_due, 0);
    r->once = once;
    if (!CHECK(slh_deliverer_new(&r->d, &s->cfg, &err) == SLH_OK,
               "deliverer: %s", err.text))
        return false;
    slh_deliverer_on_attempt(r->d, count_attempt, r);
    slh_deliverer_on_note(r->d, keep_note, r);
    if (pthread_create(&r->thread, NULL, run_thread, r) != 0) {
        slh_deliverer_free(r->d);
        r->d = NULL;
        return false;
    }
    return true;
}

/* Stops (unless once) and joins; returns the milliseconds that took. */
static int64_t
finish_runner(struct runner *r)
{
    int64_t t0 = slh_now_ms();

    if (r->d == NULL)
        return 0;
    if (!r->once)
        slh_deliverer_stop(r->d);
    pthread_join(r->thread, NULL);
    CHECK(r->rc == SLH_OK, "run: %s", r->err.text);
    slh_deliverer_free(r->d);
    r->d = NULL;
    return slh_now_ms() - t0;
}

/* Runs a deliverer with once set on this thread. */
static void
run_once(struct setup *s, struct runner *r)
{
    if (start_runner(r, s, true))
        finish_runner(r);
}

/* Waits up to ms for dest's field to reach want; returns the wait. */
#define WAIT_FOR(s, dest, field, want, ms)                                     \
    wait_for(s, dest, offsetof(struct slh_store_stats, field), want, ms)

static int64_t
wait_for(struct setup *s, const char *dest, size_t off, int64_t want,
         int64_t ms)
{
    int64_t t0 = slh_now_ms();

    for (;;) {
        struct slh_store_stats st = stats(s, dest);
        int64_t v;
        memcpy(&v, (const char *)&st + off, sizeof(v));
        if (v >= want || slh_now_ms() - t0 > ms)
            return slh_now_ms() - t0;
        usleep(20000);
    }
}

/* ---- the cases ---- */

/* A front end's writer for slh_deliverer_write_through(): runs each task in
 * a put of its own connection's, failing that put after the task when told
 * to, as a commit that finds the disk full would. */
struct writer {
    struct slh_store *sp;
    const struct slh_config *cfg;
    int tasks;
    int fail; /* puts still to fail */
};

static enum slh_err
refuse_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    (void)sp;
    (void)arg;
    return slh_error_set(err, SLH_ESTORE, "spool: commit: database is full");
}

static enum slh_err
write_task(const struct slh_store_task *task, void *ctx, struct slh_error *err)
{
    struct writer *w = ctx;
    struct slh_store_task both[2] = {*task, {refuse_task, NULL}};

    w->tasks++;
    return slh_store_put_tasks(w->sp, w->cfg, NULL, 0, both,
                               w->fail-- > 0 ? 2 : 1, slh_now_ms(), NULL, err);
}

/* Written through a front end's writer, a deliverer claims and records in
 * the writer's transactions; a claim whose transaction fails to commit is
 * no claim (the rows untouched, the claimed copies freed) and stops the run
 * with the writer's error, and the next run delivers everything once. */
static void
test_write_through(void)
{
    struct setup s;
    struct writer w = {0};
    struct slh_deliverer *d = NULL;
    struct slh_error err = {0};
    struct slh_store_stats st;
    json_t *all = NULL;
    int once_each = 0;

    if (!setup(&s, "[destination through]\n"
                   "url = http://127.0.0.1:{port}/through\n"))
        goto out;
    put_synthetic(&s, 30);
    w.cfg = &s.cfg;
    if (!CHECK(slh_store_open(&w.sp, s.spool, SLH_STORE_CREATE, &err) == SLH_OK,
               "writer: %s", err.text) ||
        !CHECK(slh_deliverer_new(&d, &s.cfg, &err) == SLH_OK, "deliverer: %s",
               err.text))
        goto out;
    slh_deliverer_write_through(d, write_task, &w);

    w.fail = 1;
    CHECK(slh_deliverer_run(d, true, &err) == SLH_ESTORE &&
              strstr(err.text, "database is full") != NULL,
          "a failed writer's commit stops the run: %s", err.text);
    st = stats(&s, "through");
    CHECK(w.tasks == 1, "the claim went to the writer: %d tasks", w.tasks);
    CHECK(st.pending == 30 && st.delivered == 0,
          "nothing claimed nor posted: %" PRId64 " pending", st.pending);
    CHECK(sql_int(slh_sqlite_db(s.sp),
                  "SELECT count(*) FROM delivery WHERE attempts > 0") == 0,
          "no attempt counted by the failed claim");

    slh_error_clear(&err);
    CHECK(slh_deliverer_run(d, true, &err) == SLH_OK, "run: %s", err.text);
    st = stats(&s, "through");
    CHECK(st.delivered == 30 && st.pending == 0, "then all delivered: %" PRId64,
          st.delivered);
    CHECK(w.tasks >= 3, "claims and outcomes written through: %d", w.tasks);
    all = received(&s);
    for (size_t e = 0; e < s.n; e++)
        once_each += count_posts(all, "through", s.ev[e].id, 200) == 1;
    CHECK(once_each == 30, "each event arrived once: %d", once_each);
    CHECK(sql_int(slh_sqlite_db(s.sp), "SELECT count(*) FROM message") == 0,
          "--once left indexing them to an idle deliverer");
out:
    json_decref(all);
    slh_deliverer_free(d);
    slh_store_close(w.sp);
    teardown(&s);
}

/* A breaker, written through a front end's writer as slhook.fcgi does:
 * the failures that open it, then nothing until the probe, which --once
 * does not wait for; the state in the store for everyone; the probe that
 * succeeds closes it and the backlog goes, each event once. */
static void
test_breaker_through(void)
{
    struct setup s;
    struct writer w = {0};
    struct slh_deliverer *d = NULL;
    struct slh_error err = {0};
    struct slh_throttle_state th;
    json_t *all = NULL;
    size_t failed;
    int once_each = 0;

    if (!setup(&s, "[destination brk]\n"
                   "url = http://127.0.0.1:{port}/brk\n"
                   "breaker = 3\nconcurrency = 2\nrate = 500/s\n"))
        goto out;
    put_synthetic(&s, 40);
    w.cfg = &s.cfg;
    if (!CHECK(slh_store_open(&w.sp, s.spool, SLH_STORE_CREATE, &err) == SLH_OK,
               "writer: %s", err.text) ||
        !CHECK(slh_deliverer_new(&d, &s.cfg, &err) == SLH_OK, "deliverer: %s",
               err.text))
        goto out;
    slh_deliverer_write_through(d, write_task, &w);
    set_mode(&s, "brk", "503");
    CHECK(slh_deliverer_run(d, true, &err) == SLH_OK, "run: %s", err.text);
    all = received(&s);
    failed = count_posts(all, "brk", NULL, 503);
    CHECK(failed >= 3 && failed <= 4,
          "3 failures open it, 1 more was in flight: %zu attempts", failed);
    CHECK(slh_store_throttle_get(s.sp, "brk", &th, &err) == SLH_OK &&
              th.opened != 0 && th.failures == 3 && !th.is_probing,
          "open in the store (%d failures, opened %" PRId64 ")", th.failures,
          th.opened);
    CHECK(stats(&s, "brk").pending == 40, "every event still pending");
    set_mode(&s, "brk", "200");
    /* The first probe a second (and up to a quarter more) after it opened. */
    while (slh_now_ms() <= th.probe_at)
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    CHECK(slh_deliverer_run(d, true, &err) == SLH_OK, "run: %s", err.text);
    CHECK(slh_store_throttle_get(s.sp, "brk", &th, &err) == SLH_OK &&
              th.opened == 0 && th.failures == 0,
          "the probe's success closed it");
    /* The failed ones wait for their own retry (1 to 1.25 s after). */
    nanosleep(&(struct timespec){1, 300 * 1000000L}, NULL);
    CHECK(slh_deliverer_run(d, true, &err) == SLH_OK, "run: %s", err.text);
    CHECK(stats(&s, "brk").delivered == 40, "then all delivered: %" PRId64,
          stats(&s, "brk").delivered);
    json_decref(all);
    all = received(&s);
    for (size_t e = 0; e < s.n; e++)
        once_each += count_posts(all, "brk", s.ev[e].id, 200) == 1;
    CHECK(once_each == 40, "each event arrived once: %d", once_each);
out:
    json_decref(all);
    slh_deliverer_free(d);
    slh_store_close(w.sp);
    teardown(&s);
}

/* A rate: a run --once waits for every row the rate holds back, and
 * spreads them: 30 at 20/s take 1.45 s at least. */
static void
test_rate_once(void)
{
    struct setup s;
    struct slh_deliverer *d = NULL;
    struct slh_error err = {0};
    int64_t t0, took;

    if (!setup(&s, "[destination paced]\n"
                   "url = http://127.0.0.1:{port}/paced\nrate = 20/s\n"))
        goto out;
    put_synthetic(&s, 30);
    if (!CHECK(slh_deliverer_new(&d, &s.cfg, &err) == SLH_OK, "deliverer: %s",
               err.text))
        goto out;
    t0 = slh_now_ms();
    CHECK(slh_deliverer_run(d, true, &err) == SLH_OK, "run: %s", err.text);
    took = slh_now_ms() - t0;
    CHECK(stats(&s, "paced").delivered == 30, "all 30 delivered: %" PRId64,
          stats(&s, "paced").delivered);
    CHECK(took >= 1450 && took < 3000, "at 20/s: %" PRId64 " ms", took);
out:
    slh_deliverer_free(d);
    teardown(&s);
}

static void
test_routing(void)
{
    struct setup s;
    struct runner r;
    json_t *all = NULL, *rec;
    char *lines = NULL;
    int64_t t0, t1;
    size_t i, n_all = 0, wrong = 0, missing = 0, extra = 0, lines_ok = 0;
    size_t bad_body = 0, bad_head = 0, bad_sig = 0, unsigned_ok = 0;
    char ua[64];

    if (!setup(&s, "[destination signed]\n"
                   "url = http://127.0.0.1:{port}/signed/hook?x=1\n"
                   "signing_secret = " SECRET "\n"
                   "header = Authorization: Bearer abc123\n"
                   "header = X-Tenant: acme\n"
                   "[destination failed]\n"
                   "url = http://127.0.0.1:{port}/failed\n"
                   "events = Failed Complaint\n"
                   "[destination click]\n"
                   "url = http://127.0.0.1:{port}/click\n"
                   "events = Tracking:Click\n"
                   "[destination tracking]\n"
                   "url = http://127.0.0.1:{port}/tracking\n"
                   "events = tracking\n"
                   "[destination file]\n"
                   "file = {dir}/events.jsonl\n"
                   "events = Delivered Queued\n"))
        goto out;
    put_fixtures(&s);
    CHECK(s.n >= 15, "%zu fixture events stored", s.n);
    t0 = slh_now_ms() / 1000;
    run_once(&s, &r);
    t1 = slh_now_ms() / 1000;
    all = received(&s);
    /* Every event reaches each destination that wants it, once, and no
     * other; the file destination is checked below. */
    for (size_t d = 0; d + 1 < s.cfg.n_dests; d++) {
        const struct slh_dest *dest = &s.cfg.dests[d];
        size_t wanted = 0;
        for (size_t e = 0; e < s.n; e++) {
            bool wants = slh_dest_wants(dest, s.ev[e].type, s.ev[e].tracking);
            size_t got = count_posts(all, dest->name, s.ev[e].id, 0);
            wanted += wants;
            if (wants && got == 0)
                missing++;
            else if (wants && got > 1)
                extra++;
            else if (!wants && got > 0)
                wrong++;
        }
        n_all += wanted;
        CHECK(count_posts(all, dest->name, NULL, 0) == wanted,
              "%s got %zu posts, wants %zu", dest->name,
              count_posts(all, dest->name, NULL, 0), wanted);
        CHECK(wanted > 0, "%s wants some fixture", dest->name);
    }
    CHECK(missing == 0 && extra == 0 && wrong == 0,
          "routing: %zu missing, %zu twice, %zu to a destination not "
          "wanting them",
          missing, extra, wrong);
    /* Bodies and headers, as the contract says. */
    snprintf(ua, sizeof(ua), "slhook/%s", SLH_VERSION);
    json_array_foreach(all, i, rec)
    {
        const char *id = rec_header(rec, "webhook-id");
        const char *want = NULL;
        long long ts = atoll(rec_header(rec, "webhook-timestamp"));
        json_t *sig = json_object_get(rec, "sig_ok");
        for (size_t e = 0; e < s.n; e++)
            if (strcmp(s.ev[e].id, id) == 0)
                want = s.ev[e].body;
        if (want == NULL || strcmp(rec_str(rec, "body"), want) != 0 ||
            strstr(rec_str(rec, "body"), "SecretKey") != NULL)
            bad_body++;
        if (strcmp(rec_str(rec, "method"), "POST") != 0 ||
            strcmp(rec_header(rec, "content-type"), "application/json") != 0 ||
            strcmp(rec_header(rec, "user-agent"), ua) != 0 ||
            strlen(id) != SLH_EVENT_ID_LEN || ts < t0 || ts > t1 ||
            *rec_header(rec, "expect") != '\0')
            bad_head++;
        if (strcmp(rec_str(rec, "name"), "signed") == 0) {
            if (!json_is_true(sig) ||
                strcmp(rec_header(rec, "authorization"), "Bearer abc123") !=
                    0 ||
                strcmp(rec_header(rec, "x-tenant"), "acme") != 0 ||
                strcmp(rec_str(rec, "path"), "/signed/hook?x=1") != 0)
                bad_sig++;
        } else {
            unsigned_ok += json_is_null(sig) &&
                           *rec_header(rec, "webhook-signature") == '\0' &&
                           *rec_header(rec, "authorization") == '\0';
        }
    }
    CHECK(json_array_size(all) == n_all, "%zu posts in all, %zu wanted",
          json_array_size(all), n_all);
    CHECK(bad_body == 0, "%zu bodies differ from the stored relay body",
          bad_body);
    CHECK(bad_head == 0, "%zu posts with wrong standard headers", bad_head);
    CHECK(bad_sig == 0,
          "%zu signed posts failed Python's hmac check or lacked headers",
          bad_sig);
    CHECK(unsigned_ok ==
              json_array_size(all) - count_posts(all, "signed", NULL, 0),
          "unsigned destinations get no signature and no foreign headers");
    /* Keep-alive: a handful of connections carry every post. */
    {
        json_t *peers = json_object();
        char key[16];
        json_array_foreach(all, i, rec)
        {
            if (strcmp(rec_str(rec, "name"), "signed") != 0)
                continue;
            snprintf(key, sizeof(key), "%lld",
                     json_integer_value(json_object_get(rec, "peer")));
            json_object_set_new(peers, key, json_true());
        }
        CHECK(json_object_size(peers) <= 8 &&
                  count_posts(all, "signed", NULL, 0) > 8,
              "signed: %zu posts over %zu connections",
              count_posts(all, "signed", NULL, 0), json_object_size(peers));
        json_decref(peers);
    }
    /* The file destination: one whole line per wanted event. */
    {
        char path[128];
        size_t wanted = 0, n_lines = 0;
        snprintf(path, sizeof(path), "%s/events.jsonl", dir);
        lines = check_slurp(path, NULL);
        for (size_t e = 0; e < s.n; e++) {
            bool wants = slh_dest_wants(&s.cfg.dests[s.cfg.n_dests - 1],
                                        s.ev[e].type, s.ev[e].tracking);
            size_t len = strlen(s.ev[e].body);
            char *line = malloc(len + 2);
            wanted += wants;
            if (wants && lines != NULL && line != NULL) {
                memcpy(line, s.ev[e].body, len);
                memcpy(line + len, "\n", 2);
                lines_ok += strstr(lines, line) != NULL;
            }
            free(line);
        }
        for (const char *p = lines; p != NULL && *p != '\0'; p++)
            n_lines += *p == '\n';
        CHECK(lines_ok == wanted && n_lines == wanted && wanted > 0,
              "file: %zu of %zu bodies found as lines, %zu lines", lines_ok,
              wanted, n_lines);
        CHECK(stats(&s, "file").delivered == (int64_t)wanted,
              "file rows delivered");
        n_all += wanted;
    }
    CHECK(atomic_load(&r.attempts) == (int)n_all,
          "the attempt hook saw %d attempts, %zu expected",
          atomic_load(&r.attempts), n_all);
    CHECK(stats(&s, "signed").delivered ==
                  (int64_t)count_posts(all, "signed", NULL, 0) &&
              stats(&s, "signed").pending == 0,
          "signed: all delivered in the spool");
out:
    free(lines);
    json_decref(all);
    teardown(&s);
}

static void
test_down_then_up(void)
{
    struct setup s;
    struct runner r;
    json_t *all = NULL;
    struct slh_store_stats st;
    int port = free_port(), once_each = 0;
    int64_t took;

    if (!setup(&s, "[destination late]\n"
                   "url = http://127.0.0.1:{port}/late\n"))
        goto out;
    /* The destination lives on a port where nobody listens, yet. */
    slh_config_free(&s.cfg);
    {
        char text[512];
        snprintf(text, sizeof(text),
                 "[receiver]\nsecret_key = k\nspool = %s\n"
                 "[destination late]\nurl = http://127.0.0.1:%d/late\n",
                 s.spool, port);
        CHECK(slh_config_parse(&s.cfg, text, "late.ini", NULL) == SLH_OK,
              "late config");
    }
    stop_receiver(&s);
    put_synthetic(&s, 20);
    if (!start_runner(&r, &s, false))
        goto out;
    took = WAIT_FOR(&s, "late", retrying, 20, 3000);
    st = stats(&s, "late");
    CHECK(st.retrying == 20 && st.delivered == 0,
          "down: %" PRId64 " retrying after %" PRId64 " ms", st.retrying, took);
    CHECK(strcmp(st.last_error, "Couldn't connect to server") == 0 &&
              st.last_status == 0,
          "down: last error '%s' (%d)", st.last_error, st.last_status);
    CHECK(start_receiver(&s, port, "--mode", "late=200"), "receiver up");
    took = WAIT_FOR(&s, "late", delivered, 20, 10000);
    st = stats(&s, "late");
    CHECK(st.delivered == 20 && st.pending == 0,
          "up: %" PRId64 " delivered after %" PRId64 " ms", st.delivered, took);
    finish_runner(&r);
    all = received(&s);
    for (size_t e = 0; e < s.n; e++)
        once_each += count_posts(all, "late", s.ev[e].id, 200) == 1;
    CHECK(once_each == 20, "each event arrived once: %d", once_each);
out:
    json_decref(all);
    teardown(&s);
}

static void
test_flapping(void)
{
    struct setup s;
    struct runner r;
    json_t *all = NULL;
    int64_t took;
    int ok_each = 0;

    if (!setup(&s, "[destination flap]\n"
                   "url = http://127.0.0.1:{port}/flap\n"))
        goto out;
    set_mode(&s, "flap", "flap");
    put_synthetic(&s, 30);
    if (!start_runner(&r, &s, false))
        goto out;
    took = WAIT_FOR(&s, "flap", delivered, 30, 10000);
    finish_runner(&r);
    CHECK(stats(&s, "flap").delivered == 30,
          "flapping: all 30 delivered after %" PRId64 " ms", took);
    all = received(&s);
    for (size_t e = 0; e < s.n; e++)
        ok_each += count_posts(all, "flap", s.ev[e].id, 500) == 1 &&
                   count_posts(all, "flap", s.ev[e].id, 200) == 1;
    CHECK(ok_each == 30, "each event: one 500, then one 200 (%d)", ok_each);
    CHECK(count_posts(all, "flap", NULL, 500) ==
              count_posts(all, "flap", NULL, 200),
          "half of the answers were 500");
out:
    json_decref(all);
    teardown(&s);
}

static void
test_gone_then_retry(void)
{
    struct setup s;
    struct runner r;
    struct slh_store_stats st;
    json_t *all = NULL;
    size_t n = 0;

    if (!setup(&s, "[destination gone]\n"
                   "url = http://127.0.0.1:{port}/gone\n"))
        goto out;
    set_mode(&s, "gone", "410");
    put_synthetic(&s, 5);
    run_once(&s, &r);
    st = stats(&s, "gone");
    CHECK(st.dead == 5 && st.pending == 0,
          "410: dead letters at once (%" PRId64 " dead, %" PRId64 " pending)",
          st.dead, st.pending);
    CHECK(st.last_status == 410 && strncmp(st.last_error, "HTTP 410", 8) == 0,
          "410: last error '%s'", st.last_error);
    all = received(&s);
    CHECK(count_posts(all, "gone", NULL, 410) == 5, "one attempt each");
    json_decref(all);
    set_mode(&s, "gone", "200");
    CHECK(slh_store_retry(s.sp, "gone", slh_now_ms(), &n, NULL) == SLH_OK &&
              n == 5,
          "retry brings back %zu", n);
    run_once(&s, &r);
    st = stats(&s, "gone");
    CHECK(st.delivered == 5 && st.dead == 0,
          "after retry: %" PRId64 " delivered", st.delivered);
    all = received(&s);
    CHECK(count_posts(all, "gone", NULL, 200) == 5, "each delivered once");
out:
    json_decref(all);
    teardown(&s);
}

static void
test_retry_after(void)
{
    struct setup s;
    struct runner r;
    long long wait;

    if (!setup(&s, "[destination busy]\n"
                   "url = http://127.0.0.1:{port}/busy\n"))
        goto out;
    set_mode(&s, "busy", "429:5");
    put_synthetic(&s, 1);
    run_once(&s, &r);
    wait = atomic_load(&r.last_due);
    CHECK(wait > 4000 && wait <= 5000,
          "Retry-After: 5 puts the next try %lld ms ahead", wait);
    CHECK(stats(&s, "busy").last_status == 429, "429 recorded");
    set_mode(&s, "busy", "429date:8");
    /* a second event; the first is waiting out its Retry-After */
    put_synthetic(&s, 1);
    run_once(&s, &r);
    wait = atomic_load(&r.last_due);
    /* An HTTP date counts whole seconds: the receiver writes time.time() + 8
     * rounded down, and curl subtracts time(NULL), a coarse clock that can
     * still read the second before when the receiver's has just turned:
     * 7, 8 or 9 s. */
    CHECK(wait > 6000 && wait <= 9000,
          "Retry-After as an HTTP date 8 s ahead: %lld ms", wait);
    CHECK(atomic_load(&r.attempts) == 1, "only the new event was tried");
out:
    teardown(&s);
}

static void
test_max_age(void)
{
    struct setup s;
    struct runner r;
    struct slh_store_stats st;
    json_t *all = NULL;
    int64_t took;

    if (!setup(&s, "[destination old]\n"
                   "url = http://127.0.0.1:{port}/old\n"
                   "max_age = 2s\n"))
        goto out;
    set_mode(&s, "old", "503");
    put_synthetic(&s, 4);
    if (!start_runner(&r, &s, false))
        goto out;
    took = WAIT_FOR(&s, "old", dead, 4, 6000);
    finish_runner(&r);
    st = stats(&s, "old");
    CHECK(st.dead == 4 && st.pending == 0,
          "max_age 2s: %" PRId64 " dead after %" PRId64 " ms", st.dead, took);
    CHECK(took >= 1500 && took < 4000,
          "dead around the horizon (%" PRId64 " ms)", took);
    CHECK(strncmp(st.last_error, "HTTP 503", 8) == 0, "last error '%s'",
          st.last_error);
    all = received(&s);
    CHECK(count_posts(all, "old", s.ev[0].id, 503) >= 2,
          "retried before dying: %zu attempts",
          count_posts(all, "old", s.ev[0].id, 503));
out:
    json_decref(all);
    teardown(&s);
}

static void
test_hanging(void)
{
    struct setup s;
    struct runner r;
    struct slh_store_stats st;
    int64_t fast_took, hang_took, stop_took;

    if (!setup(&s, "[destination hang]\n"
                   "url = http://127.0.0.1:{port}/hang\n"
                   "timeout = 2\n"
                   "[destination fast]\n"
                   "url = http://127.0.0.1:{port}/fast\n"))
        goto out;
    set_mode(&s, "hang", "hang");
    put_synthetic(&s, 40);
    if (!start_runner(&r, &s, false))
        goto out;
    fast_took = WAIT_FOR(&s, "fast", delivered, 40, 5000);
    CHECK(stats(&s, "fast").delivered == 40 && fast_took < 1900,
          "fast delivered all 40 in %" PRId64
          " ms, before the hanging one's timeout",
          fast_took);
    hang_took = WAIT_FOR(&s, "hang", retrying, 8, 5000);
    st = stats(&s, "hang");
    CHECK(st.retrying >= 8 && st.delivered == 0,
          "hang: %" PRId64 " timed out after %" PRId64 " ms", st.retrying,
          hang_took);
    CHECK(strcmp(st.last_error, "Timeout was reached") == 0,
          "hang: last error '%s'", st.last_error);
    stop_took = finish_runner(&r);
    CHECK(stop_took < 2500, "stop returned in %" PRId64 " ms", stop_took);
    st = stats(&s, "hang");
    CHECK(st.pending == 40 && st.dead == 0,
          "hang: nothing lost (%" PRId64 " pending)", st.pending);
out:
    teardown(&s);
}

static void
test_redirect(void)
{
    struct setup s;
    struct runner r;
    json_t *all = NULL;

    if (!setup(&s, "[destination moved]\n"
                   "url = http://127.0.0.1:{port}/moved\n"))
        goto out;
    set_mode(&s, "moved", "redirect:/elsewhere");
    put_synthetic(&s, 2);
    run_once(&s, &r);
    all = received(&s);
    CHECK(count_posts(all, "moved", NULL, 302) == 2 &&
              count_posts(all, "elsewhere", NULL, 0) == 0,
          "302 not followed");
    CHECK(stats(&s, "moved").retrying == 2, "a redirect is retried");
out:
    json_decref(all);
    teardown(&s);
}

static void
test_two_deliverers(void)
{
    struct setup s;
    struct runner r[2];
    json_t *all = NULL;
    size_t i, twice = 0, never = 0;

    if (!setup(&s, "[destination race]\n"
                   "url = http://127.0.0.1:{port}/race\n"))
        goto out;
    put_synthetic(&s, 300);
    if (!start_runner(&r[0], &s, true) || !start_runner(&r[1], &s, true))
        goto out;
    finish_runner(&r[0]);
    finish_runner(&r[1]);
    all = received(&s);
    for (i = 0; i < s.n; i++) {
        size_t got = count_posts(all, "race", s.ev[i].id, 0);
        twice += got > 1;
        never += got == 0;
    }
    CHECK(s.n == 300 && twice == 0 && never == 0,
          "two deliverers: %zu posted twice, %zu never", twice, never);
    CHECK(stats(&s, "race").delivered == 300, "all 300 delivered");
    CHECK(atomic_load(&r[0].attempts) + atomic_load(&r[1].attempts) == 300,
          "attempts %d + %d", atomic_load(&r[0].attempts),
          atomic_load(&r[1].attempts));
    printf("two deliverers shared the work: %d + %d\n",
           atomic_load(&r[0].attempts), atomic_load(&r[1].attempts));
out:
    json_decref(all);
    teardown(&s);
}

/* n rows of dest claimed by a new owner that then dies (its lock let go,
 * its file left, as a SIGKILL leaves them), leased for a minute. */
static bool
claim_and_die(struct setup *s, const char *dest, size_t n)
{
    struct slh_sqlite_owner o;
    struct slh_claim c[64];
    struct slh_error err = {0};
    size_t got = 0;
    bool ok;

    ok = CHECK(slh_sqlite_owner_open(&o, s->spool, &err) == SLH_OK, "owner: %s",
               err.text) &&
         CHECK(slh_store_claim(s->sp, dest, o.token, slh_now_ms(), 60000, n, c,
                               &got, NULL, &err) == SLH_OK &&
                   got == n,
               "claimed %zu of %zu: %s", got, n, err.text);
    for (size_t i = 0; i < got; i++)
        slh_store_claim_free(&c[i]);
    slh_sqlite_owner_drop(&o);
    return ok;
}

/* What a killed deliverer had claimed is delivered at once, not after its
 * lease: by a deliverer starting (deliver --once, a restarted responder),
 * and by one already running, which looks every second; a live owner's
 * claims are left alone. */
static void
test_dead_owner(void)
{
    struct setup s;
    struct runner r;
    struct slh_sqlite_owner live = {0, -1};
    struct slh_claim c[5];
    struct slh_error err = {0};
    size_t got = 0;
    int64_t took;
    char path[256];

    if (!setup(&s, "[destination dead]\n"
                   "url = http://127.0.0.1:{port}/dead\n"))
        goto out;
    put_synthetic(&s, 25);
    if (!claim_and_die(&s, "dead", 20) ||
        !CHECK(slh_sqlite_owner_open(&live, s.spool, &err) == SLH_OK &&
                   slh_store_claim(s.sp, "dead", live.token, slh_now_ms(),
                                   60000, 5, c, &got, NULL, &err) == SLH_OK &&
                   got == 5,
               "a live owner claims 5: %s", err.text))
        goto out;
    for (size_t i = 0; i < got; i++)
        slh_store_claim_free(&c[i]);
    run_once(&s, &r);
    CHECK(stats(&s, "dead").delivered == 20 && stats(&s, "dead").pending == 5,
          "a starting deliverer delivered the dead one's 20 (%" PRId64
          "), left the live one's 5",
          stats(&s, "dead").delivered);
    CHECK(strstr(r.notes, "took back 20 row(s) that dead deliverers had "
                          "claimed\n") != NULL,
          "and said so: %s", r.notes);
    snprintf(path, sizeof(path), "%s/%s", s.spool, SLH_SQLITE_CLAIMS);
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "test $(ls '%s' | wc -l) -eq 1", path);
        CHECK(system(cmd) == 0, "the dead one's lock file removed");
    }
    /* A running deliverer, idle, while another dies holding claims. */
    if (!start_runner(&r, &s, false))
        goto out;
    put_synthetic(&s, 10);
    WAIT_FOR(&s, "dead", delivered, 30, 5000);
    slh_sqlite_owner_close(&live, s.spool); /* gives its 5 to no one */
    put_synthetic(&s, 8);
    if (claim_and_die(&s, "dead", 8)) {
        took = WAIT_FOR(&s, "dead", delivered, 38, 10000);
        CHECK(stats(&s, "dead").delivered == 38 && took < 5000,
              "a running deliverer took the next dead one's 8 back in %" PRId64
              " ms",
              took);
    }
    finish_runner(&r);
    CHECK(strstr(r.notes, "took back 8 row(s)") != NULL, "and said so: %s",
          r.notes);
    CHECK(stats(&s, "dead").pending == 5, "the live one's 5 still leased");
out:
    slh_sqlite_owner_close(&live, s.spool);
    teardown(&s);
}

static void
test_post(void)
{
    struct setup s;
    struct slh_error err = {0};
    char url[128], *answer = NULL;
    long status = 0;
    json_t *all = NULL;

    if (!setup(&s, "[destination x]\nurl = http://127.0.0.1:{port}/x\n"))
        goto out;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok/path", s.port);
    CHECK(slh_deliver_post(url, "application/x-www-form-urlencoded", "a=1", 3,
                           5, &status, &answer, 100, &err) == SLH_OK &&
              status == 200 && answer != NULL && answer[0] == '\0',
          "post: %ld (%s)", status, err.text);
    free(answer);
    answer = NULL;
    set_mode(&s, "no", "500");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/no", s.port);
    CHECK(slh_deliver_post(url, "application/json", "{}", 2, 5, &status,
                           &answer, 4, &err) == SLH_OK &&
              status == 500 && answer != NULL && strcmp(answer, "mode") == 0,
          "post to a 500: %ld, answer capped: '%s'", status,
          answer != NULL ? answer : "(null)");
    free(answer);
    answer = NULL;
    all = received(&s);
    CHECK(count_posts(all, "ok", NULL, 200) == 1 &&
              strcmp(rec_header(json_array_get(all, 0), "content-type"),
                     "application/x-www-form-urlencoded") == 0 &&
              strcmp(rec_str(json_array_get(all, 0), "body"), "a=1") == 0,
          "post arrived with its type and body");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", free_port());
    CHECK(slh_deliver_post(url, "application/json", "{}", 2, 5, &status,
                           &answer, 100, &err) == SLH_EDELIVER &&
              strstr(err.text, "Couldn't connect") != NULL && answer == NULL,
          "nobody listening: %s", err.text);
    slh_error_clear(&err);
    CHECK(slh_deliver_post("file:///etc/passwd", "application/json", "{}", 2, 5,
                           &status, &answer, 100, &err) != SLH_OK,
          "file:// refused: %s", err.text);
    slh_error_clear(&err);
    CHECK(slh_deliver_post("gopher://127.0.0.1/", "application/json", "{}", 2,
                           5, &status, &answer, 100, &err) != SLH_OK,
          "gopher:// refused: %s", err.text);
out:
    json_decref(all);
    teardown(&s);
}

/*
 * A file destination whose last line was torn by a writer killed inside its
 * write(): the fragment goes, the lines before it stay, and each event comes
 * as one whole line after them. Tried with a fragment after whole lines, a
 * file holding nothing but a fragment, and one longer than a read buffer.
 */
static void
test_torn_tail(void)
{
    static const char *const before[] = {
        "{\"kept\":1}\n{\"torn\":\"the first half of a li",
        "{\"torn\":\"no line before this one",
        NULL, /* 10,000 bytes of one unfinished line after a whole one */
    };

    for (size_t k = 0; k < sizeof(before) / sizeof(before[0]); k++) {
        struct setup s;
        struct runner r;
        char path[160], *text = NULL, *big = NULL;
        const char *keep, *start;
        size_t n_lines = 0, whole = 0;
        FILE *f;

        if (!setup(&s, "[destination torn]\nfile = {dir}/torn.jsonl\n"))
            goto next;
        snprintf(path, sizeof(path), "%s/torn.jsonl", dir);
        if (before[k] == NULL) {
            big = malloc(10050);
            if (big == NULL)
                goto next;
            strcpy(big, "{\"kept\":2}\n{\"x\":\"");
            memset(big + strlen(big), 'x', 10000);
            big[17 + 10000] = '\0'; /* 17: the bytes before the x's */
        }
        f = fopen(path, "w");
        if (!CHECK(f != NULL, "cannot write %s", path))
            goto next;
        fputs(big != NULL ? big : before[k], f);
        fclose(f);
        put_synthetic(&s, 5);
        run_once(&s, &r);
        text = check_slurp(path, NULL);
        start = big != NULL ? big : before[k];
        keep = strchr(start, '\n') != NULL ? start : "";
        CHECK(text != NULL &&
                  strncmp(text, keep,
                          keep[0] != '\0'
                              ? (size_t)(strchr(keep, '\n') - keep + 1)
                              : 0) == 0,
              "case %zu: the whole lines before the tear kept", k + 1);
        for (const char *p = text; p != NULL && *p != '\0'; p++)
            n_lines += *p == '\n';
        for (size_t e = 0; text != NULL && e < s.n; e++) {
            size_t len = strlen(s.ev[e].body);
            const char *at = strstr(text, s.ev[e].body);
            whole +=
                at != NULL && (at == text || at[-1] == '\n') && at[len] == '\n';
        }
        CHECK(text != NULL && strstr(text, "torn") == NULL &&
                  strstr(text, "xxxx") == NULL,
              "case %zu: the fragment is gone", k + 1);
        CHECK(whole == 5 && n_lines == 5 + (keep[0] != '\0'),
              "case %zu: %zu of 5 events as whole lines, %zu lines", k + 1,
              whole, n_lines);
        CHECK(stats(&s, "torn").delivered == 5, "case %zu: 5 delivered", k + 1);
    next:
        free(text);
        free(big);
        teardown(&s);
    }
}

/* What slhook check prints of a URL: never its credentials. */
static void
test_url_masked(void)
{
    static const char *const cases[][2] = {
        {"http://127.0.0.1:9/a", "http://127.0.0.1:9/a"},
        {"https://crm.example", "https://crm.example/"},
        {"https://bob:pw@crm.example/h", "https://***@crm.example/h"},
        {"https://bob@crm.example/h", "https://***@crm.example/h"},
        {"https://:pw@crm.example:8443/h", "https://***@crm.example:8443/h"},
        {"https://crm.example/h?token=abc&x=1",
         "https://crm.example/h?token=***&x=***"},
        {"https://crm.example/h?abc&=v#frag", "https://crm.example/h?***&=***"},
        {"https://u:p@[::1]:8080/p?k=v", "https://***@[::1]:8080/p?k=***"},
        {"http://exa mple/ x", "(a URL that does not parse)"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = slh_deliver_url_masked(cases[i][0]);
        CHECK(got != NULL && strcmp(got, cases[i][1]) == 0,
              "masked %s: want %s, got %s", cases[i][0], cases[i][1],
              got != NULL ? got : "(null)");
        free(got);
    }
}

int
main(void)
{
    char cmd[128];
    int rc;

    snprintf(dir, sizeof(dir), "/tmp/slh-test-deliver-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_routing();
    test_down_then_up();
    test_flapping();
    test_gone_then_retry();
    test_retry_after();
    test_max_age();
    test_hanging();
    test_redirect();
    test_two_deliverers();
    test_dead_owner();
    test_torn_tail();
    test_post();
    test_write_through();
    test_breaker_through();
    test_rate_once();
    test_url_masked();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    rc = check_summary();
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}

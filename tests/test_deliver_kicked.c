/* test_deliver_kicked.c: the kicked deliverer's loop (lib/deliver_kicked.h)
 * on a real spool, its destinations a file and, where a retry is wanted, a
 * URL on a loopback port nobody listens on. */
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "deliver.h"
#include "deliver_kicked.h"
#include "event.h"
#include "kick.h"
#include "store.h"

static char dir[] = "/tmp/slh-test-kicked-XXXXXX";
static int case_no;

struct setup {
    struct slh_config cfg;
    struct slh_deliverer *d;
    char spool[256], file[256];
};

/* A config of the given destinations ("{file}" stands for the file
 * destination's path), its spool made, and a deliverer on it. */
static bool
setup(struct setup *s, bool with_url)
{
    struct slh_error err = {0};
    struct slh_store *sp = NULL;
    char text[2048];

    memset(s, 0, sizeof(*s));
    case_no++;
    snprintf(s->spool, sizeof(s->spool), "%s/spool%d", dir, case_no);
    snprintf(s->file, sizeof(s->file), "%s/events%d.jsonl", dir, case_no);
    /* Port 9 (discard) on loopback: nothing listens, the attempt fails at
     * once and waits for its retry. */
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s\n"
             "[destination file]\nfile = %s\n%s",
             s->spool, s->file,
             with_url ? "[destination down]\nurl = http://127.0.0.1:9/\n" : "");
    if (!CHECK(slh_config_parse(&s->cfg, text, "test.ini", &err) == SLH_OK,
               "config: %s", err.text))
        return false;
    CHECK(slh_store_open(&sp, s->spool, SLH_STORE_CREATE, &err) == SLH_OK,
          "spool: %s", err.text);
    slh_store_close(sp);
    return CHECK(slh_deliverer_new(&s->d, &s->cfg, &err) == SLH_OK,
                 "deliverer: %s", err.text);
}

static void
teardown(struct setup *s)
{
    slh_deliverer_free(s->d);
    slh_config_free(&s->cfg);
}

/* Stores one event of the given MessageId. */
static void
put(struct setup *s, const char *message_id)
{
    struct slh_error err = {0};
    struct slh_batch batch = {0};
    const struct slh_batch *one = &batch;
    struct slh_store *sp = NULL;
    char body[512];
    int n;

    n = snprintf(body, sizeof(body),
                 "[{\"Type\":\"Delivered\",\"ServerId\":40211,"
                 "\"MessageId\":\"%s\",\"Address\":\"lee@mail.example\"}]",
                 message_id);
    CHECK(slh_batch_parse(&batch, body, (size_t)n, SLH_MEDIA_JSON, &err) ==
                  SLH_OK &&
              slh_batch_bodies(&batch) == SLH_OK &&
              slh_store_open(&sp, s->spool, SLH_STORE_CREATE, &err) == SLH_OK &&
              slh_store_put(sp, &s->cfg, &one, 1, slh_now_ms(), NULL, &err) ==
                  SLH_OK,
          "put %s: %s", message_id, err.text);
    slh_store_close(sp);
    slh_batch_free(&batch);
}

/* Lines in the file destination's file (0 when there is none). */
static size_t
lines(const struct setup *s)
{
    char *text = check_slurp(s->file, NULL);
    size_t n = 0;

    for (const char *p = text; p != NULL && *p != '\0'; p++)
        n += *p == '\n';
    free(text);
    return n;
}

/* Whether every stored event is indexed for lookups by MessageId: nothing
 * is left for slh_store_index() to do. */
static bool
indexed_all(const struct setup *s)
{
    struct slh_store *sp = NULL;
    size_t n = 1;

    if (slh_store_open(&sp, s->spool, SLH_STORE_CREATE, NULL) == SLH_OK)
        (void)slh_store_index(sp, SLH_STORE_INDEX_BATCH, &n, NULL);
    slh_store_close(sp);
    return n == 0;
}

static bool
kick_free(const struct setup *s)
{
    int fd = slh_kick_lock(s->spool);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

struct hooks_ctx {
    struct setup *s;
    int n_ready;
    int n_polls;
    int stop_after; /* polls; 0: never stops by itself */
};

static bool
stop_when(void *arg)
{
    struct hooks_ctx *h = arg;

    h->n_polls++;
    return h->stop_after > 0 && h->n_polls >= h->stop_after;
}

static void
on_ready(void *arg)
{
    ((struct hooks_ctx *)arg)->n_ready++;
}

/* Another process's lock: the deliverer says it is ready and leaves the
 * work to that one. */
static void
test_lock_held(void)
{
    struct setup s;
    struct slh_error err = {0};
    struct hooks_ctx h = {.s = &s};
    struct slh_kicked_hooks hooks = {
        .is_stopping = stop_when, .on_ready = on_ready, .ctx = &h};
    char buf[32] = "";
    int p[2], lock;
    ssize_t n;

    if (!setup(&s, false))
        return;
    put(&s, "held-1");
    lock = slh_kick_lock(s.spool);
    CHECK(lock >= 0, "the test holds the lock");
    CHECK(pipe(p) == 0, "pipe");
    CHECK(slh_deliver_kicked(s.d, &s.cfg, p[1], &hooks, &err) == SLH_OK,
          "held: SLH_OK (%s)", err.text);
    n = read(p[0], buf, sizeof(buf) - 1);
    CHECK(n > 0 && strcmp(buf, "ready\n") == 0, "held: told ready ('%s')", buf);
    CHECK(h.n_ready == 1, "held: on_ready once (%d)", h.n_ready);
    CHECK(lines(&s) == 0, "held: nothing delivered (%zu)", lines(&s));
    close(p[0]);
    close(p[1]);
    close(lock);
    teardown(&s);
}

/* Nobody else: it delivers everything pending, lets the lock go, ends. */
static void
test_delivers_all(void)
{
    struct setup s;
    struct slh_error err = {0};
    struct hooks_ctx h = {.s = &s};
    struct slh_kicked_hooks hooks = {
        .is_stopping = stop_when, .on_ready = on_ready, .ctx = &h};

    if (!setup(&s, false))
        return;
    put(&s, "all-1");
    put(&s, "all-2");
    put(&s, "all-3");
    CHECK(slh_deliver_kicked(s.d, &s.cfg, -1, &hooks, &err) == SLH_OK,
          "all: SLH_OK (%s)", err.text);
    CHECK(lines(&s) == 3, "all: 3 delivered (%zu)", lines(&s));
    CHECK(indexed_all(&s), "all: and indexed for lookups before it ended");
    CHECK(h.n_ready == 0, "all: no ready_fd, no on_ready (%d)", h.n_ready);
    CHECK(kick_free(&s), "all: the lock let go");
    /* No hooks at all is fine too. */
    put(&s, "all-4");
    CHECK(slh_deliver_kicked(s.d, &s.cfg, -1, NULL, &err) == SLH_OK,
          "no hooks: SLH_OK (%s)", err.text);
    CHECK(lines(&s) == 4, "no hooks: the fourth delivered (%zu)", lines(&s));
    teardown(&s);
}

/* Stopping from the start: nothing is done. */
static void
test_stopped(void)
{
    struct setup s;
    struct slh_error err = {0};
    struct hooks_ctx h = {.s = &s, .stop_after = 1};
    struct slh_kicked_hooks hooks = {
        .is_stopping = stop_when, .on_ready = on_ready, .ctx = &h};

    if (!setup(&s, false))
        return;
    put(&s, "stopped-1");
    CHECK(slh_deliver_kicked(s.d, &s.cfg, -1, &hooks, &err) == SLH_OK,
          "stopped: SLH_OK (%s)", err.text);
    CHECK(lines(&s) == 0, "stopped: nothing delivered (%zu)", lines(&s));
    teardown(&s);
}

/* A row waiting for its retry keeps the deliverer, and a row stored
 * meanwhile is delivered before it stops. */
struct waiting_ctx {
    struct hooks_ctx h;
    int stored_at;
};

static bool
store_then_stop(void *arg)
{
    struct waiting_ctx *w = arg;
    struct setup *s = w->h.s;

    w->h.n_polls++;
    if (w->stored_at == 0 && lines(s) == 1) {
        put(s, "wait-2");
        w->stored_at = w->h.n_polls;
    }
    /* Stop once the new row is in the file, or after about 60 s. */
    return (w->stored_at > 0 && lines(s) == 2) || w->h.n_polls > 240;
}

static void
test_waits_for_retry(void)
{
    struct setup s;
    struct slh_error err = {0};
    struct waiting_ctx w = {.h = {.s = &s}};
    struct slh_kicked_hooks hooks = {.is_stopping = store_then_stop, .ctx = &w};

    if (!setup(&s, true))
        return;
    put(&s, "wait-1");
    CHECK(slh_deliver_kicked(s.d, &s.cfg, -1, &hooks, &err) == SLH_OK,
          "wait: SLH_OK (%s)", err.text);
    CHECK(w.stored_at > 0, "wait: it waited for the retry");
    CHECK(lines(&s) == 2, "wait: the row stored meanwhile delivered (%zu)",
          lines(&s));
    CHECK(kick_free(&s), "wait: the lock let go");
    teardown(&s);
}

int
main(void)
{
    char cmd[128];

    if (!CHECK(mkdtemp(dir) != NULL, "mkdtemp"))
        return check_summary();
    test_lock_held();
    test_delivers_all();
    test_stopped();
    test_waits_for_retry();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}

/* test_deliver_thread.c: slhook.fcgi's delivery thread
 * (lib/deliver_thread.h) on a real spool, beside a real committer, its
 * destination a file: what the committer stores is delivered, and the
 * outcomes, written through the committer, are in the spool. */
#include <errno.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "commit.h"
#include "config.h"
#include "deliver.h"
#include "deliver_thread.h"
#include "event.h"
#include "store.h"
#include "store_sqlite.h" /* slh_sqlite_db(), to watch the index */
#include "sql_int.h"

#define N_EVENTS 20

static char dir[] = "/tmp/slh-test-dthread-XXXXXX";
static char file[256];

struct job {
    struct slh_commit_job job; /* first: done() gets the job */
    struct slh_batch batch;
    sem_t done;
};

static void
job_done(struct slh_commit_job *j)
{
    sem_post(&((struct job *)(void *)j)->done);
}

/* Stores one event of MessageId id through the committer. */
static void
store(struct slh_commit *c, int id)
{
    struct slh_error err = {0};
    struct job j = {.job = {.done = job_done}};
    char body[512];
    int n;

    n = snprintf(body, sizeof(body),
                 "[{\"Type\":\"Delivered\",\"ServerId\":40211,"
                 "\"MessageId\":\"dt-%d\",\"Address\":\"lee@mail.example\"}]",
                 id);
    sem_init(&j.done, 0, 0);
    if (CHECK(slh_batch_parse(&j.batch, body, (size_t)n, SLH_MEDIA_JSON,
                              &err) == SLH_OK &&
                  slh_batch_bodies(&j.batch) == SLH_OK,
              "batch: %s", err.text)) {
        j.job.batch = &j.batch;
        slh_commit_submit(c, &j.job);
        while (sem_wait(&j.done) != 0 && errno == EINTR)
            ;
        CHECK(j.job.rc == SLH_OK, "stored %d: %s", id, j.job.err.text);
    }
    slh_batch_free(&j.batch);
    sem_destroy(&j.done);
}

static size_t
lines(void)
{
    char *text = check_slurp(file, NULL);
    size_t n = 0;

    for (const char *p = text; p != NULL && *p != '\0'; p++)
        n += *p == '\n';
    free(text);
    return n;
}

static void
wake(void *d)
{
    slh_deliverer_wake(d);
}

static int n_errors;

static void
on_error(void *ctx, const char *text)
{
    (void)ctx, (void)text;
    n_errors++;
}

int
main(void)
{
    struct slh_config cfg = {0};
    struct slh_error err = {0};
    struct slh_deliverer *d = NULL;
    struct slh_commit *c = NULL;
    struct slh_deliver_thread t = {0}, never = {0};
    struct slh_store_stats st = {0};
    struct slh_store *sp = NULL;
    char text[1024], cmd[128];
    int64_t until;

    if (!CHECK(mkdtemp(dir) != NULL, "mkdtemp"))
        return check_summary();
    snprintf(file, sizeof(file), "%s/events.jsonl", dir);
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s/spool\n"
             "[destination file]\nfile = %s\n",
             dir, file);
    if (!CHECK(slh_config_parse(&cfg, text, "test.ini", &err) == SLH_OK &&
                   slh_deliverer_new(&d, &cfg, &err) == SLH_OK &&
                   slh_commit_start(&c, &cfg, wake, NULL, d, &err) == SLH_OK &&
                   slh_deliver_thread_start(&t, d, c, on_error, NULL, &err) ==
                       SLH_OK,
               "start: %s", err.text))
        return check_summary();
    for (int i = 0; i < N_EVENTS; i++)
        store(c, i);
    /* Generous: the machine may be loaded. */
    until = slh_now_ms() + 30 * 1000;
    while (lines() < N_EVENTS && slh_now_ms() < until)
        usleep(50 * 1000);
    CHECK(lines() == N_EVENTS, "all %d delivered (%zu)", N_EVENTS, lines());
    /* Idle then, it indexes them for lookups by MessageId. */
    CHECK(slh_store_open(&sp, cfg.spool, SLH_STORE_CREATE, &err) == SLH_OK,
          "open: %s", err.text);
    while (sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM message") <
               N_EVENTS &&
           slh_now_ms() < until)
        usleep(50 * 1000);
    CHECK(sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM message") ==
              N_EVENTS,
          "idle, the deliverer indexed all %d", N_EVENTS);
    slh_store_close(sp);
    sp = NULL;
    slh_deliver_thread_stop(&t);
    CHECK(!t.thread.is_running, "stopped");
    slh_deliver_thread_stop(&t);     /* again: nothing */
    slh_deliver_thread_stop(&never); /* never started: nothing */
    slh_commit_stop(c, NULL, NULL);
    CHECK(n_errors == 0, "no run stopped on an error (%d)", n_errors);
    /* The outcomes went through the committer: recorded once it stopped. */
    CHECK(slh_store_open(&sp, cfg.spool, SLH_STORE_CREATE, &err) == SLH_OK &&
              slh_store_stats(sp, "file", &st, &err) == SLH_OK,
          "stats: %s", err.text);
    CHECK(st.delivered == N_EVENTS && st.pending == 0,
          "delivered %lld, pending %lld", (long long)st.delivered,
          (long long)st.pending);
    slh_store_close(sp);
    slh_deliverer_free(d);
    slh_config_free(&cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}

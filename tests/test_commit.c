/* test_commit.c: the group committer (lib/commit.h) on a real spool.
 *
 * What one commit takes is whatever was queued while the committer was busy.
 * The tests make that deterministic: a first task holds the committer inside
 * its transaction (gate_task) until the test has queued what it wants taken
 * together, then lets it go. No timing is asserted; one test sleeps past the
 * longest a task waits behind requests (SLH_COMMIT_HOLD_MS). */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "check.h"
#include "commit.h"
#include "config.h"
#include "event.h"
#include "store.h"

static char dir[] = "/tmp/slh-test-commit-XXXXXX";
static struct slh_config cfg;

/* ---- jobs ---- */

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

static void
job_wait(struct job *j)
{
    while (sem_wait(&j->done) != 0 && errno == EINTR)
        ;
}

/* A batch of one event per message id given (NULL-terminated), parsed and
 * given its relay bodies as the handler does. */
static void
job_batch(struct job *j, const char *const *ids)
{
    struct slh_error err = {0};
    char body[4096];
    size_t len = 0;

    memset(j, 0, sizeof(*j));
    sem_init(&j->done, 0, 0);
    body[len++] = '[';
    for (size_t i = 0; ids[i] != NULL; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "%s{\"Type\":\"Delivered\",\"ServerId\":40211,"
                                "\"MessageId\":\"%s\",\"Address\":"
                                "\"lee@mail.example\"}",
                                i > 0 ? "," : "", ids[i]);
    body[len++] = ']';
    CHECK(slh_batch_parse(&j->batch, body, len, SLH_MEDIA_JSON, &err) ==
                  SLH_OK &&
              slh_batch_bodies(&j->batch) == SLH_OK,
          "batch: %s", err.text);
    j->job.batch = &j->batch;
    j->job.done = job_done;
}

static void
job_task(struct job *j, const struct slh_store_task *task)
{
    memset(j, 0, sizeof(*j));
    sem_init(&j->done, 0, 0);
    j->job.task = task;
    j->job.done = job_done;
}

static void
job_free(struct job *j)
{
    slh_batch_free(&j->batch);
    sem_destroy(&j->done);
}

/* ---- tasks ---- */

/* Holds the committer in its transaction until released. */
static sem_t gate_in, gate_out;

static enum slh_err
gate_fn(struct slh_store *sp, void *arg, struct slh_error *err)
{
    (void)sp, (void)arg, (void)err;
    sem_post(&gate_in);
    while (sem_wait(&gate_out) != 0 && errno == EINTR)
        ;
    return SLH_OK;
}

static const struct slh_store_task gate = {.fn = gate_fn};

/* Counts its runs; fails when arg is non-NULL. */
static int n_task_runs;

static enum slh_err
count_fn(struct slh_store *sp, void *arg, struct slh_error *err)
{
    (void)sp;
    n_task_runs++;
    if (arg != NULL)
        return slh_error_set(err, SLH_EIO, "the task failed");
    return SLH_OK;
}

static const struct slh_store_task task_ok = {.fn = count_fn};
static const struct slh_store_task task_bad = {.fn = count_fn, .arg = "fail"};

/* Notes whether the job at arg was done when the task ran: 1 yes, 0 no. */
static int was_done = -1;

static enum slh_err
after_fn(struct slh_store *sp, void *arg, struct slh_error *err)
{
    (void)sp, (void)err;
    sem_getvalue(&((struct job *)arg)->done, &was_done);
    return SLH_OK;
}

/* Sleeps past the longest a task waits behind requests. */
static void
past_hold(void)
{
    nanosleep(
        &(struct timespec){.tv_nsec = (SLH_COMMIT_HOLD_MS + 5) * 1000000L},
        NULL);
}

/* Queues the gate and waits until the committer is inside it. */
static void
hold(struct slh_commit *c, struct job *g)
{
    job_task(g, &gate);
    slh_commit_submit(c, &g->job);
    while (sem_wait(&gate_in) != 0 && errno == EINTR)
        ;
}

static void
release(struct job *g)
{
    sem_post(&gate_out);
    job_wait(g);
    job_free(g);
}

static int n_on_commit;

static void
on_commit(void *ctx)
{
    (void)ctx;
    n_on_commit++;
}

/* Queues the batches of ids a and of ids b while the committer is held,
 * so that one commit takes both, and waits for both. */
static void
group_of_two(struct slh_commit *c, struct job *ja, const char *const *a,
             struct job *jb, const char *const *b)
{
    struct job g;

    hold(c, &g);
    job_batch(ja, a);
    job_batch(jb, b);
    slh_commit_submit(c, &ja->job);
    slh_commit_submit(c, &jb->job);
    release(&g);
    job_wait(ja);
    job_wait(jb);
}

/* A committer for cfg, counting on_commit calls from 0; NULL on failure. */
static struct slh_commit *
start(void)
{
    struct slh_error err = {0};
    struct slh_commit *c = NULL;

    n_on_commit = 0;
    CHECK(slh_commit_start(&c, &cfg, on_commit, NULL, NULL, &err) == SLH_OK,
          "start: %s", err.text);
    return c;
}

/* ---- the tests ---- */

/* Batches queued together share one commit, each told its own count. */
static void
test_group(void)
{
    static const char *const a[] = {"g-a1", "g-a2", NULL};
    static const char *const b[] = {"g-b1", NULL};
    struct slh_commit *c = start();
    struct job ja, jb;
    unsigned long n_batches = 0, n_commits = 0;

    if (c == NULL)
        return;
    group_of_two(c, &ja, a, &jb, b);
    CHECK(ja.job.rc == SLH_OK && jb.job.rc == SLH_OK, "group: stored");
    CHECK(ja.job.is_exact && ja.job.n_new == 2, "group: a exact, 2 new (%zu)",
          ja.job.n_new);
    CHECK(jb.job.is_exact && jb.job.n_new == 1, "group: b exact, 1 new (%zu)",
          jb.job.n_new);
    slh_commit_stop(c, &n_batches, &n_commits);
    CHECK(n_batches == 2, "group: 2 batches (%lu)", n_batches);
    CHECK(n_commits == 1, "group: one commit for both (%lu)", n_commits);
    CHECK(n_on_commit == 1, "group: on_commit once (%d)", n_on_commit);
    job_free(&ja);
    job_free(&jb);
}

/* A group where some events were duplicates: the spool counts new events
 * per transaction, so a batch's own count is not known (not exact, 0);
 * a group with none new is exact again (each 0). */
static void
test_counts(void)
{
    static const char *const old[] = {"g-a1", NULL};
    static const char *const fresh[] = {"c-new1", "c-new2", NULL};
    struct slh_commit *c = start();
    struct job j1, j2;

    if (c == NULL)
        return;
    group_of_two(c, &j1, old, &j2, fresh);
    CHECK(j1.job.rc == SLH_OK && j2.job.rc == SLH_OK, "mixed: stored");
    CHECK(!j1.job.is_exact && j1.job.n_new == 0, "mixed: old not exact");
    CHECK(!j2.job.is_exact && j2.job.n_new == 0, "mixed: new not exact");
    job_free(&j1);
    job_free(&j2);

    group_of_two(c, &j1, old, &j2, fresh);
    CHECK(j1.job.is_exact && j1.job.n_new == 0, "all old: exact 0");
    CHECK(j2.job.is_exact && j2.job.n_new == 0, "all old: exact 0");
    job_free(&j1);
    job_free(&j2);

    /* Alone, a batch is its own commit: its count is exact. */
    job_batch(&j1, (const char *const[]){"c-alone", "g-b1", NULL});
    slh_commit_submit(c, &j1.job);
    job_wait(&j1);
    CHECK(j1.job.rc == SLH_OK && j1.job.is_exact && j1.job.n_new == 1,
          "alone: exact, 1 new of 2 (%zu)", j1.job.n_new);
    job_free(&j1);
    /* on_commit runs after the jobs' done(): counted once the thread ended.
     * The mixed group and the one alone stored new events; all old did not. */
    slh_commit_stop(c, NULL, NULL);
    CHECK(n_on_commit == 2, "on_commit after new events only (%d)",
          n_on_commit);
}

/* Tasks run in the committer's transactions, and report their result; a
 * group that fails (here: a task's error) is run again one at a time, so
 * that what fails fails only itself. */
static void
test_tasks_and_fallback(void)
{
    static const char *const a[] = {"f-a", NULL};
    static const char *const b[] = {"f-b", NULL};
    struct slh_error err = {0};
    struct slh_commit *c = NULL;
    struct job g, ja, jb, jt, jbad;
    unsigned long n_batches = 0, n_commits = 0;

    if (!CHECK(slh_commit_start(&c, &cfg, NULL, NULL, NULL, &err) == SLH_OK,
               "start: %s", err.text))
        return;
    n_task_runs = 0;
    job_task(&jt, &task_ok);
    slh_commit_submit(c, &jt.job);
    job_wait(&jt);
    CHECK(jt.job.rc == SLH_OK && n_task_runs == 1, "task alone: ran once");
    job_free(&jt);

    /* The task queued longer than a task waits behind requests: one
     * group with them. */
    n_task_runs = 0;
    hold(c, &g);
    job_batch(&ja, a);
    job_task(&jbad, &task_bad);
    job_batch(&jb, b);
    slh_commit_submit(c, &jbad.job);
    past_hold();
    slh_commit_submit(c, &ja.job);
    slh_commit_submit(c, &jb.job);
    release(&g);
    job_wait(&ja);
    job_wait(&jbad);
    job_wait(&jb);
    CHECK(jbad.job.rc == SLH_EIO &&
              strcmp(jbad.job.err.text, "the task failed") == 0,
          "fallback: the task's own error (%d '%s')", jbad.job.rc,
          jbad.job.err.text);
    CHECK(n_task_runs == 2, "fallback: in the group, then alone (%d)",
          n_task_runs);
    CHECK(ja.job.rc == SLH_OK && ja.job.is_exact && ja.job.n_new == 1,
          "fallback: a stored alone");
    CHECK(jb.job.rc == SLH_OK && jb.job.is_exact && jb.job.n_new == 1,
          "fallback: b stored alone");
    slh_commit_stop(c, &n_batches, &n_commits);
    CHECK(n_batches == 2 && n_commits == 2,
          "fallback: one commit each (%lu batches, %lu commits)", n_batches,
          n_commits);
    job_free(&ja);
    job_free(&jb);
    job_free(&jbad);
}

/* A task queued among requests waits for their commit (they are answered
 * first), then runs at once when no more requests come. */
static void
test_task_waits(void)
{
    static const char *const a[] = {"w-a", NULL};
    struct slh_error err = {0};
    struct slh_commit *c = NULL;
    struct job g, ja, jt;
    struct slh_store_task after = {.fn = after_fn, .arg = &ja};
    unsigned long n_batches = 0, n_commits = 0;

    if (!CHECK(slh_commit_start(&c, &cfg, NULL, NULL, NULL, &err) == SLH_OK,
               "start: %s", err.text))
        return;
    hold(c, &g);
    job_task(&jt, &after);
    job_batch(&ja, a);
    slh_commit_submit(c, &jt.job);
    slh_commit_submit(c, &ja.job);
    was_done = -1;
    release(&g);
    job_wait(&jt);
    job_wait(&ja);
    CHECK(jt.job.rc == SLH_OK && ja.job.rc == SLH_OK, "waits: both done");
    CHECK(was_done == 1, "waits: the task ran after the request was (%d)",
          was_done);
    slh_commit_stop(c, &n_batches, &n_commits);
    CHECK(n_batches == 1 && n_commits == 1,
          "waits: the request's own commit (%lu, %lu)", n_batches, n_commits);
    job_free(&ja);
    job_free(&jt);
}

struct stopper {
    struct slh_commit *c;
    unsigned long n_batches, n_commits;
};

static void *
stop_main(void *arg)
{
    struct stopper *s = arg;

    slh_commit_stop(s->c, &s->n_batches, &s->n_commits);
    return NULL;
}

/* A stop commits what is queued (its callbacks run) before it returns. */
static void
test_stop(void)
{
    static const char *const a[] = {"s-a", NULL};
    static const char *const b[] = {"s-b", NULL};
    struct slh_error err = {0};
    struct stopper s = {0};
    struct job g, ja, jb, jt;
    pthread_t t;

    if (!CHECK(slh_commit_start(&s.c, &cfg, NULL, NULL, NULL, &err) == SLH_OK,
               "start: %s", err.text))
        return;
    hold(s.c, &g);
    job_batch(&ja, a);
    job_batch(&jb, b);
    job_task(&jt, &task_ok);
    slh_commit_submit(s.c, &ja.job);
    slh_commit_submit(s.c, &jt.job);
    slh_commit_submit(s.c, &jb.job);
    n_task_runs = 0;
    if (!CHECK(pthread_create(&t, NULL, stop_main, &s) == 0, "thread"))
        return;
    sem_post(&gate_out);
    pthread_join(t, NULL);
    /* Done before the stop returned: these do not wait. */
    CHECK(sem_trywait(&g.done) == 0, "stop: the gate done");
    CHECK(sem_trywait(&ja.done) == 0 && ja.job.rc == SLH_OK, "stop: a stored");
    CHECK(sem_trywait(&jb.done) == 0 && jb.job.rc == SLH_OK, "stop: b stored");
    CHECK(sem_trywait(&jt.done) == 0 && jt.job.rc == SLH_OK && n_task_runs == 1,
          "stop: the task waiting behind them ran (%d)", n_task_runs);
    CHECK(s.n_batches == 2 && s.n_commits == 1,
          "stop: one commit of 2 (%lu, %lu)", s.n_batches, s.n_commits);
    job_free(&g);
    job_free(&ja);
    job_free(&jb);
    job_free(&jt);
}

/* Every event the tests stored is in the spool, once. */
static void
test_stored(void)
{
    struct slh_error err = {0};
    struct slh_store *sp = NULL;
    struct job j;
    size_t n_new = 99;
    const struct slh_batch *b = &j.batch;

    job_batch(&j, (const char *const[]){"g-a1", "g-a2", "g-b1", "c-new1",
                                        "c-new2", "c-alone", "f-a", "f-b",
                                        "w-a", "s-a", "s-b", NULL});
    CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK &&
              slh_store_put(sp, &cfg, &b, 1, slh_now_ms(), &n_new, &err) ==
                  SLH_OK,
          "put: %s", err.text);
    CHECK(n_new == 0, "all stored already (%zu new)", n_new);
    slh_store_close(sp);
    job_free(&j);
}

int
main(void)
{
    char cmd[128];

    if (!CHECK(mkdtemp(dir) != NULL, "mkdtemp"))
        return check_summary();
    cfg.spool = dir;
    sem_init(&gate_in, 0, 0);
    sem_init(&gate_out, 0, 0);
    test_group();
    test_counts();
    test_tasks_and_fallback();
    test_task_waits();
    test_stop();
    test_stored();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}

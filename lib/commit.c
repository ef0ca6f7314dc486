#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handler.h"
#include "metrics.h"
#include "store.h"
#include "thread.h"

/* Wakes a thread asleep on the semaphore at arg. */
static void
post(void *arg)
{
    sem_post(arg);
}

/*
 * The queue is a lock-free stack: request threads push, the committer takes
 * the whole stack at once. No lock for request threads to contend on while
 * the committer works; `work` counts pushes so the committer sleeps only
 * when there is nothing to take.
 */
struct slh_commit {
    _Atomic(struct slh_commit_job *) head;
    sem_t work;
    struct slh_thread thread;
    struct slh_store *sp;
    const struct slh_config *cfg;
    slh_commit_fn on_commit;
    void *ctx;
    const struct slh_batch **group; /* the committer's, grown as needed */
    struct slh_store_task *tasks;   /* as many */
    size_t group_cap;
    struct slh_commit_job *held; /* tasks waiting behind requests, in order */
    unsigned long n_batches, n_commits;
};

/* Events the spool stores: it skips Validation ones. */
static size_t
storable(const struct slh_batch *batch)
{
    size_t n = 0;

    for (size_t i = 0; i < batch->n; i++)
        n += !batch->events[i].is_validation;
    return n;
}

static bool
reserve(struct slh_commit *c, size_t n)
{
    const struct slh_batch **p;
    struct slh_store_task *t;

    if (n <= c->group_cap)
        return true;
    p = realloc(c->group, n * sizeof(*p));
    if (p != NULL)
        c->group = p;
    t = realloc(c->tasks, n * sizeof(*t));
    if (t != NULL)
        c->tasks = t;
    if (p == NULL || t == NULL)
        return false;
    c->group_cap = n;
    return true;
}

/* Runs job alone: its batch in a commit of its own, or its task in a
 * transaction of its own. */
static void
commit_one(struct slh_commit *c, struct slh_commit_job *w)
{
    w->is_exact = true;
    w->n_new = 0;
    if (w->task != NULL) {
        w->rc = slh_store_put_tasks(c->sp, c->cfg, NULL, 0, w->task, 1,
                                    slh_now_ms(), NULL, &w->err);
        return;
    }
    w->rc = slh_store_put(c->sp, c->cfg, &w->batch, 1, slh_now_ms(), &w->n_new,
                          &w->err);
    if (w->rc == SLH_OK) {
        c->n_commits++;
        c->n_batches++;
    }
}

/* Stores the jobs' batches and runs their tasks, setting each one's result;
 * returns the number of new events. */
static size_t
commit_group(struct slh_commit *c, struct slh_commit_job *first)
{
    size_t n = 0, n_batches = 0, n_tasks = 0, n_new = 0, total = 0;
    struct slh_error err = {0};

    for (struct slh_commit_job *w = first; w != NULL; w = w->next)
        n++;
    if (n > 1 && reserve(c, n)) {
        for (struct slh_commit_job *w = first; w != NULL; w = w->next) {
            if (w->task != NULL) {
                c->tasks[n_tasks++] = *w->task;
                continue;
            }
            c->group[n_batches++] = w->batch;
            total += storable(w->batch);
        }
        if (slh_store_put_tasks(c->sp, c->cfg, c->group, n_batches, c->tasks,
                                n_tasks, slh_now_ms(), &n_new,
                                &err) == SLH_OK) {
            c->n_commits += n_batches > 0;
            c->n_batches += n_batches;
            /* The spool counts new events per transaction: a batch's own
             * count is known only when all or none were new. */
            for (struct slh_commit_job *w = first; w != NULL; w = w->next) {
                w->rc = SLH_OK;
                w->is_exact = w->task != NULL || n_new == total || n_new == 0;
                w->n_new =
                    w->task == NULL && n_new == total ? storable(w->batch) : 0;
            }
            return n_new;
        }
    }
    /* One at a time (a group that failed, or one alone): a batch or task
     * that fails, whatever the reason, then fails only itself. */
    n_new = 0;
    for (struct slh_commit_job *w = first; w != NULL; w = w->next) {
        commit_one(c, w);
        n_new += w->n_new;
    }
    return n_new;
}

/* The metrics of a group committed since t0 (commit_group()): its events
 * received and stored, and, when it held any batch that was stored, how
 * long its commit took. Before the jobs are done: then they are their
 * submitters' again. */
static void
count(const struct slh_commit_job *first, const struct timespec *t0)
{
    double ms = slh_elapsed_ms(t0);
    size_t n_events = 0;
    bool is_stored = false;

    for (const struct slh_commit_job *w = first; w != NULL; w = w->next) {
        if (w->task != NULL)
            continue;
        slh_metrics_events(w->batch, w->rc == SLH_OK);
        if (w->rc == SLH_OK) {
            is_stored = true;
            n_events += storable(w->batch);
        }
    }
    if (is_stored)
        slh_metrics_commit(ms / 1000.0, n_events);
}

/* The stack taken, in arrival order. */
static struct slh_commit_job *
take(struct slh_commit *c)
{
    struct slh_commit_job *w = atomic_exchange(&c->head, NULL), *fifo = NULL,
                          *next;

    for (; w != NULL; w = next) {
        next = w->next;
        w->next = fifo;
        fifo = w;
    }
    return fifo;
}

/*
 * What of jobs (in arrival order) to commit now. The delivery thread's
 * tasks wait while requests are queued, so that under a burst answering
 * comes first: that thread runs at nice +10, but its claims and outcomes
 * are the spool's work (PostgreSQL's backend, or SQLite on this thread),
 * which its nice value does not reach. A task waits at most
 * SLH_COMMIT_HOLD_MS from its submission, then joins the next commit; it
 * never waits alone: a take without requests runs every task held.
 */
static struct slh_commit_job *
now_or_held(struct slh_commit *c, struct slh_commit_job *jobs)
{
    struct slh_commit_job *now = NULL, **now_end = &now, **held_end = &c->held;
    struct slh_commit_job *next;

    while (*held_end != NULL)
        held_end = &(*held_end)->next;
    for (; jobs != NULL; jobs = next) {
        next = jobs->next;
        jobs->next = NULL;
        if (jobs->task != NULL) {
            *held_end = jobs;
            held_end = &jobs->next;
        } else {
            *now_end = jobs;
            now_end = &jobs->next;
        }
    }
    if (c->held != NULL && (now == NULL || slh_elapsed_ms(&c->held->queued) >=
                                               SLH_COMMIT_HOLD_MS)) {
        *now_end = c->held;
        c->held = NULL;
    }
    return now;
}

static void *
run(void *arg)
{
    struct slh_commit *c = arg;

    for (;;) {
        struct slh_commit_job *first, *next;
        struct timespec t0;
        size_t n_new;

        /* Tasks held: no sleep, so that they run as soon as no request is
         * queued. Stopping: no sleep either, the stop's count may be gone. */
        if (c->held == NULL && !slh_thread_is_stopping(&c->thread))
            while (sem_wait(&c->work) != 0 && errno == EINTR)
                ;
        else
            (void)sem_trywait(&c->work);
        first = now_or_held(c, take(c));
        if (first == NULL) {
            /* A count whose job an earlier take got, or the stop. */
            if (slh_thread_is_stopping(&c->thread))
                break;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        n_new = commit_group(c, first);
        count(first, &t0);
        /* A job is its submitter's again once done: read next first. */
        for (struct slh_commit_job *w = first; w != NULL; w = next) {
            next = w->next;
            w->done(w);
        }
        if (n_new > 0 && c->on_commit != NULL)
            c->on_commit(c->ctx);
    }
    return NULL;
}

enum slh_err
slh_commit_start(struct slh_commit **out, const struct slh_config *cfg,
                 slh_commit_fn on_commit, slh_commit_note_fn on_note, void *ctx,
                 struct slh_error *err)
{
    struct slh_commit *c;
    enum slh_err rc;
    int e;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    c->cfg = cfg;
    c->on_commit = on_commit;
    c->ctx = ctx;
    rc = slh_store_open(&c->sp, cfg->spool, SLH_STORE_CREATE, err);
    if (rc != SLH_OK)
        goto fail;
    /* The store's own upkeep (SQLite: checkpoints on a thread of its own)
     * stays off the commit path; what fails there is the caller's to log. */
    slh_store_on_note(c->sp, on_note, ctx);
    rc = slh_store_role(c->sp, SLH_STORE_COMMITTER, err);
    if (rc != SLH_OK)
        goto fail;
    atomic_init(&c->head, NULL);
    sem_init(&c->work, 0, 0);
    e = slh_thread_start(&c->thread, "slh-commit", run, c);
    if (e != 0) {
        rc = slh_error_set(err, SLH_ENOMEM, "cannot start the committer: %s",
                           strerror(e));
        sem_destroy(&c->work);
        goto fail;
    }
    *out = c;
    return SLH_OK;

fail:
    slh_store_close(c->sp);
    free(c);
    return rc;
}

void
slh_commit_submit(struct slh_commit *c, struct slh_commit_job *job)
{
    if (job->task != NULL)
        clock_gettime(CLOCK_MONOTONIC, &job->queued);
    job->next = atomic_load(&c->head);
    while (!atomic_compare_exchange_weak(&c->head, &job->next, job))
        ;
    sem_post(&c->work);
}

void
slh_commit_stop(struct slh_commit *c, unsigned long *n_batches,
                unsigned long *n_commits)
{
    if (c == NULL)
        return;
    slh_thread_stop(&c->thread, post, &c->work);
    if (n_batches != NULL)
        *n_batches = c->n_batches;
    if (n_commits != NULL)
        *n_commits = c->n_commits;
    slh_store_close(c->sp);
    sem_destroy(&c->work);
    free(c->group);
    free(c->tasks);
    free(c);
}

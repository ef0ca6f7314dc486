#include "deliver_thread.h"

#include <errno.h>
#include <semaphore.h>
#include <time.h>

/* Delivers until the stop; see the header for the pause after an error. */
static void *
deliver_main(void *arg)
{
    struct slh_deliver_thread *t = arg;
    struct slh_error err;

    slh_deliver_yield_priority();
    while (!slh_thread_is_stopping(&t->thread)) {
        slh_error_clear(&err);
        if (slh_deliverer_run(t->d, false, &err) == SLH_OK)
            break;
        if (t->on_error != NULL)
            t->on_error(t->ctx, err.text);
        for (int i = 0; i < SLH_DELIVER_RESTART_S * 10; i++) {
            if (slh_thread_is_stopping(&t->thread))
                break;
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        }
    }
    return NULL;
}

/* One of the deliverer's spool writes, run in a committer's transaction. */
struct write_wait {
    struct slh_commit_job job; /* first: written() gets the job */
    sem_t done;
};

static void
written(struct slh_commit_job *job)
{
    sem_post(&((struct write_wait *)(void *)job)->done);
}

/* The delivery thread waits for the commit that ran its task. */
static enum slh_err
write_through(const struct slh_store_task *task, void *commit,
              struct slh_error *err)
{
    struct write_wait w = {.job = {.task = task, .done = written}};

    sem_init(&w.done, 0, 0);
    slh_commit_submit(commit, &w.job);
    while (sem_wait(&w.done) != 0 && errno == EINTR)
        ;
    sem_destroy(&w.done);
    if (w.job.rc != SLH_OK && err != NULL)
        *err = w.job.err;
    return w.job.rc;
}

enum slh_err
slh_deliver_thread_start(struct slh_deliver_thread *t, struct slh_deliverer *d,
                         struct slh_commit *commit,
                         slh_deliver_thread_note_fn on_error, void *ctx,
                         struct slh_error *err)
{
    t->d = d;
    t->on_error = on_error;
    t->ctx = ctx;
    slh_deliverer_write_through(d, write_through, commit);
    if (slh_thread_start(&t->thread, "slh-deliver", deliver_main, t) != 0)
        return slh_error_set(err, SLH_ENOMEM, "cannot start the deliverer");
    return SLH_OK;
}

static void
stop_deliverer(void *d)
{
    slh_deliverer_stop(d);
}

void
slh_deliver_thread_stop(struct slh_deliver_thread *t)
{
    slh_thread_stop(&t->thread, stop_deliverer, t->d);
}

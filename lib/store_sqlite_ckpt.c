/* store_sqlite_ckpt.c: the committer's checkpointer, a thread with a
 * connection of its own (store.h, SLH_STORE_COMMITTER). */
#include "store_sqlite.h"

#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "thread.h"

/* A due signal while one is pending adds nothing. */
struct slh_sqlite_ckpt {
    struct slh_store *st; /* its own connection */
    struct slh_thread thread;
    sem_t work;
    atomic_bool is_pending;
    void (*note)(void *ctx, const char *text);
    void *ctx;
};

static void
due(void *arg)
{
    struct slh_sqlite_ckpt *k = arg;

    if (!atomic_exchange(&k->is_pending, true))
        sem_post(&k->work);
}

static void *
run(void *arg)
{
    struct slh_sqlite_ckpt *k = arg;
    struct slh_error err = {0};
    char last[sizeof(err.text)] = "";

    for (;;) {
        while (sem_wait(&k->work) != 0 && errno == EINTR)
            ;
        if (slh_thread_is_stopping(&k->thread))
            break;
        atomic_store(&k->is_pending, false);
        slh_error_clear(&err);
        /* A failure is told once until it changes or passes: commits go
         * on, the WAL grows, and the next due signal tries again. */
        if (slh_sqlite_checkpoint(k->st, &err) != SLH_OK) {
            if (strcmp(err.text, last) != 0 && k->note != NULL)
                k->note(k->ctx, err.text);
            snprintf(last, sizeof(last), "%s", err.text);
        } else {
            last[0] = '\0';
        }
        /* Once per WAL's fill is enough: 20 ms is a few hundred pages. */
        nanosleep(&(struct timespec){.tv_nsec = 20L * 1000 * 1000}, NULL);
    }
    return NULL;
}

enum slh_err
slh_sqlite_ckpt_start(struct slh_sqlite *sq, struct slh_error *err)
{
    struct slh_sqlite_ckpt *k;
    enum slh_err rc;
    int e;

    if (sq->ckpt != NULL)
        return SLH_OK;
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return slh_error_set(err, SLH_ENOMEM, "checkpointer: out of memory");
    rc = slh_store_open(&k->st, sq->dir, sq->how, err);
    if (rc != SLH_OK) {
        free(k);
        return rc;
    }
    k->note = sq->note;
    k->ctx = sq->note_ctx;
    atomic_init(&k->is_pending, false);
    sem_init(&k->work, 0, 0);
    e = slh_thread_start(&k->thread, "slh-checkpoint", run, k);
    if (e != 0) {
        sem_destroy(&k->work);
        slh_store_close(k->st);
        free(k);
        return slh_error_set(err, SLH_ENOMEM,
                             "cannot start the checkpointer: %s", strerror(e));
    }
    sq->ckpt = k;
    slh_sqlite_defer_checkpoints(&sq->base, due, k);
    return SLH_OK;
}

/* Wakes a thread asleep on the semaphore at arg. */
static void
post(void *arg)
{
    sem_post(arg);
}

void
slh_sqlite_ckpt_stop(struct slh_sqlite *sq)
{
    struct slh_sqlite_ckpt *k = sq->ckpt;

    if (k == NULL)
        return;
    slh_thread_stop(&k->thread, post, &k->work);
    sem_destroy(&k->work);
    slh_store_close(k->st);
    free(k);
    sq->ckpt = NULL;
}

/* test_thread.c: a thread that runs until told to stop (lib/thread.h). */
#define _GNU_SOURCE /* pthread_getname_np() */
#include <errno.h>
#include <semaphore.h>
#include <string.h>

#include "check.h"
#include "thread.h"

struct loop {
    struct slh_thread t;
    sem_t work, turned;
    int n_turns;
};

/* Sleeps on the semaphore until it is stopping, counting its turns. */
static void *
loop_main(void *arg)
{
    struct loop *l = arg;

    for (;;) {
        while (sem_wait(&l->work) != 0 && errno == EINTR)
            ;
        if (slh_thread_is_stopping(&l->t))
            return NULL;
        l->n_turns++;
        sem_post(&l->turned);
    }
}

static int n_wakes;

static void
wake(void *arg)
{
    n_wakes++;
    sem_post(arg);
}

int
main(void)
{
    struct loop l = {0};
    struct slh_thread never = {0};
    char name[32] = "";

    sem_init(&l.work, 0, 0);
    sem_init(&l.turned, 0, 0);
    CHECK(slh_thread_start(&l.t, "slh-test", loop_main, &l) == 0, "started");
    CHECK(l.t.is_running, "running");
    CHECK(pthread_getname_np(l.t.id, name, sizeof(name)) == 0 &&
              strcmp(name, "slh-test") == 0,
          "named as asked: '%s'", name);
    slh_thread_name(l.t.id, "slh-a-name-too-long-to-keep");
    CHECK(pthread_getname_np(l.t.id, name, sizeof(name)) == 0 &&
              strcmp(name, "slh-a-name-too-") == 0,
          "a long name cut to the 15 bytes the kernel keeps: '%s'", name);
    CHECK(!slh_thread_is_stopping(&l.t), "not stopping at first");
    sem_post(&l.work);
    sem_post(&l.work);
    for (int i = 0; i < 2; i++)
        while (sem_wait(&l.turned) != 0 && errno == EINTR)
            ;
    CHECK(!slh_thread_is_stopping(&l.t), "not stopping while it works");
    /* The stop wakes the sleeping thread once and waits for it to end. */
    slh_thread_stop(&l.t, wake, &l.work);
    CHECK(n_wakes == 1, "woken once (%d)", n_wakes);
    CHECK(l.n_turns == 2, "no turn taken for the stop (%d)", l.n_turns);
    CHECK(!l.t.is_running && slh_thread_is_stopping(&l.t), "stopped");
    /* Stopping again, or a thread never started, does nothing. */
    slh_thread_stop(&l.t, wake, &l.work);
    slh_thread_stop(&never, wake, &l.work);
    CHECK(n_wakes == 1, "no wake for a thread not running (%d)", n_wakes);
    sem_destroy(&l.work);
    sem_destroy(&l.turned);
    return check_summary();
}

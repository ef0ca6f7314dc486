#define _GNU_SOURCE /* pthread_setname_np() */
#include "thread.h"

#include <stdio.h>

void
slh_thread_name(pthread_t id, const char *name)
{
    char cut[16];

    snprintf(cut, sizeof(cut), "%s", name);
    (void)pthread_setname_np(id, cut);
}

int
slh_thread_start(struct slh_thread *t, const char *name, void *(*fn)(void *),
                 void *arg)
{
    int e;

    atomic_init(&t->is_stopping, false);
    e = pthread_create(&t->id, NULL, fn, arg);
    t->is_running = e == 0;
    if (t->is_running)
        slh_thread_name(t->id, name);
    return e;
}

bool
slh_thread_is_stopping(struct slh_thread *t)
{
    return atomic_load(&t->is_stopping);
}

void
slh_thread_stop(struct slh_thread *t, void (*wake)(void *), void *arg)
{
    if (!t->is_running)
        return;
    atomic_store(&t->is_stopping, true);
    if (wake != NULL)
        wake(arg);
    pthread_join(t->id, NULL);
    t->is_running = false;
}

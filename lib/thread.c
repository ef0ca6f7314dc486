#include "thread.h"

int
slh_thread_start(struct slh_thread *t, void *(*fn)(void *), void *arg)
{
    int e;

    atomic_init(&t->is_stopping, false);
    e = pthread_create(&t->id, NULL, fn, arg);
    t->is_running = e == 0;
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

/* thread.h: a thread that runs until it is told to stop.
 *
 * slhook.fcgi's committer, checkpointer and delivery thread each loop until
 * a stop: the flag, the start and the stop-and-join are written once here.
 */
#ifndef SLH_THREAD_H
#define SLH_THREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct slh_thread {
    pthread_t id;
    atomic_bool is_stopping;
    bool is_running;
};

/*
 * Starts fn(arg) on a new thread of t, not stopping, named name (see
 * slh_thread_name()). Returns 0, or pthread_create()'s error number (then t
 * is not running).
 */
int slh_thread_start(struct slh_thread *t, const char *name,
                     void *(*fn)(void *), void *arg);

/*
 * Names the thread id name (at most 15 bytes are kept): what `top -H`,
 * `ps -L` and perf show for it, so that an operator can tell the committer
 * from the delivery thread. Best effort: a name refused changes nothing.
 */
void slh_thread_name(pthread_t id, const char *name);

/* True once slh_thread_stop() has begun: what the thread's loop asks. */
bool slh_thread_is_stopping(struct slh_thread *t);

/*
 * When t runs: marks it stopping, calls wake(arg) (wake may be NULL) so
 * that a thread asleep notices, and waits for the thread to end. A t never
 * started (zeroed, or its start failed) is fine: nothing happens.
 */
void slh_thread_stop(struct slh_thread *t, void (*wake)(void *), void *arg);

#endif

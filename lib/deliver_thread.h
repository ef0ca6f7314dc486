/* deliver_thread.h: slhook.fcgi's delivery thread.
 *
 * A deliverer that runs beside the receiving side of one process: its
 * spool writes go through the group committer's transactions (commit.h,
 * slh_deliverer_write_through()), so that one connection writes; its
 * thread yields to the request threads (slh_deliver_yield_priority()). An
 * error (the spool busy or unreadable for a while) ends a run; receiving
 * goes on regardless, and delivery resumes after a pause rather than
 * waiting for the process to be restarted.
 */
#ifndef SLH_DELIVER_THREAD_H
#define SLH_DELIVER_THREAD_H

#include "commit.h"
#include "deliver.h"
#include "err.h"
#include "thread.h"

#define SLH_DELIVER_RESTART_S 10 /* after a run stopped on an error */

/* Called on the delivery thread when a run stopped on an error, with why;
 * delivery resumes in SLH_DELIVER_RESTART_S seconds. */
typedef void (*slh_deliver_thread_note_fn)(void *ctx, const char *text);

struct slh_deliver_thread {
    struct slh_deliverer *d; /* borrowed */
    slh_deliver_thread_note_fn on_error;
    void *ctx;
    struct slh_thread thread;
};

/*
 * Starts a thread delivering with d (borrowed: must outlive the thread),
 * whose spool writes commit runs (borrowed: must outlive the thread;
 * stopped only after it). on_error (may be NULL) is called with ctx when a
 * run stops on an error. *t is the caller's (zeroed is fine for
 * slh_deliver_thread_stop()). On failure no thread runs and err says why.
 */
enum slh_err slh_deliver_thread_start(struct slh_deliver_thread *t,
                                      struct slh_deliverer *d,
                                      struct slh_commit *commit,
                                      slh_deliver_thread_note_fn on_error,
                                      void *ctx, struct slh_error *err);

/*
 * Stops the thread (a run in progress returns soon, slh_deliverer_stop())
 * and waits for it. Its last writes go through the committer, which must
 * still run. A t never started is fine.
 */
void slh_deliver_thread_stop(struct slh_deliver_thread *t);

#endif

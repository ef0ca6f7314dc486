/* commit.h: group commit (slhook.fcgi's committer).
 *
 * One fsync costs far more than handling a request, so request threads do
 * not commit alone: each hands its batch to one committer thread, which
 * stores everything queued meanwhile in one spool transaction and then
 * reports each batch's own result through its callback. The callback runs
 * on the committer thread, so a request thread need not sleep until its
 * commit is done (and be woken again) unless it has to. Its store
 * connection has the committer's role (store.h): the store keeps its own
 * upkeep off the commit path (SQLite: a thread that copies the WAL into the
 * database ahead of the commits). The committer also runs the delivery thread's
 * spool writes, as tasks in its transactions (slh_store_put_tasks()): one
 * connection writes, its page cache stays warm, and the writers' lock is
 * never handed between threads. A task waits while requests are queued, for
 * at most SLH_COMMIT_HOLD_MS: under a burst answering comes first.
 */
#ifndef SLH_COMMIT_H
#define SLH_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "event.h"
#include "store.h"

struct slh_commit; /* opaque */

/* The longest a task waits behind queued requests, in milliseconds. */
#define SLH_COMMIT_HOLD_MS 10

/* Called on the committer thread after a commit that stored new events. */
typedef void (*slh_commit_fn)(void *ctx);

/* Called on the store's own thread with why its upkeep failed (SQLite: a
 * checkpoint): once per failure, again only when the reason changes or
 * after one succeeded (store.h, slh_store_on_note()). */
typedef void (*slh_commit_note_fn)(void *ctx, const char *text);

/*
 * One batch to store, or one task to run (task non-NULL, batch unused):
 * spool writes of another thread that share the committer's transactions
 * (slh_store_put_tasks()). The submitter fills in batch or task, and done; the
 * committer fills in the outcome, then calls done(job) on its own thread, after
 * which the job is the submitter's again. rc is SLH_OK only once the batch is
 * committed; on failure nothing of it is stored and err holds the spool's
 * reason. n_new is the number of new events of batch; is_exact is false
 * when the shared commit only told how many were new in the whole group
 * (then n_new is 0).
 */
struct slh_commit_job {
    const struct slh_batch *batch;
    const struct slh_store_task *task;
    void (*done)(struct slh_commit_job *job);
    enum slh_err rc;
    struct slh_error err;
    size_t n_new;
    bool is_exact;
    struct timespec queued;      /* the committer's: a task's submission */
    struct slh_commit_job *next; /* the committer's */
};

/*
 * Opens the spool of cfg (borrowed: must outlive the committer) and starts
 * the committer thread. on_commit (may be NULL) is called with ctx after
 * each commit that stored at least one new event; on_note (may be NULL) with
 * ctx when the store's upkeep fails (lib/ prints nothing: the caller logs
 * it).
 * *out is released with slh_commit_stop(). On failure *out is NULL and err
 * says why.
 */
enum slh_err slh_commit_start(struct slh_commit **out,
                              const struct slh_config *cfg,
                              slh_commit_fn on_commit,
                              slh_commit_note_fn on_note, void *ctx,
                              struct slh_error *err);

/*
 * Queues job to be stored durably, sharing the commit with whatever else is
 * queued meanwhile, and returns at once: job->done reports the outcome.
 * Thread-safe; must not be called after slh_commit_stop() has begun.
 */
void slh_commit_submit(struct slh_commit *c, struct slh_commit_job *job);

/*
 * Commits what is still queued (its callbacks run), stops the thread,
 * closes the spool and frees c. *n_batches and *n_commits (either may be
 * NULL) get the totals stored over its life, for the exit log. NULL c is
 * fine.
 */
void slh_commit_stop(struct slh_commit *c, unsigned long *n_batches,
                     unsigned long *n_commits);

#endif

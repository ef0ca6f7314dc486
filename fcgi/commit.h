/* commit.h: group commit for the FastCGI responder.
 *
 * One fsync costs far more than handling a request, so request threads do
 * not commit alone: each hands its batch to one committer thread and waits;
 * the committer stores everything queued meanwhile in one spool transaction
 * and wakes every waiter with its own result.
 */
#ifndef SLH_FCGI_COMMIT_H
#define SLH_FCGI_COMMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "event.h"

struct slh_commit; /* opaque */

/* Called on the committer thread after a commit that stored new events. */
typedef void (*slh_commit_fn)(void *ctx);

/*
 * Opens the spool of cfg (borrowed: must outlive the committer) and starts
 * the committer thread. on_commit (may be NULL) is called with ctx after
 * each commit that stored at least one new event. *out is released with
 * slh_commit_stop(). On failure *out is NULL and err says why.
 */
enum slh_err slh_commit_start(struct slh_commit **out,
                              const struct slh_config *cfg,
                              slh_commit_fn on_commit, void *ctx,
                              struct slh_error *err);

/*
 * Stores batch (borrowed until this returns) durably, sharing the commit
 * with whatever other threads put meanwhile; blocks until it is on disk or
 * has failed. Returns SLH_OK only once it is committed; on failure nothing
 * of batch is stored and err holds the spool's reason. *n_new gets the
 * number of new events of batch; *is_exact is false when the shared commit
 * only told how many were new in the whole group (then *n_new is 0).
 * Thread-safe; must not be called after slh_commit_stop() has begun.
 */
enum slh_err slh_commit_put(struct slh_commit *c, const struct slh_batch *batch,
                            size_t *n_new, bool *is_exact,
                            struct slh_error *err);

/*
 * Commits what is still queued, stops the thread, closes the spool and frees
 * c. *n_batches and *n_commits (either may be NULL) get the totals stored
 * over its life, for the exit log. NULL c is fine.
 */
void slh_commit_stop(struct slh_commit *c, unsigned long *n_batches,
                     unsigned long *n_commits);

#endif

/* deliver_kicked.h: the deliverer a CGI request kicks (kick.h).
 *
 * kick.h promises that no event is left behind between a receiver that
 * tests the kick lock after its commit and a deliverer that lets the lock
 * go: the loop here keeps that promise. It takes the lock, delivers while
 * anything is pending (sleeping until the next retry, looking now and then
 * for rows a receiver stored meanwhile), lets the lock go, and looks once
 * more for due work before it ends.
 */
#ifndef SLH_DELIVER_KICKED_H
#define SLH_DELIVER_KICKED_H

#include <stdbool.h>

#include "config.h"
#include "deliver.h"
#include "err.h"

/* How often a kicked deliverer waiting for a retry looks for new rows. */
#define SLH_KICKED_TICK_MS 250

/* What the front end running a kicked deliverer decides (all may be NULL). */
struct slh_kicked_hooks {
    /* True once the deliverer is to stop (a signal came); polled between
     * runs and every SLH_KICKED_TICK_MS while waiting. The front end also
     * calls slh_deliverer_stop() so that a run in progress returns. */
    bool (*is_stopping)(void *ctx);
    /* Called once, right after the starter was told the deliverer is ready
     * (slh_kick_ready()): from then on stderr leads nowhere, and the front
     * end may point its log lines at the config's log. */
    void (*on_ready)(void *ctx);
    void *ctx;
};

/*
 * Runs d (on cfg, both borrowed) as a kicked deliverer for cfg->spool, its
 * thread's priority lowered first (slh_deliver_yield_priority()): takes the
 * kick lock without waiting; if another process holds it, returns SLH_OK at
 * once (that one delivers). Else delivers until nothing is pending, or until
 * hooks->is_stopping(): due rows now, and rows waiting for a retry at their
 * time, new rows as soon as a receiver stores them. Then it lets the lock go
 * and looks once more for pending rows (a receiver that stored events while the
 * lock was held started nobody); when there are some it takes the lock again
 * and goes on. ready_fd >= 0 is the starter's pipe (slh_kick_start()): it is
 * told ready once the lock was tried (held or not), then hooks->on_ready runs.
 * Returns SLH_OK, or the error that stopped it (the spool, the lock file,
 * a run), with err saying why.
 */
enum slh_err slh_deliver_kicked(struct slh_deliverer *d,
                                const struct slh_config *cfg, int ready_fd,
                                const struct slh_kicked_hooks *hooks,
                                struct slh_error *err);

#endif

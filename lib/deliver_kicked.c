#include "deliver_kicked.h"

#include <poll.h>
#include <stdint.h>
#include <unistd.h>

#include "kick.h"
#include "store.h"
#include "throttle.h"

static bool
is_stopping(const struct slh_kicked_hooks *hooks)
{
    return hooks != NULL && hooks->is_stopping != NULL &&
           hooks->is_stopping(hooks->ctx);
}

/* The earliest due time of the configured destinations' pending rows (an
 * open breaker's at its probe), INT64_MAX when nothing is pending. */
static enum slh_err
next_due(struct slh_store *sp, const struct slh_config *cfg, int64_t *due,
         struct slh_error *err)
{
    *due = INT64_MAX;
    for (size_t i = 0; i < cfg->n_dests; i++) {
        struct slh_throttle_state th;
        int64_t t;
        enum slh_err rc = slh_store_next_due(sp, cfg->dests[i].name, &t, err);
        if (rc == SLH_OK)
            rc = slh_store_throttle_get(sp, cfg->dests[i].name, &th, err);
        if (rc != SLH_OK)
            return rc;
        /* An open breaker's rows wait for its probe. */
        t = slh_throttle_due(&th, &cfg->dests[i], t, slh_now_ms());
        if (t < *due)
            *due = t;
    }
    return SLH_OK;
}

/*
 * Idle, until new events arrive (the version of sp moves: a receiver
 * wrote; this handle's own writes do not move it) or something is due,
 * makes events findable by MessageId a batch at a time (store.h): the
 * kicked deliverer is the CGI's only background process to do it.
 */
static void
index_while_idle(struct slh_store *sp, int64_t version, int64_t due,
                 const struct slh_kicked_hooks *hooks)
{
    size_t n = SLH_STORE_INDEX_BATCH;

    while (n == SLH_STORE_INDEX_BATCH && !is_stopping(hooks) &&
           slh_now_ms() < due && slh_store_data_version(sp) == version)
        if (slh_store_index(sp, SLH_STORE_INDEX_BATCH, &n, NULL) != SLH_OK)
            return;
}

/*
 * A kicked deliverer stays while anything is pending, so that retries
 * happen on schedule with no daemon: it delivers what is due, indexes
 * what arrived (index_while_idle()), then sleeps until the next retry, looking
 * every tick whether a receiver stored new events (a CGI that sees the kick
 * lock held does not start another).
 */
static enum slh_err
deliver_until_empty(struct slh_deliverer *d, struct slh_store *sp,
                    const struct slh_config *cfg,
                    const struct slh_kicked_hooks *hooks, struct slh_error *err)
{
    for (;;) {
        int64_t due, version;
        enum slh_err rc = slh_deliverer_run(d, true, err);
        if (rc != SLH_OK || is_stopping(hooks))
            return rc;
        version = slh_store_data_version(sp);
        rc = next_due(sp, cfg, &due, err);
        if (rc != SLH_OK)
            return rc;
        index_while_idle(sp, version, due, hooks);
        if (due == INT64_MAX && slh_store_data_version(sp) == version)
            return SLH_OK;
        while (!is_stopping(hooks) && slh_now_ms() < due &&
               slh_store_data_version(sp) == version)
            poll(NULL, 0, SLH_KICKED_TICK_MS);
        if (is_stopping(hooks))
            return SLH_OK;
    }
}

enum slh_err
slh_deliver_kicked(struct slh_deliverer *d, const struct slh_config *cfg,
                   int ready_fd, const struct slh_kicked_hooks *hooks,
                   struct slh_error *err)
{
    struct slh_store *sp = NULL;
    enum slh_err rc;

    /* Kicked by a CGI request: the CGI processes to come go first. */
    slh_deliver_yield_priority();
    rc = slh_store_open(&sp, cfg->spool, SLH_STORE_CREATE, err);
    while (rc == SLH_OK && !is_stopping(hooks)) {
        int64_t due = INT64_MAX;
        int lock = slh_kick_lock(cfg->spool);
        if (ready_fd >= 0 && lock != -2) {
            slh_kick_ready(ready_fd, cfg->spool);
            ready_fd = -1;
            if (hooks != NULL && hooks->on_ready != NULL)
                hooks->on_ready(hooks->ctx);
        }
        if (lock == -1)
            break; /* another deliverer has it */
        if (lock < 0) {
            rc = slh_error_set(err, SLH_EIO, "%s/%s: cannot take the lock",
                               cfg->spool, SLH_KICK_LOCK);
            break;
        }
        rc = deliver_until_empty(d, sp, cfg, hooks, err);
        close(lock);
        /* A receiver that stored events while we held the lock did not
         * kick anybody: look once more now that the lock is free. */
        if (rc == SLH_OK)
            rc = next_due(sp, cfg, &due, err);
        if (rc != SLH_OK || due == INT64_MAX)
            break;
    }
    slh_store_close(sp);
    return rc;
}

/* store_backend.h: what a store backend provides (store.h is the contract).
 *
 * A backend is one file (or a few) that fills in a struct slh_store_ops and
 * is named in store.c's table, with the test that picks it. Its handle
 * begins with a struct slh_store (ops set by its open), so store.c passes
 * the handle through unchanged; its owners begin with a struct
 * slh_store_owner. Each op has the contract of the store.h function of the
 * same name, with the handle non-NULL (store.c checks).
 */
#ifndef SLH_STORE_BACKEND_H
#define SLH_STORE_BACKEND_H

#include "store.h"

struct slh_store_ops;

struct slh_store {
    const struct slh_store_ops *ops;
};

struct slh_store_owner {
    void (*close)(struct slh_store_owner *o); /* frees o */
    int64_t token;                            /* > 0 */
};

struct slh_store_ops {
    const char *name; /* for messages: "sqlite" */
    /* Whether spool names a store of this backend (store.c asks in turn;
     * the last backend takes what no other claims). */
    bool (*is_mine)(const char *spool);
    enum slh_err (*open)(struct slh_store **out, const char *spool,
                         enum slh_store_create how, struct slh_error *err);
    void (*close)(struct slh_store *st);
    const char *(*where)(const struct slh_store *st);
    enum slh_err (*verify)(struct slh_store *st, struct slh_error *err);
    bool (*is_replaced)(struct slh_store *st);
    enum slh_err (*role)(struct slh_store *st, enum slh_store_role role,
                         struct slh_error *err);
    void (*defer_maintenance)(struct slh_store *st, void (*due)(void *ctx),
                              void *ctx);
    enum slh_err (*maintain)(struct slh_store *st, struct slh_error *err);
    enum slh_err (*put_tasks)(struct slh_store *st,
                              const struct slh_config *cfg,
                              const struct slh_batch *const *batches, size_t n,
                              const struct slh_store_task *tasks,
                              size_t n_tasks, int64_t now_ms, size_t *n_new,
                              struct slh_error *err);
    enum slh_err (*owner_open)(struct slh_store *st,
                               struct slh_store_owner **out,
                               struct slh_error *err);
    enum slh_err (*take_back)(struct slh_store *st, int64_t self,
                              int64_t now_ms, size_t *taken,
                              struct slh_error *err);
    enum slh_err (*claim)(struct slh_store *st, const char *dest, int64_t owner,
                          int64_t now_ms, int64_t lease_ms, size_t max,
                          struct slh_claim *claims, size_t *n,
                          int64_t *next_due, struct slh_error *err);
    enum slh_err (*finish)(struct slh_store *st, const struct slh_outcome *o,
                           size_t n, int64_t now_ms, struct slh_error *err);
    enum slh_err (*unclaim)(struct slh_store *st, const char *dest,
                            const int64_t *seqs, size_t n, int64_t now_ms,
                            struct slh_error *err);
    enum slh_err (*next_due)(struct slh_store *st, const char *dest,
                             int64_t *due, struct slh_error *err);
    enum slh_err (*stats)(struct slh_store *st, const char *dest,
                          struct slh_store_stats *s, struct slh_error *err);
    enum slh_err (*retry)(struct slh_store *st, const char *dest,
                          int64_t now_ms, size_t *n, struct slh_error *err);
    enum slh_err (*purge)(struct slh_store *st, int64_t cutoff_ms, size_t *n,
                          struct slh_error *err);
    /* *names of *n new strings in a new array (slh_store_dests_free()). */
    enum slh_err (*dests)(struct slh_store *st, char ***names, size_t *n,
                          struct slh_error *err);
    int64_t (*data_version)(struct slh_store *st);
    /* The events, and each one's rows, in new arrays of new strings
     * (slh_store_events_free()). */
    enum slh_err (*events)(struct slh_store *st,
                           const struct slh_store_filter *f,
                           struct slh_store_event **events, size_t *n,
                           struct slh_error *err);
    enum slh_err (*event)(struct slh_store *st, const char *id,
                          struct slh_store_event *ev, struct slh_error *err);
    enum slh_err (*requeue)(struct slh_store *st, const struct slh_dest *dest,
                            int64_t since_ms, int64_t until_ms, unsigned states,
                            int64_t now_ms, size_t *n, struct slh_error *err);
};

#endif

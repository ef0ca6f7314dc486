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
    bool is_local; /* its spools are directories: slh_store_is_local() */
    /* Each with the type of the store.h function of the same name. Arrays
     * and strings handed out are malloc()'s: store.c frees them. */
    __typeof__(slh_store_open) *open;
    __typeof__(slh_store_close) *close;
    __typeof__(slh_store_where) *where;
    __typeof__(slh_store_describe) *describe;
    __typeof__(slh_store_verify) *verify;
    __typeof__(slh_store_health) *health;
    __typeof__(slh_store_is_replaced) *is_replaced;
    __typeof__(slh_store_role) *role;
    __typeof__(slh_store_on_note) *on_note;
    __typeof__(slh_store_put_tasks) *put_tasks;
    __typeof__(slh_store_owner_open) *owner_open;
    __typeof__(slh_store_take_back) *take_back;
    __typeof__(slh_store_owner_beat) *owner_beat;
    __typeof__(slh_store_claim) *claim;
    __typeof__(slh_store_finish) *finish;
    __typeof__(slh_store_unclaim) *unclaim;
    __typeof__(slh_store_next_due) *next_due;
    __typeof__(slh_store_stats) *stats;
    __typeof__(slh_store_retry) *retry;
    __typeof__(slh_store_purge) *purge;
    __typeof__(slh_store_purge_due) *purge_due;
    __typeof__(slh_store_dests) *dests;
    __typeof__(slh_store_data_version) *data_version;
    __typeof__(slh_store_events) *events;
    __typeof__(slh_store_event) *event;
    __typeof__(slh_store_requeue) *requeue;
    __typeof__(slh_store_index) *index;
    __typeof__(slh_store_minutes) *minutes;
    /* Protecting a destination. */
    __typeof__(slh_store_throttle_get) *throttle_get;
    __typeof__(slh_store_throttle_put) *throttle_put;
    __typeof__(slh_store_expire) *expire;
    /* Copying a store into another (export is C++'s keyword: these few
     * are named for what they move). */
    __typeof__(slh_store_export) *export_events;
    __typeof__(slh_store_import) *import_events;
    __typeof__(slh_store_owners_alive) *owners_alive;
};

/* Makes the NUL-terminated s valid UTF-8 in place, never longer: a
 * sequence cut off by its end is dropped, any other invalid byte becomes
 * '?' (store.h, slh_store_finish()). For every backend's error texts. */
void slh_store_utf8_mend(char *s);

/* An imported row's columns as every backend stores them
 * (slh_store_import()). slh_store_row_error(): its last_error, mended,
 * into error (SLH_STORE_ERROR_LEN bytes), or false for NULL, "no failure"
 * (a retrying row keeps even an empty text). slh_store_row_done(): into
 * *done when a finished row finished (which is also its due) or when a
 * pending one was revived; false for NULL, a pending row never revived. */
bool slh_store_row_error(const struct slh_store_row *r, char *error);
bool slh_store_row_done(const struct slh_store_row *r, int64_t *done);

/* The end of every op that lists events: on success hands out (*events)
 * the *n events read into out; on failure (rc) frees them and makes *n 0.
 * Returns rc. */
enum slh_err slh_store_events_out(struct slh_store_event *out, size_t *n,
                                  enum slh_err rc,
                                  struct slh_store_event **events);

/* Whether r wants an event of this Type (any case, r's Types) and
 * tracking kind (its destination's filter): slh_store_requeue(). */
bool slh_store_replay_wants(const struct slh_store_replay *r, const char *type,
                            int tracking);

#endif

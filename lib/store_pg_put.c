/* store_pg_put.c: storing events, and the tasks that share their
 * transaction. */
#include "store_pg.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/*
 * Every event of a put in one statement, one round trip: the events as
 * arrays ($1 id .. $7 mask, $10 MessageId, in order), each stored unless
 * its (at, id), or its legacy id (event.h), is there already; then a
 * pending row for each destination ($9, in the config's order) whose
 * character in the event's mask is 1. The MessageId comes read ('' for
 * none), or NULL for the server to read from the body: one that is not a
 * string, as its jsonb text, which is what version 2's index held. ON CONFLICT
 * rather than a look first: a concurrent put of the same event waits for the
 * other's commit and then adds nothing. The count is of new events, exact.
 * ORDER BY i numbers them in arrival order.
 */
static const char put_sql[] =
    "WITH input AS (SELECT * FROM unnest($1::text[], $2::bigint[],"
    " $3::text[], $4::integer[], $5::text[], $6::text[], $7::text[],"
    " $10::text[]) WITH ORDINALITY"
    " AS t(id, at, type, tracking, body, legacy, mask, mid, i)),"
    " fresh AS (INSERT INTO slhook_event"
    " (id, at, type, tracking, received, body, message_id)"
    " SELECT id, at, type, tracking, $8, body,"
    " coalesce(mid, body::jsonb ->> 'MessageId', '') FROM input"
    " WHERE legacy IS NULL OR NOT EXISTS (SELECT 1 FROM slhook_event e"
    " WHERE e.at = input.at AND e.id = input.legacy)"
    " ORDER BY i ON CONFLICT (at, id) DO NOTHING RETURNING seq, at, id),"
    " rows AS (INSERT INTO slhook_delivery (dest, seq, state, due, attempts)"
    " SELECT d.name, f.seq, 0, $8, 0 FROM fresh f"
    " JOIN (SELECT DISTINCT ON (at, id) at, id, mask FROM input) m"
    " USING (at, id)"
    " JOIN unnest($9::text[]) WITH ORDINALITY AS d(name, k)"
    " ON substr(m.mask, d.k::integer, 1) = '1'"
    " ON CONFLICT DO NOTHING)"
    " SELECT count(*) FROM fresh";

/* The arrays of a put, as literals. */
struct put_arrays {
    struct slh_pg_buf id, at, type, tracking, body, legacy, mask, mid, dests;
    size_t n; /* events in them */
};

static void
arrays_free(struct put_arrays *p)
{
    struct slh_pg_buf *all[] = {&p->id,       &p->at,   &p->type,
                                &p->tracking, &p->body, &p->legacy,
                                &p->mask,     &p->mid,  &p->dests};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        slh_pg_buf_free(all[i]);
}

/* Adds ev (not a Validation) to p, with its relay body, its MessageId
 * (the relay body's: the key as spelt there) and its mask of cfg's
 * destinations (mask: room for one character each). */
static enum slh_err
add_event(struct put_arrays *p, const struct slh_config *cfg,
          const struct slh_event *ev, char *mask)
{
    char *made = ev->body == NULL ? slh_event_body(ev) : NULL;
    const json_t *mid = json_object_get(ev->obj, "MessageId");

    if (ev->body == NULL && made == NULL)
        return SLH_ENOMEM;
    for (size_t i = 0; i < cfg->n_dests; i++)
        mask[i] =
            slh_dest_wants(&cfg->dests[i], ev->type, ev->tracking) ? '1' : '0';
    mask[cfg->n_dests] = '\0';
    slh_pg_arr_text(&p->id, ev->id);
    slh_pg_arr_i64(&p->at, ev->at);
    slh_pg_arr_text(&p->type, ev->type);
    slh_pg_arr_i64(&p->tracking, ev->tracking);
    slh_pg_arr_text(&p->body, made != NULL ? made : ev->body);
    slh_pg_arr_text(&p->legacy,
                    ev->legacy_id[0] != '\0' ? ev->legacy_id : NULL);
    slh_pg_arr_text(&p->mask, mask);
    if (mid == NULL || json_is_string(mid))
        slh_pg_arr_text(&p->mid, mid != NULL ? json_string_value(mid) : "");
    else
        slh_pg_arr_text(&p->mid, NULL);
    free(made);
    p->n++;
    return SLH_OK;
}

/* Runs put_sql with p's arrays received at now_ms: *fresh new events. */
static enum slh_err
insert_all(struct slh_pg *pg, const struct put_arrays *p, int64_t now_ms,
           size_t *fresh, struct slh_error *err)
{
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;

    slh_pg_arg_text(&a, p->id.p);
    slh_pg_arg_text(&a, p->at.p);
    slh_pg_arg_text(&a, p->type.p);
    slh_pg_arg_text(&a, p->tracking.p);
    slh_pg_arg_text(&a, p->body.p);
    slh_pg_arg_text(&a, p->legacy.p);
    slh_pg_arg_text(&a, p->mask.p);
    slh_pg_arg_i64(&a, now_ms);
    slh_pg_arg_text(&a, p->dests.p);
    slh_pg_arg_text(&a, p->mid.p);
    rc = slh_pg_exec(pg, NULL, put_sql, &a, &r, err);
    if (rc == SLH_OK)
        *fresh = (size_t)slh_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Events alone, not on a deliverer's connection: one statement is one
 * transaction, committed synchronously. Else a transaction of ours: the
 * events' commit synchronous, tasks alone not (store.h). */
static enum slh_err
put_tx(struct slh_pg *pg, const struct put_arrays *p,
       const struct slh_store_task *tasks, size_t n_tasks, int64_t now_ms,
       size_t *fresh, struct slh_error *err)
{
    enum slh_pg_sync sync = p->n > 0 ? SLH_PG_SYNC_ON : SLH_PG_SYNC_OFF;
    enum slh_err rc;
    bool own;

    if (n_tasks == 0 && !pg->is_deliverer && !pg->is_in_tx)
        return insert_all(pg, p, now_ms, fresh, err);
    rc = slh_pg_begin(pg, NULL, sync, &own, err);
    if (rc != SLH_OK)
        return rc;
    if (p->n > 0)
        rc = insert_all(pg, p, now_ms, fresh, err);
    for (size_t i = 0; rc == SLH_OK && i < n_tasks; i++)
        rc = tasks[i].fn(&pg->base, tasks[i].arg, err);
    return slh_pg_end(pg, own, rc, err);
}

/* The arrays of every event but Validations of the n batches, made before
 * the transaction (which every writer of the same rows waits for). */
static enum slh_err
make_arrays(struct put_arrays *p, const struct slh_config *cfg,
            const struct slh_batch *const *batches, size_t n)
{
    struct slh_pg_buf *open[] = {&p->id,   &p->at,     &p->type, &p->tracking,
                                 &p->body, &p->legacy, &p->mask, &p->mid};
    char *mask = malloc(cfg->n_dests + 1);
    enum slh_err rc = mask != NULL ? SLH_OK : SLH_ENOMEM;
    bool is_oom = false;

    for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++)
        slh_pg_arr_open(open[i]);
    for (size_t i = 0; rc == SLH_OK && i < n; i++)
        for (size_t j = 0;
             rc == SLH_OK && batches[i] != NULL && j < batches[i]->n; j++)
            if (!batches[i]->events[j].is_validation)
                rc = add_event(p, cfg, &batches[i]->events[j], mask);
    free(mask);
    for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++)
        is_oom |= slh_pg_arr_close(open[i]) == NULL;
    slh_pg_arr_open(&p->dests);
    for (size_t i = 0; i < cfg->n_dests; i++)
        slh_pg_arr_text(&p->dests, cfg->dests[i].name);
    is_oom |= slh_pg_arr_close(&p->dests) == NULL;
    return rc == SLH_OK && is_oom ? SLH_ENOMEM : rc;
}

enum slh_err
slh_pg_put_tasks(struct slh_store *st, const struct slh_config *cfg,
                 const struct slh_batch *const *batches, size_t n,
                 const struct slh_store_task *tasks, size_t n_tasks,
                 int64_t now_ms, size_t *n_new, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct put_arrays p;
    size_t fresh = 0;
    enum slh_err rc;

    memset(&p, 0, sizeof(p));
    if (make_arrays(&p, cfg, batches, n) != SLH_OK) {
        arrays_free(&p);
        return slh_error_set(err, SLH_ESTORE, "spool %s: out of memory",
                             pg->where);
    }
    rc = SLH_OK;
    if (p.n > 0 || n_tasks > 0)
        rc = put_tx(pg, &p, tasks, n_tasks, now_ms, &fresh, err);
    if (rc == SLH_OK && n_new != NULL)
        *n_new = fresh;
    arrays_free(&p);
    return rc;
}

/* Up to $1 events without their MessageId read yet (stored before version
 * 3, or since by an older slhook), oldest first, given it from their
 * bodies; updated where the lock found them (store_pg_queue.c's claim
 * says why), SKIP LOCKED so that deliverers on two hosts take different
 * ones. */
static const char index_sql[] =
    "WITH b AS (SELECT ctid AS t FROM slhook_event WHERE message_id IS NULL"
    " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)"
    " UPDATE slhook_event SET"
    " message_id = coalesce(body::jsonb ->> 'MessageId', '')"
    " WHERE ctid = ANY(ARRAY(SELECT t FROM b))";

enum slh_err
slh_pg_index(struct slh_store *st, size_t max, size_t *n, struct slh_error *err)
{
    struct slh_pg_args a = {0};

    *n = 0;
    slh_pg_arg_i64(&a, (int64_t)(max > INT32_MAX ? INT32_MAX : max));
    return slh_pg_write(slh_pg(st), "index", index_sql, &a, n, err);
}

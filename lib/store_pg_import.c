/* store_pg_import.c: events copied from another store, with their rows as
 * they stand there (slh_store_import()). */
#include "store_pg.h"

#include <string.h>

/*
 * A batch in one statement, one round trip: the events as arrays ($1 id
 * .. $6 body, in order), each stored unless its (at, id) is there already
 * (then nothing of it); then the rows of the new ones, as arrays ($7 the
 * event's place in the batch, counted from 1, .. $14 done), owned by no
 * one. The tally's trigger counts the delivered ones. ORDER BY i keeps
 * the events' order in their new seqs. Each MessageId is read from its
 * body here, as slh_pg_index() would (one write of the row, not two).
 */
static const char import_sql[] =
    "WITH input AS (SELECT * FROM unnest($1::text[], $2::bigint[],"
    " $3::text[], $4::integer[], $5::bigint[], $6::text[])"
    " WITH ORDINALITY AS t(id, at, type, tracking, received, body, i)),"
    " fresh AS (INSERT INTO slhook_event"
    " (id, at, type, tracking, received, body, message_id)"
    " SELECT id, at, type, tracking, received, body,"
    " coalesce(body::jsonb ->> 'MessageId', '') FROM input ORDER BY i"
    " ON CONFLICT (at, id) DO NOTHING RETURNING seq, at, id),"
    " rows AS (INSERT INTO slhook_delivery"
    " (dest, seq, state, due, attempts, last_status, last_error, done)"
    " SELECT r.dest, f.seq, r.state, r.due, r.attempts, r.status, r.error,"
    " r.done FROM unnest($7::bigint[], $8::text[], $9::smallint[],"
    " $10::bigint[], $11::integer[], $12::integer[], $13::text[],"
    " $14::bigint[]) AS r(i, dest, state, due, attempts, status, error, done)"
    " JOIN input USING (i) JOIN fresh f ON f.at = input.at AND f.id = input.id"
    " ON CONFLICT DO NOTHING)"
    " SELECT count(*) FROM fresh";

enum { EV_ID, EV_AT, EV_TYPE, EV_TRACKING, EV_RECEIVED, EV_BODY, EV_N };
enum {
    ROW_I,
    ROW_DEST,
    ROW_STATE,
    ROW_DUE,
    ROW_ATTEMPTS,
    ROW_STATUS,
    ROW_ERROR,
    ROW_DONE,
    ROW_N
};

/* Row r of the event at place i (from 1) into the arrays b, its error
 * and done as store_backend.h has them. */
static void
add_row(struct slh_pg_buf *b, int64_t i, const struct slh_store_row *r)
{
    char error[SLH_STORE_ERROR_LEN];
    int64_t done;

    slh_pg_arr_i64(&b[ROW_I], i);
    slh_pg_arr_text(&b[ROW_DEST], r->dest);
    slh_pg_arr_i64(&b[ROW_STATE], r->state);
    slh_pg_arr_i64(&b[ROW_DUE], r->due);
    slh_pg_arr_i64(&b[ROW_ATTEMPTS], r->attempts);
    if (r->last_status > 0)
        slh_pg_arr_i64(&b[ROW_STATUS], r->last_status);
    else
        slh_pg_arr_text(&b[ROW_STATUS], NULL);
    slh_pg_arr_text(&b[ROW_ERROR],
                    slh_store_row_error(r, error) ? error : NULL);
    if (slh_store_row_done(r, &done))
        slh_pg_arr_i64(&b[ROW_DONE], done);
    else
        slh_pg_arr_text(&b[ROW_DONE], NULL);
}

/* The n events and their rows as import_sql's arguments into a (whose
 * texts are b's); false when out of memory. */
static bool
make_args(struct slh_pg_buf *b, const struct slh_store_event *events, size_t n,
          struct slh_pg_args *a)
{
    bool is_ok = true;

    for (size_t k = 0; k < EV_N + ROW_N; k++)
        slh_pg_arr_open(&b[k]);
    for (size_t i = 0; i < n; i++) {
        const struct slh_store_event *ev = &events[i];

        slh_pg_arr_text(&b[EV_ID], ev->id);
        slh_pg_arr_i64(&b[EV_AT], ev->at);
        slh_pg_arr_text(&b[EV_TYPE], ev->type);
        slh_pg_arr_i64(&b[EV_TRACKING], ev->tracking);
        slh_pg_arr_i64(&b[EV_RECEIVED], ev->received);
        slh_pg_arr_text(&b[EV_BODY], ev->body);
        for (size_t k = 0; k < ev->n_rows; k++)
            add_row(b + EV_N, (int64_t)i + 1, &ev->rows[k]);
    }
    for (size_t k = 0; k < EV_N + ROW_N; k++) {
        slh_pg_arg_text(a, slh_pg_arr_close(&b[k]));
        is_ok = is_ok && a->v[k] != NULL;
    }
    return is_ok;
}

enum slh_err
slh_pg_import(struct slh_store *st, const struct slh_store_event *events,
              size_t n, size_t *n_new, struct slh_error *err)
{
    struct slh_pg *pg = slh_pg(st);
    struct slh_pg_buf b[EV_N + ROW_N];
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    bool own = false;
    enum slh_err rc;

    _Static_assert(EV_N + ROW_N <= SLH_PG_ARGS, "import_sql's parameters");
    memset(b, 0, sizeof(b));
    if (!make_args(b, events, n, &a))
        rc = slh_error_set(err, SLH_ENOMEM, "spool %s: import: out of memory",
                           pg->where);
    else /* committed on disk, whatever the session's role */
        rc = slh_pg_begin(pg, "import", SLH_PG_SYNC_ON, &own, err);
    if (rc == SLH_OK)
        rc = slh_pg_exec(pg, "import", import_sql, &a, &r, err);
    rc = slh_pg_end(pg, own, rc, err);
    if (rc == SLH_OK && n_new != NULL)
        *n_new = (size_t)slh_pg_i64(r, 0, 0);
    PQclear(r);
    for (size_t k = 0; k < EV_N + ROW_N; k++)
        slh_pg_buf_free(&b[k]);
    return rc;
}

/* store_pg_events.c: reading stored events with their delivery rows, and
 * queueing a window of them again. */
#include "store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The conditions on an event's rows ($5 dest, $6 states, $7 retrying,
 * $8 every destination: its rows through the primary key). */
#define ROWS_WANTED                                                            \
    " AND (($5::text IS NULL AND $6::integer = 0 AND NOT $7::boolean)"         \
    " OR EXISTS (SELECT 1 FROM slhook_delivery d"                              \
    " WHERE d.dest = ANY($8::text[]) AND d.seq = w.seq"                        \
    " AND ($5 IS NULL OR d.dest = $5)"                                         \
    " AND ($6 = 0 OR ($6 >> d.state::integer) & 1 = 1)"                        \
    " AND (NOT $7 OR (d.state = 0 AND d.attempts > 0"                          \
    " AND d.last_error IS NOT NULL))))"

/* The same conditions as a semi-join, for a list that has some: planned
 * with the values, each state's test folds to d.state = N, which
 * slhook_delivery_due finds, and the planner may read the rows of a rare
 * state (dead letters, retrying ones) first and then their events, where
 * under ROWS_WANTED's OR it must read events newest first until enough
 * match: every event of a big spool when none does. */
#define ROWS_EXIST                                                             \
    " AND EXISTS (SELECT 1 FROM slhook_delivery d"                             \
    " WHERE d.dest = ANY($8::text[]) AND d.seq = w.seq"                        \
    " AND ($5::text IS NULL OR d.dest = $5)"                                   \
    " AND ($6::integer = 0 OR (($6 & 1) = 1 AND d.state = 0)"                  \
    " OR (($6 & 2) = 2 AND d.state = 1) OR (($6 & 4) = 4 AND d.state = 2))"    \
    " AND (NOT $7::boolean OR (d.state = 0 AND d.attempts > 0"                 \
    " AND d.last_error IS NOT NULL)))"

/* The event's MessageId is m, a text parameter, or m is NULL. */
#define MESSAGE_IS(m)                                                          \
    "(" m "::text IS NULL OR message_id = " m " OR (message_id IS NULL"        \
    " AND (body::jsonb ->> 'MessageId') = " m "))"

/* Newest first in the window ($1, $2), of a Type in any case ($3), a
 * MessageId ($4, through its index, and the bodies of the events whose
 * MessageId is not read yet, through theirs: the statement is planned
 * with the values, so a NULL condition folds away), the rows' conditions,
 * up to $9. list_sql for no row conditions (ROWS_WANTED folds to true),
 * list_rows_sql for some. */
#define LIST_HEAD                                                              \
    "SELECT seq, id, type, tracking, at, received, body FROM slhook_event w"   \
    " WHERE received >= $1 AND received < $2"                                  \
    " AND ($3::text IS NULL OR lower(type) = lower($3))"                       \
    " AND " MESSAGE_IS("$4")
#define LIST_TAIL " ORDER BY received DESC, seq DESC LIMIT $9"
static const char list_sql[] = LIST_HEAD ROWS_WANTED LIST_TAIL;
static const char list_rows_sql[] = LIST_HEAD ROWS_EXIST LIST_TAIL;

/* An Address ($10): no index has it (one would cost every receive a
 * write), so the newest $11 events of the window are read, bodies and
 * all. */
static const char list_address_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM"
    " (SELECT * FROM slhook_event WHERE received >= $1 AND received < $2"
    " ORDER BY received DESC, seq DESC LIMIT $11) w"
    " WHERE lower(body::jsonb ->> 'Address') = lower($10)"
    " AND ($3::text IS NULL OR lower(type) = lower($3))"
    " AND " MESSAGE_IS("$4") ROWS_WANTED
    " ORDER BY received DESC, seq DESC LIMIT $9";

/* The rows of the events $2 for the destinations $1, in destination byte
 * order (the column's collation is "C"). */
static const char rows_sql[] =
    "SELECT seq, dest, state, attempts, last_status, last_error, due, done"
    " FROM slhook_delivery WHERE dest = ANY($1::text[])"
    " AND seq = ANY($2::bigint[]) ORDER BY seq, dest";

/* Row i of an event statement's result into *ev. */
static enum slh_err
read_event(const PGresult *r, int i, struct slh_store_event *ev,
           struct slh_error *err)
{
    memset(ev, 0, sizeof(*ev));
    ev->seq = slh_pg_i64(r, i, 0);
    snprintf(ev->id, sizeof(ev->id), "%s", PQgetvalue(r, i, 1));
    ev->type = strdup(PQgetvalue(r, i, 2));
    ev->tracking = (int)slh_pg_i64(r, i, 3);
    ev->at = slh_pg_i64(r, i, 4);
    ev->received = slh_pg_i64(r, i, 5);
    ev->body = strdup(PQgetvalue(r, i, 6));
    ev->rows = calloc(1, sizeof(*ev->rows)); /* grown by add_row */
    if (ev->type == NULL || ev->body == NULL || ev->rows == NULL) {
        slh_store_event_free(ev);
        return slh_error_set(err, SLH_ENOMEM, "events: out of memory");
    }
    return SLH_OK;
}

/* Row i of rows_sql's result added to ev's rows. */
static enum slh_err
add_row(const PGresult *r, int i, struct slh_store_event *ev,
        struct slh_error *err)
{
    struct slh_store_row *rows =
        realloc(ev->rows, (ev->n_rows + 1) * sizeof(*rows));
    struct slh_store_row *row;

    if (rows == NULL)
        return slh_error_set(err, SLH_ENOMEM, "events: out of memory");
    ev->rows = rows;
    row = &rows[ev->n_rows];
    memset(row, 0, sizeof(*row));
    row->dest = strdup(PQgetvalue(r, i, 1));
    if (row->dest == NULL)
        return slh_error_set(err, SLH_ENOMEM, "events: out of memory");
    ev->n_rows++;
    row->state = (int)slh_pg_i64(r, i, 2);
    row->attempts = (int)slh_pg_i64(r, i, 3);
    row->last_status = (int)slh_pg_i64(r, i, 4);
    snprintf(row->last_error, sizeof(row->last_error), "%s",
             PQgetvalue(r, i, 5));
    slh_store_utf8_mend(row->last_error);
    row->due = slh_pg_i64(r, i, row->state == SLH_PENDING ? 6 : 7);
    row->revived = row->state == SLH_PENDING ? slh_pg_i64(r, i, 7) : 0;
    row->is_retrying =
        row->state == SLH_PENDING && row->attempts > 0 && !PQgetisnull(r, i, 5);
    return SLH_OK;
}

/* Every delivery row of the n events ev, for the destinations dests (an
 * array literal). */
static enum slh_err
read_rows(struct slh_pg *pg, const char *dests, struct slh_store_event *ev,
          size_t n, struct slh_error *err)
{
    struct slh_pg_buf seqs = {0};
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;
    size_t k = 0;

    slh_pg_arr_open(&seqs);
    for (size_t i = 0; i < n; i++)
        slh_pg_arr_i64(&seqs, ev[i].seq);
    slh_pg_arg_text(&a, dests);
    slh_pg_arg_text(&a, slh_pg_arr_close(&seqs));
    rc = a.v[1] == NULL ? slh_error_set(err, SLH_ENOMEM, "out of memory")
                        : slh_pg_exec(pg, "events", rows_sql, &a, &r, err);
    for (int i = 0; rc == SLH_OK && i < PQntuples(r); i++) {
        int64_t seq = slh_pg_i64(r, i, 0);
        for (k = 0; k < n && ev[k].seq != seq; k++)
            ;
        if (k < n)
            rc = add_row(r, i, &ev[k], err);
    }
    PQclear(r);
    slh_pg_buf_free(&seqs);
    return rc;
}

/* f's parameters of list_sql and list_address_sql. */
static void
list_args(struct slh_pg_args *a, const struct slh_store_filter *f,
          const char *dests)
{
    size_t limit = f->limit > 0 ? f->limit : SLH_STORE_LIST_LIMIT;

    slh_pg_arg_i64(a, f->since > 0 ? f->since : INT64_MIN);
    slh_pg_arg_i64(a, f->until > 0 ? f->until : INT64_MAX);
    slh_pg_arg_text(a, f->type);
    slh_pg_arg_text(a, f->message_id);
    slh_pg_arg_text(a, f->dest);
    slh_pg_arg_i64(a, (int64_t)f->states);
    slh_pg_arg_text(a, f->is_retrying ? "true" : "false");
    slh_pg_arg_text(a, dests);
    slh_pg_arg_i64(a, (int64_t)limit);
    if (f->address == NULL)
        return;
    slh_pg_arg_text(a, f->address);
    slh_pg_arg_i64(a, f->scan > 0 ? (int64_t)f->scan : SLH_STORE_ADDRESS_SCAN);
}

/* The listed events of r into out[0..*n), with their rows. */
static enum slh_err
list_read(struct slh_pg *pg, const PGresult *r, const char *dests,
          struct slh_store_event *out, size_t *n, struct slh_error *err)
{
    enum slh_err rc = SLH_OK;

    for (int i = 0; rc == SLH_OK && i < PQntuples(r); i++) {
        rc = read_event(r, i, &out[*n], err);
        *n += rc == SLH_OK;
    }
    if (rc == SLH_OK && *n > 0)
        rc = read_rows(pg, dests, out, *n, err);
    return rc;
}

/* The statement that lists f's events. */
static const char *
list_sql_for(const struct slh_store_filter *f)
{
    if (f->address != NULL)
        return list_address_sql;
    if (f->dest != NULL || f->states != 0 || f->is_retrying)
        return list_rows_sql;
    return list_sql;
}

/* The events sql lists, its parameters filled in by fill(a, dests, arg)
 * (dests the destinations' array literal), with their rows: *events a
 * new array, room for limit. */
static enum slh_err
read_list(struct slh_pg *pg, const char *sql, size_t limit,
          void (*fill)(struct slh_pg_args *a, const char *dests,
                       const void *arg),
          const void *arg, struct slh_store_event **events, size_t *n,
          struct slh_error *err)
{
    struct slh_store_event *out = calloc(limit, sizeof(*out));
    struct slh_pg_buf b = {0};
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    char **dests = NULL;
    size_t n_dests = 0;
    enum slh_err rc =
        out != NULL ? slh_pg_dests(&pg->base, &dests, &n_dests, err)
                    : slh_error_set(err, SLH_ENOMEM, "events: out of memory");

    if (rc == SLH_OK && slh_pg_arr_strings(&b, dests, n_dests) == NULL)
        rc = slh_error_set(err, SLH_ENOMEM, "events: out of memory");
    fill(&a, b.p, arg);
    if (rc == SLH_OK)
        rc = slh_pg_exec(pg, "events", sql, &a, &r, err);
    if (rc == SLH_OK)
        rc = list_read(pg, r, b.p, out, n, err);
    PQclear(r);
    slh_pg_buf_free(&b);
    slh_store_dests_free(dests, n_dests);
    return slh_store_events_out(out, n, rc, events);
}

static void
fill_filter(struct slh_pg_args *a, const char *dests, const void *arg)
{
    list_args(a, arg, dests);
}

enum slh_err
slh_pg_events(struct slh_store *st, const struct slh_store_filter *f,
              struct slh_store_event **events, size_t *n, struct slh_error *err)
{
    return read_list(slh_pg(st), list_sql_for(f),
                     f->limit > 0 ? f->limit : SLH_STORE_LIST_LIMIT,
                     fill_filter, f, events, n, err);
}

/* An export's events, after a seq ($1) in seq order, up to $2: the
 * primary key's range. */
static const char export_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM slhook_event"
    " WHERE seq > $1 ORDER BY seq LIMIT $2";

/* The events and their rows read in two statements, from one snapshot. */
static const char snapshot_sql[] =
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ";

/* export_sql's parameters: arg is {after, max}. */
static void
fill_export(struct slh_pg_args *a, const char *dests, const void *arg)
{
    const int64_t *after_max = arg;

    (void)dests;
    slh_pg_arg_i64(a, after_max[0]);
    slh_pg_arg_i64(a, after_max[1]);
}

enum slh_err
slh_pg_export(struct slh_store *st, int64_t after, size_t max,
              struct slh_store_event **events, size_t *n, struct slh_error *err)
{
    struct slh_pg *pg = slh_pg(st);
    int64_t after_max[2] = {after, (int64_t)max};
    bool own = false;
    enum slh_err rc =
        slh_pg_begin(pg, "export", SLH_PG_SYNC_SESSION, &own, err);

    if (rc == SLH_OK && own)
        rc = slh_pg_exec(pg, "export", snapshot_sql, NULL, NULL, err);
    if (rc == SLH_OK)
        rc = read_list(pg, export_sql, max, fill_export, after_max, events, n,
                       err);
    rc = slh_pg_end(pg, own, rc, err);
    if (rc != SLH_OK) {
        slh_store_events_free(*events, *n);
        *events = NULL;
        *n = 0;
    }
    return rc;
}

/* An id prefix: no index has ids first (store_sqlite_events.c says why),
 * so the table is read; LIMIT 2 tells one from ambiguous. */
static const char find_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM slhook_event"
    " WHERE starts_with(id, $1) LIMIT 2";

enum slh_err
slh_pg_event(struct slh_store *st, const char *id, struct slh_store_event *ev,
             struct slh_error *err)
{
    char **dests = NULL;
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_buf b = {0};
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    size_t n_dests = 0, one = 0;
    enum slh_err rc = slh_pg_dests(st, &dests, &n_dests, err);

    slh_pg_arg_text(&a, id);
    if (rc == SLH_OK)
        rc = slh_pg_exec(pg, "event", find_sql, &a, &r, err);
    if (rc == SLH_OK && PQntuples(r) == 0)
        rc = slh_error_set(err, SLH_ENOTFOUND, "no event %s", id);
    else if (rc == SLH_OK && PQntuples(r) > 1)
        rc = slh_error_set(err, SLH_EINVAL,
                           "event id %s is ambiguous: more than one event "
                           "has it",
                           id);
    if (rc == SLH_OK && slh_pg_arr_strings(&b, dests, n_dests) == NULL)
        rc = slh_error_set(err, SLH_ENOMEM, "event: out of memory");
    if (rc == SLH_OK)
        rc = list_read(pg, r, b.p, ev, &one, err);
    if (rc != SLH_OK)
        slh_store_event_free(ev);
    PQclear(r);
    slh_store_dests_free(dests, n_dests);
    slh_pg_buf_free(&b);
    return rc;
}

/* A chunk of the window, oldest first, after the last one's (received,
 * seq), each event with its row for the destination $5, if any. */
static const char window_sql[] =
    "SELECT e.seq, e.type, e.tracking, e.received, d.state,"
    " d.owner IS NOT NULL FROM slhook_event e"
    " LEFT JOIN slhook_delivery d ON d.dest = $5 AND d.seq = e.seq"
    " WHERE e.received >= $1 AND e.received < $2"
    " AND (e.received, e.seq) > ($3, $4)"
    " ORDER BY e.received, e.seq LIMIT $6";
/* A row claimed by an owner and not finished is in flight: left alone,
 * also if it was claimed since the chunk was read. */
static const char requeue_sql[] =
    "UPDATE slhook_delivery SET state = 0, due = $3, attempts = 0, done = $3,"
    " owner = NULL WHERE dest = $1 AND seq = ANY($2::bigint[])"
    " AND NOT (state = 0 AND owner IS NOT NULL)";
static const char backfill_sql[] =
    "INSERT INTO slhook_delivery (dest, seq, state, due, attempts, done)"
    " SELECT $1, s, 0, $3, 0, $3 FROM unnest($2::bigint[]) AS s"
    " ON CONFLICT DO NOTHING";

/* Where a replay is: the window's events after (received, seq) are left. */
struct replay_at {
    int64_t received;
    int64_t seq;
    size_t count; /* rows queued (or, dry, that would be) so far */
};

/* Which of the chunk r's events r wants queued: seqs with a row into
 * again, without one into fresh. */
static void
requeue_pick(const struct slh_store_replay *rp, const PGresult *r,
             struct replay_at *at, struct slh_pg_buf *again,
             struct slh_pg_buf *fresh)
{
    unsigned states = rp->states != 0 ? rp->states : SLH_STORE_REPLAY_ANY;

    for (int i = 0; i < PQntuples(r); i++) {
        bool has_row = !PQgetisnull(r, i, 4);
        int state = (int)slh_pg_i64(r, i, 4);
        unsigned bit = has_row ? 1u << state : SLH_STORE_NO_ROW;
        bool is_leased = has_row && state == SLH_PENDING &&
                         strcmp(PQgetvalue(r, i, 5), "t") == 0;

        at->seq = slh_pg_i64(r, i, 0);
        at->received = slh_pg_i64(r, i, 3);
        if ((states & bit) == 0 || is_leased ||
            !slh_store_replay_wants(rp, PQgetvalue(r, i, 1),
                                    (int)slh_pg_i64(r, i, 2)))
            continue;
        slh_pg_arr_i64(has_row ? again : fresh, at->seq);
        if (rp->is_dry_run)
            at->count++;
    }
}

/* Runs requeue_sql or backfill_sql for the seqs s; at->count adds up. */
static enum slh_err
requeue_write(struct slh_pg *pg, const char *sql, const char *dest,
              struct slh_pg_buf *s, int64_t now_ms, struct replay_at *at,
              struct slh_error *err)
{
    struct slh_pg_args a = {0};
    size_t n = 0;
    enum slh_err rc;

    if (s->len <= 1) /* "{": none */
        return SLH_OK;
    slh_pg_arg_text(&a, dest);
    slh_pg_arg_text(&a, slh_pg_arr_close(s));
    slh_pg_arg_i64(&a, now_ms);
    if (a.v[1] == NULL)
        return slh_error_set(err, SLH_ENOMEM, "requeue: out of memory");
    rc = slh_pg_write(pg, "requeue", sql, &a, &n, err);
    at->count += n;
    return rc;
}

/* One chunk of the window after at: *n_seen gets how many events it went
 * through. Its own transaction (a dry run writes nothing). */
static enum slh_err
requeue_chunk(struct slh_pg *pg, const struct slh_store_replay *rp,
              int64_t now_ms, struct replay_at *at, size_t *n_seen,
              struct slh_error *err)
{
    struct slh_pg_buf again = {0}, fresh = {0};
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    size_t before = at->count;
    bool own = false;
    enum slh_err rc =
        slh_pg_begin(pg, "requeue", SLH_PG_SYNC_SESSION, &own, err);

    slh_pg_arg_i64(&a, rp->since > 0 ? rp->since : INT64_MIN);
    slh_pg_arg_i64(&a, rp->until > 0 ? rp->until : INT64_MAX);
    slh_pg_arg_i64(&a, at->received);
    slh_pg_arg_i64(&a, at->seq);
    slh_pg_arg_text(&a, rp->dest->name);
    slh_pg_arg_i64(&a, SLH_STORE_REPLAY_CHUNK);
    if (rc == SLH_OK)
        rc = slh_pg_exec(pg, "requeue", window_sql, &a, &r, err);
    *n_seen = rc == SLH_OK ? (size_t)PQntuples(r) : 0;
    slh_pg_arr_open(&again);
    slh_pg_arr_open(&fresh);
    if (rc == SLH_OK)
        requeue_pick(rp, r, at, &again, &fresh);
    if (rc == SLH_OK && !rp->is_dry_run)
        rc = requeue_write(pg, requeue_sql, rp->dest->name, &again, now_ms, at,
                           err);
    if (rc == SLH_OK && !rp->is_dry_run)
        rc = requeue_write(pg, backfill_sql, rp->dest->name, &fresh, now_ms, at,
                           err);
    rc = slh_pg_end(pg, own, rc, err);
    if (rc != SLH_OK)
        at->count = before; /* rolled back */
    PQclear(r);
    slh_pg_buf_free(&again);
    slh_pg_buf_free(&fresh);
    return rc;
}

enum slh_err
slh_pg_requeue(struct slh_store *st, const struct slh_store_replay *r,
               int64_t now_ms, size_t *n, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct replay_at at = {INT64_MIN, INT64_MIN, 0};
    size_t seen = SLH_STORE_REPLAY_CHUNK;
    enum slh_err rc = SLH_OK;

    while (rc == SLH_OK && seen == SLH_STORE_REPLAY_CHUNK)
        rc = requeue_chunk(pg, r, now_ms, &at, &seen, err);
    if (n != NULL)
        *n = at.count;
    return rc;
}

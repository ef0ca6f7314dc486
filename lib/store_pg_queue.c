/* store_pg_queue.c: the delivering side: claims and their leases,
 * outcomes, rows given back, dead letters revived, the purge, and what a
 * deliverer polls to know when to look again. */
#include "store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char next_dest_sql[] =
    "SELECT min(due) FROM slhook_delivery WHERE dest = $1 AND state = 0";
/* Every destination's through its index, not a scan of every row. */
static const char next_all_sql[] =
    "WITH RECURSIVE " SLH_PG_DESTS " SELECT min(m) FROM d,"
    " LATERAL (SELECT min(due) AS m FROM slhook_delivery x"
    " WHERE x.dest = d.name AND x.state = 0) l WHERE d.name IS NOT NULL";

enum slh_err
slh_pg_next_due(struct slh_store *st, const char *dest, int64_t *due,
                struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;

    *due = INT64_MAX;
    if (dest != NULL)
        slh_pg_arg_text(&a, dest);
    rc = slh_pg_exec(pg, "next due",
                     dest != NULL ? next_dest_sql : next_all_sql, &a, &r, err);
    if (rc == SLH_OK && !PQgetisnull(r, 0, 0))
        *due = slh_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Row i of claim_sql's result into *c. */
static enum slh_err
claim_row(const PGresult *r, int i, struct slh_claim *c, struct slh_error *err)
{
    size_t len = (size_t)PQgetlength(r, i, 5);

    memset(c, 0, sizeof(*c));
    c->seq = slh_pg_i64(r, i, 0);
    c->attempts = (int)slh_pg_i64(r, i, 1);
    c->revived = slh_pg_i64(r, i, 2);
    snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(r, i, 3));
    c->received = slh_pg_i64(r, i, 4);
    c->body = malloc(len + 1);
    if (c->body == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory claiming");
    memcpy(c->body, PQgetvalue(r, i, 5), len);
    c->body[len] = '\0';
    c->body_len = len;
    return SLH_OK;
}

/*
 * One statement, one round trip: the due rows locked, skipping those
 * another deliverer's claim holds (SKIP LOCKED: no row is claimed twice,
 * no claimer waits for another); leased ($4) to the owner ($5) with an
 * attempt counted; read with their events; and the earliest due after the
 * claim, from the statement's snapshot: the rows not claimed, and the
 * lease of those claimed. The first row always comes (n), with NULLs when
 * nothing was claimed. By due alone, as SQLite's claim and store.h: with
 * seq too the index (dest, state, due) no longer gives the order, and
 * every due row was sorted before the limit (22 ms with 20,000 due).
 * The claimed rows are updated where the lock found them (a TID scan of
 * their ctids, which the lock keeps: a plan no statistics change), not by
 * a join on seq: with young statistics the planner hashed every row of the
 * destination for each claim (5,000 rows, 2-4 ms a claim under load:
 * BENCHMARKS.md, issue 18). A row whose newest version the lock found
 * after the statement's snapshot was taken is not in that snapshot: the
 * TID scan leaves it, unclaimed, for the next claim.
 */
static const char claim_sql[] =
    "WITH c AS (SELECT ctid AS t, seq, due FROM slhook_delivery"
    " WHERE dest = $1 AND state = 0 AND due <= $2"
    " ORDER BY due LIMIT $3 FOR UPDATE SKIP LOCKED),"
    " u AS (UPDATE slhook_delivery d SET due = $4::bigint,"
    " attempts = d.attempts + 1, owner = $5::bigint FROM c"
    " WHERE d.ctid = ANY(ARRAY(SELECT t FROM c)) AND d.ctid = c.t"
    " RETURNING d.seq, d.attempts, d.done, c.due AS was),"
    " n AS (SELECT LEAST((SELECT min(due) FROM slhook_delivery x"
    " WHERE x.dest = $1 AND x.state = 0"
    " AND x.seq NOT IN (SELECT seq FROM c)),"
    " (SELECT $4::bigint FROM c LIMIT 1)) AS next)"
    " SELECT u.seq, u.attempts, u.done, e.id, e.received, e.body, n.next"
    " FROM n LEFT JOIN (u JOIN slhook_event e ON e.seq = u.seq) ON true"
    " ORDER BY u.was, u.seq";

enum slh_err
slh_pg_claim(struct slh_store *st, const char *dest, int64_t owner,
             int64_t now_ms, int64_t lease_ms, size_t max,
             struct slh_claim *claims, size_t *n, int64_t *next_due,
             struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    size_t got = 0;
    enum slh_err rc;

    slh_pg_arg_text(&a, dest);
    slh_pg_arg_i64(&a, now_ms);
    slh_pg_arg_i64(&a, (int64_t)(max > INT32_MAX ? INT32_MAX : max));
    slh_pg_arg_i64(&a, now_ms + lease_ms);
    if (owner != 0)
        slh_pg_arg_i64(&a, owner);
    else
        slh_pg_arg_text(&a, NULL);
    rc = slh_pg_exec(pg, "claim", claim_sql, &a, &r, err);
    for (int i = 0; rc == SLH_OK && i < PQntuples(r) && got < max; i++) {
        if (PQgetisnull(r, i, 0))
            continue;
        rc = claim_row(r, i, &claims[got], err);
        got += rc == SLH_OK;
    }
    if (rc == SLH_OK && next_due != NULL && !PQgetisnull(r, 0, 6))
        *next_due = slh_pg_i64(r, 0, 6);
    PQclear(r);
    if (rc != SLH_OK) {
        /* What the statement leased stays leased until it ends: the
         * lease covers it, as a deliverer that died would leave it. */
        for (size_t i = 0; i < got; i++)
            slh_store_claim_free(&claims[i]);
        got = 0;
    }
    *n = got;
    return rc;
}

/* The outcomes as arrays, in one statement; a row no longer pending, or
 * whose seq names another event now, or that no longer names the
 * outcome's owner (taken back while that one's connection was down:
 * store_pg.h), is left as it is (store.h). +d.state keeps the planner on
 * the primary key: with young statistics it took slhook_delivery_due and
 * read every pending row of the destination for each outcome (263 ms for
 * 23 outcomes with 20,000 pending: BENCHMARKS.md, issue 18). */
static const char finish_sql[] =
    "UPDATE slhook_delivery d SET state = o.state, due = o.due,"
    " last_status = o.status, last_error = o.error, owner = NULL,"
    " done = CASE WHEN o.state = 0 THEN d.done ELSE $9 END"
    " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::smallint[],"
    " $5::bigint[], $6::integer[], $7::text[], $8::bigint[])"
    " AS o(dest, seq, id, state, due, status, error, owner)"
    " WHERE d.dest = o.dest AND d.seq = o.seq AND +d.state = 0"
    " AND (o.owner = 0 OR d.owner = o.owner)"
    " AND o.id = (SELECT e.id FROM slhook_event e WHERE e.seq = o.seq)";

/* finish_sql's arrays, $1..$8. */
#define OUTCOME_ARRAYS 8

/* Adds outcome o, recorded at now_ms, to the arrays b[0..OUTCOME_ARRAYS). */
static void
add_outcome(struct slh_pg_buf *b, const struct slh_outcome *o, int64_t now_ms)
{
    char error[SLH_STORE_ERROR_LEN];

    snprintf(error, sizeof(error), "%s", o->error);
    slh_store_utf8_mend(error);
    slh_pg_arr_text(&b[0], o->dest);
    slh_pg_arr_i64(&b[1], o->seq);
    slh_pg_arr_text(&b[2], o->id);
    slh_pg_arr_i64(&b[3], o->state);
    slh_pg_arr_i64(&b[4], o->state == SLH_PENDING ? o->due : now_ms);
    if (o->status > 0)
        slh_pg_arr_i64(&b[5], o->status);
    else
        slh_pg_arr_text(&b[5], NULL);
    slh_pg_arr_text(&b[6], error[0] != '\0' ? error : NULL);
    slh_pg_arr_i64(&b[7], o->owner);
}

enum slh_err
slh_pg_finish(struct slh_store *st, const struct slh_outcome *o, size_t n,
              int64_t now_ms, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_buf b[OUTCOME_ARRAYS];
    struct slh_pg_args a = {0};
    bool is_oom = false;
    enum slh_err rc;

    memset(b, 0, sizeof(b));
    for (size_t k = 0; k < OUTCOME_ARRAYS; k++)
        slh_pg_arr_open(&b[k]);
    for (size_t i = 0; i < n; i++)
        add_outcome(b, &o[i], now_ms);
    for (size_t k = 0; k < OUTCOME_ARRAYS; k++) {
        is_oom |= slh_pg_arr_close(&b[k]) == NULL;
        slh_pg_arg_text(&a, b[k].p);
    }
    slh_pg_arg_i64(&a, now_ms);
    rc = is_oom ? slh_error_set(err, SLH_ESTORE, "finish: out of memory")
                : slh_pg_write(pg, "finish", finish_sql, &a, NULL, err);
    for (size_t k = 0; k < OUTCOME_ARRAYS; k++)
        slh_pg_buf_free(&b[k]);
    return rc;
}

/* +state: the primary key, as finish_sql. */
static const char unclaim_sql[] =
    "UPDATE slhook_delivery SET due = $3,"
    " attempts = greatest(attempts - 1, 0), owner = NULL"
    " WHERE dest = $1 AND seq = ANY($2::bigint[]) AND +state = 0";

enum slh_err
slh_pg_unclaim(struct slh_store *st, const char *dest, const int64_t *seqs,
               size_t n, int64_t now_ms, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_buf b = {0};
    struct slh_pg_args a = {0};
    enum slh_err rc;

    slh_pg_arr_open(&b);
    for (size_t i = 0; i < n; i++)
        slh_pg_arr_i64(&b, seqs[i]);
    slh_pg_arg_text(&a, dest);
    slh_pg_arg_text(&a, slh_pg_arr_close(&b));
    slh_pg_arg_i64(&a, now_ms);
    rc = a.v[1] == NULL
             ? slh_error_set(err, SLH_ESTORE, "unclaim: out of memory")
             : slh_pg_write(pg, "unclaim", unclaim_sql, &a, NULL, err);
    slh_pg_buf_free(&b);
    return rc;
}

static const char retry_sql[] =
    "UPDATE slhook_delivery SET state = 0, due = $2, attempts = 0, done = $2"
    " WHERE dest = $1 AND state = 2";

enum slh_err
slh_pg_retry(struct slh_store *st, const char *dest, int64_t now_ms, size_t *n,
             struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_args a = {0};
    enum slh_err rc;

    slh_pg_arg_text(&a, dest);
    slh_pg_arg_i64(&a, now_ms);
    rc = slh_pg_write(pg, "retry", retry_sql, &a, n, err);
    if (rc != SLH_OK && n != NULL)
        *n = 0;
    return rc;
}

/* A finished row's due is its done (finish, expire): the due index finds
 * one destination ($3) old delivered rows without reading the others. The
 * chunk's seqs as an array, found again through the primary key: as
 * "seq IN (...)" the planner joined them to a hash of every row of the
 * table, each chunk (issue 18: 0.3 s a chunk on a million rows, against
 * 0.03 s). The conditions again, for a row changed meanwhile. */
static const char purge_delivered_sql[] =
    "DELETE FROM slhook_delivery WHERE dest = $3 AND state = 1 AND done < $1"
    " AND seq = ANY(ARRAY(SELECT seq FROM slhook_delivery WHERE dest = $3"
    " AND state = 1 AND due < $1 AND done < $1 LIMIT $2))";
/* An event's rows are found through the primary key, one destination at a
 * time ($3: every one that had rows): no index by seq alone to keep. OFFSET
 * 0 keeps the NOT EXISTS a lookup per old event, which stops at the
 * chunk's end: made an anti-join it hashed every row of the table, each
 * chunk, even when nothing was old (0.5 s on a million rows, against
 * 0.006 s; 0.035 s a chunk of 5,000). */
static const char purge_events_sql[] =
    "DELETE FROM slhook_event WHERE seq = ANY(ARRAY(SELECT seq"
    " FROM slhook_event e WHERE received < $1"
    " AND NOT EXISTS (SELECT 1 FROM slhook_delivery d"
    " WHERE d.dest = ANY($3::text[]) AND d.seq = e.seq OFFSET 0) LIMIT $2))";

/* Runs the chunked DELETE sql ($1 cutoff, $2 chunk, $3 what), each chunk a
 * transaction of its own, until a chunk comes short; *total adds up the
 * rows deleted. */
static enum slh_err
purge_chunks(struct slh_pg *pg, const char *sql, int64_t cutoff_ms,
             const char *what, size_t *total, struct slh_error *err)
{
    size_t changed;
    enum slh_err rc;

    do {
        struct slh_pg_args a = {0};

        changed = 0;
        slh_pg_arg_i64(&a, cutoff_ms);
        slh_pg_arg_i64(&a, SLH_PG_PURGE_CHUNK);
        slh_pg_arg_text(&a, what);
        rc = slh_pg_write(pg, "purge", sql, &a, &changed, err);
        *total += changed;
    } while (rc == SLH_OK && changed == SLH_PG_PURGE_CHUNK);
    return rc;
}

enum slh_err
slh_pg_purge(struct slh_store *st, int64_t cutoff_ms, size_t *n,
             struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_buf b = {0};
    char **dests = NULL;
    size_t n_dests = 0, deliveries = 0, events = 0;
    enum slh_err rc = slh_pg_dests(st, &dests, &n_dests, err);

    for (size_t i = 0; rc == SLH_OK && i < n_dests; i++)
        rc = purge_chunks(pg, purge_delivered_sql, cutoff_ms, dests[i],
                          &deliveries, err);
    if (rc == SLH_OK && slh_pg_arr_strings(&b, dests, n_dests) == NULL)
        rc = slh_error_set(err, SLH_ENOMEM, "purge: out of memory");
    if (rc == SLH_OK)
        rc = purge_chunks(pg, purge_events_sql, cutoff_ms, b.p, &events, err);
    slh_pg_buf_free(&b);
    slh_store_dests_free(dests, n_dests);
    if (n != NULL)
        *n = events;
    return rc;
}

/*
 * The notifications of other backends' changes (store_pg.h), counted. An
 * empty query first: a commit another process saw end has signalled our
 * backend already, and the backend sends what it was signalled before it
 * answers, so the count includes it.
 */
int64_t
slh_pg_data_version(struct slh_store *st)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    PGnotify *note;
    PGresult *r;

    if (slh_pg_ready(pg, NULL) != SLH_OK)
        return 0;
    if (!pg->is_listening) {
        if (slh_pg_exec(pg, NULL, "LISTEN slhook", NULL, NULL, NULL) != SLH_OK)
            return 0;
        pg->is_listening = true;
    }
    r = PQexec(pg->conn, "");
    PQclear(r);
    (void)PQconsumeInput(pg->conn);
    while ((note = PQnotifies(pg->conn)) != NULL) {
        if (note->be_pid != PQbackendPID(pg->conn))
            pg->version++;
        PQfreemem(note);
    }
    return pg->version;
}

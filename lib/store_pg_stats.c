/* store_pg_stats.c: what `slhook status` and the operator's page show (a
 * destination's numbers, the destinations, the minutes), and each
 * destination's breaker and pace with the sweep of an open one's rows. */
#include "store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One statement, one snapshot: the numbers agree with each other. Pending
 * and dead rows are counted in the due index, delivered ones are the
 * tally's. The latest failure still standing: a dead row's done is when
 * it died, a pending row's due a backoff after its failure. */
static const char stats_sql[] =
    "SELECT (SELECT count(*) FROM slhook_delivery"
    "  WHERE dest = $1 AND state = 0),"
    " (SELECT count(*) FROM slhook_delivery WHERE dest = $1 AND state = 0"
    "  AND attempts > 0 AND last_error IS NOT NULL),"
    " (SELECT count(*) FROM slhook_delivery WHERE dest = $1 AND state = 2),"
    " (SELECT coalesce(sum(delivered), 0) FROM slhook_tally WHERE dest = $1),"
    " (SELECT min(e.received) FROM slhook_delivery d"
    "  JOIN slhook_event e ON e.seq = d.seq WHERE d.dest = $1"
    "  AND d.state = 0),"
    " l.last_status, l.last_error"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT last_status, last_error"
    "  FROM slhook_delivery WHERE dest = $1 AND state IN (0, 2)"
    "  AND last_error IS NOT NULL"
    "  ORDER BY CASE state WHEN 2 THEN done ELSE due END DESC LIMIT 1) l"
    " ON true";

enum slh_err
slh_pg_stats(struct slh_store *st, const char *dest, struct slh_store_stats *s,
             struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;

    slh_pg_arg_text(&a, dest);
    rc = slh_pg_exec(pg, "status", stats_sql, &a, &r, err);
    if (rc == SLH_OK) {
        s->pending = slh_pg_i64(r, 0, 0);
        s->retrying = slh_pg_i64(r, 0, 1);
        s->dead = slh_pg_i64(r, 0, 2);
        s->delivered = slh_pg_i64(r, 0, 3);
        s->oldest_pending = slh_pg_i64(r, 0, 4);
        s->last_status = (int)slh_pg_i64(r, 0, 5);
        snprintf(s->last_error, sizeof(s->last_error), "%s",
                 PQgetvalue(r, 0, 6));
        slh_store_utf8_mend(s->last_error);
    }
    PQclear(r);
    if (rc != SLH_OK)
        memset(s, 0, sizeof(*s));
    return rc;
}

static const char dests_sql[] =
    "WITH RECURSIVE " SLH_PG_DESTS " SELECT name FROM d WHERE name IS NOT NULL";

enum slh_err
slh_pg_dests(struct slh_store *st, char ***names, size_t *n,
             struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    PGresult *r = NULL;
    char **list = NULL;
    size_t count = 0;
    int rows = 0;
    enum slh_err rc;

    rc = slh_pg_exec(pg, "destinations", dests_sql, NULL, &r, err);
    if (rc == SLH_OK)
        rows = PQntuples(r);
    if (rows > 0 && (list = calloc((size_t)rows, sizeof(*list))) == NULL)
        rc = slh_error_set(err, SLH_ENOMEM, "destinations: out of memory");
    for (int i = 0; rc == SLH_OK && list != NULL && i < rows; i++) {
        list[count] = strdup(PQgetvalue(r, i, 0));
        if (list[count++] == NULL)
            rc = slh_error_set(err, SLH_ENOMEM, "destinations: out of memory");
    }
    PQclear(r);
    if (rc != SLH_OK) {
        slh_store_dests_free(list, count);
        return rc;
    }
    *names = list;
    *n = count;
    return SLH_OK;
}

enum slh_err
slh_pg_throttle_get(struct slh_store *st, const char *dest,
                    struct slh_throttle_state *s, struct slh_error *err)
{
    static const char throttle_sql[] =
        "SELECT failures, opened, probes, probe_at, probing, pace"
        " FROM slhook_throttle WHERE dest = $1";
    /* Inside a writer's transaction what is read stays until the task writes
     * it (store.h): the row locked, made first if there is none (then locked
     * by its insert, and read as zeros). */
    static const char throttle_lock_sql[] =
        "WITH made AS (INSERT INTO slhook_throttle VALUES"
        " ($1, 0, 0, 0, 0, false, 0) ON CONFLICT DO NOTHING)"
        " SELECT failures, opened, probes, probe_at, probing, pace"
        " FROM slhook_throttle WHERE dest = $1 FOR UPDATE";
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;

    slh_pg_arg_text(&a, dest);
    rc = slh_pg_exec(pg, "breaker",
                     pg->is_in_tx ? throttle_lock_sql : throttle_sql, &a, &r,
                     err);
    if (rc == SLH_OK && PQntuples(r) == 1) {
        s->failures = (int)slh_pg_i64(r, 0, 0);
        s->opened = slh_pg_i64(r, 0, 1);
        s->probes = (int)slh_pg_i64(r, 0, 2);
        s->probe_at = slh_pg_i64(r, 0, 3);
        s->is_probing = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
        s->pace_us = slh_pg_i64(r, 0, 5);
    }
    PQclear(r);
    return rc;
}

static const char throttle_put_sql[] =
    "INSERT INTO slhook_throttle"
    " (dest, failures, opened, probes, probe_at, probing, pace)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dest) DO UPDATE"
    " SET failures = excluded.failures, opened = excluded.opened,"
    " probes = excluded.probes, probe_at = excluded.probe_at,"
    " probing = excluded.probing, pace = excluded.pace";

enum slh_err
slh_pg_throttle_put(struct slh_store *st, const char *dest,
                    const struct slh_throttle_state *s, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_args a = {0};

    slh_pg_arg_text(&a, dest);
    slh_pg_arg_i64(&a, s->failures);
    slh_pg_arg_i64(&a, s->opened);
    slh_pg_arg_i64(&a, s->probes);
    slh_pg_arg_i64(&a, s->probe_at);
    slh_pg_arg_text(&a, s->is_probing ? "true" : "false");
    slh_pg_arg_i64(&a, s->pace_us);
    return slh_pg_write(pg, "breaker", throttle_put_sql, &a, NULL, err);
}

/* As SQLite's (store_sqlite_throttle.c): max_age from receipt or revival;
 * a row an owner holds is in flight, and its outcome decides it. */
static const char expire_sql[] =
    "UPDATE slhook_delivery d SET state = 2, due = $3, done = $3,"
    " last_error = $4 WHERE dest = $1 AND state = 0 AND owner IS NULL"
    " AND coalesce(done, 0) <= $2"
    " AND (SELECT received FROM slhook_event e WHERE e.seq = d.seq) <= $2";

enum slh_err
slh_pg_expire(struct slh_store *st, const char *dest, int64_t max_age,
              int64_t now_ms, const char *why, size_t *n, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_args a = {0};
    char error[SLH_STORE_ERROR_LEN];

    snprintf(error, sizeof(error), "%s", why);
    slh_store_utf8_mend(error);
    slh_pg_arg_text(&a, dest);
    slh_pg_arg_i64(&a, max_age < now_ms / 1000 ? now_ms - max_age * 1000
                                               : INT64_MIN);
    slh_pg_arg_i64(&a, now_ms);
    slh_pg_arg_text(&a, error);
    return slh_pg_write(pg, "expire", expire_sql, &a, n, err);
}

#define MINUTE_MS 60000

static const char received_sql[] =
    "SELECT received / 60000, count(*) FROM slhook_event"
    " WHERE received >= $1 AND received < $2 GROUP BY 1";
/* The rows reached from the window's events through the primary key
 * (store.h: no index has a row's delivery time): the window's seqs as an
 * array, which the planner cannot make a hash join that reads every row
 * of the table (issue 18: 0.1 s on a million rows, against 0.03 s). */
static const char delivered_sql[] =
    "SELECT done / 60000, count(*) FROM slhook_delivery"
    " WHERE dest = ANY($3::text[]) AND seq = ANY(ARRAY(SELECT seq"
    " FROM slhook_event WHERE received >= $1 AND received < $2))"
    " AND state = 1 AND done >= $4 AND done < $2 GROUP BY 1";

/* Adds each (minute, count) row of r to counts[minute - first]. */
static void
add_rows(const PGresult *r, int64_t first, size_t n, int64_t *counts)
{
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t m = slh_pg_i64(r, i, 0) - first;
        if (m >= 0 && (uint64_t)m < n)
            counts[m] += slh_pg_i64(r, i, 1);
    }
}

/* One of the minutes' statements: from, until, dests and since as sql
 * takes them, the rows added to counts. */
static enum slh_err
count_minutes(struct slh_pg *pg, const char *sql, int64_t from, int64_t until,
              const char *dests, int64_t since, size_t n, int64_t *counts,
              struct slh_error *err)
{
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;

    slh_pg_arg_i64(&a, from);
    slh_pg_arg_i64(&a, until);
    if (dests != NULL) {
        slh_pg_arg_text(&a, dests);
        slh_pg_arg_i64(&a, since);
    }
    rc = slh_pg_exec(pg, "minutes", sql, &a, &r, err);
    if (rc == SLH_OK)
        add_rows(r, since / MINUTE_MS, n, counts);
    PQclear(r);
    return rc;
}

enum slh_err
slh_pg_minutes(struct slh_store *st, int64_t since_ms, size_t n,
               int64_t from_ms, int64_t *received, int64_t *delivered,
               struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    int64_t since = since_ms - since_ms % MINUTE_MS;
    int64_t until = since + (int64_t)n * MINUTE_MS;
    struct slh_pg_buf b = {0};
    char **dests = NULL;
    size_t n_dests = 0;
    enum slh_err rc = slh_pg_dests(st, &dests, &n_dests, err);

    if (rc == SLH_OK)
        rc = count_minutes(pg, received_sql, since, until, NULL, since, n,
                           received, err);
    if (rc == SLH_OK && slh_pg_arr_strings(&b, dests, n_dests) == NULL)
        rc = slh_error_set(err, SLH_ENOMEM, "minutes: out of memory");
    if (rc == SLH_OK)
        rc = count_minutes(pg, delivered_sql, from_ms < since ? from_ms : since,
                           until, b.p, since, n, delivered, err);
    slh_pg_buf_free(&b);
    slh_store_dests_free(dests, n_dests);
    return rc;
}

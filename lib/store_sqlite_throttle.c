/* store_sqlite_throttle.c: each destination's breaker and pace (the
 * throttle table, store.h), and the sweep of an open breaker's rows past
 * max_age. */
#include "store_sqlite.h"

#include <stdio.h>
#include <string.h>

static const char get_sql[] =
    "SELECT failures, opened, probes, probe_at, probing, pace"
    " FROM throttle WHERE dest = ?1";
static const char put_sql[] =
    "INSERT OR REPLACE INTO throttle"
    "(dest, failures, opened, probes, probe_at, probing, pace)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

enum slh_err
slh_sqlite_throttle_get(struct slh_store *st, const char *dest,
                        struct slh_throttle_state *s, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    sqlite3_stmt *q = NULL;
    int r;

    memset(s, 0, sizeof(*s));
    if (slh_sqlite_prepare(sq, get_sql, &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "breaker", err);
    sqlite3_bind_text(q, 1, dest, -1, SQLITE_STATIC);
    r = sqlite3_step(q);
    if (r == SQLITE_ROW) {
        s->failures = sqlite3_column_int(q, 0);
        s->opened = sqlite3_column_int64(q, 1);
        s->probes = sqlite3_column_int(q, 2);
        s->probe_at = sqlite3_column_int64(q, 3);
        s->is_probing = sqlite3_column_int(q, 4) != 0;
        s->pace_us = sqlite3_column_int64(q, 5);
    }
    slh_sqlite_release(q);
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        return slh_sqlite_fail(sq, "breaker", err);
    return SLH_OK;
}

enum slh_err
slh_sqlite_throttle_put(struct slh_store *st, const char *dest,
                        const struct slh_throttle_state *s,
                        struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    sqlite3_stmt *q = NULL;
    enum slh_err rc = SLH_OK;
    bool own;

    if (slh_sqlite_begin(sq, "breaker", &own, err) != SLH_OK)
        return SLH_ESTORE;
    if (slh_sqlite_prepare(sq, put_sql, &q) != SQLITE_OK)
        return slh_sqlite_end(sq, own, slh_sqlite_fail(sq, "breaker", err),
                              err);
    sqlite3_bind_text(q, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, s->failures);
    sqlite3_bind_int64(q, 3, s->opened);
    sqlite3_bind_int(q, 4, s->probes);
    sqlite3_bind_int64(q, 5, s->probe_at);
    sqlite3_bind_int(q, 6, s->is_probing);
    sqlite3_bind_int64(q, 7, s->pace_us);
    if (slh_sqlite_run(q) != SQLITE_DONE)
        rc = slh_sqlite_fail(sq, "breaker", err);
    return slh_sqlite_end(sq, own, rc, err);
}

/* max_age counts from receipt, or from a revival (done, on a pending row),
 * as slh_retry_decide() counts it; a row an owner holds is in flight, and
 * its outcome decides it. */
static const char expire_sql[] =
    "UPDATE delivery SET state = 2, due = ?3, done = ?3, last_error = ?4"
    " WHERE dest = ?1 AND state = 0 AND owner IS NULL"
    " AND COALESCE(done, 0) <= ?2"
    " AND (SELECT received FROM event e WHERE e.seq = delivery.seq) <= ?2";

enum slh_err
slh_sqlite_expire(struct slh_store *st, const char *dest, int64_t max_age,
                  int64_t now_ms, const char *why, size_t *n,
                  struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    sqlite3_stmt *q = NULL;
    char error[SLH_STORE_ERROR_LEN];
    int64_t cutoff = INT64_MIN;
    enum slh_err rc = SLH_OK;
    int changed = 0;
    bool own;

    if (max_age < now_ms / 1000)
        cutoff = now_ms - max_age * 1000;
    snprintf(error, sizeof(error), "%s", why);
    slh_store_utf8_mend(error);
    if (slh_sqlite_begin(sq, "expire", &own, err) != SLH_OK)
        return SLH_ESTORE;
    if (slh_sqlite_prepare(sq, expire_sql, &q) != SQLITE_OK)
        return slh_sqlite_end(sq, own, slh_sqlite_fail(sq, "expire", err), err);
    sqlite3_bind_text(q, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, cutoff);
    sqlite3_bind_int64(q, 3, now_ms);
    sqlite3_bind_text(q, 4, error, -1, SQLITE_TRANSIENT);
    if (slh_sqlite_run(q) == SQLITE_DONE)
        changed = sqlite3_changes(sq->db);
    else
        rc = slh_sqlite_fail(sq, "expire", err);
    rc = slh_sqlite_end(sq, own, rc, err);
    if (rc == SLH_OK && n != NULL)
        *n = (size_t)changed;
    return rc;
}

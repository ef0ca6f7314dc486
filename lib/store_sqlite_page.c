/* store_sqlite_page.c: the figures of the operator's page that no other
 * reader needs: events received and delivered per minute. */
#include "store_sqlite.h"

#include <stdlib.h>

#define MINUTE_MS 60000

/* event_received covers this: the index alone is read, not the bodies. */
static const char received_sql[] =
    "SELECT received / 60000, COUNT(*) FROM event"
    " WHERE received >= ?1 AND received < ?2 GROUP BY 1";

/* delivery has no index by done (one would cost every outcome a write):
 * its rows are reached from the window's events, through event_received
 * and then the primary key (dest, seq), one destination at a time. CROSS
 * JOIN keeps that order: left to itself the planner read every row of the
 * destination first (a million events: 148 ms a destination, not 27). */
static const char delivered_sql[] =
    "SELECT d.done / 60000, COUNT(*) FROM event e"
    " CROSS JOIN delivery d ON d.dest = ?3 AND d.seq = e.seq"
    " WHERE e.received >= ?1 AND e.received < ?2"
    " AND +d.state = 1 AND d.done >= ?4 AND d.done < ?2 GROUP BY 1";

/* Adds each (minute, count) row of q to counts[minute - first]. */
static int
add_rows(sqlite3_stmt *q, int64_t first, size_t n, int64_t *counts)
{
    int r;

    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t m = sqlite3_column_int64(q, 0) - first;
        if (m >= 0 && (uint64_t)m < n)
            counts[m] += sqlite3_column_int64(q, 1);
    }
    return r;
}

static enum slh_err
count_received(struct slh_sqlite *sq, int64_t since, size_t n,
               int64_t *received, struct slh_error *err)
{
    sqlite3_stmt *q = NULL;
    int r;

    if (slh_sqlite_prepare(sq, received_sql, &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "minutes", err);
    sqlite3_bind_int64(q, 1, since);
    sqlite3_bind_int64(q, 2, since + (int64_t)n * MINUTE_MS);
    r = add_rows(q, since / MINUTE_MS, n, received);
    slh_sqlite_release(q);
    return r == SQLITE_DONE ? SLH_OK : slh_sqlite_fail(sq, "minutes", err);
}

static enum slh_err
count_delivered(struct slh_sqlite *sq, int64_t since, size_t n, int64_t from,
                int64_t *delivered, struct slh_error *err)
{
    char **dests = NULL;
    size_t n_dests = 0;
    enum slh_err rc = slh_sqlite_dests(&sq->base, &dests, &n_dests, err);

    for (size_t i = 0; rc == SLH_OK && i < n_dests; i++) {
        sqlite3_stmt *q = NULL;
        int r;

        if (slh_sqlite_prepare(sq, delivered_sql, &q) != SQLITE_OK) {
            rc = slh_sqlite_fail(sq, "minutes", err);
            break;
        }
        sqlite3_bind_int64(q, 1, from);
        sqlite3_bind_int64(q, 2, since + (int64_t)n * MINUTE_MS);
        sqlite3_bind_text(q, 3, dests[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, since);
        r = add_rows(q, since / MINUTE_MS, n, delivered);
        slh_sqlite_release(q);
        if (r != SQLITE_DONE)
            rc = slh_sqlite_fail(sq, "minutes", err);
    }
    slh_store_dests_free(dests, n_dests);
    return rc;
}

enum slh_err
slh_sqlite_minutes(struct slh_store *st, int64_t since_ms, size_t n,
                   int64_t from_ms, int64_t *received, int64_t *delivered,
                   struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    int64_t since = since_ms - since_ms % MINUTE_MS;
    bool own;
    enum slh_err rc = slh_sqlite_read_begin(sq, "minutes", &own, err);

    if (rc == SLH_OK)
        rc = count_received(sq, since, n, received, err);
    if (rc == SLH_OK)
        rc = count_delivered(sq, since, n, from_ms < since ? from_ms : since,
                             delivered, err);
    slh_sqlite_read_end(sq, own);
    return rc;
}

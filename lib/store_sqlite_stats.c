/* store_sqlite_stats.c: what `slhook status` shows: each destination's
 * numbers, and the destinations that have rows. */
#include "store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pending and dead rows are few (a backlog, the dead letters): counted in
 * delivery_due. Delivered ones, nearly all, are the tally's. */
static const char count_sql[] =
    "SELECT (SELECT COUNT(*) FROM delivery INDEXED BY delivery_due"
    "  WHERE dest = ?1 AND state = 0),"
    " (SELECT COUNT(*) FROM delivery INDEXED BY delivery_due"
    "  WHERE dest = ?1 AND state = 2),"
    " (SELECT delivered FROM tally WHERE dest = ?1)";
static const char retrying_sql[] =
    "SELECT COUNT(*) FROM delivery INDEXED BY delivery_due"
    " WHERE dest = ?1 AND state = 0"
    " AND attempts > 0 AND last_error IS NOT NULL";
static const char oldest_sql[] = "SELECT MIN(e.received) FROM delivery d"
                                 " JOIN event e ON e.seq = d.seq"
                                 " WHERE d.dest = ?1 AND d.state = 0";
/* The latest failure still standing: a dead row's done is when it died; a
 * pending row's due is a backoff after its failure. The index keeps the
 * delivered rows, most of them, out of both scans. */
static const char last_sql[] =
    "SELECT last_status, last_error FROM delivery"
    " INDEXED BY delivery_due"
    " WHERE dest = ?1 AND state IN (0, 2)"
    " AND last_error IS NOT NULL"
    " ORDER BY CASE state WHEN 2 THEN done ELSE due END DESC"
    " LIMIT 1";

/* Runs sql about dest; each row goes to row(q, s). */
static enum slh_err
each_row(struct slh_sqlite *sq, const char *sql, const char *dest,
         void (*row)(sqlite3_stmt *q, struct slh_store_stats *s),
         struct slh_store_stats *s, struct slh_error *err)
{
    sqlite3_stmt *q = NULL;
    int r;

    if (slh_sqlite_prepare(sq, sql, &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "status", err);
    sqlite3_bind_text(q, 1, dest, -1, SQLITE_STATIC);
    while ((r = sqlite3_step(q)) == SQLITE_ROW)
        row(q, s);
    slh_sqlite_release(q);
    return r == SQLITE_DONE ? SLH_OK : slh_sqlite_fail(sq, "status", err);
}

static void
count_row(sqlite3_stmt *q, struct slh_store_stats *s)
{
    s->pending = sqlite3_column_int64(q, 0);
    s->dead = sqlite3_column_int64(q, 1);
    s->delivered = sqlite3_column_int64(q, 2); /* NULL, no tally yet: 0 */
}

static void
retrying_row(sqlite3_stmt *q, struct slh_store_stats *s)
{
    s->retrying = sqlite3_column_int64(q, 0);
}

static void
oldest_row(sqlite3_stmt *q, struct slh_store_stats *s)
{
    s->oldest_pending = sqlite3_column_int64(q, 0);
}

static void
last_row(sqlite3_stmt *q, struct slh_store_stats *s)
{
    const unsigned char *text = sqlite3_column_text(q, 1);

    s->last_status = sqlite3_column_int(q, 0);
    snprintf(s->last_error, sizeof(s->last_error), "%s",
             text != NULL ? (const char *)text : "");
    slh_store_utf8_mend(s->last_error);
}

enum slh_err
slh_sqlite_stats(struct slh_store *st, const char *dest,
                 struct slh_store_stats *s, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    bool own;
    /* One read transaction, so the numbers agree with each other. */
    enum slh_err rc = slh_sqlite_read_begin(sq, "status", &own, err);

    if (rc == SLH_OK)
        rc = each_row(sq, count_sql, dest, count_row, s, err);
    if (rc == SLH_OK)
        rc = each_row(sq, retrying_sql, dest, retrying_row, s, err);
    if (rc == SLH_OK)
        rc = each_row(sq, oldest_sql, dest, oldest_row, s, err);
    if (rc == SLH_OK)
        rc = each_row(sq, last_sql, dest, last_row, s, err);
    slh_sqlite_read_end(sq, own);
    if (rc != SLH_OK)
        memset(s, 0, sizeof(*s));
    return rc;
}

/* One index seek per destination, not a scan of every row that a SELECT
 * DISTINCT would make: there may be millions, and a few names. */
static const char dests_sql[] =
    "WITH RECURSIVE d(name) AS ("
    " SELECT min(dest) FROM delivery"
    " UNION ALL"
    " SELECT (SELECT min(dest) FROM delivery WHERE dest > d.name)"
    " FROM d WHERE d.name IS NOT NULL)"
    " SELECT name FROM d WHERE name IS NOT NULL";

enum slh_err
slh_sqlite_dests(struct slh_store *st, char ***names, size_t *n,
                 struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    sqlite3_stmt *q = NULL;
    enum slh_err rc = SLH_OK;
    char **list = NULL;
    size_t count = 0;
    int r = SQLITE_DONE;

    if (slh_sqlite_prepare(sq, dests_sql, &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "destinations", err);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        char **grown = realloc(list, (count + 1) * sizeof(*list));
        if (grown != NULL)
            list = grown;
        if (grown == NULL || name == NULL ||
            (list[count] = strdup(name)) == NULL) {
            rc = slh_error_set(err, SLH_ENOMEM, "destinations: out of memory");
            break;
        }
        count++;
    }
    if (rc == SLH_OK && r != SQLITE_DONE)
        rc = slh_sqlite_fail(sq, "destinations", err);
    slh_sqlite_release(q);
    if (rc != SLH_OK) {
        slh_store_dests_free(list, count);
        return rc;
    }
    *names = list;
    *n = count;
    return SLH_OK;
}

/* store_sqlite_import.c: events copied from another store, with their
 * rows as they stand there (slh_store_import()). */
#include "store_sqlite.h"

/* As a put's insert (store_sqlite_put.c), but with the received time the
 * event has: an event there already adds nothing, its rows included. */
static const char import_event_sql[] =
    "INSERT INTO event(id, type, tracking, received, body, at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(at, id) DO NOTHING";

/* A row as it stands, owned by no one: whoever claimed it there does not
 * deliver here. tally_insert counts a delivered one. */
static const char import_row_sql[] =
    "INSERT INTO delivery"
    "(dest, seq, state, due, attempts, last_status, last_error, done)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/* Row r of the event stored as seq, its error and done as
 * store_backend.h has them: an SQLite result code, SQLITE_DONE when
 * stored. */
static int
import_row(struct slh_sqlite *sq, const struct slh_store_row *r, int64_t seq)
{
    sqlite3_stmt *st = NULL;
    char error[SLH_STORE_ERROR_LEN];
    int64_t done;
    int rc = slh_sqlite_prepare(sq, import_row_sql, &st);

    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, r->dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int(st, 3, r->state);
    sqlite3_bind_int64(st, 4, r->due);
    sqlite3_bind_int(st, 5, r->attempts);
    if (r->last_status > 0)
        sqlite3_bind_int(st, 6, r->last_status);
    if (slh_store_row_error(r, error))
        sqlite3_bind_text(st, 7, error, -1, SQLITE_TRANSIENT);
    if (slh_store_row_done(r, &done))
        sqlite3_bind_int64(st, 8, done);
    return slh_sqlite_run(st);
}

/* ev and its rows, unless its (at, id) is stored; *fresh counts it. */
static int
import_one(struct slh_sqlite *sq, const struct slh_store_event *ev,
           size_t *fresh)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 seq;
    int rc = slh_sqlite_prepare(sq, import_event_sql, &st);

    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, ev->tracking);
    sqlite3_bind_int64(st, 4, ev->received);
    sqlite3_bind_text(st, 5, ev->body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, ev->at);
    rc = slh_sqlite_run(st);
    if (rc != SQLITE_DONE || sqlite3_changes(sq->db) == 0)
        return rc; /* a failure, or there already */
    (*fresh)++;
    seq = sqlite3_last_insert_rowid(sq->db);
    for (size_t i = 0; i < ev->n_rows && rc == SQLITE_DONE; i++)
        rc = import_row(sq, &ev->rows[i], seq);
    return rc;
}

enum slh_err
slh_sqlite_import(struct slh_store *st, const struct slh_store_event *events,
                  size_t n, size_t *n_new, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    size_t fresh = 0;
    enum slh_err rc;
    bool own;

    /* A write of the writers' lock, as a put: synchronous=FULL, so the
     * commit is on disk when it returns. */
    rc = slh_sqlite_begin(sq, "import", &own, err);
    if (rc != SLH_OK)
        return rc;
    for (size_t i = 0; i < n && rc == SLH_OK; i++)
        if (import_one(sq, &events[i], &fresh) != SQLITE_DONE)
            rc = slh_sqlite_fail(sq, "import", err);
    rc = slh_sqlite_end(sq, own, rc, err);
    if (rc == SLH_OK && n_new != NULL)
        *n_new = fresh;
    return rc;
}

/* store_sqlite_queue.c: the delivering side: claims and their leases,
 * outcomes, rows given back, dead letters revived, the purge. */
#include "store_sqlite.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PURGE_CHUNK 5000

enum slh_err
slh_sqlite_role(struct slh_store *st, enum slh_store_role role,
                struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);

    if (role == SLH_STORE_COMMITTER)
        return slh_sqlite_ckpt_start(sq, err);
    if (role != SLH_STORE_DELIVERER)
        return SLH_OK;
    /* A power cut may lose the latest outcomes, which only repeats those
     * deliveries, while an fsync per commit would cap the throughput. A
     * deliverer reads its queue in order (oldest due first) and each event
     * once: SQLite's default 2 MiB page cache would only fill with pages it
     * will not read again; 256 KiB (a negative size is in KiB). */
    if (sqlite3_exec(sq->db,
                     "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-256", NULL,
                     NULL, NULL) != SQLITE_OK)
        return slh_sqlite_fail(sq, "setup", err);
    return SLH_OK;
}

static const char min_due_dest_sql[] =
    "SELECT MIN(due) FROM delivery WHERE dest = ?1 AND state = 0";
static const char min_due_all_sql[] =
    "SELECT MIN(due) FROM delivery WHERE state = 0";

enum slh_err
slh_sqlite_next_due(struct slh_store *st, const char *dest, int64_t *due,
                    struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    sqlite3_stmt *q = NULL;
    enum slh_err rc = SLH_OK;

    *due = INT64_MAX;
    if (slh_sqlite_prepare(sq,
                           dest != NULL ? min_due_dest_sql : min_due_all_sql,
                           &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "next due", err);
    if (dest != NULL)
        sqlite3_bind_text(q, 1, dest, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_ROW)
        rc = slh_sqlite_fail(sq, "next due", err);
    else if (sqlite3_column_type(q, 0) != SQLITE_NULL)
        *due = sqlite3_column_int64(q, 0);
    slh_sqlite_release(q);
    return rc;
}

static enum slh_err
claim_row(sqlite3_stmt *sel, struct slh_claim *c, struct slh_error *err)
{
    const unsigned char *id = sqlite3_column_text(sel, 3);
    const void *body = sqlite3_column_text(sel, 5);
    int len = sqlite3_column_bytes(sel, 5);

    memset(c, 0, sizeof(*c));
    c->seq = sqlite3_column_int64(sel, 0);
    c->attempts = sqlite3_column_int(sel, 1) + 1;
    c->revived = sqlite3_column_int64(sel, 2);
    if (id != NULL)
        snprintf(c->id, sizeof(c->id), "%s", (const char *)id);
    c->received = sqlite3_column_int64(sel, 4);
    c->body = malloc((size_t)len + 1);
    if (c->body == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory claiming");
    if (len > 0)
        memcpy(c->body, body, (size_t)len);
    c->body[len] = '\0';
    c->body_len = (size_t)len;
    return SLH_OK;
}

static const char claim_sel_sql[] =
    "SELECT d.seq, d.attempts, d.done, e.id, e.received, e.body"
    " FROM delivery d JOIN event e ON e.seq = d.seq"
    " WHERE d.dest = ?1 AND d.state = 0 AND d.due <= ?2"
    " ORDER BY d.due LIMIT ?3";
static const char claim_upd_sql[] =
    "UPDATE delivery SET due = ?3, attempts = attempts + 1,"
    " owner = ?4 WHERE dest = ?1 AND seq = ?2";

/* Reads up to max due rows of dest into claims[0..*got). */
static enum slh_err
claim_read(struct slh_sqlite *sq, const char *dest, int64_t now_ms, size_t max,
           struct slh_claim *claims, size_t *got, struct slh_error *err)
{
    sqlite3_stmt *sel = NULL;
    enum slh_err rc = SLH_OK;
    int r = SQLITE_DONE;

    if (slh_sqlite_prepare(sq, claim_sel_sql, &sel) != SQLITE_OK)
        return slh_sqlite_fail(sq, "claim", err);
    sqlite3_bind_text(sel, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(sel, 2, now_ms);
    sqlite3_bind_int64(sel, 3, max > INT_MAX ? INT_MAX : (sqlite3_int64)max);
    while (*got < max && (r = sqlite3_step(sel)) == SQLITE_ROW) {
        rc = claim_row(sel, &claims[*got], err);
        if (rc != SLH_OK)
            break;
        (*got)++;
    }
    if (rc == SLH_OK && *got < max && r != SQLITE_DONE)
        rc = slh_sqlite_fail(sq, "claim", err);
    slh_sqlite_release(sel);
    return rc;
}

/* Leases claims[0..n) of dest to owner until `until`. */
static enum slh_err
claim_lease(struct slh_sqlite *sq, const char *dest, int64_t owner,
            int64_t until, const struct slh_claim *claims, size_t n,
            struct slh_error *err)
{
    sqlite3_stmt *upd = NULL;

    if (slh_sqlite_prepare(sq, claim_upd_sql, &upd) != SQLITE_OK)
        return slh_sqlite_fail(sq, "claim", err);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(upd, 1, dest, -1, SQLITE_STATIC);
        sqlite3_bind_int64(upd, 2, claims[i].seq);
        sqlite3_bind_int64(upd, 3, until);
        if (owner != 0)
            sqlite3_bind_int64(upd, 4, owner);
        if (slh_sqlite_run(upd) != SQLITE_DONE)
            return slh_sqlite_fail(sq, "claim", err);
    }
    return SLH_OK;
}

enum slh_err
slh_sqlite_claim(struct slh_store *st, const char *dest, int64_t owner,
                 int64_t now_ms, int64_t lease_ms, size_t max,
                 struct slh_claim *claims, size_t *n, int64_t *next_due,
                 struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    enum slh_err rc;
    bool own;
    size_t got = 0;
    int64_t due = INT64_MAX;

    if (slh_sqlite_begin(sq, "claim", &own, err) != SLH_OK)
        return SLH_ESTORE;
    rc = claim_read(sq, dest, now_ms, max, claims, &got, err);
    if (rc == SLH_OK)
        rc = claim_lease(sq, dest, owner, now_ms + lease_ms, claims, got, err);
    if (rc == SLH_OK)
        rc = slh_sqlite_next_due(st, dest, &due, err);
    rc = slh_sqlite_end(sq, own, rc, err);
    if (rc != SLH_OK) {
        for (size_t i = 0; i < got; i++)
            slh_store_claim_free(&claims[i]);
        got = 0;
    }
    *n = got;
    if (next_due != NULL)
        *next_due = due;
    return rc;
}

static const char finish_sql[] =
    "UPDATE delivery SET state = ?3, due = ?4, last_status = ?5,"
    " last_error = ?6, owner = NULL,"
    " done = CASE WHEN ?3 = 0 THEN done ELSE ?7 END"
    " WHERE dest = ?1 AND seq = ?2 AND state = 0"
    " AND ?8 = (SELECT id FROM event WHERE seq = ?2)";

/* Binds outcome o, recorded at now_ms, to finish_sql's st. */
static void
bind_outcome(sqlite3_stmt *st, const struct slh_outcome *o, int64_t now_ms)
{
    sqlite3_bind_text(st, 1, o->dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, o->seq);
    sqlite3_bind_int(st, 3, o->state);
    sqlite3_bind_int64(st, 4, o->state == SLH_PENDING ? o->due : now_ms);
    if (o->status > 0)
        sqlite3_bind_int(st, 5, o->status);
    if (o->error[0] != '\0') {
        char error[SLH_STORE_ERROR_LEN];
        snprintf(error, sizeof(error), "%s", o->error);
        slh_store_utf8_mend(error);
        sqlite3_bind_text(st, 6, error, -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(st, 7, now_ms);
    sqlite3_bind_text(st, 8, o->id, -1, SQLITE_STATIC);
}

/* Rows given back: ?1 dest, ?2 seq, ?3 now. */
static const char unclaim_sql[] =
    "UPDATE delivery SET due = ?3, attempts = MAX(attempts - 1, 0),"
    " owner = NULL WHERE dest = ?1 AND seq = ?2 AND state = 0";

/* What update_rows() does besides: which rows changed, and a last step in
 * the same write. */
struct rows_after {
    bool *is_changed; /* n of them: set false for a row no update took */
    int (*done)(struct slh_sqlite *sq, void *arg); /* an SQLite code */
    void *arg;
};

/* One write of n row updates, sql's statement bound for the i-th by
 * bind(st, i, arg), then after (NULL: nothing more). */
static enum slh_err
update_rows(struct slh_sqlite *sq, const char *what, const char *sql, size_t n,
            void (*bind)(sqlite3_stmt *st, size_t i, const void *arg),
            const void *arg, const struct rows_after *after,
            struct slh_error *err)
{
    sqlite3_stmt *upd = NULL;
    enum slh_err rc = SLH_OK;
    bool own;

    if (slh_sqlite_begin(sq, what, &own, err) != SLH_OK)
        return SLH_ESTORE;
    if (slh_sqlite_prepare(sq, sql, &upd) != SQLITE_OK)
        rc = slh_sqlite_fail(sq, what, err);
    for (size_t i = 0; rc == SLH_OK && i < n; i++) {
        bind(upd, i, arg);
        if (slh_sqlite_run(upd) != SQLITE_DONE)
            rc = slh_sqlite_fail(sq, what, err);
        else if (after != NULL && sqlite3_changes(sq->db) == 0)
            after->is_changed[i] = false; /* not this claim's row now */
    }
    if (rc == SLH_OK && after != NULL &&
        after->done(sq, after->arg) != SQLITE_OK)
        rc = slh_sqlite_fail(sq, what, err);
    return slh_sqlite_end(sq, own, rc, err);
}

struct finish_args {
    const struct slh_outcome *o;
    int64_t now_ms;
    size_t n;
    bool *is_changed; /* per outcome: its row took it */
};

static void
bind_finish(sqlite3_stmt *st, size_t i, const void *arg)
{
    const struct finish_args *a = arg;

    bind_outcome(st, &a->o[i], a->now_ms);
}

/* The rows a finish made delivered, added to their destinations' tally: one
 * write per destination, not a trigger per row (which cost the drain 8 to
 * 15 % of its CPU: BENCHMARKS.md). */
static const char tally_add_sql[] =
    "INSERT INTO tally VALUES (?1, ?2)"
    " ON CONFLICT(dest) DO UPDATE SET delivered = delivered + ?2";

static int
tally_finished(struct slh_sqlite *sq, void *arg)
{
    struct finish_args *a = arg;
    sqlite3_stmt *add = NULL;
    int rc = SQLITE_OK;

    for (size_t i = 0; rc == SQLITE_OK && i < a->n; i++) {
        int64_t count = 0;

        if (!a->is_changed[i] || a->o[i].state != SLH_DELIVERED)
            continue;
        for (size_t k = i; k < a->n; k++) /* i's destination, once */
            if (a->is_changed[k] && a->o[k].state == SLH_DELIVERED &&
                strcmp(a->o[k].dest, a->o[i].dest) == 0) {
                count++;
                a->is_changed[k] = k == i;
            }
        if (add == NULL &&
            (rc = slh_sqlite_prepare(sq, tally_add_sql, &add)) != SQLITE_OK)
            break;
        sqlite3_bind_text(add, 1, a->o[i].dest, -1, SQLITE_STATIC);
        sqlite3_bind_int64(add, 2, count);
        rc = slh_sqlite_run(add) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    return rc;
}

enum slh_err
slh_sqlite_finish(struct slh_store *st, const struct slh_outcome *o, size_t n,
                  int64_t now_ms, struct slh_error *err)
{
    struct finish_args a = {o, now_ms, n, calloc(n + 1, sizeof(bool))};
    struct rows_after after = {a.is_changed, tally_finished, &a};
    enum slh_err rc;

    if (a.is_changed == NULL)
        return slh_error_set(err, SLH_ENOMEM, "finish: out of memory");
    memset(a.is_changed, 1, n * sizeof(bool));
    rc = update_rows(slh_sqlite(st), "finish", finish_sql, n, bind_finish, &a,
                     &after, err);
    free(a.is_changed);
    return rc;
}

struct unclaim_args {
    const char *dest;
    const int64_t *seqs;
    int64_t now_ms;
};

static void
bind_unclaim(sqlite3_stmt *st, size_t i, const void *arg)
{
    const struct unclaim_args *a = arg;

    sqlite3_bind_text(st, 1, a->dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a->seqs[i]);
    sqlite3_bind_int64(st, 3, a->now_ms);
}

enum slh_err
slh_sqlite_unclaim(struct slh_store *st, const char *dest, const int64_t *seqs,
                   size_t n, int64_t now_ms, struct slh_error *err)
{
    struct unclaim_args a = {dest, seqs, now_ms};

    return update_rows(slh_sqlite(st), "unclaim", unclaim_sql, n, bind_unclaim,
                       &a, NULL, err);
}

static const char retry_sql[] =
    "UPDATE delivery SET state = 0, due = ?2, attempts = 0,"
    " done = ?2 WHERE dest = ?1 AND state = 2";

enum slh_err
slh_sqlite_retry(struct slh_store *st, const char *dest, int64_t now_ms,
                 size_t *n, struct slh_error *err)
{
    return slh_sqlite_change(slh_sqlite(st), "retry", retry_sql, dest, now_ms,
                             n, err);
}

/* Runs the chunked DELETE sql (?1 cutoff, ?2 chunk), each chunk a write of
 * its own, until a chunk comes short; *total adds up the rows deleted. */
static enum slh_err
purge_chunks(struct slh_sqlite *sq, const char *sql, int64_t cutoff_ms,
             size_t *total, struct slh_error *err)
{
    sqlite3_stmt *del = NULL;
    enum slh_err rc = SLH_OK;
    int changed = 0;

    do {
        bool own;

        rc = slh_sqlite_begin(sq, "purge", &own, err);
        if (rc != SLH_OK)
            break;
        if (slh_sqlite_prepare(sq, sql, &del) != SQLITE_OK)
            rc = slh_sqlite_fail(sq, "purge", err);
        if (rc == SLH_OK) {
            sqlite3_bind_int64(del, 1, cutoff_ms);
            sqlite3_bind_int(del, 2, PURGE_CHUNK);
            if (slh_sqlite_run(del) != SQLITE_DONE)
                rc = slh_sqlite_fail(sq, "purge", err);
            changed = sqlite3_changes(sq->db);
        }
        rc = slh_sqlite_end(sq, own, rc, err);
        if (rc == SLH_OK)
            *total += (size_t)changed;
    } while (rc == SLH_OK && changed == PURGE_CHUNK);
    return rc;
}

static const char purge_delivered_sql[] =
    "DELETE FROM delivery WHERE (dest, seq) IN"
    " (SELECT dest, seq FROM delivery"
    "  WHERE state = 1 AND done < ?1 LIMIT ?2)";
/* NOT IN builds its list of seqs once, an index for the whole scan. */
static const char purge_events_sql[] =
    "DELETE FROM event WHERE seq IN"
    " (SELECT seq FROM event WHERE received < ?1"
    "  AND seq NOT IN (SELECT seq FROM delivery)"
    "  LIMIT ?2)";

enum slh_err
slh_sqlite_purge(struct slh_store *st, int64_t cutoff_ms, size_t *n,
                 struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    size_t deliveries = 0, events = 0;
    enum slh_err rc;

    rc = purge_chunks(sq, purge_delivered_sql, cutoff_ms, &deliveries, err);
    if (rc == SLH_OK)
        rc = purge_chunks(sq, purge_events_sql, cutoff_ms, &events, err);
    if (n != NULL)
        *n = events;
    return rc;
}

int64_t
slh_sqlite_data_version(struct slh_store *st)
{
    static const char sql[] = "PRAGMA data_version";
    struct slh_sqlite *sq = slh_sqlite(st);
    sqlite3_stmt *q = NULL;
    int64_t v = 0;

    if (slh_sqlite_prepare(sq, sql, &q) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    slh_sqlite_release(q);
    return v;
}

/* store_pg.c: the PostgreSQL backend's ops table and its one set of
 * helpers (parameters, array literals, statements, transactions, errors). */
#include "store_pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
slh_pg_arg_i64(struct slh_pg_args *a, int64_t x)
{
    snprintf(a->num[a->n], sizeof(a->num[a->n]), "%" PRId64, x);
    a->v[a->n] = a->num[a->n];
    a->n++;
}

void
slh_pg_arg_text(struct slh_pg_args *a, const char *s)
{
    a->v[a->n++] = s;
}

/* Appends n bytes of s to b. */
static void
buf_add(struct slh_pg_buf *b, const char *s, size_t n)
{
    if (b->is_oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 256;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->is_oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
slh_pg_arr_open(struct slh_pg_buf *b)
{
    b->len = 0;
    buf_add(b, "{", 1);
}

/* The separator before an element but the first. */
static void
arr_comma(struct slh_pg_buf *b)
{
    if (b->len > 0 && b->p != NULL && b->p[b->len - 1] != '{')
        buf_add(b, ",", 1);
}

/* Quoted, with " and \ escaped: an array literal's element may hold any
 * other character as it is. */
void
slh_pg_arr_text(struct slh_pg_buf *b, const char *s)
{
    arr_comma(b);
    if (s == NULL) {
        buf_add(b, "NULL", 4);
        return;
    }
    buf_add(b, "\"", 1);
    while (*s != '\0') {
        size_t run = strcspn(s, "\"\\");

        buf_add(b, s, run);
        s += run;
        if (*s != '\0') {
            buf_add(b, "\\", 1);
            buf_add(b, s++, 1);
        }
    }
    buf_add(b, "\"", 1);
}

void
slh_pg_arr_i64(struct slh_pg_buf *b, int64_t x)
{
    char num[24];

    arr_comma(b);
    buf_add(b, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, x));
}

const char *
slh_pg_arr_close(struct slh_pg_buf *b)
{
    buf_add(b, "}", 1);
    return b->is_oom ? NULL : b->p;
}

void
slh_pg_buf_free(struct slh_pg_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

const char *
slh_pg_arr_strings(struct slh_pg_buf *b, char *const *s, size_t n)
{
    slh_pg_arr_open(b);
    for (size_t i = 0; i < n; i++)
        slh_pg_arr_text(b, s[i]);
    return slh_pg_arr_close(b);
}

/* The first lines of a libpq or server message on one line, no trailing
 * newline. */
static void
one_line(char *s)
{
    size_t n;

    for (char *p = s; *p != '\0'; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
}

enum slh_err
slh_pg_fail(struct slh_pg *pg, const char *what, const PGresult *res,
            struct slh_error *err)
{
    const char *m =
        res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char text[SLH_ERROR_TEXT];

    if (m == NULL)
        m = pg->conn != NULL ? PQerrorMessage(pg->conn) : "not connected";
    snprintf(text, sizeof(text), "%s", m);
    one_line(text);
    if (what != NULL)
        return slh_error_set(err, SLH_ESTORE, "spool %s: %s: %s", pg->where,
                             what, text);
    return slh_error_set(err, SLH_ESTORE, "spool %s: %s", pg->where, text);
}

/* sql's prepared statement on pg's connection, prepared now if it is not
 * yet: its name into name, false when it cannot be (then run unnamed). */
static bool
kept_name(struct slh_pg *pg, const char *sql, int n_args, char *name,
          size_t size)
{
    size_t i;
    PGresult *r;
    bool is_ok;

    /* A connection being set up is not the one kept[] was prepared on
     * (a deliverer's LISTEN, found there, failed every reconnection). */
    if (pg->is_connecting)
        return false;
    for (i = 0; i < pg->n_kept && pg->kept[i] != sql; i++)
        ;
    snprintf(name, size, "k%zu", i);
    if (i < pg->n_kept)
        return true;
    if (i == SLH_PG_KEPT)
        return false;
    r = PQprepare(pg->conn, name, sql, n_args, NULL);
    is_ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (is_ok)
        pg->kept[pg->n_kept++] = sql;
    return is_ok;
}

/* Runs sql, prepared when it can be. */
static PGresult *
run(struct slh_pg *pg, const char *sql, const struct slh_pg_args *a)
{
    int n = a != NULL ? a->n : 0;
    const char *const *v = a != NULL ? a->v : NULL;
    char name[16];

    if (kept_name(pg, sql, n, name, sizeof(name)))
        return PQexecPrepared(pg->conn, name, n, v, NULL, NULL, 0);
    return PQexecParams(pg->conn, sql, n, NULL, v, NULL, NULL, 0);
}

/*
 * Whether r, a statement's result outside a transaction, failed because
 * the connection was found dead (the server restarted since its last
 * statement): an error without the server's SQLSTATE, while libpq may
 * still call the connection OK; or one the server sent as it ended the
 * session (pg_terminate_backend: 57P01, and libpq then calls the
 * connection bad). If so r is cleared and the connection dropped, for
 * slh_pg_ready() to make anew and the statement to run once more: every
 * statement of ours may run twice (a put's events are then duplicates of
 * themselves). Inside a transaction the failure stands: the transaction
 * died with the connection.
 */
static bool
is_lost(struct slh_pg *pg, PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);

    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK || pg->is_in_tx ||
        pg->is_connecting)
        return false;
    if (PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL &&
        PQstatus(pg->conn) != CONNECTION_BAD)
        return false;
    PQclear(r);
    PQfinish(pg->conn);
    pg->conn = NULL;
    return true;
}

enum slh_err
slh_pg_exec(struct slh_pg *pg, const char *what, const char *sql,
            const struct slh_pg_args *a, PGresult **out, struct slh_error *err)
{
    PGresult *r;
    ExecStatusType s;

    if (out != NULL)
        *out = NULL;
    if (slh_pg_ready(pg, err) != SLH_OK)
        return SLH_ESTORE;
    r = run(pg, sql, a);
    s = PQresultStatus(r);
    if (is_lost(pg, r)) {
        if (slh_pg_ready(pg, err) != SLH_OK)
            return SLH_ESTORE;
        r = run(pg, sql, a);
        s = PQresultStatus(r);
    }
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        enum slh_err e = slh_pg_fail(pg, what, r, err);
        PQclear(r);
        return e;
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return SLH_OK;
}

int64_t
slh_pg_i64(const PGresult *r, int row, int col)
{
    if (row >= PQntuples(r) || PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int64_t
slh_pg_changed(PGresult *r)
{
    return strtoll(PQcmdTuples(r), NULL, 10);
}

enum slh_err
slh_pg_write(struct slh_pg *pg, const char *what, const char *sql,
             const struct slh_pg_args *a, size_t *n, struct slh_error *err)
{
    PGresult *r = NULL;
    enum slh_err rc = slh_pg_exec(pg, what, sql, a, &r, err);

    if (rc == SLH_OK && n != NULL)
        *n = (size_t)slh_pg_changed(r);
    PQclear(r);
    return rc;
}

enum slh_err
slh_pg_ready(struct slh_pg *pg, struct slh_error *err)
{
    PGconn *conn = NULL;
    enum slh_err rc;

    if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK &&
        PQsocket(pg->conn) >= 0)
        return SLH_OK;
    if (pg->is_in_tx)
        return slh_pg_fail(pg, "connection lost in a transaction", NULL, err);
    rc = slh_pg_connect(pg, &conn, err);
    if (rc != SLH_OK)
        return rc;
    PQfinish(pg->conn);
    pg->conn = conn;
    pg->n_kept = 0; /* prepared on the connection gone */
    rc = slh_pg_session(pg, err);
    if (rc != SLH_OK)
        return rc;
    /* The session that held them is gone: what was claimed under our
     * tokens may have been taken back meanwhile, which the next beat
     * tells (store_pg_owner.c). */
    slh_pg_owners_relock(pg);
    pg->version++; /* anything may have changed meanwhile */
    return SLH_OK;
}

enum slh_err
slh_pg_begin(struct slh_pg *pg, const char *what, enum slh_pg_sync sync,
             bool *own, struct slh_error *err)
{
    static const char *const sql[] = {
        [SLH_PG_SYNC_SESSION] = "BEGIN",
        [SLH_PG_SYNC_ON] = "BEGIN; SET LOCAL synchronous_commit = on",
        [SLH_PG_SYNC_OFF] = "BEGIN; SET LOCAL synchronous_commit = off",
    };
    PGresult *r;
    enum slh_err rc = SLH_OK;

    *own = false;
    if (pg->is_in_tx)
        return SLH_OK;
    rc = slh_pg_ready(pg, err);
    if (rc != SLH_OK)
        return rc;
    /* Two statements, no parameters: the simple protocol, one round
     * trip. */
    r = PQexec(pg->conn, sql[sync]);
    if (is_lost(pg, r)) {
        rc = slh_pg_ready(pg, err);
        if (rc != SLH_OK)
            return rc;
        r = PQexec(pg->conn, sql[sync]);
    }
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = slh_pg_fail(pg, what, r, err);
    else
        *own = pg->is_in_tx = true;
    PQclear(r);
    return rc;
}

enum slh_err
slh_pg_end(struct slh_pg *pg, bool own, enum slh_err rc, struct slh_error *err)
{
    PGresult *r;

    if (!own)
        return rc;
    pg->is_in_tx = false;
    r = PQexec(pg->conn, rc == SLH_OK ? "COMMIT" : "ROLLBACK");
    /* COMMIT of a failed transaction answers ROLLBACK, and commits
     * nothing. */
    if (rc == SLH_OK && (PQresultStatus(r) != PGRES_COMMAND_OK ||
                         strcmp(PQcmdStatus(r), "COMMIT") != 0))
        rc = slh_pg_fail(pg, "commit", r, err);
    PQclear(r);
    return rc;
}

static bool
is_mine(const char *spool)
{
    return strncmp(spool, "postgresql://", 13) == 0 ||
           strncmp(spool, "postgres://", 11) == 0;
}

static void store_close(struct slh_store *st);

static enum slh_err
store_open(struct slh_store **out, const char *spool, enum slh_store_create how,
           struct slh_error *err)
{
    struct slh_pg *pg = calloc(1, sizeof(*pg));
    enum slh_err rc;

    if (pg == NULL || (pg->uri = strdup(spool)) == NULL ||
        (pg->where = slh_store_mask(spool)) == NULL) {
        store_close(pg != NULL ? &pg->base : NULL);
        return slh_error_set(err, SLH_ENOMEM, "spool: out of memory");
    }
    pg->base.ops = &slh_store_pg_ops;
    pg->how = how;
    pg->version = 1;
    rc = slh_pg_ready(pg, err);
    if (rc != SLH_OK) {
        store_close(&pg->base);
        return rc;
    }
    /* A reconnection makes the tables again if they were dropped, as a
     * new process would (store.h), but no database: a server that is
     * down is not asked twice per attempt. */
    if (pg->how == SLH_STORE_CREATE)
        pg->how = SLH_STORE_CREATE_DB;
    pg->is_open = true;
    *out = &pg->base;
    return SLH_OK;
}

static void
store_close(struct slh_store *st)
{
    struct slh_pg *pg = (struct slh_pg *)st;

    if (pg == NULL)
        return;
    /* Owners outliving their handle (store.h allows closing in either
     * order) end without a connection: the server lets go of their locks
     * as the connection closes. */
    for (size_t i = 0; i < pg->n_owners; i++)
        pg->owners[i]->pg = NULL;
    PQfinish(pg->conn);
    free(pg->uri);
    free(pg->where);
    free(pg);
}

static const char *
where(const struct slh_store *st)
{
    return ((const struct slh_pg *)st)->where;
}

/* A database is not a directory that may be removed and made anew under
 * an open handle: what it holds is always the one spool. */
static bool
is_replaced(struct slh_store *st)
{
    (void)st;
    return false;
}

/* A deliverer's commits need not wait for the disk (store_pg.h); the
 * committer has no upkeep of its own to move off its commits: PostgreSQL
 * checkpoints in its own processes. */
static enum slh_err
role(struct slh_store *st, enum slh_store_role r, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;

    if (r != SLH_STORE_DELIVERER)
        return SLH_OK;
    pg->is_deliverer = true;
    return slh_pg_exec(pg, "setup", "SET synchronous_commit = off", NULL, NULL,
                       err);
}

/* Nothing of ours runs in the background to fail: nothing to tell. */
static void
on_note(struct slh_store *st, void (*note)(void *ctx, const char *text),
        void *ctx)
{
    (void)st;
    (void)note;
    (void)ctx;
}

/* The turn goes to the one UPDATE that finds the last purge every_ms old
 * by the server's clock (or as far ahead of it: the clock was set back),
 * in one statement: of two at once, the second waits for the first's row
 * and then finds it new. Not merely ahead: the second's clock may have
 * been read a moment before the first's. */
static const char purge_due_sql[] =
    "UPDATE slhook_meta SET last_purge = n.ms FROM (SELECT " SLH_PG_NOW_MS
    " AS ms) n WHERE last_purge <= n.ms - $1 OR last_purge > n.ms + $1";

static enum slh_err
purge_due(struct slh_store *st, int64_t every_ms, int64_t now_ms, bool *is_due,
          struct slh_error *err)
{
    struct slh_pg_args a = {0};
    size_t n = 0;
    enum slh_err rc;

    (void)now_ms;
    slh_pg_arg_i64(&a, every_ms);
    rc = slh_pg_write(slh_pg(st), "purge turn", purge_due_sql, &a, &n, err);
    *is_due = rc == SLH_OK && n == 1;
    return rc;
}

/* The ops of the other files are slh_pg_ and the op's name. */
#define OP(name) .name = slh_pg_##name

const struct slh_store_ops slh_store_pg_ops = {
    .name = "postgresql",
    OP(describe),
    .is_mine = is_mine,
    .is_local = false,
    .open = store_open,
    .close = store_close,
    .where = where,
    OP(verify),
    OP(health),
    .is_replaced = is_replaced,
    .role = role,
    .on_note = on_note,
    OP(put_tasks),
    OP(owner_open),
    OP(take_back),
    OP(owner_beat),
    OP(claim),
    OP(finish),
    OP(unclaim),
    OP(next_due),
    OP(stats),
    OP(retry),
    OP(purge),
    .purge_due = purge_due,
    OP(dests),
    OP(data_version),
    OP(events),
    OP(event),
    OP(requeue),
    OP(index),
    OP(minutes),
    OP(throttle_get),
    OP(throttle_put),
    OP(expire),
    .export_events = slh_pg_export,
    .import_events = slh_pg_import,
    OP(owners_alive),
};

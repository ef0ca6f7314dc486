/* store_pg_owner.c: deliverers' tokens held as session advisory locks, and
 * taking back what dead ones held (store_pg.h). */
#include "store_pg.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define OWNER_TRIES 8

static const char lock_sql[] =
    "SELECT pg_try_advisory_lock(" STR(SLH_PG_LOCK_CLASS) ", $1::integer)";
static const char unlock_sql[] =
    "SELECT pg_advisory_unlock(" STR(SLH_PG_LOCK_CLASS) ", $1::integer)";
static const char insert_sql[] =
    "INSERT INTO slhook_owner (token, pid, since, host, client_pid)"
    " VALUES ($1, pg_backend_pid(), $2, $3, $4) ON CONFLICT DO NOTHING";
/* Its row gone first: a deliverer that finds the lock free then finds no
 * owner to bury. */
static const char close_sql[] =
    "WITH gone AS (DELETE FROM slhook_owner WHERE token = $1)"
    " SELECT pg_advisory_unlock(" STR(SLH_PG_LOCK_CLASS) ", $1::integer)";

/* A token in 1..2^31-1: the second key of an advisory lock is an integer.
 * Random; without getrandom() the pid and the clock, as a clash with a
 * live owner's token only costs another try (the lock or the row's key
 * refuses it). */
static int64_t
new_token(void)
{
    uint32_t t = (uint32_t)getpid() * 2654435761u ^ (uint32_t)slh_now_ms();

    (void)!getrandom(&t, sizeof(t), 0);
    return (int64_t)(t % INT32_MAX) + 1;
}

/* Whether sql, with token, answered true. */
static bool
is_true(struct slh_pg *pg, const char *sql, int64_t token,
        struct slh_error *err)
{
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    bool yes;

    slh_pg_arg_i64(&a, token);
    if (slh_pg_exec(pg, "owner", sql, &a, &r, err) != SLH_OK)
        return false;
    yes = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return yes;
}

/* This host's name, for owners' rows. */
static void
host_name(char *buf, size_t size)
{
    if (gethostname(buf, size) != 0)
        buf[0] = '\0';
    buf[size - 1] = '\0';
}

/* Takes token's lock and makes its row: false when either is another's
 * (the lock let go again). */
static bool
take_token(struct slh_pg *pg, int64_t token, struct slh_error *err)
{
    struct slh_pg_args a = {0};
    char host[256];
    size_t n = 0;

    if (!is_true(pg, lock_sql, token, err))
        return false;
    host_name(host, sizeof(host));
    slh_pg_arg_i64(&a, token);
    slh_pg_arg_i64(&a, slh_now_ms());
    slh_pg_arg_text(&a, host);
    slh_pg_arg_i64(&a, (int64_t)getpid());
    if (slh_pg_write(pg, "owner", insert_sql, &a, &n, err) == SLH_OK && n == 1)
        return true;
    (void)is_true(pg, unlock_sql, token, NULL);
    return false;
}

static void
owner_close(struct slh_store_owner *o)
{
    struct slh_pg_owner *ow = (struct slh_pg_owner *)o;
    struct slh_pg *pg = ow->pg;

    if (pg != NULL) {
        for (size_t i = 0; i < pg->n_owners; i++)
            if (pg->owners[i] == ow)
                pg->owners[i] = pg->owners[--pg->n_owners];
        (void)is_true(pg, close_sql, ow->base.token, NULL);
    }
    free(ow);
}

enum slh_err
slh_pg_owner_open(struct slh_store *st, struct slh_store_owner **out,
                  struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_owner *ow;

    if (pg->n_owners == SLH_PG_OWNERS)
        return slh_error_set(err, SLH_EIO, "spool %s: %d owners already",
                             pg->where, SLH_PG_OWNERS);
    ow = calloc(1, sizeof(*ow));
    if (ow == NULL)
        return slh_error_set(err, SLH_EIO, "spool %s: out of memory",
                             pg->where);
    for (int i = 0; i < OWNER_TRIES && ow->base.token == 0; i++) {
        int64_t token = new_token();
        if (take_token(pg, token, err))
            ow->base.token = token;
    }
    if (ow->base.token == 0) {
        free(ow);
        return slh_error_set(err, SLH_EIO,
                             "spool %s: no owner token of our own", pg->where);
    }
    ow->base.close = owner_close;
    ow->pg = pg;
    pg->owners[pg->n_owners++] = ow;
    *out = &ow->base;
    return SLH_OK;
}

void
slh_pg_owners_relock(struct slh_pg *pg)
{
    for (size_t i = 0; i < pg->n_owners; i++)
        (void)is_true(pg, lock_sql, pg->owners[i]->base.token, NULL);
}

/* The other owners ($1: the tokens this connection holds, whose locks it
 * would take again). */
static const char others_sql[] =
    "SELECT token, host, client_pid FROM slhook_owner"
    " WHERE token <> ALL($1::bigint[])";

/*
 * The dead among the owners $1, each waited for $2 ms (store_pg.h), their
 * rows given back in the same statement as unclaim does: due $3, the
 * attempt uncounted, owned by no one.
 */
static const char take_back_sql[] =
    "WITH w AS (SELECT * FROM unnest($1::bigint[], $2::integer[])"
    " AS w(token, ms)),"
    " dead AS (DELETE FROM slhook_owner o USING w WHERE o.token = w.token"
    " AND slhook_owner_gone(o.token, w.ms) RETURNING o.token)"
    " UPDATE slhook_delivery d SET due = $3,"
    " attempts = greatest(d.attempts - 1, 0), owner = NULL"
    " FROM dead WHERE d.owner = dead.token AND d.state = 0";

/* Whether the owner of row i of others_sql's result is a process of this
 * host that is gone: its lock is worth waiting for. */
static bool
is_gone_here(const PGresult *r, int i, const char *host)
{
    pid_t pid = (pid_t)slh_pg_i64(r, i, 2);

    return strcmp(PQgetvalue(r, i, 1), host) == 0 && pid > 0 &&
           kill(pid, 0) != 0 && errno == ESRCH;
}

/* The tokens (into mine, the owners to look at) and waits of r's owners. */
static void
owner_waits(const PGresult *r, struct slh_pg_buf *tokens,
            struct slh_pg_buf *waits)
{
    char host[256];

    host_name(host, sizeof(host));
    slh_pg_arr_open(tokens);
    slh_pg_arr_open(waits);
    for (int i = 0; i < PQntuples(r); i++) {
        slh_pg_arr_i64(tokens, slh_pg_i64(r, i, 0));
        slh_pg_arr_i64(waits, is_gone_here(r, i, host) ? SLH_PG_DYING_MS : 0);
    }
}

enum slh_err
slh_pg_take_back(struct slh_store *st, int64_t self, int64_t now_ms,
                 size_t *taken, struct slh_error *err)
{
    struct slh_pg *pg = (struct slh_pg *)st;
    struct slh_pg_buf mine = {0}, waits = {0};
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;

    slh_pg_arr_open(&mine);
    slh_pg_arr_i64(&mine, self);
    for (size_t i = 0; i < pg->n_owners; i++)
        slh_pg_arr_i64(&mine, pg->owners[i]->base.token);
    slh_pg_arg_text(&a, slh_pg_arr_close(&mine));
    rc = a.v[0] == NULL
             ? slh_error_set(err, SLH_ENOMEM, "take back: out of memory")
             : slh_pg_exec(pg, "take back", others_sql, &a, &r, err);
    if (rc == SLH_OK && PQntuples(r) > 0) {
        owner_waits(r, &mine, &waits);
        a.n = 0;
        slh_pg_arg_text(&a, slh_pg_arr_close(&mine));
        slh_pg_arg_text(&a, slh_pg_arr_close(&waits));
        slh_pg_arg_i64(&a, now_ms);
        rc = a.v[0] == NULL || a.v[1] == NULL
                 ? slh_error_set(err, SLH_ENOMEM, "take back: out of memory")
                 : slh_pg_write(pg, "take back", take_back_sql, &a, taken, err);
    }
    PQclear(r);
    slh_pg_buf_free(&mine);
    slh_pg_buf_free(&waits);
    return rc;
}

/* A live owner's session holds its advisory lock (store_pg.h); whoever
 * takes back a dead one's rows holds it a moment too, and is counted
 * then. */
static const char alive_sql[] =
    "SELECT count(*) FROM slhook_owner o WHERE o.token <> $1 AND EXISTS"
    " (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
    " AND l.database = (SELECT oid FROM pg_database"
    " WHERE datname = current_database())"
    " AND l.classid::bigint = " STR(
        SLH_PG_LOCK_CLASS) " AND l.objid::bigint = o.token AND l.objsubid = 2 "
                           "AND l.granted)";

enum slh_err
slh_pg_owners_alive(struct slh_store *st, int64_t self, size_t *n,
                    struct slh_error *err)
{
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;

    slh_pg_arg_i64(&a, self);
    rc = slh_pg_exec(slh_pg(st), "owners", alive_sql, &a, &r, err);
    if (rc == SLH_OK)
        *n = (size_t)slh_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

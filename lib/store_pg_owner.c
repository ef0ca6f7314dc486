/* store_pg_owner.c: deliverers' tokens held as session advisory locks, and
 * taking back what dead ones held (store_pg.h). */
#include "store_pg.h"

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
    "INSERT INTO slhook_owner (token, pid, since)"
    " VALUES ($1, pg_backend_pid(), $2) ON CONFLICT DO NOTHING";
/* Its row gone first: a deliverer that finds the lock free then finds no
 * owner to bury. */
static const char close_sql[] =
    "WITH gone AS (DELETE FROM slhook_owner WHERE token = $1)"
    " SELECT pg_advisory_unlock(" STR(SLH_PG_LOCK_CLASS) ", $1::integer)";

/* A token in 1..2^31-1: the second key of an advisory lock is an integer. */
static int64_t
new_token(void)
{
    uint32_t t = 0;

    if (getrandom(&t, sizeof(t), 0) != (ssize_t)sizeof(t)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t = (uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec;
    }
    t &= INT32_MAX;
    return t != 0 ? (int64_t)t : 1;
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

/* Takes token's lock and makes its row: false when either is another's
 * (the lock let go again). */
static bool
take_token(struct slh_pg *pg, int64_t token, struct slh_error *err)
{
    struct slh_pg_args a = {0};
    size_t n = 0;

    if (!is_true(pg, lock_sql, token, err))
        return false;
    slh_pg_arg_i64(&a, token);
    slh_pg_arg_i64(&a, slh_now_ms());
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
        if (slh_pg_ready(pg, NULL) == SLH_OK)
            (void)is_true(pg, close_sql, ow->base.token, NULL);
    }
    free(ow);
}

enum slh_err
slh_pg_owner_open(struct slh_store *st, struct slh_store_owner **out,
                  struct slh_error *err)
{
    struct slh_pg *pg = slh_pg(st);
    struct slh_pg_owner *ow;
    enum slh_err rc = slh_pg_ready(pg, err);

    if (rc != SLH_OK)
        return SLH_EIO;
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
        return slh_error_set(err, SLH_EIO, "spool %s: no owner token of our own",
                             pg->where);
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

/*
 * The dead among the other owners ($1: the tokens this connection holds,
 * whose locks it would take again), their rows given back in the same
 * statement as unclaim does: due $2, the attempt uncounted, owned by no
 * one. A live owner's backend waits for its client (ClientRead) or runs a
 * statement; one that does neither may be a dying one, given
 * SLH_PG_DYING_MS to let go (store_pg.h).
 */
static const char take_back_sql[] =
    "WITH dead AS (DELETE FROM slhook_owner o"
    " WHERE o.token <> ALL($1::bigint[])"
    " AND slhook_owner_gone(o.token, CASE WHEN EXISTS"
    " (SELECT 1 FROM pg_stat_activity a WHERE a.pid = o.pid"
    " AND (a.state <> 'idle' OR a.wait_event = 'ClientRead'))"
    " THEN 0 ELSE " STR(SLH_PG_DYING_MS) " END)"
    " RETURNING o.token)"
    " UPDATE slhook_delivery d SET due = $2,"
    " attempts = greatest(d.attempts - 1, 0), owner = NULL"
    " FROM dead WHERE d.owner = dead.token AND d.state = 0";

enum slh_err
slh_pg_take_back(struct slh_store *st, int64_t self, int64_t now_ms,
                 size_t *taken, struct slh_error *err)
{
    struct slh_pg *pg = slh_pg(st);
    struct slh_pg_buf mine = {0};
    struct slh_pg_args a = {0};
    enum slh_err rc = slh_pg_ready(pg, err);

    if (rc != SLH_OK)
        return rc;
    slh_pg_arr_open(&mine);
    slh_pg_arr_i64(&mine, self);
    for (size_t i = 0; i < pg->n_owners; i++)
        slh_pg_arr_i64(&mine, pg->owners[i]->base.token);
    if (slh_pg_arr_close(&mine) == NULL) {
        slh_pg_buf_free(&mine);
        return slh_error_set(err, SLH_ENOMEM, "take back: out of memory");
    }
    slh_pg_arg_text(&a, mine.p);
    slh_pg_arg_i64(&a, now_ms);
    rc = slh_pg_write(pg, "take back", take_back_sql, &a, taken, err);
    slh_pg_buf_free(&mine);
    return rc;
}

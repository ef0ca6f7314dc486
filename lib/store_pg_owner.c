/* store_pg_owner.c: deliverers' tokens held as session advisory locks and
 * kept alive by their beats, and taking back what dead ones held
 * (store_pg.h). */
#include "store_pg.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define LOCK_CLASS STR(SLH_PG_LOCK_CLASS)
#define OWNER_TRIES 8

static const char lock_sql[] =
    "SELECT pg_try_advisory_lock(" LOCK_CLASS ", $1::integer)";
static const char unlock_sql[] =
    "SELECT pg_advisory_unlock(" LOCK_CLASS ", $1::integer)";
static const char insert_sql[] =
    "INSERT INTO slhook_owner (token, pid, since, host, client_pid, seen)"
    " VALUES ($1, pg_backend_pid(), $2, $3, $4, " SLH_PG_NOW_MS ")"
    " ON CONFLICT DO NOTHING";
/* Its row gone first: a deliverer that finds the lock free then finds no
 * owner to bury. */
static const char close_sql[] =
    "WITH gone AS (DELETE FROM slhook_owner WHERE token = $1)"
    " SELECT pg_advisory_unlock(" LOCK_CLASS ", $1::integer)";

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

/* $1..$4 of an owner's row: token, since, this host's name (into host),
 * this process. */
static void
owner_args(struct slh_pg_args *a, int64_t token, int64_t since, char *host,
           size_t size)
{
    host_name(host, size);
    slh_pg_arg_i64(a, token);
    slh_pg_arg_i64(a, since);
    slh_pg_arg_text(a, host);
    slh_pg_arg_i64(a, (int64_t)getpid());
}

/* Takes token's lock and makes its row: false when either is another's
 * (the lock let go again). */
static bool
take_token(struct slh_pg *pg, int64_t token, int64_t since,
           struct slh_error *err)
{
    struct slh_pg_args a = {0};
    char host[256];
    size_t n = 0;

    if (!is_true(pg, lock_sql, token, err))
        return false;
    owner_args(&a, token, since, host, sizeof(host));
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
    ow->since = slh_now_ms();
    for (int i = 0; i < OWNER_TRIES && ow->base.token == 0; i++) {
        int64_t token = new_token();
        if (take_token(pg, token, ow->since, err))
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

/* Row l of pg_locks is owner tok's lock, granted (the lock's keys are
 * its classid and objid; objsubid 2 says two int4 keys). */
#define OWNER_LOCK(tok)                                                        \
    "l.locktype = 'advisory' AND l.classid = " LOCK_CLASS                      \
    " AND l.objid = (" tok ")::bigint::oid AND l.objsubid = 2 AND l.granted"

/* Whether this session holds the lock of token $1. */
#define HELD                                                                   \
    "EXISTS (SELECT FROM pg_locks l WHERE " OWNER_LOCK(                        \
        "$1") " AND l.pid = pg_backend_pid())"

/* A beat of owner $1: whether its lock is this session's, and if so
 * whether its row was there to note the beat in (not buried). pid follows
 * the session that holds the lock, for an operator to look up. */
static const char beat_sql[] =
    "WITH l AS (SELECT " HELD " AS held),"
    " u AS (UPDATE slhook_owner o SET seen = " SLH_PG_NOW_MS ","
    " pid = pg_backend_pid() FROM l WHERE o.token = $1 AND l.held"
    " RETURNING 1)"
    " SELECT l.held, EXISTS (SELECT FROM u) FROM l";

/* A beat of an owner that dropped its claims (is_fresh): its row made
 * again if it was buried, and every pending row still claimed under it
 * given back as unclaim does (due $5); one row when its lock is ours. */
static const char fresh_sql[] =
    "WITH me AS (INSERT INTO slhook_owner AS o"
    " (token, pid, since, host, client_pid, seen)"
    " SELECT $1, pg_backend_pid(), $2::bigint, $3::text, "
    "$4::integer, " SLH_PG_NOW_MS " WHERE " HELD
    " ON CONFLICT (token) DO UPDATE SET seen = excluded.seen,"
    " pid = excluded.pid RETURNING o.token),"
    " back AS (UPDATE slhook_delivery d SET due = $5,"
    " attempts = greatest(d.attempts - 1, 0), owner = NULL FROM me"
    " WHERE d.owner = me.token AND d.state = 0 RETURNING 1)"
    " SELECT count(*) FROM me";

/* The session that last beat for owner $1 (its row's pid), when it still
 * holds the owner's lock and is not this one: a session of ours the
 * server has not yet found dead (its client gone with a network that
 * broke), which would keep the lock, and the rows, from us until the
 * server's keepalives end it. Ended; a role may end its own sessions. */
static const char zombie_sql[] =
    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
    " JOIN slhook_owner o ON o.token = $1 AND o.pid = l.pid"
    " WHERE " OWNER_LOCK("$1") " AND l.pid <> pg_backend_pid()";

/* beat_sql for token: *held, *is_seen (its row was there). */
static enum slh_err
beat_once(struct slh_pg *pg, int64_t token, bool *held, bool *is_seen,
          struct slh_error *err)
{
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    enum slh_err rc;

    slh_pg_arg_i64(&a, token);
    rc = slh_pg_exec(pg, "owner beat", beat_sql, &a, &r, err);
    *held = rc == SLH_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    *is_seen = rc == SLH_OK && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    return rc;
}

static enum slh_err
beat_fresh(struct slh_pg *pg, const struct slh_pg_owner *ow, int64_t now_ms,
           struct slh_error *err)
{
    struct slh_pg_args a = {0};
    PGresult *r = NULL;
    char host[256];
    enum slh_err rc;

    owner_args(&a, ow->base.token, ow->since, host, sizeof(host));
    slh_pg_arg_i64(&a, now_ms);
    rc = slh_pg_exec(pg, "owner beat", fresh_sql, &a, &r, err);
    if (rc == SLH_OK && slh_pg_i64(r, 0, 0) != 1)
        rc = slh_error_set(err, SLH_ESTORE,
                           "spool %s: owner %" PRId64 ": its lock is not ours",
                           pg->where, ow->base.token);
    PQclear(r);
    return rc;
}

/* The lock is tried again only when the beat found it not ours: a session
 * lock taken twice would need two unlocks. */
enum slh_err
slh_pg_owner_beat(struct slh_store *st, struct slh_store_owner *o,
                  int64_t now_ms, bool is_fresh, struct slh_error *err)
{
    struct slh_pg *pg = slh_pg(st);
    const struct slh_pg_owner *ow = (const struct slh_pg_owner *)o;
    int64_t token = ow->base.token;
    bool held = false, is_seen = false;
    enum slh_err rc = beat_once(pg, token, &held, &is_seen, err);

    if (rc == SLH_OK && !held && is_true(pg, lock_sql, token, err))
        rc = beat_once(pg, token, &held, &is_seen, err);
    if (rc != SLH_OK)
        return rc;
    if (!held) {
        struct slh_pg_args a = {0};

        /* The next beat takes the lock, if this ended who held it. */
        slh_pg_arg_i64(&a, token);
        (void)slh_pg_exec(pg, NULL, zombie_sql, &a, NULL, NULL);
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: owner %" PRId64
                             ": its lock is another session's",
                             pg->where, token);
    }
    if (is_fresh)
        return beat_fresh(pg, ow, now_ms, err);
    if (!is_seen)
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: owner %" PRId64
                             " was taken for dead, its claims given back",
                             pg->where, token);
    return SLH_OK;
}

/*
 * The dead among the other owners (not $1, the tokens this connection
 * holds, whose locks it would take again): a beat older than the grace
 * (store_pg.h), looked at first so that a live owner's lock is never
 * taken, even for a moment, while it may be taking it again; then its
 * lock ours (a transaction lock, only tried). Their rows given back in the
 * same statement as unclaim does: due $2, the attempt uncounted, owned by
 * no one.
 */
static const char take_back_sql[] =
    "WITH dead AS (DELETE FROM slhook_owner o"
    " WHERE o.token <> ALL($1::bigint[]) AND CASE WHEN o.seen < " SLH_PG_NOW_MS
    " - " STR(
        SLH_PG_GRACE_MS) " THEN slhook_owner_gone(o.token, 0)"
                         " ELSE false END RETURNING o.token)"
                         " UPDATE slhook_delivery d SET due = $2,"
                         " attempts = greatest(d.attempts - 1, 0), owner = NULL"
                         " FROM dead WHERE d.owner = dead.token AND d.state = "
                         "0";

/* Into b, the array literal of self and of every token pg's connection
 * holds; NULL when out of memory. */
static const char *
own_tokens(struct slh_pg *pg, int64_t self, struct slh_pg_buf *b)
{
    slh_pg_arr_open(b);
    slh_pg_arr_i64(b, self);
    for (size_t i = 0; i < pg->n_owners; i++)
        slh_pg_arr_i64(b, pg->owners[i]->base.token);
    return slh_pg_arr_close(b);
}

enum slh_err
slh_pg_take_back(struct slh_store *st, int64_t self, int64_t now_ms,
                 size_t *taken, struct slh_error *err)
{
    struct slh_pg *pg = slh_pg(st);
    struct slh_pg_buf mine = {0};
    struct slh_pg_args a = {0};
    enum slh_err rc = SLH_ENOMEM;

    slh_pg_arg_text(&a, own_tokens(pg, self, &mine));
    slh_pg_arg_i64(&a, now_ms);
    if (a.v[0] != NULL)
        rc = slh_pg_write(pg, "take back", take_back_sql, &a, taken, err);
    else
        slh_error_set(err, rc, "take back: out of memory");
    slh_pg_buf_free(&mine);
    return rc;
}

/* A live owner's session holds its advisory lock (store_pg.h); whoever
 * takes back a dead one's rows holds it a moment too, and is counted
 * then. */
static const char alive_sql[] =
    "SELECT count(*) FROM slhook_owner o WHERE o.token <> $1 AND EXISTS"
    " (SELECT 1 FROM pg_locks l WHERE " OWNER_LOCK(
        "o.token") " AND l.database = (SELECT oid FROM pg_database"
                   " WHERE datname = current_database()))";

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

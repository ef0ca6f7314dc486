/* store_pg.h: the PostgreSQL backend of store.h, inside (not for callers).
 *
 * A spool string that begins postgresql:// or postgres:// is a libpq
 * connection URI (https://www.postgresql.org/docs/15/libpq-connect.html):
 * the spool is that database. Its password, if the URI has one, is never
 * printed: where() and every message show the URI masked (user:***@,
 * password=***); libpq's own places (~/.pgpass, PGPASSFILE, passfile=)
 * keep it out of the config altogether.
 *
 * Connecting: connect_timeout 5 s, TCP keepalives and tcp_user_timeout
 * 10 s unless the URI says otherwise, so that a dead server costs a
 * request a bounded wait and a 503 (SLH_ESTORE), never a hang;
 * client_encoding UTF8 always. Each connection then sets
 * synchronous_commit = on (a 200 only after the commit is on disk, as
 * SQLite's synchronous=FULL) and lock_timeout = 10 s (a transaction stuck
 * holding a row makes a 503, not a queue of waiting requests). A deliverer
 * (SLH_STORE_DELIVERER) sets synchronous_commit = off, as the SQLite one
 * sets synchronous=NORMAL: a lost outcome only repeats a delivery; its
 * puts of events still commit synchronously. A connection found broken is
 * made anew by the next operation, which fails only if that fails.
 *
 * SLH_STORE_CREATE makes the database too when it does not exist (its
 * name taken from the URI, made through the "postgres" database: the role
 * needs CREATEDB), SLH_STORE_CREATE_DB only the tables, SLH_STORE_EXISTING
 * nothing (SLH_ENOTFOUND when the tables are not there).
 *
 * The schema, SQLite's (store_sqlite.h) in spirit, every name prefixed so
 * that a shared database keeps its own:
 *
 *   slhook_meta(one boolean PRIMARY KEY, version integer,
 *               last_purge bigint)     -- one row: the schema version,
 *                                      -- SLH_PG_VERSION; when the last
 *                                      -- purge began (server ms)
 *   slhook_event(seq bigint identity PRIMARY KEY, id text, at bigint,
 *                type text, tracking integer, received bigint, body text,
 *                message_id text,
 *                UNIQUE (at, id))      -- as SQLite's; body is text, not
 *                                      -- jsonb: relayed byte for byte;
 *                                      -- message_id the body's MessageId
 *                                      -- ('' none), NULL not yet read
 *   index slhook_event_received (received, seq)
 *   index slhook_event_message (message_id) WHERE message_id IS NOT NULL
 *   index slhook_event_unread (seq) WHERE message_id IS NULL
 *   slhook_delivery(dest text COLLATE "C", seq bigint, state smallint,
 *                   due bigint, attempts integer, last_status integer,
 *                   last_error text, done bigint, owner bigint,
 *                   PRIMARY KEY (dest, seq))  -- as SQLite's; "C": byte
 *                                      -- order, as store.h's dests
 *   index slhook_delivery_due (dest, state, due)
 *   index slhook_delivery_owner (owner) WHERE owner IS NOT NULL
 *   slhook_throttle(dest PRIMARY KEY, failures, opened, probes, probe_at,
 *                   probing boolean, pace)  -- as SQLite's
 *   slhook_tally(dest, shard, delivered, PRIMARY KEY (dest, shard))
 *                                      -- delivered rows, per destination
 *                                      -- the sum of its shards: each
 *                                      -- backend adds to shard pid % 8,
 *                                      -- so that deliverers on several
 *                                      -- hosts do not queue on one row
 *   slhook_owner(token bigint PRIMARY KEY, pid integer, since bigint,
 *                host text, client_pid integer, seen bigint)
 *                                      -- live (or not yet buried)
 *                                      -- deliverers: pid their backend's,
 *                                      -- host and client_pid their own,
 *                                      -- seen their last beat (server ms)
 *
 * Statement triggers on slhook_delivery (insert, update, delete; with
 * transition tables) keep the tally, and NOTIFY slhook when a statement
 * changed a row: data_version() is a count of those notifications from
 * other backends (LISTEN on first use, a round trip per call so that a
 * commit another process saw end is counted). A count kept in a row would
 * make every writer on every host queue on that row; a sequence cannot
 * tell our own writes from others'.
 *
 * The schema is made, or upgraded, in one transaction that holds an
 * advisory lock (SLH_PG_LOCK_CLASS, 0): several processes starting at once
 * on a new database, or on one of an older version, wait for the first,
 * then find it made. A new database is made as version 1 was, then
 * upgraded as an old one is, so that every upgrade is run by every test.
 * Version 2 added slhook_owner.seen and slhook_meta.last_purge (both 0 in
 * rows made before: an owner of an older slhook, which never beats, is
 * dead as soon as its lock is free, as it was). Version 3 replaced the
 * index on (body::jsonb ->> 'MessageId') with the column message_id:
 * events stored before have it NULL until a deliverer, idle, reads it
 * from their bodies (slh_store_index()); lookups read those bodies
 * meanwhile.
 *
 * Owners: a random token in 1..2^31-1, a row in slhook_owner and a session
 * advisory lock (SLH_PG_LOCK_CLASS, token) held by the connection that
 * claims with it; when its process dies the server ends that session and
 * the lock goes with it. But a session also ends while its process lives
 * (a restart of the server, a network blip, pg_terminate_backend), and
 * the process may be posting rows it claimed. So a deliverer beats about
 * once a second (slh_store_owner_beat(): seen set by the server's clock,
 * only while its session holds the lock), and take_back buries an owner
 * only when its lock is free (taken in a transaction lock, in the
 * statement that deletes its row and gives its rows back) and its beat
 * older than SLH_PG_GRACE_MS: a killed deliverer's rows come back within
 * the grace and a second. A live one that cannot beat (its lock not its
 * own again yet, the server out of reach) stops posting after
 * SLH_STORE_FENCE_MS, half the grace: it has stopped well before another
 * may start. Its outcomes are recorded only where a row still names it
 * (finish), so one buried in the meantime changes nothing it no longer
 * holds; it then gives back what still names it (a beat with is_fresh) and
 * goes on with the same token, its row made again if it was buried. The
 * server's clock alone measures the grace: hosts' clocks may disagree.
 * A session of its own that the server has not yet found dead (the
 * client's side gone with a broken network) would keep the lock, and so
 * the rows, from everyone until the server's keepalives end it: a beat
 * that finds its lock held by the session its row last named ends that
 * session (pg_terminate_backend, which a role may do to its own). What
 * this cannot cover: a deliverer whose thread is stuck past the grace in
 * a statement on a session the server already ended (it cannot stop what
 * it cannot run); the connection's tcp_user_timeout bounds that.
 */
#ifndef SLH_STORE_PG_H
#define SLH_STORE_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store_backend.h"

#define SLH_PG_VERSION 3
/* Every advisory key of ours has it first: 0x534b48 (a comment once read
 * it as "SLH", 0x534c48; the value stays, as running hosts hold it). */
#define SLH_PG_LOCK_CLASS 5458760
/* An owner without its lock is buried once its beat is this old: twice
 * the time after which it stops by itself (above), and with a beat a
 * second, a killed one's rows back within 6 s (issue 18: 10 s). */
#define SLH_PG_GRACE_MS (2 * SLH_STORE_FENCE_MS)
/* The server's clock, in unix ms, for seen and last_purge. */
#define SLH_PG_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#define SLH_PG_OWNERS 8 /* owners one handle may hold */
#define SLH_PG_ARGS 16  /* parameters a statement may have */
#define SLH_PG_PURGE_CHUNK 5000
#define SLH_PG_KEPT 48 /* statements prepared per connection */

struct slh_pg;

/* A deliverer's token, held by its handle's connection. */
struct slh_pg_owner {
    struct slh_store_owner base;
    struct slh_pg *pg; /* NULL once the handle closed */
    int64_t since;     /* made (unix ms): its row, made again, keeps it */
};

struct slh_pg {
    struct slh_store base;
    PGconn *conn; /* NULL or broken: made anew by slh_pg_ready() */
    char *uri;    /* as configured: libpq's to read, never to print */
    char *where;  /* the URI masked */
    enum slh_store_create how;
    bool is_open;       /* opened once: a reconnection asks no more */
    bool is_connecting; /* slh_pg_connect() works on another connection */
    const char *kept[SLH_PG_KEPT]; /* statements prepared on conn, told */
    size_t n_kept;                 /* apart by address: "k<index>" */
    bool is_in_tx;                 /* slh_pg_begin()'s transaction is open */
    bool is_deliverer;             /* slh_store_role(SLH_STORE_DELIVERER) */
    bool is_listening;             /* data_version() asked: LISTEN slhook */
    int64_t version;               /* data_version()'s count */
    struct slh_pg_owner *owners[SLH_PG_OWNERS];
    size_t n_owners;
};

extern const struct slh_store_ops slh_store_pg_ops;

static inline struct slh_pg *
slh_pg(struct slh_store *st)
{
    return (struct slh_pg *)st;
}

/* A statement's parameters, as text: a number is formatted into num[],
 * NULL text is SQL NULL. At most SLH_PG_ARGS. */
struct slh_pg_args {
    const char *v[SLH_PG_ARGS];
    char num[SLH_PG_ARGS][24];
    int n;
};
void slh_pg_arg_i64(struct slh_pg_args *a, int64_t x);
void slh_pg_arg_text(struct slh_pg_args *a, const char *s);

/* A growing text, for array literals ({"a","b\"c",NULL}). Any failure to
 * grow sets is_oom and stops it growing; slh_pg_arr_close() then gives
 * NULL. slh_pg_buf_free() frees p and zeroes b. */
struct slh_pg_buf {
    char *p;
    size_t len, cap;
    bool is_oom;
};
void slh_pg_arr_open(struct slh_pg_buf *b);
void slh_pg_arr_text(struct slh_pg_buf *b, const char *s);
void slh_pg_arr_i64(struct slh_pg_buf *b, int64_t x);
const char *slh_pg_arr_close(struct slh_pg_buf *b);
void slh_pg_buf_free(struct slh_pg_buf *b);
/* The array literal of n strings. */
const char *slh_pg_arr_strings(struct slh_pg_buf *b, char *const *s, size_t n);

/*
 * The connection, made anew if it broke (the session set up again: role,
 * LISTEN, owners' locks), but never inside a transaction, which died with
 * it. SLH_ESTORE naming the spool when it cannot be.
 */
enum slh_err slh_pg_ready(struct slh_pg *pg, struct slh_error *err);

/*
 * Runs sql with a's parameters (a NULL for none), on the connection
 * slh_pg_ready() gives (once more on a new one when that was found dead,
 * outside a transaction), prepared once per connection (a statement run
 * often costs more to plan than to run; PostgreSQL still plans one with
 * its values while that is better): pass a static string, told apart by
 * its address. SLH_OK when it ran
 * (rows or none), with *out the result (the caller's to PQclear) when out
 * is not NULL; else SLH_ESTORE, err "spool WHERE: what: the server's
 * message", and nothing to free.
 */
enum slh_err slh_pg_exec(struct slh_pg *pg, const char *what, const char *sql,
                         const struct slh_pg_args *a, PGresult **out,
                         struct slh_error *err);
/* The error text of this backend, from res (may be NULL: the
 * connection's message). SLH_ESTORE. */
enum slh_err slh_pg_fail(struct slh_pg *pg, const char *what,
                         const PGresult *res, struct slh_error *err);

/* Column col of row as a number, 0 for NULL; rows changed by a command. */
int64_t slh_pg_i64(const PGresult *r, int row, int col);
int64_t slh_pg_changed(PGresult *r);
/* Runs sql and gives the rows it changed in *n (may be NULL). */
enum slh_err slh_pg_write(struct slh_pg *pg, const char *what, const char *sql,
                          const struct slh_pg_args *a, size_t *n,
                          struct slh_error *err);

/* How a transaction of ours commits: as the session does, or on disk
 * before COMMIT returns (events), or not waiting for the disk (tasks). */
enum slh_pg_sync { SLH_PG_SYNC_SESSION, SLH_PG_SYNC_ON, SLH_PG_SYNC_OFF };

/*
 * A transaction: BEGIN, *own true; inside one already open on pg (a task
 * of a put) it joins that one, *own false. slh_pg_end() ends its own:
 * COMMIT when rc is SLH_OK, else ROLLBACK; a joined one is left to its
 * owner. Returns rc, or the COMMIT's failure.
 */
enum slh_err slh_pg_begin(struct slh_pg *pg, const char *what,
                          enum slh_pg_sync sync, bool *own,
                          struct slh_error *err);
enum slh_err slh_pg_end(struct slh_pg *pg, bool own, enum slh_err rc,
                        struct slh_error *err);

/* The destinations' recursive scan (store_sqlite_stats.c says why), as a
 * CTE d(name), names NULL included: "WITH RECURSIVE " SLH_PG_DESTS. */
#define SLH_PG_DESTS                                                           \
    "d(name) AS (SELECT min(dest) FROM slhook_delivery"                        \
    " UNION ALL SELECT (SELECT min(dest) FROM slhook_delivery"                 \
    " WHERE dest > d.name) FROM d WHERE d.name IS NOT NULL)"

/* Opening (store_pg_open.c): a new connection to pg->uri, set up, its
 * schema made or upgraded as pg->how allows; *out NULL on failure. */
enum slh_err slh_pg_connect(struct slh_pg *pg, PGconn **out,
                            struct slh_error *err);
/* Sets up a new connection's session as pg's role wants. */
enum slh_err slh_pg_session(struct slh_pg *pg, struct slh_error *err);
__typeof__(slh_store_describe) slh_pg_describe;
__typeof__(slh_store_verify) slh_pg_verify;
__typeof__(slh_store_health) slh_pg_health;

/* The ops (store_pg_put.c, store_pg_queue.c, store_pg_owner.c,
 * store_pg_stats.c, store_pg_events.c), each with its store.h contract. */
__typeof__(slh_store_put_tasks) slh_pg_put_tasks;
__typeof__(slh_store_index) slh_pg_index;
__typeof__(slh_store_owner_open) slh_pg_owner_open;
__typeof__(slh_store_take_back) slh_pg_take_back;
__typeof__(slh_store_owner_beat) slh_pg_owner_beat;
/* Takes again the locks of pg's owners after a new connection. */
void slh_pg_owners_relock(struct slh_pg *pg);
__typeof__(slh_store_claim) slh_pg_claim;
__typeof__(slh_store_finish) slh_pg_finish;
__typeof__(slh_store_unclaim) slh_pg_unclaim;
__typeof__(slh_store_next_due) slh_pg_next_due;
__typeof__(slh_store_retry) slh_pg_retry;
__typeof__(slh_store_purge) slh_pg_purge;
__typeof__(slh_store_data_version) slh_pg_data_version;
__typeof__(slh_store_stats) slh_pg_stats;
__typeof__(slh_store_dests) slh_pg_dests;
__typeof__(slh_store_throttle_get) slh_pg_throttle_get;
__typeof__(slh_store_throttle_put) slh_pg_throttle_put;
__typeof__(slh_store_expire) slh_pg_expire;
__typeof__(slh_store_minutes) slh_pg_minutes;
__typeof__(slh_store_events) slh_pg_events;
__typeof__(slh_store_event) slh_pg_event;
__typeof__(slh_store_requeue) slh_pg_requeue;
__typeof__(slh_store_export) slh_pg_export;
/* Copying a store into this one (store_pg_import.c), and who delivers from
 * it (store_pg_owner.c). */
__typeof__(slh_store_import) slh_pg_import;
__typeof__(slh_store_owners_alive) slh_pg_owners_alive;

#endif

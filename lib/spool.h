/* spool.h: the durable queue, one SQLite database in WAL mode.
 *
 * The schema is the contract between receiving and delivering:
 *
 *   event(seq INTEGER PRIMARY KEY,     -- local arrival order
 *         id TEXT NOT NULL,            -- event identity (hex SHA-256)
 *         at INTEGER NOT NULL,         -- its DateTime, slh_event_at()
 *         type TEXT NOT NULL,          -- Type as received
 *         tracking INTEGER NOT NULL,   -- enum slh_tracking
 *         received INTEGER NOT NULL,   -- unix milliseconds
 *         body TEXT NOT NULL,          -- relay body: JSON, no SecretKey
 *         UNIQUE (at, id))             -- unique as id alone is (at is a
 *                                      -- function of what id hashes), but
 *                                      -- new events land together at the
 *                                      -- index's end, not each on a random
 *                                      -- page of an id index
 *
 *   delivery(dest TEXT NOT NULL,       -- destination name
 *            seq INTEGER NOT NULL,     -- event.seq
 *            state INTEGER NOT NULL,   -- 0 pending, 1 delivered, 2 dead
 *            due INTEGER NOT NULL,     -- unix ms: not to be tried before; a
 *                                      -- deliverer claims a row by moving due
 *                                      -- past its attempt (a lease), so racing
 *                                      -- deliverers never take the same row
 *            attempts INTEGER NOT NULL,
 *            last_status INTEGER,      -- HTTP status of the last attempt
 *            last_error TEXT,          -- why the last attempt failed
 *            done INTEGER,             -- unix ms delivered or declared dead
 *            owner INTEGER,            -- while leased: the claiming
 *                                      -- deliverer's token, whose lock file
 *                                      -- tells whether it still lives
 *                                      -- (queue.h); NULL otherwise
 *            PRIMARY KEY (dest, seq)) WITHOUT ROWID
 *   index delivery_due ON delivery(dest, state, due)  -- "what is due for X"
 *   index delivery_owner ON delivery(owner) WHERE owner IS NOT NULL
 *                                      -- "what did this dead one hold"
 *
 * PRAGMA user_version holds the schema version (SLH_SPOOL_VERSION).
 * The secret key is never written to the spool.
 */
#ifndef SLH_SPOOL_H
#define SLH_SPOOL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "event.h"

struct sqlite3;
struct sqlite3_stmt;

/* Older versions are upgraded on open: 1 (no at, id UNIQUE), 2 (no owner). */
#define SLH_SPOOL_VERSION 3
#define SLH_SPOOL_FILE "slhook.db"  /* inside the spool directory */
#define SLH_SPOOL_LOCK "write.lock" /* the writers' lock, beside it */

enum slh_delivery_state { SLH_PENDING = 0, SLH_DELIVERED = 1, SLH_DEAD = 2 };

struct slh_spool; /* opaque; one per thread (a SQLite connection) */

/*
 * Opens the spool in directory dir, creating the directory (mode 0700) and
 * the database (mode 0600, WAL, synchronous=FULL, busy timeout) and schema
 * as needed; an older version is upgraded in place, one transaction a step.
 * *out is a new handle, released with slh_spool_close(). On
 * failure *out is NULL and err says why, naming the path.
 *
 * A spool is trusted only when it is the running user's own: the directory
 * and, when there is one, the database must be owned by the effective uid
 * and writable by nobody else (no group or other write bit). Otherwise,
 * before anything is opened or created in it, the open fails (SLH_ESTORE)
 * with a text naming the path, its owner and its mode: anybody who can write
 * there could slip in events that would then be relayed, signed, and a
 * root-owned file left in a web server's spool stops it from storing.
 */
enum slh_err slh_spool_open(struct slh_spool **out, const char *dir,
                            struct slh_error *err);

/* What slh_spool_open_how() may create. */
enum slh_spool_create {
    SLH_SPOOL_CREATE,    /* the directory and the database, as needed */
    SLH_SPOOL_CREATE_DB, /* the database, in a directory that exists */
    SLH_SPOOL_EXISTING   /* nothing: the database must exist */
};

/*
 * slh_spool_open(), creating only what how allows: what it may not create
 * and is missing fails the open with SLH_ENOTFOUND ("spool DIR: no spool
 * yet", or "no directory"), leaving everything as it was (not even the lock
 * file is made). For the commands that only read a spool (status, check),
 * and for those that must not make a spool of their own where the web
 * server's user should (a command run as root). A reconnection after the
 * spool was removed (slh_spool_put()) obeys the same how.
 */
enum slh_err slh_spool_open_how(struct slh_spool **out, const char *dir,
                                enum slh_spool_create how,
                                struct slh_error *err);

/*
 * SQLite's PRAGMA quick_check of sp's database (slhook check): SLH_OK when
 * it finds nothing wrong, else SLH_ESTORE with the first problem it names,
 * or why it could not look, in err. Reads the whole database: not for the
 * request path.
 */
enum slh_err slh_spool_verify(struct slh_spool *sp, struct slh_error *err);

/* Closes the handle. NULL is fine. */
void slh_spool_close(struct slh_spool *sp);

/*
 * Stores, in one transaction that is durable (fsync'd) when this returns
 * SLH_OK, every event of the n batches except Validation ones: an event row
 * each, and a pending delivery row (due now_ms) for each destination of cfg
 * whose filter wants it. An event whose id is already stored is a duplicate
 * and adds nothing. So is one that an older slhook stored under its legacy
 * id (slh_event_legacy_id(), looked up only for events that have one).
 * *n_new (may be NULL) gets the number of new events.
 * On failure nothing at all is stored and the result is SLH_ESTORE with the
 * SQLite reason in err (disk full, read-only, I/O error, ...). When the
 * spool's files were removed or replaced since sp opened them (SQLite would
 * write on into the unlinked files), the put fails and the next one reopens
 * the spool at its path, as a new process would.
 */
enum slh_err slh_spool_put(struct slh_spool *sp, const struct slh_config *cfg,
                           const struct slh_batch *const *batches, size_t n,
                           int64_t now_ms, size_t *n_new,
                           struct slh_error *err);

/*
 * Work for a writer's transaction (slh_spool_put_tasks()): fn(sp, arg, err)
 * reads and writes through sp inside it, and returns SLH_OK, or an error
 * that rolls the whole transaction back. A task may run again after such a
 * rollback (its effects undone), so whatever it hands out of the spool is
 * its caller's only once the put it ran in returned SLH_OK.
 */
struct slh_spool_task {
    enum slh_err (*fn)(struct slh_spool *sp, void *arg, struct slh_error *err);
    void *arg;
};

/*
 * slh_spool_put(), and in the same transaction, after the inserts, the n_tasks
 * tasks in order: one writer's transaction and fsync for what would have
 * been several. slhook.fcgi's committer runs its deliverer's claims and
 * outcomes this way (deliver.h), so that one connection does every write:
 * no lock handed between threads, no page cache emptied by another
 * connection's commit. A task's error fails the put with that error.
 * Tasks alone (no event to store) commit without the fsync
 * (synchronous=NORMAL), as a deliverer's own transactions do (queue.h): the
 * next commit that stores events syncs them with its own.
 */
enum slh_err slh_spool_put_tasks(struct slh_spool *sp,
                                 const struct slh_config *cfg,
                                 const struct slh_batch *const *batches,
                                 size_t n, const struct slh_spool_task *tasks,
                                 size_t n_tasks, int64_t now_ms, size_t *n_new,
                                 struct slh_error *err);

/*
 * The SQLite connection under sp, borrowed, for the delivering side of the
 * queue (queue.c), which shares this schema. Not for other modules. Ask for
 * it each time rather than keeping it: slh_spool_put() replaces the
 * connection after finding the spool's files removed or replaced under it.
 */
struct sqlite3 *slh_spool_db(struct slh_spool *sp);

/*
 * The delivering side's statements, prepared once per connection rather
 * than once per use: a deliverer keeping up with live traffic claims and
 * records a few rows at a time, and preparing its four statements each time
 * cost more than running them. *st gets sql prepared on sp's connection,
 * kept until the connection closes; sql is told apart by its address, so
 * pass a string literal. Give it back with slh_spool_release() (reset,
 * bindings cleared), never sqlite3_finalize(). Returns an SQLite result
 * code; SQLITE_FULL when SLH_SPOOL_STMTS distinct statements are kept
 * already (a programming error: the set is fixed).
 */
#define SLH_SPOOL_STMTS 16
int slh_spool_prepare(struct slh_spool *sp, const char *sql,
                      struct sqlite3_stmt **st);
void slh_spool_release(struct sqlite3_stmt *st);

/*
 * Takes and lets go of the spool's writers' lock: a flock() on
 * SLH_SPOOL_LOCK, which every writer of ours (slh_spool_put, the delivering
 * side) holds from before BEGIN IMMEDIATE to after COMMIT or ROLLBACK. A
 * waiter sleeps in the kernel and wakes as the lock is let go, where
 * SQLite's busy handler could only poll: under 16 concurrent CGI requests
 * that polling cost 73 sleeps and 277 fcntl calls a request. The wait is
 * bounded by the busy timeout SQLite's own waits have (5 s): a writer
 * stopped while holding the lock must not hold every request with it. Past
 * the bound slh_spool_lock() returns SLH_ESTORE (the handler's 503 with
 * Retry-After) and takes nothing; so it does when flock() fails. To end a
 * wait the calling thread alone is sent SLH_SPOOL_LOCK_SIGNAL from a timer,
 * with a handler that does nothing, installed on first contention: no
 * program linking this library may use that signal for anything else.
 * Threads and processes alike, each with its own handle. Calls nest: only
 * the outermost pair takes and lets go of the lock; call slh_spool_unlock()
 * only after SLH_OK. NULL is fine (SLH_OK), and so is a spool whose lock
 * file cannot be opened (SQLite's busy handler then waits).
 */
#define SLH_SPOOL_LOCK_SIGNAL (SIGRTMAX - 1)
enum slh_err slh_spool_lock(struct slh_spool *sp, struct slh_error *err);
void slh_spool_unlock(struct slh_spool *sp);

/*
 * Checkpoints mostly off the commit path. SQLite's own checkpoint runs
 * inside the commit that finds the WAL past 1000 pages: it copies them all
 * into the database and fsyncs it before that commit returns, and under
 * load every request waiting on that commit waits with it. After this call,
 * each commit of sp that leaves half that many pages or more in the WAL
 * calls due(ctx) (on the committing thread: keep it short), and someone
 * holding another connection runs slh_spool_checkpoint() to copy the WAL
 * ahead; at the full count sp still checkpoints itself, as SQLite would,
 * but finds little left to copy, and the WAL starts over. slhook.fcgi
 * (wrk -c16, --no-deliver): p99 7.4-8.0 -> 5.7-6.0 ms. Kept when sp
 * reconnects.
 */
#define SLH_SPOOL_CHECKPOINT_PAGES 1000
void slh_spool_defer_checkpoints(struct slh_spool *sp, void (*due)(void *ctx),
                                 void *ctx);

/* A passive checkpoint: copies into the database what of the WAL no reader
 * still needs, without waiting for writers or holding them up. */
enum slh_err slh_spool_checkpoint(struct slh_spool *sp, struct slh_error *err);

/* Milliseconds since the epoch, from CLOCK_REALTIME. */
int64_t slh_now_ms(void);

#endif

/* store_sqlite.h: the SQLite backend of store.h, inside (not for callers).
 *
 * A spool directory holds one SQLite database in WAL mode, SLH_SQLITE_FILE.
 * The schema:
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
 *            state INTEGER NOT NULL,   -- enum slh_delivery_state
 *            due INTEGER NOT NULL,     -- unix ms: not to be tried before; a
 *                                      -- claim moves it past its attempt
 *            attempts INTEGER NOT NULL,
 *            last_status INTEGER,      -- HTTP status of the last attempt
 *            last_error TEXT,          -- why the last attempt failed
 *            done INTEGER,             -- unix ms delivered or declared
 *                                      -- dead; for a pending row, when it
 *                                      -- was revived (retry, requeue), so
 *                                      -- max_age counts from then; NULL
 *            owner INTEGER,            -- while leased: the claiming
 *                                      -- deliverer's token, whose lock file
 *                                      -- tells whether it still lives;
 *                                      -- NULL otherwise
 *            PRIMARY KEY (dest, seq)) WITHOUT ROWID
 *   index delivery_due ON delivery(dest, state, due)  -- "what is due for X"
 *   index delivery_owner ON delivery(owner) WHERE owner IS NOT NULL
 *                                      -- "what did this dead one hold"
 *   index event_received ON event(received)  -- version 4: windows by
 *                                      -- received time, newest first
 *
 *   message(seq INTEGER PRIMARY KEY,   -- version 8: event.seq, filled by
 *           message_id TEXT)           -- deliverers (slh_sqlite_index())
 *                                      -- in seq order; the body's
 *                                      -- MessageId, NULL when none
 *   index message_id ON message(message_id) WHERE message_id IS NOT NULL
 *   trigger message_forget             -- an event's deletion takes its row
 *
 *   throttle(dest TEXT PRIMARY KEY,    -- version 6: a destination's
 *            failures INTEGER NOT NULL, -- breaker and pace, shared by
 *            opened INTEGER NOT NULL,  -- every deliverer (store.h's
 *            probes INTEGER NOT NULL,  -- struct slh_throttle_state,
 *            probe_at INTEGER NOT NULL, -- field by field; probing 0/1,
 *            probing INTEGER NOT NULL, -- pace in unix microseconds)
 *            pace INTEGER NOT NULL) WITHOUT ROWID
 *
 *   tally(dest TEXT PRIMARY KEY,       -- version 7: each destination's
 *         delivered INTEGER NOT NULL)  -- delivered rows, kept by triggers
 *         WITHOUT ROWID                -- (tally_insert, tally_update,
 *                                      -- tally_delete) on delivery
 *
 * PRAGMA user_version holds the schema version (SLH_SQLITE_VERSION).
 *
 * Owners are lock files, SLH_SQLITE_CLAIMS/<token>.lock in the spool
 * directory, each held locked (flock) by its deliverer from before its
 * first claim until it exits, when the kernel lets go of the lock however
 * it exits: a lock file no one holds is a dead owner's.
 *
 * Every writer of ours holds the writers' lock, a flock() on
 * SLH_SQLITE_LOCK, from before BEGIN IMMEDIATE to after COMMIT or ROLLBACK:
 * a waiter sleeps in the kernel and wakes as the lock is let go, where
 * SQLite's busy handler could only poll (BENCHMARKS.md).
 */
#ifndef SLH_STORE_SQLITE_H
#define SLH_STORE_SQLITE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <sqlite3.h>

#include "store_backend.h"

/* Older versions are upgraded on open: 1 (no at, id UNIQUE), 2 (no owner),
 * 3 (no event_received), 4 (no event_message_id), 5 (no
 * throttle), 6 (no tally), 7 (event_message_id, not message). */
#define SLH_SQLITE_VERSION 8
#define SLH_SQLITE_FILE "slhook.db"  /* inside the spool directory */
#define SLH_SQLITE_LOCK "write.lock" /* the writers' lock, beside it */
#define SLH_SQLITE_CLAIMS "claims"   /* the owners' lock files, beside it */
#define SLH_SQLITE_BUSY_MS 5000 /* SQLite's busy wait and the writers' lock */
#define SLH_SQLITE_STMTS 56     /* statements kept per connection */
#define SLH_SQLITE_DEAD_MAX 16  /* dead owners taken back per call */

/* A deliverer's lock file, or a dead one's. */
struct slh_sqlite_owner {
    int64_t token; /* > 0; 0: none (rows claimed so are owned by no one) */
    int fd;        /* holding the lock on its lock file; -1: none */
};

struct slh_sqlite {
    struct slh_store base;
    sqlite3 *db;
    enum slh_store_create how; /* what open_db() may create */
    int lock_fd;    /* SLH_SQLITE_LOCK, or -1 where it cannot be opened */
    int lock_depth; /* slh_sqlite_lock() calls not yet let go */
    struct timespec busy_since; /* when the current wait for a lock began */
    char *dir;
    char *path;     /* dir/slhook.db, for messages and reconnecting */
    char *wal_path; /* path-wal */
    dev_t db_dev;   /* the files this connection writes into */
    ino_t db_ino;
    dev_t wal_dev;
    ino_t wal_ino;
    bool is_stale;    /* the database was removed under us: reopen first */
    bool is_wal_lost; /* the -wal file was removed under us */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } kept[SLH_SQLITE_STMTS];          /* slh_sqlite_prepare()'s */
    void (*checkpoint_due)(void *ctx); /* slh_sqlite_defer_checkpoints() */
    void *checkpoint_ctx;
    void (*note)(void *ctx, const char *text); /* slh_store_on_note() */
    void *note_ctx;
    struct slh_sqlite_ckpt *ckpt; /* the committer's checkpointer, or NULL */
    /* Dead owners whose rows the open transaction takes back: forgotten
     * when it commits, left for the next look when it rolls back. */
    struct slh_sqlite_owner dead[SLH_SQLITE_DEAD_MAX];
    size_t n_dead;
};

extern const struct slh_store_ops slh_store_sqlite_ops;

/* The handle under st, which must be a SQLite store's. */
static inline struct slh_sqlite *
slh_sqlite(struct slh_store *st)
{
    return (struct slh_sqlite *)st;
}

/* The connection under st (NULL for NULL), for this backend and its
 * tests. Ask for it each time rather than keeping it: a put replaces it
 * after finding the spool's files removed or replaced. */
sqlite3 *slh_sqlite_db(struct slh_store *st);

/*
 * *st gets sql prepared on sq's connection, kept until the connection
 * closes: statements run often cost more to prepare than to run. sql is
 * told apart by its address, so pass a string literal. Give it back with
 * slh_sqlite_release() (reset, bindings cleared), never sqlite3_finalize().
 * Returns an SQLite result code; SQLITE_FULL when SLH_SQLITE_STMTS distinct
 * statements are kept already (a programming error: the set is fixed).
 */
int slh_sqlite_prepare(struct slh_sqlite *sq, const char *sql,
                       sqlite3_stmt **st);
void slh_sqlite_release(sqlite3_stmt *st);

/* Steps st, which returns no row that matters, and releases it: SQLITE_DONE
 * on success (a row counts as done). */
int slh_sqlite_run(sqlite3_stmt *st);

/*
 * The one error text of this backend: "spool PATH: WHAT: SQLite's message
 * (errno text)", what and the errno only when there is one (an errno is
 * meaningful for I/O and open errors only). SLH_ESTORE.
 */
enum slh_err slh_sqlite_fail(struct slh_sqlite *sq, const char *what,
                             struct slh_error *err);

/*
 * A write: takes the writers' lock, then BEGIN IMMEDIATE; *own is true.
 * Inside a writer's transaction already open on sq (a task of a put) it
 * joins that one instead: *own is false. slh_sqlite_end() ends it: COMMIT
 * when rc is SLH_OK, else ROLLBACK (a failed COMMIT is rolled back and
 * reported), and lets go of the lock; a joined one is left to its owner.
 * Either settles the dead owners the transaction took back.
 */
enum slh_err slh_sqlite_begin(struct slh_sqlite *sq, const char *what,
                              bool *own, struct slh_error *err);
enum slh_err slh_sqlite_end(struct slh_sqlite *sq, bool own, enum slh_err rc,
                            struct slh_error *err);

/*
 * Runs sql, one statement that writes (?1 bound to text unless it is NULL,
 * ?2 to num), in a write of its own or the one open on sq; *n (may be
 * NULL) gets the rows it changed, 0 on failure.
 */
enum slh_err slh_sqlite_change(struct slh_sqlite *sq, const char *what,
                               const char *sql, const char *text, int64_t num,
                               size_t *n, struct slh_error *err);

/*
 * A read transaction, so that what is read in it agrees: *own is true when
 * slh_sqlite_read_end() is to end it, false when it joined one already
 * open on sq.
 */
enum slh_err slh_sqlite_read_begin(struct slh_sqlite *sq, const char *what,
                                   bool *own, struct slh_error *err);
void slh_sqlite_read_end(struct slh_sqlite *sq, bool own);

/*
 * Takes and lets go of the writers' lock (above). The wait is bounded by
 * SLH_SQLITE_BUSY_MS: a writer stopped while holding the lock must not hold
 * every request with it. Past the bound, or when flock() fails, it returns
 * SLH_ESTORE (the handler's 503 with Retry-After) and takes nothing. To end
 * a wait the calling thread alone is sent SLH_SQLITE_LOCK_SIGNAL from a
 * timer, with a handler that does nothing, installed on first contention:
 * no program linking this library may use that signal for anything else.
 * Calls nest: only the outermost pair takes and lets go of the lock; call
 * unlock only after SLH_OK. NULL is fine (SLH_OK), and so is a spool whose
 * lock file cannot be opened (SQLite's busy handler then waits).
 */
#define SLH_SQLITE_LOCK_SIGNAL (SIGRTMAX - 1)
enum slh_err slh_sqlite_lock(struct slh_store *st, struct slh_error *err);
void slh_sqlite_unlock(struct slh_store *st);
/* The writers' lock file of sq, opened into sq->lock_fd (-1 without). */
void slh_sqlite_open_lock(struct slh_sqlite *sq);
/* SQLite's busy handler for sq's connection: short steps, bounded. */
int slh_sqlite_busy_wait(void *arg, int count);

/*
 * Checkpoints mostly off the commit path (SLH_STORE_COMMITTER).
 * SQLite's own checkpoint runs inside the commit that finds the WAL past
 * SLH_SQLITE_CHECKPOINT_PAGES: every request waiting on that commit waits
 * with it. With a hook, each commit that leaves half that many pages or
 * more in the WAL calls due(ctx), and another connection copies the WAL
 * ahead (a passive checkpoint, slh_sqlite_checkpoint()); at the full count the
 * connection still checkpoints itself, and finds little left to copy.
 */
#define SLH_SQLITE_CHECKPOINT_PAGES 1000
void slh_sqlite_defer_checkpoints(struct slh_store *st, void (*due)(void *ctx),
                                  void *ctx);
enum slh_err slh_sqlite_checkpoint(struct slh_store *st, struct slh_error *err);
/* Puts sq's hook on its (new) connection, if deferred. */
void slh_sqlite_hook_checkpoints(struct slh_sqlite *sq);

/*
 * The committer's checkpointer (store_sqlite_ckpt.c): start opens a
 * connection of its own and a thread that checkpoints when sq's commits
 * defer it, telling failures to sq's note; stop ends both (NULL ckpt is
 * fine).
 */
struct slh_sqlite_ckpt;
enum slh_err slh_sqlite_ckpt_start(struct slh_sqlite *sq,
                                   struct slh_error *err);
void slh_sqlite_ckpt_stop(struct slh_sqlite *sq);

/* Whether the file at path is the one with that identity; the identity of
 * the file at path (false, errno set, when there is none); whether the
 * file at path is the one open on fd. */
bool slh_sqlite_file_id(const char *path, dev_t *dev, ino_t *ino);
bool slh_sqlite_is_file(const char *path, dev_t dev, ino_t ino);
bool slh_sqlite_is_fd_file(int fd, const char *path);

/*
 * Opening (store_sqlite_open.c). slh_sqlite_open_db() opens sq->path into
 * sq->db with everything store.h promises (the directory and file checks,
 * WAL, the schema made or upgraded), on failure leaving sq->db NULL;
 * slh_sqlite_close_db() closes it, and its kept statements and lock file.
 * slh_sqlite_reopen() starts over at the path, as a fresh process would,
 * keeping the old connection until the new one works.
 * slh_sqlite_pragma() gives the integer, or the text in buf, of the first
 * column of a pragma's first row (an SQLite result code).
 */
enum slh_err slh_sqlite_open_db(struct slh_sqlite *sq, struct slh_error *err);
void slh_sqlite_close_db(struct slh_sqlite *sq);
enum slh_err slh_sqlite_reopen(struct slh_sqlite *sq, struct slh_error *err);
int slh_sqlite_pragma(sqlite3 *db, const char *sql, sqlite3_int64 *num,
                      char *buf, size_t size);

/* The backend's ops, each with the type and the contract of the store.h
 * function of the same name (store_backend.h). Writing
 * (store_sqlite_put.c): */
__typeof__(slh_store_put_tasks) slh_sqlite_put_tasks;

/*
 * Owners (store_sqlite_owner.c). slh_sqlite_owner_open() makes *o a new
 * owner in the spool directory dir: a random token, its lock file made
 * (the SLH_SQLITE_CLAIMS directory too, mode 0700) and locked,
 * close-on-exec; on failure *o is {0, -1} and err says why (SLH_EIO).
 * slh_sqlite_owner_close() removes o's lock file and lets go of its lock;
 * slh_sqlite_owner_drop() lets go of the lock and leaves the file, for the
 * next look to find again. Both make *o {0, -1}, and take {0, -1}.
 * slh_sqlite_owners_dead() finds lock files in dir other than self's that
 * no one holds, locking each (so no other deliverer takes its rows back at
 * the same time): up to max into dead[], n returned. A directory that
 * cannot be read holds none.
 */
enum slh_err slh_sqlite_owner_open(struct slh_sqlite_owner *o, const char *dir,
                                   struct slh_error *err);
void slh_sqlite_owner_close(struct slh_sqlite_owner *o, const char *dir);
void slh_sqlite_owner_drop(struct slh_sqlite_owner *o);
size_t slh_sqlite_owners_dead(const char *dir, int64_t self,
                              struct slh_sqlite_owner *dead, size_t max);
/* Forgets (committed) or drops the dead owners sq's transaction held. */
void slh_sqlite_settle_dead(struct slh_sqlite *sq, bool is_committed);
__typeof__(slh_store_owner_open) slh_sqlite_store_owner_open;

/* The delivering ops (store_sqlite_queue.c, store_sqlite_stats.c). */
__typeof__(slh_store_role) slh_sqlite_role;
__typeof__(slh_store_take_back) slh_sqlite_take_back;
__typeof__(slh_store_claim) slh_sqlite_claim;
__typeof__(slh_store_finish) slh_sqlite_finish;
__typeof__(slh_store_unclaim) slh_sqlite_unclaim;
__typeof__(slh_store_next_due) slh_sqlite_next_due;
__typeof__(slh_store_stats) slh_sqlite_stats;
__typeof__(slh_store_retry) slh_sqlite_retry;
__typeof__(slh_store_purge) slh_sqlite_purge;
__typeof__(slh_store_dests) slh_sqlite_dests;
__typeof__(slh_store_data_version) slh_sqlite_data_version;

/* The reading ops (store_sqlite_events.c), and what makes them fast. */
__typeof__(slh_store_events) slh_sqlite_events;
__typeof__(slh_store_event) slh_sqlite_event;
__typeof__(slh_store_requeue) slh_sqlite_requeue;
__typeof__(slh_store_index) slh_sqlite_index;
__typeof__(slh_store_export) slh_sqlite_export;

/* Copying a store into this one (store_sqlite_import.c), and who delivers
 * from it (store_sqlite_owner.c). */
__typeof__(slh_store_import) slh_sqlite_import;
__typeof__(slh_store_owners_alive) slh_sqlite_owners_alive;

/* The operator's page's figures (store_sqlite_page.c). */
__typeof__(slh_store_minutes) slh_sqlite_minutes;

/* Protecting a destination (store_sqlite_throttle.c). */
__typeof__(slh_store_throttle_get) slh_sqlite_throttle_get;
__typeof__(slh_store_throttle_put) slh_sqlite_throttle_put;
__typeof__(slh_store_expire) slh_sqlite_expire;

#endif

/* store_sqlite.c: the SQLite backend's ops table and its one set of
 * helpers (statements, transactions, errors, file identity). */
#include "store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store_backend.h"

/* The errno behind an SQLite I/O error. sqlite3_system_errno() is not set
 * for a failed COMMIT (the write that failed was the WAL's), so the files'
 * own last errno comes first. */
static int
io_errno(sqlite3 *db)
{
    sqlite3_file *wal = NULL;
    int e = 0;

    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) ==
            SQLITE_OK &&
        wal != NULL && wal->pMethods != NULL)
        wal->pMethods->xFileControl(wal, SQLITE_FCNTL_LAST_ERRNO, &e);
    if (e == 0)
        sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, &e);
    return e != 0 ? e : sqlite3_system_errno(db);
}

/* An errno is only meaningful for I/O and open errors; elsewhere it may be
 * left over from an earlier, harmless failure. */
enum slh_err
slh_sqlite_fail(struct slh_sqlite *sq, const char *what, struct slh_error *err)
{
    int primary = sqlite3_extended_errcode(sq->db) & 0xff;
    int sys = primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN
                  ? io_errno(sq->db)
                  : 0;
    char pre[64] = "";

    if (what != NULL)
        snprintf(pre, sizeof(pre), "%s: ", what);
    if (sys != 0)
        return slh_error_set(err, SLH_ESTORE, "spool %s: %s%s (%s)", sq->path,
                             pre, sqlite3_errmsg(sq->db), strerror(sys));
    return slh_error_set(err, SLH_ESTORE, "spool %s: %s%s", sq->path, pre,
                         sqlite3_errmsg(sq->db));
}

sqlite3 *
slh_sqlite_db(struct slh_store *st)
{
    return st != NULL ? slh_sqlite(st)->db : NULL;
}

int
slh_sqlite_prepare(struct slh_sqlite *sq, const char *sql, sqlite3_stmt **st)
{
    size_t i;
    int rc;

    *st = NULL;
    for (i = 0; i < SLH_SQLITE_STMTS && sq->kept[i].sql != NULL; i++) {
        if (sq->kept[i].sql == sql) {
            *st = sq->kept[i].st;
            return SQLITE_OK;
        }
    }
    if (i == SLH_SQLITE_STMTS)
        return SQLITE_FULL;
    rc = sqlite3_prepare_v3(sq->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
                            NULL);
    if (rc == SQLITE_OK) {
        sq->kept[i].sql = sql;
        sq->kept[i].st = *st;
    }
    return rc;
}

void
slh_sqlite_release(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Reset at once, so that no statement is left holding a read transaction
 * open (SQLite only leaves its error state after an I/O error when every
 * statement is reset). The error message stays with the connection. */
int
slh_sqlite_run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    slh_sqlite_release(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* One of the three transaction statements, kept. */
static int
run_sql(struct slh_sqlite *sq, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = slh_sqlite_prepare(sq, sql, &st);

    return rc == SQLITE_OK ? slh_sqlite_run(st) : rc;
}

static const char begin_sql[] = "BEGIN IMMEDIATE";
static const char commit_sql[] = "COMMIT";
static const char rollback_sql[] = "ROLLBACK";

enum slh_err
slh_sqlite_begin(struct slh_sqlite *sq, const char *what, bool *own,
                 struct slh_error *err)
{
    *own = sqlite3_get_autocommit(sq->db) != 0;
    if (!*own)
        return SLH_OK;
    if (slh_sqlite_lock(&sq->base, err) != SLH_OK)
        return SLH_ESTORE;
    if (run_sql(sq, begin_sql) == SQLITE_DONE)
        return SLH_OK;
    slh_sqlite_unlock(&sq->base);
    return slh_sqlite_fail(sq, what, err);
}

/* A failed COMMIT (disk full, I/O error, read-only) may leave the
 * transaction open; without the ROLLBACK the connection would refuse every
 * later BEGIN, even once there is room again. One that cannot be rolled
 * back is a wedged connection: the next put starts over. */
enum slh_err
slh_sqlite_end(struct slh_sqlite *sq, bool own, enum slh_err rc,
               struct slh_error *err)
{
    if (!own)
        return rc;
    if (rc == SLH_OK && run_sql(sq, commit_sql) != SQLITE_DONE)
        rc = slh_sqlite_fail(sq, NULL, err);
    if (rc != SLH_OK && !sqlite3_get_autocommit(sq->db) &&
        (run_sql(sq, rollback_sql) != SQLITE_DONE ||
         !sqlite3_get_autocommit(sq->db)))
        sq->is_stale = true;
    slh_sqlite_unlock(&sq->base);
    slh_sqlite_settle_dead(sq, rc == SLH_OK);
    return rc;
}

enum slh_err
slh_sqlite_change(struct slh_sqlite *sq, const char *what, const char *sql,
                  const char *text, int64_t num, size_t *n,
                  struct slh_error *err)
{
    sqlite3_stmt *q = NULL;
    enum slh_err rc;
    bool own;

    if (n != NULL)
        *n = 0;
    rc = slh_sqlite_begin(sq, what, &own, err);
    if (rc != SLH_OK)
        return rc;
    if (slh_sqlite_prepare(sq, sql, &q) != SQLITE_OK)
        return slh_sqlite_end(sq, own, slh_sqlite_fail(sq, what, err), err);
    if (text != NULL)
        sqlite3_bind_text(q, 1, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, num);
    if (slh_sqlite_run(q) != SQLITE_DONE)
        rc = slh_sqlite_fail(sq, what, err);
    else if (n != NULL)
        *n = (size_t)sqlite3_changes(sq->db);
    rc = slh_sqlite_end(sq, own, rc, err);
    if (rc != SLH_OK && n != NULL)
        *n = 0;
    return rc;
}

static const char read_sql[] = "BEGIN";

enum slh_err
slh_sqlite_read_begin(struct slh_sqlite *sq, const char *what, bool *own,
                      struct slh_error *err)
{
    *own = sqlite3_get_autocommit(sq->db) != 0;
    if (*own && run_sql(sq, read_sql) != SQLITE_DONE)
        return slh_sqlite_fail(sq, what, err);
    return SLH_OK;
}

/* A read has nothing to keep: ROLLBACK ends it as well as COMMIT. */
void
slh_sqlite_read_end(struct slh_sqlite *sq, bool own)
{
    if (own)
        (void)run_sql(sq, rollback_sql);
}

bool
slh_sqlite_file_id(const char *path, dev_t *dev, ino_t *ino)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return false;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return true;
}

bool
slh_sqlite_is_file(const char *path, dev_t dev, ino_t ino)
{
    dev_t d;
    ino_t i;

    return slh_sqlite_file_id(path, &d, &i) && d == dev && i == ino;
}

bool
slh_sqlite_is_fd_file(int fd, const char *path)
{
    struct stat st;

    return fstat(fd, &st) == 0 &&
           slh_sqlite_is_file(path, st.st_dev, st.st_ino);
}

static enum slh_err
describe(struct slh_store *st, char *buf, size_t size, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    sqlite3_int64 version = 0;

    if (slh_sqlite_pragma(sq->db, "PRAGMA user_version", &version, NULL, 0) !=
        SQLITE_OK)
        return slh_sqlite_fail(sq, "describe", err);
    snprintf(buf, size, "SQLite %s, schema %lld", sqlite3_libversion(),
             (long long)version);
    return SLH_OK;
}

static bool
is_mine(const char *spool)
{
    (void)spool; /* a directory; the last backend takes the rest */
    return true;
}

static enum slh_err
store_open(struct slh_store **out, const char *dir, enum slh_store_create how,
           struct slh_error *err)
{
    struct slh_sqlite *sq = calloc(1, sizeof(*sq));
    size_t len = strlen(dir);
    enum slh_err e;

    if (sq == NULL)
        return slh_error_set(err, SLH_ENOMEM, "spool %s: out of memory", dir);
    sq->base.ops = &slh_store_sqlite_ops;
    sq->dir = strdup(dir);
    sq->lock_fd = -1;
    sq->how = how;
    sq->path = malloc(len + sizeof("/" SLH_SQLITE_FILE));
    sq->wal_path = malloc(len + sizeof("/" SLH_SQLITE_FILE "-wal"));
    if (sq->dir == NULL || sq->path == NULL || sq->wal_path == NULL) {
        e = slh_error_set(err, SLH_ENOMEM, "spool %s: out of memory", dir);
        goto fail;
    }
    snprintf(sq->path, len + sizeof("/" SLH_SQLITE_FILE), "%s/%s", dir,
             SLH_SQLITE_FILE);
    snprintf(sq->wal_path, len + sizeof("/" SLH_SQLITE_FILE "-wal"), "%s-wal",
             sq->path);
    e = slh_sqlite_open_db(sq, err);
    if (e != SLH_OK)
        goto fail;
    *out = &sq->base;
    return SLH_OK;
fail:
    slh_store_close(&sq->base);
    return e;
}

static void
store_close(struct slh_store *st)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    char *paths[] = {sq->dir, sq->path, sq->wal_path};

    /* The checkpointer first: the hook of the connection that closes next
     * would wake it. */
    slh_sqlite_ckpt_stop(sq);
    slh_sqlite_close_db(sq);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        free(paths[i]);
    free(sq);
}

static const char *
where(const struct slh_store *st)
{
    return ((const struct slh_sqlite *)st)->path;
}

/* A destination whose tally is not its count of delivered rows, if any:
 * the triggers keep them equal, so one that differs was written by
 * something else. */
static const char tally_sql[] =
    "SELECT dest FROM (SELECT dest, COUNT(*) AS n FROM delivery"
    " WHERE state = 1 GROUP BY dest) LEFT JOIN tally USING (dest)"
    " WHERE delivered IS NOT n"
    " UNION ALL SELECT dest FROM tally WHERE delivered <> 0 AND NOT EXISTS"
    " (SELECT 1 FROM delivery d WHERE d.dest = tally.dest AND d.state = 1)"
    " LIMIT 1";

/* MessageIds of events gone: the trigger message_forget takes them with
 * their events, so one left was written by something else. A rowid
 * lookup per row: `slhook check` alone pays for it. */
static const char orphans_sql[] =
    "SELECT seq FROM message WHERE seq NOT IN (SELECT seq FROM event)"
    " LIMIT 1";

static enum slh_err
verify(struct slh_store *st, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    char result[200];

    if (slh_sqlite_pragma(sq->db, "PRAGMA quick_check(1)", NULL, result,
                          sizeof(result)) != SQLITE_OK)
        return slh_sqlite_fail(sq, NULL, err);
    if (strcmp(result, "ok") != 0) {
        /* One line for a message: SQLite's has one per problem found. */
        for (char *nl = strchr(result, '\n'); nl != NULL; nl = strchr(nl, '\n'))
            *nl = ' ';
        return slh_error_set(err, SLH_ESTORE, "spool %s: damaged: %s", sq->path,
                             result);
    }
    result[0] = '\0';
    if (slh_sqlite_pragma(sq->db, tally_sql, NULL, result, sizeof(result)) ==
        SQLITE_OK)
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: the tally of delivered rows for %s "
                             "disagrees with the rows (UPDATE tally SET "
                             "delivered = (SELECT COUNT(*) FROM delivery "
                             "WHERE dest = tally.dest AND state = 1) mends it)",
                             sq->path, result);
    if (slh_sqlite_pragma(sq->db, orphans_sql, NULL, result, sizeof(result)) ==
        SQLITE_OK)
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: MessageIds kept for events no longer "
                             "stored (seq %s; DELETE FROM message WHERE seq "
                             "NOT IN (SELECT seq FROM event) mends it)",
                             sq->path, result);
    return SLH_OK;
}

/* Below this much room a commit (its WAL frames, a checkpoint) may fail. */
#define HEALTH_MIN_FREE ((uint64_t)1 << 20)

/* What a write needs and no open shows: the database file, its directory
 * (the WAL and shm files are made and removed there) writable by this
 * process, and room on the disk. */
static enum slh_err
health(struct slh_store *st, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    struct statvfs fs;

    if (access(sq->path, W_OK) != 0 || access(sq->dir, W_OK | X_OK) != 0)
        return slh_error_set(err, SLH_ESTORE, "spool %s: not writable: %s",
                             sq->dir, strerror(errno));
    if (statvfs(sq->dir, &fs) != 0)
        return slh_error_set(err, SLH_ESTORE, "spool %s: statvfs: %s", sq->dir,
                             strerror(errno));
    if ((uint64_t)fs.f_bavail * fs.f_frsize < HEALTH_MIN_FREE)
        return slh_error_set(
            err, SLH_ESTORE, "spool %s: the disk is full (%llu bytes free)",
            sq->dir, (unsigned long long)fs.f_bavail * fs.f_frsize);
    return SLH_OK;
}

/* A new spool made where the old one was removed: there is a file at the
 * path, and it is not the one open. */
static bool
is_replaced(struct slh_store *st)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    dev_t dev;
    ino_t ino;

    return slh_sqlite_file_id(sq->path, &dev, &ino) &&
           (dev != sq->db_dev || ino != sq->db_ino);
}

static void
on_note(struct slh_store *st, void (*note)(void *ctx, const char *text),
        void *ctx)
{
    slh_sqlite(st)->note = note;
    slh_sqlite(st)->note_ctx = ctx;
}

/* A lock file's owner dies with its process, and only then: its claims
 * never lapse while it lives (store.h). */
static enum slh_err
owner_beat(struct slh_store *st, struct slh_store_owner *o, int64_t now_ms,
           bool is_fresh, struct slh_error *err)
{
    (void)st;
    (void)o;
    (void)now_ms;
    (void)is_fresh;
    (void)err;
    return SLH_OK;
}

#define PURGE_STAMP "purge.stamp" /* its mtime: the last purge began */

/* The stamp's mtime, across the processes of this one host: two that look
 * at once may both purge, which only costs the second a look at rows the
 * first already forgot. */
static enum slh_err
purge_due(struct slh_store *st, int64_t every_ms, int64_t now_ms, bool *is_due,
          struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    char path[4096];
    struct stat sb;
    int fd;

    (void)err;
    if (snprintf(path, sizeof(path), "%s/%s", sq->dir, PURGE_STAMP) >=
        (int)sizeof(path))
        return SLH_OK;
    if (stat(path, &sb) == 0 && now_ms - ((int64_t)sb.st_mtim.tv_sec * 1000 +
                                          sb.st_mtim.tv_nsec / 1000000) <
                                    every_ms)
        return SLH_OK;
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return SLH_OK;
    (void)futimens(fd, NULL);
    close(fd);
    *is_due = true;
    return SLH_OK;
}

const struct slh_store_ops slh_store_sqlite_ops = {
    .name = "sqlite",
    .is_mine = is_mine,
    .is_local = true,
    .open = store_open,
    .close = store_close,
    .where = where,
    .describe = describe,
    .verify = verify,
    .health = health,
    .is_replaced = is_replaced,
    .role = slh_sqlite_role,
    .on_note = on_note,
    .put_tasks = slh_sqlite_put_tasks,
    .owner_open = slh_sqlite_store_owner_open,
    .take_back = slh_sqlite_take_back,
    .owner_beat = owner_beat,
    .claim = slh_sqlite_claim,
    .finish = slh_sqlite_finish,
    .unclaim = slh_sqlite_unclaim,
    .next_due = slh_sqlite_next_due,
    .stats = slh_sqlite_stats,
    .retry = slh_sqlite_retry,
    .purge = slh_sqlite_purge,
    .purge_due = purge_due,
    .dests = slh_sqlite_dests,
    .data_version = slh_sqlite_data_version,
    .events = slh_sqlite_events,
    .event = slh_sqlite_event,
    .requeue = slh_sqlite_requeue,
    .index = slh_sqlite_index,
    .minutes = slh_sqlite_minutes,
    .throttle_get = slh_sqlite_throttle_get,
    .throttle_put = slh_sqlite_throttle_put,
    .expire = slh_sqlite_expire,
    .export_events = slh_sqlite_export,
    .import_events = slh_sqlite_import,
    .owners_alive = slh_sqlite_owners_alive,
};

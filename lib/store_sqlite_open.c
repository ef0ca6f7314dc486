/* store_sqlite_open.c: opening a SQLite spool: the directory's and the
 * file's checks, WAL mode, the schema made or upgraded. */
#include "store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* The event table's columns, for the schema and for upgrading version 1. */
#define EVENT_COLUMNS                                                          \
    "(seq INTEGER PRIMARY KEY,"                                                \
    " id TEXT NOT NULL,"                                                       \
    " at INTEGER NOT NULL,"                                                    \
    " type TEXT NOT NULL,"                                                     \
    " tracking INTEGER NOT NULL,"                                              \
    " received INTEGER NOT NULL,"                                              \
    " body TEXT NOT NULL,"                                                     \
    " UNIQUE (at, id))"

/* What `slhook show --message-id` finds an event by (version 8): each
 * event's MessageId, by seq, with an index on it. Not an index on the event
 * table: that cost every receive ~10 us of SQLite parsing the body again
 * and a write to a random page (BENCHMARKS.md, issues 15 and 16). A
 * deliverer fills it in its idle moments (slh_sqlite_index()); a lookup
 * reads the few events past its last seq itself (store_sqlite_events.c).
 * A purge's deletions take their rows with them, whoever deletes. An id
 * prefix has no index at all: every event would land on a random page of
 * it. */
#define MESSAGE_TABLE                                                          \
    "CREATE TABLE message(seq INTEGER PRIMARY KEY, message_id TEXT);"          \
    "CREATE INDEX message_id ON message(message_id)"                           \
    " WHERE message_id IS NOT NULL;"                                           \
    "CREATE TRIGGER message_forget AFTER DELETE ON event BEGIN"                \
    " DELETE FROM message WHERE seq = old.seq; END;"

/* Version 5's index, which version 8 replaced, for upgrading through it. */
#define EVENT_FIND_INDEX_V5                                                    \
    "CREATE INDEX event_message_id"                                            \
    " ON event(json_extract(body, '$.MessageId'));"

/* Each destination's breaker and pace: version 6. */
#define THROTTLE_TABLE                                                         \
    "CREATE TABLE throttle(dest TEXT PRIMARY KEY,"                             \
    " failures INTEGER NOT NULL,"                                              \
    " opened INTEGER NOT NULL,"                                                \
    " probes INTEGER NOT NULL,"                                                \
    " probe_at INTEGER NOT NULL,"                                              \
    " probing INTEGER NOT NULL,"                                               \
    " pace INTEGER NOT NULL) WITHOUT ROWID;"

/* Each destination's count of delivered rows (version 7): counting them,
 * most of the rows, read a million index entries for every status. A
 * finish adds what it delivered, one write per destination
 * (store_sqlite_queue.c); triggers take off what leaves the delivered
 * state (a requeue, a purge), and count a row inserted delivered, so that
 * no other writer can forget it. The receive path inserts pending rows,
 * which no trigger's WHEN lets in. */
#define TALLY_TABLE                                                            \
    "CREATE TABLE tally(dest TEXT PRIMARY KEY,"                                \
    " delivered INTEGER NOT NULL) WITHOUT ROWID;"                              \
    "CREATE TRIGGER tally_insert AFTER INSERT ON delivery"                     \
    " WHEN new.state = 1 BEGIN"                                                \
    " INSERT INTO tally VALUES (new.dest, 1) ON CONFLICT(dest)"                \
    " DO UPDATE SET delivered = delivered + 1; END;"                           \
    "CREATE TRIGGER tally_update AFTER UPDATE OF state ON delivery"            \
    " WHEN old.state = 1 AND new.state <> 1 BEGIN"                             \
    " UPDATE tally SET delivered = delivered - 1 WHERE dest = new.dest; END;"  \
    "CREATE TRIGGER tally_delete AFTER DELETE ON delivery"                     \
    " WHEN old.state = 1 BEGIN"                                                \
    " UPDATE tally SET delivered = delivered - 1 WHERE dest = old.dest; END;"

/* The schema of store_sqlite.h, word for word. */
static const char schema_sql[] =
    "CREATE TABLE event" EVENT_COLUMNS ";"
    "CREATE TABLE delivery(dest TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " due INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " last_status INTEGER,"
    " last_error TEXT,"
    " done INTEGER,"
    " owner INTEGER,"
    " PRIMARY KEY (dest, seq)) WITHOUT ROWID;"
    "CREATE INDEX delivery_due ON delivery(dest, state, due);"
    "CREATE INDEX delivery_owner ON delivery(owner) WHERE owner IS NOT NULL;"
    "CREATE INDEX event_received ON event(received);" MESSAGE_TABLE
        THROTTLE_TABLE TALLY_TABLE
    "PRAGMA user_version = " STR(SLH_SQLITE_VERSION) ";";

/* Version 1 keyed events on id alone: the table is made anew with at, read
 * from each stored body, which holds the DateTime its id hashed. */
static const char upgrade_1_sql[] =
    "CREATE TABLE event_v2" EVENT_COLUMNS ";"
    "INSERT INTO event_v2(seq, id, at, type, tracking, received, body)"
    " SELECT seq, id, slhook_event_at(body), type, tracking, received, body"
    " FROM event;"
    "DROP TABLE event;"
    "ALTER TABLE event_v2 RENAME TO event;"
    "PRAGMA user_version = 2;";

/* Version 2 had no owner: its leased rows keep their lease, owned by no
 * one. Adding a column with no default rewrites nothing, and the index
 * starts empty. */
static const char upgrade_2_sql[] =
    "ALTER TABLE delivery ADD COLUMN owner INTEGER;"
    "CREATE INDEX delivery_owner ON delivery(owner) WHERE owner IS NOT NULL;"
    "PRAGMA user_version = 3;";

/* Version 3 had no index on received: listing the newest events, or a
 * window of them, read the whole table. Building it reads it once. */
static const char upgrade_3_sql[] =
    "CREATE INDEX event_received ON event(received);"
    "PRAGMA user_version = 4;";

/* Version 4 found an event by MessageId by reading every event. Building
 * the index reads the table once (15 to 21 s for ten million events:
 * BENCHMARKS.md). */
static const char upgrade_4_sql[] =
    EVENT_FIND_INDEX_V5 "PRAGMA user_version = 5;";

/* Version 5 kept no breaker: every destination starts closed. */
static const char upgrade_5_sql[] = THROTTLE_TABLE "PRAGMA user_version = 6;";

/* Version 6 counted delivered rows on every status: the tally starts from
 * one count, in the upgrade's transaction. */
static const char upgrade_6_sql[] =
    TALLY_TABLE "INSERT INTO tally SELECT dest, COUNT(*) FROM delivery"
                " WHERE state = 1 GROUP BY dest;"
                "PRAGMA user_version = 7;";

/* Version 7 kept its MessageIds in an index on the event table, which
 * every receive paid for. The table that replaces it starts empty, so
 * that the upgrade keeps no receiver waiting: deliverers fill it in their
 * idle moments, and until they have, a lookup reads the events not yet in
 * it (slh_sqlite_index()). */
static const char upgrade_7_sql[] =
    "DROP INDEX event_message_id;" MESSAGE_TABLE "PRAGMA user_version = 8;";

/* 0: SLH_PENDING */

/* The integer, or the text in buf, of the first column of a pragma. */
int
slh_sqlite_pragma(sqlite3 *db, const char *sql, sqlite3_int64 *num, char *buf,
                  size_t size)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);

    if (rc != SQLITE_OK)
        goto out;
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? SQLITE_ERROR : rc;
        goto out;
    }
    if (num != NULL)
        *num = sqlite3_column_int64(stmt, 0);
    if (buf != NULL) {
        const unsigned char *t = sqlite3_column_text(stmt, 0);
        snprintf(buf, size, "%s", t != NULL ? (const char *)t : "");
    }
    rc = SQLITE_OK;
out:
    sqlite3_finalize(stmt);
    return rc;
}

/* Puts the database in WAL mode (a lasting property of the file), giving
 * the journal mode it is in. Switching upgrades a read lock to a write lock
 * within one statement, where SQLite returns SQLITE_BUSY at once rather than
 * wait (waiting could deadlock), so that is retried here, within the busy
 * timeout: several processes may open a new spool at the same moment. */
static int
set_wal(sqlite3 *db, char *mode, size_t size)
{
    const struct timespec pause = {0, 10L * 1000000};
    int rc;

    rc = slh_sqlite_pragma(db, "PRAGMA journal_mode", NULL, mode, size);
    if (rc != SQLITE_OK || strcmp(mode, "wal") == 0)
        return rc;
    for (int waited = 0;; waited += 10) {
        rc = slh_sqlite_pragma(db, "PRAGMA journal_mode=WAL", NULL, mode, size);
        if ((rc & 0xff) != SQLITE_BUSY || waited >= SLH_SQLITE_BUSY_MS)
            return rc;
        nanosleep(&pause, NULL);
    }
}

/* Makes a directory entry just created (dir itself, or a file in it)
 * survive a crash. */
static enum slh_err
sync_dir(const char *dir, struct slh_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    enum slh_err e = SLH_OK;

    if (fd < 0 || fsync(fd) != 0)
        e = slh_error_set(err, SLH_ESTORE, "spool %s: fsync: %s", dir,
                          strerror(errno));
    if (fd >= 0)
        close(fd);
    return e;
}

/* The login name of uid into buf, else its number. From /etc/passwd read as a
 * file (fgetpwent), not getpwuid(): slhook.cgi is linked statically, where
 * NSS would load shared libraries at run time; only messages use the name. */
static void
user_name(uid_t uid, char *buf, size_t size)
{
    FILE *f = fopen("/etc/passwd", "re");
    struct passwd *pw;

    snprintf(buf, size, "%ld", (long)uid);
    if (f == NULL)
        return;
    while ((pw = fgetpwent(f)) != NULL) {
        if (pw->pw_uid == uid) {
            snprintf(buf, size, "%s", pw->pw_name);
            break;
        }
    }
    fclose(f);
}

/*
 * Whether the spool directory or database at path (st its stat) may be
 * trusted: owned by the running user, writable by nobody else (store.h).
 * Group or other write lets another user slip in events to be relayed,
 * signed; another owner (root running a command on the web server's spool)
 * would leave files that owner cannot write. The text names the path, its
 * owner and its mode, and what to do.
 */
static enum slh_err
check_owner(const char *path, const struct stat *st, struct slh_error *err)
{
    char owner[64];
    uid_t euid = geteuid();

    if (st->st_uid == euid && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0)
        return SLH_OK; /* every request's case: no name looked up */
    user_name(st->st_uid, owner, sizeof(owner));
    if (st->st_uid != euid)
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s is owned by %s (uid %ld, mode %04o), "
                             "not by uid %ld; run as that user: runuser -u %s "
                             "-- ...",
                             path, owner, (long)st->st_uid,
                             (unsigned)(st->st_mode & 07777), (long)euid,
                             owner);
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return slh_error_set(
            err, SLH_ESTORE,
            "spool %s is writable by %s (owner %s, uid %ld, "
            "mode %04o): others could add events to relay; "
            "chmod go-w it",
            path, (st->st_mode & S_IWOTH) != 0 ? "others" : "its group", owner,
            (long)st->st_uid, (unsigned)(st->st_mode & 07777));
    return SLH_OK;
}

/* mkdir of the last component only: a missing parent is a configuration
 * mistake worth reporting, not something to paper over. Unless how allows
 * it, a missing directory is SLH_ENOTFOUND; one that is there must pass
 * check_owner(). */
static enum slh_err
make_dir(const char *dir, enum slh_store_create how, struct slh_error *err)
{
    struct stat st;
    char *parent = NULL;
    char *slash;
    enum slh_err e = SLH_OK;

    if (how != SLH_STORE_CREATE || mkdir(dir, 0700) != 0) {
        if (how == SLH_STORE_CREATE && errno != EEXIST)
            return slh_error_set(err, SLH_ESTORE, "spool %s: mkdir: %s", dir,
                                 strerror(errno));
        if (stat(dir, &st) != 0) {
            if (errno == ENOENT && how != SLH_STORE_CREATE)
                return slh_error_set(err, SLH_ENOTFOUND,
                                     "spool %s: no spool yet", dir);
            return slh_error_set(err, SLH_ESTORE, "spool %s: %s", dir,
                                 strerror(errno));
        }
        if (!S_ISDIR(st.st_mode))
            return slh_error_set(err, SLH_ESTORE, "spool %s: %s", dir,
                                 strerror(ENOTDIR));
        return check_owner(dir, &st, err);
    }
    /* The umask may have taken more than the mode allowed; 0700 exactly. */
    if (chmod(dir, 0700) != 0)
        return slh_error_set(err, SLH_ESTORE, "spool %s: chmod: %s", dir,
                             strerror(errno));
    parent = strdup(dir);
    if (parent == NULL)
        return slh_error_set(err, SLH_ENOMEM, "spool %s: out of memory", dir);
    slash = strrchr(parent, '/');
    while (slash != NULL && slash > parent && slash[1] == '\0') {
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    if (slash == NULL) {
        parent[0] = '.'; /* dir was one name: its parent is here */
        parent[1] = '\0';
    } else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    e = sync_dir(parent, err);
    free(parent);
    return e;
}

/* Why the spool cannot be written, when the file system can tell: after a
 * failed open SQLite reports the errno of its last, read-only, attempt.
 * SLH_OK when it cannot tell. */
static enum slh_err
unwritable(const struct slh_sqlite *sq, struct slh_error *err)
{
    if (faccessat(AT_FDCWD, sq->dir, W_OK, AT_EACCESS) != 0)
        return slh_error_set(err, SLH_ESTORE, "spool %s: not writable: %s",
                             sq->dir, strerror(errno));
    if (faccessat(AT_FDCWD, sq->path, W_OK, AT_EACCESS) != 0 && errno != ENOENT)
        return slh_error_set(err, SLH_ESTORE, "spool %s: not writable: %s",
                             sq->path, strerror(errno));
    return SLH_OK;
}

void
slh_sqlite_close_db(struct slh_sqlite *sq)
{
    for (size_t i = 0; i < SLH_SQLITE_STMTS; i++) {
        sqlite3_finalize(sq->kept[i].st);
        sq->kept[i].sql = NULL;
        sq->kept[i].st = NULL;
    }
    /* With its files unlinked, SQLite skips the checkpoint on close and
     * leaves whatever now lives at the path alone (databaseIsUnmoved()). */
    sqlite3_close(sq->db);
    sq->db = NULL;
    if (sq->lock_fd >= 0)
        close(sq->lock_fd);
    sq->lock_fd = -1;
}

/*
 * Runs sql, which moves the schema from version `from` to the next one, in
 * one IMMEDIATE transaction, unless the version read inside it is no longer
 * `from`: two processes opening a spool at once must not both create or
 * upgrade it. A crash midway leaves the old version whole.
 */
static enum slh_err
schema_step(struct slh_sqlite *sq, sqlite3_int64 from, const char *sql,
            struct slh_error *err)
{
    sqlite3_int64 version = 0;
    bool own;
    enum slh_err e = slh_sqlite_begin(sq, NULL, &own, err);

    if (e != SLH_OK)
        return e;
    if (slh_sqlite_pragma(sq->db, "PRAGMA user_version", &version, NULL, 0) !=
            SQLITE_OK ||
        (version == from &&
         sqlite3_exec(sq->db, sql, NULL, NULL, NULL) != SQLITE_OK))
        e = slh_sqlite_fail(sq, NULL, err);
    return slh_sqlite_end(sq, own, e, err);
}

/* slhook_event_at(body): slh_event_at() of the DateTime in a stored body. */
static void
sql_event_at(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *body = (const char *)sqlite3_value_text(argv[0]);
    json_t *obj = body != NULL ? json_loads(body, 0, NULL) : NULL;

    (void)argc;
    sqlite3_result_int64(ctx, slh_event_at(slh_event_get(obj, "DateTime")));
    json_decref(obj);
}

/* The step from version i to i + 1, for i from 1. */
static const char *const upgrade_sql[SLH_SQLITE_VERSION] = {
    NULL,          upgrade_1_sql, upgrade_2_sql, upgrade_3_sql,
    upgrade_4_sql, upgrade_5_sql, upgrade_6_sql, upgrade_7_sql};

/* Creates the schema of a new spool (version 0), or upgrades an older one a
 * step at a time, version 1 with the SQL function its step needs registered
 * for the while. */
static enum slh_err
make_schema(struct slh_sqlite *sq, sqlite3_int64 version, struct slh_error *err)
{
    enum slh_err e = SLH_OK;

    if (version == 0)
        return schema_step(sq, 0, schema_sql, err);
    if (version == 1) {
        if (sqlite3_create_function(sq->db, "slhook_event_at", 1,
                                    SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                    sql_event_at, NULL, NULL) != SQLITE_OK)
            return slh_sqlite_fail(sq, NULL, err);
        e = schema_step(sq, 1, upgrade_sql[1], err);
        sqlite3_create_function(sq->db, "slhook_event_at", 1, SQLITE_UTF8, NULL,
                                NULL, NULL, NULL);
        version = 2;
    }
    for (; e == SLH_OK && version < SLH_SQLITE_VERSION; version++)
        e = schema_step(sq, version, upgrade_sql[version], err);
    return e;
}

/* The directory and file checks, then SQLite's open; *is_new tells
 * whether there was no database yet. On failure sq->db may be left for
 * slh_sqlite_close_db(). */
static enum slh_err
open_file(struct slh_sqlite *sq, bool *is_new, struct slh_error *err)
{
    struct stat st;
    enum slh_err e = make_dir(sq->dir, sq->how, err);

    if (e != SLH_OK)
        return e;
    /* Before SQLite opens it (and makes its -wal and -shm files), and
     * before the lock file is made. */
    *is_new = false;
    if (stat(sq->path, &st) == 0) {
        e = check_owner(sq->path, &st, err);
        if (e != SLH_OK)
            return e;
    } else {
        *is_new = errno == ENOENT;
        if (*is_new && sq->how == SLH_STORE_EXISTING)
            return slh_error_set(err, SLH_ENOTFOUND, "spool %s: no spool yet",
                                 sq->dir);
    }
    slh_sqlite_open_lock(sq);
    if (sqlite3_open_v2(
            sq->path, &sq->db,
            SQLITE_OPEN_READWRITE |
                (sq->how == SLH_STORE_EXISTING ? 0 : SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX,
            NULL) != SQLITE_OK) {
        if (sq->db == NULL)
            return slh_error_set(err, SLH_ENOMEM, "spool %s: out of memory",
                                 sq->path);
        e = unwritable(sq, err);
        return e != SLH_OK ? e : slh_sqlite_fail(sq, NULL, err);
    }
    /* Before anything is written: SQLite gives the -wal and -shm files the
     * mode of the database file. */
    if (*is_new && chmod(sq->path, 0600) != 0)
        return slh_error_set(err, SLH_ESTORE, "spool %s: chmod: %s", sq->path,
                             strerror(errno));
    /* SQLITE_OPEN_READWRITE quietly falls back to read-only. */
    if (sqlite3_db_readonly(sq->db, "main") != 0) {
        e = unwritable(sq, err);
        return e != SLH_OK
                   ? e
                   : slh_error_set(err, SLH_ESTORE,
                                   "spool %s: opened read-only", sq->path);
    }
    return SLH_OK;
}

/* The schema at this slhook's version: made, upgraded, or refused. */
static enum slh_err
check_schema(struct slh_sqlite *sq, struct slh_error *err)
{
    sqlite3_int64 version = 0;
    enum slh_err e;

    if (slh_sqlite_pragma(sq->db, "PRAGMA user_version", &version, NULL, 0) !=
        SQLITE_OK)
        return slh_sqlite_fail(sq, NULL, err);
    if (version >= 0 && version < SLH_SQLITE_VERSION) {
        e = make_schema(sq, version, err);
        if (e != SLH_OK)
            return e;
        if (slh_sqlite_pragma(sq->db, "PRAGMA user_version", &version, NULL,
                              0) != SQLITE_OK)
            return slh_sqlite_fail(sq, NULL, err);
    }
    if (version != SLH_SQLITE_VERSION)
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: schema version %lld, this slhook knows "
                             "version %d",
                             sq->path, (long long)version, SLH_SQLITE_VERSION);
    return SLH_OK;
}

static enum slh_err
setup_db(struct slh_sqlite *sq, struct slh_error *err)
{
    char mode[16];

    sqlite3_busy_handler(sq->db, slh_sqlite_busy_wait, sq);
    slh_sqlite_hook_checkpoints(sq);
    if (set_wal(sq->db, mode, sizeof(mode)) != SQLITE_OK)
        return slh_sqlite_fail(sq, NULL, err);
    if (strcmp(mode, "wal") != 0)
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: cannot use WAL mode (journal mode %s)",
                             sq->path, mode);
    /* FULL: in WAL mode every commit is then fsync'd, which is what lets the
     * handler answer 200. A 512 KiB page cache rather than SQLite's 2 MiB:
     * the pages written next are few (the tails of the tables and of the
     * (at, id) index), and slhook.fcgi must stay in 16 MiB. */
    if (sqlite3_exec(sq->db, "PRAGMA synchronous=FULL; PRAGMA cache_size=-512",
                     NULL, NULL, NULL) != SQLITE_OK)
        return slh_sqlite_fail(sq, NULL, err);
    return check_schema(sq, err);
}

enum slh_err
slh_sqlite_open_db(struct slh_sqlite *sq, struct slh_error *err)
{
    bool is_new = false;
    enum slh_err e = open_file(sq, &is_new, err);

    if (e == SLH_OK)
        e = setup_db(sq, err);
    if (e == SLH_OK && is_new)
        e = sync_dir(sq->dir, err);
    /* SQLite holds the WAL open from the first read until it closes, and
     * while it does no other connection deletes or replaces it. */
    if (e == SLH_OK &&
        (!slh_sqlite_file_id(sq->path, &sq->db_dev, &sq->db_ino) ||
         !slh_sqlite_file_id(sq->wal_path, &sq->wal_dev, &sq->wal_ino)))
        e = slh_error_set(err, SLH_ESTORE, "spool %s: %s", sq->path,
                          strerror(errno));
    if (e != SLH_OK) {
        slh_sqlite_close_db(sq);
        return e;
    }
    sq->is_stale = sq->is_wal_lost = false;
    return SLH_OK;
}

/* The spool was removed under a long-lived handle (or its connection is
 * wedged): start over at the path, as a fresh process would. The old
 * connection stays until the new one works, so that sq->db is never NULL for
 * the delivering side sharing the handle. */
enum slh_err
slh_sqlite_reopen(struct slh_sqlite *sq, struct slh_error *err)
{
    struct slh_sqlite fresh = *sq;
    enum slh_err e;

    fresh.db = NULL;
    fresh.lock_fd = -1;
    fresh.lock_depth = 0;
    fresh.n_dead = 0;
    memset(fresh.kept, 0, sizeof(fresh.kept)); /* the old connection's */
    e = slh_sqlite_open_db(&fresh, err);
    if (e != SLH_OK)
        return e;
    slh_sqlite_close_db(sq);
    *sq = fresh;
    return SLH_OK;
}

#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define STR_(x) #x
#define STR(x) STR_(x)

#define BUSY_TIMEOUT_MS 5000 /* SQLite's busy wait and the writers' lock */

/* Linux's name for the thread a timer signals; glibc headers before 2.37
 * spell out only the union member. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

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

/* The schema of spool.h, word for word; the header is the contract with the
 * delivering side (queue.c). */
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
    "PRAGMA user_version = " STR(SLH_SPOOL_VERSION) ";";

/* ON CONFLICT rather than INSERT OR IGNORE: OR IGNORE would also swallow a
 * NOT NULL violation, silently dropping an event. (at, id) is unique exactly
 * when id is: at is a function of the DateTime the id hashes (event.h). */
static const char insert_event_sql[] =
    "INSERT INTO event(id, type, tracking, received, body, at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(at, id) DO NOTHING";

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

/* An event stored under the id an older slhook gave it (event.h). */
static const char find_legacy_sql[] =
    "SELECT 1 FROM event WHERE at = ?1 AND id = ?2";

/* Version 2 had no owner: its leased rows keep their lease, owned by no
 * one. Adding a column with no default rewrites nothing, and the index
 * starts empty. */
static const char upgrade_2_sql[] =
    "ALTER TABLE delivery ADD COLUMN owner INTEGER;"
    "CREATE INDEX delivery_owner ON delivery(owner) WHERE owner IS NOT NULL;"
    "PRAGMA user_version = 3;";

static const char insert_delivery_sql[] =
    "INSERT INTO delivery(dest, seq, state, due, attempts)"
    " VALUES (?1, ?2, 0, ?3, 0)"; /* 0: SLH_PENDING */

struct slh_spool {
    sqlite3 *db;
    enum slh_spool_create how; /* what open_db() may create */
    int lock_fd;    /* SLH_SPOOL_LOCK, or -1 where it cannot be opened */
    int lock_depth; /* slh_spool_lock() calls not yet let go */
    struct timespec busy_since; /* when the current wait for a lock began */
    char *dir;
    char *path;     /* dir/slhook.db, for messages and reconnecting */
    char *wal_path; /* path-wal */
    dev_t db_dev;   /* the files this connection writes into, */
    ino_t db_ino;   /* for has_moved() */
    dev_t wal_dev;
    ino_t wal_ino;
    bool is_stale;    /* the database was removed under us: reopen first */
    bool is_wal_lost; /* the -wal file was removed under us */
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *insert_event;
    sqlite3_stmt *insert_delivery;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } kept[SLH_SPOOL_STMTS];           /* slh_spool_prepare()'s */
    void (*checkpoint_due)(void *ctx); /* slh_spool_defer_checkpoints() */
    void *checkpoint_ctx;
};

int64_t
slh_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
static enum slh_err
db_error(sqlite3 *db, const char *path, struct slh_error *err)
{
    int primary = sqlite3_extended_errcode(db) & 0xff;
    int sys = primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN
                  ? io_errno(db)
                  : 0;

    if (sys != 0)
        return slh_error_set(err, SLH_ESTORE, "spool %s: %s (%s)", path,
                             sqlite3_errmsg(db), strerror(sys));
    return slh_error_set(err, SLH_ESTORE, "spool %s: %s", path,
                         sqlite3_errmsg(db));
}

/* Steps a statement that returns no rows and resets it at once, so that no
 * statement is left holding a read transaction open (SQLite only leaves its
 * error state after an I/O error when every statement is reset). The error
 * message stays with the connection. */
static int
step_reset(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);

    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* The integer, or the text in buf, of the first column of a pragma. */
static int
pragma_query(sqlite3 *db, const char *sql, sqlite3_int64 *num, char *buf,
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

/*
 * Waits for another connection's write lock. SQLite's own busy timeout
 * sleeps 1, 2, 5, ... up to 100 ms between tries: under load a CGI waited
 * 104 ms a request that way, most of it after the lock was free again. Short
 * steps wake soon after the lock is let go; the bound stays BUSY_TIMEOUT_MS.
 */
static int
busy_wait(void *arg, int count)
{
    struct slh_spool *sp = arg;
    struct timespec now, step = {0, 0};
    int64_t waited_ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (count == 0)
        sp->busy_since = now;
    waited_ms = (int64_t)(now.tv_sec - sp->busy_since.tv_sec) * 1000 +
                (now.tv_nsec - sp->busy_since.tv_nsec) / 1000000;
    if (waited_ms >= BUSY_TIMEOUT_MS)
        return 0;
    step.tv_nsec = count < 20 ? 50000 : count < 200 ? 200000 : 1000000;
    nanosleep(&step, NULL);
    return 1;
}

/* Puts the database in WAL mode (a lasting property of the file), giving
 * the journal mode it is in. Switching upgrades a read lock to a write lock
 * within one statement, where SQLite returns SQLITE_BUSY at once rather than
 * wait (waiting could deadlock), so that is retried here, within the busy
 * timeout: several processes may open a new spool at the same moment. */
static int
set_wal(sqlite3 *db, char *mode, size_t size)
{
    const struct timespec pause = {0, 10 * 1000000};
    int rc;

    rc = pragma_query(db, "PRAGMA journal_mode", NULL, mode, size);
    if (rc != SQLITE_OK || strcmp(mode, "wal") == 0)
        return rc;
    for (int waited = 0;; waited += 10) {
        rc = pragma_query(db, "PRAGMA journal_mode=WAL", NULL, mode, size);
        if ((rc & 0xff) != SQLITE_BUSY || waited >= BUSY_TIMEOUT_MS)
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
 * trusted: owned by the running user, writable by nobody else (spool.h).
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
make_dir(const char *dir, enum slh_spool_create how, struct slh_error *err)
{
    struct stat st;
    char *parent = NULL;
    char *slash;
    enum slh_err e = SLH_OK;

    if (how != SLH_SPOOL_CREATE || mkdir(dir, 0700) != 0) {
        if (how == SLH_SPOOL_CREATE && errno != EEXIST)
            return slh_error_set(err, SLH_ESTORE, "spool %s: mkdir: %s", dir,
                                 strerror(errno));
        if (stat(dir, &st) != 0) {
            if (errno == ENOENT && how != SLH_SPOOL_CREATE)
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
    if (slash == NULL)
        strcpy(parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    e = sync_dir(parent, err);
    free(parent);
    return e;
}

/* The identity of the file at path; false (errno set) when there is none. */
static bool
file_id(const char *path, dev_t *dev, ino_t *ino)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return false;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return true;
}

/* Why the spool cannot be written, when the file system can tell: after a
 * failed open SQLite reports the errno of its last, read-only, attempt.
 * SLH_OK when it cannot tell. */
static enum slh_err
unwritable(const struct slh_spool *sp, struct slh_error *err)
{
    if (faccessat(AT_FDCWD, sp->dir, W_OK, AT_EACCESS) != 0)
        return slh_error_set(err, SLH_ESTORE, "spool %s: not writable: %s",
                             sp->dir, strerror(errno));
    if (faccessat(AT_FDCWD, sp->path, W_OK, AT_EACCESS) != 0 && errno != ENOENT)
        return slh_error_set(err, SLH_ESTORE, "spool %s: not writable: %s",
                             sp->path, strerror(errno));
    return SLH_OK;
}

static void
close_db(struct slh_spool *sp)
{
    sqlite3_finalize(sp->begin);
    sqlite3_finalize(sp->commit);
    sqlite3_finalize(sp->rollback);
    sqlite3_finalize(sp->insert_event);
    sqlite3_finalize(sp->insert_delivery);
    sp->begin = sp->commit = sp->rollback = NULL;
    sp->insert_event = sp->insert_delivery = NULL;
    for (size_t i = 0; i < SLH_SPOOL_STMTS; i++) {
        sqlite3_finalize(sp->kept[i].st);
        sp->kept[i].sql = NULL;
        sp->kept[i].st = NULL;
    }
    /* With its files unlinked, SQLite skips the checkpoint on close and
     * leaves whatever now lives at the path alone (databaseIsUnmoved()). */
    sqlite3_close(sp->db);
    sp->db = NULL;
    if (sp->lock_fd >= 0)
        close(sp->lock_fd);
    sp->lock_fd = -1;
}

int
slh_spool_prepare(struct slh_spool *sp, const char *sql, sqlite3_stmt **st)
{
    size_t i;
    int rc;

    *st = NULL;
    for (i = 0; i < SLH_SPOOL_STMTS && sp->kept[i].sql != NULL; i++) {
        if (sp->kept[i].sql == sql) {
            *st = sp->kept[i].st;
            return SQLITE_OK;
        }
    }
    if (i == SLH_SPOOL_STMTS)
        return SQLITE_FULL;
    rc = sqlite3_prepare_v3(sp->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
                            NULL);
    if (rc == SQLITE_OK) {
        sp->kept[i].sql = sql;
        sp->kept[i].st = *st;
    }
    return rc;
}

void
slh_spool_release(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* The writers' lock file. Without one (a read-only directory, where no
 * write will succeed anyway) writers fall back on SQLite's busy handler. */
static void
open_lock(struct slh_spool *sp)
{
    char path[4096];

    sp->lock_fd = -1;
    if (snprintf(path, sizeof(path), "%s/%s", sp->dir, SLH_SPOOL_LOCK) >=
        (int)sizeof(path))
        return;
    sp->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->lock_fd < 0)
        sp->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
}

static void
lock_alarm(int sig)
{
    (void)sig; /* only there to interrupt flock() */
}

static pthread_once_t lock_alarm_once = PTHREAD_ONCE_INIT;
static bool is_lock_alarm_set;

static void
set_lock_alarm(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = lock_alarm;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: the kernel must give up the flock() with EINTR. */
    is_lock_alarm_set = sigaction(SLH_SPOOL_LOCK_SIGNAL, &sa, NULL) == 0;
}

static bool
is_past(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/*
 * A blocking flock() given up after BUSY_TIMEOUT_MS (errno ETIMEDOUT). Not
 * a poll with sleeps: that is what flock() replaced (spool.h). The waiter
 * sleeps in the kernel, which wakes it as the lock is let go, and a timer
 * signalling this thread alone interrupts the wait at the bound; the timer
 * repeats, in case its first signal came before the thread was in flock().
 * An uncontended lock costs the one LOCK_NB call.
 */
static int
flock_bounded(int fd)
{
    struct sigevent sev;
    struct itimerspec its;
    struct timespec deadline;
    const struct timespec zero = {0, 0};
    sigset_t one, old;
    timer_t timer;
    int rc = -1, saved;

    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    if (errno != EWOULDBLOCK && errno != EINTR)
        return -1;
    pthread_once(&lock_alarm_once, set_lock_alarm);
    if (!is_lock_alarm_set)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += BUSY_TIMEOUT_MS / 1000;
    deadline.tv_nsec += (long)(BUSY_TIMEOUT_MS % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    sigemptyset(&one);
    sigaddset(&one, SLH_SPOOL_LOCK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &one, &old);
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SLH_SPOOL_LOCK_SIGNAL;
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
        saved = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = saved;
        return -1;
    }
    its.it_value = deadline;
    its.it_interval.tv_sec = 0;
    its.it_interval.tv_nsec = 50 * 1000000;
    timer_settime(timer, TIMER_ABSTIME, &its, NULL);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    for (;;) {
        if (flock(fd, LOCK_EX) == 0) {
            rc = 0;
            break;
        }
        if (errno != EINTR)
            break;
        if (is_past(&deadline)) {
            errno = ETIMEDOUT;
            break;
        }
    }
    saved = errno;
    pthread_sigmask(SIG_BLOCK, &one, NULL);
    timer_delete(timer);
    /* A signal sent after the wait ended would interrupt whatever system
     * call this thread makes next: take it while it is still blocked. */
    while (sigtimedwait(&one, NULL, &zero) == SLH_SPOOL_LOCK_SIGNAL)
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return rc;
}

enum slh_err
slh_spool_lock(struct slh_spool *sp, struct slh_error *err)
{
    if (sp == NULL || sp->lock_fd < 0)
        return SLH_OK;
    if (sp->lock_depth > 0) {
        sp->lock_depth++;
        return SLH_OK;
    }
    if (flock_bounded(sp->lock_fd) != 0) {
        if (errno == ETIMEDOUT)
            return slh_error_set(err, SLH_ESTORE,
                                 "spool %s/%s: held by another writer for "
                                 "%d ms; gave up waiting",
                                 sp->dir, SLH_SPOOL_LOCK, BUSY_TIMEOUT_MS);
        return slh_error_set(err, SLH_ESTORE, "spool %s/%s: flock: %s", sp->dir,
                             SLH_SPOOL_LOCK, strerror(errno));
    }
    sp->lock_depth = 1;
    return SLH_OK;
}

void
slh_spool_unlock(struct slh_spool *sp)
{
    if (sp != NULL && sp->lock_fd >= 0 && sp->lock_depth > 0 &&
        --sp->lock_depth == 0)
        (void)flock(sp->lock_fd, LOCK_UN);
}

/*
 * Runs sql, which moves the schema from version `from` to the next one, in
 * one IMMEDIATE transaction, unless the version read inside it is no longer
 * `from`: two processes opening a spool at once must not both create or
 * upgrade it. A crash midway leaves the old version whole.
 */
static enum slh_err
schema_step(struct slh_spool *sp, sqlite3_int64 from, const char *sql,
            struct slh_error *err)
{
    sqlite3_int64 version = 0;

    if (sqlite3_exec(sp->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
            SQLITE_OK ||
        pragma_query(sp->db, "PRAGMA user_version", &version, NULL, 0) !=
            SQLITE_OK ||
        (version == from &&
         sqlite3_exec(sp->db, sql, NULL, NULL, NULL) != SQLITE_OK) ||
        sqlite3_exec(sp->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        enum slh_err e = db_error(sp->db, sp->path, err);
        if (!sqlite3_get_autocommit(sp->db))
            sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
        return e;
    }
    return SLH_OK;
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

/* Creates the schema of a new spool (version 0), or upgrades an older one a
 * step at a time, version 1 with the SQL function its step needs registered
 * for the while. */
static enum slh_err
make_schema(struct slh_spool *sp, sqlite3_int64 version, struct slh_error *err)
{
    enum slh_err e;

    if (version == 0)
        return schema_step(sp, 0, schema_sql, err);
    if (version == 1) {
        if (sqlite3_create_function(sp->db, "slhook_event_at", 1,
                                    SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                    sql_event_at, NULL, NULL) != SQLITE_OK)
            return db_error(sp->db, sp->path, err);
        e = schema_step(sp, 1, upgrade_1_sql, err);
        sqlite3_create_function(sp->db, "slhook_event_at", 1, SQLITE_UTF8, NULL,
                                NULL, NULL, NULL);
        if (e != SLH_OK)
            return e;
    }
    return schema_step(sp, 2, upgrade_2_sql, err);
}

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt)
{
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt,
                              NULL);
}

/* Opens sp->path into sp->db, and prepares sp's statements, with everything
 * spool.h promises; on failure they are all NULL. */
/* SQLite's hook after each commit, with the WAL's size in pages, in place
 * of its automatic checkpoint (the hook replaces it): past half the limit
 * the checkpointer is asked to copy the WAL ahead; at the limit this
 * connection checkpoints as SQLite would have, which then finds little left
 * to copy, and lets the WAL start over. */
static int
wal_committed(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct slh_spool *sp = arg;

    if (pages >= SLH_SPOOL_CHECKPOINT_PAGES)
        sqlite3_wal_checkpoint(db, name);
    else if (pages >= SLH_SPOOL_CHECKPOINT_PAGES / 2)
        sp->checkpoint_due(sp->checkpoint_ctx);
    return SQLITE_OK;
}

void
slh_spool_defer_checkpoints(struct slh_spool *sp, void (*due)(void *ctx),
                            void *ctx)
{
    sp->checkpoint_due = due;
    sp->checkpoint_ctx = ctx;
    sqlite3_wal_hook(sp->db, wal_committed, sp);
}

enum slh_err
slh_spool_checkpoint(struct slh_spool *sp, struct slh_error *err)
{
    if (sqlite3_wal_checkpoint_v2(sp->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL) != SQLITE_OK)
        return db_error(sp->db, sp->path, err);
    return SLH_OK;
}

static enum slh_err
open_db(struct slh_spool *sp, struct slh_error *err)
{
    struct stat st;
    bool is_new;
    sqlite3_int64 version = 0;
    char mode[16];
    enum slh_err e = SLH_OK;

    e = make_dir(sp->dir, sp->how, err);
    if (e != SLH_OK)
        return e;
    /* Before SQLite opens it (and makes its -wal and -shm files), and
     * before the lock file is made. */
    if (stat(sp->path, &st) == 0) {
        is_new = false;
        e = check_owner(sp->path, &st, err);
        if (e != SLH_OK)
            return e;
    } else {
        is_new = errno == ENOENT;
        if (is_new && sp->how == SLH_SPOOL_EXISTING)
            return slh_error_set(err, SLH_ENOTFOUND, "spool %s: no spool yet",
                                 sp->dir);
    }
    open_lock(sp);
    if (sqlite3_open_v2(
            sp->path, &sp->db,
            SQLITE_OPEN_READWRITE |
                (sp->how == SLH_SPOOL_EXISTING ? 0 : SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX,
            NULL) != SQLITE_OK) {
        if (sp->db == NULL) {
            e = slh_error_set(err, SLH_ENOMEM, "spool %s: out of memory",
                              sp->path);
            goto out;
        }
        e = unwritable(sp, err);
        if (e != SLH_OK)
            goto out;
        goto fail;
    }
    /* Before anything is written: SQLite gives the -wal and -shm files the
     * mode of the database file. */
    if (is_new && chmod(sp->path, 0600) != 0) {
        e = slh_error_set(err, SLH_ESTORE, "spool %s: chmod: %s", sp->path,
                          strerror(errno));
        goto out;
    }
    /* SQLITE_OPEN_READWRITE quietly falls back to read-only. */
    if (sqlite3_db_readonly(sp->db, "main") != 0) {
        e = unwritable(sp, err);
        if (e == SLH_OK)
            e = slh_error_set(err, SLH_ESTORE, "spool %s: opened read-only",
                              sp->path);
        goto out;
    }
    sqlite3_busy_handler(sp->db, busy_wait, sp);
    if (sp->checkpoint_due != NULL)
        sqlite3_wal_hook(sp->db, wal_committed, sp);
    if (set_wal(sp->db, mode, sizeof(mode)) != SQLITE_OK)
        goto fail;
    if (strcmp(mode, "wal") != 0) {
        e = slh_error_set(err, SLH_ESTORE,
                          "spool %s: cannot use WAL mode (journal mode %s)",
                          sp->path, mode);
        goto out;
    }
    /* FULL: in WAL mode every commit is then fsync'd, which is what lets the
     * handler answer 200. A 512 KiB page cache rather than SQLite's 2 MiB:
     * the pages written next are few (the tails of the tables and of the
     * (at, id) index), and slhook.fcgi must stay in 16 MiB. */
    if (sqlite3_exec(sp->db, "PRAGMA synchronous=FULL; PRAGMA cache_size=-512",
                     NULL, NULL, NULL) != SQLITE_OK ||
        pragma_query(sp->db, "PRAGMA user_version", &version, NULL, 0) !=
            SQLITE_OK)
        goto fail;
    if (version >= 0 && version < SLH_SPOOL_VERSION) {
        e = make_schema(sp, version, err);
        if (e != SLH_OK)
            goto out;
        if (pragma_query(sp->db, "PRAGMA user_version", &version, NULL, 0) !=
            SQLITE_OK)
            goto fail;
    }
    if (version != SLH_SPOOL_VERSION) {
        e = slh_error_set(err, SLH_ESTORE,
                          "spool %s: schema version %lld, this slhook knows "
                          "version %d",
                          sp->path, (long long)version, SLH_SPOOL_VERSION);
        goto out;
    }
    if (is_new) {
        e = sync_dir(sp->dir, err);
        if (e != SLH_OK)
            goto out;
    }
    /* SQLite holds the WAL open from the first read until it closes, and
     * while it does no other connection deletes or replaces it. */
    if (!file_id(sp->path, &sp->db_dev, &sp->db_ino) ||
        !file_id(sp->wal_path, &sp->wal_dev, &sp->wal_ino)) {
        e = slh_error_set(err, SLH_ESTORE, "spool %s: %s", sp->path,
                          strerror(errno));
        goto out;
    }
    if (prepare(sp->db, "BEGIN IMMEDIATE", &sp->begin) != SQLITE_OK ||
        prepare(sp->db, "COMMIT", &sp->commit) != SQLITE_OK ||
        prepare(sp->db, "ROLLBACK", &sp->rollback) != SQLITE_OK ||
        prepare(sp->db, insert_event_sql, &sp->insert_event) != SQLITE_OK ||
        prepare(sp->db, insert_delivery_sql, &sp->insert_delivery) != SQLITE_OK)
        goto fail;
    sp->is_stale = sp->is_wal_lost = false;
    return SLH_OK;
fail:
    e = db_error(sp->db, sp->path, err);
out:
    close_db(sp);
    return e;
}

enum slh_err
slh_spool_open(struct slh_spool **out, const char *dir, struct slh_error *err)
{
    return slh_spool_open_how(out, dir, SLH_SPOOL_CREATE, err);
}

enum slh_err
slh_spool_open_how(struct slh_spool **out, const char *dir,
                   enum slh_spool_create how, struct slh_error *err)
{
    struct slh_spool *sp = NULL;
    size_t len;
    enum slh_err e = SLH_OK;

    if (out == NULL)
        return slh_error_set(err, SLH_EINVAL, "spool: no handle");
    *out = NULL;
    if (dir == NULL || *dir == '\0')
        return slh_error_set(err, SLH_EINVAL, "spool: no directory");
    sp = calloc(1, sizeof(*sp));
    if (sp == NULL)
        return slh_error_set(err, SLH_ENOMEM, "spool %s: out of memory", dir);
    len = strlen(dir);
    sp->dir = strdup(dir);
    sp->lock_fd = -1;
    sp->how = how;
    sp->path = malloc(len + sizeof("/" SLH_SPOOL_FILE));
    sp->wal_path = malloc(len + sizeof("/" SLH_SPOOL_FILE "-wal"));
    if (sp->dir == NULL || sp->path == NULL || sp->wal_path == NULL) {
        e = slh_error_set(err, SLH_ENOMEM, "spool %s: out of memory", dir);
        goto fail;
    }
    memcpy(sp->path, dir, len);
    memcpy(sp->path + len, "/" SLH_SPOOL_FILE, sizeof("/" SLH_SPOOL_FILE));
    snprintf(sp->wal_path, len + sizeof("/" SLH_SPOOL_FILE "-wal"), "%s-wal",
             sp->path);
    e = open_db(sp, err);
    if (e != SLH_OK)
        goto fail;
    *out = sp;
    return SLH_OK;
fail:
    slh_spool_close(sp);
    return e;
}

enum slh_err
slh_spool_verify(struct slh_spool *sp, struct slh_error *err)
{
    char result[200];

    if (sp == NULL || sp->db == NULL)
        return slh_error_set(err, SLH_EINVAL, "spool: no handle");
    if (pragma_query(sp->db, "PRAGMA quick_check(1)", NULL, result,
                     sizeof(result)) != SQLITE_OK)
        return db_error(sp->db, sp->path, err);
    if (strcmp(result, "ok") != 0) {
        /* One line for a message: SQLite's has one per problem found. */
        for (char *nl = strchr(result, '\n'); nl != NULL; nl = strchr(nl, '\n'))
            *nl = ' ';
        return slh_error_set(err, SLH_ESTORE, "spool %s: damaged: %s", sp->path,
                             result);
    }
    return SLH_OK;
}

void
slh_spool_close(struct slh_spool *sp)
{
    if (sp == NULL)
        return;
    close_db(sp);
    free(sp->dir);
    free(sp->path);
    free(sp->wal_path);
    free(sp);
}

struct sqlite3 *
slh_spool_db(struct slh_spool *sp)
{
    return sp != NULL ? sp->db : NULL;
}

/* The two checks below: whether the database, or its WAL, is no longer the
 * file at its path, because the spool directory was removed or replaced, or
 * someone "cleaned up" the -wal file. SQLite would go on writing into the
 * unlinked files and report success, every event lost at close. Its own
 * SQLITE_FCNTL_HAS_MOVED only looks at the database file, hence the inodes
 * noted when opening. */
static bool
db_has_moved(const struct slh_spool *sp)
{
    dev_t dev;
    ino_t ino;

    return !file_id(sp->path, &dev, &ino) || dev != sp->db_dev ||
           ino != sp->db_ino;
}

static bool
wal_has_moved(const struct slh_spool *sp)
{
    dev_t dev;
    ino_t ino;

    return !file_id(sp->wal_path, &dev, &ino) || dev != sp->wal_dev ||
           ino != sp->wal_ino;
}

/* The spool was removed under a long-lived handle (or its connection is
 * wedged): start over at the path, as a fresh process would. The old
 * connection stays until the new one works, so that sp->db is never NULL for
 * the delivering side sharing the handle. */
static enum slh_err
reopen(struct slh_spool *sp, struct slh_error *err)
{
    struct slh_spool fresh = *sp;
    enum slh_err e;

    fresh.db = NULL;
    fresh.lock_fd = -1;
    fresh.lock_depth = 0;
    fresh.begin = fresh.commit = fresh.rollback = NULL;
    fresh.insert_event = fresh.insert_delivery = NULL;
    memset(fresh.kept, 0, sizeof(fresh.kept)); /* the old connection's */
    e = open_db(&fresh, err);
    if (e != SLH_OK)
        return e;
    close_db(sp);
    *sp = fresh;
    return SLH_OK;
}

/* Frees the n bodies not handed to SQLite yet (NULL entries are), and the
 * array. */
static void
free_bodies(char **bodies, size_t n)
{
    for (size_t i = 0; bodies != NULL && i < n; i++)
        free(bodies[i]);
    free(bodies);
}

/*
 * The relay body of every event but Validations of the n batches, in order,
 * into a new array *out of *count strings; NULL for an event whose body
 * slh_batch_bodies() made already. SLH_ENOMEM leaves nothing.
 */
static enum slh_err
make_bodies(const struct slh_batch *const *batches, size_t n, char ***out,
            size_t *count)
{
    size_t total = 0, k = 0;
    char **bodies;

    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; batches[i] != NULL && j < batches[i]->n; j++)
            total += !batches[i]->events[j].is_validation;
    bodies = calloc(total + 1, sizeof(*bodies));
    if (bodies == NULL)
        return SLH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; batches[i] != NULL && j < batches[i]->n; j++) {
            const struct slh_event *ev = &batches[i]->events[j];
            if (ev->is_validation)
                continue;
            if (ev->body != NULL) {
                k++; /* made already: stored from the event */
                continue;
            }
            bodies[k] = slh_event_body(ev);
            if (bodies[k++] == NULL) {
                free_bodies(bodies, k);
                return SLH_ENOMEM;
            }
        }
    }
    *out = bodies;
    *count = total;
    return SLH_OK;
}

/* Stores one new event's delivery rows. */
static int
add_deliveries(struct slh_spool *sp, const struct slh_config *cfg,
               const struct slh_event *ev, sqlite3_int64 seq, int64_t now_ms)
{
    int rc = SQLITE_DONE;

    for (size_t i = 0; i < cfg->n_dests && rc == SQLITE_DONE; i++) {
        const struct slh_dest *d = &cfg->dests[i];

        if (!slh_dest_wants(d, ev->type, ev->tracking))
            continue;
        sqlite3_bind_text(sp->insert_delivery, 1, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(sp->insert_delivery, 2, seq);
        sqlite3_bind_int64(sp->insert_delivery, 3, now_ms);
        rc = step_reset(sp->insert_delivery);
    }
    return rc;
}

/*
 * Whether ev, whose id is new, was stored under its legacy id by an older
 * slhook: only events with a '|' or '\\' in an identity field have one, so
 * the others cost no lookup. Returns an SQLite result code: SQLITE_ROW when
 * it was, SQLITE_DONE when not.
 */
static int
find_legacy(struct slh_spool *sp, const struct slh_event *ev)
{
    sqlite3_stmt *st;
    int rc;

    if (ev->legacy_id[0] == '\0')
        return SQLITE_DONE;
    rc = slh_spool_prepare(sp, find_legacy_sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, ev->at);
    sqlite3_bind_text(st, 2, ev->legacy_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    slh_spool_release(st);
    return rc;
}

/* Whether sp's commits fsync (synchronous=FULL, as opened) or leave that
 * to the next one that does (NORMAL). Only outside a transaction. */
static void
set_full_sync(struct slh_spool *sp, bool is_full)
{
    sqlite3_stmt *st = NULL;

    if (slh_spool_prepare(sp,
                          is_full ? "PRAGMA synchronous=FULL"
                                  : "PRAGMA synchronous=NORMAL",
                          &st) == SQLITE_OK)
        (void)sqlite3_step(st);
    slh_spool_release(st);
}

enum slh_err
slh_spool_put(struct slh_spool *sp, const struct slh_config *cfg,
              const struct slh_batch *const *batches, size_t n, int64_t now_ms,
              size_t *n_new, struct slh_error *err)
{
    return slh_spool_put_tasks(sp, cfg, batches, n, NULL, 0, now_ms, n_new,
                               err);
}

enum slh_err
slh_spool_put_tasks(struct slh_spool *sp, const struct slh_config *cfg,
                    const struct slh_batch *const *batches, size_t n,
                    const struct slh_spool_task *tasks, size_t n_tasks,
                    int64_t now_ms, size_t *n_new, struct slh_error *err)
{
    size_t fresh = 0, n_bodies = 0, k = 0;
    char **bodies = NULL;
    enum slh_err e = SLH_OK;
    bool is_tasks_only;

    if (n_new != NULL)
        *n_new = 0;
    if (sp == NULL || cfg == NULL || (n > 0 && batches == NULL) ||
        (n_tasks > 0 && tasks == NULL))
        return slh_error_set(err, SLH_EINVAL, "spool: bad arguments");
    /* Within one process SQLite shares the WAL index of a database file
     * between connections, so a new connection to the same database would
     * pair the old, unlinked WAL's index with the new -wal file: no reopening
     * until the database itself is a new file. */
    if (sp->is_wal_lost && !db_has_moved(sp))
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: -wal file removed while open; "
                             "restart slhook",
                             sp->path);
    /* The relay bodies are made before BEGIN: the transaction, which every
     * other writer waits for, holds only the inserts. */
    e = make_bodies(batches, n, &bodies, &n_bodies);
    if (e != SLH_OK)
        return slh_error_set(err, SLH_ESTORE, "spool %s: out of memory",
                             sp->path);
    /* Tasks alone never make a new spool: only events to store do, as a
     * deliverer's own connection leaves that to the receiver (deliver.c).
     * Until then they go on in the removed spool's files, as it would. */
    is_tasks_only = n_bodies == 0 && n_tasks > 0;
    if ((sp->is_stale || sp->is_wal_lost) && !is_tasks_only) {
        e = reopen(sp, err);
        if (e != SLH_OK) {
            free_bodies(bodies, n_bodies);
            return e;
        }
    }
    if (is_tasks_only)
        set_full_sync(sp, false);
    e = slh_spool_lock(sp, err);
    if (e != SLH_OK) {
        if (is_tasks_only)
            set_full_sync(sp, true);
        free_bodies(bodies, n_bodies);
        return e;
    }
    if (step_reset(sp->begin) != SQLITE_DONE)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const struct slh_batch *b = batches[i];

        for (size_t j = 0; b != NULL && j < b->n; j++) {
            const struct slh_event *ev = &b->events[j];
            char *body;

            if (ev->is_validation)
                continue;
            body = bodies[k];
            bodies[k++] = NULL;
            switch (find_legacy(sp, ev)) {
            case SQLITE_DONE:
                break;
            case SQLITE_ROW:
                free(body);
                continue; /* a duplicate, stored by an older slhook */
            default:
                free(body);
                goto fail;
            }
            sqlite3_bind_text(sp->insert_event, 1, ev->id, -1, SQLITE_STATIC);
            sqlite3_bind_text(sp->insert_event, 2, ev->type, -1, SQLITE_STATIC);
            sqlite3_bind_int(sp->insert_event, 3, ev->tracking);
            sqlite3_bind_int64(sp->insert_event, 4, now_ms);
            sqlite3_bind_int64(sp->insert_event, 6, ev->at);
            /* SQLite owns body from here, even if binding fails. */
            if (body != NULL)
                sqlite3_bind_text(sp->insert_event, 5, body, -1, free);
            else
                sqlite3_bind_text(sp->insert_event, 5, ev->body, -1,
                                  SQLITE_STATIC);
            if (step_reset(sp->insert_event) != SQLITE_DONE)
                goto fail;
            if (sqlite3_changes(sp->db) == 0)
                continue; /* a duplicate */
            fresh++;
            if (add_deliveries(sp, cfg, ev, sqlite3_last_insert_rowid(sp->db),
                               now_ms) != SQLITE_DONE)
                goto fail;
        }
    }
    for (size_t i = 0; i < n_tasks; i++) {
        e = tasks[i].fn(sp, tasks[i].arg, err);
        if (e != SLH_OK)
            goto rollback;
    }
    /* Checked last, to keep the window before COMMIT small. Tasks alone
     * may commit into a spool removed whole (nothing else sees its files
     * any more), never into a WAL that is not its database's. */
    if (db_has_moved(sp)) {
        sp->is_stale = true;
        if (!is_tasks_only) {
            e = slh_error_set(err, SLH_ESTORE,
                              "spool %s: removed or replaced while open",
                              sp->path);
            goto rollback;
        }
    } else if (wal_has_moved(sp)) {
        sp->is_wal_lost = true;
        e = slh_error_set(err, SLH_ESTORE,
                          "spool %s: -wal file removed while open; "
                          "restart slhook",
                          sp->path);
        goto rollback;
    }
    if (step_reset(sp->commit) != SQLITE_DONE)
        goto fail;
    slh_spool_unlock(sp);
    if (is_tasks_only)
        set_full_sync(sp, true);
    if (n_new != NULL)
        *n_new = fresh;
    free_bodies(bodies, n_bodies);
    return SLH_OK;
fail:
    /* The message first: ROLLBACK replaces it. */
    e = db_error(sp->db, sp->path, err);
rollback:
    /* A failed COMMIT (disk full, I/O error, read-only) may leave the
     * transaction open; without the ROLLBACK the connection would refuse
     * every later BEGIN, even once there is room again. */
    if (!sqlite3_get_autocommit(sp->db) &&
        (step_reset(sp->rollback) != SQLITE_DONE ||
         !sqlite3_get_autocommit(sp->db)))
        sp->is_stale = true;
    slh_spool_unlock(sp);
    if (is_tasks_only)
        set_full_sync(sp, true);
    free_bodies(bodies, n_bodies);
    return e;
}

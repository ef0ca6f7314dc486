/* test_spool.c: the SQLite store (lib/store_sqlite.h) through store.h and its
 * prototypes, on real file systems: a tmpfs that fills up, a loop-mounted
 * ext4 that the kernel turns read-only under an open spool, and a spool
 * directory removed while open. Needs root (mount); fails, never skips,
 * without it.
 *
 * What SQLite does by itself when the spool directory is removed (rm -rf)
 * while a connection is open, measured with 3.40: every later transaction
 * "succeeds" into the unlinked files, and the events vanish when the
 * connection closes. SQLITE_FCNTL_HAS_MOVED notices the database file but not
 * the -wal file alone. slh_store_put() therefore compares both files' inodes
 * with the ones it opened before every COMMIT (see the tests below).
 *
 * A read-only remount (plain or of a bind mount) under an open spool is
 * refused by the kernel (EBUSY) while SQLite holds its files open for
 * writing, so the read-only-while-open case is made the way it happens in
 * production: ext4's errors=remount-ro. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "sql_int.h"
#include "config.h"
#include "event.h"
#include "store.h"
#include "store_sqlite.h"

#define SECRET "q7Rt2mXw9LpB4sKd8Zf3"
#define MAX_MOUNTS 8

static char base[] = "/tmp/slh-test-spool-XXXXXX";
static char mounts[MAX_MOUNTS][PATH_MAX];

static char *words_bad[] = {"Failed", "Complaint"};
static char *words_click[] = {"Tracking:Click"};
static struct slh_dest dests[] = {
    {.name = "all"},
    {.name = "bad", .events = words_bad, .n_events = 2},
    {.name = "clicks", .events = words_click, .n_events = 1},
};
static const struct slh_config cfg = {.dests = dests, .n_dests = 3};
static const struct slh_config cfg_none = {0};

/* ---- helpers ---- */

/* A path from a format; the tests' paths are short, so too long is a bug. */
__attribute__((format(printf, 2, 3))) static void
pathf(char out[PATH_MAX], const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_MAX) {
        fprintf(stderr, "path too long\n");
        abort();
    }
}

/* A shell command from a format; its exit status. */
__attribute__((format(printf, 1, 2))) static int
run(const char *fmt, ...)
{
    char cmd[3 * PATH_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= sizeof(cmd) ? -1 : system(cmd);
}

static void
path_in(char *out, const char *name)
{
    pathf(out, "%s/%s", base, name);
}

static void
db_path(char *out, const char *dir)
{
    pathf(out, "%s/%s", dir, SLH_SQLITE_FILE);
}

/* One event as event.c would give it: SecretKey still in the object, the
 * id computed. pad adds a field of that many bytes. */
static void
make_event(struct slh_event *ev, const char *type, int tracking,
           const char *message_id, size_t pad)
{
    memset(ev, 0, sizeof(*ev));
    ev->obj = json_pack("{s:s, s:s, s:i, s:s, s:s}", "Type", type, "SecretKey",
                        SECRET, "ServerId", 40211, "MessageId", message_id,
                        "Address", "lee@mail.example");
    if (tracking >= 0)
        json_object_set_new(ev->obj, "TrackingType", json_integer(tracking));
    if (pad > 0) {
        char *p = malloc(pad + 1);
        for (size_t i = 0; i < pad; i++)
            p[i] = (char)('a' + (i * 7 + strlen(message_id)) % 26);
        p[pad] = '\0';
        json_object_set_new(ev->obj, "Pad", json_string(p));
        free(p);
    }
    ev->type = json_string_value(json_object_get(ev->obj, "Type"));
    ev->tracking = tracking;
    ev->is_validation = strcasecmp(type, "Validation") == 0;
    slh_event_identity(ev->obj, ev->id);
    slh_event_legacy_id(ev->obj, ev->legacy_id);
}

static void
batch_init(struct slh_batch *b, size_t n)
{
    b->events = calloc(n, sizeof(*b->events));
    b->n = n;
}

/* A batch of n Delivered events named prefix-0.. with pad-byte bodies. */
static void
batch_fill(struct slh_batch *b, size_t n, const char *prefix, size_t pad)
{
    char id[128];

    batch_init(b, n);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%s-%zu", prefix, i);
        make_event(&b->events[i], "Delivered", SLH_TRACKING_NONE, id, pad);
    }
}

static enum slh_err
put1(struct slh_store *sp, const struct slh_batch *b, size_t *n_new,
     struct slh_error *err)
{
    const struct slh_batch *one[] = {b};

    slh_error_clear(err);
    return slh_store_put(sp, &cfg, one, 1, slh_now_ms(), n_new, err);
}

/* The first column as text into buf ("" on error). */
static const char *
q_text(sqlite3 *db, const char *sql, char *buf, size_t size)
{
    sqlite3_stmt *st = NULL;

    buf[0] = '\0';
    if (db != NULL && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

/* The columns of the event table's unique index, in order ("at,id"). */
static const char *
event_unique_on(sqlite3 *db, char *buf, size_t size)
{
    return q_text(db,
                  "SELECT group_concat(name, ',') FROM (SELECT ii.name FROM "
                  "pragma_index_list('event') il, pragma_index_info(il.name) "
                  "ii WHERE il.[unique] ORDER BY ii.seqno)",
                  buf, size);
}

/* As sql_int(), through a second connection of our own to the spool in dir:
 * what another process would see. */
static int64_t
q_other(const char *dir, const char *sql)
{
    char path[PATH_MAX];
    sqlite3 *db = NULL;
    int64_t v = -1;

    db_path(path, dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK)
        v = sql_int(db, sql);
    sqlite3_close(db);
    return v;
}

static int
file_mode(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static bool
exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static bool
contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- mounts, always undone (atexit for the paths that return early) ---- */

static void
remember_mount(const char *dir)
{
    for (int i = 0; i < MAX_MOUNTS; i++) {
        if (mounts[i][0] == '\0') {
            snprintf(mounts[i], PATH_MAX, "%s", dir);
            return;
        }
    }
}

static bool
unmount(const char *dir)
{
    bool ok = umount2(dir, 0) == 0;

    if (!ok)
        umount2(dir, MNT_DETACH);
    for (int i = 0; i < MAX_MOUNTS; i++) {
        if (strcmp(mounts[i], dir) == 0)
            mounts[i][0] = '\0';
    }
    return ok;
}

static void
cleanup(void)
{
    for (int i = 0; i < MAX_MOUNTS; i++) {
        if (mounts[i][0] != '\0')
            umount2(mounts[i], MNT_DETACH);
    }
    run("rm -rf '%s'", base);
}

/* Interrupted or aborted: no mount or directory left behind (with calls
 * that are safe in a handler). */
static void
on_signal(int sig)
{
    pid_t pid;

    for (int i = 0; i < MAX_MOUNTS; i++) {
        if (mounts[i][0] != '\0')
            umount2(mounts[i], MNT_DETACH);
    }
    pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", base, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A fresh tmpfs of the given size at base/name; false (a failed check) when
 * it cannot be mounted. */
static bool
mount_tmpfs(char *dir, const char *name, const char *size, unsigned long flags)
{
    char opts[64];

    path_in(dir, name);
    snprintf(opts, sizeof(opts), "size=%s,mode=0755", size);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        CHECK(0, "mkdir %s: %s", dir, strerror(errno));
        return false;
    }
    /* Remembered first: a signal may come in between. */
    remember_mount(dir);
    return CHECK(mount("tmpfs", dir, "tmpfs", flags, opts) == 0,
                 "mount -t tmpfs -o %s %s: %s (this test needs root)", opts,
                 dir, strerror(errno));
}

static bool
remount(const char *dir, unsigned long flags, const char *opts)
{
    return mount("tmpfs", dir, "tmpfs", MS_REMOUNT | flags, opts) == 0;
}

/* ---- the tests ---- */

static void
test_open(void)
{
    char dir[PATH_MAX], path[PATH_MAX], buf[PATH_MAX];
    struct slh_store *sp = NULL, *sp2 = NULL;
    struct slh_error err = {0};
    sqlite3 *db;
    mode_t old_umask;
    int64_t t0, now;

    path_in(dir, "spool");
    db_path(path, dir);
    /* umask 0 would leave 0755/0644 behind a mkdir or open that trusted it */
    old_umask = umask(0);
    CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
          "open: %s", err.text);
    umask(old_umask);
    CHECK(sp != NULL, "open gives a handle");
    CHECK(file_mode(dir) == 0700, "spool dir mode %o", file_mode(dir));
    CHECK(file_mode(path) == 0600, "db mode %o", file_mode(path));
    pathf(buf, "%s-wal", path);
    CHECK(file_mode(buf) == 0600, "-wal mode %o", file_mode(buf));
    pathf(buf, "%s-shm", path);
    CHECK(file_mode(buf) == 0600, "-shm mode %o", file_mode(buf));

    db = slh_sqlite_db(sp);
    CHECK(db != NULL, "slh_sqlite_db");
    CHECK(strcmp(q_text(db, "PRAGMA journal_mode", buf, sizeof(buf)), "wal") ==
              0,
          "journal_mode %s", buf);
    CHECK(sql_int(db, "PRAGMA synchronous") == 2, "synchronous FULL (2): %lld",
          (long long)sql_int(db, "PRAGMA synchronous"));
    CHECK(sql_int(db, "PRAGMA user_version") == SLH_SQLITE_VERSION,
          "user_version %lld", (long long)sql_int(db, "PRAGMA user_version"));
    CHECK(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN "
                      "('event','delivery','delivery_due')") == 3,
          "schema: event, delivery, delivery_due");
    CHECK(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name="
                      "'delivery' AND sql LIKE '%WITHOUT ROWID'") == 1,
          "delivery is WITHOUT ROWID");
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(name, ',') FROM (SELECT name "
                        "FROM pragma_index_info('delivery_due') ORDER BY "
                        "seqno)",
                        buf, sizeof(buf)),
                 "dest,state,due") == 0,
          "delivery_due on %s", buf);
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(name, ',') FROM "
                        "pragma_table_info('event')",
                        buf, sizeof(buf)),
                 "seq,id,at,type,tracking,received,body") == 0,
          "event columns %s", buf);
    CHECK(strcmp(event_unique_on(db, buf, sizeof(buf)), "at,id") == 0,
          "event is unique on %s", buf);
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(name, ',') FROM "
                        "pragma_table_info('delivery')",
                        buf, sizeof(buf)),
                 "dest,seq,state,due,attempts,last_status,last_error,done,"
                 "owner") == 0,
          "delivery columns %s", buf);
    CHECK(sql_int(db, "SELECT count(*) FROM pragma_index_list('delivery') "
                      "WHERE name = 'delivery_owner' AND partial = 1") == 1 &&
              strcmp(q_text(db,
                            "SELECT group_concat(name, ',') FROM "
                            "pragma_index_info('delivery_owner')",
                            buf, sizeof(buf)),
                     "owner") == 0,
          "delivery_owner: partial, on %s", buf);

    /* A second handle while the first is open, and reopening. */
    CHECK(slh_store_open(&sp2, dir, SLH_STORE_CREATE, &err) == SLH_OK,
          "second open: %s", err.text);
    slh_store_close(sp2);
    slh_store_close(sp);
    sp = NULL;
    CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
          "reopen: %s", err.text);
    CHECK(sql_int(slh_sqlite_db(sp), "PRAGMA user_version") ==
              SLH_SQLITE_VERSION,
          "reopen keeps user_version");
    slh_store_close(sp);
    slh_store_close(NULL);

    /* A newer schema is refused, naming the path. */
    {
        sqlite3 *raw = NULL;
        sqlite3_open(path, &raw);
        char newer[64];
        snprintf(newer, sizeof(newer), "PRAGMA user_version = %d",
                 SLH_SQLITE_VERSION + 1);
        sqlite3_exec(raw, newer, NULL, NULL, NULL);
        sqlite3_close(raw);
        slh_error_clear(&err);
        sp = (struct slh_store *)1;
        snprintf(newer, sizeof(newer), "version %d", SLH_SQLITE_VERSION + 1);
        CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_ESTORE &&
                  contains(err.text, newer) && contains(err.text, path),
              "newer schema refused: %s", err.text);
        CHECK(sp == NULL, "failed open leaves *out NULL");
        sqlite3_open(path, &raw);
        snprintf(newer, sizeof(newer), "PRAGMA user_version = %d",
                 SLH_SQLITE_VERSION);
        sqlite3_exec(raw, newer, NULL, NULL, NULL);
        sqlite3_close(raw);
    }

    /* Only the last component is created. */
    path_in(buf, "no/such/spool");
    slh_error_clear(&err);
    CHECK(slh_store_open(&sp, buf, SLH_STORE_CREATE, &err) == SLH_ESTORE &&
              contains(err.text, buf) &&
              contains(err.text, "No such file or directory"),
          "missing parent: %s", err.text);
    CHECK(!exists(buf), "nothing created under a missing parent");
    /* The spool is not a directory. */
    db_path(buf, dir);
    slh_error_clear(&err);
    CHECK(slh_store_open(&sp, buf, SLH_STORE_CREATE, &err) == SLH_ESTORE &&
              contains(err.text, "Not a directory"),
          "spool path is a file: %s", err.text);
    slh_error_clear(&err);
    CHECK(slh_store_open(&sp, NULL, SLH_STORE_CREATE, &err) == SLH_EINVAL,
          "NULL dir: %s", err.text);
    CHECK(slh_sqlite_db(NULL) == NULL, "slh_sqlite_db(NULL)");

    t0 = (int64_t)time(NULL) * 1000;
    now = slh_now_ms();
    CHECK(now >= t0 - 1000 && now <= t0 + 2000, "slh_now_ms %lld vs %lld",
          (long long)now, (long long)t0);
}

struct holder {
    const char *path;
    int held_ms;
    int rc;
};

/* Holds the spool's write lock from another connection for a while. */
static void *
hold_lock(void *arg)
{
    struct holder *h = arg;
    struct timespec pause = {0, (long)h->held_ms * 1000000};
    sqlite3 *db = NULL;

    h->rc = sqlite3_open(h->path, &db);
    if (h->rc == SQLITE_OK)
        h->rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    nanosleep(&pause, NULL);
    if (h->rc == SQLITE_OK)
        h->rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return NULL;
}

/* Holds the writers' lock file as another process of ours would. */
static void *
hold_flock(void *arg)
{
    struct holder *h = arg;
    struct timespec pause = {0, (long)h->held_ms * 1000000};
    int fd = open(h->path, O_RDWR | O_CLOEXEC);

    h->rc = fd >= 0 ? flock(fd, LOCK_EX) : -1;
    nanosleep(&pause, NULL);
    if (fd >= 0)
        close(fd);
    return NULL;
}

/*
 * Starts hold(h) on a thread, lets it take its lock, then puts one event
 * (MessageId mid) into sp and times the put; joins the holder. The put's
 * result, and its time in *ms.
 */
static enum slh_err
put_while_held(struct slh_store *sp, void *(*hold)(void *), struct holder *h,
               const char *mid, double *ms, struct slh_error *err)
{
    struct slh_batch b;
    const struct slh_batch *one[1] = {&b};
    struct timespec t0, t1;
    enum slh_err rc;
    pthread_t t;

    batch_init(&b, 1);
    make_event(&b.events[0], "Delivered", SLH_TRACKING_NONE, mid, 0);
    pthread_create(&t, NULL, hold, h);
    nanosleep(&(struct timespec){0, 50 * 1000000}, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = slh_store_put(sp, &cfg, one, 1, 1, NULL, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    *ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
          (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    slh_batch_free(&b);
    return rc;
}

/* Writers of ours queue on the writers' lock, a blocking flock(), and the
 * put goes ahead as soon as it is let go. */
static void
test_writers_lock(void)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct holder h = {.path = path, .held_ms = 300};
    double ms = 0;

    path_in(dir, "writers");
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    pathf(path, "%s/" SLH_SQLITE_LOCK, dir);
    CHECK(file_mode(path) == 0600, "lock file 0600: %o", file_mode(path));
    CHECK(put_while_held(sp, hold_flock, &h, "writers1", &ms, &err) == SLH_OK,
          "put waits for the writers' lock: %s", err.text);
    CHECK(h.rc == 0, "the other writer held the lock");
    CHECK(ms >= 150 && ms < 1000, "waited for the writers' lock: %.1f ms", ms);
    slh_store_close(sp);
}

/* A put waits for another writer's lock, and gets it soon after it is let
 * go: SQLite's own busy timeout would sleep up to 100 ms at a time. */
static bool lock_is_free(const char *path);

static double
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* A child process that takes the writers' lock of dir, says so on the
 * pipe, holds it held_s seconds (as a writer stopped with it would) and
 * exits; -1 when it could not be started. */
static pid_t
hold_writers_lock(const char *dir, int held_s)
{
    char path[PATH_MAX], c = 0;
    int fds[2];
    pid_t pid;

    pathf(path, "%s/" SLH_SQLITE_LOCK, dir);
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        close(fds[0]);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            _exit(1);
        if (write(fds[1], "h", 1) != 1)
            _exit(1);
        sleep((unsigned)held_s);
        _exit(0);
    }
    close(fds[1]);
    if (pid < 0 || read(fds[0], &c, 1) != 1 || c != 'h') {
        close(fds[0]);
        return -1;
    }
    close(fds[0]);
    return pid;
}

/* The writers' lock is waited for within the busy timeout (5 s), not for
 * as long as a writer stopped with it holds it: the put fails (the 503
 * with Retry-After) and leaves the lock alone; a lock let go within the
 * bound is still taken at once. */
static void
test_writers_lock_bound(void)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b = {0};
    size_t n_new = 0;
    double t0, ms;
    enum slh_err rc;
    pid_t pid;
    int status = 0;

    path_in(dir, "lockbound");
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    pathf(path, "%s/" SLH_SQLITE_LOCK, dir);
    pid = hold_writers_lock(dir, 20);
    if (!CHECK(pid > 0, "a process holds the writers' lock"))
        goto out;
    batch_fill(&b, 1, "bound", 0);
    t0 = mono_ms();
    rc = put1(sp, &b, &n_new, &err);
    ms = mono_ms() - t0;
    CHECK(rc == SLH_ESTORE && strstr(err.text, "gave up") != NULL,
          "put under a lock held 20 s fails: %d %s", rc, err.text);
    CHECK(ms >= 4500 && ms < 9000, "within about the 5 s bound: %.0f ms", ms);
    printf("writers' lock held 20 s: put gave up after %.0f ms: %s\n", ms,
           err.text);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    CHECK(lock_is_free(path), "the failed put holds no lock");
    CHECK(put1(sp, &b, &n_new, &err) == SLH_OK && n_new == 1,
          "the next put stores: %s", err.text);
    slh_batch_free(&b);

    /* Let go within the bound: taken as it is let go. */
    pid = hold_writers_lock(dir, 1);
    if (!CHECK(pid > 0, "a process holds the writers' lock 1 s"))
        goto out;
    batch_fill(&b, 1, "bound-late", 0);
    t0 = mono_ms();
    rc = put1(sp, &b, &n_new, &err);
    ms = mono_ms() - t0;
    CHECK(rc == SLH_OK && n_new == 1, "put after a 1 s hold stores: %s",
          err.text);
    CHECK(ms >= 500 && ms < 3000, "waited for it: %.0f ms", ms);
    waitpid(pid, &status, 0);
    slh_batch_free(&b);
out:
    slh_store_close(sp);
}

/* What slh_store_open() creates, and what it leaves alone. */
static void
test_open_how(void)
{
    char dir[PATH_MAX], db[PATH_MAX], lock[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    enum slh_err rc;

    path_in(dir, "how");
    db_path(db, dir);
    pathf(lock, "%s/" SLH_SQLITE_LOCK, dir);
    rc = slh_store_open(&sp, dir, SLH_STORE_EXISTING, &err);
    CHECK(rc == SLH_ENOTFOUND && sp == NULL && !exists(dir),
          "existing only, no directory: not found, nothing made: %d %s", rc,
          err.text);
    CHECK(strstr(err.text, "no spool yet") != NULL, "says so: %s", err.text);
    slh_error_clear(&err);
    rc = slh_store_open(&sp, dir, SLH_STORE_CREATE_DB, &err);
    CHECK(rc == SLH_ENOTFOUND && sp == NULL && !exists(dir),
          "database only, no directory: not found, nothing made: %d %s", rc,
          err.text);
    CHECK(mkdir(dir, 0700) == 0, "mkdir");
    slh_error_clear(&err);
    rc = slh_store_open(&sp, dir, SLH_STORE_EXISTING, &err);
    CHECK(rc == SLH_ENOTFOUND && sp == NULL && !exists(db) && !exists(lock),
          "existing only, empty directory: not found, nothing made: %d %s", rc,
          err.text);
    slh_error_clear(&err);
    rc = slh_store_open(&sp, dir, SLH_STORE_CREATE_DB, &err);
    CHECK(rc == SLH_OK && exists(db),
          "database only: made in the directory: %s", err.text);
    slh_store_close(sp);
    sp = NULL;
    rc = slh_store_open(&sp, dir, SLH_STORE_EXISTING, &err);
    CHECK(rc == SLH_OK, "existing only: opens the spool: %s", err.text);
    slh_store_close(sp);
}

/* slh_store_open() of dir fails naming it and want; nothing is made in
 * it. */
static void
check_refused(const char *dir, const char *named, const char *want,
              const char *what)
{
    char db[PATH_MAX], lock[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    bool had_db;
    enum slh_err rc;

    db_path(db, dir);
    pathf(lock, "%s/" SLH_SQLITE_LOCK, dir);
    had_db = exists(db);
    unlink(lock);
    rc = slh_store_open(&sp, dir, SLH_STORE_CREATE, &err);
    CHECK(rc == SLH_ESTORE && sp == NULL, "%s: refused: %d %s", what, rc,
          err.text);
    CHECK(strstr(err.text, named) != NULL && strstr(err.text, want) != NULL,
          "%s: the message names %s and '%s': %s", what, named, want, err.text);
    CHECK(exists(db) == had_db && !exists(lock), "%s: nothing made in it",
          what);
    slh_store_close(sp);
}

/* A spool directory or database that is not the running user's own, or
 * that others may write, is not opened (store.h): another user could have
 * slipped in events to relay, signed. */
static void
test_trust(void)
{
    char dir[PATH_MAX], db[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    mode_t old = umask(0);
    int status = -1;
    pid_t pid;

    path_in(dir, "wide");
    CHECK(mkdir(dir, 0777) == 0, "mkdir 0777");
    check_refused(dir, dir, "mode 0777", "a world-writable directory");
    path_in(dir, "sticky");
    CHECK(mkdir(dir, 01777) == 0 && chmod(dir, 01777) == 0, "mkdir 1777");
    check_refused(dir, dir, "others", "a /tmp-like directory");
    path_in(dir, "group");
    CHECK(mkdir(dir, 0770) == 0, "mkdir 0770");
    check_refused(dir, dir, "its group", "a group-writable directory");
    umask(old);

    path_in(dir, "dbwide");
    if (CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
              "open: %s", err.text))
        slh_store_close(sp);
    sp = NULL;
    db_path(db, dir);
    CHECK(chmod(db, 0666) == 0, "chmod the database 0666");
    check_refused(dir, db, "mode 0666", "a world-writable database");
    CHECK(chmod(db, 0600) == 0 && chown(db, 65534, 65534) == 0,
          "chown the database to nobody");
    check_refused(dir, db, "uid 65534", "a database of another user");
    path_in(dir, "theirs");
    CHECK(mkdir(dir, 0700) == 0 && chown(dir, 65534, 65534) == 0,
          "a directory of nobody's");
    check_refused(dir, dir, "uid 65534", "a directory of another user");

    /* The other way round: nobody meets root's spool. The base directory
     * must let it look in. */
    path_in(dir, "root");
    if (CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
              "open: %s", err.text))
        slh_store_close(sp);
    sp = NULL;
    chmod(base, 0711);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct slh_store *child = NULL;
        struct slh_error e2 = {0};
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(2);
        if (slh_store_open(&child, dir, SLH_STORE_CREATE, &e2) == SLH_ESTORE &&
            strstr(e2.text, "owned by root (uid 0") != NULL &&
            strstr(e2.text, "not by uid 65534") != NULL)
            _exit(0);
        printf("child: %s\n", e2.text);
        _exit(1);
    }
    waitpid(pid, &status, 0);
    chmod(base, 0700);
    CHECK(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "another user is refused root's spool, told whose it is: %d", status);
}

static void
test_busy_wait(void)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct holder h = {.path = path, .held_ms = 300};
    double ms = 0;

    path_in(dir, "busy");
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    pathf(path, "%s/" SLH_SQLITE_FILE, dir);
    CHECK(put_while_held(sp, hold_lock, &h, "busy1", &ms, &err) == SLH_OK,
          "put waits for the lock: %s", err.text);
    CHECK(h.rc == SQLITE_OK, "the other writer held and let go: %d", h.rc);
    CHECK(ms >= 150 && ms < 1000, "waited for the lock: %.1f ms", ms);
    printf("busy wait: put got the lock %.1f ms after asking (held 250 ms "
           "more)\n",
           ms);
    slh_store_close(sp);
}

/* What a task of test_put_tasks() saw inside the put's transaction. */
struct task_probe {
    const char *lock_path;
    int64_t events;     /* events visible to it */
    bool in_tx;         /* a transaction was open */
    int64_t sync;       /* PRAGMA synchronous in it: 2 FULL, 1 NORMAL */
    bool lock_held;     /* nobody else could take the writers' lock, */
    bool nested_held;   /* even after a nested lock and unlock */
    const char *update; /* SQL it runs, or NULL */
    enum slh_err rc;    /* what it returns */
    int runs;
};

/* Whether another open file of the lock could take it now. */
static bool
lock_is_free(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    bool is_free = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;

    if (fd >= 0)
        close(fd);
    return is_free;
}

static enum slh_err
probe_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    struct task_probe *p = arg;
    sqlite3 *db = slh_sqlite_db(sp);

    p->runs++;
    p->in_tx = !sqlite3_get_autocommit(db);
    p->sync = sql_int(db, "PRAGMA synchronous");
    p->events = sql_int(db, "SELECT count(*) FROM event");
    p->lock_held = !lock_is_free(p->lock_path);
    if (slh_sqlite_lock(sp, NULL) == SLH_OK)
        slh_sqlite_unlock(sp);
    p->nested_held = !lock_is_free(p->lock_path);
    if (p->update != NULL &&
        sqlite3_exec(db, p->update, NULL, NULL, NULL) != SQLITE_OK)
        return slh_error_set(err, SLH_ESTORE, "update: %s", sqlite3_errmsg(db));
    if (p->rc != SLH_OK)
        return slh_error_set(err, p->rc, "the task says no");
    return SLH_OK;
}

/* Tasks run inside the put's transaction, after its inserts and under its
 * writers' lock (a nested lock leaving it held), and stand or fall with it:
 * a task's error stores nothing of the put and undoes the other tasks. */
static void
test_put_tasks(void)
{
    char dir[PATH_MAX], lock[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b1, b2;
    const struct slh_batch *one[1];
    struct task_probe p1 = {.lock_path = lock}, p2 = {.lock_path = lock};
    struct slh_store_task tasks[2] = {{probe_task, &p1}, {probe_task, &p2}};
    sqlite3 *db;
    size_t n_new = 0;

    path_in(dir, "tasks");
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    db = slh_sqlite_db(sp);
    pathf(lock, "%s/" SLH_SQLITE_LOCK, dir);
    batch_fill(&b1, 3, "tasks-a", 0);
    batch_fill(&b2, 2, "tasks-b", 0);

    one[0] = &b1;
    p1.update = "UPDATE delivery SET attempts = 7";
    CHECK(slh_store_put_tasks(sp, &cfg, one, 1, tasks, 2, slh_now_ms(), &n_new,
                              &err) == SLH_OK,
          "put with tasks: %s", err.text);
    CHECK(n_new == 3, "3 new events: %zu", n_new);
    CHECK(p1.runs == 1 && p2.runs == 1, "each task ran once: %d, %d", p1.runs,
          p2.runs);
    CHECK(p1.in_tx && p2.in_tx, "tasks run inside a transaction");
    CHECK(p1.events == 3, "a task sees the put's inserts: %lld",
          (long long)p1.events);
    CHECK(p1.sync == 2, "with events to store, the commit fsyncs: %lld",
          (long long)p1.sync);
    CHECK(p1.lock_held && p1.nested_held && p2.nested_held,
          "the writers' lock is held throughout the tasks");
    CHECK(lock_is_free(lock), "and let go after the put");
    CHECK(sql_int(db, "SELECT count(*) FROM delivery WHERE attempts = 7") ==
                  sql_int(db, "SELECT count(*) FROM delivery") &&
              sql_int(db, "SELECT count(*) FROM delivery") > 0,
          "a task's writes commit with the put");

    /* The second task fails: neither the batch nor the first task's
     * update is stored, and the task's error is the put's. */
    one[0] = &b2;
    p1.update = "UPDATE delivery SET attempts = 8";
    p2.rc = SLH_EDELIVER;
    slh_error_clear(&err);
    CHECK(slh_store_put_tasks(sp, &cfg, one, 1, tasks, 2, slh_now_ms(), &n_new,
                              &err) == SLH_EDELIVER &&
              strstr(err.text, "the task says no") != NULL,
          "a failing task fails the put: %d %s", err.code, err.text);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 3,
          "nothing of the failed put stored");
    CHECK(sql_int(db, "SELECT count(*) FROM delivery WHERE attempts = 8") == 0,
          "the other task's update rolled back");
    CHECK(sqlite3_get_autocommit(db) && lock_is_free(lock),
          "no transaction nor lock left behind");

    /* Tasks alone, no batch: a transaction of their own. */
    p2.rc = SLH_OK;
    p1.update = "UPDATE delivery SET attempts = 9";
    CHECK(slh_store_put_tasks(sp, &cfg, NULL, 0, tasks, 2, slh_now_ms(), &n_new,
                              &err) == SLH_OK &&
              n_new == 0,
          "tasks alone: %s", err.text);
    CHECK(p1.in_tx && p1.nested_held, "alone, still in a locked transaction");
    CHECK(p1.sync == 1 && sql_int(db, "PRAGMA synchronous") == 2,
          "tasks alone commit at synchronous=NORMAL (%lld), FULL after",
          (long long)p1.sync);
    CHECK(sql_int(db, "SELECT count(*) FROM delivery WHERE attempts = 9") ==
              sql_int(db, "SELECT count(*) FROM delivery"),
          "and committed");
    CHECK(slh_store_put_tasks(sp, &cfg, one, 1, NULL, 1, slh_now_ms(), NULL,
                              &err) == SLH_EINVAL,
          "tasks NULL with a count: EINVAL");
    slh_batch_free(&b1);
    slh_batch_free(&b2);
    slh_store_close(sp);
}

static void
test_put(void)
{
    char dir[PATH_MAX], buf[512], sql[512];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b1, b2, b3;
    const struct slh_batch *two[2];
    size_t n_new = 99;
    sqlite3 *db;
    int64_t now = 1714637761000;
    char *body;

    path_in(dir, "put");
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    db = slh_sqlite_db(sp);

    batch_init(&b1, 7);
    make_event(&b1.events[0], "Delivered", SLH_TRACKING_NONE, "m1", 0);
    make_event(&b1.events[1], "Failed", SLH_TRACKING_NONE, "m2", 0);
    make_event(&b1.events[2], "Tracking", SLH_TRACKING_CLICK, "m3", 0);
    make_event(&b1.events[3], "Tracking", SLH_TRACKING_OPEN, "m4", 0);
    make_event(&b1.events[4], "Validation", SLH_TRACKING_NONE, "m5", 0);
    make_event(&b1.events[5], "complaint", SLH_TRACKING_NONE, "m6", 0);
    make_event(&b1.events[6], "NewType", SLH_TRACKING_NONE, "m7", 0);

    two[0] = &b1;
    CHECK(slh_store_put(sp, &cfg, two, 1, now, &n_new, &err) == SLH_OK,
          "put: %s", err.text);
    CHECK(n_new == 6, "n_new %zu, want 6 (Validation not stored)", n_new);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 6, "6 events");
    CHECK(sql_int(db, "SELECT count(*) FROM event WHERE type='Validation'") ==
              0,
          "no Validation event stored");
    CHECK(sql_int(db, "SELECT count(*) FROM delivery WHERE dest='all'") == 6,
          "dest all: 6 rows");
    CHECK(sql_int(db, "SELECT group_concat(e.type) = 'Failed,complaint' FROM "
                      "delivery d JOIN event e USING (seq) WHERE d.dest='bad' "
                      "ORDER BY d.seq") == 1,
          "dest bad: Failed and complaint only");
    CHECK(sql_int(db,
                  "SELECT count(*) FROM delivery d JOIN event e USING (seq) "
                  "WHERE d.dest='clicks' AND e.tracking=0") == 1 &&
              sql_int(db,
                      "SELECT count(*) FROM delivery WHERE dest='clicks'") == 1,
          "dest clicks: the click only");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM delivery WHERE state=0 AND due=%lld AND "
             "attempts=0 AND last_status IS NULL AND last_error IS NULL AND "
             "done IS NULL",
             (long long)now);
    CHECK(sql_int(db, sql) == 9, "9 pending rows due now, 0 attempts");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM event WHERE received=%lld",
             (long long)now);
    CHECK(sql_int(db, sql) == 6, "received = now_ms");
    CHECK(sql_int(db,
                  "SELECT count(*) FROM event WHERE body LIKE '%SecretKey%' "
                  "OR body LIKE '%" SECRET "%'") == 0,
          "no SecretKey in any body");
    snprintf(sql, sizeof(sql), "SELECT body FROM event WHERE id='%s'",
             b1.events[2].id);
    body = slh_event_body(&b1.events[2]);
    CHECK(body != NULL && strcmp(q_text(db, sql, buf, sizeof(buf)), body) == 0,
          "body is slh_event_body(): %s", buf);
    free(body);
    snprintf(sql, sizeof(sql),
             "SELECT type || '/' || tracking FROM event WHERE id='%s'",
             b1.events[2].id);
    CHECK(strcmp(q_text(db, sql, buf, sizeof(buf)), "Tracking/0") == 0,
          "type and tracking stored: %s", buf);
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT seq FROM event WHERE id='%s') < (SELECT seq FROM "
             "event WHERE id='%s')",
             b1.events[0].id, b1.events[6].id);
    CHECK(sql_int(db, sql) == 1, "seq in arrival order");

    /* The same batch again: all duplicates. */
    CHECK(slh_store_put(sp, &cfg, two, 1, now + 5, &n_new, &err) == SLH_OK &&
              n_new == 0,
          "again: n_new %zu (%s)", n_new, err.text);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 6 &&
              sql_int(db, "SELECT count(*) FROM delivery") == 9,
          "duplicates add nothing");

    /* The same id twice in one put, across two batches. */
    batch_init(&b2, 2);
    make_event(&b2.events[0], "Queued", SLH_TRACKING_NONE, "q1", 0);
    make_event(&b2.events[1], "Queued", SLH_TRACKING_NONE, "q1", 0);
    batch_init(&b3, 2);
    make_event(&b3.events[0], "Queued", SLH_TRACKING_NONE, "q1", 0);
    make_event(&b3.events[1], "Failed", SLH_TRACKING_NONE, "m2", 0);
    CHECK(strcmp(b2.events[0].id, b2.events[1].id) == 0, "same id");
    two[0] = &b2;
    two[1] = &b3;
    CHECK(slh_store_put(sp, &cfg, two, 2, now, &n_new, &err) == SLH_OK &&
              n_new == 1,
          "one new of four: n_new %zu (%s)", n_new, err.text);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 7 &&
              sql_int(db, "SELECT count(*) FROM delivery") == 10,
          "stored once: %lld events, %lld rows",
          (long long)sql_int(db, "SELECT count(*) FROM event"),
          (long long)sql_int(db, "SELECT count(*) FROM delivery"));

    /* Edges: nothing to store, no n_new, bad arguments. */
    CHECK(slh_store_put(sp, &cfg, NULL, 0, now, &n_new, &err) == SLH_OK &&
              n_new == 0,
          "empty put");
    slh_batch_free(&b2);
    batch_fill(&b2, 1, "edge", 0);
    two[0] = &b2;
    CHECK(slh_store_put(sp, &cfg_none, two, 1, now, NULL, &err) == SLH_OK,
          "NULL n_new, no destinations: %s", err.text);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 8 &&
              sql_int(db, "SELECT count(*) FROM delivery") == 10,
          "event stored without delivery rows when no destination");
    slh_error_clear(&err);
    CHECK(slh_store_put(NULL, &cfg, two, 1, now, &n_new, &err) == SLH_EINVAL,
          "NULL spool: %s", err.text);
    CHECK(slh_store_put(sp, NULL, two, 1, now, &n_new, NULL) == SLH_EINVAL,
          "NULL cfg");
    CHECK(q_other(dir, "SELECT count(*) FROM event") == 8,
          "another connection sees the committed events");

    slh_batch_free(&b1);
    slh_batch_free(&b2);
    slh_batch_free(&b3);
    slh_store_close(sp);
}

/* put1() of b: the number of new events, -1 on failure (err says why). */
static long long
put_new(struct slh_store *sp, const struct slh_batch *b, struct slh_error *err)
{
    size_t n_new = 0;

    return put1(sp, b, &n_new, err) == SLH_OK ? (long long)n_new : -1;
}

/* Parses JSON text into *b, checking that it parses. */
static bool
parse_json(struct slh_batch *b, const char *text)
{
    struct slh_error err = {0};

    return CHECK(slh_batch_parse(b, text, strlen(text), SLH_MEDIA_JSON, &err) ==
                     SLH_OK,
                 "parse %s: %s", text, err.text);
}

/*
 * Ids with a '|' or '\' in a field (event.h): two events whose fields join
 * to one text are both stored, and an event an older slhook stored under
 * the plain join's id (its legacy id) is still a duplicate.
 */
static void
test_legacy_ids(void)
{
    char dir[PATH_MAX], sql[512];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch a = {0}, b = {0}, c = {0};
    long long got;
    sqlite3 *db;

    path_in(dir, "legacy");
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    db = slh_sqlite_db(sp);
    if (!parse_json(&a, "{\"Type\":\"Delivered\",\"ServerId\":40211,"
                        "\"DateTime\":\"2024-05-02T08:16:01Z\","
                        "\"MessageId\":\"m|x\",\"MailingId\":\"y\"}") ||
        !parse_json(&b, "{\"Type\":\"Delivered\",\"ServerId\":40211,"
                        "\"DateTime\":\"2024-05-02T08:16:01Z\","
                        "\"MessageId\":\"m\",\"MailingId\":\"x|y\"}"))
        goto out;
    got = put_new(sp, &a, &err);
    CHECK(got == 1, "m|x + y stored: %lld new (%s)", got, err.text);
    got = put_new(sp, &b, &err);
    CHECK(got == 1, "m + x|y stored beside it: %lld new (%s)", got, err.text);
    got = put_new(sp, &b, &err);
    CHECK(got == 0, "m + x|y again is a duplicate: %lld new (%s)", got,
          err.text);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 2, "two events");

    /* An older slhook stored this one under its plain join's id: a row
     * written by hand as it did. Received again, it is a duplicate. */
    slh_batch_free(&a);
    if (!parse_json(&a, "{\"Type\":\"Failed\",\"ServerId\":40211,"
                        "\"DateTime\":\"2024-05-03T07:00:00Z\","
                        "\"MessageId\":\"a|b\\\\c\"}"))
        goto out;
    snprintf(sql, sizeof(sql),
             "INSERT INTO event(id, at, type, tracking, received, body) "
             "VALUES ('%s', %lld, 'Failed', -1, 1, '{}')",
             a.events[0].legacy_id, (long long)a.events[0].at);
    CHECK(a.events[0].legacy_id[0] != '\0' &&
              sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK,
          "old row written: %s", sqlite3_errmsg(db));
    got = put_new(sp, &a, &err);
    CHECK(got == 0,
          "stored under its legacy id, it is a duplicate: %lld new (%s)", got,
          err.text);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 3 &&
              sql_int(db, "SELECT count(*) FROM delivery WHERE seq = (SELECT "
                          "max(seq) FROM event)") == 0,
          "nothing added for it");

    /* Stored by this slhook, "x|y" + "g" has an escaped id, which is no
     * event's legacy id: not even that of "x\" + "y|g", whose plain join is
     * the text "x|y" + "g" would have with '|' as the escaped separator. */
    slh_batch_free(&b);
    if (!parse_json(&b, "{\"Type\":\"Delivered\",\"ServerId\":40211,"
                        "\"MessageId\":\"x|y\",\"MailingId\":\"g\"}") ||
        !parse_json(&c, "{\"Type\":\"Delivered\",\"ServerId\":40211,"
                        "\"MessageId\":\"x\\\\\",\"MailingId\":\"y|g\"}"))
        goto out;
    got = put_new(sp, &b, &err);
    CHECK(got == 1, "x|y + g stored: %lld new (%s)", got, err.text);
    got = put_new(sp, &c, &err);
    CHECK(got == 1, "x\\ + y|g stored beside it: %lld new (%s)", got, err.text);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 5, "five events");
out:
    slh_batch_free(&a);
    slh_batch_free(&b);
    slh_batch_free(&c);
    slh_store_close(sp);
}

/* slh_sqlite_prepare() keeps one statement per SQL text, given back reset
 * and unbound, up to SLH_SQLITE_STMTS of them. */
static void
test_kept_statements(void)
{
    static const char sql[] = "SELECT ?1 + 1";
    static char many[SLH_SQLITE_STMTS + 1][32];
    char dir[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    sqlite3_stmt *a = NULL, *b = NULL, *c = NULL;
    int rc = SQLITE_OK, i, kept;

    path_in(dir, "kept");
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    CHECK(slh_sqlite_prepare(slh_sqlite(sp), sql, &a) == SQLITE_OK && a != NULL,
          "prepared");
    sqlite3_bind_int(a, 1, 41);
    CHECK(sqlite3_step(a) == SQLITE_ROW && sqlite3_column_int(a, 0) == 42,
          "kept statement runs");
    slh_sqlite_release(a);
    CHECK(slh_sqlite_prepare(slh_sqlite(sp), sql, &b) == SQLITE_OK && b == a,
          "the same statement again");
    CHECK(sqlite3_step(b) == SQLITE_ROW &&
              sqlite3_column_type(b, 0) == SQLITE_NULL,
          "given back reset, bindings cleared");
    slh_sqlite_release(b);
    CHECK(sqlite3_get_autocommit(slh_sqlite_db(sp)), "no transaction left");
    /* The store keeps its own too (its transactions' statements). */
    for (kept = 0; kept < SLH_SQLITE_STMTS; kept++)
        if (slh_sqlite(sp)->kept[kept].sql == NULL)
            break;
    for (i = 0; i < SLH_SQLITE_STMTS && rc == SQLITE_OK; i++) {
        snprintf(many[i], sizeof(many[i]), "SELECT %d", i);
        rc = slh_sqlite_prepare(slh_sqlite(sp), many[i], &c);
    }
    CHECK(rc == SQLITE_FULL && c == NULL && kept + i - 1 == SLH_SQLITE_STMTS,
          "full after %d more of %d: rc %d", i - 1, SLH_SQLITE_STMTS - kept,
          rc);
    CHECK(slh_sqlite_prepare(slh_sqlite(sp), sql, &b) == SQLITE_OK && b == a,
          "a kept one still found when full");
    slh_sqlite_release(b);
    slh_sqlite_release(NULL);
    slh_store_close(sp);
}

static int n_due;

static void
count_due(void *ctx)
{
    (void)ctx;
    n_due++;
}

static off_t
file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* With deferred checkpoints, due() is called once the WAL is half full; a
 * passive checkpoint on another connection copies it ahead; the committing
 * connection still checkpoints at the full count, so the WAL stays bounded
 * and starts over. */
static void
test_deferred_checkpoints(void)
{
    /* A WAL frame: a 24-byte header and a page. */
    const off_t frame = 24 + 4096, full = SLH_SQLITE_CHECKPOINT_PAGES * frame;
    char dir[PATH_MAX], wal[PATH_MAX], prefix[64];
    struct slh_store *sp = NULL, *other = NULL;
    struct slh_error err = {0};
    struct slh_batch b = {0};
    size_t n_new;
    off_t at_due = 0, most = 0;
    int i, n = 0;
    bool ok = true;

    path_in(dir, "checkpoints");
    pathf(wal, "%s/slhook.db-wal", dir);
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK &&
                   slh_store_open(&other, dir, SLH_STORE_CREATE, &err) ==
                       SLH_OK,
               "open: %s", err.text))
        goto out;
    slh_sqlite_defer_checkpoints(sp, count_due, NULL);
    /* 3 events of 20 KB a put: about 15 pages; 200 puts fill the WAL three
     * times over. */
    for (i = 0; i < 200 && ok; i++) {
        snprintf(prefix, sizeof(prefix), "ckpt-%d", i);
        batch_fill(&b, 3, prefix, 20000);
        ok = put1(sp, &b, &n_new, &err) == SLH_OK;
        slh_batch_free(&b);
        n += ok ? (int)n_new : 0;
        if (n_due > 0 && at_due == 0) {
            at_due = file_size(wal);
            CHECK(slh_sqlite_checkpoint(other, &err) == SLH_OK,
                  "checkpoint: %s", err.text);
        }
        if (file_size(wal) > most)
            most = file_size(wal);
    }
    CHECK(ok && n == 600, "puts: %d events (%s)", n, err.text);
    CHECK(at_due >= full / 2 && at_due < full,
          "due() first called with the WAL half full: %lld bytes",
          (long long)at_due);
    CHECK(most < full + 64 * frame, "the WAL stays bounded: at most %lld",
          (long long)most);
    CHECK(sql_int(slh_sqlite_db(other), "SELECT count(*) FROM event") == 600,
          "every event readable");
out:
    slh_store_close(sp);
    slh_store_close(other);
}

/* Frames of the WAL copied into the database so far: nBackfill, the first
 * word of the checkpoint information after the wal-index's two 48-byte
 * headers in the -shm file (SQLite's file format, "WAL-index Format");
 * 0 when unreadable. */
static uint32_t
backfilled(const char *dir)
{
    char shm[PATH_MAX];
    uint32_t n = 0;
    int fd;

    pathf(shm, "%s/slhook.db-shm", dir);
    fd = open(shm, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && pread(fd, &n, sizeof(n), 96) != (ssize_t)sizeof(n))
        n = 0;
    if (fd >= 0)
        close(fd);
    return n;
}

static void
note_count(void *ctx, const char *text)
{
    (void)text;
    (*(int *)ctx)++;
}

/* The committer's role: the backend's own thread copies the WAL ahead once
 * it is half full, long before the committing connection would (at the
 * full count), and is gone with the handle. */
static void
test_committer_role(void)
{
    const off_t frame = 24 + 4096, full = SLH_SQLITE_CHECKPOINT_PAGES * frame;
    char dir[PATH_MAX], wal[PATH_MAX], prefix[64];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b = {0};
    size_t n_new;
    int i, notes = 0;
    bool ok = true;

    path_in(dir, "committer");
    pathf(wal, "%s/slhook.db-wal", dir);
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    slh_store_on_note(sp, note_count, &notes);
    CHECK(slh_store_role(sp, SLH_STORE_COMMITTER, &err) == SLH_OK &&
              slh_sqlite(sp)->ckpt != NULL,
          "committer: a checkpointer: %s", err.text);
    CHECK(slh_store_role(sp, SLH_STORE_COMMITTER, &err) == SLH_OK,
          "asked twice: still one");
    for (i = 0; i < 200 && ok && file_size(wal) < full / 2 + 8 * frame; i++) {
        snprintf(prefix, sizeof(prefix), "role-%d", i);
        batch_fill(&b, 3, prefix, 20000);
        ok = put1(sp, &b, &n_new, &err) == SLH_OK;
        slh_batch_free(&b);
    }
    CHECK(ok && file_size(wal) < full, "the WAL half full: %lld bytes (%s)",
          (long long)file_size(wal), err.text);
    for (i = 0; i < 500 && backfilled(dir) == 0; i++)
        usleep(10000);
    CHECK(backfilled(dir) > 0, "copied ahead by the checkpointer: %u frames",
          backfilled(dir));
    CHECK(notes == 0, "nothing to tell: %d notes", notes);
    slh_store_close(sp);
}

/* A real body through event.c, as the handler would store it. */
static void
test_put_fixture(void)
{
    char dir[PATH_MAX], path[PATH_MAX], buf[4096], sql[256];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b = {0};
    size_t len = 0, n_new = 0;
    char *text, *body;

    pathf(path, "%s/socketlabs/batch-3.json", check_fixtures());
    text = check_slurp(path, &len);
    if (!CHECK(text != NULL, "fixture %s", path))
        return;
    path_in(dir, "fixture");
    if (CHECK(slh_batch_parse(&b, text, len, SLH_MEDIA_JSON, &err) == SLH_OK,
              "parse: %s", err.text) &&
        CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
              "open: %s", err.text) &&
        CHECK(put1(sp, &b, &n_new, &err) == SLH_OK && n_new == b.n,
              "fixture put: %zu of %zu (%s)", n_new, b.n, err.text)) {
        snprintf(sql, sizeof(sql), "SELECT body FROM event WHERE id='%s'",
                 b.events[0].id);
        body = slh_event_body(&b.events[0]);
        CHECK(body != NULL &&
                  strcmp(q_text(slh_sqlite_db(sp), sql, buf, sizeof(buf)),
                         body) == 0 &&
                  !contains(buf, SECRET),
              "fixture body stored without the secret: %s", buf);
        free(body);
        snprintf(sql, sizeof(sql), "SELECT at FROM event WHERE id='%s'",
                 b.events[1].id);
        CHECK(sql_int(slh_sqlite_db(sp), sql) == b.events[1].at &&
                  b.events[1].at == (int64_t)1714637761 * 1000000 + 993048,
              "at stored: %lld", (long long)sql_int(slh_sqlite_db(sp), sql));
    }
    slh_batch_free(&b);
    free(text);

    /* A relay body made ahead (slh_batch_bodies(), as the FastCGI request
     * threads do) is the one stored: this one is marked to tell. */
    pathf(path, "%s/socketlabs/failed-1.json", check_fixtures());
    text = check_slurp(path, &len);
    if (sp != NULL && CHECK(text != NULL, "fixture %s", path) &&
        CHECK(slh_batch_parse(&b, text, len, SLH_MEDIA_JSON, &err) == SLH_OK,
              "parse: %s", err.text) &&
        CHECK(slh_batch_bodies(&b) == SLH_OK && b.events[0].body != NULL,
              "bodies made ahead")) {
        free(b.events[0].body);
        b.events[0].body = strdup("{\"made\":\"ahead\"}");
        CHECK(put1(sp, &b, &n_new, &err) == SLH_OK && n_new == 1,
              "put with a body made ahead: %s", err.text);
        snprintf(sql, sizeof(sql), "SELECT body FROM event WHERE id='%s'",
                 b.events[0].id);
        CHECK(strcmp(q_text(slh_sqlite_db(sp), sql, buf, sizeof(buf)),
                     "{\"made\":\"ahead\"}") == 0,
              "the body made ahead is stored: %s", buf);
    }
    slh_store_close(sp);
    slh_batch_free(&b);
    free(text);
}

/* Puts 3-event batches of 40 KB events until the tmpfs is full; returns the
 * number that were stored, leaving the failing batch in *fail. */
static int
fill_up(struct slh_store *sp, const char *tag, struct slh_batch *fail,
        struct slh_error *err)
{
    char prefix[64];
    size_t n_new;

    for (int i = 0; i < 500; i++) {
        snprintf(prefix, sizeof(prefix), "%s-%d", tag, i);
        batch_fill(fail, 3, prefix, 40000);
        if (put1(sp, fail, &n_new, err) != SLH_OK)
            return i;
        slh_batch_free(fail);
    }
    return -1;
}

/* A spool of schema version 1 (events unique on id alone), upgraded on open:
 * its events keep their seq, id and body, gain the key of the DateTime in
 * their body, and are still duplicates of themselves. */
static void
test_upgrade(void)
{
    static const char v1_sql[] =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE event(seq INTEGER PRIMARY KEY,"
        " id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,"
        " tracking INTEGER NOT NULL, received INTEGER NOT NULL,"
        " body TEXT NOT NULL);"
        "CREATE TABLE delivery(dest TEXT NOT NULL, seq INTEGER NOT NULL,"
        " state INTEGER NOT NULL, due INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL, last_status INTEGER, last_error TEXT,"
        " done INTEGER, PRIMARY KEY (dest, seq)) WITHOUT ROWID;"
        "CREATE INDEX delivery_due ON delivery(dest, state, due);"
        "PRAGMA user_version = 1;";
    char dir[PATH_MAX], path[PATH_MAX], sql[512], buf[4096];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b = {0};
    sqlite3 *raw = NULL, *db;
    size_t len = 0, n_new = 99;
    char *text, *body = NULL;

    pathf(path, "%s/socketlabs/delivered-1.json", check_fixtures());
    text = check_slurp(path, &len);
    path_in(dir, "upgrade");
    db_path(path, dir);
    if (!CHECK(text != NULL && mkdir(dir, 0700) == 0, "set-up") ||
        !CHECK(slh_batch_parse(&b, text, len, SLH_MEDIA_JSON, &err) == SLH_OK,
               "parse: %s", err.text)) {
        free(text);
        return;
    }
    body = slh_event_body(&b.events[0]);
    sqlite3_open(path, &raw);
    snprintf(sql, sizeof(sql),
             "INSERT INTO event VALUES (7, '%s', 'Delivered', -1, 5, ?1);"
             "INSERT INTO event VALUES (9, 'x', 'Queued', -1, 6, '{}');"
             "INSERT INTO delivery VALUES ('all', 7, 0, 5, 0, NULL, NULL, "
             "NULL);",
             b.events[0].id);
    if (CHECK(sqlite3_exec(raw, v1_sql, NULL, NULL, NULL) == SLH_OK &&
                  body != NULL,
              "version 1 spool: %s", sqlite3_errmsg(raw))) {
        sqlite3_stmt *st = NULL;
        const char *tail = sql;
        int rc = SQLITE_OK;
        /* Each statement in turn: the first binds the body. */
        while (rc == SQLITE_OK && *tail != '\0') {
            rc = sqlite3_prepare_v2(raw, tail, -1, &st, &tail);
            if (rc != SQLITE_OK || st == NULL)
                break;
            sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
            sqlite3_finalize(st);
        }
        CHECK(rc == SQLITE_OK, "version 1 rows: %s", sqlite3_errmsg(raw));
    }
    sqlite3_close(raw);

    if (CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
              "open v1: %s", err.text)) {
        db = slh_sqlite_db(sp);
        CHECK(sql_int(db, "PRAGMA user_version") == SLH_SQLITE_VERSION,
              "upgraded to %d", SLH_SQLITE_VERSION);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM event WHERE seq = 7 AND id = '%s' AND "
                 "at = %lld AND received = 5",
                 b.events[0].id, (long long)b.events[0].at);
        CHECK(b.events[0].at > 0 && sql_int(db, sql) == 1,
              "the event keeps its row and gains its at");
        CHECK(sql_int(db, "SELECT at FROM event WHERE seq = 9") == 0,
              "no DateTime: at 0");
        CHECK(strcmp(q_text(db, "SELECT body FROM event WHERE seq = 7", buf,
                            sizeof(buf)),
                     body) == 0,
              "body kept: %s", buf);
        CHECK(sql_int(db, "SELECT count(*) FROM delivery WHERE seq = 7 AND "
                          "state = 0") == 1,
              "its delivery kept");
        CHECK(strcmp(event_unique_on(db, buf, sizeof(buf)), "at,id") == 0,
              "unique on %s, not on id alone", buf);
        CHECK(sql_int(db, "SELECT count(*) FROM pragma_table_info('delivery')"
                          " WHERE name = 'owner'") == 1,
              "and on to version 3: delivery has an owner");
        CHECK(put1(sp, &b, &n_new, &err) == SLH_OK && n_new == 0,
              "an event stored before the upgrade is a duplicate: %zu (%s)",
              n_new, err.text);
        CHECK(sql_int(db, "SELECT count(*) FROM event") == 2,
              "2 events, no more");
        slh_store_close(sp);
        sp = NULL;
        CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK &&
                  sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event") == 2,
              "reopens as version %d: %s", SLH_SQLITE_VERSION, err.text);
        slh_store_close(sp);
    }
    slh_batch_free(&b);
    free(body);
    free(text);
}

/* Makes spool dir/name of an older schema from sql and opens it with
 * slh_store_open() (the upgrade); NULL when either fails. */
static struct slh_store *
open_older(char *dir, const char *name, const char *sql)
{
    char path[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    sqlite3 *raw = NULL;

    path_in(dir, name);
    db_path(path, dir);
    if (!CHECK(mkdir(dir, 0700) == 0, "set-up"))
        return NULL;
    sqlite3_open(path, &raw);
    CHECK(sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK, "%s spool: %s",
          name, sqlite3_errmsg(raw));
    sqlite3_close(raw);
    CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
          "open %s: %s", name, err.text);
    return sp;
}

/* A spool of schema version 2 (no owner), with a row leased by a deliverer
 * of that version, upgraded on open: every row kept as it was, the leased
 * one still leased (owned by no one, it waits out its lease), and the
 * owner column and index added. */
static void
test_upgrade_2(void)
{
    static const char v2_sql[] =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE event(seq INTEGER PRIMARY KEY, id TEXT NOT NULL,"
        " at INTEGER NOT NULL, type TEXT NOT NULL,"
        " tracking INTEGER NOT NULL, received INTEGER NOT NULL,"
        " body TEXT NOT NULL, UNIQUE (at, id));"
        "CREATE TABLE delivery(dest TEXT NOT NULL, seq INTEGER NOT NULL,"
        " state INTEGER NOT NULL, due INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL, last_status INTEGER, last_error TEXT,"
        " done INTEGER, PRIMARY KEY (dest, seq)) WITHOUT ROWID;"
        "CREATE INDEX delivery_due ON delivery(dest, state, due);"
        "INSERT INTO event VALUES (1, 'a', 10, 'Delivered', -1, 5, '{}');"
        "INSERT INTO event VALUES (2, 'b', 11, 'Failed', -1, 6, '{}');"
        "INSERT INTO delivery VALUES ('x', 1, 0, 99000, 1, NULL, NULL, NULL);"
        "INSERT INTO delivery VALUES ('x', 2, 0, 6, 0, NULL, NULL, NULL);"
        "INSERT INTO delivery VALUES ('y', 2, 1, 7, 1, 200, NULL, 7);"
        "PRAGMA user_version = 2;";
    char dir[PATH_MAX], buf[256];
    struct slh_store *sp = open_older(dir, "upgrade2", v2_sql);
    struct slh_error err = {0};
    sqlite3 *db;

    if (sp == NULL)
        return;
    db = slh_sqlite_db(sp);
    CHECK(sql_int(db, "PRAGMA user_version") == SLH_SQLITE_VERSION,
          "upgraded to %d", SLH_SQLITE_VERSION);
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(name, ',') FROM "
                        "pragma_table_info('delivery')",
                        buf, sizeof(buf)),
                 "dest,seq,state,due,attempts,last_status,last_error,done,"
                 "owner") == 0,
          "delivery columns %s", buf);
    CHECK(sql_int(db, "SELECT count(*) FROM pragma_index_list('delivery') "
                      "WHERE name = 'delivery_owner' AND partial = 1") == 1,
          "delivery_owner index made");
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(dest || seq || ':' || state || "
                        "',' || due || ',' || attempts || ',' || "
                        "ifnull(owner, '-'), ' ') FROM (SELECT * FROM "
                        "delivery ORDER BY dest, seq)",
                        buf, sizeof(buf)),
                 "x1:0,99000,1,- x2:0,6,0,- y2:1,7,1,-") == 0,
          "rows kept, the leased one still leased: %s", buf);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 2, "events kept");
    slh_store_close(sp);
    sp = NULL;
    CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK &&
              sql_int(slh_sqlite_db(sp), "PRAGMA user_version") ==
                  SLH_SQLITE_VERSION,
          "reopens as version %d: %s", SLH_SQLITE_VERSION, err.text);
    slh_store_close(sp);
}

/* A spool of schema version 3 (no index on received), upgraded on open:
 * the event_received index made, every row kept, and the newest events
 * then listed through it. */
static void
test_upgrade_3(void)
{
    static const char v3_sql[] =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE event(seq INTEGER PRIMARY KEY, id TEXT NOT NULL,"
        " at INTEGER NOT NULL, type TEXT NOT NULL,"
        " tracking INTEGER NOT NULL, received INTEGER NOT NULL,"
        " body TEXT NOT NULL, UNIQUE (at, id));"
        "CREATE TABLE delivery(dest TEXT NOT NULL, seq INTEGER NOT NULL,"
        " state INTEGER NOT NULL, due INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL, last_status INTEGER, last_error TEXT,"
        " done INTEGER, owner INTEGER,"
        " PRIMARY KEY (dest, seq)) WITHOUT ROWID;"
        "CREATE INDEX delivery_due ON delivery(dest, state, due);"
        "CREATE INDEX delivery_owner ON delivery(owner)"
        " WHERE owner IS NOT NULL;"
        "INSERT INTO event VALUES (1, 'a', 10, 'Delivered', -1, 5, '{}');"
        "INSERT INTO event VALUES (2, 'b', 11, 'Failed', -1, 6, '{}');"
        "INSERT INTO delivery VALUES ('x', 1, 0, 99000, 1, NULL, NULL, NULL,"
        " 7);"
        "INSERT INTO delivery VALUES ('x', 2, 1, 7, 1, 200, NULL, 7, NULL);"
        "PRAGMA user_version = 3;";
    char dir[PATH_MAX], buf[256];
    struct slh_store *sp = open_older(dir, "upgrade3", v3_sql);
    struct slh_error err = {0};
    struct slh_store_event *ev = NULL;
    size_t n = 0;
    sqlite3 *db;

    if (sp == NULL)
        return;
    db = slh_sqlite_db(sp);
    CHECK(sql_int(db, "PRAGMA user_version") == SLH_SQLITE_VERSION,
          "upgraded to %d", SLH_SQLITE_VERSION);
    /* Version 6's step: the breakers' table, every destination closed. */
    CHECK(sql_int(db, "SELECT count(*) FROM throttle") == 0,
          "throttle table made, empty");
    /* Version 7's: the tally of delivered rows, counted once; slhook check
     * (verify) finds one that disagrees, and the mend it names mends it. */
    CHECK(sql_int(db, "SELECT delivered FROM tally WHERE dest = 'x'") == 1 &&
              sql_int(db, "SELECT count(*) FROM tally") == 1,
          "tally counted from the rows");
    {
        struct slh_error verr = {0};
        CHECK(slh_store_verify(sp, &verr) == SLH_OK, "verify: %s", verr.text);
        sqlite3_exec(db, "UPDATE tally SET delivered = 5", NULL, NULL, NULL);
        CHECK(slh_store_verify(sp, &verr) == SLH_ESTORE &&
                  strstr(verr.text, "tally of delivered rows for x") != NULL,
              "a tally off: %s", verr.text);
        sqlite3_exec(db,
                     "UPDATE tally SET delivered = (SELECT COUNT(*) FROM "
                     "delivery WHERE dest = tally.dest AND state = 1)",
                     NULL, NULL, NULL);
        CHECK(slh_store_verify(sp, &verr) == SLH_OK, "mended: %s", verr.text);
    }
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(name, ',') FROM "
                        "pragma_index_info('event_received')",
                        buf, sizeof(buf)),
                 "received") == 0,
          "event_received index on received: %s", buf);
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(dest || seq || ':' || state || "
                        "',' || due || ',' || ifnull(owner, '-'), ' ') FROM "
                        "(SELECT * FROM delivery ORDER BY dest, seq)",
                        buf, sizeof(buf)),
                 "x1:0,99000,7 x2:1,7,-") == 0,
          "rows kept: %s", buf);
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 2, "events kept");
    {
        sqlite3_stmt *q = NULL;
        bool is_indexed = false;
        if (sqlite3_prepare_v2(db,
                               "EXPLAIN QUERY PLAN SELECT seq FROM event"
                               " WHERE received >= 0 AND received < 9"
                               " ORDER BY received DESC",
                               -1, &q, NULL) == SQLITE_OK)
            while (sqlite3_step(q) == SQLITE_ROW)
                is_indexed = is_indexed ||
                             strstr((const char *)sqlite3_column_text(q, 3),
                                    "event_received") != NULL;
        sqlite3_finalize(q);
        CHECK(is_indexed, "a window read through it");
    }
    CHECK(slh_store_events(sp, NULL, &ev, &n, &err) == SLH_OK && n == 2 &&
              ev[0].seq == 2 && ev[0].n_rows == 1 &&
              ev[0].rows[0].state == SLH_DELIVERED && ev[1].n_rows == 1,
          "listed newest first: %zu %s", n, err.text);
    slh_store_events_free(ev, n);
    slh_store_close(sp);
}

/* Whether the plan of sql reads through index. */
static bool
plan_uses(sqlite3 *db, const char *sql, const char *index)
{
    char explain[1024];
    sqlite3_stmt *q = NULL;
    bool is_used = false;

    snprintf(explain, sizeof(explain), "EXPLAIN QUERY PLAN %s", sql);
    if (sqlite3_prepare_v2(db, explain, -1, &q, NULL) == SQLITE_OK)
        while (sqlite3_step(q) == SQLITE_ROW)
            is_used = is_used || strstr((const char *)sqlite3_column_text(q, 3),
                                        index) != NULL;
    sqlite3_finalize(q);
    return is_used;
}

/* A spool of schema version 4 (no index to find an event by), upgraded on
 * open: through version 5's event_message_id to version 8's message
 * table, every row kept, and show's lookups then read through it, or an
 * id prefix through the covering (at, id) index, never the whole table. */
static void
test_upgrade_4(void)
{
    static const char v4_sql[] =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE event(seq INTEGER PRIMARY KEY, id TEXT NOT NULL,"
        " at INTEGER NOT NULL, type TEXT NOT NULL,"
        " tracking INTEGER NOT NULL, received INTEGER NOT NULL,"
        " body TEXT NOT NULL, UNIQUE (at, id));"
        "CREATE TABLE delivery(dest TEXT NOT NULL, seq INTEGER NOT NULL,"
        " state INTEGER NOT NULL, due INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL, last_status INTEGER, last_error TEXT,"
        " done INTEGER, owner INTEGER,"
        " PRIMARY KEY (dest, seq)) WITHOUT ROWID;"
        "CREATE INDEX delivery_due ON delivery(dest, state, due);"
        "CREATE INDEX delivery_owner ON delivery(owner)"
        " WHERE owner IS NOT NULL;"
        "CREATE INDEX event_received ON event(received);"
        "INSERT INTO event VALUES (1, 'aaaaaaaa11', 10, 'Delivered', -1, 5,"
        " '{\"MessageId\":\"m1\"}');"
        "INSERT INTO event VALUES (2, 'aaaaaaaa22', 11, 'Failed', -1, 6,"
        " '{\"MessageId\":\"m2\",\"Address\":\"x@y\"}');"
        "INSERT INTO event VALUES (3, 'bbbbbbbb33', 12, 'Open', 1, 7, '{}');"
        "INSERT INTO delivery VALUES ('x', 2, 1, 7, 1, 200, NULL, 7, NULL);"
        "PRAGMA user_version = 4;";
    char dir[PATH_MAX], buf[256];
    struct slh_store *sp = open_older(dir, "upgrade4", v4_sql);
    struct slh_store_filter f = {.message_id = "m2"};
    struct slh_store_event *ev = NULL, one;
    struct slh_error err = {0};
    size_t n = 0;
    sqlite3 *db;

    if (sp == NULL)
        return;
    db = slh_sqlite_db(sp);
    CHECK(sql_int(db, "PRAGMA user_version") == SLH_SQLITE_VERSION,
          "upgraded to %d", SLH_SQLITE_VERSION);
    CHECK(sql_int(db, "SELECT count(*) FROM throttle") == 0,
          "and through 5 to 6: the throttle table made, empty");
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(name, ',') FROM sqlite_master"
                        " WHERE type = 'index' AND tbl_name = 'event'"
                        " AND sql IS NOT NULL",
                        buf, sizeof(buf)),
                 "event_received") == 0,
          "no index on the event table but by received time: %s", buf);
    CHECK(sql_int(db, "SELECT count(*) FROM message") == 0,
          "and through 7 to 8: the message table made, empty");
    CHECK(sql_int(db, "SELECT count(*) FROM event") == 3 &&
              sql_int(db, "SELECT count(*) FROM delivery") == 1,
          "rows kept");
    CHECK(plan_uses(db,
                    "SELECT seq FROM event WHERE substr(id, 1, 8) = ?2"
                    " AND substr(id, 1, length(?1)) = ?1 LIMIT 2",
                    "COVERING INDEX sqlite_autoindex_event_1"),
          "an id prefix read from the covering (at, id) index, not bodies");
    CHECK(plan_uses(db,
                    "SELECT seq FROM event"
                    " WHERE seq IN (SELECT seq FROM message"
                    " WHERE message_id = ?4 UNION ALL SELECT seq FROM event"
                    " WHERE seq > (SELECT coalesce(max(seq), 0) FROM message)"
                    " AND json_extract(body, '$.MessageId') = ?4)"
                    " AND +received >= ?1 AND +received < ?2"
                    " AND (?3 IS NULL OR type = ?3 COLLATE NOCASE)"
                    " ORDER BY received DESC, seq DESC",
                    "USING COVERING INDEX message_id"),
          "a MessageId found through the message table's index");
    CHECK(plan_uses(db,
                    "SELECT seq FROM event WHERE received >= ?1"
                    " AND received < ?2 AND (received, seq) > (?3, ?4)"
                    " ORDER BY received, seq LIMIT ?5",
                    "event_received"),
          "replay's chunks read through event_received");
    CHECK(plan_uses(db,
                    "SELECT d.seq, e.received FROM delivery d JOIN event e"
                    " ON e.seq = d.seq WHERE d.dest = ?1 AND d.state = ?2"
                    " AND +e.received >= ?3 AND +e.received < ?4"
                    " AND (?5 IS NULL OR e.type = ?5 COLLATE NOCASE) LIMIT ?6",
                    "delivery_due"),
          "a rare state's rows found through delivery_due");
    CHECK(slh_store_events(sp, &f, &ev, &n, &err) == SLH_OK && n == 1 &&
              ev[0].seq == 2 && ev[0].n_rows == 1,
          "by MessageId, none indexed yet: %zu %s", n, err.text);
    slh_store_events_free(ev, n);
    CHECK(slh_store_index(sp, 2, &n, &err) == SLH_OK && n == 2 &&
              slh_store_index(sp, 2, &n, &err) == SLH_OK && n == 1,
          "indexed in two batches: %s", err.text);
    CHECK(strcmp(q_text(db,
                        "SELECT group_concat(seq || '=' ||"
                        " coalesce(message_id, '-'), ',') FROM"
                        " (SELECT * FROM message ORDER BY seq)",
                        buf, sizeof(buf)),
                 "1=m1,2=m2,3=-") == 0,
          "every event's MessageId in message, in seq order: %s", buf);
    CHECK(slh_store_events(sp, &f, &ev, &n, &err) == SLH_OK && n == 1 &&
              ev[0].seq == 2,
          "by MessageId, all indexed: %zu %s", n, err.text);
    slh_store_events_free(ev, n);
    CHECK(slh_store_event(sp, "aaaaaaaa", &one, &err) == SLH_EINVAL &&
              strstr(err.text, "ambiguous") != NULL,
          "a prefix two ids share: %s", err.text);
    slh_error_clear(&err);
    CHECK(slh_store_event(sp, "bbbbbbbb", &one, &err) == SLH_OK && one.seq == 3,
          "a prefix one id has: %s", err.text);
    slh_store_event_free(&one);
    slh_store_close(sp);
}

static void
test_disk_full(void)
{
    char mnt[PATH_MAX], dir[PATH_MAX], filler[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch fail = {0};
    size_t n_new = 0;
    int stored, fd;
    int64_t events, rows;
    char *chunk;

    if (!mount_tmpfs(mnt, "full", "2m", 0))
        return;
    pathf(dir, "%s/spool", mnt);
    pathf(filler, "%s/filler", mnt);
    /* Room to give back later, written before the spool takes the rest. */
    chunk = calloc(1, 512 * 1024);
    fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, chunk, 512 * 1024) == 512 * 1024,
          "filler written");
    if (fd >= 0)
        close(fd);
    free(chunk);
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open on tmpfs: %s", err.text))
        goto out;

    stored = fill_up(sp, "full", &fail, &err);
    CHECK(stored > 0, "some batches fit before the disk filled: %d", stored);
    CHECK(err.code == SLH_ESTORE, "disk full is SLH_ESTORE: %d", err.code);
    CHECK(contains(err.text, "full") || contains(err.text, "No space"),
          "error says full: %s", err.text);
    CHECK(strncmp(err.text, "spool ", 6) == 0 && contains(err.text, dir),
          "error names the spool: %s", err.text);
    printf("disk full: %d batches stored, then: %s\n", stored, err.text);
    events = sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event");
    rows = sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM delivery");
    CHECK(events == 3 * stored, "the failing batch left no event: %lld of %d",
          (long long)events, 3 * stored);
    CHECK(rows == events, "nor a delivery row: %lld", (long long)rows);
    CHECK(q_other(dir, "SELECT count(*) FROM event") == events,
          "a second connection agrees: %lld",
          (long long)q_other(dir, "SELECT count(*) FROM event"));
    CHECK(put1(sp, &fail, &n_new, &err) == SLH_ESTORE,
          "still full: still SLH_ESTORE");

    /* Room again: the same handle stores the same batch, all of it new. */
    CHECK(unlink(filler) == 0, "filler removed");
    CHECK(put1(sp, &fail, &n_new, &err) == SLH_OK && n_new == 3,
          "after freeing space: %s, n_new %zu", err.text, n_new);
    CHECK(q_other(dir, "SELECT count(*) FROM event") == events + 3,
          "stored and visible to others");
    slh_batch_free(&fail);

    /* Full once more; this time the file system grows. */
    stored = fill_up(sp, "again", &fail, &err);
    CHECK(stored >= 0 && err.code == SLH_ESTORE, "full again: %s", err.text);
    events = q_other(dir, "SELECT count(*) FROM event");
    CHECK(remount(mnt, 0, "size=16m"), "remount size=16m: %s", strerror(errno));
    CHECK(put1(sp, &fail, &n_new, &err) == SLH_OK && n_new == 3,
          "after growing the fs: %s", err.text);
    CHECK(q_other(dir, "SELECT count(*) FROM event") == events + 3 &&
              q_other(dir, "SELECT count(*) FROM delivery") == events + 3,
          "stored, one row each");
    slh_batch_free(&fail);
out:
    slh_store_close(sp);
    CHECK(unmount(mnt), "umount %s: %s", mnt, strerror(errno));
}

static void
test_read_only_open(void)
{
    char mnt[PATH_MAX], dir[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b = {0};
    size_t n_new = 0;

    if (!mount_tmpfs(mnt, "ro", "4m", MS_RDONLY))
        return;
    pathf(dir, "%s/spool", mnt);
    CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_ESTORE &&
              sp == NULL && contains(err.text, dir) &&
              contains(err.text, "Read-only file system"),
          "no spool dir on a ro fs: %s", err.text);

    CHECK(remount(mnt, 0, NULL), "remount rw: %s", strerror(errno));
    CHECK(mkdir(dir, 0700) == 0, "mkdir spool");
    CHECK(remount(mnt, MS_RDONLY, NULL), "remount ro: %s", strerror(errno));
    slh_error_clear(&err);
    CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_ESTORE &&
              contains(err.text, "Read-only file system"),
          "empty spool dir on a ro fs: %s", err.text);

    /* An existing spool, closed, then the fs made read-only: SQLite would
     * quietly open it read-only. */
    CHECK(remount(mnt, 0, NULL), "remount rw: %s", strerror(errno));
    batch_fill(&b, 2, "ro", 0);
    if (CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
              "open: %s", err.text)) {
        CHECK(put1(sp, &b, &n_new, &err) == SLH_OK && n_new == 2, "put: %s",
              err.text);
        /* The kernel refuses a read-only remount while the spool is open
         * for writing (EBUSY), so "read-only under an open spool" cannot
         * come from an operator's remount; test_read_only_ext4() makes the
         * kernel do it. */
        if (remount(mnt, MS_RDONLY, NULL)) {
            CHECK(put1(sp, &b, &n_new, &err) == SLH_ESTORE,
                  "ro remount allowed under an open spool: put must fail");
            CHECK(remount(mnt, 0, NULL), "remount rw");
        } else {
            CHECK(errno == EBUSY, "ro remount under an open spool: %s",
                  strerror(errno));
        }
        slh_store_close(sp);
        sp = NULL;
    }
    CHECK(remount(mnt, MS_RDONLY, NULL), "remount ro after close: %s",
          strerror(errno));
    slh_error_clear(&err);
    CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_ESTORE &&
              sp == NULL && contains(err.text, "not writable") &&
              contains(err.text, "Read-only file system"),
          "existing spool on a ro fs: %s", err.text);
    CHECK(remount(mnt, 0, NULL), "remount rw: %s", strerror(errno));
    slh_error_clear(&err);
    if (CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
              "open once rw again: %s", err.text)) {
        CHECK(sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event") == 2,
              "the events survived");
        CHECK(put1(sp, &b, &n_new, &err) == SLH_OK && n_new == 0,
              "put works again");
    }
    slh_store_close(sp);
    slh_batch_free(&b);
    CHECK(unmount(mnt), "umount %s: %s", mnt, strerror(errno));
}

/* ext4 with errors=remount-ro turns itself read-only on an error even with
 * files open for writing, which is how a spool goes read-only in real life;
 * /sys/fs/ext4/DEV/trigger_fs_error raises such an error on demand. */
static void
test_read_only_ext4(void)
{
    char img[PATH_MAX], mnt[PATH_MAX], dir[PATH_MAX], link[PATH_MAX];
    char sys[PATH_MAX], target[PATH_MAX], probe[PATH_MAX];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b1 = {0}, b2 = {0};
    struct stat st;
    size_t n_new = 0;
    ssize_t len;
    FILE *f;
    int rc;

    path_in(img, "ext4.img");
    path_in(mnt, "ext4");
    pathf(dir, "%s/spool", mnt);
    mkdir(mnt, 0755);
    rc = run("truncate -s 32M '%s' && mkfs.ext4 -q -F '%s' >/dev/null 2>&1",
             img, img);
    if (!CHECK(rc == 0, "mkfs.ext4 %s (needs e2fsprogs)", img))
        return;
    remember_mount(mnt);
    rc = run("mount -o loop,errors=remount-ro '%s' '%s'", img, mnt);
    if (!CHECK(rc == 0, "mount -o loop %s (needs root and loop devices)", img))
        return;
    batch_fill(&b1, 1, "ext4-first", 0);
    batch_fill(&b2, 2, "ext4-second", 0);
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        goto out;
    CHECK(put1(sp, &b1, &n_new, &err) == SLH_OK && n_new == 1, "put: %s",
          err.text);

    /* The loop device behind the mount, from its device number. */
    CHECK(stat(mnt, &st) == 0, "stat %s", mnt);
    snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(st.st_dev),
             minor(st.st_dev));
    len = readlink(link, target, sizeof(target) - 1);
    target[len > 0 ? len : 0] = '\0';
    pathf(sys, "/sys/fs/ext4/%s/trigger_fs_error",
          strrchr(target, '/') != NULL ? strrchr(target, '/') + 1 : "?");
    f = fopen(sys, "w");
    rc = f != NULL && fputs("slhook test", f) >= 0 ? 0 : -1;
    if (f != NULL && fclose(f) != 0)
        rc = -1;
    if (!CHECK(rc == 0, "write %s: %s", sys, strerror(errno)))
        goto out;
    pathf(probe, "%s/probe", mnt);
    CHECK(open(probe, O_WRONLY | O_CREAT, 0600) < 0 && errno == EROFS,
          "the fs went read-only under the open spool");

    slh_error_clear(&err);
    CHECK(put1(sp, &b2, &n_new, &err) == SLH_ESTORE,
          "put on a fs gone read-only: %s", err.text);
    CHECK(contains(err.text, "Read-only") || contains(err.text, "readonly"),
          "error says read-only: %s", err.text);
    printf("read-only under an open spool: %s\n", err.text);
    CHECK(put1(sp, &b2, &n_new, &err) == SLH_ESTORE, "and stays failing");
    /* The connection is still usable for reads. */
    CHECK(sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event") == 1,
          "nothing of the failed put visible: %lld",
          (long long)sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event"));
    slh_store_close(sp);
    sp = NULL;

    /* What an operator does: unmount, mount again, carry on. */
    CHECK(unmount(mnt), "umount ext4: %s", strerror(errno));
    remember_mount(mnt);
    rc = run("mount -o loop,errors=remount-ro '%s' '%s'", img, mnt);
    if (!CHECK(rc == 0, "mount again"))
        goto out;
    slh_error_clear(&err);
    if (CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
              "reopen: %s", err.text)) {
        CHECK(sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event") == 1,
              "the committed event survived, the failed batch is absent");
        CHECK(put1(sp, &b2, &n_new, &err) == SLH_OK && n_new == 2,
              "the failed batch stores now: %s", err.text);
    }
out:
    slh_store_close(sp);
    slh_batch_free(&b1);
    slh_batch_free(&b2);
    CHECK(unmount(mnt), "umount %s: %s", mnt, strerror(errno));
}

static enum slh_err
noop_task(struct slh_store *sp, void *arg, struct slh_error *err)
{
    (void)sp;
    (void)arg;
    (void)err;
    return SLH_OK;
}

/* A put of one task that writes nothing, and no events. */
static enum slh_err
put_noop(struct slh_store *sp, struct slh_error *err)
{
    struct slh_store_task task = {noop_task, NULL};

    slh_error_clear(err);
    return slh_store_put_tasks(sp, &cfg, NULL, 0, &task, 1, slh_now_ms(), NULL,
                               err);
}

static void
test_removed(void)
{
    static const char kept_sql[] = "SELECT count(*) FROM event";
    sqlite3_stmt *kept = NULL;
    char parent[PATH_MAX], dir[PATH_MAX], path[PATH_MAX], wal[PATH_MAX];
    struct slh_store *sp = NULL, *sp2 = NULL;
    struct slh_error err = {0};
    struct slh_batch a = {0}, b = {0}, c = {0};
    size_t n_new = 0;

    path_in(parent, "rm");
    mkdir(parent, 0755);
    pathf(dir, "%s/spool", parent);
    db_path(path, dir);
    pathf(wal, "%s-wal", path);
    batch_fill(&a, 1, "rm-a", 0);
    batch_fill(&b, 1, "rm-b", 0);
    batch_fill(&c, 1, "rm-c", 0);

    /* rm -rf of the whole spool. */
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        goto out;
    CHECK(put1(sp, &a, &n_new, &err) == SLH_OK, "put a");
    CHECK(slh_sqlite_prepare(slh_sqlite(sp), kept_sql, &kept) == SQLITE_OK,
          "a kept statement");
    slh_sqlite_release(kept);
    CHECK(run("rm -rf '%s'", dir) == 0 && !exists(dir), "rm -rf spool");
    CHECK(put1(sp, &b, &n_new, &err) == SLH_ESTORE &&
              contains(err.text, "removed"),
          "put after rm -rf fails: %s", err.text);
    printf("spool removed while open: %s\n", err.text);
    CHECK(!exists(dir), "and creates nothing yet");
    CHECK(put_noop(sp, &err) == SLH_OK,
          "tasks alone go on in the removed files: %s", err.text);
    CHECK(!exists(dir), "and make no new spool");
    CHECK(put1(sp, &b, &n_new, &err) == SLH_OK && n_new == 1,
          "next put reopens: %s", err.text);
    /* The kept statements went with the old connection. */
    if (CHECK(slh_sqlite_prepare(slh_sqlite(sp), kept_sql, &kept) == SQLITE_OK,
              "kept statement after the reopen: %s",
              sqlite3_errmsg(slh_sqlite_db(sp)))) {
        CHECK(sqlite3_db_handle(kept) == slh_sqlite_db(sp) &&
                  sqlite3_step(kept) == SQLITE_ROW &&
                  sqlite3_column_int(kept, 0) == 1,
              "prepared anew on the new connection, and runs");
        slh_sqlite_release(kept);
    }
    CHECK(exists(path) && file_mode(dir) == 0700, "spool made anew");
    CHECK(q_other(dir, "SELECT count(*) FROM event") == 1,
          "the event is in the file at the path, not an unlinked one");

    /* Replaced by another spool (another process's handle). */
    CHECK(run("rm -rf '%s'", dir) == 0, "rm -rf again");
    if (!CHECK(slh_store_open(&sp2, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open sp2: %s", err.text))
        goto out;
    CHECK(put1(sp2, &a, &n_new, &err) == SLH_OK && n_new == 1, "sp2 puts a");
    CHECK(put1(sp, &c, &n_new, &err) == SLH_ESTORE &&
              contains(err.text, "removed or replaced"),
          "put into a replaced spool fails: %s", err.text);
    CHECK(put1(sp, &c, &n_new, &err) == SLH_OK && n_new == 1,
          "then reopens onto the new one: %s", err.text);
    slh_store_close(sp);
    sp = NULL;
    /* Closing the old connection must not checkpoint into, or delete, the
     * new spool's files. */
    CHECK(exists(wal), "new -wal still there after the old handle closed");
    CHECK(put1(sp2, &b, &n_new, &err) == SLH_OK && n_new == 1, "sp2 puts b");
    CHECK(q_other(dir, "SELECT count(*) FROM event") == 3,
          "new spool holds a, c, b: %lld",
          (long long)q_other(dir, "SELECT count(*) FROM event"));
    slh_store_close(sp2);
    sp2 = NULL;
    CHECK(q_other(dir, "SELECT count(*) FROM event") == 3,
          "and keeps them after every handle closed");

    /* Only the -wal and -shm "cleaned up". */
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        goto out;
    slh_batch_free(&a);
    batch_fill(&a, 1, "rm-wal", 0);
    CHECK(run("rm -f '%s'-wal '%s'-shm", path, path) == 0 && !exists(wal),
          "rm -wal -shm");
    CHECK(put1(sp, &a, &n_new, &err) == SLH_ESTORE &&
              contains(err.text, "-wal"),
          "put after the -wal vanished: %s", err.text);
    CHECK(put1(sp, &a, &n_new, &err) == SLH_ESTORE &&
              contains(err.text, "restart"),
          "no reopening onto the same database in-process: %s", err.text);
    CHECK(put_noop(sp, &err) == SLH_ESTORE && contains(err.text, "restart"),
          "nor tasks alone into a -wal that is not the database's: %s",
          err.text);
    CHECK(run("rm -rf '%s'", dir) == 0, "rm -rf spool");
    CHECK(put1(sp, &a, &n_new, &err) == SLH_OK && n_new == 1,
          "a new database file is fine again: %s", err.text);
out:
    slh_store_close(sp);
    slh_store_close(sp2);
    slh_batch_free(&a);
    slh_batch_free(&b);
    slh_batch_free(&c);
}

/* Other processes (CGI requests, `slhook status`) opening and closing the
 * spool under a long-lived handle: the last of them to close must not take
 * the -wal file away from it, or the handle would think it lost. */
static void
test_other_process(void)
{
    char dir[PATH_MAX], prefix[64];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch b = {0};
    size_t n_new = 0;
    int ok = 0;

    path_in(dir, "proc");
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    for (int i = 0; i < 3; i++) {
        int status = -1;
        pid_t pid;

        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            struct slh_store *child = NULL;
            int rc = 1;

            snprintf(prefix, sizeof(prefix), "child-%d", i);
            batch_fill(&b, 1, prefix, 0);
            if (slh_store_open(&child, dir, SLH_STORE_CREATE, &err) == SLH_OK &&
                put1(child, &b, &n_new, &err) == SLH_OK && n_new == 1)
                rc = 0;
            /* The last connection of its process, but not of the file. */
            slh_store_close(child);
            _exit(rc);
        }
        waitpid(pid, &status, 0);
        CHECK(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "a child process stored its event");
        snprintf(prefix, sizeof(prefix), "parent-%d", i);
        batch_fill(&b, 1, prefix, 0);
        if (put1(sp, &b, &n_new, &err) == SLH_OK && n_new == 1)
            ok++;
        else
            CHECK(0, "put after a process closed the spool: %s", err.text);
        slh_batch_free(&b);
    }
    CHECK(ok == 3, "the long-lived handle went on storing");
    CHECK(sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event") == 6,
          "it sees the children's events too");
    slh_store_close(sp);
}

#define CONC_PUTS 40
#define CONC_OPENERS 8
#define CONC_ROUNDS 30

static char conc_dir[PATH_MAX];
static pthread_barrier_t conc_barrier;
static int conc_open_failed;
static struct slh_error conc_open_err;
static pthread_mutex_t conc_mu = PTHREAD_MUTEX_INITIALIZER;

/* Opens conc_dir at the same moment as the other openers. */
static void *
opener_run(void *arg)
{
    struct slh_store *sp = NULL;
    struct slh_error err = {0};

    (void)arg;
    pthread_barrier_wait(&conc_barrier);
    if (slh_store_open(&sp, conc_dir, SLH_STORE_CREATE, &err) != SLH_OK) {
        pthread_mutex_lock(&conc_mu);
        conc_open_failed++;
        conc_open_err = err;
        pthread_mutex_unlock(&conc_mu);
    }
    slh_store_close(sp);
    return NULL;
}

/* A new spool opened by many at once (CGI processes after a deploy): the
 * switch to WAL mode gets SQLITE_BUSY without SQLite's busy wait. */
static void
test_concurrent_open(void)
{
    pthread_t th[CONC_OPENERS];

    pthread_barrier_init(&conc_barrier, NULL, CONC_OPENERS);
    for (int r = 0; r < CONC_ROUNDS; r++) {
        char name[32];
        snprintf(name, sizeof(name), "open-%d", r);
        path_in(conc_dir, name);
        for (int t = 0; t < CONC_OPENERS; t++)
            pthread_create(&th[t], NULL, opener_run, NULL);
        for (int t = 0; t < CONC_OPENERS; t++)
            pthread_join(th[t], NULL);
    }
    pthread_barrier_destroy(&conc_barrier);
    CHECK(conc_open_failed == 0, "%d of %d simultaneous first opens failed: %s",
          conc_open_failed, CONC_OPENERS * CONC_ROUNDS, conc_open_err.text);
}

struct worker {
    const char *dir;
    struct slh_batch batches[CONC_PUTS];
    size_t n_new;
    int n_ok;
    struct slh_error err;
};

static void *
worker_run(void *arg)
{
    struct worker *w = arg;
    struct slh_store *sp = NULL;
    size_t n_new;

    if (slh_store_open(&sp, w->dir, SLH_STORE_CREATE, &w->err) != SLH_OK)
        return NULL;
    for (int i = 0; i < CONC_PUTS; i++) {
        const struct slh_batch *one[] = {&w->batches[i]};
        if (slh_store_put(sp, &cfg, one, 1, slh_now_ms(), &n_new, &w->err) ==
            SLH_OK) {
            w->n_ok++;
            w->n_new += n_new;
        }
    }
    slh_store_close(sp);
    return NULL;
}

static void
test_concurrent(void)
{
    char dir[PATH_MAX], id[64];
    struct worker *w = calloc(2, sizeof(*w));
    pthread_t th[2];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};

    path_in(dir, "conc");
    /* Each put: one event of its own, one both threads send (a duplicate
     * racing itself), one Click. */
    for (int t = 0; t < 2; t++) {
        w[t].dir = dir;
        for (int i = 0; i < CONC_PUTS; i++) {
            struct slh_batch *b = &w[t].batches[i];
            batch_init(b, 3);
            snprintf(id, sizeof(id), "own-%d-%d", t, i);
            make_event(&b->events[0], "Delivered", SLH_TRACKING_NONE, id, 0);
            snprintf(id, sizeof(id), "shared-%d", i);
            make_event(&b->events[1], "Failed", SLH_TRACKING_NONE, id, 0);
            snprintf(id, sizeof(id), "click-%d-%d", t, i);
            make_event(&b->events[2], "Tracking", SLH_TRACKING_CLICK, id, 0);
        }
    }
    for (int t = 0; t < 2; t++)
        pthread_create(&th[t], NULL, worker_run, &w[t]);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    CHECK(w[0].n_ok == CONC_PUTS && w[1].n_ok == CONC_PUTS,
          "every concurrent put succeeded: %d %d (%s / %s)", w[0].n_ok,
          w[1].n_ok, w[0].err.text, w[1].err.text);
    CHECK(w[0].n_new + w[1].n_new == 5 * CONC_PUTS,
          "n_new adds up to %d: %zu + %zu", 5 * CONC_PUTS, w[0].n_new,
          w[1].n_new);
    if (CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
              "open: %s", err.text)) {
        sqlite3 *db = slh_sqlite_db(sp);
        CHECK(sql_int(db, "SELECT count(*) FROM event") == 5 * CONC_PUTS,
              "all events stored once: %lld",
              (long long)sql_int(db, "SELECT count(*) FROM event"));
        CHECK(sql_int(db, "SELECT count(*) FROM delivery WHERE dest='all'") ==
                      5 * CONC_PUTS &&
                  sql_int(db, "SELECT count(*) FROM delivery WHERE "
                              "dest='bad'") == CONC_PUTS &&
                  sql_int(db, "SELECT count(*) FROM delivery WHERE "
                              "dest='clicks'") == 2 * CONC_PUTS,
              "delivery rows per destination");
        CHECK(strcmp(q_text(db, "PRAGMA integrity_check", id, sizeof(id)),
                     "ok") == 0,
              "integrity_check: %s", id);
    }
    slh_store_close(sp);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < CONC_PUTS; i++)
            slh_batch_free(&w[t].batches[i]);
    }
    free(w);
}

/* Not assertions: what a put costs on this machine's disk (fsync). */
static void
report_timing(void)
{
    char dir[PATH_MAX], prefix[64];
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_batch one, many[100];
    const struct slh_batch *ptrs[100];
    size_t n_new;
    double t, t_open, t_one, t_many;
    int ok = 0, n_one = 50, n_many = 10, n_open = 20;

    path_in(dir, "timing");
    /* As a CGI process does it, per request. */
    t = now_s();
    for (int i = 0; i < n_open; i++) {
        snprintf(prefix, sizeof(prefix), "cgi-%d", i);
        batch_fill(&one, 1, prefix, 600);
        if (slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK &&
            put1(sp, &one, &n_new, &err) == SLH_OK && n_new == 1)
            ok++;
        slh_store_close(sp);
        sp = NULL;
        slh_batch_free(&one);
    }
    t_open = (now_s() - t) / n_open;
    if (!CHECK(slh_store_open(&sp, dir, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return;
    t = now_s();
    for (int i = 0; i < n_one; i++) {
        snprintf(prefix, sizeof(prefix), "one-%d", i);
        batch_fill(&one, 1, prefix, 600);
        if (put1(sp, &one, &n_new, &err) == SLH_OK && n_new == 1)
            ok++;
        slh_batch_free(&one);
    }
    t_one = (now_s() - t) / n_one;
    t_many = 0;
    for (int r = 0; r < n_many; r++) {
        for (int i = 0; i < 100; i++) {
            snprintf(prefix, sizeof(prefix), "many-%d-%d", r, i);
            batch_fill(&many[i], 1, prefix, 600);
            ptrs[i] = &many[i];
        }
        t = now_s();
        if (slh_store_put(sp, &cfg, ptrs, 100, slh_now_ms(), &n_new, &err) ==
                SLH_OK &&
            n_new == 100)
            ok++;
        t_many += now_s() - t;
        for (int i = 0; i < 100; i++)
            slh_batch_free(&many[i]);
    }
    t_many /= n_many;
    CHECK(ok == n_open + n_one + n_many, "timed opens and puts succeeded: %s",
          err.text);
    printf("timing (%s): open+put+close (a CGI request) %.2f ms; put of 1 "
           "batch of 1 event %.2f ms; put of 100 batches %.2f ms (%.3f ms per "
           "batch)\n",
           base, t_open * 1e3, t_one * 1e3, t_many * 1e3, t_many * 10);
    slh_store_close(sp);
}

int
main(void)
{
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGABRT, on_signal);
    test_open();
    test_put();
    test_put_tasks();
    test_busy_wait();
    test_writers_lock();
    test_writers_lock_bound();
    test_open_how();
    test_trust();
    test_put_fixture();
    test_legacy_ids();
    test_upgrade();
    test_upgrade_2();
    test_upgrade_3();
    test_upgrade_4();
    test_kept_statements();
    test_deferred_checkpoints();
    test_committer_role();
    test_disk_full();
    test_read_only_open();
    test_read_only_ext4();
    test_removed();
    test_other_process();
    test_concurrent_open();
    test_concurrent();
    report_timing();
    return check_summary();
}

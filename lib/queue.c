#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define OWNER_TRIES 8 /* lock files made before giving up on one */
#define LOCK_SUFFIX ".lock"

static enum slh_err
db_fail(sqlite3 *db, struct slh_error *err, const char *what)
{
    return slh_error_set(err, SLH_ESTORE, "spool: %s: %s", what,
                         sqlite3_errmsg(db));
}

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(db, sql, -1, st, NULL);
}

/* Ends a transaction begun by begin_tx(): COMMIT when rc is SLH_OK, else
 * ROLLBACK. A failed COMMIT is rolled back and reported. A joined one is
 * left to its owner, who commits or rolls back on rc. */
static enum slh_err
end_tx(struct slh_spool *sp, bool own, enum slh_err rc, struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);

    if (!own)
        return rc;
    if (rc == SLH_OK) {
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
            slh_spool_unlock(sp);
            return SLH_OK;
        }
        rc = db_fail(db, err, "commit");
    }
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    slh_spool_unlock(sp);
    return rc;
}

/* Takes the writers' lock (spool.h), then the write transaction; *own is
 * true. Inside a writer's transaction already open on sp (a task of
 * slh_spool_put_tasks()) it joins that one instead: *own is false. */
static enum slh_err
begin_tx(struct slh_spool *sp, const char *what, bool *own,
         struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);

    *own = sqlite3_get_autocommit(db) != 0;
    if (!*own)
        return SLH_OK;
    if (slh_spool_lock(sp, err) != SLH_OK)
        return SLH_ESTORE;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK)
        return SLH_OK;
    slh_spool_unlock(sp);
    return db_fail(db, err, what);
}

/*
 * Makes the NUL-terminated s valid UTF-8, in place, never longer: a
 * sequence cut off by the end of s (an error text truncated to its buffer
 * mid-character) is dropped, and any other byte that begins no valid
 * sequence (overlong forms, surrogates and beyond U+10FFFF included, as
 * Jansson and JSON readers refuse them) becomes '?'. last_error is written
 * through this, and read through it too, for spools written before.
 */
static void
utf8_mend(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p != '\0') {
        unsigned char lo = 0x80, hi = 0xbf;
        size_t n, k;

        if (*p < 0x80) {
            p++;
            continue;
        }
        if (*p >= 0xc2 && *p <= 0xdf)
            n = 2;
        else if (*p >= 0xe0 && *p <= 0xef)
            n = 3;
        else if (*p >= 0xf0 && *p <= 0xf4)
            n = 4;
        else
            n = 0;
        if (*p == 0xe0)
            lo = 0xa0;
        else if (*p == 0xed)
            hi = 0x9f;
        else if (*p == 0xf0)
            lo = 0x90;
        else if (*p == 0xf4)
            hi = 0x8f;
        for (k = 1; k < n; k++) {
            if (p[k] < (k == 1 ? lo : 0x80) || p[k] > (k == 1 ? hi : 0xbf))
                break;
        }
        if (n > 0 && k == n) {
            p += n;
        } else if (n > 0 && p[k] == '\0') {
            *p = '\0'; /* cut off mid-character */
        } else {
            *p++ = '?';
        }
    }
}

enum slh_err
slh_queue_setup(struct slh_spool *sp, struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);

    /* A deliverer reads its queue in order (oldest due first) and each
     * event once: SQLite's default 2 MiB page cache would only fill with
     * pages it will not read again; 256 KiB (a negative size is in KiB). */
    if (sqlite3_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-256",
                     NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, err, "setup");
    return SLH_OK;
}

static enum slh_err
min_due(struct slh_spool *sp, const char *dest, int64_t *due,
        struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    sqlite3_stmt *st = NULL;
    enum slh_err rc = SLH_OK;
    int r;

    *due = INT64_MAX;
    r = slh_spool_prepare(sp,
                          dest != NULL
                              ? "SELECT MIN(due) FROM delivery"
                                " WHERE dest = ?1 AND state = 0"
                              : "SELECT MIN(due) FROM delivery WHERE state = 0",
                          &st);
    if (r != SQLITE_OK) {
        rc = db_fail(db, err, "next due");
        goto out;
    }
    if (dest != NULL)
        sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL)
            *due = sqlite3_column_int64(st, 0);
    } else {
        rc = db_fail(db, err, "next due");
    }
out:
    slh_spool_release(st);
    return rc;
}

/* dir/claims, or with a token dir/claims/<token>.lock, into buf; false
 * when it does not fit. */
static bool
claims_path(char *buf, size_t size, const char *dir, int64_t token)
{
    int n;

    if (token == 0)
        n = snprintf(buf, size, "%s/%s", dir, SLH_QUEUE_CLAIMS);
    else
        n = snprintf(buf, size, "%s/%s/%016" PRIx64 "%s", dir, SLH_QUEUE_CLAIMS,
                     (uint64_t)token, LOCK_SUFFIX);
    return n >= 0 && (size_t)n < size;
}

/* The token a lock file's name holds, 0 when it is no lock file's. */
static int64_t
token_of(const char *name)
{
    uint64_t t = 0;
    size_t i;

    for (i = 0; i < 16; i++) {
        char c = name[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (v < 0)
            return 0;
        t = t << 4 | (uint64_t)v;
    }
    if (strcmp(name + i, LOCK_SUFFIX) != 0 || t > INT64_MAX)
        return 0;
    return (int64_t)t;
}

/* Random, so that tokens never repeat across processes, boots and hosts
 * sharing a spool's history; without getrandom() the pid and the clock
 * make one unique enough, as O_EXCL catches any clash with a file still
 * there. */
static int64_t
new_token(void)
{
    uint64_t t = 0;

    if (getrandom(&t, sizeof(t), 0) != (ssize_t)sizeof(t)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t = ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_sec << 20 ^
            (uint64_t)ts.tv_nsec;
        t *= 0x9e3779b97f4a7c15u;
    }
    t &= (uint64_t)INT64_MAX;
    return t != 0 ? (int64_t)t : 1;
}

/* Whether the file at path is the one open on fd. */
static bool
is_same_file(int fd, const char *path)
{
    struct stat a, b;

    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

enum slh_err
slh_queue_owner_open(struct slh_queue_owner *o, const char *dir,
                     struct slh_error *err)
{
    char path[PATH_MAX];

    o->token = 0;
    o->fd = -1;
    if (!claims_path(path, sizeof(path), dir, INT64_MAX))
        return slh_error_set(err, SLH_EIO, "%s/%s: path too long", dir,
                             SLH_QUEUE_CLAIMS);
    claims_path(path, sizeof(path), dir, 0);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return slh_error_set(err, SLH_EIO, "%s: %s", path, strerror(errno));
    for (int i = 0; i < OWNER_TRIES; i++) {
        int64_t token = new_token();
        int fd;

        claims_path(path, sizeof(path), dir, token);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return slh_error_set(err, SLH_EIO, "%s: %s", path, strerror(errno));
        /* Between the open and the lock, a deliverer looking for the dead
         * may take the lock of the new file and remove it: then the lock
         * we get is on a file no one will look at, and we start over. */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && is_same_file(fd, path)) {
            o->token = token;
            o->fd = fd;
            return SLH_OK;
        }
        if (is_same_file(fd, path))
            (void)unlink(path);
        close(fd);
    }
    claims_path(path, sizeof(path), dir, 0);
    return slh_error_set(err, SLH_EIO, "%s: no lock file of our own", path);
}

void
slh_queue_owner_close(struct slh_queue_owner *o, const char *dir)
{
    char path[PATH_MAX];

    if (o == NULL || o->token == 0)
        return;
    /* Removed while still locked: whoever opens it before then finds it
     * dead only after this, when its rows are given back already. */
    if (claims_path(path, sizeof(path), dir, o->token))
        (void)unlink(path);
    slh_queue_owner_drop(o);
}

void
slh_queue_owner_drop(struct slh_queue_owner *o)
{
    if (o == NULL || o->token == 0)
        return;
    if (o->fd >= 0)
        close(o->fd);
    o->token = 0;
    o->fd = -1;
}

size_t
slh_queue_owners_dead(const char *dir, int64_t self,
                      struct slh_queue_owner *dead, size_t max)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *dp;
    size_t n = 0;

    if (!claims_path(path, sizeof(path), dir, 0))
        return 0;
    dp = opendir(path);
    if (dp == NULL)
        return 0;
    while (n < max && (de = readdir(dp)) != NULL) {
        int64_t token = token_of(de->d_name);
        int fd;

        if (token == 0 || token == self ||
            !claims_path(path, sizeof(path), dir, token))
            continue;
        /* Read-only: flock needs no more, and a lock file another user
         * made (root running `slhook deliver`) is still looked at. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd); /* alive, or another deliverer is burying it */
            continue;
        }
        dead[n].token = token;
        dead[n].fd = fd;
        n++;
    }
    closedir(dp);
    return n;
}

enum slh_err
slh_queue_take_back(struct slh_spool *sp, const struct slh_queue_owner *dead,
                    size_t n, int64_t now_ms, size_t *taken,
                    struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    sqlite3_stmt *upd = NULL;
    enum slh_err rc = SLH_OK;
    size_t count = 0;
    bool own;

    if (taken != NULL)
        *taken = 0;
    if (n == 0)
        return SLH_OK;
    if (begin_tx(sp, "take back", &own, err) != SLH_OK)
        return SLH_ESTORE;
    /* owner = ?1 implies owner IS NOT NULL: the partial index serves. */
    if (prepare(db,
                "UPDATE delivery SET due = ?2,"
                " attempts = MAX(attempts - 1, 0), owner = NULL"
                " WHERE owner = ?1 AND state = 0",
                &upd) != SQLITE_OK) {
        rc = db_fail(db, err, "take back");
        goto out;
    }
    sqlite3_bind_int64(upd, 2, now_ms);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(upd, 1, dead[i].token);
        if (sqlite3_step(upd) != SQLITE_DONE) {
            rc = db_fail(db, err, "take back");
            goto out;
        }
        count += (size_t)sqlite3_changes(db);
        sqlite3_reset(upd);
    }
out:
    sqlite3_finalize(upd);
    rc = end_tx(sp, own, rc, err);
    if (rc == SLH_OK && taken != NULL)
        *taken = count;
    return rc;
}

static enum slh_err
claim_row(sqlite3_stmt *sel, struct slh_claim *c, struct slh_error *err)
{
    const unsigned char *id = sqlite3_column_text(sel, 3);
    const void *body = sqlite3_column_text(sel, 5);
    int len = sqlite3_column_bytes(sel, 5);

    memset(c, 0, sizeof(*c));
    c->seq = sqlite3_column_int64(sel, 0);
    c->attempts = sqlite3_column_int(sel, 1) + 1;
    c->revived = sqlite3_column_int64(sel, 2);
    if (id != NULL)
        snprintf(c->id, sizeof(c->id), "%s", (const char *)id);
    c->received = sqlite3_column_int64(sel, 4);
    c->body = malloc((size_t)len + 1);
    if (c->body == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory claiming");
    if (len > 0)
        memcpy(c->body, body, (size_t)len);
    c->body[len] = '\0';
    c->body_len = (size_t)len;
    return SLH_OK;
}

enum slh_err
slh_queue_claim(struct slh_spool *sp, const char *dest, int64_t owner,
                int64_t now_ms, int64_t lease_ms, size_t max,
                struct slh_claim *claims, size_t *n, int64_t *next_due,
                struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    sqlite3_stmt *sel = NULL, *upd = NULL;
    enum slh_err rc = SLH_OK;
    bool own;
    size_t got = 0;
    int64_t due = INT64_MAX;
    int r = SQLITE_DONE;

    *n = 0;
    if (begin_tx(sp, "claim", &own, err) != SLH_OK)
        return SLH_ESTORE;
    if (slh_spool_prepare(
            sp,
            "SELECT d.seq, d.attempts, d.done, e.id, e.received, e.body"
            " FROM delivery d JOIN event e ON e.seq = d.seq"
            " WHERE d.dest = ?1 AND d.state = 0 AND d.due <= ?2"
            " ORDER BY d.due LIMIT ?3",
            &sel) != SQLITE_OK ||
        slh_spool_prepare(
            sp,
            "UPDATE delivery SET due = ?3, attempts = attempts + 1,"
            " owner = ?4 WHERE dest = ?1 AND seq = ?2",
            &upd) != SQLITE_OK) {
        rc = db_fail(db, err, "claim");
        goto out;
    }
    sqlite3_bind_text(sel, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(sel, 2, now_ms);
    sqlite3_bind_int64(sel, 3, max > INT_MAX ? INT_MAX : (sqlite3_int64)max);
    while (got < max && (r = sqlite3_step(sel)) == SQLITE_ROW) {
        rc = claim_row(sel, &claims[got], err);
        if (rc != SLH_OK)
            goto out;
        got++;
    }
    if (got < max && r != SQLITE_DONE) {
        rc = db_fail(db, err, "claim");
        goto out;
    }
    sqlite3_bind_text(upd, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(upd, 3, now_ms + lease_ms);
    if (owner != 0)
        sqlite3_bind_int64(upd, 4, owner);
    for (size_t i = 0; i < got; i++) {
        sqlite3_bind_int64(upd, 2, claims[i].seq);
        if (sqlite3_step(upd) != SQLITE_DONE) {
            rc = db_fail(db, err, "claim");
            goto out;
        }
        sqlite3_reset(upd);
    }
    rc = min_due(sp, dest, &due, err);
out:
    slh_spool_release(sel);
    slh_spool_release(upd);
    rc = end_tx(sp, own, rc, err);
    if (rc != SLH_OK) {
        for (size_t i = 0; i < got; i++)
            slh_queue_claim_free(&claims[i]);
        got = 0;
    }
    *n = got;
    if (next_due != NULL)
        *next_due = due;
    return rc;
}

void
slh_queue_claim_free(struct slh_claim *c)
{
    if (c == NULL)
        return;
    free(c->body);
    memset(c, 0, sizeof(*c));
}

enum slh_err
slh_queue_finish(struct slh_spool *sp, const struct slh_outcome *o, size_t n,
                 int64_t now_ms, struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    sqlite3_stmt *upd = NULL;
    enum slh_err rc = SLH_OK;
    bool own;

    if (n == 0)
        return SLH_OK;
    if (begin_tx(sp, "finish", &own, err) != SLH_OK)
        return SLH_ESTORE;
    if (slh_spool_prepare(
            sp,
            "UPDATE delivery SET state = ?3, due = ?4, last_status = ?5,"
            " last_error = ?6, owner = NULL,"
            " done = CASE WHEN ?3 = 0 THEN done ELSE ?7 END"
            " WHERE dest = ?1 AND seq = ?2 AND state = 0"
            " AND ?8 = (SELECT id FROM event WHERE seq = ?2)",
            &upd) != SQLITE_OK) {
        rc = db_fail(db, err, "finish");
        goto out;
    }
    sqlite3_bind_int64(upd, 7, now_ms);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(upd, 1, o[i].dest, -1, SQLITE_STATIC);
        sqlite3_bind_int64(upd, 2, o[i].seq);
        sqlite3_bind_text(upd, 8, o[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_int(upd, 3, o[i].state);
        sqlite3_bind_int64(upd, 4,
                           o[i].state == SLH_PENDING ? o[i].due : now_ms);
        if (o[i].status > 0)
            sqlite3_bind_int(upd, 5, o[i].status);
        else
            sqlite3_bind_null(upd, 5);
        if (o[i].error[0] != '\0') {
            char error[SLH_QUEUE_ERROR_LEN];
            snprintf(error, sizeof(error), "%s", o[i].error);
            utf8_mend(error);
            sqlite3_bind_text(upd, 6, error, -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_null(upd, 6);
        }
        if (sqlite3_step(upd) != SQLITE_DONE) {
            rc = db_fail(db, err, "finish");
            goto out;
        }
        sqlite3_reset(upd);
    }
out:
    slh_spool_release(upd);
    return end_tx(sp, own, rc, err);
}

enum slh_err
slh_queue_unclaim(struct slh_spool *sp, const char *dest, const int64_t *seqs,
                  size_t n, int64_t now_ms, struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    sqlite3_stmt *upd = NULL;
    enum slh_err rc = SLH_OK;
    bool own;

    if (n == 0)
        return SLH_OK;
    if (begin_tx(sp, "unclaim", &own, err) != SLH_OK)
        return SLH_ESTORE;
    if (slh_spool_prepare(sp,
                          "UPDATE delivery SET due = ?3,"
                          " attempts = MAX(attempts - 1, 0), owner = NULL"
                          " WHERE dest = ?1 AND seq = ?2 AND state = 0",
                          &upd) != SQLITE_OK) {
        rc = db_fail(db, err, "unclaim");
        goto out;
    }
    sqlite3_bind_text(upd, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(upd, 3, now_ms);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(upd, 2, seqs[i]);
        if (sqlite3_step(upd) != SQLITE_DONE) {
            rc = db_fail(db, err, "unclaim");
            goto out;
        }
        sqlite3_reset(upd);
    }
out:
    slh_spool_release(upd);
    return end_tx(sp, own, rc, err);
}

enum slh_err
slh_queue_next_due(struct slh_spool *sp, const char *dest, int64_t *due,
                   struct slh_error *err)
{
    return min_due(sp, dest, due, err);
}

/* Runs a one-row, one-column integer query about dest; NULL reads as 0. */
static enum slh_err
scalar(sqlite3 *db, const char *sql, const char *dest, int64_t *v,
       struct slh_error *err)
{
    sqlite3_stmt *st = NULL;
    enum slh_err rc = SLH_OK;

    *v = 0;
    if (prepare(db, sql, &st) != SQLITE_OK) {
        rc = db_fail(db, err, "status");
        goto out;
    }
    sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        *v = sqlite3_column_int64(st, 0);
    else
        rc = db_fail(db, err, "status");
out:
    sqlite3_finalize(st);
    return rc;
}

static enum slh_err
stats_tx(sqlite3 *db, const char *dest, struct slh_queue_stats *s,
         struct slh_error *err)
{
    sqlite3_stmt *st = NULL;
    enum slh_err rc;
    int r;

    if (prepare(db,
                "SELECT state, COUNT(*) FROM delivery WHERE dest = ?1"
                " GROUP BY state",
                &st) != SQLITE_OK)
        return db_fail(db, err, "status");
    sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t count = sqlite3_column_int64(st, 1);
        switch (sqlite3_column_int(st, 0)) {
        case SLH_PENDING:
            s->pending = count;
            break;
        case SLH_DELIVERED:
            s->delivered = count;
            break;
        case SLH_DEAD:
            s->dead = count;
            break;
        default:
            break;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (r != SQLITE_DONE)
        return db_fail(db, err, "status");
    rc = scalar(db,
                "SELECT COUNT(*) FROM delivery INDEXED BY delivery_due"
                " WHERE dest = ?1 AND state = 0"
                " AND attempts > 0 AND last_error IS NOT NULL",
                dest, &s->retrying, err);
    if (rc == SLH_OK)
        rc = scalar(db,
                    "SELECT MIN(e.received) FROM delivery d"
                    " JOIN event e ON e.seq = d.seq"
                    " WHERE d.dest = ?1 AND d.state = 0",
                    dest, &s->oldest_pending, err);
    if (rc != SLH_OK)
        return rc;
    /* The latest failure still standing: a dead row's done is when it
     * died; a pending row's due is a backoff after its failure. The index
     * keeps the delivered rows, most of them, out of both scans. */
    if (prepare(db,
                "SELECT last_status, last_error FROM delivery"
                " INDEXED BY delivery_due"
                " WHERE dest = ?1 AND state IN (0, 2)"
                " AND last_error IS NOT NULL"
                " ORDER BY CASE state WHEN 2 THEN done ELSE due END DESC"
                " LIMIT 1",
                &st) != SQLITE_OK)
        return db_fail(db, err, "status");
    sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(st, 1);
        s->last_status = sqlite3_column_int(st, 0);
        snprintf(s->last_error, sizeof(s->last_error), "%s",
                 text != NULL ? (const char *)text : "");
        utf8_mend(s->last_error);
    }
    sqlite3_finalize(st);
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        return db_fail(db, err, "status");
    return SLH_OK;
}

enum slh_err
slh_queue_stats(struct slh_spool *sp, const char *dest,
                struct slh_queue_stats *st, struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    enum slh_err rc;

    memset(st, 0, sizeof(*st));
    /* One read transaction, so the numbers agree with each other. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, err, "status");
    rc = stats_tx(db, dest, st, err);
    sqlite3_exec(db, rc == SLH_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (rc != SLH_OK)
        memset(st, 0, sizeof(*st));
    return rc;
}

enum slh_err
slh_queue_retry(struct slh_spool *sp, const char *dest, int64_t now_ms,
                size_t *n, struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    sqlite3_stmt *upd = NULL;
    enum slh_err rc = SLH_OK;
    int r;

    if (n != NULL)
        *n = 0;
    if (prepare(db,
                "UPDATE delivery SET state = 0, due = ?2, attempts = 0,"
                " done = ?2 WHERE dest = ?1 AND state = 2",
                &upd) != SQLITE_OK) {
        rc = db_fail(db, err, "retry");
        goto out;
    }
    sqlite3_bind_text(upd, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(upd, 2, now_ms);
    rc = slh_spool_lock(sp, err);
    if (rc != SLH_OK)
        goto out;
    r = sqlite3_step(upd);
    slh_spool_unlock(sp);
    if (r != SQLITE_DONE) {
        rc = db_fail(db, err, "retry");
        goto out;
    }
    if (n != NULL)
        *n = (size_t)sqlite3_changes(db);
out:
    sqlite3_finalize(upd);
    return rc;
}

#define PURGE_CHUNK 5000

/* Runs the chunked DELETE sql (?1 cutoff, ?2 chunk) until a chunk comes
 * short; *total adds up the rows deleted. */
static enum slh_err
purge_chunks(struct slh_spool *sp, const char *sql, int64_t cutoff_ms,
             size_t *total, struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    sqlite3_stmt *del = NULL;
    enum slh_err rc = SLH_OK;
    int changed;

    if (prepare(db, sql, &del) != SQLITE_OK)
        return db_fail(db, err, "purge");
    sqlite3_bind_int64(del, 1, cutoff_ms);
    sqlite3_bind_int(del, 2, PURGE_CHUNK);
    do {
        int r;
        rc = slh_spool_lock(sp, err);
        if (rc != SLH_OK)
            break;
        r = sqlite3_step(del);
        slh_spool_unlock(sp);
        if (r != SQLITE_DONE) {
            rc = db_fail(db, err, "purge");
            break;
        }
        changed = sqlite3_changes(db);
        *total += (size_t)changed;
        sqlite3_reset(del);
    } while (changed == PURGE_CHUNK);
    sqlite3_finalize(del);
    return rc;
}

enum slh_err
slh_queue_purge(struct slh_spool *sp, int64_t cutoff_ms, size_t *n,
                struct slh_error *err)
{
    size_t deliveries = 0, events = 0;
    enum slh_err rc;

    if (n != NULL)
        *n = 0;
    rc = purge_chunks(sp,
                      "DELETE FROM delivery WHERE (dest, seq) IN"
                      " (SELECT dest, seq FROM delivery"
                      "  WHERE state = 1 AND done < ?1 LIMIT ?2)",
                      cutoff_ms, &deliveries, err);
    /* NOT IN builds its list of seqs once, an index for the whole scan. */
    if (rc == SLH_OK)
        rc = purge_chunks(sp,
                          "DELETE FROM event WHERE seq IN"
                          " (SELECT seq FROM event WHERE received < ?1"
                          "  AND seq NOT IN (SELECT seq FROM delivery)"
                          "  LIMIT ?2)",
                          cutoff_ms, &events, err);
    if (n != NULL)
        *n = events;
    return rc;
}

int64_t
slh_queue_data_version(struct slh_spool *sp)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;

    if (slh_spool_prepare(sp, "PRAGMA data_version", &st) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    slh_spool_release(st);
    return v;
}

int64_t
slh_queue_backoff(int attempts, uint32_t rnd)
{
    int64_t wait = SLH_BACKOFF_FIRST_MS;

    for (int i = 1; i < attempts && wait < SLH_BACKOFF_CAP_MS; i++)
        wait *= 2;
    if (wait > SLH_BACKOFF_CAP_MS)
        wait = SLH_BACKOFF_CAP_MS;
    return wait + (int64_t)(rnd % (uint32_t)(wait / 4 + 1));
}

void
slh_queue_decide(struct slh_outcome *o, const struct slh_claim *c,
                 int64_t max_age, int status, int64_t retry_after_ms,
                 int64_t now_ms, uint32_t rnd)
{
    int64_t start = c->revived > c->received ? c->revived : c->received;
    int64_t horizon = INT64_MAX;
    int64_t wait;

    if (max_age < (INT64_MAX - start) / 1000)
        horizon = start + max_age * 1000;

    o->seq = c->seq;
    memcpy(o->id, c->id, sizeof(o->id));
    o->status = status;
    o->due = now_ms;
    if (status >= 200 && status <= 299) {
        o->state = SLH_DELIVERED;
        return;
    }
    if (status == 410 || now_ms >= horizon) {
        o->state = SLH_DEAD;
        return;
    }
    o->state = SLH_PENDING;
    wait = slh_queue_backoff(c->attempts, rnd);
    if (retry_after_ms > wait)
        wait = retry_after_ms;
    o->due = wait < horizon - now_ms ? now_ms + wait : horizon;
}

void
slh_queue_dests_free(char **names, size_t n)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

enum slh_err
slh_queue_dests(struct slh_spool *sp, char ***names, size_t *n,
                struct slh_error *err)
{
    sqlite3 *db = slh_spool_db(sp);
    sqlite3_stmt *st = NULL;
    enum slh_err rc = SLH_OK;
    char **list = NULL;
    size_t count = 0;
    int r;

    *names = NULL;
    *n = 0;
    /* One index seek per destination, not a scan of every row that a
     * SELECT DISTINCT would make: there may be millions, and a few names. */
    if (prepare(db,
                "WITH RECURSIVE d(name) AS ("
                " SELECT min(dest) FROM delivery"
                " UNION ALL"
                " SELECT (SELECT min(dest) FROM delivery WHERE dest > d.name)"
                " FROM d WHERE d.name IS NOT NULL)"
                " SELECT name FROM d WHERE name IS NOT NULL",
                &st) != SQLITE_OK)
        return db_fail(db, err, "destinations");
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        char **grown = realloc(list, (count + 1) * sizeof(*list));
        if (grown == NULL || name == NULL ||
            (grown[count] = strdup(name)) == NULL) {
            if (grown != NULL)
                list = grown;
            rc = slh_error_set(err, SLH_ENOMEM, "destinations: out of memory");
            goto out;
        }
        list = grown;
        count++;
    }
    if (r != SQLITE_DONE)
        rc = db_fail(db, err, "destinations");
out:
    sqlite3_finalize(st);
    if (rc != SLH_OK) {
        slh_queue_dests_free(list, count);
        return rc;
    }
    *names = list;
    *n = count;
    return SLH_OK;
}

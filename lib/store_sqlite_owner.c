/* store_sqlite_owner.c: the deliverers' lock files, and taking back what
 * dead ones held. */
#include "store_sqlite.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OWNER_TRIES 8 /* lock files made before giving up on one */
#define LOCK_SUFFIX ".lock"

/* dir/claims, or with a token dir/claims/<token>.lock, into buf; false
 * when it does not fit. */
static bool
claims_path(char *buf, size_t size, const char *dir, int64_t token)
{
    int n;

    if (token == 0)
        n = snprintf(buf, size, "%s/%s", dir, SLH_SQLITE_CLAIMS);
    else
        n = snprintf(buf, size, "%s/%s/%016" PRIx64 "%s", dir,
                     SLH_SQLITE_CLAIMS, (uint64_t)token, LOCK_SUFFIX);
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

enum slh_err
slh_sqlite_owner_open(struct slh_sqlite_owner *o, const char *dir,
                      struct slh_error *err)
{
    char path[PATH_MAX];

    o->token = 0;
    o->fd = -1;
    if (!claims_path(path, sizeof(path), dir, INT64_MAX))
        return slh_error_set(err, SLH_EIO, "%s/%s: path too long", dir,
                             SLH_SQLITE_CLAIMS);
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
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            slh_sqlite_is_fd_file(fd, path)) {
            o->token = token;
            o->fd = fd;
            return SLH_OK;
        }
        if (slh_sqlite_is_fd_file(fd, path))
            (void)unlink(path);
        close(fd);
    }
    claims_path(path, sizeof(path), dir, 0);
    return slh_error_set(err, SLH_EIO, "%s: no lock file of our own", path);
}

void
slh_sqlite_owner_close(struct slh_sqlite_owner *o, const char *dir)
{
    char path[PATH_MAX];

    if (o == NULL || o->token == 0)
        return;
    /* Removed while still locked: whoever opens it before then finds it
     * dead only after this, when its rows are given back already. */
    if (claims_path(path, sizeof(path), dir, o->token))
        (void)unlink(path);
    slh_sqlite_owner_drop(o);
}

void
slh_sqlite_owner_drop(struct slh_sqlite_owner *o)
{
    if (o == NULL || o->token == 0)
        return;
    if (o->fd >= 0)
        close(o->fd);
    o->token = 0;
    o->fd = -1;
}

size_t
slh_sqlite_owners_dead(const char *dir, int64_t self,
                       struct slh_sqlite_owner *dead, size_t max)
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

/* A store.h owner: a lock file of the spool directory dir. */
struct owner {
    struct slh_store_owner base;
    struct slh_sqlite_owner lock;
    char *dir;
};

static void
owner_close(struct slh_store_owner *o)
{
    struct owner *ow = (struct owner *)o;

    slh_sqlite_owner_close(&ow->lock, ow->dir);
    free(ow->dir);
    free(ow);
}

enum slh_err
slh_sqlite_store_owner_open(struct slh_store *st, struct slh_store_owner **out,
                            struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    struct owner *ow = calloc(1, sizeof(*ow));
    enum slh_err e;

    if (ow == NULL || (ow->dir = strdup(sq->dir)) == NULL) {
        free(ow);
        return slh_error_set(err, SLH_EIO, "%s: out of memory", sq->dir);
    }
    e = slh_sqlite_owner_open(&ow->lock, sq->dir, err);
    if (e != SLH_OK) {
        free(ow->dir);
        free(ow);
        return e;
    }
    ow->base.close = owner_close;
    ow->base.token = ow->lock.token;
    *out = &ow->base;
    return SLH_OK;
}

void
slh_sqlite_settle_dead(struct slh_sqlite *sq, bool is_committed)
{
    for (size_t i = 0; i < sq->n_dead; i++) {
        /* Removed while still locked: whoever opens it before then finds
         * it dead only after this, when its rows are given back already. */
        if (is_committed)
            slh_sqlite_owner_close(&sq->dead[i], sq->dir);
        else
            slh_sqlite_owner_drop(&sq->dead[i]);
    }
    sq->n_dead = 0;
}

static const char take_back_sql[] =
    "UPDATE delivery SET due = ?2, attempts = MAX(attempts - 1, 0),"
    " owner = NULL WHERE owner = ?1 AND state = 0";

/* The rows of sq->dead[0..n) given back; *taken adds them up. */
static enum slh_err
give_back(struct slh_sqlite *sq, int64_t now_ms, size_t *taken,
          struct slh_error *err)
{
    sqlite3_stmt *upd = NULL;

    /* owner = ?1 implies owner IS NOT NULL: the partial index serves. */
    if (slh_sqlite_prepare(sq, take_back_sql, &upd) != SQLITE_OK)
        return slh_sqlite_fail(sq, "take back", err);
    for (size_t i = 0; i < sq->n_dead; i++) {
        sqlite3_bind_int64(upd, 1, sq->dead[i].token);
        sqlite3_bind_int64(upd, 2, now_ms);
        if (slh_sqlite_run(upd) != SQLITE_DONE)
            return slh_sqlite_fail(sq, "take back", err);
        *taken += (size_t)sqlite3_changes(sq->db);
    }
    return SLH_OK;
}

enum slh_err
slh_sqlite_take_back(struct slh_store *st, int64_t self, int64_t now_ms,
                     size_t *taken, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    size_t count = 0, found;
    enum slh_err rc;
    bool own;

    /* A task run again after a rollback: the owners it found then were
     * let go already, to be found again here. */
    slh_sqlite_settle_dead(sq, false);
    found =
        slh_sqlite_owners_dead(sq->dir, self, sq->dead, SLH_SQLITE_DEAD_MAX);
    if (found == 0)
        return SLH_OK;
    sq->n_dead = found;
    rc = slh_sqlite_begin(sq, "take back", &own, err);
    if (rc != SLH_OK) {
        slh_sqlite_settle_dead(sq, false);
        return rc;
    }
    rc = give_back(sq, now_ms, &count, err);
    rc = slh_sqlite_end(sq, own, rc, err);
    if (rc == SLH_OK && taken != NULL)
        *taken = count;
    return rc;
}

/* A lock file whose lock is held is a live owner's. Tried shared, so that
 * two processes counting at once do not count each other's try; a
 * deliverer burying a dead owner holds its lock a moment too, and is
 * counted then. */
enum slh_err
slh_sqlite_owners_alive(struct slh_store *st, int64_t self, size_t *n,
                        struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    char path[PATH_MAX];
    struct dirent *de;
    DIR *dp;

    (void)err;
    *n = 0;
    if (!claims_path(path, sizeof(path), sq->dir, 0))
        return SLH_OK;
    dp = opendir(path);
    if (dp == NULL)
        return SLH_OK; /* no owner was ever made */
    while ((de = readdir(dp)) != NULL) {
        int64_t token = token_of(de->d_name);
        int fd;

        if (token == 0 || token == self ||
            !claims_path(path, sizeof(path), sq->dir, token))
            continue;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue; /* removed meanwhile: a dead one's, buried */
        if (flock(fd, LOCK_SH | LOCK_NB) != 0)
            (*n)++;
        close(fd);
    }
    closedir(dp);
    return SLH_OK;
}

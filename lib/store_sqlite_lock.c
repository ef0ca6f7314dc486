/* store_sqlite_lock.c: waiting for the other writers, and checkpoints
 * off the commit path. */
#include "store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Linux's name for the thread a timer signals; glibc headers before 2.37
 * spell out only the union member. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/*
 * Waits for another connection's write lock. SQLite's own busy timeout
 * sleeps 1, 2, 5, ... up to 100 ms between tries, mostly after the lock
 * was free again (BENCHMARKS.md). Short steps wake soon after the lock is
 * let go; the bound stays SLH_SQLITE_BUSY_MS.
 */
int
slh_sqlite_busy_wait(void *arg, int count)
{
    struct slh_sqlite *sq = arg;
    struct timespec now, step = {0, 0};
    int64_t waited_ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (count == 0)
        sq->busy_since = now;
    waited_ms = (int64_t)(now.tv_sec - sq->busy_since.tv_sec) * 1000 +
                (now.tv_nsec - sq->busy_since.tv_nsec) / 1000000;
    if (waited_ms >= SLH_SQLITE_BUSY_MS)
        return 0;
    step.tv_nsec = count < 20 ? 50000 : count < 200 ? 200000 : 1000000;
    nanosleep(&step, NULL);
    return 1;
}

/* The writers' lock file. Without one (a read-only directory, where no
 * write will succeed anyway) writers fall back on SQLite's busy handler. */
void
slh_sqlite_open_lock(struct slh_sqlite *sq)
{
    char path[4096];

    sq->lock_fd = -1;
    if (snprintf(path, sizeof(path), "%s/%s", sq->dir, SLH_SQLITE_LOCK) >=
        (int)sizeof(path))
        return;
    sq->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sq->lock_fd < 0)
        sq->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
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
    is_lock_alarm_set = sigaction(SLH_SQLITE_LOCK_SIGNAL, &sa, NULL) == 0;
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
 * A blocking flock() given up after SLH_SQLITE_BUSY_MS (errno ETIMEDOUT). Not
 * a poll with sleeps: that is what flock() replaced (store_sqlite.h). The
 * waiter sleeps in the kernel, which wakes it as the lock is let go, and a
 * timer signalling this thread alone interrupts the wait at the bound; the
 * timer repeats, in case its first signal came before the thread was in
 * flock(). An uncontended lock costs the one LOCK_NB call.
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
    deadline.tv_sec += SLH_SQLITE_BUSY_MS / 1000;
    deadline.tv_nsec += (long)(SLH_SQLITE_BUSY_MS % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    sigemptyset(&one);
    sigaddset(&one, SLH_SQLITE_LOCK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &one, &old);
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SLH_SQLITE_LOCK_SIGNAL;
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
        saved = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = saved;
        return -1;
    }
    its.it_value = deadline;
    its.it_interval.tv_sec = 0;
    its.it_interval.tv_nsec = 50L * 1000000;
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
    while (sigtimedwait(&one, NULL, &zero) == SLH_SQLITE_LOCK_SIGNAL)
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return rc;
}

enum slh_err
slh_sqlite_lock(struct slh_store *st, struct slh_error *err)
{
    struct slh_sqlite *sq = st != NULL ? slh_sqlite(st) : NULL;

    if (sq == NULL || sq->lock_fd < 0)
        return SLH_OK;
    if (sq->lock_depth > 0) {
        sq->lock_depth++;
        return SLH_OK;
    }
    if (flock_bounded(sq->lock_fd) != 0) {
        if (errno == ETIMEDOUT)
            return slh_error_set(err, SLH_ESTORE,
                                 "spool %s/%s: held by another writer for "
                                 "%d ms; gave up waiting",
                                 sq->dir, SLH_SQLITE_LOCK, SLH_SQLITE_BUSY_MS);
        return slh_error_set(err, SLH_ESTORE, "spool %s/%s: flock: %s", sq->dir,
                             SLH_SQLITE_LOCK, strerror(errno));
    }
    sq->lock_depth = 1;
    return SLH_OK;
}

void
slh_sqlite_unlock(struct slh_store *st)
{
    struct slh_sqlite *sq = st != NULL ? slh_sqlite(st) : NULL;

    if (sq != NULL && sq->lock_fd >= 0 && sq->lock_depth > 0 &&
        --sq->lock_depth == 0)
        (void)flock(sq->lock_fd, LOCK_UN);
}

/* SQLite's hook after each commit, with the WAL's size in pages, in place
 * of its automatic checkpoint (the hook replaces it): past half the limit
 * the checkpointer is asked to copy the WAL ahead; at the limit this
 * connection checkpoints as SQLite would have, which then finds little left
 * to copy, and lets the WAL start over. */
static int
wal_committed(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct slh_sqlite *sq = arg;

    if (pages >= SLH_SQLITE_CHECKPOINT_PAGES)
        sqlite3_wal_checkpoint(db, name);
    else if (pages >= SLH_SQLITE_CHECKPOINT_PAGES / 2)
        sq->checkpoint_due(sq->checkpoint_ctx);
    return SQLITE_OK;
}

void
slh_sqlite_defer_checkpoints(struct slh_store *st, void (*due)(void *ctx),
                             void *ctx)
{
    struct slh_sqlite *sq = slh_sqlite(st);

    sq->checkpoint_due = due;
    sq->checkpoint_ctx = ctx;
    sqlite3_wal_hook(sq->db, wal_committed, sq);
}

enum slh_err
slh_sqlite_checkpoint(struct slh_store *st, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);

    if (sqlite3_wal_checkpoint_v2(sq->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL) != SQLITE_OK)
        return slh_sqlite_fail(sq, NULL, err);
    return SLH_OK;
}

void
slh_sqlite_hook_checkpoints(struct slh_sqlite *sq)
{
    if (sq->checkpoint_due != NULL)
        sqlite3_wal_hook(sq->db, wal_committed, sq);
}

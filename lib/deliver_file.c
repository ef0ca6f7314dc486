/* deliver_file.c: the file destination (deliver_int.h): each event a line,
 * appended under the file's lock and synced before it counts as delivered. */
#include "deliver_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <unistd.h>

/* flock(LOCK_EX), again when a signal interrupts it. */
static int
flock_ex(int fd)
{
    int rc;

    while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    return rc;
}

/*
 * Drops a torn last line: a writer killed inside its write() leaves part of a
 * line (the kernel may stop a write between pages for SIGKILL), which the
 * line appended next would run into, and its event was never counted as
 * delivered, so it comes again whole. Only under the file's lock, which
 * every writer holds while it writes whole lines: a tail without its newline
 * is then always a dead writer's. False when the file cannot be read or cut.
 */
static bool
mend_torn_tail(int fd)
{
    char buf[4096];
    off_t end = lseek(fd, 0, SEEK_END), pos = end;

    while (pos > 0) {
        size_t want = pos < (off_t)sizeof(buf) ? (size_t)pos : sizeof(buf);
        ssize_t got = pread(fd, buf, want, pos - (off_t)want);
        if (got != (ssize_t)want)
            return false;
        for (size_t i = want; i > 0; i--) {
            if (buf[i - 1] == '\n') {
                off_t cut = pos - (off_t)want + (off_t)i;
                return cut == end || ftruncate(fd, cut) == 0;
            }
        }
        pos -= (off_t)want;
    }
    return end <= 0 ? end == 0 : ftruncate(fd, 0) == 0;
}

/* Each body as one line with one writev() on an O_APPEND descriptor under
 * the file's lock (flock), after mending a torn last line, and an fsync
 * before any of them counts as delivered. */
void
dl_file_append(struct slh_deliverer *d, struct dest_state *ds,
               struct slh_claim *c, size_t n, int64_t now)
{
    const char *path = ds->dest->file;
    char error[SLH_STORE_ERROR_LEN] = "";
    size_t written = 0;
    int fd;

    fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(error, sizeof(error), "open %s: %s", path, strerror(errno));
    } else if (flock_ex(fd) != 0 || !mend_torn_tail(fd)) {
        snprintf(error, sizeof(error), "mend %s: %s", path, strerror(errno));
        close(fd);
    } else {
        for (; written < n; written++) {
            struct iovec iov[2] = {
                {.iov_base = c[written].body, .iov_len = c[written].body_len},
                {.iov_base = (void *)(uintptr_t) "\n", .iov_len = 1},
            };
            ssize_t w = writev(fd, iov, 2);
            if (w != (ssize_t)(c[written].body_len + 1)) {
                snprintf(error, sizeof(error), "write %s: %s", path,
                         w < 0 ? strerror(errno) : "short write");
                break;
            }
        }
        if (written > 0 && fsync(fd) != 0) {
            snprintf(error, sizeof(error), "fsync %s: %s", path,
                     strerror(errno));
            written = 0;
        }
        close(fd);
    }
    for (size_t i = 0; i < n; i++)
        dl_record(d, ds, &c[i], 0, false, 0, i < written ? NULL : error, now,
                  (long)(slh_now_ms() - now));
}

/* Where the front ends' log lines go: see log.h. */
#define _GNU_SOURCE /* fopencookie() */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

#define SYSLOG_LINE_MAX 2048 /* longer lines go out in pieces */

struct syslog_cookie {
    size_t n;
    char line[SYSLOG_LINE_MAX];
};

static FILE *syslog_stream; /* stderr while it leads to syslog, else NULL */
static FILE *plain_stderr;  /* the stream stderr was before */
static int saved_fd2 = -1;  /* fd 2 as it was before a file took its place */

/* Operators filter and alert on priorities: a request answered 5xx is an
 * error however the line reads; the program's other lines are few. */
static int
line_priority(const char *line)
{
    static const char prefix[] = "slhook: ";
    const char *s = line + sizeof(prefix) - 1;

    if (strncmp(line, prefix, sizeof(prefix) - 1) != 0 || !isdigit(s[0]) ||
        !isdigit(s[1]) || !isdigit(s[2]) || s[3] != ' ')
        return LOG_NOTICE;
    if (s[0] == '5')
        return LOG_ERR;
    if (s[0] == '4')
        return LOG_WARNING;
    return LOG_INFO;
}

static void
emit(struct syslog_cookie *c)
{
    if (c->n == 0)
        return;
    c->line[c->n] = '\0';
    syslog(line_priority(c->line), "%s", c->line);
    c->n = 0;
}

/* stdio holds the stream's lock around this, so lines of several threads
 * come one at a time. */
static ssize_t
syslog_write(void *cookie, const char *buf, size_t size)
{
    struct syslog_cookie *c = cookie;

    for (size_t i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            emit(c);
            continue;
        }
        if (c->n == sizeof(c->line) - 1)
            emit(c);
        c->line[c->n++] = buf[i];
    }
    return (ssize_t)size;
}

static int
syslog_close(void *cookie)
{
    emit(cookie);
    free(cookie);
    return 0;
}

/* stderr back to the stream it was, what is left of a line sent. */
static void
leave_syslog(void)
{
    FILE *f = syslog_stream;

    if (f == NULL)
        return;
    stderr = plain_stderr;
    syslog_stream = NULL;
    fclose(f);
    closelog();
}

static enum slh_err
to_syslog(const char *ident, struct slh_error *err)
{
    static const cookie_io_functions_t io = {.write = syslog_write,
                                             .close = syslog_close};
    struct syslog_cookie *c;
    FILE *f;

    openlog(ident, LOG_PID, LOG_DAEMON);
    if (syslog_stream != NULL)
        return SLH_OK;
    c = calloc(1, sizeof(*c));
    f = c != NULL ? fopencookie(c, "w", io) : NULL;
    if (f == NULL) {
        free(c);
        return slh_error_set(err, SLH_ENOMEM, "log: out of memory");
    }
    /* Line buffered: one call of syslog_write() per line, mostly. */
    setvbuf(f, NULL, _IOLBF, BUFSIZ);
    fflush(stderr);
    plain_stderr = stderr;
    syslog_stream = f;
    /* glibc's stderr is an ordinary variable, meant to be set (its manual,
     * "Standard Streams"): every fprintf(stderr) now comes here. */
    stderr = f;
    return SLH_OK;
}

static int
open_log_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
                0640);
}

/* O_APPEND: lines of this process and of any other writing the file
 * (a kicked deliverer, the CGI) land whole at its end, not over each
 * other. */
static enum slh_err
to_file(const char *path, struct slh_error *err)
{
    int fd = open_log_file(path);

    if (fd < 0)
        return slh_error_set(err, SLH_EIO, "log %s: %s", path, strerror(errno));
    fflush(stderr);
    if (saved_fd2 < 0)
        saved_fd2 = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (fd != 2) {
        if (dup2(fd, 2) < 0) {
            int e = errno;
            close(fd);
            return slh_error_set(err, SLH_EIO, "log %s: %s", path, strerror(e));
        }
        close(fd);
    }
    leave_syslog();
    return SLH_OK;
}

enum slh_err
slh_log_to(const char *target, const char *ident, struct slh_error *err)
{
    if (target == NULL || strcmp(target, "stderr") == 0) {
        leave_syslog();
        if (saved_fd2 >= 0) {
            fflush(stderr);
            dup2(saved_fd2, 2);
            close(saved_fd2);
            saved_fd2 = -1;
        }
        return SLH_OK;
    }
    if (strcmp(target, "syslog") == 0)
        return to_syslog(ident, err);
    return to_file(target, err);
}

enum slh_err
slh_log_check(const char *target, struct slh_error *err)
{
    int fd;

    if (target == NULL || target[0] != '/')
        return SLH_OK;
    fd = open_log_file(target);
    if (fd < 0)
        return slh_error_set(err, SLH_EIO, "log %s: %s", target,
                             strerror(errno));
    close(fd);
    return SLH_OK;
}

/* spawn-fcgi gives its child /dev/null as stderr. */
static int
stderr_is_void(void)
{
    struct stat fd2, null;

    if (fstat(2, &fd2) != 0)
        return 1;
    return S_ISCHR(fd2.st_mode) && stat("/dev/null", &null) == 0 &&
           fd2.st_rdev == null.st_rdev;
}

void
slh_log_early(const char *ident, const char *text)
{
    fprintf(stderr, "%s: %s\n", ident, text);
    if (syslog_stream == NULL && stderr_is_void()) {
        openlog(ident, LOG_PID, LOG_DAEMON);
        syslog(LOG_ERR, "%s", text);
        closelog();
    }
}

/* memfd_create(), pipe2() and environ are GNU; this module is Linux's. */
#define _GNU_SOURCE
#include "kick.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handler.h" /* slh_elapsed_ms() */

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3; older headers lack it */
#endif

#define READY_LINE "ready"
#define WORDS_MAX 512 /* bytes of a failing deliverer's words kept */

int
slh_kick_lock(const char *dir)
{
    char path[PATH_MAX];
    int fd;

    if (snprintf(path, sizeof(path), "%s/%s", dir, SLH_KICK_LOCK) >=
        (int)sizeof(path))
        return -2;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -2;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        close(fd);
        return saved == EWOULDBLOCK ? -1 : -2;
    }
    return fd;
}

bool
slh_kick_held(const char *dir)
{
    int fd = slh_kick_lock(dir);

    if (fd >= 0) {
        close(fd);
        return false;
    }
    return fd == -1;
}

/* A file in memory holding the tool's image: nothing on disk to find,
 * trust or keep in step with this binary. */
static int
tool_memfd(const void *tool, size_t len, char *why, size_t size)
{
    const char *p = tool;
    /* Where vm.memfd_noexec makes memfds unexecutable by default, MFD_EXEC
     * asks for it; kernels before 6.3 refuse the flag. */
    int fd = memfd_create("slhook", MFD_CLOEXEC | MFD_EXEC);

    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("slhook", MFD_CLOEXEC);
    if (fd < 0) {
        int saved = errno;
        snprintf(why, size, "memfd_create: %s%s", strerror(saved),
                 saved == EACCES ? " (vm.memfd_noexec forbids running "
                                   "programs from memory)"
                                 : "");
        return -1;
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, size, "writing the slhook tool to memory: %s",
                     n < 0 ? strerror(errno) : "no progress");
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return fd;
}

/*
 * The child of slh_kick_start(): leaves the caller's session, and forks
 * the deliverer so that nobody has to wait for it. Never returns.
 */
static void
run_detached(int mem, int report, const char *config_path)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT};
    char conf[PATH_MAX];
    char *argv[] = {"slhook",   "-c",         conf, "deliver",
                    "--kicked", "--ready-fd", "2",  NULL};
    sigset_t none;
    int null = open("/dev/null", O_RDWR);

    if (snprintf(conf, sizeof(conf), "%s", config_path) >= (int)sizeof(conf)) {
        dprintf(report, "config path too long\n");
        _exit(1);
    }
    /* A caller that closed stdout may have got 1 for either of them. */
    mem = fcntl(mem, F_DUPFD_CLOEXEC, 3);
    report = fcntl(report, F_DUPFD_CLOEXEC, 3);
    if (mem < 0 || report < 0 || null < 0 || setsid() < 0 ||
        dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(report, 2) < 0) {
        dprintf(report, "cannot detach: %s\n", strerror(errno));
        _exit(1);
    }
    if (fork() != 0)
        _exit(0);
    /* Ignored signals and a blocked mask would outlive the exec. */
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    fexecve(mem, argv, environ);
    /* glibc's fexecve() is execveat(AT_EMPTY_PATH), which valgrind (3.19)
     * and older kernels refuse; the descriptor's /proc path is the same
     * file. */
    if (errno == ENOENT || errno == ENOSYS) {
        char path[32];

        snprintf(path, sizeof(path), "/proc/self/fd/%d", mem);
        execve(path, argv, environ);
    }
    dprintf(2, "cannot run the slhook tool it carries: %s\n", strerror(errno));
    _exit(127);
}

/* The first non-empty line of words, without the "slhook: " that the
 * tool's messages begin with. */
static void
first_line(const char *words, char *why, size_t size)
{
    size_t n;

    words += strspn(words, "\r\n");
    if (strncmp(words, "slhook: ", 8) == 0)
        words += 8;
    n = strcspn(words, "\r\n");
    snprintf(why, size, "%.*s", (int)n, words);
}

/* True when words holds the line READY_LINE. */
static bool
said_ready(const char *words)
{
    size_t len = strlen(READY_LINE);

    for (const char *p = words; p != NULL; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, READY_LINE, len) == 0 && p[len] == '\n')
            return true;
    }
    return false;
}

/*
 * Reads the deliverer's words on fd until it says it is ready (why gets
 * ""), it exits (the pipe's end: why gets its first line), or wait_ms
 * pass.
 */
static void
wait_ready(int fd, int wait_ms, char *why, size_t size)
{
    char words[WORDS_MAX + 1];
    size_t n = 0;
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    words[0] = '\0';
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = wait_ms - (long)slh_elapsed_ms(&t0);
        ssize_t got;
        int rc = poll(&p, 1, left > 0 ? (int)left : 0);

        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            snprintf(why, size, "the deliverer said nothing within %d ms",
                     wait_ms);
            return;
        }
        got = read(fd, words + n, WORDS_MAX - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        words[n] = '\0';
        if (said_ready(words)) {
            why[0] = '\0';
            return;
        }
        if (n == WORDS_MAX)
            break;
    }
    if (n > 0 && words[strspn(words, "\r\n")] != '\0')
        first_line(words, why, size);
    else
        snprintf(why, size, "the deliverer exited without a word");
}

/* The spool's SLH_KICK_NOTE into path; false when it does not fit. */
static bool
note_path(char *path, size_t size, const char *dir)
{
    int n = snprintf(path, size, "%s/%s", dir, SLH_KICK_NOTE);

    return n >= 0 && (size_t)n < size;
}

/* Records why in the spool's note, replaced whole (rename), best effort:
 * the caller logs why anyway. */
static void
note_failure(const char *dir, const char *why)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    FILE *f;
    int fd;

    if (!note_path(path, sizeof(path), dir) ||
        snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
        return;
    fd = mkstemp(tmp);
    if (fd < 0)
        return;
    /* No secret in it: readable like the spool's other files. */
    fchmod(fd, 0644);
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return;
    }
    fprintf(f, "%lld %s\n", (long long)time(NULL), why);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

enum slh_err
slh_kick_start(const char *config_path, const char *dir, const void *tool,
               size_t tool_len, int wait_ms, struct slh_error *err)
{
    char why[SLH_ERROR_TEXT] = "";
    int mem, report[2] = {-1, -1};
    pid_t pid;

    mem = tool_memfd(tool, tool_len, why, sizeof(why));
    if (mem < 0)
        goto fail;
    if (pipe2(report, O_CLOEXEC) != 0) {
        snprintf(why, sizeof(why), "pipe: %s", strerror(errno));
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(why, sizeof(why), "fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0)
        run_detached(mem, report[1], config_path);
    /* Only the deliverer may hold the write end: its exit is the EOF. */
    close(report[1]);
    report[1] = -1;
    waitpid(pid, NULL, 0);
    wait_ready(report[0], wait_ms, why, sizeof(why));
fail:
    if (mem >= 0)
        close(mem);
    if (report[0] >= 0)
        close(report[0]);
    if (report[1] >= 0)
        close(report[1]);
    if (why[0] == '\0')
        return SLH_OK;
    note_failure(dir, why);
    return slh_error_set(err, SLH_EDELIVER, "%s", why);
}

void
slh_kick_ready(int fd, const char *dir)
{
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old;
    char path[PATH_MAX];
    int null;

    if (note_path(path, sizeof(path), dir))
        unlink(path);
    /* A starter that gave up waiting closed its end: EPIPE, not death. */
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old);
    if (write(fd, READY_LINE "\n", sizeof(READY_LINE)) < 0) {
        /* nobody is listening any more; nothing else to do */
    }
    sigaction(SIGPIPE, &old, NULL);
    null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, fd);
        close(null);
    }
}

bool
slh_kick_failure(const char *dir, time_t *when, char *text, size_t size)
{
    char path[PATH_MAX], line[SLH_ERROR_TEXT + 32];
    char *end;
    long long t;
    FILE *f;
    bool found = false;

    if (!note_path(path, sizeof(path), dir))
        return false;
    f = fopen(path, "re");
    if (f == NULL)
        return false;
    /* "SECONDS TEXT\n", as note_failure() writes it; anything else (a
     * note cut short, edited by hand, out of range) is no note. */
    if (fgets(line, sizeof(line), f) != NULL) {
        errno = 0;
        t = strtoll(line, &end, 10);
        if (errno == 0 && end != line && *end == ' ') {
            line[strcspn(line, "\n")] = '\0';
            *when = (time_t)t;
            snprintf(text, size, "%s", end + 1);
            found = true;
        }
    }
    fclose(f);
    return found;
}

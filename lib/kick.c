#include "kick.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

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

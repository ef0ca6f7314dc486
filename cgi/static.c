/* static.c: slhook.cgi's own (cgi.h): a PostgreSQL spool handed to
 * slhook-pg.cgi, and the deliverer it carries. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgi.h"
#include "kick.h"
#include "store.h"

/* The slhook tool's ELF image, which the Makefile embeds (cgi/tool.S). */
extern const unsigned char slh_tool_elf[], slh_tool_elf_end[];

extern char **environ;

/* Beside this program, whatever name the web server ran it by: the
 * kernel's name for the file (a symbolic link to it in a cgi-bin leads
 * back to where it was installed). Asked only for a spool on a server:
 * a SQLite spool's request makes no system call more. */
void
cgi_handoff(const struct slh_config *cfg, char **argv)
{
    char path[PATH_MAX];
    ssize_t len;
    char *slash;

    if (slh_store_is_local(cfg->spool))
        return;
    len = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (len <= 0) {
        fprintf(stderr, "slhook: /proc/self/exe: %s: cannot find %s\n",
                strerror(errno), SLH_CGI_PG);
        return;
    }
    path[len] = '\0';
    slash = strrchr(path, '/');
    if (slash == NULL ||
        (size_t)(slash + 1 - path) + sizeof(SLH_CGI_PG) > sizeof(path)) {
        fprintf(stderr, "slhook: %s: cannot name %s beside it\n", path,
                SLH_CGI_PG);
        return;
    }
    memcpy(slash + 1, SLH_CGI_PG, sizeof(SLH_CGI_PG));
    argv[0] = path;
    execve(path, argv, environ);
    fprintf(stderr,
            "slhook: the spool is a PostgreSQL database, which %s receives "
            "for (this slhook.cgi is linked without PostgreSQL): it cannot "
            "be run: %s\n",
            path, strerror(errno));
}

/*
 * Always the tool this program carries, never one found on disk: one
 * path, always the one tested, and a deliverer of the very version that
 * stored the events. Whatever keeps it from starting goes to the web
 * server's error log, on every request that meets it.
 */
void
cgi_kick(const struct slh_config *cfg)
{
    struct slh_error err = {0};

    if (slh_kick_held(cfg->spool))
        return;
    if (slh_kick_start(cfg->path, cfg->spool, slh_tool_elf,
                       (size_t)(slh_tool_elf_end - slh_tool_elf),
                       SLH_KICK_WAIT_MS, &err) != SLH_OK)
        fprintf(stderr,
                "slhook: delivery could not start: %s (the events wait in "
                "%s; `slhook status` shows them)\n",
                err.text, cfg->spool_shown);
}

/* cmd.h: the operator tool's commands. Each takes the arguments after the
 * command name (argv[0] is the command name) and the loaded config, and
 * returns the process exit status (0 success, 1 failure, 2 usage). */
#ifndef SLH_CMD_H
#define SLH_CMD_H

#include <stdbool.h>

#include "config.h"
#include "err.h"

int cmd_deliver(int argc, char **argv, const struct slh_config *cfg);
int cmd_status(int argc, char **argv, const struct slh_config *cfg);
int cmd_retry(int argc, char **argv, const struct slh_config *cfg);
int cmd_send(int argc, char **argv, const struct slh_config *cfg);
int cmd_events(int argc, char **argv, const struct slh_config *cfg);
int cmd_show(int argc, char **argv, const struct slh_config *cfg);
int cmd_replay(int argc, char **argv, const struct slh_config *cfg);
int cmd_migrate(int argc, char **argv, const struct slh_config *cfg);

/* What `slhook CMD --help` prints (and a usage error, on stderr). */
extern const char cmd_events_usage[], cmd_show_usage[], cmd_replay_usage[],
    cmd_migrate_usage[];

/*
 * Whether command cmd may make the spool directory dir: not when it is
 * missing and this runs as root, which would make it root's, where the web
 * server's user could then store nothing (a directory root made on purpose
 * is root's choice, and is used). false has been explained on stderr.
 */
bool cmd_may_make_spool(const char *dir, const char *cmd);

#endif

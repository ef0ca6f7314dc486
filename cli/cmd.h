/* cmd.h: the operator tool's commands. Each takes the arguments after the
 * command name (argv[0] is the command name) and the loaded config, and
 * returns the process exit status (0 success, 1 failure, 2 usage). */
#ifndef SLH_CMD_H
#define SLH_CMD_H

#include "config.h"

int cmd_deliver(int argc, char **argv, const struct slh_config *cfg);
int cmd_status(int argc, char **argv, const struct slh_config *cfg);
int cmd_retry(int argc, char **argv, const struct slh_config *cfg);
int cmd_send(int argc, char **argv, const struct slh_config *cfg);

#endif

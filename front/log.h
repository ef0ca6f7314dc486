/* log.h: where the front ends' log lines go ([receiver] log in the config).
 *
 * Every front end writes its log lines to stderr, one fprintf() per line,
 * and goes on doing so: this module only decides where stderr leads. lib/
 * prints nothing, so it lives beside the front ends, which share it. Under
 * spawn-fcgi stderr is /dev/null, and each line would be lost.
 */
#ifndef SLH_FRONT_LOG_H
#define SLH_FRONT_LOG_H

#include "err.h"

/*
 * Points stderr at target, a config's log value:
 *   NULL or "stderr": leaves it where it was (no system call at all, unless
 *     an earlier call had moved it: then it goes back).
 *   "/path": the file, opened for appending (created mode 0640), put on
 *     file descriptor 2, so that what a library writes there lands in it
 *     too; a line is one write(), whole even with several writers. Called
 *     again it opens the path again: after logrotate's mv, the new file.
 *   "syslog": stderr becomes a stream whose every line is sent to
 *     syslog(3) as ident, facility daemon; a request's line at the priority
 *     of its status (2xx info, 4xx warning, 5xx err), any other line notice.
 *     File descriptor 2 is left alone.
 * Not thread-safe against lines being written meanwhile: call it while one
 * thread runs. ident must outlive the process (a literal). On failure stderr
 * is left as it was and err says why, naming the file.
 */
enum slh_err slh_log_to(const char *target, const char *ident,
                        struct slh_error *err);

/*
 * Whether slh_log_to(target) would succeed, as far as it can tell without
 * moving stderr: a file is opened for appending (created) and closed.
 */
enum slh_err slh_log_check(const char *target, struct slh_error *err);

/*
 * Writes "ident: text" and a newline to stderr; when stderr leads nowhere
 * (/dev/null, as under spawn-fcgi, or closed), also to syslog at priority
 * err. For what goes wrong before the config, and so its log target, is
 * known.
 */
void slh_log_early(const char *ident, const char *text);

#endif

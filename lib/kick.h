/* kick.h: who delivers when nobody runs a daemon.
 *
 * A CGI-only deployment has no deliverer running. After storing events the
 * CGI "kicks" one: if no deliverer holds the spool's kick lock, it starts a
 * detached `slhook deliver --kicked`, which holds the lock while it works.
 * The lock is tested after the commit and a deliverer looks for due work
 * again after letting the lock go, so no event is left behind between the
 * two (the deliverer's loop: deliver_kicked.h).
 *
 * The CGI carries the slhook tool inside itself and runs it from memory, so
 * that it relays wherever it was copied. The deliverer says on a pipe when
 * it is ready; whatever keeps one from starting (the tool cannot be run,
 * libcurl missing, the spool or lock unusable) comes back to the starter,
 * which logs it, and is noted in the spool directory for `slhook status`
 * and `slhook check` until a deliverer starts fine.
 */
#ifndef SLH_KICK_H
#define SLH_KICK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "err.h"

#define SLH_KICK_LOCK "deliver.lock"  /* inside the spool directory */
#define SLH_KICK_NOTE "deliver.error" /* the last failure to start one */
#define SLH_KICK_WAIT_MS 2000         /* how long a starter waits for "ready" */

/*
 * Tries to take the exclusive kick lock of the spool in dir without
 * waiting. Returns an open descriptor holding it (close it to let go), -1
 * when another process holds it, or -2 when the lock file cannot be opened.
 */
int slh_kick_lock(const char *dir);

/*
 * True when a deliverer holds the kick lock of the spool in dir right now.
 */
bool slh_kick_held(const char *dir);

/*
 * Starts a deliverer for the spool in dir: the slhook tool whose ELF image
 * is the tool_len bytes at tool (borrowed), run from memory as
 * `slhook -c CONFIG deliver --kicked --ready-fd 2`, detached (a process of
 * its own session that the caller never waits for, stdin and stdout on
 * /dev/null, signals at their defaults) and with the caller's environment.
 * Its standard error is a pipe back to the caller until it is ready, then
 * /dev/null. Waits at most wait_ms for it to say it is ready.
 *
 * Returns SLH_OK once it said so. Else SLH_EDELIVER, with err's text
 * saying why it did not start (the tool could not be run; the first line
 * the deliverer wrote before it exited, such as the dynamic loader's or a
 * spool error; or that it said nothing within wait_ms), which is also
 * recorded in the spool's SLH_KICK_NOTE (best effort).
 */
enum slh_err slh_kick_start(const char *config_path, const char *dir,
                            const void *tool, size_t tool_len, int wait_ms,
                            struct slh_error *err);

/*
 * For the deliverer started by slh_kick_start(), once it holds the kick
 * lock (or saw another deliverer hold it): removes the spool's failure
 * note, tells the starter it is ready on fd (the --ready-fd), and points fd
 * at /dev/null, so that later messages go nowhere, as a detached process's
 * do. Never fails: a starter that gave up waiting is simply not told.
 */
void slh_kick_ready(int fd, const char *dir);

/*
 * The failure recorded by the last slh_kick_start() that failed for the
 * spool in dir, if no deliverer started fine since: true with *when
 * (seconds since the epoch) and the reason in text (size bytes, cut if
 * longer); false when there is none (or it cannot be read).
 */
bool slh_kick_failure(const char *dir, time_t *when, char *text, size_t size);

#endif

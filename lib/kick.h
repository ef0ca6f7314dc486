/* kick.h: who delivers when nobody runs a daemon.
 *
 * A CGI-only deployment has no deliverer running. After storing events the
 * CGI "kicks" one: if no deliverer holds the spool's kick lock, it starts a
 * detached `slhook deliver --kicked`, which holds the lock while it works.
 * The lock is tested after the commit and a deliverer looks for due work
 * again after letting the lock go, so no event is left behind between the
 * two.
 */
#ifndef SLH_KICK_H
#define SLH_KICK_H

#include <stdbool.h>

#define SLH_KICK_LOCK "deliver.lock" /* inside the spool directory */

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

#endif

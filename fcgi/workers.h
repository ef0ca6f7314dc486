/* workers.h: the request threads of the FastCGI responder.
 *
 * Each thread accepts requests on the listening socket (libfcgi's
 * thread-safe fcgiapp.h interface, an FCGX_Request per request) and handles
 * them with the core handler. A request whose events are to be stored goes
 * to the group committer, whose thread answers it once they are on disk;
 * the rest are answered at once. At most three times as many requests as
 * threads exist at once. One log line per request goes to stderr.
 */
#ifndef SLH_FCGI_WORKERS_H
#define SLH_FCGI_WORKERS_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "commit.h"
#include "config.h"
#include "err.h"

/*
 * Interrupts a request thread waiting for its next request. The caller of
 * slh_workers_start() blocks it (the threads inherit the mask); each thread
 * unblocks it only while it waits, so that it never cuts a request short.
 * SIGURG, since nobody sends it to a process that owns no socket with
 * out-of-band data (SIGUSR1 is libfcgi's graceful stop).
 */
#define SLH_WAKE_SIGNAL SIGURG

struct slh_workers; /* opaque */

/*
 * Starts n request threads on listen_fd, after FCGX_Init(), and installs
 * the handler of SLH_WAKE_SIGNAL. cfg and commit are borrowed and must
 * outlive the threads. If accepting fails for good (not for a moment, as
 * when out of descriptors), the threads end and SIGTERM is sent to thread
 * notify. On failure *out is NULL and no thread is left running.
 */
enum slh_err slh_workers_start(struct slh_workers **out,
                               const struct slh_config *cfg,
                               struct slh_commit *commit, int listen_fd,
                               size_t n, pthread_t notify,
                               struct slh_error *err);

/*
 * Stops accepting, joins the threads, waits until the committer has
 * answered every request handed to it (so the committer must still run),
 * and frees w. Returns false when the threads had ended because accepting
 * failed. NULL is fine.
 */
bool slh_workers_stop(struct slh_workers *w);

#endif

/* workers.h: the request threads of the FastCGI responder.
 *
 * The threads share one epoll set holding the listening socket and every
 * connection not being handled, each armed for one event at a time. A
 * thread takes a connection's bytes as they come, non-blockingly, through
 * the record parser (proto.h), and the thread that completes a request
 * handles it with the core handler: no thread ever blocks on a client. A
 * request whose events are to be stored goes to the group committer, whose
 * thread answers it once they are on disk; the rest are answered at once.
 * A request that is not complete within [receiver] read_timeout of its
 * first byte (of the connection's opening, for a new one) is answered 400
 * if its params came, and closed. One log line per request goes to stderr.
 */
#ifndef FC_WORKERS_H
#define FC_WORKERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "commit.h"
#include "config.h"
#include "err.h"

struct fc_workers; /* opaque */

/*
 * Starts n request threads on listen_fd (made non-blocking). cfg and
 * commit are borrowed and must outlive the threads. If accepting fails for
 * good (not for a moment, as when out of descriptors), the threads end and
 * SIGTERM is sent to thread notify. On failure *out is NULL and no thread
 * is left running.
 */
enum slh_err fc_workers_start(struct fc_workers **out,
                              const struct slh_config *cfg,
                              struct slh_commit *commit, int listen_fd,
                              size_t n, pthread_t notify,
                              struct slh_error *err);

/*
 * Stops accepting (connections in the listen backlog stay there), closes
 * kept connections idle between requests, gives requests already begun a
 * second (at most read_timeout) to arrive and be answered, then lets every
 * thread finish the request it handles, closes the connections still being
 * read, waits until the committer has
 * answered every request handed to it (so the committer must still run),
 * and frees w. Returns false when the threads had ended because accepting
 * failed. NULL is fine.
 */
bool fc_workers_stop(struct fc_workers *w);

#endif

/* queue.h: the delivering side of the spool (schema in spool.h).
 *
 * A deliverer claims due delivery rows of a destination with a lease: in one
 * IMMEDIATE transaction it takes up to k pending rows whose due time has
 * come and moves their due past the attempt (now + lease) while counting the
 * attempt. Racing deliverers, in threads or processes, therefore never take
 * the same row. Finishing records the outcome of each attempt.
 *
 * A claimed row also names its owner: the claiming deliverer's token, whose
 * lock file (SLH_QUEUE_CLAIMS/<token>.lock in the spool directory) it holds
 * locked (flock) from before its first claim until it exits, when the kernel
 * lets go of the lock however it exits. Another deliverer that can take that
 * lock therefore knows the owner is dead, and takes back at once what it
 * held (slh_queue_owners_dead(), slh_queue_take_back()): a restarted
 * responder resumes the deliveries its killed predecessor had claimed
 * without waiting out their lease. A live owner holds its lock, so no one
 * takes its rows. The lease still covers the rest: an owner alive but stuck
 * (a hung thread, a stopped process), a row claimed with no owner (a lock
 * file that could not be made; a row leased before the spool's upgrade to
 * version 3), and a lock file removed by hand.
 *
 * One use of the schema beyond spool.h's comment: for a pending row, done
 * holds the unix ms at which slh_queue_retry() revived it from the dead (NULL
 * when never revived), so that max_age counts from then and a revived dead
 * letter gets a fresh horizon rather than one attempt.
 *
 * The policy (backoff, jitter, max_age, 410) is pure and lives here too, so
 * it is tested without a network.
 */
#ifndef SLH_QUEUE_H
#define SLH_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "event.h"
#include "spool.h"

#define SLH_QUEUE_KEEP_MS (7LL * 24 * 3600 * 1000) /* delivered events kept */
#define SLH_QUEUE_ERROR_LEN 256   /* last_error buffer, NUL included */
#define SLH_BACKOFF_FIRST_MS 1000 /* the wait after the first failure */
#define SLH_BACKOFF_CAP_MS                                                     \
    (2 * 3600 * 1000) /* the longest wait, jitter aside */

/* One claimed delivery row and what is needed to attempt it. */
struct slh_claim {
    int64_t seq;      /* event.seq */
    int attempts;     /* attempts made, the claimed one included */
    int64_t received; /* unix ms the event was stored */
    int64_t revived;  /* unix ms slh_queue_retry() revived it, or 0 */
    char id[SLH_EVENT_ID_LEN + 1]; /* event id, hex */
    char *body;                    /* owned: the relay body, NUL-terminated */
    size_t body_len;
};

/* What an attempt came to, to be recorded by slh_queue_finish(). */
struct slh_outcome {
    const char *dest;              /* destination name, borrowed */
    int64_t seq;                   /* event.seq */
    char id[SLH_EVENT_ID_LEN + 1]; /* and that event's id: see finish */
    int state;   /* enum slh_delivery_state: the row's new state */
    int64_t due; /* when SLH_PENDING: the next attempt (unix ms) */
    int status;  /* HTTP status, 0 when there was none */
    char error[SLH_QUEUE_ERROR_LEN]; /* why it failed, "" when delivered */
};

/* One destination's numbers, for `slhook status`. */
struct slh_queue_stats {
    int64_t pending;        /* not yet delivered nor dead (retrying included) */
    int64_t retrying;       /* of those, the ones whose last attempt failed */
    int64_t dead;           /* dead letters */
    int64_t delivered;      /* delivered */
    int64_t oldest_pending; /* unix ms the oldest pending event was received,
                               0 when nothing is pending */
    int last_status;        /* HTTP status of the latest recorded failure, 0 */
    char last_error[SLH_QUEUE_ERROR_LEN]; /* its text, "" when none */
};

/*
 * Makes sp's connection suit a deliverer: its commits (claims, outcomes)
 * skip the fsync (synchronous=NORMAL in WAL mode). A power cut may then
 * lose the latest outcomes, which only repeats those deliveries (delivery is
 * at least once), while an fsync per commit would cap the throughput; the
 * events themselves stay as durable as the receiving connection made them.
 * Its page cache is kept small (256 KiB): a deliverer reads the queue in
 * order and each event once.
 */
enum slh_err slh_queue_setup(struct slh_spool *sp, struct slh_error *err);

/*
 * Claim, finish and unclaim each take the writers' lock and a transaction of
 * their own, unless sp is inside a writer's transaction already (as a task of
 * slh_spool_put_tasks(), spool.h): then they join it, and what they did
 * stands or falls with it.
 */

/* The directory of the deliverers' lock files, inside the spool's. */
#define SLH_QUEUE_CLAIMS "claims"

/* A deliverer's identity in the rows it claims, or a dead one's. */
struct slh_queue_owner {
    int64_t token; /* > 0; 0: none (rows claimed so are owned by no one) */
    int fd;        /* holding the lock on its lock file; -1: none */
};

/*
 * Makes *o a new owner in the spool directory dir: a random token, and its
 * lock file made (the SLH_QUEUE_CLAIMS directory too, mode 0700) and locked,
 * so that slh_queue_owners_dead() never counts it while o's process lives.
 * Close-on-exec: a program the process runs does not keep it alive. On
 * failure *o is {0, -1}, fit to claim with, and err says why (SLH_EIO).
 */
enum slh_err slh_queue_owner_open(struct slh_queue_owner *o, const char *dir,
                                  struct slh_error *err);

/*
 * Removes o's lock file from dir and lets go of its lock; *o becomes
 * {0, -1}. For an owner about to exit, whose claims are given back or
 * finished, and for a dead one whose rows were taken back. {0, -1} is fine.
 */
void slh_queue_owner_close(struct slh_queue_owner *o, const char *dir);

/*
 * Lets go of o's lock and leaves its file, for the next look to find again
 * (a take-back that failed). *o becomes {0, -1}.
 */
void slh_queue_owner_drop(struct slh_queue_owner *o);

/*
 * Looks for dead owners in the spool directory dir: lock files other than
 * self's (a token, 0 for none) that no one holds. Each one found is locked
 * now, by the caller, so that no other deliverer takes its rows back at the
 * same time; dead[0..n) get up to max of them, n returned. Hand each to
 * slh_queue_owner_close() once its rows are taken back, or to
 * slh_queue_owner_drop(). A directory that cannot be read holds none.
 */
size_t slh_queue_owners_dead(const char *dir, int64_t self,
                             struct slh_queue_owner *dead, size_t max);

/*
 * Gives back every pending row that the n owners claimed, as unclaim does:
 * due at now_ms, the claimed attempt uncounted, owned by no one. *taken
 * (may be NULL) gets how many rows.
 */
enum slh_err slh_queue_take_back(struct slh_spool *sp,
                                 const struct slh_queue_owner *dead, size_t n,
                                 int64_t now_ms, size_t *taken,
                                 struct slh_error *err);

/*
 * Claims up to max pending rows of destination dest that are due at now_ms
 * (earliest due first), leasing them until now_ms + lease_ms to owner (a
 * token of slh_queue_owner_open(), 0 for none) and counting an attempt on
 * each. claims[0..*n) are filled in (release each with
 * slh_queue_claim_free()); *next_due (may be NULL) gets the earliest due of
 * dest's pending rows after the claim, leased ones included, or INT64_MAX
 * when none is pending. On failure nothing is claimed, *n is 0 and err says
 * why (SLH_ESTORE with SQLite's reason, SLH_ENOMEM).
 */
enum slh_err slh_queue_claim(struct slh_spool *sp, const char *dest,
                             int64_t owner, int64_t now_ms, int64_t lease_ms,
                             size_t max, struct slh_claim *claims, size_t *n,
                             int64_t *next_due, struct slh_error *err);

/* Releases what c owns and zeroes it. NULL is fine. */
void slh_queue_claim_free(struct slh_claim *c);

/*
 * Records n outcomes in one transaction, each row then owned by no one;
 * now_ms stamps done on delivered and dead rows. A row that is no longer
 * pending (finished by a deliverer whose lease it outlived) is left as it is,
 * and so is one whose seq now names an event other than id: the spool was
 * replaced since the claim (a writer reconnects to a new spool at the path),
 * and seqs start over. An error text is stored as valid UTF-8: a character
 * cut off by the end of the buffer is dropped, any other invalid byte
 * becomes '?'. On failure nothing is recorded and err says why (SLH_ESTORE).
 */
enum slh_err slh_queue_finish(struct slh_spool *sp, const struct slh_outcome *o,
                              size_t n, int64_t now_ms, struct slh_error *err);

/*
 * Gives back n claimed rows of dest (seqs) that were not attempted after
 * all, a deliverer stopping: due at now_ms, the claimed attempt uncounted,
 * owned by no one.
 */
enum slh_err slh_queue_unclaim(struct slh_spool *sp, const char *dest,
                               const int64_t *seqs, size_t n, int64_t now_ms,
                               struct slh_error *err);

/*
 * *due gets the earliest due time of dest's pending rows (leased ones
 * included), or INT64_MAX when none is pending. dest NULL means every
 * destination in the spool.
 */
enum slh_err slh_queue_next_due(struct slh_spool *sp, const char *dest,
                                int64_t *due, struct slh_error *err);

/*
 * Fills *st with dest's numbers. A destination without rows gets zeros.
 * last_error is valid UTF-8 whatever was stored (older spools kept texts cut
 * mid-character): mended as slh_queue_finish() stores it.
 */
enum slh_err slh_queue_stats(struct slh_spool *sp, const char *dest,
                             struct slh_queue_stats *st, struct slh_error *err);

/*
 * Puts every dead letter of dest back in the queue: pending, due at now_ms,
 * attempts 0, with max_age counted afresh from now_ms. *n (may be NULL) gets
 * how many.
 */
enum slh_err slh_queue_retry(struct slh_spool *sp, const char *dest,
                             int64_t now_ms, size_t *n, struct slh_error *err);

/*
 * Forgets what no longer needs keeping: delivered rows finished before
 * cutoff_ms, then events received before cutoff_ms with no delivery row
 * left (pending and dead rows keep their event). Works in chunks of a few
 * thousand rows, one short transaction each, so that receivers are never
 * kept waiting for the write lock. *n (may be NULL) gets the number of
 * events forgotten. A forgotten event posted again is no longer recognised
 * as a duplicate: keep cutoff well beyond SocketLabs' four-day horizon.
 */
enum slh_err slh_queue_purge(struct slh_spool *sp, int64_t cutoff_ms, size_t *n,
                             struct slh_error *err);

/*
 * SQLite's PRAGMA data_version for sp's connection: it changes when another
 * connection (a receiver storing events, another deliverer) has committed.
 * 0 when it cannot be read.
 */
int64_t slh_queue_data_version(struct slh_spool *sp);

/*
 * The wait in ms before the next attempt after the given number of failed
 * attempts (1 for the first failure): SLH_BACKOFF_FIRST_MS doubled per
 * further failure up to SLH_BACKOFF_CAP_MS, plus a jitter of up to a quarter
 * taken from rnd (any random 32 bits).
 */
int64_t slh_queue_backoff(int attempts, uint32_t rnd);

/*
 * Decides what attempt c (of a destination with the given max_age in
 * seconds) came to, at now_ms: status 2xx is delivered; 410 is dead at
 * once; anything else (status 0: no answer) is a retry at now_ms plus the
 * larger of the backoff and retry_after_ms (the answer's Retry-After, 0 for
 * none), but never later than the horizon (received or revived + max_age),
 * so the last attempt falls on it; an attempt failing at or after the
 * horizon is dead. Sets o's seq, state, due and status; leaves dest and
 * error to the caller.
 */
void slh_queue_decide(struct slh_outcome *o, const struct slh_claim *c,
                      int64_t max_age, int status, int64_t retry_after_ms,
                      int64_t now_ms, uint32_t rnd);

/*
 * Added by the operations work (append only): a destination removed from
 * the config leaves its rows in the spool, and `slhook status` shows them.
 *
 * *names gets a new array of the *n distinct destination names that have
 * delivery rows in sp (any state), in byte order, each a new string;
 * release with slh_queue_dests_free(). On failure *names is NULL, *n is 0
 * and err says why (SLH_ESTORE, SLH_ENOMEM).
 */
enum slh_err slh_queue_dests(struct slh_spool *sp, char ***names, size_t *n,
                             struct slh_error *err);

/* Releases what slh_queue_dests() gave. NULL is fine. */
void slh_queue_dests_free(char **names, size_t n);

#endif

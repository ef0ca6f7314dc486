/* deliver_int.h: what the pieces of the deliverer share (private to
 * lib/deliver*.c; the contract for callers is deliver.h).
 *
 *   deliver.c        the scheduler: the run loop, when to claim and when to
 *                    record, wake/stop, new/free, thread niceness
 *   deliver_http.c   the curl transport: easy handles, headers, signing,
 *                    answer sinks, the multi handle and its harvest
 *   deliver_file.c   the file destination: lock, torn-tail mending, appends
 *   deliver_spool.c  every read and write of the spool (the only file that
 *                    calls store.h): claim, record and finish,
 *                    unclaim, dead owners, following a moved spool, purge
 *   deliver_post.c   the one-shot POST of `slhook send`, and URL masking
 *
 * Names shared between these files carry dl_ (not slh_: no library API).
 */
#ifndef SLH_DELIVER_INT_H
#define SLH_DELIVER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>

#include "deliver.h"
#include "store.h"    /* the types of claims, outcomes and owners */
#include "throttle.h" /* a destination's rate and breaker */

/* ---- Sizes ---- */

/* Rows claimed per transaction for an http destination; those beyond the
 * free slots wait in a local queue. One SQLite transaction per few events
 * would bound the throughput well below what a receiver can take. */
#define CLAIM_BATCH 64
#define FILE_BATCH 256  /* lines appended per fsync */
#define ANSWER_KEEP 200 /* bytes of a downstream answer kept for its error */

/* ---- State ---- */

struct dest_state;

/* A response body sink that keeps the first cap bytes and drops the rest,
 * so a downstream answer never reaches stdout nor grows without bound. */
struct sink {
    char *buf;
    size_t len;
    size_t cap;
};

/* One attempt in flight to a url destination. */
struct slot {
    struct dest_state *ds;
    CURL *easy;
    struct curl_slist *headers;
    struct slh_claim claim;
    char answer[ANSWER_KEEP + 1];
    struct sink sink;
    int64_t started;
    bool busy;
    bool is_abort; /* the answer so far carries SLH_ABORT_HEADER (retry.h) */
    char curl_error[CURL_ERROR_SIZE]; /* curl's detail of a failure */
};

struct dest_state {
    const struct slh_dest *dest;
    struct slot *slots; /* url destinations: dest->concurrency of them */
    size_t n_slots;
    size_t inflight;
    struct slh_claim queue[CLAIM_BATCH]; /* claimed, waiting for a slot */
    size_t q_head;
    size_t q_len;
    int64_t next_due;   /* when to look for due rows again; INT64_MIN: now */
    int64_t claimed_at; /* when rows were last claimed */
    bool claimed_full;  /* and whether that claim filled a batch */
    /* Protecting the destination (deliver_throttle.c): */
    bool is_throttled;               /* a rate or a breaker: claims and
                                        outcomes go through the throttle */
    struct slh_throttle_state th;    /* as this deliverer last read or wrote */
    int64_t claimed_opened;          /* th.opened when the queue was claimed */
    int64_t pace_us;                 /* the queue's next start (unix us) */
    struct slh_throttle_window *win; /* a rate's last period of starts */
    int64_t start_at;                /* the rate held the queue: when to
                                        try again */
    int64_t swept_at;                /* open: the last sweep past max_age */
    bool is_rate_held; /* rows may be due that the rate holds back: a run
                          --once waits for them (not for a probe) */
};

/* An outcome waiting to be recorded, with what its log line needs. */
struct finished {
    struct slh_outcome o;
    struct dest_state *ds; /* whose */
    int64_t at;            /* when it came */
    int64_t received;      /* when its event was received (unix ms) */
    int breaker;           /* SLH_BREAKER_OPENED or _CLOSED by it, or 0 */
    int attempts;
    long ms;
};

struct slh_deliverer {
    const struct slh_config *cfg;
    struct slh_store *sp;
    CURLM *multi;
    struct dest_state *ds;
    size_t n_ds;
    size_t n_slots; /* of every url destination: curl's connection cache */
    struct finished *fin;
    size_t n_fin;
    size_t cap_fin;
    int64_t fin_since;       /* when the oldest unrecorded outcome came */
    struct slh_claim *batch; /* FILE_BATCH claims for file destinations */
    void (*on_attempt)(const struct slh_attempt *a, void *arg);
    void *arg;
    void (*on_note)(const char *text, void *arg); /* and its arg: */
    void *note_arg;
    slh_deliver_write_fn write; /* slh_deliverer_write_through()'s */
    void *write_ctx;
    atomic_bool stop;
    atomic_bool wake;
    uint32_t rnd;
    int64_t version;
    int64_t version_checked;
    int64_t purge_checked; /* when the purge's turn was last asked for */
    int64_t recovered_at;  /* when dead deliverers were last looked for */
    bool is_index_behind;  /* events may wait for slh_store_index() */
    struct slh_store_owner *owner; /* whose claims these are (store.h) */
    int64_t beat_at;               /* when the owner's last good beat began */
    bool is_fenced;                /* no good beat for SLH_STORE_FENCE_MS: holds
                                      and claims nothing (deliver.c) */
    struct slh_error beat_err;     /* why the last beat failed */
    bool curl_ready;
};

/* A line for d's on_note, printf-style; nothing when none is set. */
__attribute__((format(printf, 2, 3))) void dl_note(struct slh_deliverer *d,
                                                   const char *fmt, ...);

/* ---- The spool (deliver_spool.c) ---- */

/* Opens d->sp on d->cfg->spool for a deliverer, and makes d's owner (a
 * deliverer without one claims for no owner), its beat now.
 * On failure err says why; dl_spool_close() releases what was made. */
enum slh_err dl_spool_open(struct slh_deliverer *d, struct slh_error *err);

/* Ends d's owner and closes d->sp. Fine on a zeroed d. */
void dl_spool_close(struct slh_deliverer *d);

/* The spool's change counter: a new value means another connection wrote. */
int64_t dl_spool_version(struct slh_deliverer *d);

/* When a receiver made a new spool at the path (the old one removed or its
 * file system replaced), reopens d->sp there and makes a new owner. Call
 * only when d holds no claim and no unrecorded outcome: a claim's seq means
 * nothing in another database. True when it did. */
bool dl_spool_follow(struct slh_deliverer *d);

/* At most once a second: beats for d's owner (slh_store_owner_beat(),
 * d->beat_at; a fenced d, once no outcome waits, beats is_fresh and is
 * fenced no more when that works), then takes back what dead deliverers
 * had claimed. True when rows may be due now. */
bool dl_spool_recover(struct slh_deliverer *d, int64_t now);

/* Once an hour per spool (its turn, slh_store_purge_due()), forgets
 * delivered events kept long enough. */
void dl_spool_purge(struct slh_deliverer *d, int64_t now);

/* While d->is_index_behind, makes a batch more events findable by
 * MessageId; clears it when none is left or the write failed. */
void dl_spool_index(struct slh_deliverer *d);

/* Claims up to max due rows of dest into claims[0..*n), setting *next_due.
 * On failure *n is 0 and nothing is held. */
enum slh_err dl_claim(struct slh_deliverer *d, const struct slh_dest *dest,
                      int64_t now, size_t max, struct slh_claim *claims,
                      size_t *n, int64_t *next_due, struct slh_error *err);

/* How long a claim of dest's is leased. */
int64_t dl_lease_ms(const struct slh_dest *dest);

/* The next of d's random numbers (retry jitter). */
uint32_t dl_rnd(struct slh_deliverer *d);

/* Releases what claim c owns and zeroes it. A zeroed claim is fine. */
void dl_claim_free(struct slh_claim *c);

/* Gives back rows seqs[0..n) of dest, claimed and not attempted. */
void dl_unclaim(struct slh_deliverer *d, const char *dest, const int64_t *seqs,
                size_t n, int64_t now);

/* Queues the outcome of attempt c of ds for recording (status 0 with a NULL
 * error: a file destination's line is on disk; is_abort: the answer carried
 * SLH_ABORT_HEADER), lowering ds->next_due to a retry's due time. d->fin
 * has room (cap_fin). */
void dl_record(struct slh_deliverer *d, struct dest_state *ds,
               const struct slh_claim *c, int status, bool is_abort,
               int64_t retry_after_ms, const char *error, int64_t now, long ms);

/* Records every queued outcome in one transaction, then calls on_attempt
 * for each. On failure they stay queued. */
enum slh_err dl_flush(struct slh_deliverer *d, int64_t now,
                      struct slh_error *err);

/* ---- Protecting destinations (deliver_throttle.c) ---- */

/* The deliverer's spool writes: fn(sp, arg, err) in a write transaction
 * of its own on d->sp, or written through (slh_deliverer_write_through())
 * in the front end's writer's; tx asks for a transaction even on d->sp, so
 * that what fn reads and writes is one (deliver_spool.c). */
enum slh_err dl_write(struct slh_deliverer *d,
                      enum slh_err (*fn)(struct slh_store *sp, void *arg,
                                         struct slh_error *err),
                      void *arg, bool tx, struct slh_error *err);

/* dl_claim() for a throttled ds: in one write, asks the throttle how many
 * rows may be claimed, claims them, reserves their starts (ds->pace_us) and
 * keeps the state in ds->th. */
enum slh_err dl_claim_throttled(struct slh_deliverer *d, struct dest_state *ds,
                                int64_t now, size_t max, size_t *n,
                                struct slh_error *err);

/* In the transaction that records outcomes o[0..n): each throttled
 * destination's breaker updated by its outcomes (the store's state read,
 * changed, written; ds->th kept). */
enum slh_err dl_throttle_record(struct slh_deliverer *d, struct slh_store *sp,
                                struct finished *f, size_t n,
                                struct slh_error *err);

/* An attempt of ds failed (is_failure: slh_throttle_is_failure()) or not
 * at now: its breaker as this deliverer knows it changes at once, so that
 * no more of the queue starts after the failure that opens it, before the
 * store is written. */
void dl_throttle_note(struct slh_deliverer *d, struct dest_state *ds,
                      bool is_failure, int64_t now);

/* Whether the queue's next row of ds may start at now (its rate); when
 * not, ds->start_at says when it may. */
bool dl_may_start(struct dest_state *ds, int64_t now);

/* The queue's next row of ds started at now: the rate counts it. */
void dl_started(struct dest_state *ds, int64_t now);

/* Gives back ds's queue when its breaker opened since it was claimed;
 * sweeps an open one's rows past max_age now and then. */
void dl_throttle_look(struct slh_deliverer *d, struct dest_state *ds,
                      int64_t now);

/* ---- The transport (deliver_http.c) ---- */

/* curl_global_init, the multi handle, and an easy handle per slot of every
 * url destination of d->ds. On failure err says why; dl_http_close()
 * releases what was made. */
enum slh_err dl_http_open(struct slh_deliverer *d, struct slh_error *err);

/* Abandons any attempt in flight and releases what dl_http_open() made. */
void dl_http_close(struct slh_deliverer *d);

/* Builds the attempt's headers for s->claim and hands s to the multi
 * handle. SLH_ENOMEM when it could not. */
enum slh_err dl_http_start(struct slh_deliverer *d, struct slot *s,
                           int64_t now);

/* Takes s's attempt off the multi handle, unfinished, and frees s. */
void dl_http_cancel(struct slh_deliverer *d, struct slot *s);

/* Frees busy slot s (headers, claim) for the next attempt. */
void dl_http_release(struct slot *s);

/* Drives the transfers; then records each finished one (dl_record()) and
 * frees its slot. */
enum slh_err dl_http_perform(struct slh_deliverer *d, struct slh_error *err);

/* Waits up to ms for a transfer's progress or dl_http_wakeup(). */
void dl_http_wait(struct slh_deliverer *d, int ms);

/* Ends dl_http_wait() early. Thread-safe. */
void dl_http_wakeup(struct slh_deliverer *d);

/* The options every POST shares (http and https only, no redirects, TLS
 * verified, no signals, timeout seconds), its answer going to sink. */
bool dl_http_options(CURL *easy, const char *url, long timeout,
                     struct sink *sink);

/* Appends line to *list. False, *list unchanged, when out of memory. */
bool dl_http_header(struct curl_slist **list, const char *line);

/* ---- The file destination (deliver_file.c) ---- */

/* Appends claims c[0..n) to ds's file, one line each, and records each
 * outcome (dl_record()). */
void dl_file_append(struct slh_deliverer *d, struct dest_state *ds,
                    struct slh_claim *c, size_t n, int64_t now);

#endif

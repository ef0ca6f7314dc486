/* deliver.h: relaying stored events to destinations (the only module that
 * includes <curl/curl.h>, and the only one linked with libcurl).
 *
 * A deliverer claims due delivery rows from the spool (a lease, so any number
 * of deliverers may share one spool without posting an event twice to a
 * destination by racing), posts them with libcurl (multi interface,
 * keep-alive, a bounded number in flight per destination) or appends them to
 * a file, and records each outcome: 2xx delivered; 410, or an answer with
 * the header "webhook-delivery: abort", dead at once; else a retry on a
 * backoff with jitter that honours Retry-After, until the destination's
 * max_age since receipt has passed, then dead.
 *
 * Each deliverer claims as an owner of its own (store.h), made by
 * slh_deliverer_new() and removed by slh_deliverer_free() (a deliverer that
 * cannot make one claims for no owner, and relies on the lease alone). When
 * a run starts, and every second while it runs, it beats for its owner
 * (slh_store_owner_beat()) and takes back what dead deliverers of the spool
 * had claimed, so a restarted one resumes at once what its killed
 * predecessor held (on PostgreSQL, within the grace and a second). One
 * whose beats fail for SLH_STORE_FENCE_MS (its connection to a PostgreSQL
 * spool lost) stops its attempts in flight and claims nothing until a beat
 * works again: the others may take its rows soon after.
 *
 * The pieces (deliver_int.h): deliver.c schedules, deliver_http.c posts,
 * deliver_file.c appends, deliver_spool.c reads and writes the spool,
 * deliver_post.c serves `slhook send` and `check`.
 */
#ifndef SLH_DELIVER_H
#define SLH_DELIVER_H

#include <stdbool.h>

#include "config.h"
#include "err.h"

struct slh_deliverer; /* opaque */
struct slh_store_task;

/* ---- Making and freeing ---- */

/*
 * A new deliverer for cfg (borrowed: must outlive it), opening its own spool
 * connection to cfg->spool. On failure *out is NULL and err says why.
 */
enum slh_err slh_deliverer_new(struct slh_deliverer **out,
                               const struct slh_config *cfg,
                               struct slh_error *err);

/* Releases d. NULL is fine. Must not be running. */
void slh_deliverer_free(struct slh_deliverer *d);

/* ---- What a front end sets before run ---- */

/* What one attempt came to. Borrowed for the duration of the callback. */
struct slh_attempt {
    const char *dest;     /* destination name */
    const char *event_id; /* hex event id */
    int attempts;         /* attempts made, this one included */
    int state;            /* enum slh_delivery_state the row is now in */
    int status;           /* HTTP status, 0 when there was none */
    const char *error;    /* why it failed ("HTTP 500", "Timeout was
                             reached", ...), "" when delivered */
    long long due_ms;     /* when still pending: unix ms of the next try */
    long ms;              /* how long the attempt took */
    int breaker;          /* SLH_BREAKER_OPENED when this outcome opened its
                             destination's breaker (throttle.h), _CLOSED
                             when it closed it, else 0 */
};
#define SLH_BREAKER_OPENED 1
#define SLH_BREAKER_CLOSED 2

/*
 * Has run call fn(a, arg) on its own thread after each attempt's outcome is
 * recorded, so that a front end can log each attempt. Set it before run; fn
 * NULL turns it off. fn must not call back into d.
 */
void slh_deliverer_on_attempt(struct slh_deliverer *d,
                              void (*fn)(const struct slh_attempt *a,
                                         void *arg),
                              void *arg);

/*
 * Has run call fn(text, arg) on its own thread with a line for the log
 * (no newline) when d's standing changes in a way an operator should see:
 * its owner fenced (no good beat for SLH_STORE_FENCE_MS, store.h: its
 * attempts in flight stopped, nothing claimed, and why the beat failed),
 * fenced no more, and rows of dead deliverers taken back. Set it before
 * run; fn NULL turns it off. fn must not call back into d.
 */
void slh_deliverer_on_note(struct slh_deliverer *d,
                           void (*fn)(const char *text, void *arg), void *arg);

/*
 * A deliverer writes the spool (claims, outcomes, rows given back) in
 * transactions of its own on its own connection, unless a front end that
 * has a writer thread takes those writes into its writer's transactions:
 * then each is handed to fn(task, ctx, err), which must run task (store.h)
 * inside a write transaction on the writer's connection and return once
 * that is committed (SLH_OK) or rolled back (the error). slhook.fcgi's
 * committer does, so that one connection makes every write, and fewer
 * transactions make them. Set before run; ctx must outlive every run.
 */
typedef enum slh_err (*slh_deliver_write_fn)(const struct slh_store_task *task,
                                             void *ctx, struct slh_error *err);
void slh_deliverer_write_through(struct slh_deliverer *d,
                                 slh_deliver_write_fn fn, void *ctx);

/* ---- Running ---- */

/*
 * Delivers until slh_deliverer_stop() is called or, when once is true,
 * until nothing is due any more (rows waiting on a later retry do not count).
 * Sleeps while nothing is due, waking for the next due row or
 * slh_deliverer_wake(). Idle (nothing in flight, nothing due soon), and not
 * once, it indexes stored events for lookups by MessageId, a batch at a
 * time (store.h, slh_store_index()). Returns SLH_OK, or an error that
 * stopped it.
 */
enum slh_err slh_deliverer_run(struct slh_deliverer *d, bool once,
                               struct slh_error *err);

/*
 * Indexes every event stored so far for lookups by MessageId, a batch a
 * write, until none is left, slh_deliverer_stop() is called, or a write
 * fails (best effort: lookups find unindexed events too, only slower).
 * What `deliver --once` does after its run, having no idle time of its own.
 */
void slh_deliverer_index_all(struct slh_deliverer *d);

/* New rows may be due now: wake a sleeping run. Thread-safe. */
void slh_deliverer_wake(struct slh_deliverer *d);

/* Ask run to return soon (in-flight attempts finish or are abandoned to be
 * retried). Thread-safe. */
void slh_deliverer_stop(struct slh_deliverer *d);

/*
 * Relaying yields to receiving: SocketLabs waits on every answer, the
 * destinations on nothing. A deliverer that shares the CPUs with the
 * receiving side (slhook.fcgi's delivery thread, the deliverer a CGI
 * request kicks) calls this to lower its own thread's priority by
 * SLH_DELIVER_NICE, so that when the CPUs are short the requests are
 * answered first and the relaying catches up as soon as they are not.
 * Not lower: nice +19 and SCHED_IDLE starve the relaying on busy CPUs
 * (BENCHMARKS.md, bench/contended). Best effort: a failure leaves the
 * priority as it was.
 */
#define SLH_DELIVER_NICE 10
void slh_deliver_yield_priority(void);

/* ---- One-shot curl for the command-line tool (no curl outside here) ---- */

/*
 * Posts the len bytes of body with the given Content-Type to url (http or
 * https only, TLS verified, no redirects, timeout seconds) and waits for the
 * answer, for `slhook send`. *status gets its HTTP status; *answer (answer
 * may be NULL) a new NUL-terminated copy of at most max bytes of its body
 * (free()). When no answer came (connection, TLS, timeout) the result is
 * SLH_EDELIVER with curl's reason in err, and *answer is NULL.
 */
enum slh_err slh_deliver_post(const char *url, const char *content_type,
                              const char *body, size_t len, long timeout,
                              long *status, char **answer, size_t max,
                              struct slh_error *err);

/*
 * A copy of url fit to print (slhook check): scheme://host[:port]/path,
 * with the userinfo, if any, as "***@" and every query value as "***" (an
 * item without '=' is all value), the fragment left out: a URL may carry
 * credentials in any of them. Any scheme is taken (a proxy's socks5:// too).
 * A URL curl cannot parse gives "(a URL that does not parse)", never
 * itself. A new string (free()), NULL when out of
 * memory.
 */
char *slh_deliver_url_masked(const char *url);

#endif

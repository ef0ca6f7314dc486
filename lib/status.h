/* status.h: what `slhook status` shows of a spool, the spool's part of
 * GET .../metrics (metrics.h) and the operator page's table (page_int.h),
 * computed once for all three.
 *
 * slh_status_read() gathers each destination's figures (store.h) and its
 * breaker, and the kick note (kick.h); the writers turn them into the JSON
 * of `status --json` and the Prometheus text exposition of `status
 * --prometheus`. The text table for people is the front end's.
 */
#ifndef SLH_STATUS_H
#define SLH_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "store.h"

/* The last failure of a CGI to start a deliverer, while no deliverer has
 * started since (kick.h): found false when there is none. */
struct slh_status_note {
    bool found;
    time_t when;
    char iso[32]; /* when, as 2026-12-02T14:40:12Z */
    char text[SLH_ERROR_TEXT];
};

/* One destination: a configured one, or one that has rows in the spool
 * but is no longer in the config. */
struct slh_status_row {
    const char *name; /* borrowed: from the config, or the status's own */
    const char *kind; /* "url", "file", or NULL when not configured */
    struct slh_store_stats st;
    bool has_breaker;             /* configured with one */
    struct slh_throttle_state th; /* its state in the store; zero without */
};

/* A spool's status at one moment. */
struct slh_status {
    struct slh_status_row *rows; /* owned; n of them */
    size_t n;
    struct slh_status_note note;
    int64_t now;  /* unix ms the ages are counted to */
    char **names; /* owned: the store's names the rows borrow */
    size_t n_names;
};

/*
 * Reads cfg's spool's kick note into *note (status and check show it).
 * Never fails: a note that cannot be read is none.
 */
void slh_status_note_read(const struct slh_config *cfg,
                          struct slh_status_note *note);

/*
 * Fills *s: the configured destinations in the config's order, then those
 * that only the spool sp still names (their rows stay until the
 * destination comes back: nothing delivers, retries or purges them
 * meanwhile, and a status that left them out would hide undelivered
 * events); with no spool yet (sp NULL), the configured ones with zeros.
 * Then the kick note; ages count to now_ms. cfg is borrowed and must
 * outlive *s. Release with slh_status_free(). On failure *s is left
 * zeroed, owning nothing, and err says why (SLH_ESTORE, SLH_ENOMEM).
 */
enum slh_err slh_status_read(struct slh_status *s, struct slh_store *sp,
                             const struct slh_config *cfg, int64_t now_ms,
                             struct slh_error *err);

/* Releases what s owns and zeroes it. NULL and a zeroed s are fine. */
void slh_status_free(struct slh_status *s);

/*
 * The status as `slhook status --json` prints it: {"destinations": [{name,
 * kind, configured, pending, retrying, dead, delivered, oldest_pending (RFC
 * 3339 or null), oldest_pending_seconds, last_status, last_error,
 * breaker}],
 * "deliver_start_error": {time, error} or null}. A new reference; NULL
 * when out of memory.
 */
json_t *slh_status_json(const struct slh_status *s);

/* A time (unix ms) as RFC 3339 to the second, a new JSON string; null for
 * 0. NULL when out of memory. */
json_t *slh_status_time(int64_t ms);

/*
 * Writes the status to out in the Prometheus text exposition format, as
 * `slhook status --prometheus` prints it: gauges slhook_deliveries{state},
 * slhook_deliveries_retrying, slhook_oldest_pending_age_seconds,
 * slhook_last_error_status, slhook_destination_configured,
 * slhook_deliver_start_failure_timestamp_seconds, slhook_breaker_open and
 * slhook_breaker_opened_timestamp_seconds, each with HELP and TYPE, per
 * destination (label destination). Write errors stay in out's error flag.
 */
void slh_status_prometheus(FILE *out, const struct slh_status *s);

/*
 * Writes s to out as a label value of the exposition format: backslash,
 * double quote and newline escaped, everything else as it is.
 */
void slh_prom_label(FILE *out, const char *s);

#endif

/* metrics.h: the Prometheus text exposition of GET .../metrics (web.h).
 *
 * Two sources. The spool's figures, which any process can read: per
 * destination what `slhook status` shows (status.h) and its breaker. And,
 * in a long-running process (slhook.fcgi), counters since its start: the
 * requests answered by status, the events received and stored by Type, and
 * commit and delivery latency histograms. The counters are process-wide
 * and safe to bump from any thread; a process that never bumps them (the
 * CGI) says so by writing without them.
 */
#ifndef SLH_METRICS_H
#define SLH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "err.h"
#include "event.h"

struct slh_store;

/* ---- counters (slhook.fcgi) ---- */

/* One answer given, webhook or not. A status outside 100..599 counts as
 * status "other". */
void slh_metrics_request(int status);

/* The events of a request that passed its checks (received), and whether
 * the store took them (stored: committed, duplicates included): called
 * once per batch, when its commit is over, it counts every event of batch
 * as received and, when stored, every one but a Validation event as
 * stored. Types are counted by SocketLabs' names (socketlabs.h), any case;
 * any other Type as "other". */
void slh_metrics_events(const struct slh_batch *batch, bool stored);

/* One commit: how long it took and how many events it held. Negative
 * figures count as 0. */
void slh_metrics_commit(double seconds, size_t n_events);

/* One event delivered to dest (borrowed; any text), seconds after it was
 * received. A destination's histogram is made on its first delivery and
 * kept for the life of the process; out of memory, that delivery goes
 * uncounted. */
void slh_metrics_delivered(const char *dest, double seconds);

/* ---- the exposition ---- */

/* Writes every metric to out: the spool's figures from sp (NULL: no spool
 * yet, zeros for the configured destinations) and, when has_process, the
 * counters. Every name begins slhook_, with HELP and TYPE lines; the text
 * passes `promtool check metrics`. The spool's part is status.h's
 * slh_status_prometheus(), as `slhook status --prometheus` prints it; the
 * process's adds slhook_requests_total{status},
 * slhook_events_received_total{type}, slhook_events_stored_total{type},
 * and the histograms slhook_commit_duration_seconds, slhook_commit_events
 * and slhook_delivery_latency_seconds{destination}. On failure (the
 * spool cannot be read: SLH_ESTORE, SLH_ENOMEM, before anything is
 * written; out cannot be written: SLH_EIO) err says why. */
enum slh_err slh_metrics_write(FILE *out, struct slh_store *sp,
                               const struct slh_config *cfg, bool has_process,
                               int64_t now_ms, struct slh_error *err);

#endif

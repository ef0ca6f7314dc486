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

/* One answer given, webhook or not. */
void slh_metrics_request(int status);

/* The events of a request that passed its checks (received), and whether
 * the store took them (stored: committed, duplicates included). */
void slh_metrics_events(const struct slh_batch *batch, bool stored);

/* One commit: how long it took and how many events it held. */
void slh_metrics_commit(double seconds, size_t n_events);

/* One event delivered to dest, seconds after it was received. */
void slh_metrics_delivered(const char *dest, double seconds);

/* ---- the exposition ---- */

/* Writes every metric to out: the spool's figures from sp (NULL: no spool
 * yet, zeros for the configured destinations) and, when has_process, the
 * counters. Every name begins slhook_, with HELP and TYPE lines; the text
 * passes `promtool check metrics`. */
enum slh_err slh_metrics_write(FILE *out, struct slh_store *sp,
                               const struct slh_config *cfg, bool has_process,
                               int64_t now_ms, struct slh_error *err);

#endif

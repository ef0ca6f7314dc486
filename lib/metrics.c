#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "socketlabs.h"
#include "status.h"

/*
 * Every counter is a relaxed atomic in static storage (zero is a valid
 * state for them, C11 7.17.2.1): a request thread pays one uncontended
 * add, never a lock nor an allocation. A scrape reads them one by one, so
 * two figures may be a few events apart; each stays monotonic.
 */
static void
bump(atomic_uint_least64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t
peek(const atomic_uint_least64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- requests by status ---- */

/* The number of elements of array a. */
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

#define STATUS_MIN 100
#define STATUS_MAX 599
/* One per status 100..599; the last for anything else (none is made). */
static atomic_uint_least64_t requests[STATUS_MAX - STATUS_MIN + 2];

void
slh_metrics_request(int status)
{
    size_t i = status >= STATUS_MIN && status <= STATUS_MAX
                   ? (size_t)(status - STATUS_MIN)
                   : STATUS_MAX - STATUS_MIN + 1;

    bump(&requests[i], 1);
}

/* ---- events by Type ---- */

/* SocketLabs' stored Types (socketlabs.h), then these two: a bounded set
 * of label values whatever a sender writes in Type. */
#define TYPE_VALIDATION SLH_SL_TYPES
#define TYPE_OTHER (SLH_SL_TYPES + 1)
#define N_TYPES (SLH_SL_TYPES + 2)

static atomic_uint_least64_t n_received[N_TYPES], n_stored[N_TYPES];

static const char *
type_name(size_t i)
{
    if (i < SLH_SL_TYPES)
        return slh_sl_types[i];
    return i == TYPE_VALIDATION ? SLH_SL_VALIDATION : "other";
}

static size_t
type_index(const struct slh_event *ev)
{
    int i;

    if (ev->is_validation)
        return TYPE_VALIDATION;
    if (ev->type == NULL)
        return TYPE_OTHER;
    i = slh_sl_find(slh_sl_types, SLH_SL_TYPES, ev->type, strlen(ev->type));
    return i >= 0 ? (size_t)i : TYPE_OTHER;
}

void
slh_metrics_events(const struct slh_batch *batch, bool stored)
{
    for (size_t i = 0; i < batch->n; i++) {
        const struct slh_event *ev = &batch->events[i];
        size_t t = type_index(ev);
        bump(&n_received[t], 1);
        /* The spool never keeps a Validation event. */
        if (stored && !ev->is_validation)
            bump(&n_stored[t], 1);
    }
}

/* ---- histograms ---- */

#define MAX_BUCKETS 16

/* Buckets by upper bound (le, inclusive), each counted alone: a scrape
 * adds them up. The sum is kept in whole units. */
struct hist {
    const double *le; /* n_le ascending bounds; +Inf after them */
    size_t n_le;
    double unit; /* what one unit of sum is worth */
    atomic_uint_least64_t count[MAX_BUCKETS + 1];
    atomic_uint_least64_t sum;
};

static const double commit_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,  0.05,  0.1,    0.25,  0.5,
                                   1,      2.5,   5,      10};
static const double batch_le[] = {1,   2,   5,   10,   20,   50,
                                  100, 200, 500, 1000, 2000, 5000};
/* Seconds from receipt to delivery: most within a second; retried ones
 * over hours, up to SocketLabs' days. */
static const double delivery_le[] = {0.01, 0.05, 0.1,   0.25, 0.5, 1,
                                     2.5,  5,    10,    30,   60,  300,
                                     900,  3600, 14400, 86400};

_Static_assert(N_OF(commit_le) <= MAX_BUCKETS &&
                   N_OF(batch_le) <= MAX_BUCKETS &&
                   N_OF(delivery_le) <= MAX_BUCKETS,
               "a histogram with more bounds than MAX_BUCKETS");

static struct hist commit_seconds = {
    .le = commit_le, .n_le = N_OF(commit_le), .unit = 1e-6};
static struct hist commit_events = {
    .le = batch_le, .n_le = N_OF(batch_le), .unit = 1};

static void
observe(struct hist *h, double v)
{
    size_t i = 0;

    if (!(v > 0)) /* negative (a clock set back) or NaN */
        v = 0;
    while (i < h->n_le && v > h->le[i])
        i++;
    bump(&h->count[i], 1);
    bump(&h->sum, (uint64_t)(v / h->unit + 0.5));
}

void
slh_metrics_commit(double seconds, size_t n_events)
{
    observe(&commit_seconds, seconds);
    observe(&commit_events, (double)n_events);
}

/* ---- delivery latency by destination ---- */

/*
 * A list of destinations in name order, grown as deliveries name new ones
 * and never shrunk: a process delivers to the few its config names. It is
 * read without a lock (each link published with release order, after the
 * node is complete); nodes are added under dests_mu, and live as long as
 * the process.
 */
struct dest_hist {
    _Atomic(struct dest_hist *) next;
    struct hist h;
    char name[]; /* NUL-terminated */
};

static _Atomic(struct dest_hist *) dests;
static pthread_mutex_t dests_mu = PTHREAD_MUTEX_INITIALIZER;

static struct dest_hist *
dest_find(const char *name, _Atomic(struct dest_hist *) **link)
{
    _Atomic(struct dest_hist *) *at = &dests;
    struct dest_hist *d;

    for (d = atomic_load_explicit(at, memory_order_acquire); d != NULL;
         d = atomic_load_explicit(at, memory_order_acquire)) {
        int cmp = strcmp(d->name, name);
        if (cmp == 0)
            return d;
        if (cmp > 0)
            break;
        at = &d->next;
    }
    if (link != NULL)
        *link = at;
    return NULL;
}

/* dest's histogram, made on its first delivery; NULL when out of memory
 * (that delivery goes uncounted). */
static struct hist *
dest_hist(const char *dest)
{
    _Atomic(struct dest_hist *) *link;
    struct dest_hist *d = dest_find(dest, NULL);
    size_t len;

    if (d != NULL)
        return &d->h;
    pthread_mutex_lock(&dests_mu);
    d = dest_find(dest, &link);
    if (d == NULL) {
        len = strlen(dest);
        d = calloc(1, sizeof(*d) + len + 1);
        if (d != NULL) {
            d->h.le = delivery_le;
            d->h.n_le = N_OF(delivery_le);
            d->h.unit = 1e-6;
            memcpy(d->name, dest, len + 1);
            atomic_init(&d->next, atomic_load(link));
            atomic_store_explicit(link, d, memory_order_release);
        }
    }
    pthread_mutex_unlock(&dests_mu);
    return d != NULL ? &d->h : NULL;
}

void
slh_metrics_delivered(const char *dest, double seconds)
{
    struct hist *h = dest_hist(dest);

    if (h != NULL)
        observe(h, seconds);
}

/* ---- the exposition ---- */

static void
family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{destination="dest",le="..."}: the labels of one bucket line, dest
 * NULL for none. */
static void
bucket_labels(FILE *out, const char *name, const char *dest)
{
    fprintf(out, "%s_bucket{", name);
    if (dest != NULL) {
        fputs("destination=\"", out);
        slh_prom_label(out, dest);
        fputs("\",", out);
    }
}

/* The sample lines of histogram h: cumulative buckets, +Inf, sum and
 * count, with dest as a label when not NULL. */
static void
hist_write(FILE *out, const char *name, const char *dest, const struct hist *h)
{
    uint64_t total = 0;

    for (size_t i = 0; i <= h->n_le; i++) {
        total += peek(&h->count[i]);
        bucket_labels(out, name, dest);
        if (i < h->n_le)
            fprintf(out, "le=\"%g\"} %llu\n", h->le[i],
                    (unsigned long long)total);
        else
            fprintf(out, "le=\"+Inf\"} %llu\n", (unsigned long long)total);
    }
    for (int k = 0; k < 2; k++) {
        fprintf(out, "%s_%s", name, k == 0 ? "sum" : "count");
        if (dest != NULL) {
            fputs("{destination=\"", out);
            slh_prom_label(out, dest);
            fputs("\"}", out);
        }
        if (k == 0)
            fprintf(out, " %.15g\n", (double)peek(&h->sum) * h->unit);
        else
            fprintf(out, " %llu\n", (unsigned long long)total);
    }
}

static void
requests_write(FILE *out)
{
    family(out, "slhook_requests_total", "counter",
           "Requests answered since the process started, by HTTP status.");
    for (size_t i = 0; i < N_OF(requests); i++) {
        uint64_t n = peek(&requests[i]);
        if (n == 0)
            continue;
        if (i <= STATUS_MAX - STATUS_MIN)
            fprintf(out, "slhook_requests_total{status=\"%d\"} %llu\n",
                    (int)i + STATUS_MIN, (unsigned long long)n);
        else
            fprintf(out, "slhook_requests_total{status=\"other\"} %llu\n",
                    (unsigned long long)n);
    }
}

static void
events_write(FILE *out)
{
    family(out, "slhook_events_received_total", "counter",
           "Events of requests that passed their checks since the process "
           "started, by Type (other: not a SocketLabs Type).");
    for (size_t i = 0; i < N_TYPES; i++)
        fprintf(out, "slhook_events_received_total{type=\"%s\"} %llu\n",
                type_name(i), (unsigned long long)peek(&n_received[i]));
    family(out, "slhook_events_stored_total", "counter",
           "Events committed to the spool since the process started "
           "(duplicates included), by Type.");
    for (size_t i = 0; i < N_TYPES; i++)
        if (i != TYPE_VALIDATION)
            fprintf(out, "slhook_events_stored_total{type=\"%s\"} %llu\n",
                    type_name(i), (unsigned long long)peek(&n_stored[i]));
}

static void
process_write(FILE *out)
{
    requests_write(out);
    events_write(out);
    family(out, "slhook_commit_duration_seconds", "histogram",
           "Time to commit one group of requests' events to the spool "
           "(one transaction, fsync'd).");
    hist_write(out, "slhook_commit_duration_seconds", NULL, &commit_seconds);
    family(out, "slhook_commit_events", "histogram",
           "Events stored per group commit.");
    hist_write(out, "slhook_commit_events", NULL, &commit_events);
    family(out, "slhook_delivery_latency_seconds", "histogram",
           "Seconds from an event's receipt to its delivery, per "
           "destination, for deliveries made by this process.");
    for (const struct dest_hist *d =
             atomic_load_explicit(&dests, memory_order_acquire);
         d != NULL; d = atomic_load_explicit(&d->next, memory_order_acquire))
        hist_write(out, "slhook_delivery_latency_seconds", d->name, &d->h);
}

enum slh_err
slh_metrics_write(FILE *out, struct slh_store *sp, const struct slh_config *cfg,
                  bool has_process, int64_t now_ms, struct slh_error *err)
{
    struct slh_status s;
    enum slh_err rc = slh_status_read(&s, sp, cfg, now_ms, err);

    if (rc != SLH_OK)
        return rc;
    slh_status_prometheus(out, &s);
    slh_status_free(&s);
    if (has_process)
        process_write(out);
    if (fflush(out) != 0 || ferror(out))
        return slh_error_set(err, SLH_EIO, "cannot write the metrics");
    return SLH_OK;
}

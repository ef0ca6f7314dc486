/* page_int.h: inside the operator's page (page.h), between page.c (paths,
 * parameters, answers) and page_api.c (the JSON it reads from the store).
 *
 * Each function returns a new JSON value, or NULL with err saying why:
 * SLH_EINVAL (a bad argument: 400), SLH_ENOTFOUND (404), anything else
 * the server's (503). sp NULL is a spool not made yet: nothing stored.
 */
#ifndef SLH_PAGE_INT_H
#define SLH_PAGE_INT_H

#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "store.h"

#define SLH_PAGE_HOURS 3      /* the chart's default span */
#define SLH_PAGE_HOURS_MAX 24 /* and its longest */
#define SLH_PAGE_FAILURES 20  /* the latest failures shown */
#define SLH_PAGE_FOUND 20     /* events a search lists at most */
#define SLH_PAGE_SCAN 100000  /* newest events an Address search reads */
#define SLH_PAGE_BACK_MS                                                       \
    3600000 /* the chart counts deliveries of events                           \
               received this long before its span */

/* `slhook status --json`'s document (status.h), with "now": when it was
 * read, RFC 3339. */
json_t *slh_page_status(const struct slh_config *cfg, struct slh_store *sp,
                        int64_t now, struct slh_error *err);

/* {"t": [unix s], "received": [...], "delivered": [...], ...}: one entry a
 * minute for hours hours up to now's minute. */
json_t *slh_page_chart(struct slh_store *sp, int hours, int64_t now,
                       struct slh_error *err);

/* {"events": [...]}: events with a dead or retrying row, newest first. */
json_t *slh_page_failures(struct slh_store *sp, struct slh_error *err);

/* {"query", "by", "events": [...], "address_scan"}: q as an event id or
 * its prefix, else a MessageId, else an Address (the newest SLH_PAGE_SCAN
 * events only). */
json_t *slh_page_search(struct slh_store *sp, const char *q,
                        struct slh_error *err);

/* {"event": {..., "body": "..."}}: the event id (or a prefix) names. */
json_t *slh_page_event(struct slh_store *sp, const char *id,
                       struct slh_error *err);

#endif

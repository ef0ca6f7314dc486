/* page_api.c: the JSON the operator's page reads (page_int.h), from the
 * store's own reading functions and view.c's event object. */
#include "page_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "view.h"

#define MINUTE_MS 60000

/* Sets key of o to v (stolen); false when v is NULL or out of memory. */
static bool
put(json_t *o, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(o, key, v) == 0;
}

static json_t *
oom(struct slh_error *err)
{
    slh_error_set(err, SLH_ENOMEM, "out of memory");
    return NULL;
}

/* `slhook status --json`'s document (status.h), and when it was read. */
json_t *
slh_page_status(const struct slh_config *cfg, struct slh_store *sp, int64_t now,
                struct slh_error *err)
{
    struct slh_status s;
    json_t *o;

    if (slh_status_read(&s, sp, cfg, now, err) != SLH_OK)
        return NULL;
    o = slh_status_json(&s);
    slh_status_free(&s);
    if (o == NULL || json_object_set_new(o, "now", slh_status_time(now)) != 0) {
        json_decref(o);
        return oom(err);
    }
    return o;
}

/* n integers as a new JSON array (each * scale + offset). */
static json_t *
int_array(const int64_t *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, json_integer(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *
slh_page_chart(struct slh_store *sp, int hours, int64_t now,
               struct slh_error *err)
{
    size_t n = (size_t)hours * 60;
    int64_t since = (now / MINUTE_MS - (int64_t)n + 1) * MINUTE_MS;
    int64_t *v = calloc(3 * n, sizeof(*v)); /* t, received, delivered */
    json_t *o = NULL;

    if (v == NULL)
        return oom(err);
    for (size_t i = 0; i < n; i++)
        v[i] = since / 1000 + (int64_t)i * 60;
    if (sp != NULL && slh_store_minutes(sp, since, n, since - SLH_PAGE_BACK_MS,
                                        v + n, v + 2 * n, err) != SLH_OK)
        goto out;
    o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:s}", "since",
                  slh_status_time(since), "delivered_since",
                  slh_status_time(since - SLH_PAGE_BACK_MS), "t",
                  int_array(v, n), "received", int_array(v + n, n), "delivered",
                  int_array(v + 2 * n, n), "note",
                  "delivered: deliveries (one a destination) of events "
                  "received since delivered_since");
    if (o == NULL)
        oom(err);
out:
    free(v);
    return o;
}

/* {"events": [...]} of evs[0..n), each view.c's object; with body, the
 * stored body too. */
static json_t *
events_json(const struct slh_store_event *evs, size_t n, bool with_body,
            struct slh_error *err)
{
    json_t *list = json_array();

    for (size_t i = 0; list != NULL && i < n; i++) {
        json_t *o = slh_view_object(&evs[i]);
        if (o == NULL ||
            (with_body && !put(o, "body", json_string(evs[i].body))) ||
            json_array_append_new(list, o) != 0) {
            json_decref(o);
            json_decref(list);
            list = NULL;
        }
    }
    return list != NULL ? json_pack("{s:o}", "events", list) : oom(err);
}

/* Newest first, as the store lists them. */
static bool
is_newer(const struct slh_store_event *a, const struct slh_store_event *b)
{
    return a->received != b->received ? a->received > b->received
                                      : a->seq > b->seq;
}

/* Dead letters and retrying rows, each list newest first, merged. */
json_t *
slh_page_failures(struct slh_store *sp, struct slh_error *err)
{
    struct slh_store_filter dead = {.states = 1u << SLH_DEAD,
                                    .limit = SLH_PAGE_FAILURES};
    struct slh_store_filter retrying = {.states = 1u << SLH_PENDING,
                                        .is_retrying = true,
                                        .limit = SLH_PAGE_FAILURES};
    struct slh_store_event *a = NULL, *b = NULL, *out;
    size_t na = 0, nb = 0, i = 0, j = 0, n = 0;
    json_t *o = NULL;

    if (sp == NULL)
        return events_json(NULL, 0, false, err);
    out = calloc(SLH_PAGE_FAILURES, sizeof(*out)); /* borrowed copies */
    if (out == NULL)
        return oom(err);
    if (slh_store_events(sp, &dead, &a, &na, err) != SLH_OK ||
        slh_store_events(sp, &retrying, &b, &nb, err) != SLH_OK)
        goto out;
    /* An event both dead for one destination and retrying for another is
     * in both lists: shown once. */
    while (n < SLH_PAGE_FAILURES && (i < na || j < nb)) {
        bool take_a = j == nb || (i < na && !is_newer(&b[j], &a[i]));
        const struct slh_store_event *e = take_a ? &a[i++] : &b[j++];
        if (n == 0 || out[n - 1].seq != e->seq)
            out[n++] = *e;
    }
    o = events_json(out, n, false, err);
out:
    free(out);
    slh_store_events_free(a, na);
    slh_store_events_free(b, nb);
    return o;
}

/* Whether q can be an event id or its prefix (lowercased into id). */
static bool
as_id(const char *q, char *id, size_t size)
{
    size_t len = strlen(q);

    if (len < SLH_STORE_PREFIX_MIN || len > SLH_EVENT_ID_LEN || len >= size)
        return false;
    for (size_t i = 0; i <= len; i++)
        id[i] = (char)tolower((unsigned char)q[i]);
    return strspn(id, "0123456789abcdef") == len;
}

/* The events f lists into *o as {"events"}, with "by": by added; *o stays
 * NULL when there are none. */
static enum slh_err
search_by(struct slh_store *sp, const struct slh_store_filter *f,
          const char *by, json_t **o, struct slh_error *err)
{
    struct slh_store_event *evs = NULL;
    size_t n = 0;
    enum slh_err rc = slh_store_events(sp, f, &evs, &n, err);

    if (rc == SLH_OK && n > 0) {
        *o = events_json(evs, n, false, err);
        if (*o == NULL || !put(*o, "by", json_string(by)))
            rc = err->code != SLH_OK ? err->code : SLH_ENOMEM;
    }
    slh_store_events_free(evs, n);
    return rc;
}

/* An id or prefix into *o, when q is one and names one event. */
static enum slh_err
search_id(struct slh_store *sp, const char *q, json_t **o,
          struct slh_error *err)
{
    struct slh_store_event ev;
    struct slh_error ignored = {0};
    char id[SLH_EVENT_ID_LEN + 1];
    enum slh_err rc;

    if (!as_id(q, id, sizeof(id)))
        return SLH_OK;
    rc = slh_store_event(sp, id, &ev, &ignored);
    if (rc == SLH_OK) {
        *o = events_json(&ev, 1, false, err);
        if (*o == NULL || !put(*o, "by", json_string("id")))
            rc = SLH_ENOMEM;
    } else if (rc == SLH_ENOTFOUND || rc == SLH_EINVAL) {
        rc = SLH_OK; /* not an id after all, or ambiguous: go on */
    } else {
        *err = ignored;
    }
    slh_store_event_free(&ev);
    return rc;
}

json_t *
slh_page_search(struct slh_store *sp, const char *q, struct slh_error *err)
{
    struct slh_store_filter mid = {.message_id = q, .limit = SLH_PAGE_FOUND};
    struct slh_store_filter addr = {
        .address = q, .scan = SLH_PAGE_SCAN, .limit = SLH_PAGE_FOUND};
    json_t *o = NULL;
    enum slh_err rc = SLH_OK;

    if (q[0] == '\0') {
        slh_error_set(err, SLH_EINVAL,
                      "search: give an event id, a "
                      "MessageId or an Address");
        return NULL;
    }
    if (sp != NULL)
        rc = search_id(sp, q, &o, err);
    if (sp != NULL && rc == SLH_OK && o == NULL)
        rc = search_by(sp, &mid, "message_id", &o, err);
    if (sp != NULL && rc == SLH_OK && o == NULL)
        rc = search_by(sp, &addr, "address", &o, err);
    if (rc == SLH_OK && o == NULL &&
        (o = json_pack("{s:[], s:n}", "events", "by")) == NULL)
        rc = SLH_ENOMEM;
    if (rc == SLH_OK && (!put(o, "query", json_string(q)) ||
                         !put(o, "address_scan", json_integer(SLH_PAGE_SCAN))))
        rc = SLH_ENOMEM;
    if (rc != SLH_OK) {
        if (err->code == SLH_OK)
            oom(err);
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *
slh_page_event(struct slh_store *sp, const char *id, struct slh_error *err)
{
    struct slh_store_event ev;
    char lower[SLH_EVENT_ID_LEN + 1];
    json_t *o = NULL, *list;

    if (!as_id(id, lower, sizeof(lower))) {
        slh_error_set(err, SLH_EINVAL,
                      "event id: give at least %d hex "
                      "characters",
                      SLH_STORE_PREFIX_MIN);
        return NULL;
    }
    if (sp == NULL) {
        slh_error_set(err, SLH_ENOTFOUND, "no event %s", lower);
        return NULL;
    }
    if (slh_store_event(sp, lower, &ev, err) != SLH_OK)
        return NULL;
    list = events_json(&ev, 1, true, err);
    if (list != NULL) {
        o = json_pack("{s:O}", "event",
                      json_array_get(json_object_get(list, "events"), 0));
        if (o == NULL)
            oom(err);
    }
    json_decref(list);
    slh_store_event_free(&ev);
    return o;
}

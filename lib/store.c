#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store_backend.h"

/* The backends, asked in turn whether a spool string is theirs; the last
 * one takes any other (a directory: SQLite). A new backend goes first. */
extern const struct slh_store_ops slh_store_sqlite_ops; /* store_sqlite.c */
/* store_pg.c, or in slhook.cgi store_pg_none.c (Makefile) */
extern const struct slh_store_ops slh_store_pg_ops;

static const struct slh_store_ops *const backends[] = {
    &slh_store_pg_ops,
    &slh_store_sqlite_ops,
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

#define NO_HANDLE(err) slh_error_set(err, SLH_EINVAL, "spool: no handle")

/* Overlong forms, surrogates and beyond U+10FFFF count as invalid, as
 * Jansson and JSON readers refuse them. last_error is written through this,
 * and read through it too, for spools written before. */
void
slh_store_utf8_mend(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p != '\0') {
        unsigned char lo = 0x80, hi = 0xbf;
        size_t n, k;

        if (*p < 0x80) {
            p++;
            continue;
        }
        if (*p >= 0xc2 && *p <= 0xdf)
            n = 2;
        else if (*p >= 0xe0 && *p <= 0xef)
            n = 3;
        else if (*p >= 0xf0 && *p <= 0xf4)
            n = 4;
        else
            n = 0;
        if (*p == 0xe0)
            lo = 0xa0;
        else if (*p == 0xed)
            hi = 0x9f;
        else if (*p == 0xf0)
            lo = 0x90;
        else if (*p == 0xf4)
            hi = 0x8f;
        for (k = 1; k < n; k++) {
            if (p[k] < (k == 1 ? lo : 0x80) || p[k] > (k == 1 ? hi : 0xbf))
                break;
        }
        if (n > 0 && k == n) {
            p += n;
        } else if (n > 0 && p[k] == '\0') {
            *p = '\0'; /* cut off mid-character */
        } else {
            *p++ = '?';
        }
    }
}

bool
slh_store_replay_wants(const struct slh_store_replay *r, const char *type,
                       int tracking)
{
    bool is_type = r->n_types == 0;

    for (size_t i = 0; !is_type && i < r->n_types; i++)
        is_type = strcasecmp(r->types[i], type) == 0;
    return is_type && slh_dest_wants(r->dest, type, tracking);
}

int64_t
slh_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The userinfo's password of a URI (scheme://user:PASSWORD@host/...):
 * *from its first character, *to the '@' after it; false when none. */
static bool
userinfo_password(const char *uri, const char **from, const char **to)
{
    const char *auth = strstr(uri, "://");
    const char *end, *at = NULL, *colon;

    auth = auth != NULL ? auth + 3 : uri;
    end = auth + strcspn(auth, "/?#");
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon == NULL)
        return false;
    *from = colon + 1;
    *to = at;
    return true;
}

char *
slh_store_mask(const char *spool)
{
    const char *uri = spool;
    size_t len = strlen(uri), o = 0, i = 0;
    /* Each password becomes ***: at most one userinfo and len / 9
     * password= parameters, each 3 bytes longer at most. */
    char *out = malloc(len * 2 + 8);
    const char *from = NULL, *to = NULL;
    bool has_userinfo = userinfo_password(uri, &from, &to);

    if (out == NULL)
        return NULL;
    while (uri[i] != '\0') {
        if (has_userinfo && uri + i == from) {
            /* Once: an empty password (user:@host) leaves i where it
             * was, at from. */
            has_userinfo = false;
            memcpy(out + o, "***", 3);
            o += 3;
            i = (size_t)(to - uri);
            continue;
        }
        if (i > 0 && (uri[i - 1] == '?' || uri[i - 1] == '&') &&
            strncmp(uri + i, "password=", 9) == 0) {
            memcpy(out + o, "password=***", 12);
            o += 12;
            i += 9 + strcspn(uri + i + 9, "&#");
            continue;
        }
        out[o++] = uri[i++];
    }
    out[o] = '\0';
    return out;
}

/* The backend whose spool string spool is. */
static const struct slh_store_ops *
backend_of(const char *spool)
{
    size_t i = 0;

    while (i + 1 < N_BACKENDS && !backends[i]->is_mine(spool))
        i++;
    return backends[i];
}

enum slh_err
slh_store_open(struct slh_store **out, const char *spool,
               enum slh_store_create how, struct slh_error *err)
{
    if (out == NULL)
        return NO_HANDLE(err);
    *out = NULL;
    if (spool == NULL || *spool == '\0')
        return slh_error_set(err, SLH_EINVAL, "spool: no directory");
    return backend_of(spool)->open(out, spool, how, err);
}

bool
slh_store_is_local(const char *spool)
{
    return spool != NULL && backend_of(spool)->is_local;
}

enum slh_err
slh_store_describe(struct slh_store *st, char *buf, size_t size,
                   struct slh_error *err)
{
    if (size > 0)
        buf[0] = '\0';
    return st != NULL ? st->ops->describe(st, buf, size, err) : NO_HANDLE(err);
}

void
slh_store_close(struct slh_store *st)
{
    if (st != NULL)
        st->ops->close(st);
}

const char *
slh_store_where(const struct slh_store *st)
{
    return st != NULL ? st->ops->where(st) : "";
}

enum slh_err
slh_store_verify(struct slh_store *st, struct slh_error *err)
{
    return st != NULL ? st->ops->verify(st, err) : NO_HANDLE(err);
}

enum slh_err
slh_store_health(struct slh_store *st, struct slh_error *err)
{
    return st != NULL ? st->ops->health(st, err) : NO_HANDLE(err);
}

bool
slh_store_is_replaced(struct slh_store *st)
{
    return st != NULL && st->ops->is_replaced(st);
}

enum slh_err
slh_store_role(struct slh_store *st, enum slh_store_role role,
               struct slh_error *err)
{
    return st != NULL ? st->ops->role(st, role, err) : NO_HANDLE(err);
}

void
slh_store_on_note(struct slh_store *st,
                  void (*note)(void *ctx, const char *text), void *ctx)
{
    if (st != NULL)
        st->ops->on_note(st, note, ctx);
}

enum slh_err
slh_store_put(struct slh_store *st, const struct slh_config *cfg,
              const struct slh_batch *const *batches, size_t n, int64_t now_ms,
              size_t *n_new, struct slh_error *err)
{
    return slh_store_put_tasks(st, cfg, batches, n, NULL, 0, now_ms, n_new,
                               err);
}

enum slh_err
slh_store_put_tasks(struct slh_store *st, const struct slh_config *cfg,
                    const struct slh_batch *const *batches, size_t n,
                    const struct slh_store_task *tasks, size_t n_tasks,
                    int64_t now_ms, size_t *n_new, struct slh_error *err)
{
    if (n_new != NULL)
        *n_new = 0;
    if (st == NULL || cfg == NULL || (n > 0 && batches == NULL) ||
        (n_tasks > 0 && tasks == NULL))
        return slh_error_set(err, SLH_EINVAL, "spool: bad arguments");
    return st->ops->put_tasks(st, cfg, batches, n, tasks, n_tasks, now_ms,
                              n_new, err);
}

enum slh_err
slh_store_owner_open(struct slh_store *st, struct slh_store_owner **out,
                     struct slh_error *err)
{
    *out = NULL;
    return st != NULL ? st->ops->owner_open(st, out, err) : NO_HANDLE(err);
}

int64_t
slh_store_owner_token(const struct slh_store_owner *o)
{
    return o != NULL ? o->token : 0;
}

void
slh_store_owner_close(struct slh_store_owner *o)
{
    if (o != NULL)
        o->close(o);
}

enum slh_err
slh_store_take_back(struct slh_store *st, int64_t self, int64_t now_ms,
                    size_t *taken, struct slh_error *err)
{
    if (taken != NULL)
        *taken = 0;
    return st != NULL ? st->ops->take_back(st, self, now_ms, taken, err)
                      : NO_HANDLE(err);
}

enum slh_err
slh_store_owner_beat(struct slh_store *st, struct slh_store_owner *o,
                     int64_t now_ms, bool is_fresh, struct slh_error *err)
{
    if (st == NULL)
        return NO_HANDLE(err);
    if (o == NULL)
        return SLH_OK;
    return st->ops->owner_beat(st, o, now_ms, is_fresh, err);
}

enum slh_err
slh_store_claim(struct slh_store *st, const char *dest, int64_t owner,
                int64_t now_ms, int64_t lease_ms, size_t max,
                struct slh_claim *claims, size_t *n, int64_t *next_due,
                struct slh_error *err)
{
    *n = 0;
    if (next_due != NULL)
        *next_due = INT64_MAX;
    if (st == NULL)
        return NO_HANDLE(err);
    return st->ops->claim(st, dest, owner, now_ms, lease_ms, max, claims, n,
                          next_due, err);
}

void
slh_store_claim_free(struct slh_claim *c)
{
    if (c == NULL)
        return;
    free(c->body);
    memset(c, 0, sizeof(*c));
}

enum slh_err
slh_store_finish(struct slh_store *st, const struct slh_outcome *o, size_t n,
                 int64_t now_ms, struct slh_error *err)
{
    if (n == 0)
        return SLH_OK;
    return st != NULL ? st->ops->finish(st, o, n, now_ms, err) : NO_HANDLE(err);
}

enum slh_err
slh_store_unclaim(struct slh_store *st, const char *dest, const int64_t *seqs,
                  size_t n, int64_t now_ms, struct slh_error *err)
{
    if (n == 0)
        return SLH_OK;
    return st != NULL ? st->ops->unclaim(st, dest, seqs, n, now_ms, err)
                      : NO_HANDLE(err);
}

enum slh_err
slh_store_next_due(struct slh_store *st, const char *dest, int64_t *due,
                   struct slh_error *err)
{
    *due = INT64_MAX;
    return st != NULL ? st->ops->next_due(st, dest, due, err) : NO_HANDLE(err);
}

enum slh_err
slh_store_stats(struct slh_store *st, const char *dest,
                struct slh_store_stats *s, struct slh_error *err)
{
    memset(s, 0, sizeof(*s));
    return st != NULL ? st->ops->stats(st, dest, s, err) : NO_HANDLE(err);
}

enum slh_err
slh_store_retry(struct slh_store *st, const char *dest, int64_t now_ms,
                size_t *n, struct slh_error *err)
{
    if (n != NULL)
        *n = 0;
    return st != NULL ? st->ops->retry(st, dest, now_ms, n, err)
                      : NO_HANDLE(err);
}

enum slh_err
slh_store_purge(struct slh_store *st, int64_t cutoff_ms, size_t *n,
                struct slh_error *err)
{
    if (n != NULL)
        *n = 0;
    return st != NULL ? st->ops->purge(st, cutoff_ms, n, err) : NO_HANDLE(err);
}

enum slh_err
slh_store_purge_due(struct slh_store *st, int64_t every_ms, int64_t now_ms,
                    bool *is_due, struct slh_error *err)
{
    *is_due = false;
    return st != NULL ? st->ops->purge_due(st, every_ms, now_ms, is_due, err)
                      : NO_HANDLE(err);
}

enum slh_err
slh_store_dests(struct slh_store *st, char ***names, size_t *n,
                struct slh_error *err)
{
    *names = NULL;
    *n = 0;
    return st != NULL ? st->ops->dests(st, names, n, err) : NO_HANDLE(err);
}

void
slh_store_dests_free(char **names, size_t n)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int64_t
slh_store_data_version(struct slh_store *st)
{
    return st != NULL ? st->ops->data_version(st) : 0;
}

enum slh_err
slh_store_events(struct slh_store *st, const struct slh_store_filter *f,
                 struct slh_store_event **events, size_t *n,
                 struct slh_error *err)
{
    static const struct slh_store_filter any = {0};

    *events = NULL;
    *n = 0;
    if (st == NULL)
        return NO_HANDLE(err);
    return st->ops->events(st, f != NULL ? f : &any, events, n, err);
}

void
slh_store_event_free(struct slh_store_event *ev)
{
    if (ev == NULL)
        return;
    for (size_t i = 0; ev->rows != NULL && i < ev->n_rows; i++)
        free(ev->rows[i].dest);
    free(ev->rows);
    free(ev->type);
    free(ev->body);
    memset(ev, 0, sizeof(*ev));
}

enum slh_err
slh_store_events_out(struct slh_store_event *out, size_t *n, enum slh_err rc,
                     struct slh_store_event **events)
{
    if (rc != SLH_OK) {
        slh_store_events_free(out, *n);
        *n = 0;
        return rc;
    }
    *events = out;
    return SLH_OK;
}

void
slh_store_events_free(struct slh_store_event *events, size_t n)
{
    if (events == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        slh_store_event_free(&events[i]);
    free(events);
}

enum slh_err
slh_store_event(struct slh_store *st, const char *id,
                struct slh_store_event *ev, struct slh_error *err)
{
    size_t len = id != NULL ? strlen(id) : 0;

    memset(ev, 0, sizeof(*ev));
    if (st == NULL)
        return NO_HANDLE(err);
    if (len < SLH_STORE_PREFIX_MIN || len > SLH_EVENT_ID_LEN ||
        strspn(id, "0123456789abcdef") != len)
        return slh_error_set(err, SLH_EINVAL,
                             "event id %s: give at least %d hex characters",
                             id != NULL ? id : "", SLH_STORE_PREFIX_MIN);
    return st->ops->event(st, id, ev, err);
}

enum slh_err
slh_store_requeue(struct slh_store *st, const struct slh_store_replay *r,
                  int64_t now_ms, size_t *n, struct slh_error *err)
{
    if (n != NULL)
        *n = 0;
    if (st == NULL || r == NULL || r->dest == NULL)
        return NO_HANDLE(err);
    return st->ops->requeue(st, r, now_ms, n, err);
}

enum slh_err
slh_store_index(struct slh_store *st, size_t max, size_t *n,
                struct slh_error *err)
{
    *n = 0;
    return st != NULL ? st->ops->index(st, max, n, err) : NO_HANDLE(err);
}

enum slh_err
slh_store_minutes(struct slh_store *st, int64_t since_ms, size_t n,
                  int64_t from_ms, int64_t *received, int64_t *delivered,
                  struct slh_error *err)
{
    enum slh_err rc;

    memset(received, 0, n * sizeof(*received));
    memset(delivered, 0, n * sizeof(*delivered));
    if (st == NULL)
        return NO_HANDLE(err);
    rc = st->ops->minutes(st, since_ms, n, from_ms, received, delivered, err);
    if (rc != SLH_OK) {
        memset(received, 0, n * sizeof(*received));
        memset(delivered, 0, n * sizeof(*delivered));
    }
    return rc;
}

enum slh_err
slh_store_throttle_get(struct slh_store *st, const char *dest,
                       struct slh_throttle_state *s, struct slh_error *err)
{
    memset(s, 0, sizeof(*s));
    if (st == NULL || dest == NULL)
        return NO_HANDLE(err);
    return st->ops->throttle_get(st, dest, s, err);
}

enum slh_err
slh_store_throttle_put(struct slh_store *st, const char *dest,
                       const struct slh_throttle_state *s,
                       struct slh_error *err)
{
    if (st == NULL || dest == NULL || s == NULL)
        return NO_HANDLE(err);
    return st->ops->throttle_put(st, dest, s, err);
}

enum slh_err
slh_store_expire(struct slh_store *st, const char *dest, int64_t max_age,
                 int64_t now_ms, const char *why, size_t *n,
                 struct slh_error *err)
{
    if (n != NULL)
        *n = 0;
    if (st == NULL || dest == NULL)
        return NO_HANDLE(err);
    return st->ops->expire(st, dest, max_age, now_ms, why != NULL ? why : "", n,
                           err);
}

enum slh_err
slh_store_export(struct slh_store *st, int64_t after, size_t max,
                 struct slh_store_event **events, size_t *n,
                 struct slh_error *err)
{
    *events = NULL;
    *n = 0;
    if (st == NULL)
        return NO_HANDLE(err);
    if (max == 0)
        return slh_error_set(err, SLH_EINVAL, "export: no room for events");
    return st->ops->export_events(st, after, max, events, n, err);
}

/* What no backend can store: an event or a row missing what identifies
 * it, a state that is none. */
static enum slh_err
import_check(const struct slh_store_event *events, size_t n,
             struct slh_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct slh_store_event *ev = &events[i];

        if (strlen(ev->id) != SLH_EVENT_ID_LEN || ev->type == NULL ||
            ev->body == NULL || (ev->n_rows > 0 && ev->rows == NULL))
            return slh_error_set(err, SLH_EINVAL,
                                 "import: event %zu has no id, type or body",
                                 i);
        for (size_t k = 0; k < ev->n_rows; k++)
            if (ev->rows[k].dest == NULL || ev->rows[k].state < SLH_PENDING ||
                ev->rows[k].state > SLH_DEAD)
                return slh_error_set(err, SLH_EINVAL,
                                     "import: event %s: a row without a "
                                     "destination or with state %d",
                                     ev->id, ev->rows[k].state);
    }
    return SLH_OK;
}

bool
slh_store_row_error(const struct slh_store_row *r, char *error)
{
    if (r->last_error[0] == '\0' && !r->is_retrying)
        return false;
    snprintf(error, SLH_STORE_ERROR_LEN, "%s", r->last_error);
    slh_store_utf8_mend(error);
    return true;
}

bool
slh_store_row_done(const struct slh_store_row *r, int64_t *done)
{
    *done = r->state != SLH_PENDING ? r->due : r->revived;
    return *done != 0 || r->state != SLH_PENDING;
}

enum slh_err
slh_store_import(struct slh_store *st, const struct slh_store_event *events,
                 size_t n, size_t *n_new, struct slh_error *err)
{
    enum slh_err rc;

    if (n_new != NULL)
        *n_new = 0;
    if (st == NULL || (n > 0 && events == NULL))
        return NO_HANDLE(err);
    if (n == 0)
        return SLH_OK;
    rc = import_check(events, n, err);
    return rc == SLH_OK ? st->ops->import_events(st, events, n, n_new, err)
                        : rc;
}

enum slh_err
slh_store_owners_alive(struct slh_store *st, int64_t self, size_t *n,
                       struct slh_error *err)
{
    *n = 0;
    return st != NULL ? st->ops->owners_alive(st, self, n, err)
                      : NO_HANDLE(err);
}

#include "status.h"

#include <stdlib.h>
#include <string.h>

#include "kick.h"
#include "when.h"

void
slh_prom_label(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

static void
prom_header(FILE *out, const char *name, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void
prom_sample(FILE *out, const char *name, const char *dest, const char *state,
            double v)
{
    fprintf(out, "%s{destination=\"", name);
    slh_prom_label(out, dest);
    if (state != NULL)
        fprintf(out, "\",state=\"%s", state);
    fprintf(out, "\"} %.15g\n", v);
}

void
slh_status_note_read(const struct slh_config *cfg, struct slh_status_note *note)
{
    memset(note, 0, sizeof(*note));
    note->found = slh_kick_failure(cfg->spool, &note->when, note->text,
                                   sizeof(note->text));
    if (note->found)
        slh_when_format((int64_t)note->when * 1000, false, note->iso,
                        sizeof(note->iso));
}

/* Each destination's breaker, for the exposition format. */
static void
prometheus_breakers(FILE *out, const struct slh_status_row *rows, size_t n)
{
    prom_header(out, "slhook_breaker_open",
                "1 while the destination's circuit breaker is open (one "
                "probe at a time), 0 when closed or none is configured.");
    for (size_t i = 0; i < n; i++)
        prom_sample(out, "slhook_breaker_open", rows[i].name, NULL,
                    rows[i].th.opened != 0 ? 1.0 : 0.0);
    prom_header(out, "slhook_breaker_opened_timestamp_seconds",
                "When the open circuit breaker opened, 0 when closed.");
    for (size_t i = 0; i < n; i++) {
        int64_t secs = rows[i].th.opened / 1000;
        prom_sample(out, "slhook_breaker_opened_timestamp_seconds",
                    rows[i].name, NULL, (double)secs);
    }
}

void
slh_status_prometheus(FILE *out, const struct slh_status *s)
{
    static const char *const states[] = {"pending", "dead", "delivered"};
    const struct slh_status_row *rows = s->rows;
    size_t i, n = s->n;

    prom_header(out, "slhook_deliveries",
                "Deliveries per destination and state (pending includes "
                "retrying).");
    for (i = 0; i < n; i++) {
        const struct slh_store_stats *st = &rows[i].st;
        int64_t v[] = {st->pending, st->dead, st->delivered};
        for (size_t k = 0; k < 3; k++)
            prom_sample(out, "slhook_deliveries", rows[i].name, states[k],
                        (double)v[k]);
    }
    prom_header(out, "slhook_deliveries_retrying",
                "Pending deliveries whose last attempt failed.");
    for (i = 0; i < n; i++)
        prom_sample(out, "slhook_deliveries_retrying", rows[i].name, NULL,
                    (double)rows[i].st.retrying);
    prom_header(out, "slhook_oldest_pending_age_seconds",
                "Age of the oldest pending event, 0 when none is pending.");
    for (i = 0; i < n; i++)
        prom_sample(out, "slhook_oldest_pending_age_seconds", rows[i].name,
                    NULL,
                    rows[i].st.oldest_pending > 0
                        ? (double)(s->now - rows[i].st.oldest_pending) / 1000.0
                        : 0.0);
    prom_header(out, "slhook_last_error_status",
                "HTTP status of the latest failure still standing, 0 for "
                "none or no answer.");
    for (i = 0; i < n; i++)
        prom_sample(out, "slhook_last_error_status", rows[i].name, NULL,
                    (double)rows[i].st.last_status);
    prom_header(out, "slhook_destination_configured",
                "1 for a destination in the config, 0 for one that only "
                "has rows left in the spool (nothing delivers them).");
    for (i = 0; i < n; i++)
        prom_sample(out, "slhook_destination_configured", rows[i].name, NULL,
                    rows[i].kind != NULL ? 1.0 : 0.0);
    prom_header(out, "slhook_deliver_start_failure_timestamp_seconds",
                "When a CGI last failed to start a deliverer, 0 when a "
                "deliverer started since (or none ever failed).");
    fprintf(out, "slhook_deliver_start_failure_timestamp_seconds %lld\n",
            s->note.found ? (long long)s->note.when : 0LL);
    prometheus_breakers(out, rows, n);
}

json_t *
slh_status_time(int64_t ms)
{
    char buf[SLH_WHEN_LEN];

    if (ms == 0)
        return json_null();
    slh_when_format(ms, false, buf, sizeof(buf));
    return json_string(buf);
}

/* {"state": "open"|"closed", "opened": RFC 3339 or null}, or null when
 * the destination has no breaker (and its state is closed). */
static json_t *
breaker_json(const struct slh_status_row *r)
{
    if (!r->has_breaker)
        return json_null();
    return json_pack("{s:s, s:o}", "state",
                     r->th.opened != 0 ? "open" : "closed", "opened",
                     slh_status_time(r->th.opened));
}

static json_t *
row_json(const struct slh_status_row *r, int64_t now)
{
    const struct slh_store_stats *s = &r->st;
    json_t *o = json_pack(
        "{s:s, s:o, s:b, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "name",
        r->name, "kind", r->kind != NULL ? json_string(r->kind) : json_null(),
        "configured", r->kind != NULL, "pending", (json_int_t)s->pending,
        "retrying", (json_int_t)s->retrying, "dead", (json_int_t)s->dead,
        "delivered", (json_int_t)s->delivered, "oldest_pending",
        slh_status_time(s->oldest_pending), "oldest_pending_seconds",
        s->oldest_pending > 0
            ? json_integer((json_int_t)(now - s->oldest_pending) / 1000)
            : json_null(),
        "last_status",
        s->last_status > 0 ? json_integer(s->last_status) : json_null(),
        "last_error",
        s->last_error[0] != '\0' ? json_string(s->last_error) : json_null());

    if (o != NULL && json_object_set_new(o, "breaker", breaker_json(r)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *
slh_status_json(const struct slh_status *s)
{
    json_t *root = json_object(), *list = json_array();

    if (root == NULL || list == NULL ||
        json_object_set_new(root, "destinations", list) != 0) {
        json_decref(list);
        goto fail;
    }
    if (json_object_set_new(root, "deliver_start_error",
                            s->note.found
                                ? json_pack("{s:s, s:s}", "time", s->note.iso,
                                            "error", s->note.text)
                                : json_null()) != 0)
        goto fail;
    for (size_t i = 0; i < s->n; i++)
        if (json_array_append_new(list, row_json(&s->rows[i], s->now)) != 0)
            goto fail;
    return root;
fail:
    json_decref(root);
    return NULL;
}

/* The rows, unfilled: the configured destinations, then the names only
 * the store has. */
static struct slh_status_row *
rows_new(const struct slh_config *cfg, char **names, size_t n_names, size_t *n)
{
    struct slh_status_row *rows;
    size_t k = 0;

    rows = calloc(cfg->n_dests + n_names + 1, sizeof(*rows));
    if (rows == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n_dests; i++) {
        rows[k].name = cfg->dests[i].name;
        rows[k].has_breaker = cfg->dests[i].breaker > 0;
        rows[k++].kind = cfg->dests[i].url != NULL ? "url" : "file";
    }
    for (size_t i = 0; i < n_names; i++)
        if (slh_config_dest(cfg, names[i]) == NULL)
            rows[k++].name = names[i];
    *n = k;
    return rows;
}

void
slh_status_free(struct slh_status *s)
{
    if (s != NULL) {
        free(s->rows);
        slh_store_dests_free(s->names, s->n_names);
        memset(s, 0, sizeof(*s));
    }
}

enum slh_err
slh_status_read(struct slh_status *s, struct slh_store *sp,
                const struct slh_config *cfg, int64_t now_ms,
                struct slh_error *err)
{
    enum slh_err rc = SLH_OK;

    memset(s, 0, sizeof(*s));
    if (sp != NULL &&
        (rc = slh_store_dests(sp, &s->names, &s->n_names, err)) != SLH_OK)
        return rc;
    s->rows = rows_new(cfg, s->names, s->n_names, &s->n);
    if (s->rows == NULL) {
        slh_status_free(s);
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; sp != NULL && rc == SLH_OK && i < s->n; i++) {
        struct slh_status_row *r = &s->rows[i];
        rc = slh_store_stats(sp, r->name, &r->st, err);
        /* A breaker configured no more is no breaker, whatever it left. */
        if (rc == SLH_OK && r->has_breaker)
            rc = slh_store_throttle_get(sp, r->name, &r->th, err);
    }
    if (rc == SLH_OK) {
        slh_status_note_read(cfg, &s->note);
        s->now = now_ms;
    } else {
        slh_status_free(s);
    }
    return rc;
}

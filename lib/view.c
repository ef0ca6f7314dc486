/* view.c: the text and JSON of view.h. */
#include "view.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "event.h"
#include "when.h"

#define SHORT_ID 12 /* hex characters of an id in a listing */

static const char header[] =
    "RECEIVED              ID            TYPE          ADDRESS"
    "                       MESSAGE ID            DELIVERIES";
static const char line_fmt[] = "%-20s  %-12.12s  %-12s  %-28s  %-20s ";

const char *
slh_view_state(const struct slh_store_row *r)
{
    switch (r->state) {
    case SLH_DELIVERED:
        return "delivered";
    case SLH_DEAD:
        return "dead";
    default:
        return r->is_retrying ? "retrying" : "pending";
    }
}

bool
slh_view_state_filter(const char *name, unsigned *states, bool *is_retrying)
{
    static const struct {
        const char *name;
        unsigned states;
        bool is_retrying;
    } names[] = {
        {"pending", 1u << SLH_PENDING, false},
        {"retrying", 1u << SLH_PENDING, true},
        {"dead", 1u << SLH_DEAD, false},
        {"delivered", 1u << SLH_DELIVERED, false},
    };

    for (size_t i = 0; name != NULL && i < sizeof(names) / sizeof(names[0]);
         i++)
        if (strcmp(name, names[i].name) == 0) {
            *states = names[i].states;
            *is_retrying = names[i].is_retrying;
            return true;
        }
    return false;
}

bool
slh_view_replay_state(const char *name, unsigned *states)
{
    if (name == NULL)
        return false;
    if (strcmp(name, "delivered") == 0)
        *states = 1u << SLH_DELIVERED;
    else if (strcmp(name, "dead") == 0)
        *states = 1u << SLH_DEAD;
    else if (strcmp(name, "any") == 0)
        *states = SLH_STORE_REPLAY_ANY;
    else
        return false;
    return true;
}

/* slh_view_field() of an already parsed body (NULL: none). */
static char *
field_of(const json_t *obj, const char *name)
{
    json_t *v = json_is_object(obj) ? slh_event_get(obj, name) : NULL;

    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_number(v) || json_is_boolean(v))
        return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return NULL;
}

char *
slh_view_field(const char *body, const char *name)
{
    json_t *obj = body != NULL ? json_loads(body, 0, NULL) : NULL;
    char *out = field_of(obj, name);

    json_decref(obj);
    return out;
}

/* The two fields every view shows, from one parse of the body. */
static void
mid_and_address(const char *body, char **mid, char **addr)
{
    json_t *obj = body != NULL ? json_loads(body, 0, NULL) : NULL;

    *mid = field_of(obj, "MessageId");
    *addr = field_of(obj, "Address");
    json_decref(obj);
}

const char *
slh_view_header(void)
{
    return header;
}

/* s with control characters and spaces made '?', in place; "-" for NULL
 * or empty (a new string then), so a column is never blank. */
static char *
column(char *s)
{
    if (s == NULL || s[0] == '\0') {
        free(s);
        return strdup("-");
    }
    for (char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            *p = '?';
    return s;
}

char *
slh_view_line(const struct slh_store_event *ev)
{
    char when[SLH_WHEN_LEN], *out = NULL, *type = column(strdup(ev->type));
    char *addr, *mid;
    size_t size = 0;
    FILE *f;

    mid_and_address(ev->body, &mid, &addr);
    addr = column(addr);
    mid = column(mid);
    f = type != NULL && addr != NULL && mid != NULL
            ? open_memstream(&out, &size)
            : NULL;
    if (f != NULL) {
        slh_when_format(ev->received, false, when, sizeof(when));
        fprintf(f, line_fmt, when, ev->id, type, addr, mid);
        for (size_t i = 0; i < ev->n_rows; i++)
            fprintf(f, " %s=%s", ev->rows[i].dest,
                    slh_view_state(&ev->rows[i]));
        if (ev->n_rows == 0)
            fputs(" -", f);
        if (fclose(f) != 0) {
            free(out);
            out = NULL;
        }
    }
    free(type);
    free(addr);
    free(mid);
    return out;
}

/* RFC 3339 with milliseconds as a new JSON string. */
static json_t *
json_time(int64_t ms)
{
    char buf[SLH_WHEN_LEN];

    slh_when_format(ms, true, buf, sizeof(buf));
    return json_string(buf);
}

/* A string field as a new JSON string, null when absent (steals s). */
static json_t *
json_text(char *s)
{
    json_t *v = s != NULL ? json_string(s) : json_null();

    free(s);
    return v;
}

static json_t *
row_json(const struct slh_store_row *r)
{
    return json_pack(
        "{s:s, s:i, s:o, s:o, s:o}", "state", slh_view_state(r), "attempts",
        r->attempts, "last_status",
        r->last_status > 0 ? json_integer(r->last_status) : json_null(),
        "last_error",
        r->last_error[0] != '\0' ? json_string(r->last_error) : json_null(),
        "next_attempt",
        r->state == SLH_PENDING ? json_time(r->due) : json_null());
}

json_t *
slh_view_object(const struct slh_store_event *ev)
{
    json_t *deliveries = json_object(), *o = NULL;
    char *mid, *addr;

    mid_and_address(ev->body, &mid, &addr);
    if (deliveries != NULL)
        o = json_pack("{s:s, s:o, s:s, s:o, s:o, s:O}", "id", ev->id,
                      "received", json_time(ev->received), "type", ev->type,
                      "message_id", json_text(mid), "address", json_text(addr),
                      "deliveries", deliveries);
    else {
        free(mid);
        free(addr);
    }
    for (size_t i = 0; o != NULL && i < ev->n_rows; i++)
        if (json_object_set_new(deliveries, ev->rows[i].dest,
                                row_json(&ev->rows[i])) != 0) {
            json_decref(o);
            o = NULL;
        }
    json_decref(deliveries);
    return o;
}

char *
slh_view_json(const struct slh_store_event *ev)
{
    json_t *o = slh_view_object(ev);
    char *out =
        o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(o);
    return out;
}

/* The per-destination table of show. */
static void
show_rows(FILE *f, const struct slh_store_event *ev)
{
    fprintf(f, "\n%-16s %-10s %8s %11s  %-24s  %s\n", "DESTINATION", "STATE",
            "ATTEMPTS", "LAST STATUS", "NEXT ATTEMPT", "LAST ERROR");
    for (size_t i = 0; i < ev->n_rows; i++) {
        const struct slh_store_row *r = &ev->rows[i];
        char next[SLH_WHEN_LEN] = "-", status[16] = "-";

        if (r->state == SLH_PENDING)
            slh_when_format(r->due, true, next, sizeof(next));
        if (r->last_status > 0)
            snprintf(status, sizeof(status), "%d", r->last_status);
        fprintf(f, "%-16s %-10s %8d %11s  %-24s  %s\n", r->dest,
                slh_view_state(r), r->attempts, status, next,
                r->last_error[0] != '\0' ? r->last_error : "-");
    }
    if (ev->n_rows == 0)
        fputs("(no destination has a row for it)\n", f);
}

char *
slh_view_show(const struct slh_store_event *ev)
{
    char when[SLH_WHEN_LEN], *out = NULL, *mid, *addr;
    size_t size = 0;
    FILE *f;

    mid_and_address(ev->body, &mid, &addr);
    f = open_memstream(&out, &size);
    if (f != NULL) {
        slh_when_format(ev->received, true, when, sizeof(when));
        fprintf(f,
                "id:         %s\nreceived:   %s\ntype:       %s\n"
                "message_id: %s\naddress:    %s\nbody:       %s\n",
                ev->id, when, ev->type, mid != NULL ? mid : "-",
                addr != NULL ? addr : "-", ev->body);
        show_rows(f, ev);
        if (fclose(f) != 0) {
            free(out);
            out = NULL;
        }
    }
    free(mid);
    free(addr);
    return out;
}

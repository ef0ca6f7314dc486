/* event.h: SocketLabs request bodies parsed into events, and their identity.
 * The module is lib/event*.c, a file a job: parsing (event.c), legacy form
 * bodies (event_form.c), the pre-parse shape count (event_shape.c), the
 * identity (event_id.c) and the DateTime order key (event_time.c); what they
 * share is in event_int.h. */
#ifndef SLH_EVENT_H
#define SLH_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

#define SLH_EVENT_ID_LEN 64 /* hex SHA-256 */

enum slh_media {
    SLH_MEDIA_OTHER = 0, /* neither of the two below: the handler says 415 */
    SLH_MEDIA_JSON,      /* application/json */
    SLH_MEDIA_FORM       /* application/x-www-form-urlencoded */
};

/* Tracking kinds, as SocketLabs numbers them. */
enum slh_tracking {
    SLH_TRACKING_NONE = -1,
    SLH_TRACKING_CLICK = 0,
    SLH_TRACKING_OPEN = 1,
    SLH_TRACKING_UNSUBSCRIBE = 2
};

/*
 * The fields slhook reads, each found once per event (any case). The first
 * eight are the identity's, in the order it hashes them.
 */
enum slh_field {
    SLH_FIELD_TYPE,
    SLH_FIELD_SERVER_ID,
    SLH_FIELD_MESSAGE_ID,
    SLH_FIELD_MAILING_ID,
    SLH_FIELD_ADDRESS,
    SLH_FIELD_DATE_TIME,
    SLH_FIELD_TRACKING_TYPE,
    SLH_FIELD_URL,
    SLH_FIELD_FAILURE_TYPE,
    SLH_FIELD_SECRET_KEY,
    SLH_FIELDS
};

/* The name of field f as the spec spells it ("SecretKey"), or NULL. */
const char *slh_field_name(enum slh_field f);

/* One event of a request. */
struct slh_event {
    json_t *obj;      /* owned reference: the event object as received, keys in
                         their order and spelling, SecretKey still in it; form
                         bodies become an object of strings */
    const char *type; /* borrowed from obj: the Type value, as received */
    int tracking;     /* enum slh_tracking, from TrackingType as a number,
                         numeric string or name; NONE when absent */
    bool is_validation;                   /* Type is "Validation" (any case) */
    char id[SLH_EVENT_ID_LEN + 1];        /* identity, hex, NUL-terminated */
    char legacy_id[SLH_EVENT_ID_LEN + 1]; /* the id slhook gave it before
                                             ids were escaped, when that
                                             differs from id; else "" */
    int64_t at; /* its DateTime, slh_event_at(): the spool's order key */
    char *body; /* owned: the relay body once slh_batch_bodies() made it */
    const json_t *field[SLH_FIELDS]; /* borrowed from obj: the value of each
                                        field of enum slh_field, NULL when
                                        absent */
};

/* Every event of one request, in the order received. */
struct slh_batch {
    struct slh_event *events; /* owned array */
    size_t n;
};

/*
 * The media type of a CONTENT_TYPE value: parameters (";charset=utf-8") and
 * case ignored. NULL or empty is SLH_MEDIA_OTHER.
 */
enum slh_media slh_media_parse(const char *content_type);

/* Nesting of arrays and objects a JSON body may have: a SocketLabs event
 * in an array has five (array, event, Data, Meta, a Meta entry). */
#define SLH_MAX_DEPTH 32
/* JSON values one event may hold (a SocketLabs event has a few dozen), and
 * fields a form body may have. */
#define SLH_MAX_EVENT_VALUES 1024
/* Bytes of the longest JSON string or form field (name=value) of a body:
 * SocketLabs' longest are a bounce's diagnostic text and a clicked Url, a
 * few KiB. Jansson holds a string twice while reading it. */
#define SLH_MAX_STRING 65536
/* JSON values per event a request may hold on average: with max_events,
 * the bound on how much tree Jansson builds for a body (slh_shape). */
#define SLH_VALUES_PER_EVENT 64

/*
 * What a body would make, counted before anything is parsed: the handler
 * turns a body over its caps away before Jansson builds a tree of it, so
 * that what a request costs before it has proved its key is bounded by its
 * counts, not by how small the values of a 1 MiB body can be.
 */
struct slh_shape {
    size_t events;       /* events: an array's elements, else 1 */
    size_t values;       /* JSON values of the events (containers and
                            scalars; not keys, nor a batch's array), or
                            form fields */
    size_t event_values; /* the most values of any one event */
    size_t big_event;    /* which event (from 1) has event_values */
    size_t longest;      /* bytes of the longest JSON string (key or value,
                            escapes as written) or form field */
    size_t depth;        /* deepest nesting; counting stops (and the counts
                            above are partial) past SLH_MAX_DEPTH */
};

/*
 * Counts the shape of a body of len bytes as media (not NUL-terminated; may
 * hold NULs) into *shape, allocating nothing. Exact for well-formed JSON
 * (strings and their escapes are skipped, so a ']' inside a string is
 * text); for anything else the counts are some numbers and
 * slh_batch_parse() says what is wrong. A form body counts as one event
 * with one value per field. The largest value count that
 * max_events events may hold is slh_shape_max_values().
 */
void slh_body_shape(const char *body, size_t len, enum slh_media media,
                    struct slh_shape *shape);

/* The most JSON values a request of up to max_events events may hold:
 * SLH_VALUES_PER_EVENT per event, and at least SLH_MAX_EVENT_VALUES. */
size_t slh_shape_max_values(size_t max_events);

/*
 * Parses a request body of len bytes (not NUL-terminated; may hold NULs) as
 * media into *batch: one event object, a non-empty array of them, or
 * {"data":{...}} (one object whose only key is "data", any case), or a legacy
 * form body (percent and '+' decoded, one object of strings). Field names are
 * matched case-insensitively. Every event must be an object with a string
 * Type; TrackingType (when present) must be 0..2 as number, numeric string or
 * name; duplicate keys, invalid UTF-8 and trailing data are errors.
 *
 * On success *batch owns its events (release with slh_batch_free()); each has
 * its id computed. On failure *batch is empty and err says what is wrong:
 * SLH_EPARSE with Jansson's "line L column C: text" for bad JSON or the
 * offending form field, SLH_EEVENT for a well-formed body that is not events.
 */
enum slh_err slh_batch_parse(struct slh_batch *batch, const char *body,
                             size_t len, enum slh_media media,
                             struct slh_error *err);

/* Releases what batch owns and zeroes it. NULL and a zeroed batch are fine. */
void slh_batch_free(struct slh_batch *batch);

/*
 * The value of field name in obj, matched case-insensitively (the first
 * match in key order). Borrowed; NULL when absent.
 */
json_t *slh_event_get(const json_t *obj, const char *name);

/*
 * The relay body of ev: compact JSON of ev->obj with every SecretKey (any
 * case) removed, other keys in order and spelling, values unchanged.
 * New string owned by the caller (free()), or NULL when out of memory.
 */
char *slh_event_body(const struct slh_event *ev);

/*
 * Makes the relay body (slh_event_body()) of each event of batch that is to
 * be stored (not a Validation), so that whoever stores them need not: the
 * FastCGI responder's request threads make them in parallel, ahead of the
 * one thread that commits. SLH_ENOMEM when out of memory (bodies made so far
 * stay, freed with the batch).
 */
enum slh_err slh_batch_bodies(struct slh_batch *batch);

/*
 * Writes the identity of the event obj into id: hex SHA-256 over
 * Type|ServerId|MessageId|MailingId|Address|DateTime|TrackingType|Url,
 * each as received (strings as they are, numbers in their JSON form,
 * absent or null fields empty).
 *
 * That plain join is ambiguous once a field holds a '|' (MessageId "m|x"
 * with MailingId "y" joins as MessageId "m" with MailingId "x|y"). So for an
 * event with a '|' or '\' in any of the eight fields the digest is over
 * another text: each field with '\' written "\\" and '|' written "\p",
 * the fields separated by "\,". That text holds no '|' at all, while every
 * plain join holds at least seven: no escaped text is the plain join of any
 * event, and the id is unambiguous. Events without those two characters
 * (nearly all) keep the id the plain join gave before, which spools already
 * hold.
 */
void slh_event_identity(const json_t *obj, char id[SLH_EVENT_ID_LEN + 1]);

/*
 * Writes into legacy_id the id that slhook gave obj before ids were
 * escaped (the digest of the plain join) when it differs from
 * slh_event_identity()'s, that is when a field holds '|' or '\'; else "".
 * A stored row under this id was stored by that older slhook: the current
 * one stores the plain join's digest only for events whose join has exactly
 * seven '|' and no '\', which an event with a '|' or '\' in a field never
 * joins to (store_sqlite.h).
 */
void slh_event_legacy_id(const json_t *obj,
                         char legacy_id[SLH_EVENT_ID_LEN + 1]);

/*
 * The DateTime value of an event (NULL when absent) as unix microseconds:
 * ISO 8601 as SocketLabs sends it ("2024-05-02T08:16:01.9930482Z"; digits
 * past the sixth fractional one dropped, "Z", "+hh:mm" or no zone, read as
 * UTC) or RFC 1123 as the legacy form API did ("Thu, 02 May 2024 08:16:01
 * GMT"); 0 for anything else, a number or a date before 1970 included.
 * It depends on the value alone, never on the locale or TZ, and the value
 * is hashed into the identity: two events with one id have one time. The
 * spool keys events on (time, id), so that new events land together at the
 * end of its index instead of each on a page of its own (store_sqlite.h).
 */
int64_t slh_event_at(const json_t *datetime);

/*
 * Decodes application/x-www-form-urlencoded text src[0..len) ('+' is a
 * space, %XX a byte) into dst, which has room for len bytes; *out gets the
 * decoded length. -1 on a bad escape. The legacy form bodies' and the
 * operator's forms' (web.h).
 */
int slh_form_decode(char *dst, size_t *out, const char *src, size_t len);

#endif

#include "event_int.h"

#include "socketlabs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Room for an error text quoted from the request (a name, Jansson's text). */
#define QUOTE_MAX 64

/* The names of enum slh_field, with their lengths. */
static const struct {
    const char *name;
    size_t len;
} field_names[SLH_FIELDS] = {
    [SLH_FIELD_TYPE] = {"Type", sizeof("Type") - 1},
    [SLH_FIELD_SERVER_ID] = {"ServerId", sizeof("ServerId") - 1},
    [SLH_FIELD_MESSAGE_ID] = {"MessageId", sizeof("MessageId") - 1},
    [SLH_FIELD_MAILING_ID] = {"MailingId", sizeof("MailingId") - 1},
    [SLH_FIELD_ADDRESS] = {"Address", sizeof("Address") - 1},
    [SLH_FIELD_DATE_TIME] = {"DateTime", sizeof("DateTime") - 1},
    [SLH_FIELD_TRACKING_TYPE] = {"TrackingType", sizeof("TrackingType") - 1},
    [SLH_FIELD_URL] = {"Url", sizeof("Url") - 1},
    [SLH_FIELD_FAILURE_TYPE] = {"FailureType", sizeof("FailureType") - 1},
    [SLH_FIELD_SECRET_KEY] = {"SecretKey", sizeof("SecretKey") - 1},
};

/* Up to this many fields, names differing only in case are looked for by
 * comparing pairs; past it, in a set. */
#define FEW_FIELDS 32

/* A relay body up to this size is made without growing a buffer. */
#define BODY_GUESS 2048

/*
 * Jansson's iterators take json_t * although they only read; this drops the
 * const without a cast that -Wcast-qual would flag.
 */
static json_t *
unconst(const json_t *json)
{
    union {
        const json_t *c;
        json_t *m;
    } u = {.c = json};
    return u.m;
}

/*
 * Copies request bytes for an error text: they end up in an HTTP answer and
 * in logs, so control and non-ASCII bytes become '?' and length is capped.
 */
static void
quote(char *dst, size_t cap, const char *src, size_t len)
{
    size_t i;

    if (len > cap - 1)
        len = cap - 1;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    dst[i] = '\0';
}

/*
 * Jansson quotes the text near a syntax error ("near '...'"), which may be a
 * piece of the secret key: error texts carry the line and column only.
 */
static void
strip_near(char *text)
{
    char *near = strstr(text, " near '");

    if (near != NULL)
        *near = '\0';
}

static bool
token_is(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

enum slh_media
slh_media_parse(const char *content_type)
{
    const char *s = content_type, *end;

    if (s == NULL)
        return SLH_MEDIA_OTHER;
    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strcspn(s, ";");
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (token_is(s, (size_t)(end - s), "application/json"))
        return SLH_MEDIA_JSON;
    if (token_is(s, (size_t)(end - s), "application/x-www-form-urlencoded"))
        return SLH_MEDIA_FORM;
    return SLH_MEDIA_OTHER;
}

const char *
slh_field_name(enum slh_field f)
{
    return (unsigned)f < SLH_FIELDS ? field_names[f].name : NULL;
}

json_t *
slh_event_get(const json_t *obj, const char *name)
{
    const char *key;
    json_t *value;

    if (!json_is_object(obj) || name == NULL)
        return NULL;
    json_object_foreach(unconst(obj), key, value)
    {
        if (strcasecmp(key, name) == 0)
            return value;
    }
    return NULL;
}

static bool
names_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

void
event_find_fields(const json_t *obj, const json_t *field[SLH_FIELDS])
{
    const char *key;
    size_t klen;
    json_t *value;

    memset(field, 0, SLH_FIELDS * sizeof(field[0]));
    json_object_keylen_foreach(unconst(obj), key, klen, value)
    {
        for (int f = 0; f < SLH_FIELDS; f++) {
            if (field[f] == NULL && names_equal(key, klen, field_names[f].name,
                                                field_names[f].len)) {
                field[f] = value;
                break;
            }
        }
    }
}

/*
 * Records key in seen under its lowercase spelling, so that names differing
 * only in case are found in constant time: a body of 1 MiB can carry a
 * hundred thousand fields, too many for comparing each pair.
 */
enum slh_err
event_seen_add(json_t *seen, const char *key, size_t len, bool *is_duplicate)
{
    char *lower = malloc(len + 1);
    enum slh_err rc = SLH_OK;
    size_t i;

    if (lower == NULL)
        return SLH_ENOMEM;
    for (i = 0; i < len; i++) {
        char c = key[i];
        lower[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    lower[len] = '\0';
    *is_duplicate = json_object_getn(seen, lower, len) != NULL;
    if (!*is_duplicate &&
        json_object_setn_new_nocheck(seen, lower, len, json_true()) != 0)
        rc = SLH_ENOMEM;
    free(lower);
    return rc;
}

/*
 * Whether two names of obj differ only in case: fields are looked up ignoring
 * case, so two spellings of one name would make the first win silently (a
 * "secretkey" could hide behind a "SecretKey", a second Type be relayed but
 * not checked). A SocketLabs event has a score of fields, compared in pairs;
 * past FEW_FIELDS the names go into a set.
 */
static enum slh_err
find_twins(const json_t *obj, bool *twins)
{
    struct {
        const char *key;
        size_t len;
    } few[FEW_FIELDS];
    json_t *seen;
    const char *key;
    size_t klen, n = 0;
    json_t *value;
    enum slh_err rc = SLH_OK;

    *twins = false;
    if (json_object_size(obj) <= FEW_FIELDS) {
        json_object_keylen_foreach(unconst(obj), key, klen, value)
        {
            for (size_t i = 0; i < n; i++)
                if (names_equal(key, klen, few[i].key, few[i].len)) {
                    *twins = true;
                    return SLH_OK;
                }
            few[n].key = key;
            few[n].len = klen;
            n++;
        }
        return SLH_OK;
    }
    seen = json_object();
    if (seen == NULL)
        return SLH_ENOMEM;
    json_object_keylen_foreach(unconst(obj), key, klen, value)
    {
        rc = event_seen_add(seen, key, klen, twins);
        if (rc != SLH_OK || *twins)
            break;
    }
    json_decref(seen);
    return rc;
}

/*
 * The number 0..2 of an enumeration value given as a JSON integer, a numeric
 * string or one of names (any case). Null and "" count as absent (-1); -2
 * when the value is none of these (slh_sl_enum_text()).
 */
static int
enum_value(const json_t *v, const char *const names[SLH_SL_ENUM_VALUES])
{
    if (v == NULL || json_is_null(v))
        return -1;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        return n >= 0 && n < SLH_SL_ENUM_VALUES ? (int)n : -2;
    }
    if (!json_is_string(v))
        return -2;
    return slh_sl_enum_text(names, json_string_value(v));
}

char *
slh_event_body(const struct slh_event *ev)
{
    json_t *copy = json_object();
    char *body = NULL, guess[BODY_GUESS];
    const char *key;
    size_t klen, n;
    json_t *value;

    if (copy == NULL)
        return NULL;
    json_object_keylen_foreach(ev->obj, key, klen, value)
    {
        if (names_equal(key, klen, field_names[SLH_FIELD_SECRET_KEY].name,
                        field_names[SLH_FIELD_SECRET_KEY].len))
            continue;
        if (json_object_setn_nocheck(copy, key, klen, value) != 0)
            goto out;
    }
    /* Into a buffer on the stack first: json_dumps() grows its own from 16
     * bytes, copying it at each doubling. */
    n = json_dumpb(copy, guess, sizeof(guess), JSON_COMPACT);
    if (n == 0 || n > sizeof(guess)) {
        body = json_dumps(copy, JSON_COMPACT);
    } else if ((body = malloc(n + 1)) != NULL) {
        memcpy(body, guess, n);
        body[n] = '\0';
    }
out:
    json_decref(copy);
    return body;
}

enum slh_err
slh_batch_bodies(struct slh_batch *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        struct slh_event *ev = &batch->events[i];

        if (ev->is_validation || ev->body != NULL)
            continue;
        ev->body = slh_event_body(ev);
        if (ev->body == NULL)
            return SLH_ENOMEM;
    }
    return SLH_OK;
}

/*
 * Checks one event object and fills ev from it (ev->obj already set). where
 * prefixes error texts ("event 2: " for the second of an array, counting
 * from 1 as the handler does; "" for a lone event).
 */
static enum slh_err
event_fill(struct slh_event *ev, const char *where, struct slh_error *err)
{
    const json_t *type;
    bool twins;

    if (find_twins(ev->obj, &twins) != SLH_OK)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    if (twins)
        return slh_error_set(err, SLH_EEVENT,
                             "%sa field is given twice (names differ only "
                             "in case)",
                             where);
    event_find_fields(ev->obj, ev->field);
    type = ev->field[SLH_FIELD_TYPE];
    if (type == NULL)
        return slh_error_set(err, SLH_EEVENT, "%sno Type", where);
    if (!json_is_string(type))
        return slh_error_set(err, SLH_EEVENT, "%sType is not a string", where);
    if (json_string_length(type) == 0)
        return slh_error_set(err, SLH_EEVENT, "%sType is empty", where);
    ev->type = json_string_value(type);
    ev->is_validation = strcasecmp(ev->type, SLH_SL_VALIDATION) == 0;
    ev->tracking =
        enum_value(ev->field[SLH_FIELD_TRACKING_TYPE], slh_sl_tracking_kinds);
    if (ev->tracking == -2)
        return slh_error_set(err, SLH_EEVENT,
                             "%sTrackingType is not 0, 1, 2, Click, Open or "
                             "Unsubscribe",
                             where);
    if (enum_value(ev->field[SLH_FIELD_FAILURE_TYPE], slh_sl_failure_kinds) ==
        -2)
        return slh_error_set(err, SLH_EEVENT,
                             "%sFailureType is not 0, 1, 2, Temporary, "
                             "Permanent or Suppressed",
                             where);
    if (!event_identities(ev->field, ev->id, ev->legacy_id))
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    ev->at = slh_event_at(ev->field[SLH_FIELD_DATE_TIME]);
    return SLH_OK;
}

enum slh_err
event_take(struct slh_event *ev, json_t *obj, const char *where,
           struct slh_error *err)
{
    ev->obj = obj;
    ev->tracking = SLH_TRACKING_NONE;
    return event_fill(ev, where, err);
}

/* Events of a parsed JSON body (borrowed root) into batch. */
static enum slh_err
json_events(struct slh_batch *batch, json_t *root, struct slh_error *err)
{
    char where[48];
    json_t *value;
    size_t i;
    enum slh_err rc;

    if (json_is_object(root)) {
        const char *key = json_object_iter_key(json_object_iter(root));
        if (json_object_size(root) == 1 && strcasecmp(key, "data") == 0) {
            json_t *inner = json_object_iter_value(json_object_iter(root));
            if (!json_is_object(inner) || slh_event_get(inner, "Type") == NULL)
                return slh_error_set(err, SLH_EEVENT,
                                     "data wrapper holds no event");
            root = inner;
        }
        batch->events = calloc(1, sizeof(*batch->events));
        if (batch->events == NULL)
            return slh_error_set(err, SLH_ENOMEM, "out of memory");
        batch->n = 1;
        return event_take(&batch->events[0], json_incref(root), "", err);
    }
    if (!json_is_array(root))
        return slh_error_set(err, SLH_EEVENT,
                             "body is not an event object or an array of "
                             "them");
    if (json_array_size(root) == 0)
        return slh_error_set(err, SLH_EEVENT, "empty array: no events");
    batch->events = calloc(json_array_size(root), sizeof(*batch->events));
    if (batch->events == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    json_array_foreach(root, i, value)
    {
        snprintf(where, sizeof(where), "event %zu: ", i + 1);
        if (!json_is_object(value))
            return slh_error_set(err, SLH_EEVENT, "%snot an object", where);
        batch->n = i + 1;
        rc = event_take(&batch->events[i], json_incref(value), where, err);
        if (rc != SLH_OK)
            return rc;
    }
    return SLH_OK;
}

static enum slh_err
parse_json(struct slh_batch *batch, const char *body, size_t len,
           struct slh_error *err)
{
    json_error_t jerr;
    char text[QUOTE_MAX * 3];
    json_t *root;
    enum slh_err rc;

    /* Top-level scalars are well-formed JSON, just not events: decoding
     * them lets the answer say so instead of a parse error. */
    root =
        json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        /* Jansson leaves the error unset (text empty, and the code byte
         * json_error_code() reads uninitialised) when it cannot allocate a
         * value. Its lexer reports a failed string copy as a bad token,
         * which stays a parse error: nothing tells the two apart. */
        if (jerr.text[0] == '\0' ||
            json_error_code(&jerr) == json_error_out_of_memory)
            return slh_error_set(err, SLH_ENOMEM, "out of memory");
        quote(text, sizeof(text), jerr.text, strcspn(jerr.text, "\n"));
        strip_near(text);
        return slh_error_set(err, SLH_EPARSE,
                             "invalid JSON at line %d column %d: %s", jerr.line,
                             jerr.column, text);
    }
    rc = json_events(batch, root, err);
    json_decref(root);
    return rc;
}

enum slh_err
slh_batch_parse(struct slh_batch *batch, const char *body, size_t len,
                enum slh_media media, struct slh_error *err)
{
    enum slh_err rc;

    batch->events = NULL;
    batch->n = 0;
    if (body == NULL && len > 0)
        return slh_error_set(err, SLH_EINVAL, "no body");
    if (len == 0)
        return slh_error_set(err, SLH_EPARSE, "empty body");
    /* Jansson would say only "invalid token"; a BOM is a common editor
     * artefact, worth naming. */
    if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0)
        return slh_error_set(err, SLH_EPARSE,
                             "body starts with a UTF-8 byte order mark");
    if (media == SLH_MEDIA_JSON)
        rc = parse_json(batch, body, len, err);
    else if (media == SLH_MEDIA_FORM)
        rc = event_parse_form(batch, body, len, err);
    else
        return slh_error_set(err, SLH_EINVAL, "media type is not JSON or form");
    if (rc != SLH_OK)
        slh_batch_free(batch);
    return rc;
}

void
slh_batch_free(struct slh_batch *batch)
{
    size_t i;

    if (batch == NULL)
        return;
    for (i = 0; i < batch->n; i++) {
        json_decref(batch->events[i].obj);
        free(batch->events[i].body);
    }
    free(batch->events);
    batch->events = NULL;
    batch->n = 0;
}

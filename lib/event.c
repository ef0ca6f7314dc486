#include "event.h"

#include "digest.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Room for an error text quoted from the request (a name, Jansson's text). */
#define QUOTE_MAX 64

static const char *const tracking_names[] = {"click", "open", "unsubscribe"};
static const char *const failure_names[] = {"temporary", "permanent",
                                            "suppressed"};

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

/* The identity hashes the fields before this one. */
#define IDENTITY_FIELDS (SLH_FIELD_URL + 1)

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

/* The running count of slh_body_shape(). */
struct scan {
    struct slh_shape *shape;
    size_t depth;
    uint64_t is_object; /* bit d: the container at depth d + 1 is an object */
    bool in_array;      /* the current top-level value is an array */
    size_t cur;         /* values of the current event so far */
};

_Static_assert(SLH_MAX_DEPTH <= 64, "is_object has a bit per level");

/* A value starts at the current depth; is_array when it opens an array. */
static void
count_value(struct scan *s, bool is_array)
{
    struct slh_shape *sh = s->shape;

    if (s->depth == 0) {
        s->in_array = is_array;
        if (is_array)
            return; /* a batch: its elements are the events */
    }
    sh->values++;
    if (s->depth == 0 || (s->depth == 1 && s->in_array)) {
        sh->events++;
        s->cur = 0;
    }
    if (++s->cur > sh->event_values) {
        sh->event_values = s->cur;
        sh->big_event = sh->events;
    }
}

static bool
is_delimiter(char c)
{
    switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case ',':
    case ':':
    case '[':
    case ']':
    case '{':
    case '}':
    case '"':
        return true;
    }
    return false;
}

/*
 * One pass, no stack but a bit per level: a string is a key when it comes
 * first in an object or after a ',' in one, and keys are not values.
 */
static void
json_shape(const char *body, size_t len, struct slh_shape *shape)
{
    struct scan s = {.shape = shape};
    bool want_key = false;
    size_t start;

    for (size_t i = 0; i < len; i++) {
        char c = body[i];

        switch (c) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            break;
        case '"':
            start = i;
            for (i++; i < len && body[i] != '"'; i++)
                if (body[i] == '\\')
                    i++;
            if (i - start - 1 > shape->longest)
                shape->longest = i - start - 1;
            if (!want_key)
                count_value(&s, false);
            want_key = false;
            break;
        case '{':
        case '[':
            count_value(&s, c == '[');
            if (s.depth == SLH_MAX_DEPTH) {
                shape->depth = SLH_MAX_DEPTH + 1;
                return;
            }
            if (c == '{')
                s.is_object |= (uint64_t)1 << s.depth;
            else
                s.is_object &= ~((uint64_t)1 << s.depth);
            if (++s.depth > shape->depth)
                shape->depth = s.depth;
            want_key = c == '{';
            break;
        case '}':
        case ']':
            if (s.depth > 0)
                s.depth--;
            want_key = false;
            break;
        case ',':
            want_key = s.depth > 0 && (s.is_object >> (s.depth - 1) & 1) != 0;
            break;
        case ':':
            want_key = false;
            break;
        default:
            /* A number, true, false or null (or junk): one value. */
            count_value(&s, false);
            while (i + 1 < len && !is_delimiter(body[i + 1]))
                i++;
            want_key = false;
            break;
        }
    }
}

void
slh_body_shape(const char *body, size_t len, enum slh_media media,
               struct slh_shape *shape)
{
    const char *p = body, *end = body + len;

    memset(shape, 0, sizeof(*shape));
    if (body == NULL || len == 0)
        return;
    if (media != SLH_MEDIA_FORM) {
        json_shape(body, len, shape);
        return;
    }
    for (;;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t field = (size_t)((amp != NULL ? amp : end) - p);

        shape->values++;
        if (field > shape->longest)
            shape->longest = field;
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    shape->events = 1;
    shape->event_values = shape->values;
    shape->big_event = 1;
    shape->depth = 1;
}

size_t
slh_shape_max_values(size_t max_events)
{
    if (max_events > SIZE_MAX / SLH_VALUES_PER_EVENT)
        return SIZE_MAX;
    return max_events * SLH_VALUES_PER_EVENT > SLH_MAX_EVENT_VALUES
               ? max_events * SLH_VALUES_PER_EVENT
               : SLH_MAX_EVENT_VALUES;
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

/* Fills field[] from obj in one pass over its keys (the first match of
 * each name). */
static void
find_fields(const json_t *obj, const json_t *field[SLH_FIELDS])
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
static enum slh_err
seen_add(json_t *seen, const char *key, size_t len, bool *is_duplicate)
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
        rc = seen_add(seen, key, klen, twins);
        if (rc != SLH_OK || *twins)
            break;
    }
    json_decref(seen);
    return rc;
}

/*
 * The number 0..2 of an enumeration value given as a JSON integer, a numeric
 * string or one of names (any case). Null and "" count as absent (-1): the
 * legacy form API sent every field, empty when it did not apply. -2 when the
 * value is none of these.
 */
static int
enum_value(const json_t *v, const char *const names[3])
{
    const char *s;
    int i;

    if (v == NULL || json_is_null(v))
        return -1;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        return n >= 0 && n <= 2 ? (int)n : -2;
    }
    if (!json_is_string(v))
        return -2;
    s = json_string_value(v);
    if (s[0] == '\0')
        return -1;
    if (s[0] >= '0' && s[0] <= '2' && s[1] == '\0')
        return s[0] - '0';
    for (i = 0; i < 3; i++) {
        if (strcasecmp(s, names[i]) == 0)
            return i;
    }
    return -2;
}

/*
 * Where the bytes of the identity's fields go: into the digest, either as
 * they are (the plain join) or escaped (event.h), noting whether a field
 * held a '|' or '\' at all.
 */
struct id_sink {
    struct slh_sha256 *h;
    bool is_escaped; /* '\' -> "\\", '|' -> "\p" */
    bool is_plain;   /* no '|' or '\' in the fields so far */
};

static void
sink_put(struct id_sink *s, const char *p, size_t len)
{
    const char *end = p + len, *q;

    for (;;) {
        for (q = p; q < end && *q != '|' && *q != '\\'; q++)
            ;
        slh_sha256_update(s->h, p, (size_t)(q - p));
        if (q == end)
            return;
        s->is_plain = false;
        if (s->is_escaped)
            slh_sha256_update(s->h, *q == '|' ? "\\p" : "\\\\", 2);
        else
            slh_sha256_update(s->h, q, 1);
        p = q + 1;
    }
}

static int
digest_dump(const char *buf, size_t size, void *sink)
{
    sink_put(sink, buf, size);
    return 0;
}

static bool
digest_field(struct id_sink *s, const json_t *v)
{
    char num[32];
    int n;

    switch (json_typeof(v)) {
    case JSON_STRING:
        sink_put(s, json_string_value(v), json_string_length(v));
        return true;
    case JSON_INTEGER:
        n = snprintf(num, sizeof(num), "%lld",
                     (long long)json_integer_value(v));
        sink_put(s, num, (size_t)n);
        return true;
    case JSON_TRUE:
        sink_put(s, "true", 4);
        return true;
    case JSON_FALSE:
        sink_put(s, "false", 5);
        return true;
    case JSON_NULL:
        return true;
    case JSON_REAL:
    case JSON_OBJECT:
    case JSON_ARRAY:
        /* Streamed into the digest: no allocation, so no failure to
         * report from a large Data-like value. A JSON text may hold '|'
         * and '\' too, so it goes through the sink like a string. */
        return json_dump_callback(v, digest_dump, s,
                                  JSON_COMPACT | JSON_ENCODE_ANY) == 0;
    }
    return false;
}

/*
 * The digest of the fields field[], joined with '|' (is_escaped false) or
 * escaped and separated by "\," (true), into id; *is_plain tells whether no
 * field held a '|' or '\'. False when memory ran out.
 */
static bool
identity(const json_t *const field[SLH_FIELDS], bool is_escaped,
         char id[SLH_EVENT_ID_LEN + 1], bool *is_plain)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SLH_SHA256_LEN];
    struct id_sink s = {slh_sha256_new(), is_escaped, true};
    bool ok = true;
    size_t f, i;

    id[0] = '\0';
    *is_plain = true;
    if (s.h == NULL)
        return false;
    for (f = 0; f < IDENTITY_FIELDS; f++) {
        const json_t *v = field[f];
        if (f > 0)
            slh_sha256_update(s.h, is_escaped ? "\\," : "|", is_escaped + 1U);
        if (v != NULL && !digest_field(&s, v))
            ok = false;
    }
    slh_sha256_final(s.h, md);
    if (!ok)
        return false;
    for (i = 0; i < SLH_SHA256_LEN; i++) {
        id[2 * i] = hex[md[i] >> 4];
        id[2 * i + 1] = hex[md[i] & 0xf];
    }
    id[SLH_EVENT_ID_LEN] = '\0';
    *is_plain = s.is_plain;
    return true;
}

/*
 * Both identities of the fields field[]: the plain join first, which is the
 * id itself for the events it cannot confuse (no '|' or '\' in a field), so
 * that those are hashed once; else that is the legacy id, and the id is the
 * escaped text's.
 */
static bool
identities(const json_t *const field[SLH_FIELDS], char id[SLH_EVENT_ID_LEN + 1],
           char legacy_id[SLH_EVENT_ID_LEN + 1])
{
    bool is_plain;

    legacy_id[0] = '\0';
    if (!identity(field, false, id, &is_plain))
        return false;
    if (is_plain)
        return true;
    memcpy(legacy_id, id, SLH_EVENT_ID_LEN + 1);
    return identity(field, true, id, &is_plain);
}

void
slh_event_identity(const json_t *obj, char id[SLH_EVENT_ID_LEN + 1])
{
    char legacy_id[SLH_EVENT_ID_LEN + 1];
    const json_t *field[SLH_FIELDS];

    find_fields(obj, field);
    identities(field, id, legacy_id);
}

void
slh_event_legacy_id(const json_t *obj, char legacy_id[SLH_EVENT_ID_LEN + 1])
{
    char id[SLH_EVENT_ID_LEN + 1];
    const json_t *field[SLH_FIELDS];

    find_fields(obj, field);
    identities(field, id, legacy_id);
}

/* Reads exactly n digits at *s into *v, moving *s past them. */
static bool
digits(const char **s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*s)++) {
        if (**s < '0' || **s > '9')
            return false;
        *v = *v * 10 + (**s - '0');
    }
    return true;
}

/* Reads c at *s, moving past it. */
static bool
expect(const char **s, char c)
{
    if (**s != c)
        return false;
    (*s)++;
    return true;
}

/* "HH:MM:SS" at *s into t. */
static bool
clock_time(const char **s, struct tm *t)
{
    return digits(s, 2, &t->tm_hour) && expect(s, ':') &&
           digits(s, 2, &t->tm_min) && expect(s, ':') &&
           digits(s, 2, &t->tm_sec);
}

/* ISO 8601: "YYYY-MM-DDTHH:MM:SS[.f...][Z|+hh:mm|-hh:mm]". */
static bool
iso_time(const char *s, struct tm *t, int *usec, int *offset)
{
    int oh, om;

    if (!digits(&s, 4, &t->tm_year) || !expect(&s, '-') ||
        !digits(&s, 2, &t->tm_mon) || !expect(&s, '-') ||
        !digits(&s, 2, &t->tm_mday) || (*s != 'T' && *s != ' '))
        return false;
    s++;
    if (!clock_time(&s, t))
        return false;
    if (expect(&s, '.')) {
        int scale = 100000;
        if (*s < '0' || *s > '9')
            return false;
        for (; *s >= '0' && *s <= '9'; s++, scale /= 10)
            *usec += (*s - '0') * scale;
    }
    if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1;
        if (!digits(&s, 2, &oh) || !expect(&s, ':') || !digits(&s, 2, &om))
            return false;
        *offset = sign * (oh * 3600 + om * 60);
    } else {
        expect(&s, 'Z');
    }
    return *s == '\0';
}

/* RFC 1123: "Www, DD Mon YYYY HH:MM:SS GMT". */
static bool
http_time(const char *s, struct tm *t)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

    if (strlen(s) != sizeof("Thu, 02 May 2024 08:16:01 GMT") - 1 ||
        s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        strcmp(s + 25, " GMT") != 0)
        return false;
    s += 5;
    if (!digits(&s, 2, &t->tm_mday))
        return false;
    t->tm_mon = 0;
    for (int m = 0; m < 12; m++)
        if (strncmp(s + 1, months + 3 * m, 3) == 0)
            t->tm_mon = m + 1;
    s += 5;
    return t->tm_mon != 0 && digits(&s, 4, &t->tm_year) && expect(&s, ' ') &&
           clock_time(&s, t);
}

/* Days from 1970-01-01 to the proleptic Gregorian y-m-d (m 1..12). By hand
 * rather than timegm(), whose first call reads /etc/localtime: a file read
 * for every slhook.cgi process, for a zone this never uses. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t
slh_event_at(const json_t *datetime)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *s = json_string_value(datetime);
    struct tm t = {0};
    int usec = 0, offset = 0;
    int64_t secs;

    if (s == NULL || (!iso_time(s, &t, &usec, &offset) && !http_time(s, &t)))
        return 0;
    if (t.tm_mon < 1 || t.tm_mon > 12 || t.tm_mday < 1 ||
        t.tm_mday > mdays[t.tm_mon - 1] || t.tm_hour > 23 || t.tm_min > 59 ||
        t.tm_sec > 60)
        return 0;
    secs = days_from_civil(t.tm_year, t.tm_mon, t.tm_mday) * 86400 +
           t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec - offset;
    if (secs < 0)
        return 0;
    return secs * 1000000 + usec;
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
    find_fields(ev->obj, ev->field);
    type = ev->field[SLH_FIELD_TYPE];
    if (type == NULL)
        return slh_error_set(err, SLH_EEVENT, "%sno Type", where);
    if (!json_is_string(type))
        return slh_error_set(err, SLH_EEVENT, "%sType is not a string", where);
    if (json_string_length(type) == 0)
        return slh_error_set(err, SLH_EEVENT, "%sType is empty", where);
    ev->type = json_string_value(type);
    ev->is_validation = strcasecmp(ev->type, "Validation") == 0;
    ev->tracking =
        enum_value(ev->field[SLH_FIELD_TRACKING_TYPE], tracking_names);
    if (ev->tracking == -2)
        return slh_error_set(err, SLH_EEVENT,
                             "%sTrackingType is not 0, 1, 2, Click, Open or "
                             "Unsubscribe",
                             where);
    if (enum_value(ev->field[SLH_FIELD_FAILURE_TYPE], failure_names) == -2)
        return slh_error_set(err, SLH_EEVENT,
                             "%sFailureType is not 0, 1, 2, Temporary, "
                             "Permanent or Suppressed",
                             where);
    if (!identities(ev->field, ev->id, ev->legacy_id))
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    ev->at = slh_event_at(ev->field[SLH_FIELD_DATE_TIME]);
    return SLH_OK;
}

/* Takes the new reference obj into ev and checks it. */
static enum slh_err
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

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decodes src[0..len) ('+' is a space, %XX a byte) into dst, which has room
 * for len bytes; *out gets the decoded length. -1 on a bad escape.
 */
static int
form_decode(char *dst, size_t *out, const char *src, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] == '+') {
            dst[n++] = ' ';
        } else if (src[i] == '%') {
            int hi, lo;
            if (len - i < 3)
                return -1;
            hi = hex_digit(src[i + 1]);
            lo = hex_digit(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            dst[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[n++] = src[i];
        }
    }
    *out = n;
    return 0;
}

/*
 * A new JSON string of s[0..len): SLH_EPARSE when it is not UTF-8 or holds
 * a NUL. json_stringn() validates but answers NULL for out of memory too;
 * the unchecked variant tells the two apart.
 */
static enum slh_err
form_string(json_t **out, const char *s, size_t len)
{
    json_t *probe;

    *out = NULL;
    if (memchr(s, '\0', len) != NULL)
        return SLH_EPARSE;
    *out = json_stringn(s, len);
    if (*out != NULL)
        return SLH_OK;
    probe = json_stringn_nocheck(s, len);
    if (probe == NULL)
        return SLH_ENOMEM;
    json_decref(probe);
    return SLH_EPARSE;
}

/* One name=value pair (field i of the body) into obj. */
static enum slh_err
form_field(json_t *obj, json_t *seen, char *buf, const char *pair, size_t len,
           size_t i, struct slh_error *err)
{
    const char *eq = memchr(pair, '=', len);
    size_t nraw = eq != NULL ? (size_t)(eq - pair) : len;
    size_t nlen, vlen;
    char *val;
    json_t *jname = NULL, *jval = NULL;
    bool is_duplicate;
    enum slh_err rc;

    if (form_decode(buf, &nlen, pair, nraw) != 0) {
        rc = slh_error_set(err, SLH_EPARSE,
                           "form field %zu: bad percent escape in name", i);
        goto out;
    }
    val = buf + nlen;
    if (eq == NULL) {
        vlen = 0;
    } else if (form_decode(val, &vlen, eq + 1, len - nraw - 1) != 0) {
        rc = slh_error_set(err, SLH_EPARSE,
                           "form field %zu: bad percent escape", i);
        goto out;
    }
    if (nlen == 0) {
        rc = slh_error_set(err, SLH_EPARSE, "form field %zu: empty name", i);
        goto out;
    }
    rc = form_string(&jname, buf, nlen);
    if (rc == SLH_OK)
        rc = form_string(&jval, val, vlen);
    if (rc == SLH_ENOMEM) {
        slh_error_set(err, rc, "out of memory");
        goto out;
    }
    if (rc != SLH_OK) {
        slh_error_set(err, rc, "form field %zu: not UTF-8 text, or holds a NUL",
                      i);
        goto out;
    }
    rc = seen_add(seen, buf, nlen, &is_duplicate);
    if (rc != SLH_OK) {
        slh_error_set(err, rc, "out of memory");
        goto out;
    }
    if (is_duplicate) {
        rc = slh_error_set(err, SLH_EPARSE, "form field %zu: name given twice",
                           i);
        goto out;
    }
    if (json_object_setn_new_nocheck(obj, json_string_value(jname), nlen,
                                     jval) != 0) {
        jval = NULL; /* stolen even on failure */
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto out;
    }
    jval = NULL;
out:
    json_decref(jname);
    json_decref(jval);
    return rc;
}

static enum slh_err
parse_form(struct slh_batch *batch, const char *body, size_t len,
           struct slh_error *err)
{
    json_t *obj = json_object(), *seen = json_object();
    char *buf = malloc(len + 1);
    size_t start = 0, i = 0;
    enum slh_err rc = SLH_OK;

    if (obj == NULL || seen == NULL || buf == NULL) {
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto out;
    }
    /* A form encoder escapes CR and LF, so raw ones at the end are not
     * data: they come from a file saved with a final newline (curl
     * --data-binary @file). Kept, they would change the last value. */
    while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r'))
        len--;
    if (len == 0) {
        rc = slh_error_set(err, SLH_EPARSE, "empty form body");
        goto out;
    }
    while (start <= len) {
        const char *amp = memchr(body + start, '&', len - start);
        size_t end = amp != NULL ? (size_t)(amp - body) : len;
        rc = form_field(obj, seen, buf, body + start, end - start, i, err);
        if (rc != SLH_OK)
            goto out;
        start = end + 1;
        i++;
    }
    batch->events = calloc(1, sizeof(*batch->events));
    if (batch->events == NULL) {
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto out;
    }
    batch->n = 1;
    rc = event_take(&batch->events[0], obj, "", err);
    obj = NULL;
out:
    json_decref(obj);
    json_decref(seen);
    free(buf);
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
        rc = parse_form(batch, body, len, err);
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

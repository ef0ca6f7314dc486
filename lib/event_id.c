#include "event_int.h"

#include "digest.h"

#include <stdio.h>
#include <string.h>

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
    for (f = 0; f < EVENT_IDENTITY_FIELDS; f++) {
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
bool
event_identities(const json_t *const field[SLH_FIELDS],
                 char id[SLH_EVENT_ID_LEN + 1],
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

/* Both identities of the event obj; out of memory leaves them "". */
static void
both_ids(const json_t *obj, char id[SLH_EVENT_ID_LEN + 1],
         char legacy_id[SLH_EVENT_ID_LEN + 1])
{
    const json_t *field[SLH_FIELDS];

    event_find_fields(obj, field);
    event_identities(field, id, legacy_id);
}

void
slh_event_identity(const json_t *obj, char id[SLH_EVENT_ID_LEN + 1])
{
    char legacy_id[SLH_EVENT_ID_LEN + 1];

    both_ids(obj, id, legacy_id);
}

void
slh_event_legacy_id(const json_t *obj, char legacy_id[SLH_EVENT_ID_LEN + 1])
{
    char id[SLH_EVENT_ID_LEN + 1];

    both_ids(obj, id, legacy_id);
}

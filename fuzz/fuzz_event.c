/* libFuzzer target: the request body parser (lib/event*.c).
 *
 * Input: one byte choosing the media type (even: JSON, odd: form), then the
 * body. Besides crashes and sanitizer reports, it checks the parser's
 * contract: a failure leaves the batch empty with a printable reason; a
 * success gives events with a string Type, a stable hex id, and a relay body
 * that is JSON without any SecretKey; and the counts slh_body_shape() takes
 * before parsing agree with the tree Jansson makes of any JSON it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "event.h"
#include "fuzz.h"
#include "../tests/tree_shape.h"

static bool
is_hex_id(const char *id)
{
    size_t i;

    for (i = 0; id[i] != '\0'; i++)
        if (strchr("0123456789abcdef", id[i]) == NULL)
            return false;
    return i == SLH_EVENT_ID_LEN;
}

/* The relay body is the event minus its SecretKey fields, in key order. */
static void
check_relay_body(const struct slh_event *ev)
{
    json_error_t jerr;
    char *body = slh_event_body(ev);
    json_t *relayed;
    void *it, *jt;

    if (body == NULL)
        return; /* out of memory (libFuzzer's -malloc_limit_mb) */
    relayed = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_ASSERT(json_is_object(relayed), "relay body is no object: %s: %s",
                jerr.text, body);
    jt = json_object_iter(relayed);
    for (it = json_object_iter(ev->obj); it != NULL;
         it = json_object_iter_next(ev->obj, it)) {
        const char *key = json_object_iter_key(it);

        if (strcasecmp(key, "SecretKey") == 0)
            continue;
        FUZZ_ASSERT(jt != NULL && strcmp(json_object_iter_key(jt), key) == 0,
                    "relay body lost or reordered key '%s': %s", key, body);
        FUZZ_ASSERT(
            json_equal(json_object_iter_value(jt), json_object_iter_value(it)),
            "relay body changed the value of '%s': %s", key, body);
        jt = json_object_iter_next(relayed, jt);
    }
    FUZZ_ASSERT(jt == NULL, "relay body has extra keys: %s", body);
    json_decref(relayed);
    free(body);
}

static void
check_event(const struct slh_event *ev)
{
    char id[SLH_EVENT_ID_LEN + 1];
    json_t *type;

    FUZZ_ASSERT(json_is_object(ev->obj), "event is no object");
    type = slh_event_get(ev->obj, "Type");
    FUZZ_ASSERT(json_is_string(type) && ev->type == json_string_value(type) &&
                    ev->type[0] != '\0',
                "Type is not the event's non-empty string Type");
    FUZZ_ASSERT(ev->is_validation == (strcasecmp(ev->type, "Validation") == 0),
                "is_validation wrong for Type '%s'", ev->type);
    FUZZ_ASSERT(ev->tracking >= SLH_TRACKING_NONE &&
                    ev->tracking <= SLH_TRACKING_UNSUBSCRIBE,
                "tracking %d out of range", ev->tracking);
    FUZZ_ASSERT(is_hex_id(ev->id), "id '%s' is not 64 hex digits", ev->id);
    slh_event_identity(ev->obj, id);
    FUZZ_ASSERT(strcmp(id, ev->id) == 0, "identity not stable: %s vs %s", id,
                ev->id);
    slh_event_legacy_id(ev->obj, id);
    FUZZ_ASSERT(
        strcmp(id, ev->legacy_id) == 0 &&
            (id[0] == '\0' || (is_hex_id(id) && strcmp(id, ev->id) != 0)),
        "legacy id '%s' is not '' or another id than %s", id, ev->id);
    for (int f = 0; f < SLH_FIELDS; f++)
        FUZZ_ASSERT(ev->field[f] == slh_event_get(ev->obj, slh_field_name(f)),
                    "field %s is not the one slh_event_get() finds",
                    slh_field_name(f));
    check_relay_body(ev);
}

static void
check_shape(const char *body, size_t len, enum slh_media media)
{
    struct slh_shape sh;
    struct tree_shape t;
    json_t *root;

    slh_body_shape(body, len, media, &sh);
    FUZZ_ASSERT(sh.depth <= SLH_MAX_DEPTH + 1 && sh.longest <= len &&
                    sh.event_values <= sh.values &&
                    (sh.events == 0 || sh.big_event >= 1) &&
                    sh.big_event <= sh.events,
                "shape out of bounds");
    if (media != SLH_MEDIA_JSON)
        return;
    root =
        json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (root == NULL)
        return;
    tree_shape(root, &t);
    if (t.depth > SLH_MAX_DEPTH)
        FUZZ_ASSERT(sh.depth == SLH_MAX_DEPTH + 1, "depth %zu counted %zu",
                    t.depth, sh.depth);
    else
        FUZZ_ASSERT(sh.events == t.events && sh.values == t.values &&
                        sh.event_values == t.event_values &&
                        sh.depth == t.depth,
                    "shape %zu events %zu values (%zu) depth %zu; tree %zu "
                    "%zu (%zu) %zu",
                    sh.events, sh.values, sh.event_values, sh.depth, t.events,
                    t.values, t.event_values, t.depth);
    json_decref(root);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct slh_batch batch;
    struct slh_error err = {0};
    enum slh_media media;
    enum slh_err rc;
    char *body;

    if (size < 1)
        return 0;
    media = (data[0] & 1) != 0 ? SLH_MEDIA_FORM : SLH_MEDIA_JSON;
    /* Exactly the body's bytes in a buffer of their own, so that ASan sees
     * any read past its end. */
    body = malloc(size > 1 ? size - 1 : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data + 1, size - 1);
    check_shape(body, size - 1, media);
    rc = slh_batch_parse(&batch, body, size - 1, media, &err);
    if (rc != SLH_OK) {
        FUZZ_ASSERT(batch.n == 0 && batch.events == NULL,
                    "failed parse left %zu events", batch.n);
        FUZZ_ASSERT(err.code == rc && err.text[0] != '\0',
                    "failure %d without a reason", (int)rc);
        FUZZ_ASSERT(rc == SLH_EPARSE || rc == SLH_EEVENT || rc == SLH_ENOMEM,
                    "unexpected code %d: %s", (int)rc, err.text);
        FUZZ_ASSERT(fuzz_is_printable(err.text),
                    "error text is not printable ASCII: %s", err.text);
    } else {
        FUZZ_ASSERT(batch.n > 0 && batch.events != NULL, "success, no events");
        FUZZ_ASSERT(err.code == SLH_OK, "success with an error set");
        for (size_t i = 0; i < batch.n; i++)
            check_event(&batch.events[i]);
    }
    slh_batch_free(&batch);
    FUZZ_ASSERT(batch.n == 0 && batch.events == NULL, "free left events");
    free(body);
    return 0;
}

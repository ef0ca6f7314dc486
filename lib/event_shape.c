#include "event.h"

#include <stdint.h>
#include <string.h>

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

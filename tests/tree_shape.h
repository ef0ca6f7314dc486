/* tree_shape.h: what slh_body_shape() (event.h) should count, read off
 * Jansson's own tree of a body Jansson accepts. test_event and fuzz_event
 * both hold the counting to it. Header-only: each includes it once. */
#ifndef SLH_TESTS_TREE_SHAPE_H
#define SLH_TESTS_TREE_SHAPE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct tree_shape {
    size_t events;       /* an array's members, else 1 */
    size_t values;       /* every value; keys are not values */
    size_t event_values; /* the most values in one event */
    size_t depth;        /* the deepest object or array, the top one 1 */
};

static void
tree_count(const json_t *v, size_t level, size_t *values, size_t *depth)
{
    const char *key;
    json_t *m;
    size_t i;

    (*values)++;
    if ((json_is_object(v) || json_is_array(v)) && level + 1 > *depth)
        *depth = level + 1;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)(uintptr_t)v, key, m)
            tree_count(m, level + 1, values, depth);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, m) tree_count(m, level + 1, values, depth);
    }
}

/* The shape of root: a top-level array's members are the events. */
static void
tree_shape(const json_t *root, struct tree_shape *t)
{
    *t = (struct tree_shape){.events = 1};
    if (json_is_array(root)) {
        json_t *m;
        size_t i;

        t->events = json_array_size(root);
        t->depth = 1;
        json_array_foreach(root, i, m)
        {
            size_t before = t->values;

            tree_count(m, 1, &t->values, &t->depth);
            if (t->values - before > t->event_values)
                t->event_values = t->values - before;
        }
    } else {
        tree_count(root, 0, &t->values, &t->depth);
        t->event_values = t->values;
    }
}

#endif

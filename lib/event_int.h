/* event_int.h: what the pieces of the event module (lib/event*.c) share.
 * Internal: not library API, so the names carry no slh_ prefix. */
#ifndef SLH_EVENT_INT_H
#define SLH_EVENT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "err.h"
#include "event.h"

/* The identity hashes the fields of enum slh_field before this one. */
#define EVENT_IDENTITY_FIELDS (SLH_FIELD_URL + 1)

/* Fills field[] from obj in one pass over its keys (the first match of each
 * name, any case); absent fields are NULL. Borrowed from obj. */
void event_find_fields(const json_t *obj, const json_t *field[SLH_FIELDS]);

/*
 * Records key[0..len) in the object seen under its lowercase spelling;
 * *is_duplicate tells whether it was there already. SLH_ENOMEM when out of
 * memory.
 */
enum slh_err event_seen_add(json_t *seen, const char *key, size_t len,
                            bool *is_duplicate);

/*
 * Takes the new reference obj into ev (which owns it even on failure) and
 * checks and fills ev from it. where prefixes error texts ("event 2: ", or
 * "" for a lone event).
 */
enum slh_err event_take(struct slh_event *ev, json_t *obj, const char *where,
                        struct slh_error *err);

/*
 * Both identities of the fields field[] (event.h): id, and legacy_id when it
 * differs (else ""). False when memory ran out.
 */
bool event_identities(const json_t *const field[SLH_FIELDS],
                      char id[SLH_EVENT_ID_LEN + 1],
                      char legacy_id[SLH_EVENT_ID_LEN + 1]);

/* A legacy form body (slh_batch_parse()) into the empty batch. */
enum slh_err event_parse_form(struct slh_batch *batch, const char *body,
                              size_t len, struct slh_error *err);

#endif

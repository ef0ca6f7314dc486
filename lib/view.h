/* view.h: what `slhook events` and `slhook show` show of a stored event
 * (store.h), as text for people and as JSON Lines for programs. Pure
 * functions of the event: the front end prints what they return. */
#ifndef SLH_VIEW_H
#define SLH_VIEW_H

#include <stdbool.h>

#include <jansson.h>

#include "store.h"

/*
 * A delivery row's state by name: "pending", "retrying" (pending, its last
 * attempt failed), "dead" or "delivered". Static.
 */
const char *slh_view_state(const struct slh_store_row *r);

/*
 * The store filter bits (struct slh_store_filter's states and is_retrying)
 * for a state name a user gave: the four above ("pending" includes
 * retrying). false for any other name, leaving both untouched.
 */
bool slh_view_state_filter(const char *name, unsigned *states,
                           bool *is_retrying);

/*
 * The text of field name (matched as slh_event_get() does: any case) of
 * the stored relay body, as a new string (free()): a string as it is, a
 * number or true/false as JSON writes it. NULL when the body has no such
 * field, it is null, an object or an array, the body is not a JSON object,
 * or out of memory.
 */
char *slh_view_field(const char *body, const char *name);

/*
 * The states bits of struct slh_store_replay for `replay --state NAME`:
 * "delivered", "dead", or "any" (SLH_STORE_REPLAY_ANY: either, or no row
 * yet). false for any other name, leaving *states untouched.
 */
bool slh_view_replay_state(const char *name, unsigned *states);

/* The header line of slh_view_line()'s columns, no newline. Static. */
const char *slh_view_header(void);

/*
 * One line (no newline) for `slhook events`: the received time (RFC 3339,
 * seconds), the id's first 12 hex characters, Type, Address, MessageId
 * ("-" for none) and each destination's "NAME=STATE". Control characters
 * and spaces in the body's values show as '?', so one event is one line of
 * whitespace-separated columns. A new string (free()); NULL when out of
 * memory.
 */
char *slh_view_line(const struct slh_store_event *ev);

/*
 * One JSON Lines object (compact, no newline) for `slhook events --json`:
 * {"id", "received" (RFC 3339 with milliseconds), "type", "message_id",
 * "address" (null when absent), "deliveries": {NAME: {"state",
 * "attempts", "last_status" (null when none), "last_error" (null when
 * none), "next_attempt" (RFC 3339 with milliseconds while pending, else
 * null)}}}. A new string (free()); NULL when out of memory.
 */
char *slh_view_json(const struct slh_store_event *ev);

/* The object of slh_view_json(), as a new reference; NULL when out of
 * memory. For the operator's page (page.h), which sends it in arrays. */
json_t *slh_view_object(const struct slh_store_event *ev);

/*
 * What `slhook show` prints of one event, newline-terminated lines: its
 * id, received time, Type, MessageId, Address, the body exactly as stored
 * and relayed (no SecretKey: it is never stored), then a table with a line
 * per destination: state, attempts, last status, next attempt, last error.
 * A new string (free()); NULL when out of memory.
 */
char *slh_view_show(const struct slh_store_event *ev);

#endif

/* test_view: what events/show print of a stored event (view.h), from
 * events made by hand: no store. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "view.h"

/* 2026-12-02T10:00:00Z */
#define T0 INT64_C(1796205600000)
/* A string for a message, never NULL. */
#define S(s) ((s) != NULL ? (s) : "(null)")
#define ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char body[] = "{\"Type\":\"Failed\",\"MessageId\":\"m-1\","
                     "\"Address\":\"bob@example.com\",\"ServerId\":40211,"
                     "\"Response\":\"550 no\\nsuch user\"}";

static struct slh_store_row rows[] = {
    {.dest = "crm",
     .state = SLH_PENDING,
     .attempts = 2,
     .last_status = 503,
     .last_error = "HTTP 503",
     .due = T0 + 60000,
     .is_retrying = true},
    {.dest = "file", .state = SLH_DELIVERED, .attempts = 1, .due = T0 + 5},
    {.dest = "old",
     .state = SLH_DEAD,
     .attempts = 9,
     .last_status = 410,
     .last_error = "HTTP 410",
     .due = T0 + 9},
    {.dest = "new", .state = SLH_PENDING, .due = T0 + 123},
};

static struct slh_store_event event = {
    .seq = 1,
    .id = ID,
    .type = "Failed",
    .received = T0 + 250,
    .body = body,
    .rows = rows,
    .n_rows = 4,
};

static void
test_states(void)
{
    unsigned states = 99;
    bool retrying = true;

    CHECK(strcmp(slh_view_state(&rows[0]), "retrying") == 0 &&
              strcmp(slh_view_state(&rows[1]), "delivered") == 0 &&
              strcmp(slh_view_state(&rows[2]), "dead") == 0 &&
              strcmp(slh_view_state(&rows[3]), "pending") == 0,
          "the four state names");
    CHECK(slh_view_state_filter("pending", &states, &retrying) &&
              states == 1u << SLH_PENDING && !retrying,
          "pending: its bit, retrying included");
    CHECK(slh_view_state_filter("retrying", &states, &retrying) &&
              states == 1u << SLH_PENDING && retrying,
          "retrying: pending that failed before");
    CHECK(slh_view_state_filter("dead", &states, &retrying) &&
              states == 1u << SLH_DEAD && !retrying,
          "dead");
    CHECK(slh_view_state_filter("delivered", &states, &retrying) &&
              states == 1u << SLH_DELIVERED,
          "delivered");
    CHECK(slh_view_replay_state("delivered", &states) &&
              states == 1u << SLH_DELIVERED &&
              slh_view_replay_state("dead", &states) &&
              states == 1u << SLH_DEAD &&
              slh_view_replay_state("any", &states) &&
              states == SLH_STORE_REPLAY_ANY &&
              (states & SLH_STORE_NO_ROW) != 0 &&
              (states & 1u << SLH_PENDING) == 0,
          "replay's states: delivered, dead, any (not pending; no row)");
    states = 7;
    CHECK(!slh_view_replay_state("pending", &states) &&
              !slh_view_replay_state(NULL, &states) && states == 7,
          "replay refuses pending");
    CHECK(!slh_view_state_filter("Dead", &states, &retrying) &&
              !slh_view_state_filter("any", &states, &retrying) &&
              !slh_view_state_filter(NULL, &states, &retrying) && states == 7,
          "other names refused, nothing changed");
}

static void
test_field(void)
{
    char *s;

    s = slh_view_field(body, "MessageId");
    CHECK(s != NULL && strcmp(s, "m-1") == 0, "a string: %s", S(s));
    free(s);
    s = slh_view_field(body, "address");
    CHECK(s != NULL && strcmp(s, "bob@example.com") == 0, "any case: %s", S(s));
    free(s);
    s = slh_view_field(body, "ServerId");
    CHECK(s != NULL && strcmp(s, "40211") == 0, "a number: %s", S(s));
    free(s);
    CHECK(slh_view_field(body, "Url") == NULL, "absent: NULL");
    CHECK(slh_view_field("{\"Address\":null}", "Address") == NULL, "null");
    CHECK(slh_view_field("[1]", "Address") == NULL, "not an object");
    CHECK(slh_view_field("{oops", "Address") == NULL, "not JSON");
    CHECK(slh_view_field(NULL, "Address") == NULL, "no body");
}

static void
test_line(void)
{
    char *s = slh_view_line(&event);
    char want[512];

    CHECK(s != NULL && strchr(s, '\n') == NULL, "one line");
    snprintf(want, sizeof(want),
             "%-20s  %-12s  %-12s  %-28s  %-20s  crm=retrying "
             "file=delivered old=dead new=pending",
             "2026-12-02T10:00:00Z", "0123456789ab", "Failed",
             "bob@example.com", "m-1");
    CHECK(s != NULL && strcmp(s, want) == 0, "the columns:\n%s\n%s", S(s),
          want);
    free(s);
    CHECK(strncmp(slh_view_header(), "RECEIVED", 8) == 0 &&
              strstr(slh_view_header(), "MESSAGE ID") != NULL,
          "a header");
    {
        char odd[] = "{\"Address\":\"a b\\tc\",\"MessageId\":\"\"}";
        struct slh_store_event e = {
            .id = ID, .type = "Bad Type", .received = T0, .body = odd};
        s = slh_view_line(&e);
        CHECK(s != NULL && strstr(s, "Bad?Type") != NULL &&
                  strstr(s, "a?b?c") != NULL &&
                  strstr(s, "a?b?c                         -") != NULL &&
                  strstr(s, " -") != NULL && s[strlen(s) - 1] == '-',
              "spaces and controls as '?', empty as '-', no rows '-': %s",
              S(s));
        free(s);
    }
}

static void
test_json(void)
{
    char *s = slh_view_json(&event);
    json_t *o = s != NULL ? json_loads(s, 0, NULL) : NULL;
    json_t *d = json_object_get(o, "deliveries");
    json_t *crm = json_object_get(d, "crm"), *file = json_object_get(d, "file");

    CHECK(s != NULL && strchr(s, '\n') == NULL && o != NULL,
          "one line of JSON: %s", S(s));
    CHECK(json_object_size(o) == 6 &&
              strcmp(json_string_value(json_object_get(o, "id")), ID) == 0 &&
              strcmp(json_string_value(json_object_get(o, "received")),
                     "2026-12-02T10:00:00.250Z") == 0 &&
              strcmp(json_string_value(json_object_get(o, "type")), "Failed") ==
                  0 &&
              strcmp(json_string_value(json_object_get(o, "message_id")),
                     "m-1") == 0 &&
              strcmp(json_string_value(json_object_get(o, "address")),
                     "bob@example.com") == 0,
          "the event's fields");
    CHECK(json_object_size(d) == 4 && json_object_size(crm) == 5 &&
              strcmp(json_string_value(json_object_get(crm, "state")),
                     "retrying") == 0 &&
              json_integer_value(json_object_get(crm, "attempts")) == 2 &&
              json_integer_value(json_object_get(crm, "last_status")) == 503 &&
              strcmp(json_string_value(json_object_get(crm, "last_error")),
                     "HTTP 503") == 0 &&
              strcmp(json_string_value(json_object_get(crm, "next_attempt")),
                     "2026-12-02T10:01:00.000Z") == 0,
          "a retrying row");
    CHECK(strcmp(json_string_value(json_object_get(file, "state")),
                 "delivered") == 0 &&
              json_is_null(json_object_get(file, "last_status")) &&
              json_is_null(json_object_get(file, "last_error")) &&
              json_is_null(json_object_get(file, "next_attempt")),
          "a delivered row: nulls");
    json_decref(o);
    free(s);
    {
        struct slh_store_event e = {
            .id = ID, .type = "Open", .received = T0, .body = "{}"};
        s = slh_view_json(&e);
        o = s != NULL ? json_loads(s, 0, NULL) : NULL;
        CHECK(json_is_null(json_object_get(o, "message_id")) &&
                  json_is_null(json_object_get(o, "address")) &&
                  json_object_size(json_object_get(o, "deliveries")) == 0,
              "absent fields null, no rows {}: %s", S(s));
        json_decref(o);
        free(s);
    }
}

static void
test_show(void)
{
    char *s = slh_view_show(&event);

    CHECK(s != NULL && strstr(s, "id:         " ID "\n") != NULL &&
              strstr(s, "received:   2026-12-02T10:00:00.250Z\n") != NULL &&
              strstr(s, "type:       Failed\n") != NULL &&
              strstr(s, "message_id: m-1\n") != NULL &&
              strstr(s, "address:    bob@example.com\n") != NULL,
          "the event's fields:\n%s", S(s));
    CHECK(s != NULL && strstr(s, "\nbody:       ") != NULL &&
              strstr(s, body) != NULL,
          "the body exactly as stored");
    CHECK(s != NULL &&
              strstr(s, "crm              retrying          2         503  "
                        "2026-12-02T10:01:00.000Z  HTTP 503\n") != NULL &&
              strstr(s, "file             delivered         1           -  "
                        "-                         -\n") != NULL &&
              strstr(s, "old              dead              9         410") !=
                  NULL,
          "a line per destination:\n%s", S(s));
    free(s);
}

int
main(void)
{
    test_states();
    test_field();
    test_line();
    test_json();
    test_show();
    return check_summary();
}

/* fixture_store.h: every SocketLabs fixture stored in a store, and what
 * was stored, for the test programs that claim them back (test_store,
 * test_queue). Include after check.h and fixture_each.h, with T0 (the
 * time they are stored at) and MAX_EVENTS defined. */
#ifndef SLH_TEST_FIXTURE_STORE_H
#define SLH_TEST_FIXTURE_STORE_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "event.h"
#include "store.h"

/* Every stored fixture event: id, Type and relay body. */
static struct {
    char id[SLH_EVENT_ID_LEN + 1];
    char type[32];
    char *body;
} events[MAX_EVENTS];
static size_t n_events;

__attribute__((unused)) static const char *
body_of(const char *id)
{
    for (size_t i = 0; i < n_events; i++)
        if (strcmp(events[i].id, id) == 0)
            return events[i].body;
    return NULL;
}

__attribute__((unused)) static bool
load_config(struct slh_config *cfg, const char *spool, const char *dests)
{
    char text[2048];
    struct slh_error err = {0};

    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s\n%s",
             spool, dests);
    return CHECK(slh_config_parse(cfg, text, "test.ini", &err) == SLH_OK,
                 "config: %s", err.text);
}

struct put_ctx {
    struct slh_store *sp;
    const struct slh_config *cfg;
};

/* Stores one fixture request at T0 and remembers its events. */
static void
put_fixture(const char *name, const char *body, size_t len,
            enum slh_media media, void *arg)
{
    const struct put_ctx *ctx = arg;
    struct slh_batch batch = {0};
    const struct slh_batch *one = &batch;
    struct slh_error err = {0};

    if (CHECK(slh_batch_parse(&batch, body, len, media, &err) == SLH_OK,
              "%s: %s", name, err.text) &&
        CHECK(slh_store_put(ctx->sp, ctx->cfg, &one, 1, T0, NULL, &err) ==
                  SLH_OK,
              "put %s: %s", name, err.text)) {
        for (size_t i = 0; i < batch.n; i++) {
            const struct slh_event *ev = &batch.events[i];
            if (ev->is_validation || body_of(ev->id) != NULL ||
                n_events == MAX_EVENTS)
                continue;
            memcpy(events[n_events].id, ev->id, sizeof(ev->id));
            snprintf(events[n_events].type, sizeof(events[0].type), "%s",
                     ev->type);
            events[n_events].body = slh_event_body(ev);
            n_events++;
        }
    }
    slh_batch_free(&batch);
}

__attribute__((unused)) static void
put_fixtures(struct slh_store *sp, const struct slh_config *cfg)
{
    struct put_ctx ctx = {sp, cfg};

    fixture_each(put_fixture, &ctx);
}

__attribute__((unused)) static size_t
count_type(const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < n_events; i++)
        n += strcmp(events[i].type, type) == 0;
    return n;
}

/* Frees what the fixtures' bodies hold. */
__attribute__((unused)) static void
fixture_store_free(void)
{
    for (size_t i = 0; i < n_events; i++)
        free(events[i].body);
    n_events = 0;
}

#endif

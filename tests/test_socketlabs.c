/* test_socketlabs.c: the SocketLabs name tables, and that the parser, the
 * config's filters and the samples read them alike; the samples' ServerId. */
#include "socketlabs.h"

#include "config.h"
#include "event.h"
#include "sample.h"

#include "check.h"

static void
test_tables(void)
{
    static const char *const types[] = {"Queued", "Deferred",  "Delivered",
                                        "Failed", "Complaint", "Tracking"};

    for (int i = 0; i < SLH_SL_TYPES; i++)
        CHECK(strcmp(slh_sl_types[i], types[i]) == 0, "type %d is %s", i,
              slh_sl_types[i]);
    CHECK(strcmp(slh_sl_tracking_kinds[SLH_TRACKING_CLICK], "Click") == 0 &&
              strcmp(slh_sl_tracking_kinds[SLH_TRACKING_OPEN], "Open") == 0 &&
              strcmp(slh_sl_tracking_kinds[SLH_TRACKING_UNSUBSCRIBE],
                     "Unsubscribe") == 0,
          "tracking kinds are indexed by enum slh_tracking");
    CHECK(strcmp(slh_sl_failure_kinds[0], "Temporary") == 0 &&
              strcmp(slh_sl_failure_kinds[1], "Permanent") == 0 &&
              strcmp(slh_sl_failure_kinds[2], "Suppressed") == 0,
          "failure kinds in FailureType order");
    CHECK(strcmp(SLH_SL_VALIDATION, "Validation") == 0, "Validation");
}

static void
test_find(void)
{
    const char *buf = "openx";

    CHECK(slh_sl_find(slh_sl_tracking_kinds, SLH_SL_ENUM_VALUES, buf, 4) == 1,
          "a name is matched by its length, not a NUL");
    CHECK(slh_sl_find(slh_sl_tracking_kinds, SLH_SL_ENUM_VALUES, buf, 5) == -1,
          "a longer word is no name");
    CHECK(slh_sl_find(slh_sl_tracking_kinds, SLH_SL_ENUM_VALUES, "Cli", 3) ==
              -1,
          "a prefix is no name");
    CHECK(slh_sl_find(slh_sl_types, SLH_SL_TYPES, "cOMPLAINT", 9) == 4,
          "any case");
    CHECK(slh_sl_find(slh_sl_types, SLH_SL_TYPES, "Validation", 10) == -1,
          "Validation is not a stored Type");
}

static void
test_enum_text(void)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {{"0", 0},           {"1", 1},       {"2", 2},    {"3", -2},
                 {"01", -2},         {"", -1},       {"open", 1}, {"CLICK", 0},
                 {"Unsubscribe", 2}, {"Clicks", -2}, {" 1", -2},  {"-1", -2}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = slh_sl_enum_text(slh_sl_tracking_kinds, cases[i].text);
        CHECK(got == cases[i].want, "'%s' -> %d, want %d", cases[i].text, got,
              cases[i].want);
    }
    CHECK(slh_sl_enum_text(slh_sl_failure_kinds, "suppressed") == 2,
          "FailureType by name");
}

/* A sample of type made with cfg, parsed; NULL when either fails. */
static json_t *
sample_obj(const char *type, const struct slh_config *cfg)
{
    char *body = slh_sample_make(type, cfg, 1700000000);
    json_t *obj = body != NULL ? json_loads(body, 0, NULL) : NULL;

    free(body);
    return obj;
}

static void
load(struct slh_config *cfg, const char *text)
{
    struct slh_error err = {0};

    CHECK(slh_config_parse(cfg, text, "t.conf", &err) == SLH_OK,
          "config parses: %s", err.text);
}

/* Each table's names mean the same to the parser, the filters and the
 * samples. */
static void
test_users_agree(void)
{
    struct slh_config cfg;
    char text[256];
    json_t *obj;

    for (int k = 0; k < SLH_SL_ENUM_VALUES; k++) {
        const char *kind = slh_sl_tracking_kinds[k];
        struct slh_batch batch;
        char *body;

        snprintf(text, sizeof(text),
                 "[receiver]\nsecret_key = k\n[destination d]\nfile = "
                 "/tmp/x\nevents = Tracking:%s\n",
                 kind);
        load(&cfg, text);
        CHECK(cfg.n_dests == 1 && slh_dest_wants(&cfg.dests[0], "tracking", k),
              "filter Tracking:%s wants kind %d", kind, k);
        CHECK(cfg.n_dests == 1 &&
                  !slh_dest_wants(&cfg.dests[0], "Tracking", (k + 1) % 3),
              "filter Tracking:%s wants only kind %d", kind, k);
        obj = sample_obj(kind, &cfg);
        body = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
        CHECK(body != NULL &&
                  slh_batch_parse(&batch, body, strlen(body), SLH_MEDIA_JSON,
                                  NULL) == SLH_OK &&
                  batch.events[0].tracking == k &&
                  strcmp(batch.events[0].type, "Tracking") == 0,
              "the %s sample parses as tracking kind %d", kind, k);
        slh_batch_free(&batch);
        snprintf(text, sizeof(text),
                 "{\"Type\":\"Tracking\",\"TrackingType\":\"%s\"}", kind);
        CHECK(slh_batch_parse(&batch, text, strlen(text), SLH_MEDIA_JSON,
                              NULL) == SLH_OK &&
                  batch.events[0].tracking == k,
              "TrackingType \"%s\" parses as %d", kind, k);
        slh_batch_free(&batch);
        free(body);
        json_decref(obj);
        slh_config_free(&cfg);
    }
    for (int t = 0; t < SLH_SL_TYPES; t++) {
        snprintf(text, sizeof(text),
                 "[receiver]\nsecret_key = k\n[destination d]\nfile = "
                 "/tmp/x\nevents = %s\n",
                 slh_sl_types[t]);
        load(&cfg, text);
        CHECK(cfg.n_dests == 1 &&
                  slh_dest_wants(&cfg.dests[0], slh_sl_types[t], -1),
              "filter %s wants its Type", slh_sl_types[t]);
        obj = sample_obj(slh_sl_types[t], &cfg);
        CHECK(obj != NULL, "a %s sample", slh_sl_types[t]);
        json_decref(obj);
        slh_config_free(&cfg);
    }
}

/* Samples must pass the receiver they are made for: its first key and
 * ServerId, and a ServerId of SocketLabs' form when any is allowed. */
static void
test_sample_server_id(void)
{
    struct slh_config cfg;
    json_t *obj;

    load(&cfg, "[receiver]\nsecret_key = k1\nsecret_key = k2\n");
    obj = sample_obj("Delivered", &cfg);
    CHECK(json_integer_value(json_object_get(obj, "ServerId")) ==
              SLH_SAMPLE_SERVER_ID,
          "no server_id: ServerId %d", SLH_SAMPLE_SERVER_ID);
    CHECK(SLH_SAMPLE_SERVER_ID == 40211, "the fallback is 40211");
    CHECK(strcmp(json_string_value(json_object_get(obj, "SecretKey")), "k1") ==
              0,
          "the first secret_key");
    json_decref(obj);
    slh_config_free(&cfg);

    load(&cfg, "[receiver]\nsecret_key = k\nserver_id = 7 9\n");
    obj = sample_obj("Failed", &cfg);
    CHECK(json_integer_value(json_object_get(obj, "ServerId")) == 7,
          "the first server_id");
    json_decref(obj);
    slh_config_free(&cfg);

    memset(&cfg, 0, sizeof(cfg));
    CHECK(slh_sample_make("Queued", &cfg, 1700000000) == NULL,
          "no secret key: no sample");
    load(&cfg, "[receiver]\nsecret_key = k\n");
    CHECK(slh_sample_make("Bounce", &cfg, 1700000000) == NULL,
          "unknown type: no sample");
    slh_config_free(&cfg);
}

int
main(void)
{
    test_tables();
    test_find();
    test_enum_text();
    test_users_agree();
    test_sample_server_id();
    return check_summary();
}

/* test_config.c: the INI configuration, its defaults, values and errors. */
#include "config.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "deliver.h" /* slh_deliver_url_masked(), for the proxy */
#include "store.h"   /* slh_store_mask(), for the spool shown */

#define NAME "t.conf"
#define RECV "[receiver]\nsecret_key = k1\n" /* two lines */

static char tmpdir[] = "/tmp/slh-test-config-XXXXXX";

static const unsigned char whsec_bytes[24] = {
    0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a, 0xab, 0x4f, 0x08, 0xd4,
    0x3c, 0x3f, 0x08, 0x2c, 0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0};

static bool
is_zeroed(const struct slh_config *cfg)
{
    static const struct slh_config zero;

    return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

/* Writes text to tmpdir/name; returns the path (static buffer). */
static const char *
write_tmp(const char *name, const char *text, size_t len)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        CHECK(0, "cannot write %s", path);
        return path;
    }
    return path;
}

static void
remove_tmp(const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    unlink(path);
}

/* Parses text that must be good; the caller frees cfg. */
static bool
parse_good(struct slh_config *cfg, const char *text, int line)
{
    struct slh_error err = {0};
    enum slh_err rc = slh_config_parse(cfg, text, NAME, &err);

    return check_at(rc == SLH_OK, __FILE__, line, "should parse: %s", err.text);
}

#define PARSE_GOOD(cfg, text) parse_good((cfg), (text), __LINE__)

/* Parses text that must fail with an error text starting with want. */
static void
parse_bad(const char *text, const char *want, int line)
{
    struct slh_config cfg;
    struct slh_error err = {0};
    enum slh_err rc;

    memset(&cfg, 0x5a, sizeof(cfg));
    rc = slh_config_parse(&cfg, text, NAME, &err);
    if (!check_at(rc == SLH_ECONFIG && err.code == SLH_ECONFIG, __FILE__, line,
                  "should fail with '%s', got %d '%s'", want, rc, err.text)) {
        if (rc == SLH_OK)
            slh_config_free(&cfg);
        return;
    }
    check_at(strncmp(err.text, want, strlen(want)) == 0, __FILE__, line,
             "error '%s', want '%s...'", err.text, want);
    check_at(is_zeroed(&cfg), __FILE__, line, "config not zeroed on failure");
}

#define PARSE_BAD(text, want) parse_bad((text), (want), __LINE__)

static void
test_spec_example(void)
{
    static const char key[] = "Zk8pW3rT6yHs\r\n  \n";
    struct slh_config cfg;
    struct slh_error err = {0};
    const struct slh_dest *d;
    char *text, *key_path;
    const char *path;
    size_t len;

    key_path = strdup(write_tmp("secret", key, strlen(key)));
    len = strlen(key_path) + 2048;
    text = malloc(len);
    if (key_path == NULL || text == NULL) {
        CHECK(0, "out of memory");
        free(key_path);
        free(text);
        return;
    }
    snprintf(
        text, len,
        "[receiver]\n"
        "secret_key = q7Rt2mXw9LpB4sKd8Zf3       ; required (or "
        "secret_key_file); may repeat, for key rotation\n"
        "secret_key_file = %s     ; the key read from a file instead\n"
        "validation_key = 2hXq9aLw               ; optional legacy "
        "Notification API key\n"
        "server_id = 40211                        ; optional, may repeat: "
        "other ServerIds get 403\n"
        "allow_from = 142.0.176.0/20 52.152.150.178   ; optional source "
        "allow-list on REMOTE_ADDR\n"
        "max_body = 1048576                       ; bytes\n"
        "spool = /var/spool/slhook                ; the durable queue's "
        "directory\n"
        "\n"
        "[destination crm]                        ; any number of these; the "
        "name is the section's\n"
        "url = https://crm.example/hooks/email    ; POST target (http or "
        "https) ...\n"
        "; file = /var/log/slhook/events.jsonl    ; ... or a JSON Lines file "
        "to append to\n"
        "events = Failed Complaint                ; optional filter: Types, "
        "and Tracking:Click|Open|Unsubscribe\n"
        "header = Authorization: Bearer abc123    ; may repeat\n"
        "signing_secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw   ; Standard "
        "Webhooks signatures\n"
        "timeout = 10                             ; seconds per attempt\n"
        "max_age = 4d                             ; then the event becomes a "
        "dead letter for this destination\n",
        key_path);
    path = write_tmp("slhook.conf", text, strlen(text));

    if (CHECK(slh_config_load(&cfg, path, &err) == SLH_OK,
              "spec example loads: %s", err.text)) {
        CHECK(cfg.path != NULL && strcmp(cfg.path, path) == 0, "path kept");
        CHECK(cfg.n_secret_keys == 2, "two keys, got %zu", cfg.n_secret_keys);
        if (cfg.n_secret_keys == 2) {
            CHECK(strcmp(cfg.secret_keys[0], "q7Rt2mXw9LpB4sKd8Zf3") == 0,
                  "secret_key first, inline comment cut");
            CHECK(strcmp(cfg.secret_keys[1], "Zk8pW3rT6yHs") == 0,
                  "file key last, trailing CR/LF/space stripped: '%s'",
                  cfg.secret_keys[1]);
        }
        CHECK(cfg.validation_key != NULL &&
                  strcmp(cfg.validation_key, "2hXq9aLw") == 0,
              "validation_key");
        CHECK(cfg.n_server_ids == 1 && cfg.server_ids[0] == 40211, "server_id");
        CHECK(cfg.n_allow == 2, "two allow_from blocks");
        CHECK(slh_cidr_match(cfg.allow, cfg.n_allow, "142.0.191.255") &&
                  slh_cidr_match(cfg.allow, cfg.n_allow, "52.152.150.178") &&
                  !slh_cidr_match(cfg.allow, cfg.n_allow, "142.0.192.0"),
              "allow_from blocks match");
        CHECK(cfg.max_body == 1048576, "max_body");
        CHECK(strcmp(cfg.spool, "/var/spool/slhook") == 0, "spool");
        CHECK(cfg.n_dests == 1, "one destination");
        d = slh_config_dest(&cfg, "crm");
        if (CHECK(d != NULL, "destination crm found")) {
            CHECK(d->url != NULL &&
                      strcmp(d->url, "https://crm.example/hooks/email") == 0,
                  "url");
            CHECK(d->file == NULL, "commented-out file is not set");
            CHECK(d->n_events == 2 && strcmp(d->events[0], "Failed") == 0 &&
                      strcmp(d->events[1], "Complaint") == 0,
                  "events as written");
            CHECK(d->n_headers == 1 &&
                      strcmp(d->headers[0], "Authorization: Bearer abc123") ==
                          0,
                  "header as written");
            CHECK(d->signing_key_len == 24 &&
                      memcmp(d->signing_key, whsec_bytes, 24) == 0,
                  "signing_secret decodes to 24 bytes");
            CHECK(d->timeout == 10, "timeout");
            CHECK(d->max_age == 4 * 86400, "max_age 4d");
            CHECK(d->line == 10, "section line %d, want 10", d->line);
        }
        CHECK(slh_config_dest(&cfg, "CRM") == NULL, "names are exact");
        CHECK(slh_config_dest(&cfg, "other") == NULL, "no such destination");
        slh_config_free(&cfg);
        CHECK(is_zeroed(&cfg), "free zeroes the config");
        slh_config_free(&cfg);
    }
    remove_tmp("slhook.conf");
    remove_tmp("secret");
    free(text);
    free(key_path);
}

static void
test_defaults(void)
{
    struct slh_config cfg;
    const struct slh_dest *d;

    if (PARSE_GOOD(&cfg, RECV)) {
        CHECK(cfg.n_secret_keys == 1 && strcmp(cfg.secret_keys[0], "k1") == 0,
              "one key");
        CHECK(cfg.validation_key == NULL, "no validation_key by default");
        CHECK(cfg.n_server_ids == 0 && cfg.server_ids == NULL,
              "any ServerId by default");
        CHECK(cfg.n_allow == 0, "anyone by default");
        CHECK(cfg.max_body == SLH_DEFAULT_MAX_BODY, "default max_body");
        CHECK(cfg.max_events == SLH_DEFAULT_MAX_EVENTS && cfg.max_events == 100,
              "default max_events %zu", cfg.max_events);
        CHECK(cfg.read_timeout == SLH_DEFAULT_READ_TIMEOUT,
              "default read_timeout");
        CHECK(cfg.retention == 7 * 86400 && SLH_DEFAULT_RETENTION == 7 * 86400,
              "default retention 7d");
        CHECK(cfg.spool != NULL && strcmp(cfg.spool, SLH_DEFAULT_SPOOL) == 0,
              "default spool");
        CHECK(cfg.n_dests == 0 && cfg.dests == NULL, "no destinations");
        CHECK(cfg.path != NULL && strcmp(cfg.path, NAME) == 0,
              "name stands for the path");
        CHECK(cfg.log == NULL, "no log target by default (stderr)");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, RECV "[destination log]\nfile = /tmp/x.jsonl\n")) {
        d = slh_config_dest(&cfg, "log");
        if (CHECK(d != NULL, "file destination")) {
            CHECK(d->url == NULL && strcmp(d->file, "/tmp/x.jsonl") == 0,
                  "file, no url");
            CHECK(d->n_events == 0 && d->n_headers == 0, "no filter, headers");
            CHECK(d->signing_key == NULL && d->signing_key_len == 0,
                  "not signing");
            CHECK(d->timeout == SLH_DEFAULT_TIMEOUT, "default timeout");
            CHECK(d->max_age == SLH_DEFAULT_MAX_AGE, "default max_age");
            CHECK(d->line == 3, "section line");
        }
        slh_config_free(&cfg);
    }
    slh_config_free(NULL);
}

static void
test_lists(void)
{
    struct slh_config cfg;
    static const char rotation[] = "[receiver]\n"
                                   "secret_key = old-key\n"
                                   "secret_key = new-key\n"
                                   "server_id = 1 2\n"
                                   "server_id = 3,4, 5\n"
                                   "server_id = 9223372036854775807\n"
                                   "allow_from = 10.0.0.0/8,192.168.0.0/16\n"
                                   "allow_from = 2001:db8::/32\n"
                                   "[destination a]\n"
                                   "url = http://127.0.0.1:8080/\n"
                                   "header = X-One: 1\n"
                                   "header = X-Two:2\n"
                                   "header = X-Three: a: b = c\n"
                                   "[destination b.c_d-1]\n"
                                   "file = rel/events.jsonl\n";
    size_t i;

    if (!PARSE_GOOD(&cfg, rotation))
        return;
    CHECK(cfg.n_secret_keys == 2 &&
              strcmp(cfg.secret_keys[0], "old-key") == 0 &&
              strcmp(cfg.secret_keys[1], "new-key") == 0,
          "both rotation keys, in order");
    CHECK(cfg.n_server_ids == 6, "six server ids, got %zu", cfg.n_server_ids);
    for (i = 0; i < 5 && i < cfg.n_server_ids; i++)
        CHECK(cfg.server_ids[i] == (int64_t)i + 1, "server id %zu", i);
    CHECK(cfg.n_server_ids == 6 && cfg.server_ids[5] == INT64_MAX,
          "largest server id");
    CHECK(cfg.n_allow == 3, "three blocks");
    CHECK(slh_cidr_match(cfg.allow, cfg.n_allow, "192.168.4.4") &&
              slh_cidr_match(cfg.allow, cfg.n_allow, "2001:db8::9") &&
              !slh_cidr_match(cfg.allow, cfg.n_allow, "172.16.0.1"),
          "blocks from both lines");
    CHECK(cfg.n_dests == 2, "two destinations");
    if (cfg.n_dests == 2) {
        CHECK(cfg.dests[0].n_headers == 3 &&
                  strcmp(cfg.dests[0].headers[1], "X-Two:2") == 0 &&
                  strcmp(cfg.dests[0].headers[2], "X-Three: a: b = c") == 0,
              "headers kept as written");
        CHECK(strcmp(cfg.dests[1].name, "b.c_d-1") == 0 &&
                  cfg.dests[1].line == 14,
              "dotted name and its line");
    }
    slh_config_free(&cfg);

    if (PARSE_GOOD(&cfg, "[receiver]\nsecret_key = a\n[receiver]\n"
                         "secret_key = b\n")) {
        CHECK(cfg.n_secret_keys == 2, "a second [receiver] adds to the first");
        slh_config_free(&cfg);
    }
}

static void
test_max_body(void)
{
    static const struct {
        const char *v;
        size_t want;
    } good[] = {{"1", 1},       {"65536", 65536}, {"64k", 65536},
                {"64K", 65536}, {"2m", 2097152},  {"2M", 2097152}};
    static const char *const bad[] = {"0",
                                      "0k",
                                      "-1",
                                      "1.5m",
                                      "k",
                                      "1kb",
                                      "1 k",
                                      "1g",
                                      "0x10",
                                      "+5",
                                      "99999999999999999999",
                                      "18014398509481984k"};
    struct slh_config cfg;
    char text[256];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), RECV "max_body = %s\n", good[i].v);
        if (PARSE_GOOD(&cfg, text)) {
            CHECK(cfg.max_body == good[i].want, "max_body %s = %zu", good[i].v,
                  cfg.max_body);
            slh_config_free(&cfg);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), RECV "max_body = %s\n", bad[i]);
        PARSE_BAD(text, NAME ":3: bad max_body");
    }
}

/* [receiver] retention: any positive duration (check warns when short). */
static void
test_retention(void)
{
    static const struct {
        const char *v;
        int64_t want;
    } good[] = {{"7d", 7 * 86400}, {"1d", 86400},  {"36h", 36 * 3600},
                {"90m", 5400},     {"3600", 3600}, {"3650d", 3650 * 86400}};
    static const char *const bad[] = {
        "0", "-1d", "1.5d", "x", "7 d", "3651d", "99999999999999999d", "1w"};
    struct slh_config cfg;
    char text[256];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), RECV "retention = %s\n", good[i].v);
        if (PARSE_GOOD(&cfg, text)) {
            CHECK(cfg.retention == good[i].want, "retention %s = %lld",
                  good[i].v, (long long)cfg.retention);
            slh_config_free(&cfg);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), RECV "retention = %s\n", bad[i]);
        PARSE_BAD(text, NAME ":3: bad retention");
    }
    PARSE_BAD(RECV "retention = 1d\nretention = 2d\n",
              NAME ":4: duplicate key");
    PARSE_BAD("[destination x]\nurl = http://h/\nretention = 1d\n" RECV,
              NAME ":3:");
}

static void
test_read_timeout(void)
{
    static const struct {
        const char *v;
        long want;
    } good[] = {{"1", 1}, {"3s", 3}, {"30", 30}, {"2m", 120}, {"1h", 3600}};
    static const char *const bad[] = {"0", "-1", "2h", "1.5", "x", "3 s"};
    struct slh_config cfg;
    char text[256];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), RECV "read_timeout = %s\n", good[i].v);
        if (PARSE_GOOD(&cfg, text)) {
            CHECK(cfg.read_timeout == good[i].want, "read_timeout %s = %ld",
                  good[i].v, cfg.read_timeout);
            slh_config_free(&cfg);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), RECV "read_timeout = %s\n", bad[i]);
        PARSE_BAD(text, NAME ":3: bad read_timeout");
    }
    PARSE_BAD(RECV "read_timeout = 1\nread_timeout = 2\n",
              NAME ":4: duplicate key");
}

static void
test_max_events(void)
{
    static const struct {
        const char *v;
        size_t want;
    } good[] = {{"1", 1}, {"3", 3}, {"100", 100}, {"10000", 10000}};
    static const char *const bad[] = {
        "0", "-1", "10001", "1k", "1.5", "0x10", "+5", "99999999999999999999"};
    struct slh_config cfg;
    char text[256];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), RECV "max_events = %s\n", good[i].v);
        if (PARSE_GOOD(&cfg, text)) {
            CHECK(cfg.max_events == good[i].want, "max_events %s = %zu",
                  good[i].v, cfg.max_events);
            slh_config_free(&cfg);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), RECV "max_events = %s\n", bad[i]);
        PARSE_BAD(text, NAME ":3: bad max_events");
    }
    PARSE_BAD(RECV "max_events = 1\nmax_events = 2\n",
              NAME ":4: duplicate key");
}

static void
test_durations(void)
{
    static const struct {
        const char *text;
        int64_t want;
    } good[] = {{"0", 0},
                {"3600", 3600},
                {"30s", 30},
                {"90m", 5400},
                {"12h", 43200},
                {"4d", 345600},
                {"007", 7},
                {"9223372036854775807", INT64_MAX},
                {"106751991167300d", 106751991167300LL * 86400}};
    static const char *const bad[] = {"",
                                      "-1",
                                      "4x",
                                      "4dd",
                                      "d",
                                      " 4d",
                                      "4d ",
                                      "4 d",
                                      "+4",
                                      "4D",
                                      "4M",
                                      "1.5h",
                                      "0x10",
                                      "9223372036854775808",
                                      "106751991167301d",
                                      "153722867280912931m",
                                      "4ms"};
    int64_t v;
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = -1;
        CHECK(slh_duration_parse(good[i].text, &v) && v == good[i].want,
              "duration '%s' = %lld", good[i].text, (long long)v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 77;
        CHECK(!slh_duration_parse(bad[i], &v) && v == 77,
              "duration '%s' should fail", bad[i]);
    }
    CHECK(!slh_duration_parse(NULL, &v), "NULL duration");
}

static void
test_dest_values(void)
{
    struct slh_config cfg;

    if (PARSE_GOOD(&cfg, RECV "[destination d]\nurl = HTTPS://x.example\n"
                              "timeout = 3600\nmax_age = 90m\n")) {
        CHECK(cfg.dests[0].timeout == 3600 && cfg.dests[0].max_age == 5400,
              "timeout 3600, max_age 90m");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, RECV "[destination d]\nurl = http://x\n"
                              "timeout = 1m\nmax_age = 1\n")) {
        CHECK(cfg.dests[0].timeout == 60 && cfg.dests[0].max_age == 1,
              "timeout 1m, max_age 1");
        slh_config_free(&cfg);
    }
}

/* rate, concurrency and breaker: values, defaults, and their errors. */
static void
test_protecting(void)
{
    static const struct {
        const char *text;
        const char *want;
    } bad[] = {
        {"rate = 50", NAME ":5: bad rate '50'"},
        {"rate = 50/d", NAME ":5: bad rate '50/d'"},
        {"rate = 0/s", NAME ":5: bad rate '0/s'"},
        {"rate = -1/s", NAME ":5: bad rate '-1/s'"},
        {"rate = 1000001/s", NAME ":5: bad rate"},
        {"rate = 5 /s", NAME ":5: bad rate"},
        {"rate = /s", NAME ":5: bad rate"},
        {"concurrency = 0", NAME ":5: bad concurrency '0' (1 to 256)"},
        {"concurrency = 257", NAME ":5: bad concurrency '257'"},
        {"concurrency = 8x", NAME ":5: bad concurrency"},
        {"breaker = -1", NAME ":5: bad breaker '-1'"},
        {"breaker = ten", NAME ":5: bad breaker 'ten'"},
        {"breaker = 00", NAME ":5: bad breaker '00'"},
        {"rate = 5/s\nrate = 6/s", NAME ":6: duplicate key 'rate'"},
    };
    struct slh_config cfg;
    char text[256];

    if (PARSE_GOOD(&cfg, RECV "[destination d]\nurl = http://x\n"
                              "rate = 50/s\nconcurrency = 256\nbreaker = 10\n"
                              "[destination e]\nurl = http://y\nrate = 3/m\n"
                              "[destination f]\nurl = http://z\nrate = 7/h\n"
                              "breaker = 0\nconcurrency = 1\n")) {
        const struct slh_dest *d = cfg.dests;
        CHECK(d[0].rate == 50 && d[0].rate_period_ms == 1000 &&
                  d[0].concurrency == 256 && d[0].breaker == 10,
              "50/s, 256 in flight, breaker 10");
        CHECK(d[1].rate == 3 && d[1].rate_period_ms == 60000 &&
                  d[1].concurrency == SLH_DEFAULT_CONCURRENCY &&
                  d[1].breaker == 0,
              "3/m; concurrency 8 and no breaker by default");
        CHECK(d[2].rate == 7 && d[2].rate_period_ms == 3600000 &&
                  d[2].concurrency == 1 && d[2].breaker == 0,
              "7/h, 1 in flight, breaker 0");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, RECV "[destination d]\nurl = http://x\n")) {
        CHECK(cfg.dests[0].rate == 0 && cfg.dests[0].breaker == 0 &&
                  cfg.dests[0].concurrency == 8,
              "defaults: no rate, no breaker, 8 in flight");
        slh_config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 RECV "[destination d]\nurl = http://x\n%s\n", bad[i].text);
        parse_bad(text, bad[i].want, __LINE__);
    }
    parse_bad(RECV "[destination d]\nfile = /x\nbreaker = 3\n",
              NAME ":3: [destination d]: rate, concurrency and breaker are "
                   "for url destinations",
              __LINE__);
    parse_bad(RECV "[destination d]\nconcurrency = 2\nfile = /x\n",
              NAME ":3: [destination d]: rate", __LINE__);
}

/* The destination's decoded signing key for value, or fails. */
static void
signing_good(const char *value, const void *want, size_t want_len, int line)
{
    struct slh_config cfg;
    char text[512];

    snprintf(text, sizeof(text),
             RECV "[destination d]\nfile = /tmp/x\nsigning_secret = %s\n",
             value);
    if (!parse_good(&cfg, text, line))
        return;
    check_at(cfg.dests[0].signing_key_len == want_len &&
                 memcmp(cfg.dests[0].signing_key, want, want_len) == 0,
             __FILE__, line, "signing_secret %s: %zu bytes", value,
             cfg.dests[0].signing_key_len);
    slh_config_free(&cfg);
}

static void
test_signing_secret(void)
{
    static const char *const bad[] = {
        "whsec_",     "whsec_!!!!",     "whsec_Y=I=",
        "YWJjZ",      "whsec_YW I=",    "YQ===",
        "Y",          "====",           "whsec_YQ=",
        "whsec_-_-_", "whsec_YWJj\x01", "WHSEC_YWJj"};
    char text[256];
    size_t i;

    signing_good("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", whsec_bytes, 24,
                 __LINE__);
    signing_good("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", whsec_bytes, 24, __LINE__);
    signing_good("whsec_YWJj", "abc", 3, __LINE__);
    signing_good("whsec_YWI=", "ab", 2, __LINE__);
    signing_good("whsec_YWI", "ab", 2, __LINE__);
    signing_good("YQ==", "a", 1, __LINE__);
    signing_good("YQ", "a", 1, __LINE__);
    signing_good("+/+/", "\xfb\xff\xbf", 3, __LINE__);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 RECV "[destination d]\nfile = /tmp/x\n"
                      "signing_secret = %s\n",
                 bad[i]);
        PARSE_BAD(text, NAME ":5: ");
    }
}

static void
test_headers(void)
{
    static const char *const bad[] = {
        "NoColon value", ": value",   "Bad Name: v", "X-A:",     "X-A:   ",
        "X(A): v",       "X-A: a\rb", "X-A: a\x01z", "X\x7f: v", "Ü: v"};
    char text[256];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 RECV "[destination d]\nfile = /tmp/x\nheader = %s\n", bad[i]);
        PARSE_BAD(text, NAME ":5: ");
    }
    PARSE_BAD(RECV "[destination d]\nfile = /tmp/x\nheader = X-A b: c\n",
              NAME ":5: bad header (want 'Name: value'");
    PARSE_BAD(RECV "[destination d]\nfile = /x\nheader = X-Empty:  \n",
              NAME ":5: bad header 'X-Empty': no value");
}

static void
test_filters(void)
{
    static const char *const types[] = {"Queued", "Deferred", "Delivered",
                                        "Failed", "Complaint"};
    struct slh_config cfg;
    const struct slh_dest *all, *some, *track, *click, *any;
    size_t i;
    int k;

    if (!PARSE_GOOD(&cfg, RECV
                    "[destination all]\nfile = /a\n"
                    "events = queued DEFERRED Delivered failed Complaint "
                    "tracking\n"
                    "[destination some]\nfile = /b\nevents = Failed,Complaint\n"
                    "[destination track]\nfile = /c\nevents = Tracking\n"
                    "[destination click]\nfile = /d\n"
                    "events = Tracking:Click TRACKING:unsubscribe Delivered\n"
                    "[destination any]\nfile = /e\n"))
        return;
    all = slh_config_dest(&cfg, "all");
    some = slh_config_dest(&cfg, "some");
    track = slh_config_dest(&cfg, "track");
    click = slh_config_dest(&cfg, "click");
    any = slh_config_dest(&cfg, "any");
    if (!CHECK(all && some && track && click && any, "five destinations")) {
        slh_config_free(&cfg);
        return;
    }
    CHECK(all->n_events == 6 && strcmp(all->events[0], "queued") == 0,
          "words kept as written");
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        const char *t = types[i];
        bool is_failed = strcmp(t, "Failed") == 0;
        bool is_complaint = strcmp(t, "Complaint") == 0;
        bool is_delivered = strcmp(t, "Delivered") == 0;

        CHECK(slh_dest_wants(all, t, -1), "all wants %s", t);
        CHECK(slh_dest_wants(any, t, -1), "no filter wants %s", t);
        CHECK(!slh_dest_wants(track, t, -1), "track skips %s", t);
        CHECK(slh_dest_wants(some, t, -1) == (is_failed || is_complaint),
              "some and %s", t);
        CHECK(slh_dest_wants(click, t, -1) == is_delivered, "click and %s", t);
    }
    for (k = -1; k <= 2; k++) {
        CHECK(slh_dest_wants(all, "Tracking", k), "all wants tracking %d", k);
        CHECK(slh_dest_wants(track, "Tracking", k), "Tracking wants kind %d",
              k);
        CHECK(slh_dest_wants(any, "Tracking", k), "any wants kind %d", k);
        CHECK(!slh_dest_wants(some, "Tracking", k), "some skips kind %d", k);
        CHECK(slh_dest_wants(click, "Tracking", k) == (k == 0 || k == 2),
              "click and kind %d", k);
    }
    CHECK(slh_dest_wants(some, "failed", -1), "Type matched in any case");
    CHECK(slh_dest_wants(click, "tracking", 0), "tracking in any case");
    CHECK(slh_dest_wants(click, "Delivered", 0),
          "a kind on a non-tracking Type is ignored");
    CHECK(!slh_dest_wants(click, "Failed", 0), "kind does not make Tracking");
    CHECK(slh_dest_wants(any, "SomethingNew", -1),
          "unknown Type relayed without a filter");
    CHECK(!slh_dest_wants(all, "SomethingNew", -1),
          "unknown Type filtered out by a filter");
    CHECK(!slh_dest_wants(all, "Validation", -1), "Validation not a Type");
    CHECK(slh_dest_wants(any, NULL, -1), "no Type, no filter");
    CHECK(!slh_dest_wants(some, NULL, -1), "no Type, filter");
    CHECK(!slh_dest_wants(NULL, "Failed", -1), "no destination");
    slh_config_free(&cfg);
}

static void
test_long_lines(void)
{
    struct slh_config cfg;
    char *text, *value;
    size_t n = 7000, i;

    text = malloc(n + 256);
    value = malloc(n + 1);
    if (text == NULL || value == NULL) {
        CHECK(0, "out of memory");
        free(text);
        free(value);
        return;
    }
    /* Far over inih's default of 200, under the 8192 line limit. */
    for (i = 0; i < n; i++)
        value[i] = (char)('a' + i % 26);
    value[n] = '\0';
    snprintf(text, n + 256,
             RECV "[destination d]\nurl = http://x\nheader = X-Long: %s\n"
                  "timeout = 5\n",
             value);
    if (PARSE_GOOD(&cfg, text)) {
        CHECK(cfg.dests[0].n_headers == 1 &&
                  strlen(cfg.dests[0].headers[0]) == n + 8 &&
                  strcmp(cfg.dests[0].headers[0] + 8, value) == 0,
              "a 7000-byte header is kept whole");
        CHECK(cfg.dests[0].timeout == 5, "the line after it is its own");
        slh_config_free(&cfg);
    }
    free(text);
    free(value);

    n = 9000;
    text = malloc(n + 256);
    if (text == NULL) {
        CHECK(0, "out of memory");
        return;
    }
    strcpy(text, RECV "[destination d]\nurl = http://x\nheader = X-Long: ");
    i = strlen(text);
    memset(text + i, 'v', n);
    strcpy(text + i + n, "\ntimeout = 5\n");
    PARSE_BAD(text, NAME ":5: line too long");
    /* The limit: 8190 characters and the newline fit, one more does not. */
    text[0] = ';';
    memset(text + 1, 'x', 8189);
    strcpy(text + 8190, "\n" RECV);
    if (PARSE_GOOD(&cfg, text))
        slh_config_free(&cfg);
    text[0] = ';';
    memset(text + 1, 'x', 8190);
    strcpy(text + 8191, "\n" RECV);
    PARSE_BAD(text, NAME ":1: line too long");
    /* A long line that is only a comment is still refused, not split. */
    text[0] = ';';
    memset(text + 1, 'x', n);
    text[n + 1] = '\0';
    PARSE_BAD(text, NAME ":1: line too long");
    free(text);
}

static void
test_keys(void)
{
    struct slh_config cfg;
    char text[1024];
    char key[SLH_MAX_KEY_LEN + 2];
    struct slh_error err = {0};

    memset(key, 'K', SLH_MAX_KEY_LEN);
    key[SLH_MAX_KEY_LEN] = '\0';
    snprintf(text, sizeof(text), "[receiver]\nsecret_key = %s\n", key);
    if (PARSE_GOOD(&cfg, text)) {
        CHECK(strlen(cfg.secret_keys[0]) == SLH_MAX_KEY_LEN,
              "a key of the longest length");
        slh_config_free(&cfg);
    }
    strcat(key, "K");
    snprintf(text, sizeof(text), "[receiver]\nsecret_key = %s\n", key);
    PARSE_BAD(text, NAME ":2: secret_key is longer than 256");
    snprintf(text, sizeof(text), RECV "validation_key = %s\n", key);
    PARSE_BAD(text, NAME ":3: validation_key is longer");

    /* A secret never appears in a message. */
    memset(&cfg, 0, sizeof(cfg));
    CHECK(slh_config_parse(&cfg, "[receiver]\nsecret_key = Sup3rS3cret\tkey\n",
                           NAME, &err) == SLH_ECONFIG &&
              strstr(err.text, "Sup3r") == NULL,
          "secret not echoed: '%s'", err.text);
    slh_error_clear(&err);
    CHECK(slh_config_parse(&cfg,
                           RECV "[destination d]\nfile = /x\n"
                                "header = Authorization Bearer T0k3n\n",
                           NAME, &err) == SLH_ECONFIG &&
              strstr(err.text, "T0k3n") == NULL,
          "header value not echoed: '%s'", err.text);
    slh_error_clear(&err);
    CHECK(slh_config_parse(&cfg,
                           RECV "[destination d]\n"
                                "url = ftp://user:P4ssw0rd@host/\n",
                           NAME, &err) == SLH_ECONFIG &&
              strstr(err.text, "P4ss") == NULL,
          "url not echoed: '%s'", err.text);
    slh_error_clear(&err);
    CHECK(slh_config_parse(&cfg,
                           RECV "[destination d]\nfile = /x\n"
                                "signing_secret = whsec_S3cr3t!\n",
                           NAME, &err) == SLH_ECONFIG &&
              strstr(err.text, "S3cr3t") == NULL,
          "signing secret not echoed: '%s'", err.text);
    slh_error_clear(&err);
    CHECK(slh_config_parse(&cfg, "[receiver]\nsecret_key = Sup3rS3cret\tkey\n",
                           NAME, &err) == SLH_ECONFIG,
          "tab in key");
    CHECK(strncmp(err.text, NAME ":2: secret_key contains control",
                  strlen(NAME ":2: secret_key contains control")) == 0,
          "tab in key: '%s'", err.text);
}

static void
test_key_files(void)
{
    struct slh_config cfg;
    struct slh_error err = {0};
    char text[1024], big[5000];
    const char *path;

    write_tmp("key-plain", "filekey", 7);
    write_tmp("key-empty", "", 0);
    write_tmp("key-blank", " \r\n\t\n", 5);
    write_tmp("key-two", "one\ntwo\n", 8);
    memset(big, 'B', sizeof(big));
    write_tmp("key-big", big, sizeof(big));

    /* Relative paths are found beside the config file when loading. */
    path = write_tmp("rel.conf", "[receiver]\nsecret_key_file = key-plain\n",
                     strlen("[receiver]\nsecret_key_file = key-plain\n"));
    if (CHECK(slh_config_load(&cfg, path, &err) == SLH_OK,
              "relative key file: %s", err.text)) {
        CHECK(cfg.n_secret_keys == 1 &&
                  strcmp(cfg.secret_keys[0], "filekey") == 0,
              "key from a file without newline");
        slh_config_free(&cfg);
    }
    remove_tmp("rel.conf");

    snprintf(text, sizeof(text), "[receiver]\nsecret_key_file = %s/key-empty\n",
             tmpdir);
    PARSE_BAD(text, NAME ":2: secret_key_file '");
    snprintf(text, sizeof(text), "[receiver]\nsecret_key_file = %s/key-blank\n",
             tmpdir);
    PARSE_BAD(text, NAME ":2: secret_key_file '");
    snprintf(text, sizeof(text), "[receiver]\nsecret_key_file = %s/key-two\n",
             tmpdir);
    PARSE_BAD(text, NAME ":2: the key in secret_key_file contains control");
    snprintf(text, sizeof(text), "[receiver]\nsecret_key_file = %s/key-big\n",
             tmpdir);
    PARSE_BAD(text, NAME ":2: secret_key_file '");
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key_file = %s/no-such-file\n", tmpdir);
    PARSE_BAD(text, NAME ":2: cannot read secret_key_file");
    snprintf(text, sizeof(text), "[receiver]\nsecret_key_file = %s\n", tmpdir);
    PARSE_BAD(text, NAME ":2: cannot read secret_key_file");
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key_file = %s/key-plain\n"
             "secret_key_file = %s/key-plain\n",
             tmpdir, tmpdir);
    PARSE_BAD(text, NAME ":3: duplicate key 'secret_key_file'");

    remove_tmp("key-plain");
    remove_tmp("key-empty");
    remove_tmp("key-blank");
    remove_tmp("key-two");
    remove_tmp("key-big");
}

static void
test_errors(void)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        /* Structure. */
        {"", NAME ": no [receiver] section"},
        {"; only a comment\n", NAME ": no [receiver] section"},
        {"[receiver]\n", NAME ":1: [receiver] needs secret_key"},
        {"\n\n[receiver]\nspool = /x\n", NAME ":3: [receiver] needs"},
        {"secret_key = k\n[receiver]\n", NAME ":1: 'secret_key' is outside"},
        {RECV "foo = 1\n", NAME ":3: unknown key 'foo' in [receiver]"},
        {RECV "Secret_Key = 1\n", NAME ":3: unknown key 'Secret_Key'"},
        {RECV "[receivers]\n", NAME ":3: unknown section [receivers]"},
        {RECV "[]\n", NAME ":3: unknown section []"},
        {RECV "[receiver\nsecret_key = x\n", NAME ":3: syntax error"},
        {RECV "just some words\n", NAME ":3: syntax error"},
        {RECV "  indented words\n", NAME ":3: syntax error"},
        {RECV "[receiver] junk\n", NAME ":3: unexpected text after ']'"},
        {RECV "secret_key =\n", NAME ":3: 'secret_key' has no value"},
        {RECV "secret_key = ; comment\n", NAME ":3: 'secret_key' has no"},
        {RECV "spool = a\x01z\n", NAME ":3: 'spool' contains control"},
        {RECV "[destination d]\nfile = /x\nfoo = bar\n",
         NAME ":5: unknown key 'foo' in [destination d]"},
        {RECV "[destination d]\nfile = /x\nsecret_key = y\n",
         NAME ":5: unknown key 'secret_key' in [destination d]"},
        {RECV "spool = /a\n[destination d]\nfile = /x\n[receiver]\n"
              "spool = /b\n",
         NAME ":7: duplicate key 'spool' in [receiver]"},

        /* Destinations. */
        {RECV "[destination d]\n", NAME ":3: [destination d] needs url"},
        {RECV "[destination d]\n\n[destination e]\nfile = /x\n",
         NAME ":3: [destination d] needs url or file"},
        {RECV "[destination d]\nurl = http://x\nfile = /x\n",
         NAME ":5: [destination d] has both url and file"},
        {RECV "[destination d]\nfile = /x\nurl = http://x\n",
         NAME ":5: [destination d] has both"},
        {RECV "[destination d]\nfile = /x\n[destination d]\nfile = /y\n",
         NAME ":5: duplicate [destination d] (first at line 3)"},
        {RECV "[destination]\nfile = /x\n", NAME ":3: a destination needs"},
        {RECV "[destination  ]\nfile = /x\n", NAME ":3: a destination needs"},
        {RECV "[destination a/b]\nfile = /x\n",
         NAME ":3: bad destination name 'a/b'"},
        {RECV "[destination a b]\nfile = /x\n",
         NAME ":3: bad destination name 'a b'"},
        {RECV "[destinationx]\nfile = /x\n",
         NAME ":3: unknown section [destinationx]"},
        {RECV "[destination "
              "a234567890123456789012345678901234567890123456789012345678901234"
              "5]\n",
         NAME ":3: bad destination name"},
        {RECV "[destination d]\nurl = ftp://x/y\n",
         NAME ":4: url is not http:// or https://"},
        {RECV "[destination d]\nurl = https://\n", NAME ":4: url has no host"},
        {RECV "[destination d]\nurl = http:///p\n", NAME ":4: url has no host"},
        {RECV "[destination d]\nurl = x.example/hook\n", NAME ":4: url is not"},
        {RECV "[destination d]\nurl = http://a b/\n",
         NAME ":4: url contains spaces"},
        {RECV "[destination d]\nurl = http://a\nurl = http://b\n",
         NAME ":5: duplicate key 'url' in [destination d]"},
        {RECV "[destination d]\nfile = /x\nevents = Bounced\n",
         NAME ":5: unknown event 'Bounced'"},
        {RECV "[destination d]\nfile = /x\nevents = Failed Tracking:Foo\n",
         NAME ":5: unknown event 'Tracking:Foo'"},
        {RECV "[destination d]\nfile = /x\nevents = Tracking:\n",
         NAME ":5: unknown event 'Tracking:'"},
        {RECV "[destination d]\nfile = /x\nevents = Validation\n",
         NAME ":5: unknown event 'Validation'"},
        {RECV "[destination d]\nfile = /x\nevents = Failed\nevents = Queued\n",
         NAME ":6: duplicate key 'events'"},
        {RECV "[destination d]\nfile = /x\ntimeout = 0\n",
         NAME ":5: bad timeout '0'"},
        {RECV "[destination d]\nfile = /x\ntimeout = 3601\n",
         NAME ":5: bad timeout '3601'"},
        {RECV "[destination d]\nfile = /x\ntimeout = 2h\n",
         NAME ":5: bad timeout '2h'"},
        {RECV "[destination d]\nfile = /x\ntimeout = ten\n",
         NAME ":5: bad timeout"},
        {RECV "[destination d]\nfile = /x\ntimeout = 5\ntimeout = 6\n",
         NAME ":6: duplicate key 'timeout'"},
        {RECV "[destination d]\nfile = /x\nmax_age = 0\n",
         NAME ":5: bad max_age '0'"},
        {RECV "[destination d]\nfile = /x\nmax_age = 4 days\n",
         NAME ":5: bad max_age '4 days'"},
        {RECV "[destination d]\nfile = /x\nsigning_secret = whsec_YQ==\n"
              "signing_secret = whsec_YQ==\n",
         NAME ":6: duplicate key 'signing_secret'"},

        /* Receiver values. */
        {RECV "server_id = 0\n", NAME ":3: bad server_id '0'"},
        {RECV "server_id = -5\n", NAME ":3: bad server_id '-5'"},
        {RECV "server_id = 12a\n", NAME ":3: bad server_id '12a'"},
        {RECV "server_id = 1 two 3\n", NAME ":3: bad server_id 'two'"},
        {RECV "server_id = 9223372036854775808\n", NAME ":3: bad server_id"},
        {RECV "server_id = ,\n", NAME ":3: server_id lists nothing"},
        {RECV "allow_from = , ,\n", NAME ":3: allow_from lists nothing"},
        {RECV "[destination d]\nfile = /x\nevents = ,\n",
         NAME ":5: events lists nothing"},
        {RECV "allow_from = 142.0.177.0/20\n",
         NAME ":3: bad allow_from: '142.0.177.0/20' has host bits set"},
        {RECV "allow_from = 10.0.0.0/8 nowhere\n",
         NAME ":3: bad allow_from: 'nowhere' is not an IP address"},
        {RECV "allow_from = 10.0.0.0/33\n", NAME ":3: bad allow_from"},
        {RECV "validation_key = a\nvalidation_key = b\n",
         NAME ":4: duplicate key 'validation_key'"},
        {RECV "max_body = 1\nmax_body = 2\n", NAME ":4: duplicate key"},

        /* The first error wins. */
        {RECV "foo = 1\nbar = 2\n", NAME ":3: unknown key 'foo'"},
        {"[receiver]\nserver_id = x\n", NAME ":2: bad server_id"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        parse_bad(cases[i].text, cases[i].want, __LINE__);
}

/* [receiver] log: stderr, syslog or an absolute path, once. */
static void
test_log(void)
{
    static const char *const good[] = {"stderr", "syslog",
                                       "/var/log/slhook/slhook.log"};
    struct slh_config cfg;
    char text[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), RECV "log = %s\n", good[i]);
        if (PARSE_GOOD(&cfg, text)) {
            CHECK(cfg.log != NULL && strcmp(cfg.log, good[i]) == 0, "log = %s",
                  good[i]);
            slh_config_free(&cfg);
        }
    }
    parse_bad(RECV "log = slhook.log\n",
              NAME ":3: bad log 'slhook.log' (stderr, syslog or an absolute "
                   "file path)",
              __LINE__);
    parse_bad(RECV "log = Syslog\n", NAME ":3: bad log 'Syslog'", __LINE__);
    parse_bad(RECV "log = syslog\nlog = stderr\n",
              NAME ":4: duplicate key 'log' in [receiver]", __LINE__);
    parse_bad(RECV "[destination d]\nfile = /x\nlog = syslog\n",
              NAME ":5: unknown key 'log' in [destination d]", __LINE__);
}

static void
test_syntax(void)
{
    struct slh_config cfg;

    /* An indented line is a key of its own, never a continuation. */
    if (PARSE_GOOD(&cfg, "[receiver]\nsecret_key = a\n  secret_key = b\n")) {
        CHECK(cfg.n_secret_keys == 2 && strcmp(cfg.secret_keys[0], "a") == 0,
              "indented key is its own line");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, "\xEF\xBB\xBF[receiver]\r\nsecret_key = a\r\n"
                         "# hash comment\r\n; semicolon comment\r\n"
                         "[destination d] ; trailing comment\r\n"
                         "file=/x\r\n")) {
        CHECK(cfg.n_dests == 1 && strcmp(cfg.dests[0].file, "/x") == 0 &&
                  strcmp(cfg.secret_keys[0], "a") == 0,
              "BOM, CRLF, comments");
        slh_config_free(&cfg);
    }
    /* Longer than inih's 50-byte section buffer: the name stays whole. */
    if (PARSE_GOOD(&cfg,
                   RECV "[destination "
                        "a-very-long-destination-name-of-sixty-chars-"
                        "xxxxxxxxxxxxxxxx]\nfile = /x\nheader = A: b\n")) {
        CHECK(cfg.n_dests == 1 && strlen(cfg.dests[0].name) == 60 &&
                  cfg.dests[0].n_headers == 1,
              "long destination name");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, "[ receiver ]\nsecret_key: colon-form\n")) {
        CHECK(strcmp(cfg.secret_keys[0], "colon-form") == 0,
              "name: value form and spaced section");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, "[receiver]\nsecret_key = a;b\n")) {
        CHECK(strcmp(cfg.secret_keys[0], "a;b") == 0,
              "';' without a space before it is not a comment");
        slh_config_free(&cfg);
    }
}

static void
test_load_errors(void)
{
    struct slh_config cfg;
    struct slh_error err = {0};
    char path[512];
    const char *p;
    static const char nul_text[] = "[receiver]\nsecret_key = a\0b\n";
    static const char bad_text[] = "[receiver]\nsecret_key = a\nfoo = 1\n";

    snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
    memset(&cfg, 0x5a, sizeof(cfg));
    CHECK(slh_config_load(&cfg, path, &err) == SLH_EIO && is_zeroed(&cfg),
          "missing file is EIO");
    CHECK(strncmp(err.text, path, strlen(path)) == 0 &&
              strstr(err.text, "No such file") != NULL,
          "names the path: '%s'", err.text);

    p = write_tmp("nul.conf", nul_text, sizeof(nul_text) - 1);
    slh_error_clear(&err);
    CHECK(slh_config_load(&cfg, p, &err) == SLH_ECONFIG && is_zeroed(&cfg),
          "NUL byte refused");
    snprintf(path, sizeof(path), "%s:2: NUL byte", p);
    CHECK(strncmp(err.text, path, strlen(path)) == 0, "NUL line: '%s'",
          err.text);
    remove_tmp("nul.conf");

    p = write_tmp("bad.conf", bad_text, strlen(bad_text));
    slh_error_clear(&err);
    CHECK(slh_config_load(&cfg, p, &err) == SLH_ECONFIG, "bad file fails");
    snprintf(path, sizeof(path), "%s:3: unknown key 'foo' in [receiver]", p);
    CHECK(strcmp(err.text, path) == 0, "load error '%s'", err.text);
    CHECK(slh_config_load(&cfg, p, NULL) == SLH_ECONFIG && is_zeroed(&cfg),
          "NULL err is fine");
    remove_tmp("bad.conf");

    slh_error_clear(&err);
    CHECK(slh_config_load(&cfg, tmpdir, &err) != SLH_OK && is_zeroed(&cfg),
          "a directory is not a config");
    CHECK(slh_config_parse(&cfg, NULL, NAME, NULL) == SLH_EINVAL, "NULL text");
    CHECK(slh_config_parse(NULL, RECV, NAME, NULL) == SLH_EINVAL, "NULL cfg");
    if (CHECK(slh_config_parse(&cfg, RECV, NULL, NULL) == SLH_OK,
              "NULL name is allowed"))
        slh_config_free(&cfg);
}

/* A key line that lost its '=' must not echo what follows the name: it
 * may be the key itself (found by fuzz_config). */
static void
test_lost_equals(void)
{
    static const char *const texts[] = {
        "[receiver]\nsecret_key S3cr3tKeyAbc=\n",
        "[receiver]\nsecret_key S3cr3tKeyAbc==\n",
        "[receiver]\nsecret_key S3cr3tKeyAbc:\n",
        "[receiver]\nsecret_key = k\nvalidation_key S3cr3tKeyAbc=\n",
    };

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct slh_config cfg = {0};
        struct slh_error err = {0};
        enum slh_err rc = slh_config_parse(&cfg, texts[i], "t.conf", &err);
        CHECK(rc == SLH_ECONFIG, "case %zu rejected", i);
        CHECK(strstr(err.text, "S3cr3t") == NULL &&
                  strncmp(err.text, "t.conf:", 7) == 0,
              "case %zu: message shows no key: %s", i, err.text);
    }
}

/* ca_file, client_cert, client_key and proxy: files checked at load, the
 * pair together, url destinations only, a proxy URL never repeated. */
/* The spool as shown: a PostgreSQL URI's passwords masked, whatever the
 * string (fuzz_config found an empty password writing *** without end). */
static void
test_spool_mask(void)
{
    static const char *const cases[][2] = {
        {"/var/spool/slhook", "/var/spool/slhook"},
        {"postgresql://u:pw@db.example/slhook",
         "postgresql://u:***@db.example/slhook"},
        {"postgresql://u:@db.example/slhook",
         "postgresql://u:***@db.example/slhook"},
        {"postgres://u@h/d?password=x&sslmode=require",
         "postgres://u@h/d?password=***&sslmode=require"},
        {"postgresql:///d?host=/run/pg&password=&user=u",
         "postgresql:///d?host=/run/pg&password=***&user=u"},
        {"/varhttps://eokoof  [rece db8:@x",
         "/varhttps://eokoof  [rece db8:***@x"},
        {"://:@", "://:***@"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *shown = slh_store_mask(cases[i][0]);
        CHECK(shown != NULL && strcmp(shown, cases[i][1]) == 0,
              "spool %s shown as %s", cases[i][0],
              shown != NULL ? shown : "NULL");
        free(shown);
    }
}

static void
test_tls(void)
{
    struct slh_config cfg;
    struct slh_error err = {0};
    char text[2048], want[1024];
    const char *path;
    char *shown;

    write_tmp("ca.pem", "-----BEGIN CERTIFICATE-----\n", 28);
    write_tmp("client.pem", "-----BEGIN CERTIFICATE-----\n", 28);
    write_tmp("client.key", "-----BEGIN PRIVATE KEY-----\n", 28);
    snprintf(text, sizeof(text),
             RECV "[destination d]\nurl = https://x.example/\n"
                  "ca_file = %s/ca.pem\nclient_cert = %s/client.pem\n"
                  "client_key = %s/client.key\n"
                  "proxy = socks5h://user:hunter2@proxy:1080\n",
             tmpdir, tmpdir, tmpdir);
    if (PARSE_GOOD(&cfg, text)) {
        const struct slh_dest *d = &cfg.dests[0];
        snprintf(want, sizeof(want), "%s/client.key", tmpdir);
        CHECK(d->ca_file != NULL && strstr(d->ca_file, "/ca.pem") != NULL &&
                  d->client_cert != NULL &&
                  strstr(d->client_cert, "/client.pem") != NULL &&
                  d->client_key != NULL && strcmp(d->client_key, want) == 0,
              "the three files kept by path");
        CHECK(d->proxy != NULL &&
                  strcmp(d->proxy, "socks5h://user:hunter2@proxy:1080") == 0,
              "proxy kept as written");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, RECV "[destination d]\nurl = http://x\n")) {
        const struct slh_dest *d = &cfg.dests[0];
        CHECK(d->ca_file == NULL && d->client_cert == NULL &&
                  d->client_key == NULL && d->proxy == NULL,
              "none set by default");
        slh_config_free(&cfg);
    }
    static const char *const proxies[] = {
        "http://proxy:3128", "HTTPS://proxy.example", "socks5://10.0.0.1:1080",
        "socks5h://u:p@proxy", "http://[::1]:3128/"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++) {
        snprintf(text, sizeof(text),
                 RECV "[destination d]\nurl = http://x\nproxy = %s\n",
                 proxies[i]);
        if (PARSE_GOOD(&cfg, text))
            slh_config_free(&cfg);
    }

    /* A relative path is found beside the config file, made whole. */
    path = write_tmp("tls.conf",
                     RECV "[destination d]\nurl = https://x\n"
                          "ca_file = ca.pem\n",
                     strlen(RECV "[destination d]\nurl = https://x\n"
                                 "ca_file = ca.pem\n"));
    if (CHECK(slh_config_load(&cfg, path, &err) == SLH_OK, "relative: %s",
              err.text)) {
        snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
        CHECK(strcmp(cfg.dests[0].ca_file, want) == 0, "ca_file %s",
              cfg.dests[0].ca_file);
        slh_config_free(&cfg);
    }
    remove_tmp("tls.conf");

    /* Missing or unfit files: path:line, the key and the path named. */
    snprintf(text, sizeof(text),
             RECV "[destination d]\nurl = https://x\nca_file = %s/none.pem\n",
             tmpdir);
    snprintf(want, sizeof(want),
             NAME ":5: cannot read ca_file '%s/none.pem': No such file",
             tmpdir);
    PARSE_BAD(text, want);
    snprintf(text, sizeof(text),
             RECV "[destination d]\nurl = https://x\nclient_cert = %s\n",
             tmpdir);
    PARSE_BAD(text, NAME ":5: cannot read client_cert '");
    snprintf(text, sizeof(text),
             RECV "[destination d]\nurl = https://x\n"
                  "client_cert = %s/client.pem\nclient_key = %s/none.key\n",
             tmpdir, tmpdir);
    PARSE_BAD(text, NAME ":6: cannot read client_key '");
    PARSE_BAD(RECV "[destination d]\nurl = https://x\nca_file = /dev/null\n",
              NAME ":5: ca_file '/dev/null' is not a regular file");
    /* A FIFO is refused at once, not waited on for a writer. */
    snprintf(want, sizeof(want), "%s/fifo", tmpdir);
    if (CHECK(mkfifo(want, 0600) == 0, "mkfifo %s", want)) {
        snprintf(text, sizeof(text),
                 RECV "[destination d]\nurl = https://x\nclient_key = %s\n",
                 want);
        PARSE_BAD(text, NAME ":5: client_key '");
        remove_tmp("fifo");
    }

    /* The pair comes together; file destinations take none of them. */
    snprintf(text, sizeof(text),
             RECV "[destination d]\nurl = https://x\n"
                  "client_cert = %s/client.pem\n",
             tmpdir);
    PARSE_BAD(text, NAME ":3: [destination d] has client_cert but no "
                         "client_key");
    snprintf(text, sizeof(text),
             RECV "[destination d]\nurl = https://x\n"
                  "client_key = %s/client.key\n",
             tmpdir);
    PARSE_BAD(text, NAME ":3: [destination d] has client_key but no "
                         "client_cert");
    snprintf(text, sizeof(text),
             RECV "[destination d]\nfile = /tmp/x\nca_file = %s/ca.pem\n",
             tmpdir);
    PARSE_BAD(text, NAME ":3: [destination d] writes a file: ca_file is for "
                         "url destinations");
    PARSE_BAD(RECV "[destination d]\nproxy = http://p:3128\nfile = /tmp/x\n",
              NAME ":3: [destination d] writes a file: proxy is for url");
    snprintf(text, sizeof(text),
             RECV "[destination d]\nurl = https://x\nca_file = %s/ca.pem\n"
                  "ca_file = %s/ca.pem\n",
             tmpdir, tmpdir);
    PARSE_BAD(text, NAME ":6: duplicate key 'ca_file'");

    /* Bad proxies, and no message repeats one (it may hold a password). */
    static const char *const bad_proxies[] = {
        "ftp://u:hunter2@proxy:21",      "socks4://u:hunter2@proxy:1080",
        "u:hunter2@proxy:3128",          "http://u:hunter2@",
        "http://u:hunter2@:3128",        "http:///hunter2",
        "http://u:hunter2@proxy:3128/ x"};
    for (size_t i = 0; i < sizeof(bad_proxies) / sizeof(bad_proxies[0]); i++) {
        snprintf(text, sizeof(text),
                 RECV "[destination d]\nurl = http://x\nproxy = %s\n",
                 bad_proxies[i]);
        memset(&cfg, 0, sizeof(cfg));
        memset(&err, 0, sizeof(err));
        CHECK(slh_config_parse(&cfg, text, NAME, &err) == SLH_ECONFIG &&
                  strncmp(err.text, NAME ":5: proxy ", 10) == 0 &&
                  strstr(err.text, "hunter2") == NULL,
              "proxy %s: '%s'", bad_proxies[i], err.text);
        slh_config_free(&cfg);
    }
    PARSE_BAD(RECV "[destination d]\nurl = http://x\nproxy = gopher://p\n",
              NAME ":5: proxy is not an http://, https://, socks5:// or "
                   "socks5h:// URL");
    PARSE_BAD(RECV "[destination d]\nurl = http://x\nproxy = http://\n",
              NAME ":5: proxy has no host");

    /* What check prints of a proxy: its password masked. */
    shown = slh_deliver_url_masked("socks5h://user:hunter2@proxy:1080");
    CHECK(shown != NULL && strcmp(shown, "socks5h://***@proxy:1080/") == 0,
          "socks5h proxy masked: %s", shown != NULL ? shown : "(null)");
    free(shown);
    shown = slh_deliver_url_masked("http://:hunter2@proxy:3128");
    CHECK(shown != NULL && strcmp(shown, "http://***@proxy:3128/") == 0,
          "http proxy masked: %s", shown != NULL ? shown : "(null)");
    free(shown);

    remove_tmp("ca.pem");
    remove_tmp("client.pem");
    remove_tmp("client.key");
}

/* [admin]: its defaults, allow_from, token_file, actions, and what is
 * refused; a token never appears in a message. */
static void
test_admin(void)
{
    struct slh_config cfg;
    char text[1024];

    if (PARSE_GOOD(&cfg, RECV)) {
        CHECK(!cfg.admin.is_set && cfg.admin.n_allow == 0 &&
                  cfg.admin.token == NULL && !cfg.admin.has_actions,
              "no [admin]: nothing set");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, RECV "[admin]\n")) {
        CHECK(cfg.admin.is_set && cfg.admin.n_allow == 2, "[admin] alone: set");
        CHECK(
            slh_cidr_match(cfg.admin.allow, cfg.admin.n_allow, "127.0.0.1") &&
                slh_cidr_match(cfg.admin.allow, cfg.admin.n_allow,
                               "127.9.9.9") &&
                slh_cidr_match(cfg.admin.allow, cfg.admin.n_allow, "::1") &&
                !slh_cidr_match(cfg.admin.allow, cfg.admin.n_allow, "10.0.0.1"),
            "default allow_from: loopback only");
        CHECK(cfg.admin.token == NULL && !cfg.admin.has_actions,
              "no token, no actions by default");
        CHECK(cfg.n_allow == 0, "[receiver] allow_from untouched");
        slh_config_free(&cfg);
    }
    if (PARSE_GOOD(&cfg, RECV "[admin]\nallow_from = 10.1.0.0/16\n"
                              "allow_from = 2001:db8::/32\nactions = yes\n")) {
        CHECK(cfg.admin.n_allow == 2 &&
                  slh_cidr_match(cfg.admin.allow, cfg.admin.n_allow,
                                 "10.1.2.3") &&
                  !slh_cidr_match(cfg.admin.allow, cfg.admin.n_allow,
                                  "127.0.0.1"),
              "allow_from given: loopback no longer implied");
        CHECK(cfg.admin.has_actions, "actions = yes");
        slh_config_free(&cfg);
    }
    write_tmp("token-good", "t0ken-0123456789abcdef\n", 23);
    write_tmp("token-short", "short\n", 6);
    write_tmp("token-blank", "two words here, long enough\n", 28);
    snprintf(text, sizeof(text), RECV "[admin]\ntoken_file = %s/token-good\n",
             tmpdir);
    if (PARSE_GOOD(&cfg, text)) {
        CHECK(cfg.admin.token != NULL &&
                  strcmp(cfg.admin.token, "t0ken-0123456789abcdef") == 0,
              "token read and trimmed");
        slh_config_free(&cfg);
    }
    snprintf(text, sizeof(text), RECV "[admin]\ntoken_file = %s/token-short\n",
             tmpdir);
    PARSE_BAD(text, NAME ":4: the token in token_file '");
    snprintf(text, sizeof(text), RECV "[admin]\ntoken_file = %s/token-blank\n",
             tmpdir);
    PARSE_BAD(text, NAME ":4: the token in token_file '");
    snprintf(text, sizeof(text), RECV "[admin]\ntoken_file = %s/nothing\n",
             tmpdir);
    PARSE_BAD(text, NAME ":4: cannot read token_file '");
    PARSE_BAD(RECV "[admin]\nactions = maybe\n",
              NAME ":4: bad actions 'maybe' (yes or no)");
    PARSE_BAD(RECV "[admin]\nallow_from = 300.1.1.1\n",
              NAME ":4: bad allow_from");
    PARSE_BAD(RECV "[admin]\nsecret_key = x\n",
              NAME ":4: unknown key 'secret_key' in [admin]");
    PARSE_BAD(RECV "[admin]\nactions = yes\nactions = no\n",
              NAME ":5: duplicate key 'actions' in [admin]");
    PARSE_BAD(RECV "[admin]\n[admin]\n", NAME ":4: a second [admin] section");
    remove_tmp("token-good");
    remove_tmp("token-short");
    remove_tmp("token-blank");
}

int
main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        CHECK(0, "mkdtemp failed");
        return check_summary();
    }
    (void)check_slurp;
    (void)check_fixtures;
    test_spec_example();
    test_defaults();
    test_admin();
    test_lists();
    test_max_body();
    test_max_events();
    test_read_timeout();
    test_retention();
    test_durations();
    test_dest_values();
    test_protecting();
    test_signing_secret();
    test_headers();
    test_filters();
    test_long_lines();
    test_keys();
    test_key_files();
    test_errors();
    test_log();
    test_syntax();
    test_load_errors();
    test_lost_equals();
    test_tls();
    test_spool_mask();
    rmdir(tmpdir);
    return check_summary();
}

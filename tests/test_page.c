/* test_page: the operator's page (page.h): its documents and assets from
 * the binary, and its JSON and actions against a real SQLite spool with
 * known events, delivered, dead and retrying. */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "config.h"
#include "event.h"
#include "page.h"
#include "page_int.h"
#include "store.h"
#include "web.h"

#define MINUTE INT64_C(60000)
#define XSS "<img src=x onerror=alert(1)>"
#define SECRET "q7Rt2mXw9LpB4sKd8Zf3"

/* ---- the spool ---- */

static char tmp[] = "/tmp/test_page.XXXXXX";
static struct slh_config cfg;
static struct slh_store *sp;
static int64_t now; /* the tests' clock: a minute's start */
static char dead_id[SLH_EVENT_ID_LEN + 1];  /* crm's dead letter */
static char retry_id[SLH_EVENT_ID_LEN + 1]; /* crm's retrying event */
static char xss_id[SLH_EVENT_ID_LEN + 1];   /* the one with XSS as Address */

/* Stores one event; its id into id (may be NULL). */
static void
put(const char *type, const char *mid, const char *address, int64_t at,
    char *id)
{
    char body[512];
    struct slh_batch b = {0};
    const struct slh_batch *one = &b;
    struct slh_error err = {0};
    int len = snprintf(body, sizeof(body),
                       "{\"Type\":\"%s\",\"ServerId\":40211,\"MessageId\":"
                       "\"%s\",\"Address\":\"%s\",\"DateTime\":"
                       "\"2026-12-02T10:00:00Z\",\"SecretKey\":\"" SECRET "\"}",
                       type, mid, address);

    if (CHECK(slh_batch_parse(&b, body, (size_t)len, SLH_MEDIA_JSON, &err) ==
                  SLH_OK,
              "parse: %s", err.text) &&
        CHECK(slh_store_put(sp, &cfg, &one, 1, at, NULL, &err) == SLH_OK,
              "put %s: %s", mid, err.text) &&
        id != NULL)
        memcpy(id, b.events[0].id, SLH_EVENT_ID_LEN + 1);
    slh_batch_free(&b);
}

/* Claims crm's due rows at `at` and records them as states[i] says. */
static void
settle_crm(const int *states, size_t n, int64_t at)
{
    struct slh_claim c[8];
    struct slh_outcome o[8];
    size_t got = 0;

    if (!CHECK(slh_store_claim(sp, "crm", 0, at, 10000, n, c, &got, NULL,
                               NULL) == SLH_OK &&
                   got == n,
               "claim %zu: %zu", n, got))
        return;
    for (size_t i = 0; i < got; i++) {
        memset(&o[i], 0, sizeof(o[i]));
        o[i].dest = "crm";
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
        o[i].state = states[i];
        o[i].due = at + 3600000;
        o[i].status = states[i] == SLH_DELIVERED ? 200 : 410;
        if (states[i] != SLH_DELIVERED)
            snprintf(o[i].error, sizeof(o[i].error), "HTTP %d <b>gone</b>",
                     o[i].status);
        if (states[i] == SLH_DEAD)
            memcpy(dead_id, c[i].id, sizeof(dead_id));
        if (states[i] == SLH_PENDING)
            memcpy(retry_id, c[i].id, sizeof(retry_id));
    }
    CHECK(slh_store_finish(sp, o, got, at, NULL) == SLH_OK, "finish");
    for (size_t i = 0; i < got; i++)
        slh_store_claim_free(&c[i]);
}

/*
 * Five events: three received two minutes before now (m-1, m-2, m-3),
 * two one minute before (m-4, m-5 with the XSS Address). crm wants them
 * all, "arch" (a file) only Delivered ones. crm: m-1 delivered, m-2 dead,
 * m-3 retrying (all settled a minute before now); m-4, m-5 pending.
 */
static bool
make_spool(void)
{
    char text[1024];
    struct slh_error err = {0};
    static const int states[] = {SLH_DELIVERED, SLH_DEAD, SLH_PENDING};

    if (!CHECK(mkdtemp(tmp) != NULL, "mkdtemp"))
        return false;
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = " SECRET "\nspool = %s/spool\n"
             "[destination crm]\nurl = http://127.0.0.1:9/crm\nbreaker = 3\n"
             "[destination arch]\nfile = %s/arch.jsonl\nevents = Delivered\n"
             "[admin]\nactions = yes\n",
             tmp, tmp);
    if (!CHECK(slh_config_parse(&cfg, text, "test.ini", &err) == SLH_OK,
               "config: %s", err.text) ||
        !CHECK(slh_store_open(&sp, cfg.spool, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return false;
    now = slh_now_ms() / MINUTE * MINUTE;
    put("Delivered", "m-1", "a@example.org", now - 2 * MINUTE + 1, NULL);
    put("Failed", "m-2", "b@example.org", now - 2 * MINUTE + 2, NULL);
    put("Failed", "m-3", "c@example.org", now - 2 * MINUTE + 3, NULL);
    put("Failed", "m-4", "d@example.org", now - MINUTE + 4, NULL);
    put("Complaint", "m-5", XSS, now - MINUTE + 5, xss_id);
    settle_crm(states, 3, now - MINUTE + 10);
    return true;
}

/* ---- answers ---- */

/* GET path?query through slh_page_api(): the JSON answer (a new
 * reference, NULL when none) and its status. */
static json_t *
api(const char *path, const char *query, int *status)
{
    struct slh_web_request req = {
        .method = "GET", .path = path, .query = query};
    struct slh_web_answer ans = {0};
    json_t *o = NULL;

    *status = 0;
    if (slh_page_api(&cfg, sp, &req, path, "tok-123", &ans)) {
        *status = ans.status;
        CHECK(ans.content_type != NULL &&
                  strcmp(ans.content_type, "application/json") == 0,
              "%s: JSON", path);
        CHECK(memmem(ans.body, ans.len, SECRET, strlen(SECRET)) == NULL,
              "%s: no SecretKey in the answer", path);
        o = json_loadb(ans.body, ans.len, 0, NULL);
        CHECK(o != NULL, "%s: the answer parses", path);
    }
    slh_web_answer_free(&ans);
    return o;
}

/* POST /actions/NAME with the form body. */
static json_t *
action(const char *path, const char *form, int *status)
{
    struct slh_web_request req = {
        .method = "POST", .path = path, .body = form, .body_len = strlen(form)};
    struct slh_web_answer ans = {0};
    json_t *o = NULL;

    *status = 0;
    if (slh_page_action(&cfg, sp, &req, path, &ans)) {
        *status = ans.status;
        o = json_loadb(ans.body, ans.len, 0, NULL);
    }
    slh_web_answer_free(&ans);
    return o;
}

static json_int_t
int_at(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static const char *
str_at(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? s : "";
}

/* The destination called name in /api/status's answer. */
static json_t *
dest_in(json_t *status, const char *name)
{
    size_t i;
    json_t *d;

    json_array_foreach(json_object_get(status, "destinations"), i,
                       d) if (strcmp(str_at(d, "name"), name) == 0) return d;
    return NULL;
}

/* ---- the tests ---- */

static void
test_static(void)
{
    struct slh_web_answer a = {0};

    CHECK(slh_page_static("/", false, &a) && a.status == 200 &&
              strcmp(a.content_type, "text/html; charset=utf-8") == 0 &&
              a.encoding == NULL && a.len > 100 &&
              strncmp(a.body, "<!doctype html>", 15) == 0 &&
              memmem(a.body, a.len, "href=\"assets/page.css?v=", 24) != NULL &&
              memmem(a.body, a.len, "<base", 5) == NULL,
          "/: the page, plain, its assets relative (no <base>)");
    CHECK(a.cache_control != NULL && strcmp(a.cache_control, "no-cache") == 0,
          "/: revalidated");
    CHECK(memmem(a.body, a.len, "style=", 6) == NULL &&
              memmem(a.body, a.len, "onerror", 7) == NULL &&
              memmem(a.body, a.len, "onclick", 7) == NULL &&
              memmem(a.body, a.len, "<style", 6) == NULL,
          "/: no inline style or handler (the CSP allows none)");
    {
        size_t scripts = 0;
        for (const char *p = a.body;
             (p = memmem(p, a.len - (size_t)(p - a.body), "<script", 7)); p++)
            scripts += strncmp(p, "<script src=\"assets/", 20) == 0 ? 1 : 100;
        CHECK(scripts == 2, "/: two scripts, both from assets/ (%zu)", scripts);
    }
    CHECK(memmem(a.body, a.len, "assets/page.js?v=", 17) != NULL,
          "/: the asset URLs carry their hash");
    memset(&a, 0, sizeof(a));
    CHECK(slh_page_static("/", true, &a) && a.encoding != NULL &&
              strcmp(a.encoding, "gzip") == 0 &&
              (unsigned char)a.body[0] == 0x1f &&
              (unsigned char)a.body[1] == 0x8b,
          "/: gzip'd when the client takes it");
    memset(&a, 0, sizeof(a));
    CHECK(slh_page_static("/events/0123abcd", false, &a) &&
              strncmp(a.body, "<!doctype html>", 15) == 0 &&
              memmem(a.body, a.len, "href=\"../assets/page.css?v=", 27) !=
                  NULL &&
              memmem(a.body, a.len, "src=\"../assets/page.js?v=", 25) != NULL,
          "/events/ID: the page, its assets one level up");
    CHECK(!slh_page_static("/events/", false, &a) &&
              !slh_page_static("/events/a/b", false, &a) &&
              !slh_page_static("/assets/nope.js", false, &a) &&
              !slh_page_static("/assets/", false, &a) &&
              !slh_page_static("/nope", false, &a) &&
              !slh_page_static("", false, &a),
          "other paths are not the page's");
    memset(&a, 0, sizeof(a));
    CHECK(slh_page_static("/assets/page.js", false, &a) &&
              strcmp(a.content_type, "text/javascript; charset=utf-8") == 0 &&
              strstr(a.cache_control, "immutable") != NULL &&
              memmem(a.body, a.len, "textContent", 11) != NULL &&
              memmem(a.body, a.len, "innerHTML", 9) == NULL,
          "page.js: JavaScript, kept, and no innerHTML in it");
    memset(&a, 0, sizeof(a));
    CHECK(slh_page_static("/assets/uPlot.iife.min.js", true, &a) &&
              a.encoding != NULL && a.len < 30000,
          "uPlot: gzip'd, %zu bytes", a.len);
    memset(&a, 0, sizeof(a));
    CHECK(slh_page_static("/assets/page.css", false, &a) &&
              strcmp(a.content_type, "text/css; charset=utf-8") == 0 &&
              memmem(a.body, a.len, "prefers-color-scheme: dark", 26) != NULL,
          "page.css: CSS, with a dark scheme");
    memset(&a, 0, sizeof(a));
    CHECK(slh_page_static("/assets/uPlot.min.css", false, &a) && a.len > 0,
          "uPlot.min.css");
}

static void
test_session(void)
{
    int status;
    json_t *o = api("/api/session", NULL, &status);

    CHECK(status == 200 && strcmp(str_at(o, "csrf"), "tok-123") == 0 &&
              json_is_true(json_object_get(o, "actions")) &&
              strcmp(str_at(o, "version"), SLH_VERSION) == 0,
          "session: the CSRF token, actions = yes, version");
    json_decref(o);
    o = api("/api/nope", NULL, &status);
    CHECK(o == NULL && status == 0, "an unknown API path is not ours");
}

static void
test_status(void)
{
    int status;
    json_t *o = api("/api/status", NULL, &status);
    json_t *crm = dest_in(o, "crm"), *arch = dest_in(o, "arch");
    json_t *list = json_object_get(o, "destinations");

    CHECK(status == 200 && json_array_size(list) == 2 &&
              strcmp(str_at(json_array_get(list, 0), "name"), "crm") == 0,
          "status: both destinations, in the config's order");
    CHECK(crm != NULL && int_at(crm, "pending") == 3 &&
              int_at(crm, "retrying") == 1 && int_at(crm, "dead") == 1 &&
              int_at(crm, "delivered") == 1 &&
              int_at(crm, "last_status") == 410 &&
              strcmp(str_at(crm, "last_error"), "HTTP 410 <b>gone</b>") == 0 &&
              strcmp(str_at(crm, "kind"), "url") == 0 &&
              json_is_true(json_object_get(crm, "configured")),
          "status: crm's figures");
    CHECK(crm != NULL && int_at(crm, "oldest_pending_seconds") >= 100 &&
              str_at(crm, "oldest_pending")[0] == '2',
          "status: crm's oldest pending, an age and a time");
    CHECK(crm != NULL &&
              strcmp(str_at(json_object_get(crm, "breaker"), "state"),
                     "closed") == 0,
          "status: crm's breaker");
    CHECK(arch != NULL && int_at(arch, "pending") == 1 &&
              int_at(arch, "dead") == 0 &&
              json_is_null(json_object_get(arch, "breaker")) &&
              json_is_null(json_object_get(arch, "last_error")) &&
              strcmp(str_at(arch, "kind"), "file") == 0,
          "status: arch's figures, no breaker");
    json_decref(o);
}

/* The chart's buckets, at the clock the spool was made with. */
static void
test_chart(void)
{
    struct slh_error err = {0};
    json_t *o = slh_page_chart(sp, 1, now, &err);
    json_t *t = json_object_get(o, "t"), *r = json_object_get(o, "received"),
           *d = json_object_get(o, "delivered");
    int64_t sum = 0;

    if (!CHECK(o != NULL, "chart: %s", err.text))
        return;
    CHECK(json_array_size(t) == 60 && json_array_size(r) == 60 &&
              json_array_size(d) == 60,
          "chart: an hour is 60 minutes");
    CHECK(json_integer_value(json_array_get(t, 59)) == now / 1000 &&
              json_integer_value(json_array_get(t, 0)) == now / 1000 - 59 * 60,
          "chart: unix seconds, the last minute now's");
    CHECK(json_integer_value(json_array_get(r, 57)) == 3 &&
              json_integer_value(json_array_get(r, 58)) == 2 &&
              json_integer_value(json_array_get(r, 59)) == 0,
          "chart: received per minute");
    for (size_t i = 0; i < 60; i++)
        sum += json_integer_value(json_array_get(d, i));
    CHECK(json_integer_value(json_array_get(d, 58)) == 1 && sum == 1,
          "chart: the one delivery in its minute");
    json_decref(o);
    o = slh_page_chart(sp, 1, now + 3 * 3600000, &err);
    sum = 0;
    for (size_t i = 0; o != NULL && i < 60; i++)
        sum += json_integer_value(
                   json_array_get(json_object_get(o, "received"), i)) +
               json_integer_value(
                   json_array_get(json_object_get(o, "delivered"), i));
    CHECK(o != NULL && sum == 0, "chart: nothing three hours later");
    json_decref(o);
    o = slh_page_chart(NULL, 2, now, &err);
    CHECK(o != NULL && json_array_size(json_object_get(o, "received")) == 120,
          "chart: no spool yet, zeros");
    json_decref(o);
    o = api("/api/chart", "hours=2", &(int){0});
    CHECK(json_array_size(json_object_get(o, "t")) == 120, "chart: ?hours=2");
    json_decref(o);
    o = api("/api/chart", "hours=999", &(int){0});
    CHECK(json_array_size(json_object_get(o, "t")) == 180,
          "chart: out of range: the default 3 hours");
    json_decref(o);
}

static void
test_failures(void)
{
    int status;
    json_t *o = api("/api/failures", NULL, &status);
    json_t *list = json_object_get(o, "events");
    json_t *first = json_array_get(list, 0), *second = json_array_get(list, 1);

    CHECK(status == 200 && json_array_size(list) == 2,
          "failures: the dead and the retrying event");
    /* m-3 was received after m-2: newest first. */
    CHECK(strcmp(str_at(first, "id"), retry_id) == 0 &&
              strcmp(str_at(second, "id"), dead_id) == 0,
          "failures: newest first");
    CHECK(strcmp(str_at(json_object_get(json_object_get(second, "deliveries"),
                                        "crm"),
                        "state"),
                 "dead") == 0 &&
              strcmp(str_at(json_object_get(
                                json_object_get(second, "deliveries"), "crm"),
                            "last_error"),
                     "HTTP 410 <b>gone</b>") == 0,
          "failures: with the reason, as text");
    json_decref(o);
}

/* GET /api/search?q=query: how many found, and by what. */
static size_t
found(const char *query, const char *by, const char *first_id)
{
    int status;
    json_t *o = api("/api/search", query, &status);
    json_t *list = json_object_get(o, "events");
    size_t n = json_array_size(list);

    CHECK(status == 200, "search %s: 200 (%d)", query, status);
    if (by != NULL)
        CHECK(strcmp(str_at(o, "by"), by) == 0, "search %s: by %s, not %s",
              query, by, str_at(o, "by"));
    if (first_id != NULL)
        CHECK(strcmp(str_at(json_array_get(list, 0), "id"), first_id) == 0,
              "search %s: the event", query);
    CHECK(int_at(o, "address_scan") == SLH_PAGE_SCAN,
          "search %s: says how far an Address is looked for", query);
    json_decref(o);
    return n;
}

static void
test_search(void)
{
    char q[80];
    int status;
    json_t *o;

    snprintf(q, sizeof(q), "q=%.10s", dead_id);
    CHECK(found(q, "id", dead_id) == 1, "search: an id prefix");
    snprintf(q, sizeof(q), "q=%s", xss_id);
    CHECK(found(q, "id", xss_id) == 1, "search: a whole id");
    for (size_t i = 0; i < 12; i++)
        q[2 + i] = (char)(xss_id[i] >= 'a' ? xss_id[i] - 32 : xss_id[i]);
    q[14] = '\0';
    CHECK(found(q, "id", xss_id) == 1, "search: an id in capitals");
    CHECK(found("q=m-2", "message_id", dead_id) == 1, "search: a MessageId");
    CHECK(found("q=C%40Example.ORG", "address", retry_id) == 1,
          "search: an Address, in any case");
    CHECK(found("q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "address",
                xss_id) == 1,
          "search: the XSS Address, found as text");
    CHECK(found("q=nobody%40example.org", NULL, NULL) == 0,
          "search: nothing found");
    o = api("/api/search", "q=nobody", &status);
    CHECK(json_is_null(json_object_get(o, "by")), "search: by null");
    json_decref(o);
    o = api("/api/search", "q=", &status);
    CHECK(status == 400 && str_at(o, "error")[0] != '\0',
          "search: nothing to look for is a 400");
    json_decref(o);
}

static void
test_event(void)
{
    char q[80];
    int status;
    json_t *o, *ev;

    snprintf(q, sizeof(q), "id=%.12s", xss_id);
    o = api("/api/event", q, &status);
    ev = json_object_get(o, "event");
    CHECK(status == 200 && strcmp(str_at(ev, "id"), xss_id) == 0 &&
              strcmp(str_at(ev, "address"), XSS) == 0 &&
              strcmp(str_at(ev, "message_id"), "m-5") == 0 &&
              strcmp(str_at(ev, "type"), "Complaint") == 0,
          "event: by prefix, its Address as stored (text)");
    CHECK(strstr(str_at(ev, "body"), "\"Address\":\"" XSS "\"") != NULL &&
              strstr(str_at(ev, "body"), "SecretKey") == NULL,
          "event: the body as stored, no SecretKey");
    CHECK(json_object_size(json_object_get(ev, "deliveries")) == 1 &&
              strcmp(str_at(json_object_get(json_object_get(ev, "deliveries"),
                                            "crm"),
                            "state"),
                     "pending") == 0,
          "event: its one row (arch does not want Complaints)");
    json_decref(o);
    o = api("/api/event", "id=ffffffffffff", &status);
    CHECK(status == 404 && str_at(o, "error")[0] != '\0', "event: 404");
    json_decref(o);
    o = api("/api/event", "id=xyz", &status);
    CHECK(status == 400, "event: not an id, 400");
    json_decref(o);
}

static void
test_actions(void)
{
    int status;
    json_t *o;
    struct slh_store_stats s;

    o = action("/actions/retry", "dest=nope&csrf=x", &status);
    CHECK(status == 400 && str_at(o, "error")[0] != '\0',
          "retry: an unknown destination is a 400");
    json_decref(o);
    o = action("/actions/retry", "csrf=x&dest=crm", &status);
    CHECK(status == 200 && int_at(o, "retried") == 1 &&
              strcmp(str_at(o, "destination"), "crm") == 0,
          "retry: crm's one dead letter");
    json_decref(o);
    CHECK(slh_store_stats(sp, "crm", &s, NULL) == SLH_OK && s.dead == 0 &&
              s.pending == 4,
          "retry: pending again");
    o = action("/actions/replay", "dest=arch&since=1h", &status);
    CHECK(status == 200 && int_at(o, "queued") == 0,
          "replay: arch's one pending row is left alone (%d)", status);
    json_decref(o);
    o = action("/actions/replay", "dest=crm&since=1h&until=", &status);
    CHECK(status == 200 && int_at(o, "queued") == 1 &&
              json_is_null(json_object_get(o, "until")),
          "replay: crm's delivered event queued again");
    json_decref(o);
    o = action("/actions/replay", "dest=crm", &status);
    CHECK(status == 400 && strstr(str_at(o, "error"), "since") != NULL,
          "replay: since is required");
    json_decref(o);
    o = action("/actions/replay", "dest=crm&since=yesterday", &status);
    CHECK(status == 400 && strncmp(str_at(o, "error"), "since: ", 7) == 0,
          "replay: a bad TIME is a 400 saying which");
    json_decref(o);
    o = action("/actions/replay", "dest=crm&since=1h&until=2h", &status);
    CHECK(status == 400, "replay: until before since");
    json_decref(o);
    o = action("/actions/nope", "dest=crm", &status);
    CHECK(o == NULL && status == 0, "an unknown action is not ours");
}

/* A page with no spool made yet: zeros and empty lists, not errors. */
static void
test_no_spool(void)
{
    struct slh_store *keep = sp;
    int status;
    json_t *o;

    sp = NULL;
    o = api("/api/status", NULL, &status);
    CHECK(status == 200 && int_at(dest_in(o, "crm"), "pending") == 0,
          "no spool: status, zeros");
    json_decref(o);
    o = api("/api/failures", NULL, &status);
    CHECK(status == 200 && json_array_size(json_object_get(o, "events")) == 0,
          "no spool: no failures");
    json_decref(o);
    o = api("/api/search", "q=m-1", &status);
    CHECK(status == 200 && json_array_size(json_object_get(o, "events")) == 0,
          "no spool: nothing found");
    json_decref(o);
    o = action("/actions/retry", "dest=crm", &status);
    CHECK(status == 404, "no spool: nothing to retry");
    json_decref(o);
    sp = keep;
}

int
main(void)
{
    char cmd[128];

    if (make_spool()) {
        test_static();
        test_session();
        test_status();
        test_chart();
        test_failures();
        test_search();
        test_event();
        test_actions();
        test_no_spool();
    }
    slh_store_close(sp);
    slh_config_free(&cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "test_page: could not remove %s\n", tmp);
    return check_summary();
}

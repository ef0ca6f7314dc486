/* test_event.c: request bodies into events (lib/event.h), through the
 * public prototypes only. */
#include <dirent.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "tree_shape.h"
#include "event.h"

#define SECRET "q7Rt2mXw9LpB4sKd8Zf3"

/* A literal with its length, so bodies may hold NUL bytes. */
#define LIT(s) s, sizeof(s) - 1

/*
 * Identities computed outside the library, with
 * printf '%s' 'Delivered|40211|tkt-10442||it@partner.example|...' | sha256sum
 */
#define ID_DELIVERED_2                                                         \
    "0eef146b92f4130cab78eed74a361bf65be8bc4aacacc65f9cb32eaa992378f3"
#define ID_TRACKING_1                                                          \
    "7073d6078e743d120674aef0e7f2e80104a30d3610b84255352044f66488b344"
#define ID_FORM_TRACKING                                                       \
    "2cc1b3c7123cc3cba1413b383aa3904a035d3b3ebfc36eda9207ae612b2de8ab"
#define ID_VALIDATION_FORM                                                     \
    "54f11786b4ad11d18f949590c83821042c031495c93e7154de3324436a943a3a"
/* 'x|1.5|true|false||{"a":[1,2]}|[]|' */
#define ID_ODD_TYPES                                                           \
    "1b84d636abfea927bef37838c48f32f284ace73008b6052cb4070759131eb73a"

/*
 * Events whose fields join to one text, "Delivered|40211|m|x|y||||": the
 * id slhook gave both before ids were escaped (the legacy id), and each
 * one's escaped id, from
 * printf '%s' 'Delivered\,40211\,m\px\,y\,\,\,\,' | sha256sum
 */
#define ID_LEGACY_MXY                                                          \
    "7a59205e504e26615ba52d2bc96a458b671fec969c20227c5b2c2186e6056dd0"
#define ID_M_PIPE_X                                                            \
    "1b0bdffc2677aaed9fabe530b5148eccbbd138bda765c5246e6ddd411570ec50"
#define ID_X_PIPE_Y                                                            \
    "cd5c8c43fd8a8ba7f3be19e9822aaf50c7cb96b5775ef0b46ec0b4ac8ce7ffc8"
/* MessageId "x|y", MailingId "g": 'Delivered\,40211\,x\py\,g\,\,\,\,' */
#define ID_XY_G                                                                \
    "630e17467b8fc53ead64463ebf5d0df895469e7260a6428292a1cd07a6c9b230"
/* 'Delivered|40211|x\|y|g||||': the legacy id of MessageId "x\", MailingId
 * "y|g", and what MessageId "x|y", MailingId "g" would get if the escaped
 * text kept '|' as its separator ("\|" for a '|'). */
#define ID_LEGACY_XBS_YG                                                       \
    "5462102cf1150119e8f513cc3d41931ce6d8e14069a93fae850d9f97145ddbef"

#define ERR_NAME(code) [code] = #code
static const char *const err_names[] = {
    ERR_NAME(SLH_OK),       ERR_NAME(SLH_ENOMEM), ERR_NAME(SLH_EINVAL),
    ERR_NAME(SLH_ECONFIG),  ERR_NAME(SLH_EIO),    ERR_NAME(SLH_EPARSE),
    ERR_NAME(SLH_EEVENT),   ERR_NAME(SLH_ESTORE), ERR_NAME(SLH_EDELIVER),
    ERR_NAME(SLH_ENOTFOUND)};

static const char *
err_name(enum slh_err rc)
{
    if ((size_t)rc < sizeof(err_names) / sizeof(err_names[0]))
        return err_names[rc];
    return "?";
}

/* For printing a string that may be NULL. */
static const char *
str(const char *s)
{
    return s != NULL ? s : "(null)";
}

static bool
is_hex_id(const char *id)
{
    size_t i;

    for (i = 0; i < SLH_EVENT_ID_LEN; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    }
    return id[SLH_EVENT_ID_LEN] == '\0';
}

/* Parses a fixture file into batch; the body is freed. */
static enum slh_err
parse_fixture(struct slh_batch *batch, const char *file, enum slh_media media,
              struct slh_error *err)
{
    char path[512];
    size_t len;
    char *body;
    enum slh_err rc;

    snprintf(path, sizeof(path), "%s/socketlabs/%s", check_fixtures(), file);
    body = check_slurp(path, &len);
    if (!CHECK(body != NULL, "cannot read %s", path)) {
        batch->events = NULL;
        batch->n = 0;
        return SLH_EIO;
    }
    rc = slh_batch_parse(batch, body, len, media, err);
    free(body);
    return rc;
}

static enum slh_err
parse_str(struct slh_batch *batch, const char *body, enum slh_media media)
{
    return slh_batch_parse(batch, body, strlen(body), media, NULL);
}

static void
test_media(void)
{
    static const struct {
        const char *ct;
        enum slh_media want;
    } cases[] = {
        {"application/json", SLH_MEDIA_JSON},
        {"application/json; charset=utf-8", SLH_MEDIA_JSON},
        {"Application/JSON ;charset=UTF-8", SLH_MEDIA_JSON},
        {"APPLICATION/JSON", SLH_MEDIA_JSON},
        {" application/json", SLH_MEDIA_JSON},
        {"application/json;", SLH_MEDIA_JSON},
        {"application/x-www-form-urlencoded", SLH_MEDIA_FORM},
        {"application/x-www-form-urlencoded; charset=utf-8", SLH_MEDIA_FORM},
        {"Application/X-WWW-Form-Urlencoded", SLH_MEDIA_FORM},
        {"application/jsonx", SLH_MEDIA_OTHER},
        {"application/json-patch+json", SLH_MEDIA_OTHER},
        {"application/x-www-form-urlencodedx", SLH_MEDIA_OTHER},
        {"application/", SLH_MEDIA_OTHER},
        {"text/plain", SLH_MEDIA_OTHER},
        {"text/json", SLH_MEDIA_OTHER},
        {"multipart/form-data; boundary=x", SLH_MEDIA_OTHER},
        {"json", SLH_MEDIA_OTHER},
        {";application/json", SLH_MEDIA_OTHER},
        {"", SLH_MEDIA_OTHER},
        {"   ", SLH_MEDIA_OTHER},
        {NULL, SLH_MEDIA_OTHER},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum slh_media got = slh_media_parse(cases[i].ct);
        CHECK(got == cases[i].want, "media \"%s\": got %d, want %d",
              cases[i].ct != NULL ? cases[i].ct : "(null)", (int)got,
              (int)cases[i].want);
    }
}

static void
test_fixtures(void)
{
    static const struct {
        const char *file;
        const char *type;
        int tracking;
    } cases[] = {
        {"complaint-1.json", "Complaint", SLH_TRACKING_NONE},
        {"complaint-2.json", "Complaint", SLH_TRACKING_NONE},
        {"deferred-1.json", "Deferred", SLH_TRACKING_NONE},
        {"deferred-2.json", "Deferred", SLH_TRACKING_NONE},
        {"delivered-1.json", "Delivered", SLH_TRACKING_NONE},
        {"delivered-2.json", "Delivered", SLH_TRACKING_NONE},
        {"delivered-wrapped.json", "Delivered", SLH_TRACKING_NONE},
        {"failed-1.json", "Failed", SLH_TRACKING_NONE},
        {"failed-2.json", "Failed", SLH_TRACKING_NONE},
        {"failed-3.json", "Failed", SLH_TRACKING_NONE},
        {"queued-1.json", "Queued", SLH_TRACKING_NONE},
        {"queued-2.json", "Queued", SLH_TRACKING_NONE},
        {"tracking-1.json", "Tracking", SLH_TRACKING_CLICK},
        {"tracking-2.json", "Tracking", SLH_TRACKING_OPEN},
        {"tracking-3.json", "Tracking", SLH_TRACKING_UNSUBSCRIBE},
        {"validation-1.json", "Validation", SLH_TRACKING_NONE},
        {"validation-2.json", "Validation", SLH_TRACKING_NONE},
        {"legacy-form-complaint.txt", "Complaint", SLH_TRACKING_NONE},
        {"legacy-form-delivered.txt", "Delivered", SLH_TRACKING_NONE},
        {"legacy-form-failed.txt", "Failed", SLH_TRACKING_NONE},
        {"legacy-form-tracking.txt", "Tracking", SLH_TRACKING_CLICK},
        {"legacy-form-validation.txt", "Validation", SLH_TRACKING_NONE},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *f = cases[i].file;
        enum slh_media media =
            strstr(f, ".json") != NULL ? SLH_MEDIA_JSON : SLH_MEDIA_FORM;
        struct slh_error err = {0};
        struct slh_batch b;
        const struct slh_event *ev;
        json_t *key;
        char *body;

        if (!CHECK(parse_fixture(&b, f, media, &err) == SLH_OK, "%s: %s (%s)",
                   f, err.text, err_name(err.code)))
            continue;
        if (!CHECK(b.n == 1, "%s: %zu events", f, b.n)) {
            slh_batch_free(&b);
            continue;
        }
        ev = &b.events[0];
        CHECK(strcmp(ev->type, cases[i].type) == 0, "%s: type %s", f, ev->type);
        CHECK(ev->tracking == cases[i].tracking, "%s: tracking %d", f,
              ev->tracking);
        CHECK(ev->is_validation == (strcmp(cases[i].type, "Validation") == 0),
              "%s: is_validation %d", f, (int)ev->is_validation);
        CHECK(is_hex_id(ev->id), "%s: id \"%s\"", f, ev->id);
        key = slh_event_get(ev->obj, "secretkey");
        CHECK(json_is_string(key) &&
                  strcmp(json_string_value(key), SECRET) == 0,
              "%s: SecretKey kept in obj", f);
        CHECK(json_integer_value(slh_event_get(ev->obj, "ServerId")) == 40211 ||
                  strcmp(json_string_value(slh_event_get(ev->obj, "ServerId")),
                         "40211") == 0,
              "%s: ServerId", f);
        body = slh_event_body(ev);
        CHECK(body != NULL && strstr(body, "SecretKey") == NULL &&
                  strstr(body, SECRET) == NULL,
              "%s: relay body keeps the secret: %s", f, str(body));
        CHECK(body != NULL && strncmp(body, "{\"Type\":", 8) == 0,
              "%s: relay body starts with Type: %s", f, str(body));
        free(body);
        slh_batch_free(&b);
        CHECK(b.n == 0 && b.events == NULL, "%s: freed batch zeroed", f);
    }
}

/* slh_batch_bodies() makes each stored event's relay body, once; none for a
 * Validation, which is not stored. */
static void
test_batch_bodies(void)
{
    static const char json[] =
        "[{\"Type\":\"Queued\",\"SecretKey\":\"k\",\"MessageId\":\"m\"},"
        "{\"Type\":\"validation\",\"SecretKey\":\"k\"},"
        "{\"Type\":\"Tracking\",\"TrackingType\":1,\"SecretKey\":\"k\"}]";
    struct slh_batch b;
    struct slh_error err = {0};
    char *want, *first;

    if (!CHECK(slh_batch_parse(&b, LIT(json), SLH_MEDIA_JSON, &err) == SLH_OK &&
                   b.n == 3,
               "bodies batch: %s", err.text))
        return;
    CHECK(b.events[0].body == NULL && b.events[2].body == NULL,
          "no body before slh_batch_bodies");
    CHECK(slh_batch_bodies(&b) == SLH_OK, "slh_batch_bodies");
    for (size_t i = 0; i < b.n; i++) {
        want = b.events[i].is_validation ? NULL : slh_event_body(&b.events[i]);
        CHECK(want == NULL ? b.events[i].body == NULL
                           : b.events[i].body != NULL &&
                                 strcmp(b.events[i].body, want) == 0,
              "event %zu: body %s, want %s", i + 1,
              b.events[i].body ? b.events[i].body : "(none)",
              want ? want : "(none)");
        free(want);
    }
    first = b.events[0].body;
    CHECK(slh_batch_bodies(&b) == SLH_OK && b.events[0].body == first,
          "a body made already is kept");
    slh_batch_free(&b);
    CHECK(b.n == 0 && b.events == NULL, "batch with bodies freed");
}

static void
test_batch_and_wrapper(void)
{
    struct slh_batch b3, d1, d2, w;
    struct slh_error err = {0};
    char *body2, *bodyw;

    CHECK(parse_fixture(&b3, "batch-3.json", SLH_MEDIA_JSON, &err) == SLH_OK,
          "batch-3: %s", err.text);
    CHECK(b3.n == 3, "batch-3: %zu events", b3.n);
    if (b3.n == 3) {
        CHECK(strcmp(b3.events[0].type, "Queued") == 0 &&
                  strcmp(b3.events[1].type, "Delivered") == 0 &&
                  strcmp(b3.events[2].type, "Tracking") == 0,
              "batch-3: types in order");
        CHECK(b3.events[0].tracking == SLH_TRACKING_NONE &&
                  b3.events[2].tracking == SLH_TRACKING_CLICK,
              "batch-3: tracking");
        CHECK(strcmp(b3.events[0].id, b3.events[1].id) != 0 &&
                  strcmp(b3.events[1].id, b3.events[2].id) != 0,
              "batch-3: distinct ids");
        CHECK(strcmp(b3.events[2].id, ID_TRACKING_1) == 0,
              "batch-3: third is tracking-1: %s", b3.events[2].id);
    }
    CHECK(parse_fixture(&d1, "delivered-1.json", SLH_MEDIA_JSON, NULL) ==
              SLH_OK,
          "delivered-1");
    CHECK(b3.n == 3 && d1.n == 1 &&
              strcmp(b3.events[1].id, d1.events[0].id) == 0,
          "batch-3 second event is delivered-1");
    slh_batch_free(&b3);
    slh_batch_free(&d1);

    CHECK(parse_fixture(&d2, "delivered-2.json", SLH_MEDIA_JSON, NULL) ==
              SLH_OK,
          "delivered-2");
    CHECK(parse_fixture(&w, "delivered-wrapped.json", SLH_MEDIA_JSON, NULL) ==
              SLH_OK,
          "delivered-wrapped");
    if (d2.n == 1 && w.n == 1) {
        CHECK(strcmp(d2.events[0].id, ID_DELIVERED_2) == 0, "delivered-2 id %s",
              d2.events[0].id);
        CHECK(strcmp(w.events[0].id, d2.events[0].id) == 0,
              "wrapped id differs");
        body2 = slh_event_body(&d2.events[0]);
        bodyw = slh_event_body(&w.events[0]);
        CHECK(body2 != NULL && bodyw != NULL && strcmp(body2, bodyw) == 0,
              "wrapped body differs:\n%s\n%s", str(body2), str(bodyw));
        /* Order and spelling as received, the secret gone, \r\n kept. */
        CHECK(body2 != NULL &&
                  strcmp(body2,
                         "{\"Type\":\"Delivered\",\"DateTime\":\"2024-05-02T10:"
                         "02:44.5Z\",\"ServerId\":40211,\"Address\":\"it@"
                         "partner.example\",\"Response\":\"250 Requested mail "
                         "action okay, completed: id=1MZ9nB-3xQ\\r\\n\","
                         "\"LocalIp\":\"142.0.181.4\",\"RemoteMta\":\"mx01."
                         "partner.example\",\"MailingId\":\"\",\"MessageId\":"
                         "\"tkt-10442\"}") == 0,
              "relay body: %s", str(body2));
        CHECK(slh_event_get(d2.events[0].obj, "SecretKey") != NULL,
              "slh_event_body modified obj");
        free(body2);
        free(bodyw);
    }
    slh_batch_free(&d2);
    slh_batch_free(&w);
}

static void
test_form(void)
{
    struct slh_batch b;
    const json_t *o;

    CHECK(parse_fixture(&b, "legacy-form-delivered.txt", SLH_MEDIA_FORM,
                        NULL) == SLH_OK,
          "legacy delivered");
    if (b.n == 1) {
        o = b.events[0].obj;
        CHECK(strcmp(json_string_value(slh_event_get(o, "DateTime")),
                     "Thu, 02 May 2024 08:16:01 GMT") == 0,
              "percent-decoded DateTime");
        CHECK(strcmp(json_string_value(slh_event_get(o, "Response")),
                     "250 2.0.0 OK queued\r\n") == 0,
              "CR LF in a value");
        CHECK(strcmp(json_string_value(slh_event_get(o, "FromAddress")),
                     "news@brand.example") == 0,
              "last value has no trailing newline");
        CHECK(json_object_size(o) == 11, "legacy delivered: %zu fields",
              json_object_size(o));
    }
    slh_batch_free(&b);

    CHECK(parse_fixture(&b, "legacy-form-failed.txt", SLH_MEDIA_FORM, NULL) ==
              SLH_OK,
          "legacy failed");
    if (b.n == 1) {
        o = b.events[0].obj;
        CHECK(json_is_string(slh_event_get(o, "MailingId")) &&
                  json_string_length(slh_event_get(o, "MailingId")) == 0,
              "empty value kept");
        CHECK(json_is_string(slh_event_get(o, "DiagnosticCode")),
              "empty last value kept");
    }
    slh_batch_free(&b);

    CHECK(parse_fixture(&b, "legacy-form-tracking.txt", SLH_MEDIA_FORM, NULL) ==
              SLH_OK,
          "legacy tracking");
    CHECK(b.n == 1 && strcmp(b.events[0].id, ID_FORM_TRACKING) == 0,
          "legacy tracking id %s", b.n == 1 ? b.events[0].id : "");
    slh_batch_free(&b);

    /* The same body without the file's final newline: same event. */
    CHECK(parse_str(&b, "Type=Validation&ServerId=40211&SecretKey=" SECRET,
                    SLH_MEDIA_FORM) == SLH_OK &&
              b.n == 1 && b.events[0].is_validation &&
              strcmp(b.events[0].id, ID_VALIDATION_FORM) == 0,
          "form validation id");
    slh_batch_free(&b);

    CHECK(parse_str(&b, "Type=Delivered&Note=a+b%2Bc%20d&Flag&%41ddress=x%40y",
                    SLH_MEDIA_FORM) == SLH_OK,
          "form decoding");
    if (b.n == 1) {
        o = b.events[0].obj;
        CHECK(strcmp(json_string_value(slh_event_get(o, "Note")), "a b+c d") ==
                  0,
              "'+' and %%2B");
        CHECK(json_is_string(slh_event_get(o, "Flag")) &&
                  json_string_length(slh_event_get(o, "Flag")) == 0,
              "pair without '='");
        CHECK(strcmp(json_string_value(slh_event_get(o, "Address")), "x@y") ==
                  0,
              "escaped name");
    }
    slh_batch_free(&b);

    CHECK(parse_str(&b,
                    "type=Tracking&trackingtype=Unsubscribe&My+Field=%C3%A9",
                    SLH_MEDIA_FORM) == SLH_OK &&
              b.n == 1 && b.events[0].tracking == SLH_TRACKING_UNSUBSCRIBE &&
              strcmp(
                  json_string_value(slh_event_get(b.events[0].obj, "my field")),
                  "\xc3\xa9") == 0,
          "form: lowercase names, '+' in a name, UTF-8 value");
    slh_batch_free(&b);

    CHECK(parse_str(&b, "Type=Delivered&TrackingType=&FailureType=",
                    SLH_MEDIA_FORM) == SLH_OK &&
              b.n == 1 && b.events[0].tracking == SLH_TRACKING_NONE,
          "form: empty TrackingType and FailureType are absent");
    slh_batch_free(&b);

    CHECK(
        parse_str(&b, "Type=Failed&Reason=line1\r\nline2\r\n",
                  SLH_MEDIA_FORM) == SLH_OK &&
            b.n == 1 &&
            strcmp(json_string_value(slh_event_get(b.events[0].obj, "Reason")),
                   "line1\r\nline2") == 0,
        "form: raw CR LF inside kept, at the end dropped");
    slh_batch_free(&b);
}

static void
test_good_json(void)
{
    static const struct {
        const char *body;
        size_t n;
        const char *type;
        int tracking;
        bool is_validation;
    } cases[] = {
        {"{\"type\":\"Delivered\"}", 1, "Delivered", -1, false},
        {"{\"TYPE\":\"Delivered\"}", 1, "Delivered", -1, false},
        {"{\"tYpE\":\"validation\"}", 1, "validation", -1, true},
        {"{\"Type\":\"VALIDATION\",\"SecretKey\":\"k\"}", 1, "VALIDATION", -1,
         true},
        {"{\"Type\":\"Validations\"}", 1, "Validations", -1, false},
        {"{\"Type\":\"Tracking\",\"trackingtype\":1}", 1, "Tracking", 1, false},
        {"{\"Type\":\"Tracking\",\"TRACKINGTYPE\":\"2\"}", 1, "Tracking", 2,
         false},
        {"{\"Type\":\"Tracking\",\"TrackingType\":\"Click\"}", 1, "Tracking", 0,
         false},
        {"{\"Type\":\"Tracking\",\"TrackingType\":\"OPEN\"}", 1, "Tracking", 1,
         false},
        {"{\"Type\":\"Tracking\",\"TrackingType\":\"unsubscribe\"}", 1,
         "Tracking", 2, false},
        {"{\"Type\":\"Tracking\",\"TrackingType\":0}", 1, "Tracking", 0, false},
        {"{\"Type\":\"Delivered\",\"TrackingType\":null}", 1, "Delivered", -1,
         false},
        {"{\"Type\":\"Delivered\",\"TrackingType\":\"\"}", 1, "Delivered", -1,
         false},
        {"{\"Type\":\"Failed\",\"FailureType\":0}", 1, "Failed", -1, false},
        {"{\"Type\":\"Failed\",\"failuretype\":\"2\"}", 1, "Failed", -1, false},
        {"{\"Type\":\"Failed\",\"FailureType\":\"temporary\"}", 1, "Failed", -1,
         false},
        {"{\"Type\":\"Failed\",\"FailureType\":\"SUPPRESSED\"}", 1, "Failed",
         -1, false},
        {"{\"Type\":\"Failed\",\"FailureType\":null}", 1, "Failed", -1, false},
        {"{\"Type\":\"SomethingNew\",\"Extra\":[1,{\"a\":null}]}", 1,
         "SomethingNew", -1, false},
        /* A real event with a Data field is not a wrapper. */
        {"{\"Type\":\"Queued\",\"Data\":{\"Meta\":[],\"Tags\":[]}}", 1,
         "Queued", -1, false},
        {"{\"Data\":{\"Type\":\"Queued\"}}", 1, "Queued", -1, false},
        {"{\"DATA\":{\"type\":\"Queued\"}}", 1, "Queued", -1, false},
        {"{\"data\":{\"Type\":\"Queued\",\"Data\":{\"Tags\":[]}}}", 1, "Queued",
         -1, false},
        {"[{\"Type\":\"A\"}]", 1, "A", -1, false},
        {"[{\"Type\":\"A\"},{\"type\":\"B\"}]", 2, "A", -1, false},
        {" \r\n\t{\"Type\":\"Spaced\"} \n", 1, "Spaced", -1, false},
        {"{\"Type\":\"\\u00e9v\\u00e9nement\"}", 1, "\xc3\xa9v\xc3\xa9nement",
         -1, false},
        {"{\"Type\":\"Delivered\",\"ServerId\":40211,\"SubaccountId\":null}", 1,
         "Delivered", -1, false},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct slh_error err = {0};
        struct slh_batch b;
        enum slh_err rc = slh_batch_parse(
            &b, cases[i].body, strlen(cases[i].body), SLH_MEDIA_JSON, &err);

        if (!CHECK(rc == SLH_OK && b.n == cases[i].n,
                   "good %zu %s: %s %s (n %zu)", i, cases[i].body, err_name(rc),
                   err.text, b.n)) {
            slh_batch_free(&b);
            continue;
        }
        CHECK(strcmp(b.events[0].type, cases[i].type) == 0 &&
                  b.events[0].tracking == cases[i].tracking &&
                  b.events[0].is_validation == cases[i].is_validation &&
                  is_hex_id(b.events[0].id),
              "good %zu %s: type %s tracking %d validation %d", i,
              cases[i].body, b.events[0].type, b.events[0].tracking,
              (int)b.events[0].is_validation);
        slh_batch_free(&b);
    }
}

struct bad {
    const char *name;
    const char *body;
    size_t len;
    enum slh_media media;
    enum slh_err want;
};

#define J SLH_MEDIA_JSON
#define F SLH_MEDIA_FORM

static const struct bad bad_cases[] = {
    /* Not JSON at all, or not all of it. */
    {"truncated object", LIT("{\"Type\":\"Delivered\""), J, SLH_EPARSE},
    {"truncated string", LIT("{\"Type\":\"Deliv"), J, SLH_EPARSE},
    {"truncated array", LIT("[{\"Type\":\"A\"},"), J, SLH_EPARSE},
    {"only open brace", LIT("{"), J, SLH_EPARSE},
    {"trailing garbage", LIT("{\"Type\":\"A\"} x"), J, SLH_EPARSE},
    {"two objects", LIT("{\"Type\":\"A\"}{\"Type\":\"B\"}"), J, SLH_EPARSE},
    {"trailing comma", LIT("{\"Type\":\"A\",}"), J, SLH_EPARSE},
    {"single quotes", LIT("{'Type':'A'}"), J, SLH_EPARSE},
    {"unquoted key", LIT("{Type:\"A\"}"), J, SLH_EPARSE},
    {"comment", LIT("{\"Type\":\"A\"} // x"), J, SLH_EPARSE},
    {"NaN", LIT("{\"Type\":\"A\",\"X\":NaN}"), J, SLH_EPARSE},
    {"empty", LIT(""), J, SLH_EPARSE},
    {"whitespace only", LIT(" \r\n\t "), J, SLH_EPARSE},
    {"invalid UTF-8 in value", LIT("{\"Type\":\"A\xff\"}"), J, SLH_EPARSE},
    {"invalid UTF-8 in key", LIT("{\"Ty\xc3pe\":\"A\"}"), J, SLH_EPARSE},
    {"overlong UTF-8", LIT("{\"Type\":\"\xc0\xaf\"}"), J, SLH_EPARSE},
    {"UTF-16 surrogate bytes", LIT("{\"Type\":\"\xed\xa0\x80\"}"), J,
     SLH_EPARSE},
    {"lone surrogate escape", LIT("{\"Type\":\"\\ud800\"}"), J, SLH_EPARSE},
    {"raw NUL in string", LIT("{\"Type\":\"A\0B\"}"), J, SLH_EPARSE},
    {"escaped NUL in string", LIT("{\"Type\":\"A\\u0000B\"}"), J, SLH_EPARSE},
    {"escaped NUL in key", LIT("{\"Type\\u0000\":\"A\"}"), J, SLH_EPARSE},
    {"NUL after object", LIT("{\"Type\":\"A\"}\0"), J, SLH_EPARSE},
    {"NUL before object", LIT("\0{\"Type\":\"A\"}"), J, SLH_EPARSE},
    {"raw newline in string", LIT("{\"Type\":\"A\nB\"}"), J, SLH_EPARSE},
    {"BOM", LIT("\xef\xbb\xbf{\"Type\":\"A\"}"), J, SLH_EPARSE},
    {"huge integer", LIT("{\"Type\":\"A\",\"ServerId\":99999999999999999999}"),
     J, SLH_EPARSE},
    {"duplicate key", LIT("{\"Type\":\"A\",\"Type\":\"B\"}"), J, SLH_EPARSE},
    {"SecretKey duplicated",
     LIT("{\"Type\":\"A\",\"SecretKey\":\"" SECRET "\",\"SecretKey\":\"x\"}"),
     J, SLH_EPARSE},
    {"duplicate key in nested object",
     LIT("{\"Type\":\"A\",\"Data\":{\"a\":1,\"a\":2}}"), J, SLH_EPARSE},
    {"duplicate key in wrapper",
     LIT("{\"data\":{\"Type\":\"A\",\"Type\":\"A\"}}"), J, SLH_EPARSE},
    /* Well-formed JSON that is not events. */
    {"top-level string", LIT("\"Delivered\""), J, SLH_EEVENT},
    {"top-level number", LIT("42"), J, SLH_EEVENT},
    {"top-level null", LIT("null"), J, SLH_EEVENT},
    {"top-level true", LIT("true"), J, SLH_EEVENT},
    {"empty object", LIT("{}"), J, SLH_EEVENT},
    {"empty array", LIT("[]"), J, SLH_EEVENT},
    {"nested empty array", LIT("[[]]"), J, SLH_EEVENT},
    {"array of arrays", LIT("[[{\"Type\":\"A\"}]]"), J, SLH_EEVENT},
    {"array of strings", LIT("[\"Type\"]"), J, SLH_EEVENT},
    {"array with null", LIT("[{\"Type\":\"A\"},null]"), J, SLH_EEVENT},
    {"array, second has no Type", LIT("[{\"Type\":\"A\"},{\"type2\":\"B\"}]"),
     J, SLH_EEVENT},
    {"array, third bad tracking",
     LIT("[{\"Type\":\"A\"},{\"Type\":\"B\"},{\"Type\":\"T\","
         "\"TrackingType\":9}]"),
     J, SLH_EEVENT},
    {"no Type", LIT("{\"ServerId\":40211}"), J, SLH_EEVENT},
    {"Type number", LIT("{\"Type\":1}"), J, SLH_EEVENT},
    {"Type null", LIT("{\"Type\":null}"), J, SLH_EEVENT},
    {"Type object", LIT("{\"Type\":{\"a\":1}}"), J, SLH_EEVENT},
    {"Type array", LIT("{\"Type\":[\"Delivered\"]}"), J, SLH_EEVENT},
    {"Type true", LIT("{\"Type\":true}"), J, SLH_EEVENT},
    {"Type empty", LIT("{\"Type\":\"\"}"), J, SLH_EEVENT},
    {"Type and type", LIT("{\"Type\":\"A\",\"type\":\"B\"}"), J, SLH_EEVENT},
    {"SecretKey and secretkey",
     LIT("{\"Type\":\"A\",\"SecretKey\":\"x\",\"secretkey\":\"" SECRET "\"}"),
     J, SLH_EEVENT},
    {"TrackingType 7", LIT("{\"Type\":\"T\",\"TrackingType\":7}"), J,
     SLH_EEVENT},
    {"TrackingType -1", LIT("{\"Type\":\"T\",\"TrackingType\":-1}"), J,
     SLH_EEVENT},
    {"TrackingType 3", LIT("{\"Type\":\"T\",\"TrackingType\":3}"), J,
     SLH_EEVENT},
    {"TrackingType Clik", LIT("{\"Type\":\"T\",\"TrackingType\":\"Clik\"}"), J,
     SLH_EEVENT},
    {"TrackingType 1.5", LIT("{\"Type\":\"T\",\"TrackingType\":1.5}"), J,
     SLH_EEVENT},
    {"TrackingType 1.0", LIT("{\"Type\":\"T\",\"TrackingType\":1.0}"), J,
     SLH_EEVENT},
    {"TrackingType \"7\"", LIT("{\"Type\":\"T\",\"TrackingType\":\"7\"}"), J,
     SLH_EEVENT},
    {"TrackingType \"01\"", LIT("{\"Type\":\"T\",\"TrackingType\":\"01\"}"), J,
     SLH_EEVENT},
    {"TrackingType \" 1\"", LIT("{\"Type\":\"T\",\"TrackingType\":\" 1\"}"), J,
     SLH_EEVENT},
    {"TrackingType true", LIT("{\"Type\":\"T\",\"TrackingType\":true}"), J,
     SLH_EEVENT},
    {"TrackingType array", LIT("{\"Type\":\"T\",\"TrackingType\":[0]}"), J,
     SLH_EEVENT},
    {"FailureType 3", LIT("{\"Type\":\"F\",\"FailureType\":3}"), J, SLH_EEVENT},
    {"FailureType Hard", LIT("{\"Type\":\"F\",\"FailureType\":\"Hard\"}"), J,
     SLH_EEVENT},
    {"FailureType 0.5", LIT("{\"Type\":\"F\",\"failuretype\":0.5}"), J,
     SLH_EEVENT},
    {"FailureType object", LIT("{\"Type\":\"F\",\"FailureType\":{}}"), J,
     SLH_EEVENT},
    {"data wrapper, empty object", LIT("{\"data\":{}}"), J, SLH_EEVENT},
    {"data wrapper, string", LIT("{\"data\":\"Delivered\"}"), J, SLH_EEVENT},
    {"data wrapper, null", LIT("{\"data\":null}"), J, SLH_EEVENT},
    {"data wrapper, array", LIT("{\"data\":[{\"Type\":\"A\"}]}"), J,
     SLH_EEVENT},
    {"data wrapper, no Type", LIT("{\"Data\":{\"Meta\":[]}}"), J, SLH_EEVENT},
    {"data wrapper, Type number", LIT("{\"data\":{\"Type\":5}}"), J,
     SLH_EEVENT},
    {"data wrapper twice", LIT("{\"data\":{\"data\":{\"Type\":\"A\"}}}"), J,
     SLH_EEVENT},
    {"wrapper-like with two keys", LIT("{\"data\":{\"Type\":\"A\"},\"x\":1}"),
     J, SLH_EEVENT},
    /* Legacy form bodies. */
    {"form empty", LIT(""), F, SLH_EPARSE},
    {"form only newline", LIT("\r\n"), F, SLH_EPARSE},
    {"form bad escape %G1", LIT("Type=A%G1"), F, SLH_EPARSE},
    {"form bad escape %", LIT("Type=A%"), F, SLH_EPARSE},
    {"form bad escape %4", LIT("Type=A%4"), F, SLH_EPARSE},
    {"form bad escape in name", LIT("Ty%zpe=A"), F, SLH_EPARSE},
    {"form empty name", LIT("=x"), F, SLH_EPARSE},
    {"form empty name later", LIT("Type=A&=x"), F, SLH_EPARSE},
    {"form empty pair", LIT("Type=A&&B=1"), F, SLH_EPARSE},
    {"form trailing &", LIT("Type=A&"), F, SLH_EPARSE},
    {"form duplicate name", LIT("Type=A&Type=A"), F, SLH_EPARSE},
    {"form duplicate name, case",
     LIT("Type=A&SecretKey=" SECRET "&secretkey=x"), F, SLH_EPARSE},
    {"form duplicate via escape", LIT("Type=A&%54ype=B"), F, SLH_EPARSE},
    {"form invalid UTF-8 value", LIT("Type=A&Reason=%FF"), F, SLH_EPARSE},
    {"form invalid UTF-8 raw", LIT("Type=A&Reason=\xc3"), F, SLH_EPARSE},
    {"form invalid UTF-8 name", LIT("Type=A&%C3=1"), F, SLH_EPARSE},
    {"form NUL escaped in value", LIT("Type=A%00B"), F, SLH_EPARSE},
    {"form NUL raw in value", LIT("Type=A\0B"), F, SLH_EPARSE},
    {"form NUL in name", LIT("Type=A&X%00Y=1"), F, SLH_EPARSE},
    {"form BOM", LIT("\xef\xbb\xbfType=A"), F, SLH_EPARSE},
    {"form no Type", LIT("ServerId=40211&SecretKey=" SECRET), F, SLH_EEVENT},
    {"form Type empty", LIT("Type=&ServerId=40211"), F, SLH_EEVENT},
    {"form Type without =", LIT("Type&ServerId=40211"), F, SLH_EEVENT},
    {"form whitespace only", LIT("   "), F, SLH_EEVENT},
    {"form JSON body", LIT("{\"Type\":\"A\"}"), F, SLH_EEVENT},
    {"form TrackingType 7", LIT("Type=Tracking&TrackingType=7"), F, SLH_EEVENT},
    {"form TrackingType Clik", LIT("Type=Tracking&TrackingType=Clik"), F,
     SLH_EEVENT},
    {"form FailureType bad", LIT("Type=Failed&FailureType=Soft"), F,
     SLH_EEVENT},
    /* A request that is neither. */
    {"media OTHER", LIT("{\"Type\":\"A\"}"), SLH_MEDIA_OTHER, SLH_EINVAL},
    {"NULL body", NULL, 3, J, SLH_EINVAL},
};

static void
check_bad(const char *name, const char *body, size_t len, enum slh_media media,
          enum slh_err want)
{
    struct slh_error err = {0};
    struct slh_batch b = {(struct slh_event *)1, 99};
    enum slh_err rc = slh_batch_parse(&b, body, len, media, &err);

    CHECK(rc == want && err.code == want && err.text[0] != '\0' && b.n == 0 &&
              b.events == NULL,
          "bad \"%s\": got %s (%s), want %s, batch n %zu", name, err_name(rc),
          err.text, err_name(want), b.n);
    slh_batch_free(&b);
}

static void
test_bad(void)
{
    char *deep;
    size_t i;

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad *c = &bad_cases[i];
        check_bad(c->name, c->body, c->len, c->media, c->want);
    }

    /* Beyond Jansson's depth limit; closed, so only the depth is wrong. */
    deep = malloc(20000);
    if (CHECK(deep != NULL, "malloc")) {
        memset(deep, '[', 10000);
        memset(deep + 10000, ']', 10000);
        check_bad("10000 [", deep, 10000, J, SLH_EPARSE);
        check_bad("10000 [ ]", deep, 20000, J, SLH_EPARSE);
        for (i = 0; i < 3000; i++)
            memcpy(deep + 5 * i, "{\"a\":", 5);
        deep[15000] = '1';
        memset(deep + 15001, '}', 3000);
        check_bad("3000 nested objects", deep, 18001, J, SLH_EPARSE);
    }
    free(deep);
}

/* Error texts a person reads: Jansson's place, the element index. */
static void
test_error_texts(void)
{
    struct slh_error err = {0};
    struct slh_batch b;

    slh_batch_parse(&b, LIT("{\n  \"Type\": \"A\",\n  x\n}"), J, &err);
    CHECK(strncmp(err.text, "invalid JSON at line 3 column 3: ", 33) == 0,
          "JSON error text: %s", err.text);

    slh_error_clear(&err);
    slh_batch_parse(&b, LIT("[{\"Type\":\"A\"},{\"Type\":\"B\"},{\"X\":1}]"), J,
                    &err);
    CHECK(strcmp(err.text, "event 3: no Type") == 0, "index text: %s",
          err.text);

    slh_error_clear(&err);
    slh_batch_parse(&b, LIT("[{\"Type\":\"A\"},7]"), J, &err);
    CHECK(strcmp(err.text, "event 2: not an object") == 0,
          "non-object text: %s", err.text);

    slh_error_clear(&err);
    slh_batch_parse(&b, LIT("{\"Type\":5}"), J, &err);
    CHECK(strcmp(err.text, "Type is not a string") == 0, "Type text: %s",
          err.text);

    slh_error_clear(&err);
    slh_batch_parse(&b, LIT("{\"data\":\"x\"}"), J, &err);
    CHECK(strcmp(err.text, "data wrapper holds no event") == 0,
          "wrapper text: %s", err.text);

    slh_error_clear(&err);
    slh_batch_parse(&b, LIT("Type=A&Reason=%G1"), F, &err);
    CHECK(strcmp(err.text, "form field 1: bad percent escape") == 0,
          "form text: %s", err.text);

    /* No request bytes in error texts: a field name may be the secret. */
    slh_error_clear(&err);
    slh_batch_parse(&b,
                    LIT("Type=A&q7Rt2mXw9LpB4sKd8Zf3=1&q7rt2mxw9lpb4skd8zf3=2"),
                    F, &err);
    CHECK(err.code == SLH_EPARSE &&
              strcmp(err.text, "form field 2: name given twice") == 0,
          "duplicate text names the field by number only: %s", err.text);
    slh_error_clear(&err);
    slh_batch_parse(&b, LIT("{\"SecretKey\":\"q7Rt2mXw9Lp"), J, &err);
    CHECK(err.code == SLH_EPARSE && strstr(err.text, "q7Rt") == NULL &&
              strstr(err.text, "line 1 column") != NULL,
          "JSON text keeps the place, not the bytes: %s", err.text);

    /* The first error wins. */
    slh_batch_parse(&b, LIT("{}"), J, &err);
    CHECK(err.code == SLH_EPARSE, "first error kept");
    CHECK(slh_batch_parse(&b, LIT("{}"), J, NULL) == SLH_EEVENT,
          "err NULL is fine");
}

static json_t *
load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    CHECK(j != NULL, "test JSON: %s", text);
    return j;
}

static void
test_identity(void)
{
    static const char *const fields[] = {
        "Type",    "ServerId", "MessageId",    "MailingId",
        "Address", "DateTime", "TrackingType", "Url"};
    const char *base_text =
        "{\"Type\":\"Tracking\",\"ServerId\":40211,\"MessageId\":\"m\","
        "\"MailingId\":\"g\",\"Address\":\"a@b\",\"DateTime\":\"d\","
        "\"TrackingType\":0,\"Url\":\"u\",\"SecretKey\":\"s\"}";
    json_t *base = load(base_text), *obj;
    char id0[SLH_EVENT_ID_LEN + 1], id[SLH_EVENT_ID_LEN + 1];
    size_t i;

    if (base == NULL)
        return;
    slh_event_identity(base, id0);
    slh_event_identity(base, id);
    CHECK(is_hex_id(id0) && strcmp(id0, id) == 0, "identity stable");

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        obj = json_deep_copy(base);
        json_object_set_new(obj, fields[i], json_string("changed"));
        slh_event_identity(obj, id);
        CHECK(strcmp(id, id0) != 0, "identity ignores %s", fields[i]);
        json_object_del(obj, fields[i]);
        slh_event_identity(obj, id);
        CHECK(strcmp(id, id0) != 0, "identity ignores absent %s", fields[i]);
        json_decref(obj);
    }

    /* Fields outside the eight do not count, nor does the secret. */
    obj = json_deep_copy(base);
    json_object_set_new(obj, "SecretKey", json_string("other"));
    json_object_set_new(obj, "UserAgent", json_string("x"));
    slh_event_identity(obj, id);
    CHECK(strcmp(id, id0) == 0, "identity depends on other fields");
    json_decref(obj);

    /* Names match in any case; the value is taken as received. */
    obj = load("{\"TYPE\":\"Tracking\",\"serverid\":40211,\"MessageID\":\"m\","
               "\"mailingid\":\"g\",\"ADDRESS\":\"a@b\",\"datetime\":\"d\","
               "\"trackingType\":0,\"URL\":\"u\"}");
    slh_event_identity(obj, id);
    CHECK(strcmp(id, id0) == 0, "identity with other key spellings");
    json_decref(obj);

    obj = load("{\"Url\":\"u\",\"TrackingType\":\"0\",\"DateTime\":\"d\","
               "\"Address\":\"a@b\",\"MailingId\":\"g\",\"MessageId\":\"m\","
               "\"ServerId\":\"40211\",\"Type\":\"Tracking\"}");
    slh_event_identity(obj, id);
    CHECK(strcmp(id, id0) == 0,
          "numbers as strings and other key order give the same identity");
    json_decref(obj);

    obj = load("{\"Type\":\"Tracking\",\"ServerId\":40211,\"MessageId\":\"m\","
               "\"MailingId\":\"g\",\"Address\":\"a@b\",\"DateTime\":\"d\","
               "\"TrackingType\":\"Click\",\"Url\":\"u\"}");
    slh_event_identity(obj, id);
    CHECK(strcmp(id, id0) != 0, "TrackingType name is as received");
    json_decref(obj);

    /* null is empty, like absent. */
    obj = load("{\"Type\":\"Validation\",\"ServerId\":40211,\"MessageId\":null,"
               "\"Url\":null}");
    slh_event_identity(obj, id);
    CHECK(strcmp(id, ID_VALIDATION_FORM) == 0, "null fields: %s", id);
    json_decref(obj);

    obj = load("{\"Type\":\"x\",\"ServerId\":1.5,\"MessageId\":true,"
               "\"MailingId\":false,\"Address\":null,\"DateTime\":{\"a\":[1,"
               "2]},\"TrackingType\":[]}");
    slh_event_identity(obj, id);
    CHECK(strcmp(id, ID_ODD_TYPES) == 0, "odd value types: %s", id);
    json_decref(obj);

    obj = load("{\"Type\":\"Tracking\",\"TrackingType\":0,\"DateTime\":\"2024-"
               "05-02T11:20:14.6610243Z\",\"ServerId\":40211,\"Address\":\"lee@"
               "mail.example\",\"Url\":\"https://brand.example/"
               "spring?utm_source=email\",\"MailingId\":\"spring-2024\","
               "\"MessageId\":\"c0a9e3f2\"}");
    slh_event_identity(obj, id);
    CHECK(strcmp(id, ID_TRACKING_1) == 0, "tracking-1 fields: %s", id);
    json_decref(obj);
    json_decref(base);
}

/* Two events whose fields join to one text. */
#define A_TEXT                                                                 \
    "{\"Type\":\"Delivered\",\"ServerId\":40211,\"MessageId\":\"m|x\","        \
    "\"MailingId\":\"y\",\"SecretKey\":\"" SECRET "\"}"
#define B_TEXT                                                                 \
    "{\"Type\":\"Delivered\",\"ServerId\":40211,\"MessageId\":\"m\","          \
    "\"MailingId\":\"x|y\",\"SecretKey\":\"" SECRET "\"}"

/* Two events whose plain joins are one text get two ids; events without
 * '|' or '\' keep the id they had (the ID_ values above were computed from
 * the plain join before the escaping existed). */
static void
test_identity_escaped(void)
{
    char id[SLH_EVENT_ID_LEN + 1], legacy[SLH_EVENT_ID_LEN + 1];
    struct slh_batch b = {0};
    struct slh_error err = {0};
    json_t *obj;

    if (CHECK(slh_batch_parse(&b, LIT("[" A_TEXT "," B_TEXT "]"),
                              SLH_MEDIA_JSON, &err) == SLH_OK,
              "colliding pair: %s", err.text)) {
        CHECK(strcmp(b.events[0].id, b.events[1].id) != 0,
              "m|x + y and m + x|y share the id %s", b.events[0].id);
        CHECK(strcmp(b.events[0].id, ID_M_PIPE_X) == 0, "m|x + y: %s",
              b.events[0].id);
        CHECK(strcmp(b.events[1].id, ID_X_PIPE_Y) == 0, "m + x|y: %s",
              b.events[1].id);
        CHECK(strcmp(b.events[0].legacy_id, ID_LEGACY_MXY) == 0 &&
                  strcmp(b.events[1].legacy_id, ID_LEGACY_MXY) == 0,
              "legacy ids: %s %s", b.events[0].legacy_id,
              b.events[1].legacy_id);
    }
    slh_batch_free(&b);

    /* Every fixture (no '|' or '\' in its fields) has no legacy id. */
    if (CHECK(parse_fixture(&b, "batch-3.json", SLH_MEDIA_JSON, &err) == SLH_OK,
              "batch-3: %s", err.text))
        for (size_t i = 0; i < b.n; i++)
            CHECK(b.events[i].legacy_id[0] == '\0' && is_hex_id(b.events[i].id),
                  "batch-3 event %zu: legacy id %s", i + 1,
                  b.events[i].legacy_id);
    slh_batch_free(&b);
    if (CHECK(parse_fixture(&b, "tracking-1.json", SLH_MEDIA_JSON, &err) ==
                  SLH_OK,
              "tracking-1: %s", err.text))
        CHECK(strcmp(b.events[0].id, ID_TRACKING_1) == 0 &&
                  b.events[0].legacy_id[0] == '\0',
              "tracking-1 keeps its id: %s", b.events[0].id);
    slh_batch_free(&b);

    /* Why a row under a legacy id can only be an older slhook's: the
     * escaped text has no '|' and a plain join has at least seven, so no
     * escaped id is any event's legacy id. With '|' kept as the separator
     * of the escaped text (and "\|" for a '|'), this event's escaped text
     * would be the plain join of the next one, whose legacy lookup would
     * find this event stored and drop itself as its duplicate. */
    obj = load("{\"Type\":\"Delivered\",\"ServerId\":40211,"
               "\"MessageId\":\"x|y\",\"MailingId\":\"g\"}");
    slh_event_identity(obj, id);
    CHECK(strcmp(id, ID_XY_G) == 0, "x|y + g: %s", id);
    CHECK(strcmp(id, ID_LEGACY_XBS_YG) != 0,
          "x|y + g has the legacy id of x\\ + y|g");
    json_decref(obj);
    obj = load("{\"Type\":\"Delivered\",\"ServerId\":40211,"
               "\"MessageId\":\"x\\\\\",\"MailingId\":\"y|g\"}");
    slh_event_legacy_id(obj, legacy);
    CHECK(strcmp(legacy, ID_LEGACY_XBS_YG) == 0, "x\\ + y|g legacy id: %s",
          legacy);
    slh_event_identity(obj, id);
    CHECK(strcmp(id, ID_XY_G) != 0 && strcmp(id, legacy) != 0, "x\\ + y|g: %s",
          id);
    json_decref(obj);

    /* A '\' alone moves an event to the escaped text too (there it is the
     * escape character), and so does a '|' inside a JSON value hashed as
     * text. */
    obj = load("{\"Type\":\"Delivered\",\"MessageId\":\"a\\\\\"}");
    slh_event_legacy_id(obj, legacy);
    slh_event_identity(obj, id);
    CHECK(legacy[0] != '\0' && strcmp(id, legacy) != 0,
          "a backslash gives a legacy id: %s", legacy);
    json_decref(obj);
    obj = load("{\"Type\":\"Delivered\",\"DateTime\":{\"a\":\"|\"}}");
    slh_event_legacy_id(obj, legacy);
    CHECK(legacy[0] != '\0', "a '|' inside an object value gives a legacy id");
    json_decref(obj);
    obj = load("{\"Type\":\"Delivered\",\"MessageId\":\"plain\"}");
    slh_event_legacy_id(obj, legacy);
    CHECK(legacy[0] == '\0', "a plain event has no legacy id: %s", legacy);
    json_decref(obj);
}

static void
test_get_and_body(void)
{
    json_t *o = load("{\"url\":1,\"URL\":2,\"Url\":3}");
    struct slh_event ev = {0};
    char *body;

    CHECK(json_integer_value(slh_event_get(o, "Url")) == 1,
          "first match in key order");
    CHECK(slh_event_get(o, "Ur") == NULL, "no prefix match");
    CHECK(slh_event_get(o, "Urls") == NULL, "no longer match");
    CHECK(slh_event_get(NULL, "Url") == NULL, "NULL object");
    json_decref(o);
    o = load("[1]");
    CHECK(slh_event_get(o, "Url") == NULL, "not an object");
    json_decref(o);

    ev.obj = load("{\"secretKEY\":\"a\",\"Z\":1,\"SecretKey\":\"b\",\"A\":"
                  "[1,{\"SecretKey\":\"nested\"}],\"SecretKeys\":\"c\","
                  "\"SECRETKEY\":\"d\"}");
    body = slh_event_body(&ev);
    CHECK(body != NULL &&
              strcmp(body, "{\"Z\":1,\"A\":[1,{\"SecretKey\":\"nested\"}],"
                           "\"SecretKeys\":\"c\"}") == 0,
          "every top-level SecretKey removed, order kept: %s", str(body));
    CHECK(json_object_size(ev.obj) == 6, "body left obj alone");
    free(body);
    json_decref(ev.obj);

    ev.obj = load("{\"SecretKey\":\"a\"}");
    body = slh_event_body(&ev);
    CHECK(body != NULL && strcmp(body, "{}") == 0, "only a secret: %s",
          str(body));
    free(body);
    json_decref(ev.obj);

    ev.obj = load("{\"Type\":\"A\",\"Text\":\"\xc3\xa9/\\u2028\",\"N\":-0}");
    body = slh_event_body(&ev);
    CHECK(body != NULL &&
              strcmp(body, "{\"Type\":\"A\",\"Text\":\"\xc3\xa9/\xe2\x80\xa8\","
                           "\"N\":0}") == 0,
          "values unescaped as Jansson writes them: %s", str(body));
    free(body);
    json_decref(ev.obj);
}

static void
test_free(void)
{
    struct slh_batch zero = {0};

    slh_batch_free(NULL);
    slh_batch_free(&zero);
    slh_batch_free(&zero);
    CHECK(zero.n == 0 && zero.events == NULL, "free of a zeroed batch");
}

/*
 * Files under tests/cases/event/: NAME.WANT.MEDIA, WANT one of ok, eparse,
 * eevent and MEDIA json or form. Adding a case is adding a file.
 */
/* slh_body_shape() of a JSON body Jansson accepts agrees with the tree. */
static void
check_shape_against_tree(const char *what, const char *body, size_t len)
{
    struct slh_shape sh;
    struct tree_shape t;
    json_t *root =
        json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);

    if (root == NULL)
        return;
    slh_body_shape(body, len, SLH_MEDIA_JSON, &sh);
    tree_shape(root, &t);
    if (t.depth > SLH_MAX_DEPTH) {
        /* Counting stopped there; the rest is partial. */
        CHECK(sh.depth == SLH_MAX_DEPTH + 1, "%s: depth %zu of %zu", what,
              sh.depth, t.depth);
        json_decref(root);
        return;
    }
    CHECK(sh.events == t.events && sh.values == t.values &&
              sh.event_values == t.event_values && sh.depth == t.depth,
          "%s: shape %zu events %zu values (%zu most) depth %zu; tree %zu "
          "%zu (%zu) %zu",
          what, sh.events, sh.values, sh.event_values, sh.depth, t.events,
          t.values, t.event_values, t.depth);
    json_decref(root);
}

/* Counting before parsing: exact about strings, keys and escapes. */
static void
test_shape(void)
{
    static const struct {
        const char *body;
        enum slh_media media;
        size_t events, values, event_values, big_event, depth;
    } cases[] = {
        {"[{\"Type\":\"x\"},{\"Type\":\"y\"}]", SLH_MEDIA_JSON, 2, 4, 2, 1, 2},
        {"{\"data\":{\"Type\":\"x\"}}", SLH_MEDIA_JSON, 1, 3, 3, 1, 2},
        {"{\"a\":1,\"b\":[1,2]}", SLH_MEDIA_JSON, 1, 5, 5, 1, 2},
        {"[{\"a\":1},{\"a\":[1,2,3]},{}]", SLH_MEDIA_JSON, 3, 8, 5, 2, 3},
        /* Brackets, quotes and backslashes inside strings are text. */
        {"[\"a]\\\"],[\", \"\\\\\", {\"k]\":\"{\\\"\"}]", SLH_MEDIA_JSON, 3, 4,
         2, 3, 2},
        {" [ true , null ,-1.5e3 ] ", SLH_MEDIA_JSON, 3, 3, 1, 1, 1},
        {"\"one\"", SLH_MEDIA_JSON, 1, 1, 1, 1, 0},
        {"[]", SLH_MEDIA_JSON, 0, 0, 0, 0, 1},
        {"", SLH_MEDIA_JSON, 0, 0, 0, 0, 0},
        {"a=1&b=2&c", SLH_MEDIA_FORM, 1, 3, 3, 1, 1},
        {"[{]\"", SLH_MEDIA_JSON, 2, 2, 1, 1, 2}, /* junk: some counts */
    };
    struct slh_shape sh;
    char deep[2 * SLH_MAX_DEPTH + 20];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        slh_body_shape(cases[i].body, strlen(cases[i].body), cases[i].media,
                       &sh);
        CHECK(sh.events == cases[i].events && sh.values == cases[i].values &&
                  sh.event_values == cases[i].event_values &&
                  sh.big_event == cases[i].big_event &&
                  sh.depth == cases[i].depth,
              "shape of %s: %zu events, %zu values, %zu in event %zu, depth "
              "%zu",
              cases[i].body, sh.events, sh.values, sh.event_values,
              sh.big_event, sh.depth);
        if (cases[i].media == SLH_MEDIA_JSON)
            check_shape_against_tree(cases[i].body, cases[i].body,
                                     strlen(cases[i].body));
    }

    /* Past the cap the count stops: no stack grows with the body. */
    memset(deep, '[', sizeof(deep));
    slh_body_shape(deep, sizeof(deep), SLH_MEDIA_JSON, &sh);
    CHECK(sh.depth == SLH_MAX_DEPTH + 1, "deep: depth %zu", sh.depth);
    memset(deep, '[', SLH_MAX_DEPTH);
    memset(deep + SLH_MAX_DEPTH, ']', SLH_MAX_DEPTH);
    slh_body_shape(deep, 2 * SLH_MAX_DEPTH, SLH_MEDIA_JSON, &sh);
    CHECK(sh.depth == SLH_MAX_DEPTH && sh.events == 1,
          "at the cap: depth %zu, %zu events", sh.depth, sh.events);

    /* A string cut by the end of the body, an escape as the last byte. */
    slh_body_shape(LIT("[\"abc\\"), SLH_MEDIA_JSON, &sh);
    CHECK(sh.events == 1 && sh.values == 1, "cut string: %zu events",
          sh.events);

    /* The longest string, key or value, escapes as written. */
    slh_body_shape(LIT("{\"Type\":\"ab\\\"c\",\"longest key\":1}"),
                   SLH_MEDIA_JSON, &sh);
    CHECK(sh.longest == 11, "longest string %zu, want 11", sh.longest);
    slh_body_shape(LIT("[\"a\\\"\",\"\"]"), SLH_MEDIA_JSON, &sh);
    CHECK(sh.longest == 3, "longest escaped string %zu, want 3", sh.longest);
    slh_body_shape(LIT("a=1&bb=22&"), SLH_MEDIA_FORM, &sh);
    CHECK(sh.longest == 5 && sh.values == 3, "longest form field %zu of %zu",
          sh.longest, sh.values);

    CHECK(slh_shape_max_values(1) == SLH_MAX_EVENT_VALUES &&
              slh_shape_max_values(100) == 100 * SLH_VALUES_PER_EVENT &&
              slh_shape_max_values((size_t)-1) == (size_t)-1,
          "max values");
}

/* Every request case and fixture that Jansson parses is counted as its tree
 * has it. */
static void
test_shape_files(void)
{
    const char *dirs[2] = {"tests/cases/requests", NULL};
    char path[1024], fix[1024];
    int n = 0;

    snprintf(fix, sizeof(fix), "%s/socketlabs", check_fixtures());
    dirs[1] = fix;
    for (int k = 0; k < 2; k++) {
        DIR *d = opendir(dirs[k]);
        struct dirent *de;

        if (!CHECK(d != NULL, "cannot open %s", dirs[k]))
            continue;
        while ((de = readdir(d)) != NULL) {
            size_t len;
            char *body;

            if (strstr(de->d_name, ".json") == NULL)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dirs[k], de->d_name);
            body = check_slurp(path, &len);
            if (!CHECK(body != NULL, "cannot read %s", path))
                continue;
            check_shape_against_tree(de->d_name, body, len);
            free(body);
            n++;
        }
        closedir(d);
    }
    CHECK(n >= 60, "only %d JSON files counted", n);
}

static void
test_case_files(void)
{
    const char *dir = getenv("SLH_CASES");
    char path[1024];
    struct dirent *de;
    DIR *d;
    int n = 0;

    if (dir == NULL || *dir == '\0')
        dir = "tests/cases";
    snprintf(path, sizeof(path), "%s/event", dir);
    d = opendir(path);
    if (!CHECK(d != NULL, "cannot open %s", path))
        return;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        enum slh_media media;
        enum slh_err want;
        struct slh_error err = {0};
        struct slh_batch b;
        char file[1300];
        size_t len;
        char *body;
        enum slh_err rc;

        if (name[0] == '.')
            continue;
        if (strstr(name, ".json") != NULL)
            media = SLH_MEDIA_JSON;
        else if (strstr(name, ".form") != NULL)
            media = SLH_MEDIA_FORM;
        else
            continue;
        if (strstr(name, ".ok.") != NULL)
            want = SLH_OK;
        else if (strstr(name, ".eparse.") != NULL)
            want = SLH_EPARSE;
        else if (strstr(name, ".eevent.") != NULL)
            want = SLH_EEVENT;
        else {
            CHECK(0, "case %s: no expected result in its name", name);
            continue;
        }
        snprintf(file, sizeof(file), "%s/%s", path, name);
        body = check_slurp(file, &len);
        if (!CHECK(body != NULL, "cannot read %s", file))
            continue;
        rc = slh_batch_parse(&b, body, len, media, &err);
        CHECK(rc == want && (want != SLH_OK || b.n > 0),
              "case %s: got %s (%s), want %s", name, err_name(rc), err.text,
              err_name(want));
        slh_batch_free(&b);
        free(body);
        n++;
    }
    closedir(d);
    CHECK(n >= 5, "only %d case files in %s", n, path);
}

/* Jansson's allocator, failing from the limit-th allocation on. */
static long oom_count;
static long oom_limit;

static void *
oom_malloc(size_t size)
{
    if (oom_count++ >= oom_limit)
        return NULL;
    return malloc(size);
}

/*
 * Every Jansson allocation of a parse made to fail in turn: the answer is
 * SLH_ENOMEM (never an event error), the batch is empty, and the sanitizer
 * build sees no leak.
 */
static void
oom_run(const char *name, const char *body, size_t len, enum slh_media media,
        enum slh_err want)
{
    int bad = 0, runs = 0;

    for (oom_limit = 0; oom_limit < 10000; oom_limit++) {
        struct slh_error err = {0};
        struct slh_batch b;
        enum slh_err rc;
        char *relay = NULL;

        oom_count = 0;
        json_set_alloc_funcs(oom_malloc, free);
        rc = slh_batch_parse(&b, body, len, media, &err);
        if (rc == SLH_OK)
            relay = slh_event_body(&b.events[0]);
        if (rc == SLH_OK && slh_batch_bodies(&b) != SLH_OK) {
            slh_batch_free(&b); /* with the bodies made so far */
            rc = SLH_ENOMEM;
        }
        json_set_alloc_funcs(malloc, free);
        runs++;
        if (rc == want && oom_count <= oom_limit) {
            free(relay);
            slh_batch_free(&b);
            break;
        }
        /* Jansson's lexer reports a string it could not copy as a bad
         * token: a JSON body may fail with a parse error here. */
        if (rc != SLH_ENOMEM && rc != want &&
            !(media == J && rc == SLH_EPARSE)) {
            CHECK(0, "oom %s at %ld: %s (%s)", name, oom_limit, err_name(rc),
                  err.text);
            bad++;
        } else if (rc == SLH_ENOMEM && (b.n != 0 || b.events != NULL)) {
            CHECK(0, "oom %s at %ld: batch not empty", name, oom_limit);
            bad++;
        }
        free(relay);
        slh_batch_free(&b);
    }
    CHECK(bad == 0 && runs > 1 && oom_limit < 10000, "oom %s: %d runs, %d bad",
          name, runs, bad);
}

static void
test_oom(void)
{
    static const char batch[] =
        "[{\"Type\":\"Queued\",\"ServerId\":40211,\"Data\":{\"Meta\":[1.5]}},"
        "{\"Type\":\"Tracking\",\"TrackingType\":\"Open\",\"Url\":\"u\"}]";
    static const char form[] =
        "Type=Tracking&TrackingType=0&Url=https%3A%2F%2Fx&SecretKey=k";

    oom_run("json", batch, sizeof(batch) - 1, J, SLH_OK);
    oom_run("wrapped", LIT("{\"data\":{\"Type\":\"A\",\"x\":[1,2]}}"), J,
            SLH_OK);
    oom_run("form", form, sizeof(form) - 1, F, SLH_OK);
    oom_run("bad element", LIT("[{\"Type\":\"A\"},{\"Type\":9}]"), J,
            SLH_EEVENT);
    oom_run("bad form", LIT("Type=A&X=1&x=2"), F, SLH_EPARSE);
}

/*
 * An object of n fields f0..f(n-1), the last spelled as "F0" when twin is
 * set: names that differ only in case, found by pairs up to 32 fields and by
 * a set past them, so both sides of that line are tried.
 */
static char *
many_fields(size_t n, bool twin)
{
    size_t cap = 32 + n * 16, len;
    char *s = malloc(cap);

    if (s == NULL)
        return NULL;
    len = (size_t)snprintf(s, cap, "{\"Type\":\"A\"");
    for (size_t i = 1; i < n; i++) {
        if (twin && i == n - 1)
            len += (size_t)snprintf(s + len, cap - len, ",\"F0\":0");
        else
            len += (size_t)snprintf(s + len, cap - len, ",\"f%zu\":%zu",
                                    i == 1 ? (size_t)0 : i, i);
    }
    snprintf(s + len, cap - len, "}");
    return s;
}

static void
test_twins(void)
{
    static const size_t sizes[] = {3, 31, 32, 33, 200};

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        for (int twin = 0; twin <= 1; twin++) {
            char *body = many_fields(sizes[k], twin);
            struct slh_error err = {0};
            struct slh_batch b = {0};
            enum slh_err rc;

            if (!CHECK(body != NULL, "out of memory"))
                return;
            rc = slh_batch_parse(&b, body, strlen(body), SLH_MEDIA_JSON, &err);
            if (twin)
                CHECK(rc == SLH_EEVENT && strstr(err.text, "given twice"),
                      "%zu fields with a case twin: %s (%s)", sizes[k],
                      err_name(rc), err.text);
            else
                CHECK(rc == SLH_OK && b.n == 1,
                      "%zu fields, names of equal length, no twin: %s (%s)",
                      sizes[k], err_name(rc), err.text);
            slh_batch_free(&b);
            free(body);
        }
    }
}

/* The fields found in one pass are the ones slh_event_get() finds. */
static void
test_fields(void)
{
    struct slh_batch b = {0};

    CHECK(parse_str(&b,
                    "{\"URL\":\"u\",\"type\":\"Tracking\",\"SERVERID\":1,"
                    "\"secretKEY\":\"k\",\"Urls\":\"x\",\"Ur\":\"y\","
                    "\"trackingtype\":\"open\",\"DateTime\":null}",
                    SLH_MEDIA_JSON) == SLH_OK,
          "mixed-case event parses");
    if (b.n == 1) {
        const struct slh_event *ev = &b.events[0];
        for (int f = 0; f < SLH_FIELDS; f++)
            CHECK(ev->field[f] == slh_event_get(ev->obj, slh_field_name(f)),
                  "field %s as slh_event_get finds it", slh_field_name(f));
        CHECK(strcmp(slh_field_name(SLH_FIELD_SECRET_KEY), "SecretKey") == 0 &&
                  strcmp(slh_field_name(SLH_FIELD_TRACKING_TYPE),
                         "TrackingType") == 0 &&
                  slh_field_name(SLH_FIELDS) == NULL,
              "field names as the spec spells them");
        CHECK(ev->field[SLH_FIELD_MESSAGE_ID] == NULL &&
                  ev->field[SLH_FIELD_FAILURE_TYPE] == NULL,
              "absent fields are NULL");
        CHECK(json_is_null(ev->field[SLH_FIELD_DATE_TIME]),
              "a null field is found, as null");
        CHECK(strcmp(json_string_value(ev->field[SLH_FIELD_URL]), "u") == 0,
              "Url is URL, not Urls or Ur");
        CHECK(ev->tracking == SLH_TRACKING_OPEN, "tracking from trackingtype");
    }
    slh_batch_free(&b);
}

/* Relay bodies either side of the size made on the stack first. */
static void
test_body_sizes(void)
{
    static const size_t sizes[] = {2047, 2048, 2049, 70000};

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        /* {"Type":"A","X":"...."} is 19 bytes around the padding; the
         * request carries a SecretKey the body leaves out. */
        size_t pad = sizes[k] - 19;
        size_t cap = sizes[k] + 64;
        char *want = malloc(cap), *req = malloc(cap + 32), *body = NULL;
        struct slh_batch b = {0};

        if (!CHECK(want != NULL && req != NULL, "out of memory")) {
            free(want);
            free(req);
            return;
        }
        memcpy(want, "{\"Type\":\"A\",\"X\":\"", 17);
        memset(want + 17, 'p', pad);
        memcpy(want + 17 + pad, "\"}", 3);
        snprintf(req, cap + 32, "{\"SecretKey\":\"s\",%s", want + 1);
        if (CHECK(parse_str(&b, req, SLH_MEDIA_JSON) == SLH_OK,
                  "%zu-byte body parses", sizes[k]))
            body = slh_event_body(&b.events[0]);
        CHECK(body != NULL && strlen(body) == sizes[k] &&
                  strcmp(body, want) == 0,
              "relay body of %zu bytes whole: %zu bytes", sizes[k],
              body != NULL ? strlen(body) : 0);
        free(body);
        slh_batch_free(&b);
        free(want);
        free(req);
    }
}

/* The DateTime key: every form SocketLabs sends, and 0 for all else. */
static void
test_at(void)
{
    static const int64_t t = 1714637761; /* 2024-05-02T08:16:01Z */
    static const struct {
        const char *text;
        int64_t want;
    } cases[] = {
        {"2024-05-02T08:16:01.9930482Z", t * 1000000 + 993048},
        {"2024-05-02T08:16:01.004Z", t * 1000000 + 4000},
        {"2024-05-02T08:16:01.5Z", t * 1000000 + 500000},
        {"2024-05-02T08:16:01Z", t * 1000000},
        {"2024-05-02T08:16:01", t * 1000000},
        {"2024-05-02 08:16:01Z", t * 1000000},
        {"2024-05-02T10:16:01.25+02:00", t * 1000000 + 250000},
        {"2024-05-02T07:46:01-00:30", t * 1000000},
        {"Thu, 02 May 2024 08:16:01 GMT", t * 1000000},
        {"1970-01-01T00:00:00.000001Z", 1},
        {"2024-02-29T00:00:00Z", (int64_t)1709164800 * 1000000},
        {"2000-02-29T00:00:00Z", (int64_t)951782400 * 1000000},
        {"2100-03-01T00:00:00Z", (int64_t)4107542400 * 1000000},
        {"9999-12-31T23:59:59Z", (int64_t)253402300799 * 1000000},
        {"1972-12-31T23:59:60Z", (int64_t)94694400 * 1000000},
        {"1969-12-31T23:59:59Z", 0},
        {"2024-13-02T08:16:01Z", 0},
        {"2024-04-31T08:16:01Z", 0},
        {"2024-05-02T24:00:00Z", 0},
        {"2024-05-02T08:60:00Z", 0},
        {"2024-05-02T08:16:01.Z", 0},
        {"2024-05-02T08:16:01Z ", 0},
        {"2024-05-02T08:16:01+0200", 0},
        {"2024-5-02T08:16:01Z", 0},
        {"2024-05-02", 0},
        {"Thu, 02 Foo 2024 08:16:01 GMT", 0},
        {"Thu, 02 May 2024 08:16:01 PST", 0},
        {"Thu, 2 May 2024 08:16:01 GMT", 0},
        {"", 0},
        {"d", 0},
    };
    json_t *v;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t got;
        v = json_string(cases[i].text);
        got = slh_event_at(v);
        CHECK(got == cases[i].want, "at of \"%s\": %lld, want %lld",
              cases[i].text, (long long)got, (long long)cases[i].want);
        json_decref(v);
    }
    v = json_integer(t);
    CHECK(slh_event_at(v) == 0, "a number is no DateTime");
    json_decref(v);
    CHECK(slh_event_at(json_null()) == 0 && slh_event_at(NULL) == 0,
          "null and absent: 0");
}

/* Parsing gives each event its DateTime's key, found in any case, from JSON
 * and form bodies alike. */
static void
test_at_parsed(void)
{
    static const int64_t t = (int64_t)1714637761 * 1000000;
    static const char json_text[] =
        "[{\"Type\":\"Delivered\",\"datetime\":\"2024-05-02T08:16:01.5Z\"},"
        "{\"Type\":\"Delivered\"},"
        "{\"Type\":\"Delivered\",\"DateTime\":1714637761}]";
    static const char form_text[] =
        "Type=Delivered&DateTime=Thu%2C%2002%20May%202024%2008%3A16%3A01%20GMT";
    struct slh_batch b = {0};
    struct slh_error err = {0};

    if (CHECK(slh_batch_parse(&b, json_text, strlen(json_text), SLH_MEDIA_JSON,
                              &err) == SLH_OK &&
                  b.n == 3,
              "parse: %s", err.text))
        CHECK(b.events[0].at == t + 500000 && b.events[1].at == 0 &&
                  b.events[2].at == 0,
              "at %lld, %lld, %lld", (long long)b.events[0].at,
              (long long)b.events[1].at, (long long)b.events[2].at);
    slh_batch_free(&b);
    if (CHECK(slh_batch_parse(&b, form_text, strlen(form_text), SLH_MEDIA_FORM,
                              &err) == SLH_OK &&
                  b.n == 1,
              "form parse: %s", err.text))
        CHECK(b.events[0].at == t, "form at %lld", (long long)b.events[0].at);
    slh_batch_free(&b);
}

int
main(void)
{
    test_media();
    test_fixtures();
    test_batch_and_wrapper();
    test_batch_bodies();
    test_form();
    test_good_json();
    test_bad();
    test_error_texts();
    test_identity();
    test_identity_escaped();
    test_shape();
    test_shape_files();
    test_at();
    test_at_parsed();
    test_get_and_body();
    test_twins();
    test_fields();
    test_body_sizes();
    test_free();
    test_case_files();
    test_oom();
    return check_summary();
}

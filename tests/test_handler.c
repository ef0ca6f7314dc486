/* The core handler, with no I/O at all: a fake store stands for the spool. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "handler.h"

#define SECRET "q7Rt2mXw9LpB4sKd8Zf3"

static const char CONFIG[] = "[receiver]\n"
                             "secret_key = " SECRET "\n"
                             "secret_key = second-key-for-rotation\n"
                             "server_id = 40211\n"
                             "max_body = 65536\n"
                             "spool = /nonexistent\n";

struct fake_store {
    int calls;
    size_t events;
    enum slh_err result;
};

static enum slh_err
fake_store(void *arg, const struct slh_batch *batch, size_t *n_new)
{
    struct fake_store *fs = arg;

    fs->calls++;
    fs->events += batch->n;
    *n_new = batch->n;
    return fs->result;
}

/* Runs one POST of body through the whole handler. */
static int
post(const struct slh_config *cfg, const char *type, const char *body,
     size_t len, struct fake_store *fs, struct slh_response *resp)
{
    char length[32];
    struct slh_request req = {.method = "POST",
                              .content_type = type,
                              .content_length = length,
                              .remote_addr = "142.0.180.1",
                              .body = body,
                              .body_len = len};

    snprintf(length, sizeof(length), "%zu", len);
    slh_handle(cfg, &req, fake_store, fs, resp);
    return resp->status;
}

static int
head_status(const struct slh_config *cfg, const char *method, const char *type,
            const char *length, const char *addr)
{
    struct slh_request req = {.method = method,
                              .content_type = type,
                              .content_length = length,
                              .remote_addr = addr};
    struct slh_response resp;
    size_t n;

    if (!slh_handler_head(cfg, &req, &n, &resp))
        return 0;
    return resp.status;
}

static void
test_fixtures(const struct slh_config *cfg)
{
    const char *dir = check_fixtures();
    char path[1024];
    struct dirent *de;
    DIR *d;
    int seen = 0;

    snprintf(path, sizeof(path), "%s/socketlabs", dir);
    d = opendir(path);
    if (!CHECK(d != NULL, "fixtures at %s", path))
        return;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        bool is_form = strncmp(name, "legacy-form-", 12) == 0;
        bool is_validation = strstr(name, "validation") != NULL;
        struct fake_store fs = {0};
        struct slh_response resp;
        size_t len;
        char *body;

        if (strstr(name, ".json") == NULL && !is_form)
            continue;
        snprintf(path, sizeof(path), "%s/socketlabs/%s", dir, name);
        body = check_slurp(path, &len);
        CHECK(body != NULL, "read %s", path);
        if (body == NULL)
            continue;
        seen++;
        post(cfg,
             is_form ? "application/x-www-form-urlencoded"
                     : "application/json; charset=utf-8",
             body, len, &fs, &resp);
        CHECK(resp.status == 200, "%s: status %d (%s)", name, resp.status,
              resp.body);
        if (is_validation) {
            CHECK(strcmp(resp.body, SECRET) == 0,
                  "%s: validation answers the key, got '%s'", name, resp.body);
            CHECK(fs.calls == 0, "%s: validation stores nothing", name);
        } else {
            CHECK(strcmp(resp.body, "OK\n") == 0, "%s: body '%s'", name,
                  resp.body);
            CHECK(fs.calls == 1 &&
                      fs.events == (strcmp(name, "batch-3.json") == 0 ? 3 : 1),
                  "%s: stored %zu events in %d calls", name, fs.events,
                  fs.calls);
            CHECK(strlen(resp.event_id) == 64, "%s: event id for the log",
                  name);
        }
        free(body);
    }
    closedir(d);
    CHECK(seen >= 23, "all fixtures seen (%d)", seen);
}

/* Text on one line, a newline shown as \n, for a FAIL line. */
static const char *
one_line(const char *text, char *out, size_t size)
{
    size_t o = 0;

    for (; *text != '\0' && o + 3 < size; text++) {
        if (*text == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *text;
        }
    }
    out[o] = '\0';
    return out;
}

/*
 * The answer text a case expects: NAME.answer beside NAME.json/.form
 * (tests/cases/requests/README). A missing one fails; with
 * SLH_CASES_WRITE=1 it is written from today's answer, to be read against
 * the contract before it is committed.
 */
static void
check_case_answer(const char *dir, const char *name, const char *body)
{
    char path[1024], got[512], text[512];
    size_t len;
    char *want;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%.*s.answer", dir,
             (int)(strrchr(name, '.') - name), name);
    want = check_slurp(path, &len);
    if (want != NULL) {
        CHECK(strlen(want) == len && strcmp(want, body) == 0,
              "%s: answer '%s', %s says '%s'", name,
              one_line(body, got, sizeof(got)), path,
              one_line(want, text, sizeof(text)));
        free(want);
        return;
    }
    if (getenv("SLH_CASES_WRITE") != NULL && (f = fopen(path, "w")) != NULL) {
        fputs(body, f);
        fclose(f);
        CHECK(false, "%s: wrote %s from today's answer: read it", name, path);
        return;
    }
    CHECK(false, "%s: no %s (SLH_CASES_WRITE=1 writes it)", name, path);
}

/* tests/cases/requests/STATUS-name.{json,form}, each with its answer text
 * in STATUS-name.answer: adding a case is adding two files. */
static void
test_request_cases(const struct slh_config *cfg)
{
    const char *dir = "tests/cases/requests";
    struct dirent *de;
    char path[1024];
    DIR *d = opendir(dir);
    int seen = 0;

    if (!CHECK(d != NULL, "cases at %s", dir))
        return;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        const char *ext = strrchr(name, '.');
        struct fake_store fs = {0};
        struct slh_response resp;
        char line[512];
        struct slh_request req = {.remote_addr = "1.2.3.4"};
        int want;
        size_t len;
        char *body;

        if (name[0] == '.' || ext == NULL ||
            (strcmp(ext, ".json") != 0 && strcmp(ext, ".form") != 0))
            continue;
        want = atoi(name);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        body = check_slurp(path, &len);
        if (!CHECK(body != NULL, "read %s", path))
            continue;
        seen++;
        post(cfg,
             strcmp(ext, ".form") == 0 ? "application/x-www-form-urlencoded"
                                       : "application/json",
             body, len, &fs, &resp);
        CHECK(resp.status == want, "%s: want %d, got %d (%s)", name, want,
              resp.status, resp.body);
        check_case_answer(dir, name, resp.body);
        CHECK(want == 200 || fs.calls == 0, "%s: a %d stores nothing", name,
              want);
        CHECK(strstr(resp.body, SECRET) == NULL,
              "%s: the answer holds no secret", name);
        slh_response_logline(&req, &resp, 0.1, line, sizeof(line));
        CHECK(strstr(line, SECRET) == NULL && strstr(line, "q7Rt") == NULL,
              "%s: the log line holds no secret: %s", name, line);
        free(body);
    }
    closedir(d);
    CHECK(seen >= 70, "request cases seen (%d)", seen);
}

static void
test_head(const struct slh_config *cfg)
{
    const char *json = "application/json";

    CHECK(head_status(cfg, "GET", json, "10", NULL) == 405, "GET");
    CHECK(head_status(cfg, "HEAD", json, "10", NULL) == 405, "HEAD");
    CHECK(head_status(cfg, "post", json, "10", NULL) == 405, "lower post");
    CHECK(head_status(cfg, NULL, json, "10", NULL) == 405, "no method");
    CHECK(head_status(cfg, "PUT", json, NULL, NULL) == 405,
          "method before length");
    CHECK(head_status(cfg, "POST", json, NULL, NULL) == 411, "no length");
    CHECK(head_status(cfg, "POST", json, "", NULL) == 411, "empty length");
    CHECK(head_status(cfg, "POST", json, "-1", NULL) == 411, "negative");
    CHECK(head_status(cfg, "POST", json, "+5", NULL) == 411, "sign");
    CHECK(head_status(cfg, "POST", json, " 5", NULL) == 411, "space");
    CHECK(head_status(cfg, "POST", json, "1e3", NULL) == 411, "exponent");
    CHECK(head_status(cfg, "POST", json, "0x10", NULL) == 411, "hex");
    CHECK(head_status(cfg, "POST", json, "99999999999999999999999", NULL) ==
              411,
          "overflowing length");
    CHECK(head_status(cfg, "POST", json, "65536", NULL) == 0, "at the limit");
    CHECK(head_status(cfg, "POST", json, "65537", NULL) == 413, "over");
    CHECK(head_status(cfg, "POST", "text/plain", "65537", NULL) == 413,
          "413 before 415");
    CHECK(head_status(cfg, "POST", "text/plain", "10", NULL) == 415,
          "text/plain");
    CHECK(head_status(cfg, "POST", NULL, "10", NULL) == 415, "no type");
    CHECK(head_status(cfg, "POST", "application/jsonx", "10", NULL) == 415,
          "jsonx");
    CHECK(head_status(cfg, "POST", "multipart/form-data", "10", NULL) == 415,
          "multipart");
    CHECK(head_status(cfg, "POST", "application/json;charset=utf-8", "10",
                      NULL) == 0,
          "charset parameter");
    CHECK(head_status(cfg, "POST", "application/x-www-form-urlencoded", "0",
                      NULL) == 0,
          "form");

    /* The length to drop comes with every head answer (mod_cgid resets a
     * connection whose body is left unread). */
    struct slh_request req = {.method = "PUT",
                              .content_type = "text/plain",
                              .content_length = "4096"};
    struct slh_response resp;
    size_t n = 99;
    CHECK(slh_handler_head(cfg, &req, &n, &resp) && resp.status == 405 &&
              n == 4096,
          "405 still gives the body length: %zu", n);
    req.method = "POST";
    CHECK(slh_handler_head(cfg, &req, &n, &resp) && resp.status == 415 &&
              n == 4096,
          "415 gives the body length: %zu", n);
    req.content_length = "x";
    CHECK(slh_handler_head(cfg, &req, &n, &resp) && resp.status == 411 &&
              n == 0,
          "no valid length, nothing to drop: %zu", n);
}

static void
test_allow_from(void)
{
    struct slh_config cfg = {0};
    struct slh_error err = {0};
    const char *text = "[receiver]\nsecret_key = k\n"
                       "allow_from = 142.0.176.0/20 52.152.150.178 "
                       "2001:db8::/32\n";
    const char *json = "application/json";

    if (!CHECK(slh_config_parse(&cfg, text, "allow", &err) == SLH_OK, "%s",
               err.text))
        return;
    CHECK(head_status(&cfg, "POST", json, "2", "142.0.180.9") == 0, "inside");
    CHECK(head_status(&cfg, "POST", json, "2", "52.152.150.178") == 0,
          "validation host");
    CHECK(head_status(&cfg, "POST", json, "2", "2001:db8::5") == 0, "IPv6");
    CHECK(head_status(&cfg, "POST", json, "2", "::ffff:142.0.176.1") == 0,
          "mapped IPv4");
    CHECK(head_status(&cfg, "POST", json, "2", "142.0.192.1") == 403,
          "outside");
    CHECK(head_status(&cfg, "POST", json, "2", NULL) == 403, "no address");
    CHECK(head_status(&cfg, "POST", json, "2", "garbage") == 403, "garbage");
    CHECK(head_status(&cfg, "POST", "text/plain", "2", "10.0.0.1") == 403,
          "403 before 415");
    CHECK(head_status(&cfg, "POST", json, "99999999", "10.0.0.1") == 413,
          "413 before 403");
    slh_config_free(&cfg);
}

static void
test_body_rules(const struct slh_config *cfg)
{
    const char *ok = "{\"Type\":\"Delivered\",\"SecretKey\":\"" SECRET
                     "\",\"ServerId\":40211}";
    struct fake_store fs = {0};
    struct slh_response resp;
    struct slh_request req = {.method = "POST",
                              .content_type = "application/json",
                              .content_length = "500",
                              .body = ok,
                              .body_len = strlen(ok)};
    char out[2048];
    size_t n;

    slh_handle(cfg, &req, fake_store, &fs, &resp);
    CHECK(resp.status == 400 && strstr(resp.body, "shorter") != NULL,
          "short body: %d %s", resp.status, resp.body);
    CHECK(fs.calls == 0, "short body stores nothing");

    fs.result = SLH_ESTORE;
    post(cfg, "application/json", ok, strlen(ok), &fs, &resp);
    CHECK(resp.status == 503 && resp.retry_after > 0, "store failure: %d",
          resp.status);
    n = slh_response_format(&resp, out, sizeof(out));
    CHECK(n > 0 && strstr(out, "Status: 503 ") == out &&
              strstr(out, "\r\nRetry-After: ") != NULL,
          "503 has Retry-After: %s", out);
    CHECK(strcmp(resp.body, SLH_UNAVAILABLE_STORE) == 0 &&
              strstr(out, "\r\nContent-Length: 44\r\n") != NULL,
          "store failure: says so, with its length: %s", out);

    /* Out of memory (slhook.fcgi: bodies over their memory bound) says so,
     * not that the events could not be stored. */
    fs.result = SLH_ENOMEM;
    post(cfg, "application/json", ok, strlen(ok), &fs, &resp);
    n = slh_response_format(&resp, out, sizeof(out));
    CHECK(resp.status == 503 && resp.retry_after > 0 &&
              strcmp(resp.body, "out of memory; try again later\n") == 0 &&
              strstr(out, "\r\nRetry-After: ") != NULL &&
              strstr(out, "\r\nContent-Length: 31\r\n") != NULL,
          "out of memory: %s", out);

    fs.result = SLH_OK;
    post(cfg, "application/json", ok, strlen(ok), &fs, &resp);
    n = slh_response_format(&resp, out, sizeof(out));
    CHECK(n > 0 && strstr(out, "Status: 200 OK\r\n") == out &&
              strstr(out, "Content-Type: text/plain") != NULL &&
              strstr(out, "Content-Length: 3\r\n") != NULL &&
              strcmp(out + n - 3, "OK\n") == 0,
          "200 formatted: %s", out);

    const char *rotated = "{\"Type\":\"Queued\",\"SecretKey\":"
                          "\"second-key-for-rotation\",\"ServerId\":40211}";
    post(cfg, "application/json", rotated, strlen(rotated), &fs, &resp);
    CHECK(resp.status == 200, "second key accepted: %d", resp.status);

    const char *val = "{\"Type\":\"Validation\",\"SecretKey\":"
                      "\"second-key-for-rotation\",\"ServerId\":40211}";
    post(cfg, "application/json", val, strlen(val), &fs, &resp);
    CHECK(resp.status == 200 &&
              strcmp(resp.body, "second-key-for-rotation") == 0,
          "validation answers the key that matched: %s", resp.body);

    req.method = "GET";
    slh_handle(cfg, &req, fake_store, &fs, &resp);
    n = slh_response_format(&resp, out, sizeof(out));
    CHECK(resp.status == 405 && strstr(out, "\r\nAllow: POST\r\n") != NULL,
          "405 has Allow: %s", out);
}

/* A batch of n events that would each be stored, as JSON into buf. */
static size_t
batch_of(char *buf, size_t size, size_t n)
{
    size_t len = 0;

    len += (size_t)snprintf(buf + len, size - len, "[");
    for (size_t i = 0; i < n && len < size; i++)
        len +=
            (size_t)snprintf(buf + len, size - len,
                             "%s{\"Type\":\"Delivered\",\"SecretKey\":\"" SECRET
                             "\",\"ServerId\":40211,\"MessageId\":\"m%zu\"}",
                             i > 0 ? "," : "", i);
    if (len < size)
        len += (size_t)snprintf(buf + len, size - len, "]");
    return len < size ? len : 0;
}

/*
 * The caps on a body's shape, checked before it is parsed: 413 for more
 * events than max_events (the count and the cap in the answer), 400 for
 * nesting or an event of too many values, and the fixtures within them.
 */
static void
test_caps(const struct slh_config *cfg)
{
    static char body[65536];
    struct slh_config small = {0};
    struct slh_error err = {0};
    struct fake_store fs = {0};
    struct slh_response resp;
    char line[512], path[1024];
    struct slh_request req = {.remote_addr = "1.2.3.4"};
    size_t len, n;

    len = batch_of(body, sizeof(body), 101);
    post(cfg, "application/json", body, len, &fs, &resp);
    CHECK(resp.status == 413 &&
              strcmp(resp.body, "101 events in one request is over the limit "
                                "of 100 (max_events)\n") == 0,
          "101 events: %d %s", resp.status, resp.body);
    CHECK(fs.calls == 0, "413 stores nothing");
    slh_response_logline(&req, &resp, 0.1, line, sizeof(line));
    CHECK(strstr(line, " 413 - id=- events=101 new=0 ") != NULL,
          "log line counts the events: %s", line);
    len = batch_of(body, sizeof(body), 100);
    post(cfg, "application/json", body, len, &fs, &resp);
    CHECK(resp.status == 200 && fs.events == 100, "100 events: %d %s",
          resp.status, resp.body);

    /* Thousands of tiny events, no key: turned away on their count alone. */
    body[0] = '[';
    for (n = 0, len = 1; n < 4000; n++, len += 3)
        memcpy(body + len, "{},", 3);
    body[len - 1] = ']';
    post(cfg, "application/json", body, len, &fs, &resp);
    CHECK(resp.status == 413 && strncmp(resp.body, "4000 events", 11) == 0,
          "4000 empty objects: %d %s", resp.status, resp.body);

    memset(body, '[', 40);
    post(cfg, "application/json", body, 40, &fs, &resp);
    CHECK(resp.status == 400 && strcmp(resp.body, "JSON nested deeper than 32 "
                                                  "levels\n") == 0,
          "deep: %d %s", resp.status, resp.body);

    len = (size_t)snprintf(body, sizeof(body),
                           "{\"Type\":\"Delivered\",\"SecretKey\":\"" SECRET
                           "\",\"Data\":[");
    for (n = 0; n < 2000; n++)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "%s0",
                                n > 0 ? "," : "");
    len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
    post(cfg, "application/json", body, len, &fs, &resp);
    CHECK(resp.status == 400 &&
              strcmp(resp.body, "event 1 holds 2004 JSON values, over the "
                                "limit of 1024\n") == 0,
          "big event: %d %s", resp.status, resp.body);

    len = (size_t)snprintf(body, sizeof(body), "Type=Delivered");
    for (n = 0; n < 2000; n++)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "&k%zu=", n);
    post(cfg, "application/x-www-form-urlencoded", body, len, &fs, &resp);
    CHECK(resp.status == 400 &&
              strcmp(resp.body, "form body of 2001 fields is over the limit "
                                "of 1024\n") == 0,
          "many form fields: %d %s", resp.status, resp.body);

    /* Strings up to 64 KiB, under a max_body that lets more through. */
    if (CHECK(slh_config_parse(&small,
                               "[receiver]\nsecret_key = " SECRET
                               "\nmax_body = 1m\n",
                               "t", &err) == SLH_OK,
              "config: %s", err.text)) {
        static char big[70000 + 200];
        size_t head = (size_t)snprintf(big, sizeof(big),
                                       "{\"Type\":\"Delivered\",\"SecretKey\":"
                                       "\"" SECRET "\",\"Reason\":\"");

        for (n = SLH_MAX_STRING; n <= SLH_MAX_STRING + 1; n++) {
            memset(big + head, 'r', n);
            len = head + n;
            len += (size_t)snprintf(big + len, sizeof(big) - len, "\"}");
            post(&small, "application/json", big, len, &fs, &resp);
            CHECK(resp.status == (n == SLH_MAX_STRING ? 200 : 400),
                  "a string of %zu bytes: %d %s", n, resp.status, resp.body);
        }
        CHECK(strcmp(resp.body, "a JSON string of 65537 bytes is over the "
                                "limit of 65536\n") == 0,
              "long string: %s", resp.body);
        len = (size_t)snprintf(big, sizeof(big),
                               "Type=Delivered&SecretKey=" SECRET "&Reason=");
        memset(big + len, 'r', SLH_MAX_STRING);
        len += SLH_MAX_STRING;
        post(&small, "application/x-www-form-urlencoded", big, len, &fs, &resp);
        CHECK(resp.status == 400 &&
                  strcmp(resp.body, "a form field of 65543 bytes is over the "
                                    "limit of 65536\n") == 0,
              "long form field: %d %s", resp.status, resp.body);
        slh_config_free(&small);
    }

    /* max_events as configured: batch-3 needs 3. */
    snprintf(path, sizeof(path), "%s/socketlabs/batch-3.json",
             check_fixtures());
    char *batch3 = check_slurp(path, &len);
    if (CHECK(batch3 != NULL, "read %s", path)) {
        for (n = 2; n <= 3; n++) {
            char text[256];

            snprintf(text, sizeof(text),
                     "[receiver]\nsecret_key = " SECRET "\nmax_events = %zu\n",
                     n);
            if (!CHECK(slh_config_parse(&small, text, "t", &err) == SLH_OK,
                       "config: %s", err.text))
                break;
            post(&small, "application/json", batch3, len, &fs, &resp);
            CHECK(resp.status == (n == 2 ? 413 : 200),
                  "batch-3 with max_events = %zu: %d %s", n, resp.status,
                  resp.body);
            slh_config_free(&small);
        }
    }
    free(batch3);
}

static void
test_validation_key(void)
{
    struct slh_config cfg = {0};
    struct slh_error err = {0};
    struct fake_store fs = {0};
    struct slh_response resp;
    const char *text = "[receiver]\nsecret_key = " SECRET "\n"
                       "validation_key = 2hXq9aLw\n";
    const char *val = "{\"Type\":\"Validation\",\"SecretKey\":\"" SECRET "\"}";
    const char *ev = "{\"Type\":\"Queued\",\"SecretKey\":\"" SECRET "\"}";

    if (!CHECK(slh_config_parse(&cfg, text, "vk", &err) == SLH_OK, "%s",
               err.text))
        return;
    post(&cfg, "application/json", val, strlen(val), &fs, &resp);
    CHECK(resp.status == 200 && strcmp(resp.body, "2hXq9aLw") == 0,
          "validation answers the validation key: %s", resp.body);
    post(&cfg, "application/json", ev, strlen(ev), &fs, &resp);
    CHECK(resp.status == 200 && strstr(resp.body, "OK") == resp.body &&
              strstr(resp.body, "2hXq9aLw") != NULL,
          "every 200 carries the validation key: %s", resp.body);
    CHECK(fs.calls == 1, "the event was stored, the validation not");
    slh_config_free(&cfg);
}

static void
test_elapsed(void)
{
    struct timespec since;
    double ms;

    clock_gettime(CLOCK_MONOTONIC, &since);
    ms = slh_elapsed_ms(&since);
    CHECK(ms >= 0 && ms < 1000, "elapsed since now: %.3f ms", ms);
    /* 1.5 s back, so that the nanoseconds borrow from the seconds. */
    since.tv_sec -= 1;
    if (since.tv_nsec >= 500000000L) {
        since.tv_nsec -= 500000000L;
    } else {
        since.tv_sec -= 1;
        since.tv_nsec += 500000000L;
    }
    ms = slh_elapsed_ms(&since);
    CHECK(ms >= 1500 && ms < 2500, "elapsed since 1.5 s ago: %.3f ms", ms);
}

/* CONTENT_LENGTH as the head checks read it. */
static void
test_request_length(void)
{
    CHECK(slh_request_length("0") == 0, "0");
    CHECK(slh_request_length("4096") == 4096, "4096");
    CHECK(slh_request_length("007") == 7, "leading zeros");
    CHECK(slh_request_length(NULL) == 0, "NULL");
    CHECK(slh_request_length("") == 0, "empty");
    CHECK(slh_request_length("-1") == 0, "a sign");
    CHECK(slh_request_length(" 12") == 0 && slh_request_length("12 ") == 0,
          "a space");
    CHECK(slh_request_length("0x10") == 0, "hex");
    CHECK(slh_request_length("99999999999999999999999") == 0, "over SIZE_MAX");
}

/* A body with no Content-Type of its own: JSON or form, by its first
 * byte after blanks. */
static void
test_body_content_type(void)
{
    static const struct {
        const char *body;
        bool is_json;
    } cases[] = {
        {"{\"Type\":\"Delivered\"}", true},
        {"[{}]", true},
        {" \t\r\n{", true},
        {"\n\n[", true},
        {"Type=Delivered&SecretKey=x", false},
        {"", false},
        {"   ", false},
        {" x{", false},
        {"\v{", false}, /* only space, tab, CR and LF are blanks */
    };
    const char *form = "application/x-www-form-urlencoded";

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got =
            slh_body_content_type(cases[i].body, strlen(cases[i].body));
        CHECK(strcmp(got, cases[i].is_json ? "application/json" : form) == 0,
              "content type of '%s': %s", cases[i].body, got);
    }
    /* Only len bytes are read: a '{' past them does not count. */
    CHECK(strcmp(slh_body_content_type("  {", 2), form) == 0, "len bounds");
    CHECK(strcmp(slh_body_content_type(NULL, 0), form) == 0, "NULL, 0");
}

int
main(void)
{
    struct slh_config cfg = {0};
    struct slh_error err = {0};

    if (!CHECK(slh_config_parse(&cfg, CONFIG, "test", &err) == SLH_OK,
               "config: %s", err.text))
        return check_summary();
    test_head(&cfg);
    test_allow_from();
    test_body_rules(&cfg);
    test_validation_key();
    test_elapsed();
    test_body_content_type();
    test_request_length();
    test_fixtures(&cfg);
    test_caps(&cfg);
    test_request_cases(&cfg);
    slh_config_free(&cfg);
    return check_summary();
}

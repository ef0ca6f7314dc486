/* libFuzzer target: the whole core (lib/handler.c over the parser), as a
 * front end drives it: slh_handler_head(), then slh_handler_body() with as
 * many body bytes as CONTENT_LENGTH asked for, then a fake store (no spool)
 * and slh_handler_stored().
 *
 * Input: byte 0 picks the method, the config (bit 3: with a validation_key)
 * and the store's outcome (bit 4: the disk is full); byte 1 the content
 * type; byte 2 how CONTENT_LENGTH relates to the body; the rest is the body.
 *
 * Beyond crashes it checks the contract: the status is one of the listed
 * ones and follows the order of checks; only events whose SecretKey is a
 * configured key and whose ServerId is allowed ever reach the store; the
 * answer, the log line and the relay bodies never show the secret, except
 * the Validation answer (and except when the request itself shows it
 * outside its SecretKey, see fuzz.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "handler.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

#define VALIDATION_KEY "2hXq9aLw"

static const char CONFIG[] = "[receiver]\n"
                             "secret_key = " FUZZ_SECRET "\n"
                             "server_id = 40211\n"
                             "max_body = 4096\n"
                             "spool = /nonexistent\n";

static const char CONFIG_VK[] = "[receiver]\n"
                                "secret_key = " FUZZ_SECRET "\n"
                                "validation_key = " VALIDATION_KEY "\n"
                                "server_id = 40211\n"
                                "max_body = 4096\n"
                                "spool = /nonexistent\n";

static struct slh_config cfg_plain, cfg_vk;

static const char *const methods[] = {"POST", "POST", "POST", "POST",
                                      "GET",  "post", "PUT",  NULL};

static const char *const types[] = {
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "Application/X-WWW-Form-Urlencoded;charset=UTF-8",
    " application/json ;",
    "text/plain",
    "application/jsonx",
    NULL,
};

static const char *const bad_lengths[] = {
    "", "-1", " 5", "0x10", "+5", "1e3", "5 ", "99999999999999999999999"};

struct store {
    int calls;
    enum slh_err result;
    bool exposed; /* the request shows the secret: see fuzz.h */
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct slh_error err = {0};

    (void)argc;
    (void)argv;
    if (slh_config_parse(&cfg_plain, CONFIG, "fuzz", &err) != SLH_OK ||
        slh_config_parse(&cfg_vk, CONFIG_VK, "fuzz-vk", &err) != SLH_OK) {
        fprintf(stderr, "fuzz_handler: config: %s\n", err.text);
        abort();
    }
    return 0;
}

static bool
server_id_ok(const json_t *v)
{
    return (json_is_integer(v) && json_integer_value(v) == 40211) ||
           (json_is_string(v) && strcmp(json_string_value(v), "40211") == 0);
}

/*
 * Whether the event's fields other than its own SecretKey show the secret
 * (a nested "SecretKey", a Type that is the key...): the sender's choice,
 * which the relay body then rightly carries.
 */
static bool
fields_show_secret(const json_t *obj)
{
    json_t *copy = json_deep_copy(obj);
    const char *key;
    json_t *value;
    void *tmp;
    char *text;
    bool shows = true; /* out of memory: no verdict */

    if (copy == NULL)
        return true;
    json_object_foreach_safe(copy, tmp, key, value)
    {
        if (strcasecmp(key, "SecretKey") == 0)
            json_object_del(copy, key);
    }
    text = json_dumps(copy, JSON_COMPACT);
    if (text != NULL)
        shows = fuzz_has_piece(text, strlen(text));
    free(text);
    json_decref(copy);
    return shows;
}

/* What reaches the store passed authentication, and its relay bodies hold
 * no secret of their own making. */
static enum slh_err
fake_store(struct store *st, const struct slh_batch *batch)
{
    st->calls++;
    FUZZ_ASSERT(batch->n > 0, "stored an empty batch");
    for (size_t i = 0; i < batch->n; i++) {
        const struct slh_event *ev = &batch->events[i];
        const json_t *key = slh_event_get(ev->obj, "SecretKey");
        char *body;

        FUZZ_ASSERT(json_is_string(key) &&
                        strcmp(json_string_value(key), FUZZ_SECRET) == 0,
                    "event %zu stored without the right SecretKey", i);
        FUZZ_ASSERT(server_id_ok(slh_event_get(ev->obj, "ServerId")),
                    "event %zu stored with a ServerId not allowed", i);
        body = slh_event_body(ev);
        if (body == NULL)
            continue;
        FUZZ_ASSERT(!fuzz_has_piece(body, strlen(body)) ||
                        fields_show_secret(ev->obj),
                    "relay body holds the secret: %s", body);
        free(body);
    }
    return st->result;
}

static bool
is_listed(int status)
{
    static const int listed[] = {200, 400, 401, 403, 405, 411, 413, 415, 503};

    for (size_t i = 0; i < sizeof(listed) / sizeof(listed[0]); i++)
        if (listed[i] == status)
            return true;
    return false;
}

static void
check_answer(const struct slh_config *cfg, const struct slh_request *req,
             const struct slh_response *resp, const struct store *st,
             bool decided_early)
{
    char out[2048], line[1024], want[64];
    size_t blen = strlen(resp->body);
    bool is_validation_answer = resp->status == 200 && st->calls == 0;

    FUZZ_ASSERT(is_listed(resp->status), "status %d", resp->status);
    FUZZ_ASSERT((resp->status == 405) ==
                    (req->method == NULL || strcmp(req->method, "POST") != 0),
                "405 iff not POST: %d for %s", resp->status,
                req->method != NULL ? req->method : "(null)");
    FUZZ_ASSERT(resp->allow_post == (resp->status == 405), "Allow: POST");
    FUZZ_ASSERT((resp->retry_after > 0) == (resp->status == 503),
                "Retry-After with %d", resp->status);
    if (decided_early)
        FUZZ_ASSERT(resp->status == 405 || resp->status == 411 ||
                        resp->status == 413 || resp->status == 415,
                    "head decided %d", resp->status);
    if (st->calls > 0)
        FUZZ_ASSERT(resp->status == (st->result == SLH_OK ? 200 : 503),
                    "stored, then %d", resp->status);
    else
        FUZZ_ASSERT(resp->status != 503, "503 without a store");

    if (is_validation_answer) {
        const char *k =
            cfg->validation_key != NULL ? cfg->validation_key : FUZZ_SECRET;
        FUZZ_ASSERT(strcmp(resp->body, k) == 0,
                    "validation answer '%s' is not the key", resp->body);
    } else if (resp->status == 200) {
        snprintf(want, sizeof(want), "OK\n%s%s",
                 cfg->validation_key != NULL ? cfg->validation_key : "",
                 cfg->validation_key != NULL ? "\n" : "");
        FUZZ_ASSERT(strcmp(resp->body, want) == 0, "200 body '%s'", resp->body);
    } else {
        /* An error text is one printable line: it goes to the log. */
        FUZZ_ASSERT(blen > 0 && resp->body[blen - 1] == '\n',
                    "error body without its newline: '%s'", resp->body);
        FUZZ_ASSERT(strchr(resp->body, '\n') == resp->body + blen - 1,
                    "error body of several lines: '%s'", resp->body);
        FUZZ_ASSERT(st->exposed || !fuzz_has_piece(resp->body, blen),
                    "%d answer holds the secret: %s", resp->status, resp->body);
    }
    if (resp->status != 200 || st->calls > 0)
        FUZZ_ASSERT(cfg->validation_key == NULL || resp->status != 200 ||
                        strstr(resp->body, VALIDATION_KEY) != NULL,
                    "a 200 without the validation key");

    FUZZ_ASSERT(slh_response_format(resp, out, sizeof(out)) > 0,
                "response does not format");
    snprintf(want, sizeof(want), "Status: %d ", resp->status);
    FUZZ_ASSERT(strncmp(out, want, strlen(want)) == 0, "status line: %s", out);

    slh_response_logline(req, resp, 1.5, line, sizeof(line));
    FUZZ_ASSERT(fuzz_is_printable(line), "log line not printable: %s", line);
    FUZZ_ASSERT(st->exposed || !fuzz_has_piece(line, strlen(line)),
                "log line holds the secret: %s", line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct slh_config *cfg;
    struct slh_request req = {.remote_addr = "142.0.180.1"};
    struct slh_response resp;
    struct slh_batch batch = {0};
    struct store st = {0};
    char length[32], *body;
    size_t n, want_len = 0;
    enum slh_media media;
    bool decided;

    if (size < 3)
        return 0;
    req.method = methods[data[0] & 7];
    cfg = (data[0] & 8) != 0 ? &cfg_vk : &cfg_plain;
    st.result = (data[0] & 16) != 0 ? SLH_ESTORE : SLH_OK;
    req.content_type = types[data[1] & 7];
    n = size - 3;
    switch (data[2] & 7) {
    case 0:
    case 1:
    case 2:
    case 3:
        snprintf(length, sizeof(length), "%zu", n);
        req.content_length = length;
        break;
    case 4: /* a body cut short */
        snprintf(length, sizeof(length), "%zu", n + 1 + (data[2] >> 3));
        req.content_length = length;
        break;
    case 5: /* more body than announced: only the announced part is read */
        snprintf(length, sizeof(length), "%zu", n / 2);
        req.content_length = length;
        break;
    case 6:
        req.content_length = bad_lengths[(data[2] >> 3) & 7];
        break;
    default:
        req.content_length = NULL;
        break;
    }
    body = malloc(n > 0 ? n : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data + 3, n);
    /* A form body may be JSON posted as a form (fuzz.h). */
    media = slh_media_parse(req.content_type);
    st.exposed = fuzz_exposes_secret(body, n,
                                     media == SLH_MEDIA_JSON
                                         ? FUZZ_AS_JSON
                                         : FUZZ_AS_FORM | FUZZ_AS_FORM_JSON);

    decided = slh_handler_head(cfg, &req, &want_len, &resp);
    if (!decided) {
        req.body = body;
        req.body_len = want_len < n ? want_len : n;
        if (!slh_handler_body(cfg, &req, &batch, &resp)) {
            slh_handler_stored(cfg, &batch, fake_store(&st, &batch), batch.n,
                               &resp);
            slh_batch_free(&batch);
        } else {
            FUZZ_ASSERT(batch.n == 0 && batch.events == NULL,
                        "decided %d but left a batch", resp.status);
        }
    }
    check_answer(cfg, &req, &resp, &st, decided);
    free(body);
    return 0;
}

#include "handler.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "digest.h"

#define RETRY_AFTER_SECONDS 30

static bool answer(struct slh_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool
answer(struct slh_response *resp, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(resp->body, sizeof(resp->body), fmt, ap);
    va_end(ap);
    resp->status = status;
    return true;
}

static void
response_init(struct slh_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    strcpy(resp->type, "-");
}

/* CONTENT_LENGTH must be plain decimal digits: no sign, no space, no hex. */
static bool
parse_length(const char *text, size_t *len)
{
    uintmax_t v = 0;

    if (text == NULL || *text == '\0')
        return false;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        if (v > (SIZE_MAX - 9) / 10)
            return false;
        v = v * 10 + (uintmax_t)(*p - '0');
    }
    *len = (size_t)v;
    return true;
}

size_t
slh_request_length(const char *content_length)
{
    size_t len = 0;

    return parse_length(content_length, &len) ? len : 0;
}

bool
slh_handler_head(const struct slh_config *cfg, const struct slh_request *req,
                 size_t *body_len, struct slh_response *resp)
{
    size_t len = 0;
    bool has_length = parse_length(req->content_length, &len);

    response_init(resp);
    *body_len = has_length ? len : 0;
    if (req->method == NULL || strcmp(req->method, "POST") != 0) {
        resp->allow_post = true;
        return answer(resp, 405, "method not allowed: use POST\n");
    }
    if (!has_length)
        return answer(resp, 411, "a valid Content-Length is required\n");
    if (len > cfg->max_body)
        return answer(resp, 413, "body of %zu bytes is over the limit of %zu\n",
                      len, cfg->max_body);
    if (cfg->n_allow > 0 &&
        (req->remote_addr == NULL ||
         !slh_cidr_match(cfg->allow, cfg->n_allow, req->remote_addr)))
        return answer(resp, 403, "source address not allowed\n");
    if (slh_media_parse(req->content_type) == SLH_MEDIA_OTHER)
        return answer(resp, 415,
                      "media type must be application/json or "
                      "application/x-www-form-urlencoded\n");
    return false;
}

/*
 * Compares digests rather than the strings, so that neither the content nor
 * the length of a configured key shows in the time taken; every key is
 * compared, with no early exit.
 */
static const char *
match_key(const struct slh_config *cfg, const json_t *given)
{
    unsigned char want[SLH_SHA256_LEN], got[SLH_SHA256_LEN];
    const char *matched = NULL;

    if (!json_is_string(given))
        return NULL;
    slh_sha256(json_string_value(given), json_string_length(given), got);
    for (size_t i = 0; i < cfg->n_secret_keys; i++) {
        const char *key = cfg->secret_keys[i];
        slh_sha256(key, strlen(key), want);
        if (CRYPTO_memcmp(want, got, sizeof(got)) == 0)
            matched = key;
    }
    return matched;
}

static bool
server_id_allowed(const struct slh_config *cfg, const json_t *value)
{
    long long id;
    char *end;

    if (cfg->n_server_ids == 0)
        return true;
    if (json_is_integer(value)) {
        id = json_integer_value(value);
    } else if (json_is_string(value)) {
        const char *s = json_string_value(value);
        if (*s < '0' || *s > '9')
            return false;
        errno = 0;
        id = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
            return false;
    } else {
        return false;
    }
    for (size_t i = 0; i < cfg->n_server_ids; i++)
        if (cfg->server_ids[i] == id)
            return true;
    return false;
}

/* The Type for the log: printable ASCII only, since a request controls it. */
static void
copy_type(char *dst, size_t size, const char *type)
{
    size_t i = 0;

    for (; type[i] != '\0' && i + 1 < size; i++)
        dst[i] = isprint((unsigned char)type[i]) ? type[i] : '?';
    dst[i] = '\0';
}

/*
 * The caps on what a body makes, checked on its counts before it is parsed:
 * a request has not proved its key until every event is parsed, and a
 * body of many tiny events made a tree and events many times its size to
 * throw away (BENCHMARKS.md). Nesting and an event's size say the body is not
 * SocketLabs' (400); the number of events and of values is the request's size
 * (413).
 */
static bool
over_caps(const struct slh_config *cfg, const struct slh_request *req,
          enum slh_media media, struct slh_response *resp)
{
    struct slh_shape shape;
    size_t max_values = slh_shape_max_values(cfg->max_events);

    slh_body_shape(req->body, req->body_len, media, &shape);
    resp->n_events = shape.events; /* for the log line of a refusal */
    if (shape.depth > SLH_MAX_DEPTH)
        return answer(resp, 400, "JSON nested deeper than %d levels\n",
                      SLH_MAX_DEPTH);
    if (shape.events > cfg->max_events)
        return answer(resp, 413,
                      "%zu events in one request is over the limit of %zu "
                      "(max_events)\n",
                      shape.events, cfg->max_events);
    if (media == SLH_MEDIA_FORM && shape.values > SLH_MAX_EVENT_VALUES)
        return answer(resp, 400,
                      "form body of %zu fields is over the limit of %d\n",
                      shape.values, SLH_MAX_EVENT_VALUES);
    if (shape.longest > SLH_MAX_STRING)
        return answer(resp, 400, "%s of %zu bytes is over the limit of %d\n",
                      media == SLH_MEDIA_FORM ? "a form field"
                                              : "a JSON string",
                      shape.longest, SLH_MAX_STRING);
    if (shape.event_values > SLH_MAX_EVENT_VALUES)
        return answer(resp, 400,
                      "event %zu holds %zu JSON values, over the limit of "
                      "%d\n",
                      shape.big_event, shape.event_values,
                      SLH_MAX_EVENT_VALUES);
    if (shape.values > max_values)
        return answer(resp, 413,
                      "%zu JSON values in one request is over the limit of "
                      "%zu (%d per event of max_events)\n",
                      shape.values, max_values, SLH_VALUES_PER_EVENT);
    resp->n_events = 0;
    return false;
}

bool
slh_handler_body(const struct slh_config *cfg, const struct slh_request *req,
                 struct slh_batch *batch, struct slh_response *resp)
{
    struct slh_error err = {0};
    const char *key = NULL;
    size_t len = 0;
    bool all_validation = true;
    enum slh_media media = slh_media_parse(req->content_type);

    memset(batch, 0, sizeof(*batch));
    (void)parse_length(req->content_length, &len);
    if (req->body_len < len)
        return answer(resp, 400,
                      "body shorter than Content-Length: %zu of %zu bytes\n",
                      req->body_len, len);
    if (over_caps(cfg, req, media, resp))
        return true;
    if (slh_batch_parse(batch, req->body, req->body_len, media, &err) !=
        SLH_OK) {
        /* Out of memory is ours, not the sender's: it should try again. */
        if (err.code == SLH_ENOMEM) {
            slh_response_unavailable(resp, SLH_UNAVAILABLE_NOMEM);
            return true;
        }
        return answer(resp, 400, "%s\n", err.text);
    }
    resp->n_events = batch->n;
    copy_type(resp->type, sizeof(resp->type), batch->events[0].type);
    memcpy(resp->event_id, batch->events[0].id, sizeof(resp->event_id));

    for (size_t i = 0; i < batch->n; i++) {
        const char *k =
            match_key(cfg, batch->events[i].field[SLH_FIELD_SECRET_KEY]);
        if (k == NULL) {
            slh_batch_free(batch);
            return answer(resp, 401, "SecretKey missing or wrong (event %zu)\n",
                          i + 1);
        }
        key = k;
    }
    for (size_t i = 0; i < batch->n; i++) {
        if (!server_id_allowed(cfg,
                               batch->events[i].field[SLH_FIELD_SERVER_ID])) {
            slh_batch_free(batch);
            return answer(resp, 403, "ServerId not allowed (event %zu)\n",
                          i + 1);
        }
        all_validation = all_validation && batch->events[i].is_validation;
    }
    if (all_validation) {
        slh_batch_free(batch);
        return answer(resp, 200, "%s",
                      cfg->validation_key != NULL ? cfg->validation_key : key);
    }
    if (slh_batch_bodies(batch) != SLH_OK) {
        slh_batch_free(batch);
        slh_response_unavailable(resp, SLH_UNAVAILABLE_NOMEM);
        return true;
    }
    return false;
}

void
slh_handler_stored(const struct slh_config *cfg, const struct slh_batch *batch,
                   enum slh_err stored, size_t n_new, struct slh_response *resp)
{
    (void)batch;
    resp->n_new = n_new;
    if (stored != SLH_OK) {
        slh_response_unavailable(resp, stored == SLH_ENOMEM
                                           ? SLH_UNAVAILABLE_NOMEM
                                           : SLH_UNAVAILABLE_STORE);
        return;
    }
    if (cfg->validation_key != NULL)
        answer(resp, 200, "OK\n%s\n", cfg->validation_key);
    else
        answer(resp, 200, "OK\n");
}

void
slh_handle(const struct slh_config *cfg, const struct slh_request *req,
           slh_store_fn store, void *store_ctx, struct slh_response *resp)
{
    struct slh_batch batch = {0};
    size_t body_len, n_new = 0;
    enum slh_err stored;

    if (slh_handler_head(cfg, req, &body_len, resp))
        return;
    if (slh_handler_body(cfg, req, &batch, resp))
        return;
    stored = store(store_ctx, &batch, &n_new);
    slh_handler_stored(cfg, &batch, stored, n_new, resp);
    slh_batch_free(&batch);
}

const char *
slh_body_content_type(const char *body, size_t len)
{
    size_t i = 0;

    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' ||
                       body[i] == '\n'))
        i++;
    return i < len && (body[i] == '{' || body[i] == '[')
               ? "application/json"
               : "application/x-www-form-urlencoded";
}

void
slh_response_unavailable(struct slh_response *resp, const char *body)
{
    resp->allow_post = false;
    resp->retry_after = RETRY_AFTER_SECONDS;
    answer(resp, 503, "%s", body);
}

const char *
slh_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 303:
        return "See Other";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    }
    return "Unknown";
}

size_t
slh_response_format(const struct slh_response *resp, char *buf, size_t size)
{
    size_t body_len = strlen(resp->body);
    char extra[64] = "";
    int n;

    if (resp->allow_post)
        snprintf(extra, sizeof(extra), "Allow: POST\r\n");
    else if (resp->retry_after > 0)
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n",
                 resp->retry_after);
    n = snprintf(buf, size,
                 "Status: %d %s\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\n"
                 "%s"
                 "\r\n"
                 "%s",
                 resp->status, slh_status_reason(resp->status), body_len, extra,
                 resp->body);
    if (n < 0 || (size_t)n >= size)
        return 0;
    return (size_t)n;
}

void
slh_response_logline(const struct slh_request *req,
                     const struct slh_response *resp, double ms, char *buf,
                     size_t size)
{
    char why[128] = "";
    const char *from = req->remote_addr != NULL ? req->remote_addr : "-";

    /* A 200 body may be a key (Validation): only error bodies are logged. */
    if (resp->status != 200) {
        size_t n = strcspn(resp->body, "\n");
        snprintf(why, sizeof(why), " (%.*s)", (int)(n < 100 ? n : 100),
                 resp->body);
    }
    snprintf(buf, size,
             "slhook: %d %s id=%.12s events=%zu new=%zu %.2fms from %s%s",
             resp->status, resp->type,
             resp->event_id[0] != '\0' ? resp->event_id : "-", resp->n_events,
             resp->n_new, ms, from, why);
}

double
slh_elapsed_ms(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) * 1e3 +
           (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

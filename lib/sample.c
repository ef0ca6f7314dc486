#include "sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "event.h"
#include "socketlabs.h"

const char *const slh_sample_types[] = {
    SLH_SL_TYPE_NAMES, SLH_SL_TRACKING_NAMES, SLH_SL_VALIDATION, NULL};

/* A Tracking event of the given kind (enum slh_tracking); a click has the
 * Url clicked. */
static json_t *
tracking_fields(int kind)
{
    static const char *const client_ip[SLH_SL_ENUM_VALUES] = {
        "198.51.100.23", "66.249.84.10", "203.0.113.77"};
    json_t *obj = json_pack("{s:s, s:i, s:s, s:s}", "Type", "Tracking",
                            "TrackingType", kind, "ClientIp", client_ip[kind],
                            "UserAgent", "Mozilla/5.0");

    if (obj != NULL && kind == SLH_TRACKING_CLICK &&
        json_object_set_new(obj, "Url",
                            json_string("https://brand.example/spring")) != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Fields of each sample beyond the common ones, after the realistic values
 * of tests/fixtures/socketlabs/. */
static json_t *
sample_fields(const char *type)
{
    int kind;

    if (strcasecmp(type, "Queued") == 0)
        return json_pack("{s:s, s:s, s:s, s:i}", "Type", "Queued",
                         "FromAddress", "news@brand.example", "Subject",
                         "Spring catalogue", "MessageSize", 64510);
    if (strcasecmp(type, "Deferred") == 0)
        return json_pack("{s:s, s:s, s:i, s:s}", "Type", "Deferred",
                         "FromAddress", "news@brand.example", "DeferralCode",
                         3003, "Reason",
                         "451 4.7.1 Greylisted, please try again later");
    if (strcasecmp(type, "Delivered") == 0)
        return json_pack("{s:s, s:s, s:s, s:s}", "Type", "Delivered",
                         "Response", "250 2.0.0 OK", "LocalIp", "142.0.180.27",
                         "RemoteMta", "mx.mail.example");
    if (strcasecmp(type, "Failed") == 0)
        return json_pack("{s:s, s:s, s:i, s:i, s:s}", "Type", "Failed",
                         "FromAddress", "news@brand.example", "FailureType", 1,
                         "FailureCode", 2001, "Reason",
                         "550 5.1.1 The email account does not exist.");
    if (strcasecmp(type, "Complaint") == 0)
        return json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:i}", "Type", "Complaint", "FblType",
            "abuse", "UserAgent", "Yahoo!-Mail-Feedback/2.0", "From",
            "news@brand.example", "To", "lee@mail.example", "Length", 3187);
    if (strcasecmp(type, "Tracking") == 0)
        return tracking_fields(SLH_TRACKING_CLICK);
    kind = slh_sl_find(slh_sl_tracking_kinds, SLH_SL_ENUM_VALUES, type,
                       strlen(type));
    if (kind >= 0)
        return tracking_fields(kind);
    if (strcasecmp(type, SLH_SL_VALIDATION) == 0)
        return json_pack("{s:s}", "Type", SLH_SL_VALIDATION);
    return NULL;
}

char *
slh_sample_make(const char *type, const struct slh_config *cfg,
                long long now_unix)
{
    json_t *obj;
    unsigned char nonce[4] = {0};
    char when[32], message_id[48];
    char *body = NULL;
    struct tm tm;
    time_t t = (time_t)now_unix;
    long long server_id = cfg->n_server_ids > 0 ? (long long)cfg->server_ids[0]
                                                : SLH_SAMPLE_SERVER_ID;

    if (cfg->n_secret_keys == 0)
        return NULL;
    obj = sample_fields(type);
    if (obj == NULL)
        return NULL;
    if (gmtime_r(&t, &tm) == NULL ||
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.0000000Z", &tm) == 0)
        goto out;
    /* A fresh MessageId makes every sample a new event, not a duplicate. */
    (void)RAND_bytes(nonce, sizeof(nonce));
    snprintf(message_id, sizeof(message_id), "sample-%lld-%02x%02x%02x%02x",
             now_unix, nonce[0], nonce[1], nonce[2], nonce[3]);
    if (json_object_set_new(obj, "DateTime", json_string(when)) != 0 ||
        json_object_set_new(obj, "ServerId", json_integer(server_id)) != 0 ||
        json_object_set_new(obj, "SecretKey",
                            json_string(cfg->secret_keys[0])) != 0)
        goto out;
    if (json_string_value(json_object_get(obj, "Type"))[0] != 'V' &&
        (json_object_set_new(obj, "Address", json_string("lee@mail.example")) ||
         json_object_set_new(obj, "MailingId", json_string("sample")) ||
         json_object_set_new(obj, "MessageId", json_string(message_id))))
        goto out;
    body = json_dumps(obj, JSON_COMPACT);
out:
    json_decref(obj);
    return body;
}

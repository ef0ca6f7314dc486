/* sample.h: sample SocketLabs request bodies, for `slhook sample` and
 * `slhook send`. */
#ifndef SLH_SAMPLE_H
#define SLH_SAMPLE_H

#include <stddef.h>

#include "config.h"

/* The ServerId of a sample when cfg allows any (no server_id). */
#define SLH_SAMPLE_SERVER_ID 40211

/*
 * A new compact JSON body (free()) of a realistic event of the given type
 * (Queued, Deferred, Delivered, Failed, Complaint, Tracking, Click, Open,
 * Unsubscribe, Validation; any case) that cfg's receiver accepts: its first
 * secret_key as the SecretKey, its first server_id (SLH_SAMPLE_SERVER_ID
 * when it has none) as the ServerId. Its DateTime is now_unix and its
 * MessageId makes it a new event. NULL when type is unknown, cfg has no
 * secret key or memory runs out.
 */
char *slh_sample_make(const char *type, const struct slh_config *cfg,
                      long long now_unix);

/* The type names slh_sample_make() knows, NULL-terminated. */
extern const char *const slh_sample_types[];

#endif

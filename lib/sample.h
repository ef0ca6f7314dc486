/* sample.h: sample SocketLabs request bodies, for `slhook sample` and
 * `slhook send`. */
#ifndef SLH_SAMPLE_H
#define SLH_SAMPLE_H

#include <stddef.h>

/*
 * A new compact JSON body (free()) of a realistic event of the given type
 * (Queued, Deferred, Delivered, Failed, Complaint, Tracking, Click, Open,
 * Unsubscribe, Validation; any case) carrying secret as its SecretKey and
 * server_id as its ServerId, with a DateTime of now_unix and a MessageId that
 * makes it a new event. NULL when type is unknown or memory runs out.
 */
char *slh_sample_make(const char *type, const char *secret, long long server_id,
                      long long now_unix);

/* The type names slh_sample_make() knows, NULL-terminated. */
extern const char *const slh_sample_types[];

#endif

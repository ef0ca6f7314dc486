/* sign.h: Standard Webhooks signatures (https://www.standardwebhooks.com):
 * "v1," followed by base64(HMAC-SHA256(key, id "." timestamp "." body)). */
#ifndef SLH_SIGN_H
#define SLH_SIGN_H

#include <stddef.h>

#include "err.h"

/* "v1," + 44 base64 characters of a SHA-256 HMAC + NUL. */
#define SLH_SIGNATURE_LEN 48

/*
 * Writes the webhook-signature header value for message id, unix timestamp
 * (seconds) and the body's len bytes into out, keyed by the key_len bytes of
 * key (the base64-decoded part after "whsec_"). On failure (OpenSSL refused)
 * out is an empty string and err says why.
 */
enum slh_err slh_sign_webhook(char out[SLH_SIGNATURE_LEN],
                              const unsigned char *key, size_t key_len,
                              const char *id, long long timestamp,
                              const char *body, size_t len,
                              struct slh_error *err);

#endif

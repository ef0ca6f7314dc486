/* digest.h: SHA-256 for event identities and key comparison, HMAC-SHA256
 * for the operator's page.
 *
 * Straight from libcrypto's SHA256 functions rather than its EVP interface:
 * OpenSSL 3 builds its provider and algorithm-name tables the first time an
 * EVP digest is fetched, about 1 ms that a CGI process (one request per
 * process) would pay on every request. */
#ifndef SLH_DIGEST_H
#define SLH_DIGEST_H

#include <stddef.h>

#define SLH_SHA256_LEN 32

struct slh_sha256; /* opaque: a running digest */

/* A new running digest, released by slh_sha256_final(); NULL when out of
 * memory. */
struct slh_sha256 *slh_sha256_new(void);

/* Adds len bytes of data to h. */
void slh_sha256_update(struct slh_sha256 *h, const void *data, size_t len);

/* Writes the digest of everything added into out and releases h. */
void slh_sha256_final(struct slh_sha256 *h, unsigned char out[SLH_SHA256_LEN]);

/* The digest of len bytes of data, in one go. */
void slh_sha256(const void *data, size_t len,
                unsigned char out[SLH_SHA256_LEN]);

/* HMAC-SHA256 (RFC 2104) of len bytes of data under key_len bytes of key,
 * on the same functions: the CSRF tokens and login cookie of the
 * operator's page (web_auth.c), which the CGI makes per request. */
void slh_hmac_sha256(const void *key, size_t key_len, const void *data,
                     size_t len, unsigned char out[SLH_SHA256_LEN]);

#endif

/* The SHA256_* functions are deprecated in OpenSSL 3 in favour of EVP, whose
 * first use costs a CGI process about 1 ms (digest.h): they stay available
 * and compute the same digest without the provider machinery. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "digest.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

struct slh_sha256 {
    SHA256_CTX ctx;
};

struct slh_sha256 *
slh_sha256_new(void)
{
    struct slh_sha256 *h = malloc(sizeof(*h));

    if (h != NULL)
        SHA256_Init(&h->ctx);
    return h;
}

void
slh_sha256_update(struct slh_sha256 *h, const void *data, size_t len)
{
    SHA256_Update(&h->ctx, data, len);
}

void
slh_sha256_final(struct slh_sha256 *h, unsigned char out[SLH_SHA256_LEN])
{
    SHA256_Final(out, &h->ctx);
    free(h);
}

void
slh_sha256(const void *data, size_t len, unsigned char out[SLH_SHA256_LEN])
{
    SHA256_CTX ctx;

    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(out, &ctx);
}

void
slh_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                unsigned char out[SLH_SHA256_LEN])
{
    enum { BLOCK = 64 };
    unsigned char k[BLOCK] = {0}, pad[BLOCK], inner[SLH_SHA256_LEN];
    SHA256_CTX ctx;

    if (key_len > BLOCK)
        slh_sha256(key, key_len, k);
    else if (key_len > 0)
        memcpy(k, key, key_len);
    for (size_t i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, pad, BLOCK);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(inner, &ctx);
    for (size_t i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, pad, BLOCK);
    SHA256_Update(&ctx, inner, sizeof(inner));
    SHA256_Final(out, &ctx);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
}

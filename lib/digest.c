/* The SHA256_* functions are deprecated in OpenSSL 3 in favour of EVP, whose
 * first use costs a CGI process about 1 ms (digest.h): they stay available
 * and compute the same digest without the provider machinery. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "digest.h"

#include <stdlib.h>

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

#include "sign.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

enum slh_err
slh_sign_webhook(char out[SLH_SIGNATURE_LEN], const unsigned char *key,
                 size_t key_len, const char *id, long long timestamp,
                 const char *body, size_t len, struct slh_error *err)
{
    static const unsigned char empty_key[1];
    unsigned char mac[EVP_MAX_MD_SIZE];
    char ts[24];
    char digest[] = "SHA256";
    OSSL_PARAM params[2];
    EVP_MAC *hmac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    size_t mac_len = 0;
    int ts_len;
    enum slh_err rc = SLH_OK;

    out[0] = '\0';
    ts_len = snprintf(ts, sizeof(ts), "%lld", timestamp);
    params[0] =
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ctx = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
    /* OpenSSL rejects a NULL key even when its length is 0. */
    if (ctx == NULL ||
        !EVP_MAC_init(ctx, key_len > 0 ? key : empty_key, key_len, params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)ts_len) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)body, len) ||
        !EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) || mac_len != 32) {
        rc = slh_error_set(err, SLH_ENOMEM, "HMAC-SHA256 failed in OpenSSL");
        goto out;
    }
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    return rc;
}

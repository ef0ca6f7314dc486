/* digest.c against the FIPS 180-2 test vectors and libcrypto's EVP. */
#include <openssl/evp.h>

#include "check.h"
#include "digest.h"

static void
hex(const unsigned char *md, char out[2 * SLH_SHA256_LEN + 1])
{
    for (size_t i = 0; i < SLH_SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int
main(void)
{
    static const char *const vectors[][2] = {
        {"",
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc",
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    unsigned char md[SLH_SHA256_LEN], evp[EVP_MAX_MD_SIZE];
    char text[2 * SLH_SHA256_LEN + 1];
    unsigned int n = 0;
    char big[100000];

    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        slh_sha256(vectors[i][0], strlen(vectors[i][0]), md);
        hex(md, text);
        CHECK(strcmp(text, vectors[i][1]) == 0, "one go '%s': %s",
              vectors[i][0], text);
    }

    /* Incremental, in uneven pieces, equals one go and equals EVP. */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + 3);
    struct slh_sha256 *h = slh_sha256_new();
    if (CHECK(h != NULL, "new")) {
        for (size_t off = 0, step = 1; off < sizeof(big); step = step * 3 + 1) {
            size_t take = sizeof(big) - off < step ? sizeof(big) - off : step;
            slh_sha256_update(h, big + off, take);
            off += take;
        }
        slh_sha256_final(h, md);
    }
    CHECK(EVP_Digest(big, sizeof(big), evp, &n, EVP_sha256(), NULL) == 1 &&
              n == SLH_SHA256_LEN && memcmp(md, evp, n) == 0,
          "pieces equal EVP's digest");
    slh_sha256(big, sizeof(big), md);
    CHECK(memcmp(md, evp, SLH_SHA256_LEN) == 0, "one go equals EVP's digest");
    return check_summary();
}

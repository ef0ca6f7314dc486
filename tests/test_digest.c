/* digest.c against the FIPS 180-2 and RFC 4231 test vectors and
 * libcrypto's EVP. */
#include <openssl/evp.h>

#include "check.h"
#include "digest.h"

static void
hex(const unsigned char *md, char out[2 * SLH_SHA256_LEN + 1])
{
    for (size_t i = 0; i < SLH_SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* RFC 4231's test cases 1, 2 and 6 (a key longer than the block), and
 * libcrypto's EVP_Q_mac() on a long message. */
static void
test_hmac(void)
{
    static const struct {
        const char *key, *data, *want;
    } cases[] = {
        {"\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"
         "\x0b\x0b\x0b",
         "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"Jefe", "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    };
    unsigned char key[131], md[SLH_SHA256_LEN], evp[EVP_MAX_MD_SIZE];
    char text[2 * SLH_SHA256_LEN + 1], msg[5000];
    const char *data6 =
        "Test Using Larger Than Block-Size Key - Hash Key First";
    size_t n = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        slh_hmac_sha256(cases[i].key, strlen(cases[i].key), cases[i].data,
                        strlen(cases[i].data), md);
        hex(md, text);
        CHECK(strcmp(text, cases[i].want) == 0, "HMAC case %zu: %s", i + 1,
              text);
    }
    memset(key, 0xaa, sizeof(key));
    slh_hmac_sha256(key, sizeof(key), data6, strlen(data6), md);
    hex(md, text);
    CHECK(strcmp(text, "60e431591ee0b67f0d8a26aacbf5b77f"
                       "8e0bc6213728c5140546040f0ee37f54") == 0,
          "HMAC case 6 (long key): %s", text);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (char)(i * 13 + 1);
    slh_hmac_sha256("k3y", 3, msg, sizeof(msg), md);
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, "k3y", 3,
                    (const unsigned char *)msg, sizeof(msg), evp, sizeof(evp),
                    &n) != NULL &&
              n == SLH_SHA256_LEN && memcmp(md, evp, n) == 0,
          "HMAC equals EVP_Q_mac's on 5000 bytes");
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
    test_hmac();
    return check_summary();
}

/* test_sign: Standard Webhooks signatures against the scheme's published
 * example and against values computed with Python's hmac module. */
#include <string.h>

#include "check.h"
#include "sign.h"

/* whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, base64-decoded. */
static const unsigned char key[] = {
    0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a, 0xab, 0x4f, 0x08, 0xd4,
    0x3c, 0x3f, 0x08, 0x2c, 0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0};

static void
test_published_example(void)
{
    /* The example of the Standard Webhooks specification. */
    const char *body = "{\"test\": 2432232314}";
    char sig[SLH_SIGNATURE_LEN];
    struct slh_error err = {0};

    CHECK(slh_sign_webhook(sig, key, sizeof(key),
                           "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
                           strlen(body), &err) == SLH_OK,
          "sign: %s", err.text);
    CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") == 0,
          "published example: got %s", sig);
    CHECK(strlen(sig) == SLH_SIGNATURE_LEN - 1, "length %zu", strlen(sig));
}

static void
test_python_values(void)
{
    /* python3: base64.b64encode(hmac.new(key, b"<id>.<ts>.<body>",
     * hashlib.sha256).digest()) */
    static const struct {
        const char *id;
        long long ts;
        const char *body;
        size_t len;
        const char *want;
    } cases[] = {
        {"abc", 1700000000, "{\"Type\":\"Delivered\"}", 20,
         "v1,7GeL5Dolb5mRhKwyTgOKfw7+nb6rqlFjMOpUnB0gK/A="},
        {"abc", 1700000001, "{\"Type\":\"Delivered\"}", 20,
         "v1,NoncQ6E3/TjcAQO8F4iqRg4wb892WVXQCt/hJbaivkE="},
        {"abc", 1700000000, "", 0,
         "v1,t5E2ZlADMdlvl32fJKXqe6giiqJ/2R2tjb6rLILLh60="},
        /* the body is signed as bytes: an embedded NUL counts */
        {"abc", 1700000000, "a\0b", 3,
         "v1,4OYoLMes0TUVfCkCcbE0kd5N6nV8+i9qqotgXt7GHw0="},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char sig[SLH_SIGNATURE_LEN];
        CHECK(slh_sign_webhook(sig, key, sizeof(key), cases[i].id, cases[i].ts,
                               cases[i].body, cases[i].len, NULL) == SLH_OK,
              "case %zu signs", i);
        CHECK(strcmp(sig, cases[i].want) == 0, "case %zu: got %s want %s", i,
              sig, cases[i].want);
    }
}

static void
test_empty_key(void)
{
    char sig[SLH_SIGNATURE_LEN];

    CHECK(slh_sign_webhook(sig, NULL, 0, "abc", 1700000000, "x", 1, NULL) ==
              SLH_OK,
          "an empty key still signs");
    CHECK(strcmp(sig, "v1,cXtdTArd3yNoOfY7+w5irklwCIo6Nx84KVuDVi00hZg=") == 0,
          "empty key: got %s", sig);
}

int
main(void)
{
    (void)check_slurp; /* the harness's helpers this test has no use for */
    (void)check_fixtures;
    test_published_example();
    test_python_values();
    test_empty_key();
    return check_summary();
}

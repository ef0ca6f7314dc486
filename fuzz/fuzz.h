/* fuzz.h: helpers shared by the libFuzzer targets (header-only, statics).
 *
 * A target reports a broken invariant with FUZZ_ASSERT, which prints what
 * broke and aborts, so that libFuzzer saves the input as a crash. */
#ifndef SLH_FUZZ_H
#define SLH_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_SECRET "q7Rt2mXw9LpB4sKd8Zf3"
#define FUZZ_PIECE 8 /* a run of this many secret characters is a leak */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, ...)                                                 \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ", __FILE__,  \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/*
 * True when the environment variable SLH_FUZZ_KNOWN lists word: a finding
 * already reported, whose check a long run may relax to look for others.
 * Unset (the default, and in make fuzz), every check is strict.
 */
static inline bool
fuzz_known(const char *word)
{
    const char *list = getenv("SLH_FUZZ_KNOWN");
    size_t n = strlen(word);

    for (const char *p = list; p != NULL && (p = strstr(p, word)) != NULL;
         p += n)
        if ((p == list || p[-1] == ' ' || p[-1] == ',') &&
            (p[n] == '\0' || p[n] == ' ' || p[n] == ','))
            return true;
    return false;
}

/* Text bound for a log line or an HTTP answer: printable ASCII only, so a
 * request cannot forge log lines or headers. */
static inline bool
fuzz_is_printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static inline const char *
fuzz_memmem(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m == 0 || m > n)
        return NULL;
    for (size_t i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/* True when s holds FUZZ_PIECE consecutive characters of the secret. */
static inline bool
fuzz_has_piece(const char *s, size_t n)
{
    const char *secret = FUZZ_SECRET;
    size_t slen = strlen(secret);

    for (size_t i = 0; i + FUZZ_PIECE <= slen; i++)
        if (fuzz_memmem(s, n, secret + i, FUZZ_PIECE) != NULL)
            return true;
    return false;
}

/*
 * Where the secret belongs in a request: in the value of its SecretKey
 * field, as sent. A piece of the secret anywhere else (a field name, Type,
 * another field's value) is the sender's own choice to show it, and may
 * rightly be echoed in an error text or relayed: such a request "exposes"
 * the secret, and the leak checks do not apply to it.
 *
 * The value of a SecretKey field is read as JSON ("SecretKey": "...",
 * names in any case) or as a form (SecretKey=...&). A JSON body posted as a
 * form is still meant to carry its key in place, though the form reading
 * makes it part of a field name: FUZZ_AS_FORM_JSON counts a hit in place in
 * a form field name when the JSON reading has it in place. A hit counts as
 * in place when it is in place under one of the readings asked for.
 */
enum { FUZZ_AS_JSON = 1, FUZZ_AS_FORM = 2, FUZZ_AS_FORM_JSON = 4 };

static inline bool
fuzz_in_json_value(const char *body, size_t len, size_t pos)
{
    for (size_t i = 0; i + 11 <= len && i < pos; i++) {
        size_t j;

        if (strncasecmp(body + i, "\"secretkey\"", 11) != 0)
            continue;
        j = i + 11;
        while (j < len && strchr(" \t\r\n", body[j]) != NULL)
            j++;
        if (j >= len || body[j++] != ':')
            continue;
        while (j < len && strchr(" \t\r\n", body[j]) != NULL)
            j++;
        if (j >= len || body[j++] != '"')
            continue;
        while (j < len && j < pos && body[j] != '"')
            j += body[j] == '\\' ? 2 : 1;
        if (j == pos)
            return true;
    }
    return false;
}

static inline bool
fuzz_in_form_value(const char *body, size_t len, size_t pos)
{
    size_t start = 0;

    while (start <= len) {
        const char *amp = memchr(body + start, '&', len - start);
        size_t end = amp != NULL ? (size_t)(amp - body) : len;

        if (pos >= start && pos < end)
            return end - start > 10 &&
                   strncasecmp(body + start, "SecretKey=", 10) == 0 &&
                   pos >= start + 10;
        start = end + 1;
    }
    return false;
}

/* The hit at pos lies in a form field's name (before its '=', if any). */
static inline bool
fuzz_in_form_name(const char *body, size_t len, size_t pos)
{
    size_t start = 0;

    while (start <= len) {
        const char *amp = memchr(body + start, '&', len - start);
        size_t end = amp != NULL ? (size_t)(amp - body) : len;
        const char *eq = memchr(body + start, '=', end - start);

        if (pos >= start && pos < end)
            return eq == NULL || pos < (size_t)(eq - body);
        start = end + 1;
    }
    return false;
}

static inline bool
fuzz_exposes_secret(const char *body, size_t len, int readings)
{
    const char *secret = FUZZ_SECRET;
    size_t slen = strlen(secret);

    for (size_t i = 0; i + FUZZ_PIECE <= slen; i++) {
        const char *p = body, *end = body + len;
        const char *hit;

        while ((hit = fuzz_memmem(p, (size_t)(end - p), secret + i,
                                  FUZZ_PIECE)) != NULL) {
            size_t pos = (size_t)(hit - body);

            bool json = fuzz_in_json_value(body, len, pos);

            if (!((readings & FUZZ_AS_JSON) != 0 && json) &&
                !((readings & FUZZ_AS_FORM) != 0 &&
                  fuzz_in_form_value(body, len, pos)) &&
                !((readings & FUZZ_AS_FORM_JSON) != 0 && json &&
                  fuzz_in_form_name(body, len, pos)))
                return true;
            p = hit + 1;
        }
    }
    return false;
}

#endif

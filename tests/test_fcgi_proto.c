/* test_fcgi_proto.c: the FastCGI record parser of slhook.fcgi
 * (fcgi/proto.c), fed bytes as a web server would send them. */
#include "../fcgi/proto.h"

#include <fastcgi.h>

#include "check.h"

struct stream {
    unsigned char b[1 << 18];
    size_t n;
};

static void
rec(struct stream *s, int type, int id, const void *content, size_t len)
{
    size_t pad = -len % 8;
    unsigned char h[8] = {1,
                          (unsigned char)type,
                          (unsigned char)(id >> 8),
                          (unsigned char)id,
                          (unsigned char)(len >> 8),
                          (unsigned char)len,
                          (unsigned char)pad,
                          0};

    memcpy(s->b + s->n, h, 8);
    memcpy(s->b + s->n + 8, content, len);
    memset(s->b + s->n + 8 + len, 0, pad);
    s->n += 8 + len + pad;
}

static void
begin(struct stream *s, int id, int role, bool keep)
{
    unsigned char b[8] = {(unsigned char)(role >> 8), (unsigned char)role,
                          keep ? FCGI_KEEP_CONN : 0};

    rec(s, FCGI_BEGIN_REQUEST, id, b, 8);
}

/* Appends one name-value pair to p (lengths of 1 or 4 bytes). */
static size_t
pair(unsigned char *p, const char *name, const char *value)
{
    size_t n = 0, ln = strlen(name), lv = strlen(value);
    size_t lens[2] = {ln, lv};

    for (int i = 0; i < 2; i++) {
        if (lens[i] < 128) {
            p[n++] = (unsigned char)lens[i];
        } else {
            p[n++] = (unsigned char)(0x80 | lens[i] >> 24);
            p[n++] = (unsigned char)(lens[i] >> 16);
            p[n++] = (unsigned char)(lens[i] >> 8);
            p[n++] = (unsigned char)lens[i];
        }
    }
    memcpy(p + n, name, ln);
    memcpy(p + n + ln, value, lv);
    return n + ln + lv;
}

/* A whole request: params (method, length, a long one), body. */
static void
request(struct stream *s, int id, bool keep, const char *body)
{
    unsigned char p[2048];
    char len[24], longv[300];
    size_t n = 0;

    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    snprintf(len, sizeof(len), "%zu", strlen(body));
    n += pair(p + n, "REQUEST_METHOD", "POST");
    n += pair(p + n, "CONTENT_LENGTH", len);
    n += pair(p + n, "HTTP_X_LONG", longv);
    n += pair(p + n, "EMPTY", "");
    begin(s, id, FCGI_RESPONDER, keep);
    rec(s, FCGI_PARAMS, id, p, n / 2);
    rec(s, FCGI_PARAMS, id, p + n / 2, n - n / 2);
    rec(s, FCGI_PARAMS, id, "", 0);
    if (*body != '\0')
        rec(s, FCGI_STDIN, id, body, strlen(body));
    rec(s, FCGI_STDIN, id, "", 0);
}

struct run {
    unsigned char out[4096];
    size_t out_len;
    int n_head;
    size_t used;
};

/* Feeds buf[0..len) in pieces of step bytes until a step other than
 * FC_MORE, FLUSH or HEAD (which sets body_want to want); FLUSHed
 * records collect in r->out. */
static enum fc_step
feed(struct fc_conn *c, const unsigned char *buf, size_t len, size_t step,
     size_t want, struct run *r)
{
    size_t at = 0;

    for (;;) {
        size_t k = len - at < step ? len - at : step, used = 0;
        enum fc_step st =
            fc_feed(c, buf + at, k, &used, r->out, sizeof(r->out), &r->out_len);
        at += used;
        r->used = at;
        if (st == FC_HEAD) {
            r->n_head++;
            c->body_want = want;
            continue;
        }
        if (st == FC_FLUSH)
            continue;
        if (st != FC_MORE || at == len)
            return st;
    }
}

/* The protocol status of the FCGI_END_REQUEST at out[at], for id. */
static int
end_status(const unsigned char *out, size_t at, int id)
{
    if (out[at + 1] != FCGI_END_REQUEST || out[at + 2] != (id >> 8) ||
        out[at + 3] != (id & 0xff) || out[at + 5] != 8)
        return -1;
    return out[at + 8 + 4];
}

static void
test_whole(size_t step)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct fc_conn c = {0};
    struct run r = {0};
    enum fc_step st;
    const char *v;

    request(s, 7, false, "hello, world");
    st = feed(&c, s->b, s->n, step, 12, &r);
    CHECK(st == FC_READY, "step %zu: ready (%d)", step, st);
    CHECK(r.used == s->n, "step %zu: every byte taken", step);
    CHECK(r.n_head == 1, "step %zu: one HEAD", step);
    CHECK(r.out_len == 0, "step %zu: nothing to send", step);
    CHECK(c.id == 7 && !c.keep_conn, "step %zu: id 7, not kept", step);
    v = fc_param(&c, "REQUEST_METHOD");
    CHECK(v != NULL && strcmp(v, "POST") == 0, "step %zu: method", step);
    v = fc_param(&c, "CONTENT_LENGTH");
    CHECK(v != NULL && strcmp(v, "12") == 0, "step %zu: length", step);
    v = fc_param(&c, "HTTP_X_LONG");
    CHECK(v != NULL && strlen(v) == 299, "step %zu: a 4-byte length", step);
    v = fc_param(&c, "EMPTY");
    CHECK(v != NULL && *v == '\0', "step %zu: an empty value", step);
    CHECK(fc_param(&c, "NOPE") == NULL, "step %zu: absent", step);
    CHECK(c.body != NULL && c.body_len == 12 &&
              strcmp(c.body, "hello, world") == 0,
          "step %zu: body", step);
    fc_conn_free(&c);
    free(s);
}

static void
test_body_want(void)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct fc_conn c = {0};
    struct run r = {0};
    char big[70000];

    /* More than one record's worth, kept only up to body_want. */
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    begin(s, 1, FCGI_RESPONDER, false);
    rec(s, FCGI_PARAMS, 1, "", 0);
    rec(s, FCGI_STDIN, 1, big, 60000);
    rec(s, FCGI_STDIN, 1, big, 9999);
    rec(s, FCGI_STDIN, 1, "", 0);
    CHECK(feed(&c, s->b, s->n, 4096, 65000, &r) == FC_READY, "ready");
    CHECK(c.body_len == 65000 && c.stdin_len == 69999, "kept %zu of %zu",
          c.body_len, c.stdin_len);
    fc_conn_free(&c);

    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    CHECK(feed(&c, s->b, s->n, 100000, 0, &r) == FC_READY, "ready, dropped");
    CHECK(c.body == NULL && c.body_len == 0 && c.stdin_len == 69999,
          "a dropped body is counted, not kept");
    fc_conn_free(&c);
    free(s);
}

static long charged;
static long charge_limit;

static bool
charge(void *ctx, long delta)
{
    (void)ctx;
    if (delta > 0 && charged + delta > charge_limit)
        return false;
    charged += delta;
    return true;
}

static void
test_charge(void)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct fc_conn c = {.charge = charge};
    struct run r = {0};
    char big[50000];

    memset(big, 'b', sizeof(big));
    request(s, 1, false, "short");
    charge_limit = 1 << 20;
    CHECK(feed(&c, s->b, s->n, 3, 5, &r) == FC_READY, "ready");
    CHECK(charged > 0, "params and body charged (%ld)", charged);
    fc_conn_free(&c);
    CHECK(charged == 0, "all given back (%ld)", charged);

    s->n = 0;
    begin(s, 1, FCGI_RESPONDER, false);
    rec(s, FCGI_PARAMS, 1, "", 0);
    rec(s, FCGI_STDIN, 1, big, sizeof(big));
    rec(s, FCGI_STDIN, 1, "", 0);
    charge_limit = 40000;
    memset(&c, 0, sizeof(c));
    c.charge = charge;
    memset(&r, 0, sizeof(r));
    CHECK(feed(&c, s->b, s->n, 1000, sizeof(big), &r) == FC_READY,
          "ready over the charge");
    CHECK(c.is_busy && c.body == NULL && c.stdin_len == sizeof(big),
          "refused: the body is dropped and busy");
    CHECK(charged == 0, "nothing held while busy (%ld)", charged);
    fc_conn_free(&c);
    free(s);
}

static void
test_keep_alive(void)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct fc_conn c = {0};
    struct run r = {0};
    size_t first;

    request(s, 1, true, "one");
    first = s->n;
    request(s, 2, true, "second");
    CHECK(feed(&c, s->b, s->n, 100000, 3, &r) == FC_READY, "first");
    CHECK(r.used == first, "stops at the first request's end (%zu of %zu)",
          r.used, first);
    CHECK(c.keep_conn && strcmp(c.body, "one") == 0, "first, kept");
    fc_next(&c);
    CHECK(!c.is_started, "the next request's bytes are not yet fed: %d",
          c.is_started);
    CHECK(feed(&c, s->b + first, s->n - first, 100000, 6, &r) == FC_READY,
          "second");
    CHECK(c.id == 2 && strcmp(c.body, "second") == 0, "second's body");
    fc_next(&c);
    CHECK(c.phase == FC_IDLE && c.params == NULL, "idle again");
    fc_conn_free(&c);
    free(s);
}

static void
test_management(void)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct fc_conn c = {.max_conns = 48, .max_reqs = 48};
    struct run r = {0};
    unsigned char q[128];
    size_t n = 0;
    const char *want = "\x0e\x02" FCGI_MAX_CONNS "48"
                       "\x0d\x02" FCGI_MAX_REQS "48"
                       "\x0f\x01" FCGI_MPXS_CONNS "0";
    size_t want_len = 2 + 14 + 2 + 2 + 13 + 2 + 2 + 15 + 1;

    n += pair(q + n, FCGI_MAX_CONNS, "");
    n += pair(q + n, "SOMETHING_ELSE", "");
    n += pair(q + n, FCGI_MAX_REQS, "");
    n += pair(q + n, FCGI_MPXS_CONNS, "");
    rec(s, FCGI_GET_VALUES, 0, q, n);
    CHECK(feed(&c, s->b, s->n, 5, 0, &r) == FC_MORE, "more");
    CHECK(r.out_len == 8 + want_len + (-want_len % 8), "result length %zu",
          r.out_len);
    CHECK(r.out[1] == FCGI_GET_VALUES_RESULT && r.out[2] == 0 &&
              r.out[3] == 0 && r.out[5] == want_len,
          "FCGI_GET_VALUES_RESULT header");
    CHECK(memcmp(r.out + 8, want, want_len) == 0, "the three values");

    s->n = 0;
    r.out_len = 0;
    rec(s, 42, 0, "xyz", 3);
    CHECK(feed(&c, s->b, s->n, 100, 0, &r) == FC_MORE, "more");
    CHECK(r.out_len == 16 && r.out[1] == FCGI_UNKNOWN_TYPE && r.out[8] == 42,
          "FCGI_UNKNOWN_TYPE of 42");
    CHECK(c.phase == FC_IDLE, "still no request");
    fc_conn_free(&c);
    free(s);
}

static void
test_refusals(void)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct fc_conn c = {0};
    struct run r = {0};

    /* A second request id while the first is read: refused, its records
     * dropped, the first completes. */
    begin(s, 1, FCGI_RESPONDER, false);
    begin(s, 2, FCGI_RESPONDER, false);
    rec(s, FCGI_PARAMS, 2, "\x01\x01xy", 4);
    rec(s, FCGI_PARAMS, 1,
        "\x01\x01"
        "ab",
        4);
    rec(s, FCGI_PARAMS, 2, "", 0);
    rec(s, FCGI_PARAMS, 1, "", 0);
    rec(s, FCGI_STDIN, 2, "zz", 2);
    rec(s, FCGI_STDIN, 1, "ok", 2);
    rec(s, FCGI_STDIN, 1, "", 0);
    CHECK(feed(&c, s->b, s->n, 7, 10, &r) == FC_READY, "first ready");
    CHECK(r.out_len == 16 && end_status(r.out, 0, 2) == FCGI_CANT_MPX_CONN,
          "id 2: FCGI_CANT_MPX_CONN");
    CHECK(c.id == 1 && strcmp(fc_param(&c, "a"), "b") == 0 &&
              strcmp(c.body, "ok") == 0,
          "id 1 untouched");
    fc_conn_free(&c);

    /* Another role: FCGI_UNKNOWN_ROLE, then closed (not kept). */
    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    s->n = 0;
    begin(s, 3, FCGI_AUTHORIZER, false);
    CHECK(feed(&c, s->b, s->n, 100, 0, &r) == FC_CLOSE, "closed");
    CHECK(end_status(r.out, 0, 3) == FCGI_UNKNOWN_ROLE, "FCGI_UNKNOWN_ROLE");
    fc_conn_free(&c);

    /* An abort: the request ends; a kept connection takes the next. */
    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    s->n = 0;
    begin(s, 4, FCGI_RESPONDER, true);
    rec(s, FCGI_PARAMS, 4, "", 0);
    rec(s, FCGI_STDIN, 4, "partial", 7);
    rec(s, FCGI_ABORT_REQUEST, 4, "", 0);
    request(s, 5, true, "after");
    CHECK(feed(&c, s->b, s->n, 9, 5, &r) == FC_READY, "next ready");
    CHECK(end_status(r.out, 0, 4) == FCGI_REQUEST_COMPLETE,
          "the aborted request ended");
    CHECK(c.id == 5 && strcmp(c.body, "after") == 0, "then the next");
    fc_conn_free(&c);

    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    s->n = 0;
    begin(s, 4, FCGI_RESPONDER, false);
    rec(s, FCGI_ABORT_REQUEST, 4, "", 0);
    CHECK(feed(&c, s->b, s->n, 100, 5, &r) == FC_CLOSE,
          "aborted, not kept: closed");
    CHECK(end_status(r.out, 0, 4) == FCGI_REQUEST_COMPLETE, "and ended");
    fc_conn_free(&c);
    free(s);
}

static void
test_bad(void)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct fc_conn c = {0};
    struct run r = {0};
    static char chunk[60000];

    s->b[0] = 2;
    s->n = 8;
    CHECK(feed(&c, s->b, s->n, 100, 0, &r) == FC_CLOSE, "version 2");
    fc_conn_free(&c);

    memset(&c, 0, sizeof(c));
    s->n = 0;
    begin(s, 1, FCGI_RESPONDER, false);
    rec(s, FCGI_PARAMS, 1,
        "\x05\x01"
        "ab",
        4);
    rec(s, FCGI_PARAMS, 1, "", 0);
    CHECK(feed(&c, s->b, s->n, 100, 0, &r) == FC_CLOSE &&
              strcmp(c.why, "malformed params") == 0,
          "a pair past the end");
    fc_conn_free(&c);

    memset(&c, 0, sizeof(c));
    s->n = 0;
    begin(s, 1, FCGI_RESPONDER, false);
    rec(s, FCGI_PARAMS, 1, chunk, sizeof(chunk));
    rec(s, FCGI_PARAMS, 1, chunk, sizeof(chunk));
    CHECK(feed(&c, s->b, s->n, 100000, 0, &r) == FC_CLOSE &&
              strcmp(c.why, "params too large") == 0,
          "params over FC_MAX_PARAMS");
    CHECK(c.params_cap <= FC_MAX_PARAMS + 1, "params capped (%zu)",
          c.params_cap);
    fc_conn_free(&c);

    memset(&c, 0, sizeof(c));
    s->n = 0;
    begin(s, 1, FCGI_RESPONDER, false);
    rec(s, FCGI_STDIN, 1, "x", 1);
    CHECK(feed(&c, s->b, s->n, 100, 0, &r) == FC_CLOSE,
          "stdin before the params ended");
    fc_conn_free(&c);
    free(s);
}

static void
test_answer(void)
{
    unsigned char buf[256];
    size_t n = fc_answer(buf, 0x1234, "Status: 200 OK\r\n\r\n", 18);

    CHECK(n == 8 + 18 + 8 + 16, "answer length %zu", n);
    CHECK(buf[1] == FCGI_STDOUT && buf[2] == 0x12 && buf[3] == 0x34 &&
              buf[5] == 18 && memcmp(buf + 8, "Status: 200", 11) == 0,
          "stdout record");
    CHECK(buf[27] == FCGI_STDOUT && buf[31] == 0, "empty stdout record");
    CHECK(end_status(buf, 34, 0x1234) == FCGI_REQUEST_COMPLETE, "end request");
}

/* An answer over one record's 65535 bytes (the operator's page, metrics)
 * goes out in several, and the parts put together are the answer. */
static void
test_long_answer(void)
{
    size_t len = 150000, n, at = 0, got = 0, records = 0;
    char *text = malloc(len);
    unsigned char *buf = malloc(FC_ANSWER_SIZE(len));

    if (!CHECK(text != NULL && buf != NULL, "memory")) {
        free(text);
        free(buf);
        return;
    }
    for (size_t i = 0; i < len; i++)
        text[i] = (char)('a' + i % 26);
    n = fc_answer(buf, 7, text, len);
    CHECK(n <= FC_ANSWER_SIZE(len), "within FC_ANSWER_SIZE: %zu", n);
    for (;;) {
        size_t clen = (size_t)buf[at + 4] << 8 | buf[at + 5];
        if (buf[at + 1] != FCGI_STDOUT || clen == 0)
            break;
        CHECK(memcmp(buf + at + 8, text + got, clen) == 0,
              "record %zu holds the next bytes", records);
        got += clen;
        records++;
        at += 8 + clen;
    }
    CHECK(got == len && records == 3, "%zu bytes in %zu records", got, records);
    CHECK(buf[at + 1] == FCGI_STDOUT && at + 8 + 16 == n &&
              end_status(buf, at + 8, 7) == FCGI_REQUEST_COMPLETE,
          "then the empty stdout and the end");
    free(text);
    free(buf);
}

int
main(void)
{
    test_whole(100000);
    test_whole(1);
    test_whole(7);
    test_body_want();
    test_charge();
    test_keep_alive();
    test_management();
    test_refusals();
    test_bad();
    test_answer();
    test_long_answer();
    return check_summary();
}

#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fastcgi.h>

/* The first body buffer; it doubles up to body_want. SocketLabs' posts
 * are a few KiB, so most requests allocate once. */
#define BODY_FIRST (16 * 1024)

static void
header(unsigned char *h, int type, int id, size_t len, size_t pad)
{
    FCGI_Header hd = {
        .version = FCGI_VERSION_1,
        .type = (unsigned char)type,
        .requestIdB1 = (unsigned char)(id >> 8),
        .requestIdB0 = (unsigned char)id,
        .contentLengthB1 = (unsigned char)(len >> 8),
        .contentLengthB0 = (unsigned char)len,
        .paddingLength = (unsigned char)pad,
    };
    memcpy(h, &hd, FCGI_HEADER_LEN);
}

static void
end_request(struct fc_conn *c, int id, int status, unsigned char *out,
            size_t *out_len)
{
    FCGI_EndRequestBody end = {.protocolStatus = (unsigned char)status};

    (void)c;
    header(out + *out_len, FCGI_END_REQUEST, id, sizeof(end), 0);
    memcpy(out + *out_len + FCGI_HEADER_LEN, &end, sizeof(end));
    *out_len += FCGI_HEADER_LEN + sizeof(end);
}

size_t
fc_answer(unsigned char *buf, int id, const char *out, size_t n)
{
    _Static_assert(FC_ANSWER_EXTRA ==
                       3 * FCGI_HEADER_LEN + sizeof(FCGI_EndRequestBody),
                   "proto.h's count of what an answer adds");
    FCGI_EndRequestBody end = {.protocolStatus = FCGI_REQUEST_COMPLETE};
    size_t len = 0;

    /* A record holds at most 65535 bytes: a longer answer takes several. */
    do {
        size_t part = n < FC_RECORD_MAX ? n : FC_RECORD_MAX;

        header(buf + len, FCGI_STDOUT, id, part, 0);
        memcpy(buf + len + FCGI_HEADER_LEN, out, part);
        len += FCGI_HEADER_LEN + part;
        out += part;
        n -= part;
    } while (n > 0);
    header(buf + len, FCGI_STDOUT, id, 0, 0);
    len += FCGI_HEADER_LEN;
    header(buf + len, FCGI_END_REQUEST, id, sizeof(end), 0);
    len += FCGI_HEADER_LEN;
    memcpy(buf + len, &end, sizeof(end));
    return len + sizeof(end);
}

/* One name-value pair's length (1 or 4 bytes); false when cut short. */
static bool
pair_len(const unsigned char *p, size_t len, size_t *at, size_t *n)
{
    if (*at >= len)
        return false;
    if (p[*at] < 0x80) {
        *n = p[(*at)++];
        return true;
    }
    if (len - *at < 4)
        return false;
    *n = ((size_t)(p[*at] & 0x7f) << 24) | ((size_t)p[*at + 1] << 16) |
         ((size_t)p[*at + 2] << 8) | p[*at + 3];
    *at += 4;
    return true;
}

/*
 * Rewrites the pairs as "name\0value\0", in place: the length prefixes
 * take at least the two bytes the NULs need, so the write never overtakes
 * the read. False when a pair runs past the end.
 */
static bool
decode_pairs(unsigned char *p, size_t len, size_t *out_len)
{
    size_t at = 0, w = 0;

    while (at < len) {
        size_t nl, vl;

        if (!pair_len(p, len, &at, &nl) || !pair_len(p, len, &at, &vl) ||
            nl > len - at || vl > len - at - nl)
            return false;
        memmove(p + w, p + at, nl);
        w += nl;
        p[w++] = '\0';
        memmove(p + w, p + at + nl, vl);
        w += vl;
        p[w++] = '\0';
        at += nl + vl;
    }
    *out_len = w;
    return true;
}

const char *
fc_param(const struct fc_conn *c, const char *name)
{
    const char *p = c->params, *end = c->params + c->params_len;

    if (p == NULL || c->phase < FC_STDIN)
        return NULL;
    while (p < end) {
        const char *v = p + strlen(p) + 1;

        if (strcmp(p, name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

static bool
charge(struct fc_conn *c, long delta)
{
    return c->charge == NULL || c->charge(c->charge_ctx, delta);
}

/* Grows *buf to hold need bytes (plus a NUL), doubling from first up to
 * max. False when charge refuses or memory is out. */
static bool
grow(struct fc_conn *c, char **buf, size_t *cap, size_t need, size_t first,
     size_t max)
{
    size_t cap2 = *cap > 0 ? *cap : first;
    char *p;

    if (need + 1 <= *cap)
        return true;
    while (cap2 < need + 1)
        cap2 *= 2;
    if (cap2 > max + 1)
        cap2 = max + 1;
    if (!charge(c, (long)(cap2 - *cap)))
        return false;
    p = realloc(*buf, cap2);
    if (p == NULL) {
        charge(c, -(long)(cap2 - *cap));
        return false;
    }
    *buf = p;
    *cap = cap2;
    return true;
}

/* FCGI_GET_VALUES_RESULT for the names asked in c->small; an unknown name
 * is left out, as the specification says. */
static void
get_values(struct fc_conn *c, unsigned char *out, size_t *out_len)
{
    unsigned char *rec = out + *out_len, *body = rec + FCGI_HEADER_LEN;
    size_t at = 0, n = 0, pad;
    char v[3][16];
    const char *names[3] = {FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS};

    snprintf(v[0], sizeof(v[0]), "%u", c->max_conns);
    snprintf(v[1], sizeof(v[1]), "%u", c->max_reqs);
    snprintf(v[2], sizeof(v[2]), "0");
    while (at < c->small_len) {
        size_t nl, vl;

        if (!pair_len(c->small, c->small_len, &at, &nl) ||
            !pair_len(c->small, c->small_len, &at, &vl) ||
            nl > c->small_len - at || vl > c->small_len - at - nl)
            break;
        for (int i = 0; i < 3; i++) {
            size_t ln = strlen(names[i]), lv = strlen(v[i]);

            /* Each pair at most 2 + 15 + 10 bytes: three fit in 96. */
            if (nl == ln && memcmp(c->small + at, names[i], ln) == 0 &&
                n + 2 + ln + lv <= 96) {
                body[n++] = (unsigned char)ln;
                body[n++] = (unsigned char)lv;
                memcpy(body + n, names[i], ln);
                n += ln;
                memcpy(body + n, v[i], lv);
                n += lv;
            }
        }
        at += nl + vl;
    }
    pad = -n % 8;
    memset(body + n, 0, pad);
    header(rec, FCGI_GET_VALUES_RESULT, 0, n, pad);
    *out_len += FCGI_HEADER_LEN + n + pad;
}

/* A management record (request id 0), its content in c->small. */
static enum fc_step
management(struct fc_conn *c, unsigned char *out, size_t *out_len)
{
    if (c->type == FCGI_GET_VALUES) {
        get_values(c, out, out_len);
    } else {
        FCGI_UnknownTypeBody u = {.type = (unsigned char)c->type};

        header(out + *out_len, FCGI_UNKNOWN_TYPE, 0, sizeof(u), 0);
        memcpy(out + *out_len + FCGI_HEADER_LEN, &u, sizeof(u));
        *out_len += FCGI_HEADER_LEN + sizeof(u);
    }
    return FC_FLUSH;
}

/* Forgets the current request's data, giving back its charge. */
static void
forget(struct fc_conn *c)
{
    if (c->params != NULL)
        charge(c, -(long)c->params_cap);
    if (c->body != NULL)
        charge(c, -(long)c->body_cap);
    free(c->params);
    free(c->body);
    c->params = c->body = NULL;
    c->params_len = c->params_cap = 0;
    c->body_len = c->body_cap = c->body_want = c->stdin_len = 0;
    c->is_busy = false;
    c->phase = FC_IDLE;
    c->id = 0;
    c->keep_conn = false;
}

static enum fc_step
closing(struct fc_conn *c, const char *why)
{
    c->why = why;
    c->is_closing = true;
    return FC_CLOSE;
}

/* A BEGIN_REQUEST, its content in c->small. */
static enum fc_step
begin(struct fc_conn *c, unsigned char *out, size_t *out_len)
{
    const FCGI_BeginRequestBody *b = (const void *)c->small;
    int role = (b->roleB1 << 8) | b->roleB0;
    bool keep = (b->flags & FCGI_KEEP_CONN) != 0;

    if (c->small_len < sizeof(*b))
        return closing(c, "short FCGI_BEGIN_REQUEST");
    if (c->phase != FC_IDLE) {
        if (c->rid == c->id)
            return closing(c, "FCGI_BEGIN_REQUEST for a request in progress");
        /* One request at a time per connection: the server opens another
         * connection for the next (FCGI_MPXS_CONNS is 0). */
        end_request(c, c->rid, FCGI_CANT_MPX_CONN, out, out_len);
        return FC_FLUSH;
    }
    if (role != FCGI_RESPONDER) {
        end_request(c, c->rid, FCGI_UNKNOWN_ROLE, out, out_len);
        if (!keep) {
            c->why = "role other than FCGI_RESPONDER";
            c->is_closing = true;
        }
        return FC_FLUSH;
    }
    c->phase = FC_PARAMS;
    c->id = c->rid;
    c->keep_conn = keep;
    return FC_MORE;
}

/* Content bytes p[0..n) of the current record, a part of it. */
static enum fc_step
content(struct fc_conn *c, const unsigned char *p, size_t n)
{
    if (c->rid == 0 || c->type == FCGI_BEGIN_REQUEST) {
        size_t room = sizeof(c->small) - c->small_len;
        size_t k = n < room ? n : room;

        memcpy(c->small + c->small_len, p, k);
        c->small_len += k;
        return FC_MORE;
    }
    if (c->rid != c->id)
        return FC_MORE; /* a refused request's records: dropped */
    if (c->type == FCGI_PARAMS) {
        if (c->phase != FC_PARAMS)
            return closing(c, "FCGI_PARAMS after the params ended");
        if (n > FC_MAX_PARAMS - c->params_len)
            return closing(c, "params too large");
        if (!grow(c, &c->params, &c->params_cap, c->params_len + n, 4096,
                  FC_MAX_PARAMS))
            return closing(c, "no memory for params");
        memcpy(c->params + c->params_len, p, n);
        c->params_len += n;
        return FC_MORE;
    }
    if (c->type == FCGI_STDIN) {
        size_t keep;

        if (c->phase != FC_STDIN)
            return closing(c, "FCGI_STDIN before the params ended");
        c->stdin_len += n;
        keep = c->body_want - c->body_len;
        if (keep > n)
            keep = n;
        if (keep == 0 || c->is_busy)
            return FC_MORE;
        if (!grow(c, &c->body, &c->body_cap, c->body_len + keep, BODY_FIRST,
                  c->body_want)) {
            if (c->body != NULL)
                charge(c, -(long)c->body_cap);
            free(c->body);
            c->body = NULL;
            c->body_len = c->body_cap = 0;
            c->is_busy = true;
            return FC_MORE;
        }
        memcpy(c->body + c->body_len, p, keep);
        c->body_len += keep;
        c->body[c->body_len] = '\0';
    }
    return FC_MORE; /* FCGI_DATA and the like: not a responder's */
}

/* The current record is complete (content and padding). */
static enum fc_step
record_end(struct fc_conn *c, unsigned char *out, size_t *out_len)
{
    size_t len;

    c->is_in_record = false;
    if (c->rid == 0)
        return management(c, out, out_len);
    if (c->type == FCGI_BEGIN_REQUEST)
        return begin(c, out, out_len);
    if (c->rid != c->id)
        return FC_MORE;
    switch (c->type) {
    case FCGI_ABORT_REQUEST:
        end_request(c, c->id, FCGI_REQUEST_COMPLETE, out, out_len);
        if (!c->keep_conn) {
            c->why = "request aborted by the server";
            c->is_closing = true;
        }
        forget(c);
        return FC_FLUSH;
    case FCGI_PARAMS:
        if (c->hdr[4] != 0 || c->hdr[5] != 0 || c->phase != FC_PARAMS)
            return FC_MORE;
        if (!decode_pairs((unsigned char *)c->params, c->params_len, &len))
            return closing(c, "malformed params");
        c->params_len = len;
        c->phase = FC_STDIN;
        return FC_HEAD;
    case FCGI_STDIN:
        if (c->hdr[4] != 0 || c->hdr[5] != 0)
            return FC_MORE;
        c->phase = FC_DONE;
        return FC_READY;
    }
    return FC_MORE;
}

enum fc_step
fc_feed(struct fc_conn *c, const unsigned char *buf, size_t len, size_t *used,
        unsigned char *out, size_t out_cap, size_t *out_len)
{
    size_t at = 0;
    enum fc_step step = FC_MORE;

    (void)out_cap;
    if (len > 0)
        c->is_started = true;
    while (step == FC_MORE && !c->is_closing) {
        if (c->phase == FC_DONE) {
            /* Bytes past a complete request wait until it is served. */
            *used = at;
            return FC_READY;
        }
        if (!c->is_in_record) {
            size_t k = FCGI_HEADER_LEN - c->hdr_have;

            if (at == len)
                break;
            if (k > len - at)
                k = len - at;
            memcpy(c->hdr + c->hdr_have, buf + at, k);
            c->hdr_have += k;
            at += k;
            if (c->hdr_have < FCGI_HEADER_LEN)
                break;
            if (c->hdr[0] != FCGI_VERSION_1) {
                step = closing(c, "not FastCGI version 1");
                break;
            }
            c->hdr_have = 0;
            c->is_in_record = true;
            c->type = c->hdr[1];
            c->rid = (c->hdr[2] << 8) | c->hdr[3];
            c->content_left = ((size_t)c->hdr[4] << 8) | c->hdr[5];
            c->pad_left = c->hdr[6];
            c->small_len = 0;
        }
        if (c->content_left > 0) {
            size_t k = c->content_left < len - at ? c->content_left : len - at;

            if (k == 0)
                break;
            step = content(c, buf + at, k);
            at += k;
            c->content_left -= k;
            if (step != FC_MORE || c->content_left > 0)
                continue;
        }
        if (c->pad_left > 0) {
            size_t k = c->pad_left < len - at ? c->pad_left : len - at;

            at += k;
            c->pad_left -= k;
            if (c->pad_left > 0)
                break;
        }
        step = record_end(c, out, out_len);
    }
    *used = at;
    if (c->is_closing && step != FC_FLUSH)
        return FC_CLOSE;
    return step;
}

void
fc_next(struct fc_conn *c)
{
    forget(c);
    c->is_started = c->hdr_have > 0 || c->is_in_record;
}

void
fc_conn_free(struct fc_conn *c)
{
    forget(c);
}

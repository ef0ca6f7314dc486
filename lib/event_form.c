#include "event_int.h"

#include <stdlib.h>
#include <string.h>

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
slh_form_decode(char *dst, size_t *out, const char *src, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] == '+') {
            dst[n++] = ' ';
        } else if (src[i] == '%') {
            int hi, lo;
            if (len - i < 3)
                return -1;
            hi = hex_digit(src[i + 1]);
            lo = hex_digit(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            dst[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[n++] = src[i];
        }
    }
    *out = n;
    return 0;
}

/*
 * A new JSON string of s[0..len): SLH_EPARSE when it is not UTF-8 or holds
 * a NUL. json_stringn() validates but answers NULL for out of memory too;
 * the unchecked variant tells the two apart.
 */
static enum slh_err
form_string(json_t **out, const char *s, size_t len)
{
    json_t *probe;

    *out = NULL;
    if (memchr(s, '\0', len) != NULL)
        return SLH_EPARSE;
    *out = json_stringn(s, len);
    if (*out != NULL)
        return SLH_OK;
    probe = json_stringn_nocheck(s, len);
    if (probe == NULL)
        return SLH_ENOMEM;
    json_decref(probe);
    return SLH_EPARSE;
}

/* One name=value pair (field i of the body) into obj. */
static enum slh_err
form_field(json_t *obj, json_t *seen, char *buf, const char *pair, size_t len,
           size_t i, struct slh_error *err)
{
    const char *eq = memchr(pair, '=', len);
    size_t nraw = eq != NULL ? (size_t)(eq - pair) : len;
    size_t nlen, vlen;
    char *val;
    json_t *jname = NULL, *jval = NULL;
    bool is_duplicate;
    enum slh_err rc;

    if (slh_form_decode(buf, &nlen, pair, nraw) != 0) {
        rc = slh_error_set(err, SLH_EPARSE,
                           "form field %zu: bad percent escape in name", i);
        goto out;
    }
    val = buf + nlen;
    if (eq == NULL) {
        vlen = 0;
    } else if (slh_form_decode(val, &vlen, eq + 1, len - nraw - 1) != 0) {
        rc = slh_error_set(err, SLH_EPARSE,
                           "form field %zu: bad percent escape", i);
        goto out;
    }
    if (nlen == 0) {
        rc = slh_error_set(err, SLH_EPARSE, "form field %zu: empty name", i);
        goto out;
    }
    rc = form_string(&jname, buf, nlen);
    if (rc == SLH_OK)
        rc = form_string(&jval, val, vlen);
    if (rc == SLH_ENOMEM) {
        slh_error_set(err, rc, "out of memory");
        goto out;
    }
    if (rc != SLH_OK) {
        slh_error_set(err, rc, "form field %zu: not UTF-8 text, or holds a NUL",
                      i);
        goto out;
    }
    rc = event_seen_add(seen, buf, nlen, &is_duplicate);
    if (rc != SLH_OK) {
        slh_error_set(err, rc, "out of memory");
        goto out;
    }
    if (is_duplicate) {
        rc = slh_error_set(err, SLH_EPARSE, "form field %zu: name given twice",
                           i);
        goto out;
    }
    if (json_object_setn_new_nocheck(obj, json_string_value(jname), nlen,
                                     jval) != 0) {
        jval = NULL; /* stolen even on failure */
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto out;
    }
    jval = NULL;
out:
    json_decref(jname);
    json_decref(jval);
    return rc;
}

enum slh_err
event_parse_form(struct slh_batch *batch, const char *body, size_t len,
                 struct slh_error *err)
{
    json_t *obj = json_object(), *seen = json_object();
    char *buf = malloc(len + 1);
    size_t start = 0, i = 0;
    enum slh_err rc = SLH_OK;

    if (obj == NULL || seen == NULL || buf == NULL) {
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto out;
    }
    /* A form encoder escapes CR and LF, so raw ones at the end are not
     * data: they come from a file saved with a final newline (curl
     * --data-binary @file). Kept, they would change the last value. */
    while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r'))
        len--;
    if (len == 0) {
        rc = slh_error_set(err, SLH_EPARSE, "empty form body");
        goto out;
    }
    while (start <= len) {
        const char *amp = memchr(body + start, '&', len - start);
        size_t end = amp != NULL ? (size_t)(amp - body) : len;
        rc = form_field(obj, seen, buf, body + start, end - start, i, err);
        if (rc != SLH_OK)
            goto out;
        start = end + 1;
        i++;
    }
    batch->events = calloc(1, sizeof(*batch->events));
    if (batch->events == NULL) {
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto out;
    }
    batch->n = 1;
    rc = event_take(&batch->events[0], obj, "", err);
    obj = NULL;
out:
    json_decref(obj);
    json_decref(seen);
    free(buf);
    return rc;
}

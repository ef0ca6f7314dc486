/* deliver_http.c: the deliverer's transport, libcurl's multi interface
 * (deliver_int.h): an easy handle per slot, each attempt's headers and
 * signature, the answer's first bytes, and what each transfer came to. */
#include "deliver_int.h"

#include <stdio.h>
#include <string.h>

#include "retry.h"
#include "sign.h"

#define USER_AGENT "slhook/" SLH_VERSION

static size_t
sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;
    size_t room = s->cap - s->len;
    size_t take = n < room ? n : room;

    memcpy(s->buf + s->len, data, take);
    s->len += take;
    s->buf[s->len] = '\0';
    return n;
}

/* TLS verified is curl's default, stated so nobody turns it off by
 * accident; no signals, as deliverers run in threads. */
bool
dl_http_options(CURL *easy, const char *url, long timeout, struct sink *sink)
{
    return curl_easy_setopt(easy, CURLOPT_URL, url) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") ==
               CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") ==
               CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_TIMEOUT, timeout) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_USERAGENT, USER_AGENT) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_POST, 1L) == CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink_write) ==
               CURLE_OK &&
           curl_easy_setopt(easy, CURLOPT_WRITEDATA, sink) == CURLE_OK;
}

bool
dl_http_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);

    if (l == NULL)
        return false;
    *list = l;
    return true;
}

/* ---- Setting up and tearing down ---- */

/* Each answer (a proxy's to CONNECT, a 1xx, the destination's own) begins
 * with its status line: only the last one's headers count. */
static size_t
on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct slot *s = arg;
    size_t n = size * nmemb;

    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0)
        s->is_abort = false;
    else if (slh_retry_is_abort_header(line, n))
        s->is_abort = true;
    return n;
}

/* A destination's own TLS and proxy settings (config.h). A ca_file
 * replaces the system's trust, the bundle and the directory both. A
 * configured proxy is used for every address: the environment's NO_PROXY
 * does not override what the config says. */
static bool
dest_options(CURL *easy, const struct slh_dest *dest)
{
    bool ok = true;

    if (dest->ca_file != NULL)
        ok =
            curl_easy_setopt(easy, CURLOPT_CAINFO, dest->ca_file) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_CAPATH, NULL) == CURLE_OK;
    if (ok && dest->client_cert != NULL)
        ok = curl_easy_setopt(easy, CURLOPT_SSLCERT, dest->client_cert) ==
                 CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_SSLKEY, dest->client_key) ==
                 CURLE_OK;
    if (ok && dest->proxy != NULL)
        ok = curl_easy_setopt(easy, CURLOPT_PROXY, dest->proxy) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_NOPROXY, "") == CURLE_OK;
    return ok;
}

/* Slot s of destination ds: its easy handle, set up once for all its
 * attempts (keep-alive). */
static bool
open_slot(struct dest_state *ds, struct slot *s)
{
    s->ds = ds;
    s->sink.buf = s->answer;
    s->sink.cap = ANSWER_KEEP;
    s->easy = curl_easy_init();
    return s->easy != NULL &&
           dl_http_options(s->easy, ds->dest->url, ds->dest->timeout,
                           &s->sink) &&
           dest_options(s->easy, ds->dest) &&
           curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header) ==
               CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, (void *)s) ==
               CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->curl_error) ==
               CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_PRIVATE, (void *)s) == CURLE_OK;
}

enum slh_err
dl_http_open(struct slh_deliverer *d, struct slh_error *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return slh_error_set(err, SLH_EDELIVER, "curl_global_init failed");
    d->curl_ready = true;
    d->multi = curl_multi_init();
    if (d->multi == NULL)
        return slh_error_set(err, SLH_ENOMEM, "out of memory");
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->n_slots);
    for (size_t i = 0; i < d->n_ds; i++) {
        struct dest_state *ds = &d->ds[i];
        for (size_t k = 0; k < ds->n_slots; k++) {
            if (!open_slot(ds, &ds->slots[k]))
                return slh_error_set(err, SLH_EDELIVER,
                                     "destination %s: cannot set up curl",
                                     ds->dest->name);
        }
    }
    return SLH_OK;
}

void
dl_http_close(struct slh_deliverer *d)
{
    for (size_t i = 0; d->ds != NULL && i < d->n_ds; i++) {
        for (size_t k = 0; k < d->ds[i].n_slots; k++) {
            struct slot *s = &d->ds[i].slots[k];
            if (s->busy)
                dl_http_cancel(d, s);
            if (s->easy != NULL)
                curl_easy_cleanup(s->easy);
        }
    }
    if (d->multi != NULL)
        curl_multi_cleanup(d->multi);
    if (d->curl_ready)
        curl_global_cleanup();
}

/* ---- One attempt ---- */

/* The timestamp and signature are per attempt, so are the headers. */
static bool
add_headers(struct slot *s, int64_t now)
{
    const struct slh_dest *dest = s->ds->dest;
    long long ts = (long long)(now / 1000);
    char line[128];
    char sig[SLH_SIGNATURE_LEN];
    bool ok;

    ok = dl_http_header(&s->headers, "Content-Type: application/json") &&
         dl_http_header(&s->headers, "Expect:");
    snprintf(line, sizeof(line), "webhook-id: %s", s->claim.id);
    ok = ok && dl_http_header(&s->headers, line);
    snprintf(line, sizeof(line), "webhook-timestamp: %lld", ts);
    ok = ok && dl_http_header(&s->headers, line);
    if (ok && dest->signing_key != NULL) {
        ok = slh_sign_webhook(sig, dest->signing_key, dest->signing_key_len,
                              s->claim.id, ts, s->claim.body, s->claim.body_len,
                              NULL) == SLH_OK;
        snprintf(line, sizeof(line), "webhook-signature: %s", sig);
        ok = ok && dl_http_header(&s->headers, line);
    }
    for (size_t i = 0; ok && i < dest->n_headers; i++)
        ok = dl_http_header(&s->headers, dest->headers[i]);
    return ok;
}

enum slh_err
dl_http_start(struct slh_deliverer *d, struct slot *s, int64_t now)
{
    if (!add_headers(s, now))
        return SLH_ENOMEM;
    s->sink.len = 0;
    s->answer[0] = '\0';
    s->is_abort = false;
    s->curl_error[0] = '\0';
    s->started = now;
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)s->claim.body_len);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->claim.body);
    if (curl_multi_add_handle(d->multi, s->easy) != CURLM_OK)
        return SLH_ENOMEM;
    return SLH_OK;
}

void
dl_http_release(struct slot *s)
{
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    dl_claim_free(&s->claim);
    s->busy = false;
    s->ds->inflight--;
}

void
dl_http_cancel(struct slh_deliverer *d, struct slot *s)
{
    curl_multi_remove_handle(d->multi, s->easy);
    dl_http_release(s);
}

/* "HTTP 503: <the answer's first bytes>", printable ASCII only, as the
 * error text must stay one line and valid UTF-8 for status --json. */
static void
http_error(char *out, size_t size, long status, const char *answer)
{
    size_t n = (size_t)snprintf(out, size, "HTTP %ld", status);
    bool space = true;

    if (answer[0] == '\0' || n + 3 >= size)
        return;
    memcpy(out + n, ": ", 2);
    n += 2;
    for (const char *p = answer; *p != '\0' && n + 1 < size; p++) {
        char c = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
        if (c == ' ' && space)
            continue;
        space = c == ' ';
        out[n++] = c;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    if (n >= 2 && out[n - 1] == ':')
        n -= 1;
    out[n] = '\0';
}

/*
 * Why transfer rc failed: curl's text for the code, and for a TLS failure
 * its detail too ("... tlsv13 alert certificate required"), without which a
 * refused client certificate reads as a mere receive error. Other details
 * are left out: curl may quote a proxy URL, password and all, in them.
 */
static void
transfer_error(char *out, size_t size, CURLcode rc, const char *detail)
{
    bool is_tls =
        rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
        rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CIPHER ||
        rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR ||
        rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR;

    size_t n = (size_t)snprintf(out, size, "%s", curl_easy_strerror(rc));

    if (is_tls && detail[0] != '\0' && n + 2 < size)
        snprintf(out + n, size - n, ": %.*s", (int)(size - n - 3), detail);
}

/* Records what each finished transfer came to and frees its slot. */
static void
harvest(struct slh_deliverer *d)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
        struct slot *s;
        char *priv = NULL;
        /* "aborted by destination (webhook-delivery: abort): HTTP 500" */
        static const char abort_why[] =
            "aborted by destination (" SLH_ABORT_HEADER "): ";
        char error[SLH_STORE_ERROR_LEN];
        size_t skip;
        bool is_abort = false;
        long status = 0;
        curl_off_t retry_after = 0;
        int64_t now = slh_now_ms();

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        s = (struct slot *)(void *)priv;
        if (msg->data.result == CURLE_OK) {
            curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &retry_after);
            is_abort = s->is_abort;
            skip = is_abort ? sizeof(abort_why) - 1 : 0;
            memcpy(error, abort_why, skip);
            http_error(error + skip, sizeof(error) - skip, status, s->answer);
        } else {
            transfer_error(error, sizeof(error), msg->data.result,
                           s->curl_error);
        }
        curl_multi_remove_handle(d->multi, s->easy);
        if (retry_after < 0 || retry_after > INT64_MAX / 1000)
            retry_after = 0;
        dl_record(d, s->ds, &s->claim, (int)status, is_abort,
                  (int64_t)retry_after * 1000,
                  status >= 200 && status <= 299 && !is_abort ? "" : error, now,
                  (long)(now - s->started));
        dl_http_release(s);
    }
}

enum slh_err
dl_http_perform(struct slh_deliverer *d, struct slh_error *err)
{
    int running;

    if (curl_multi_perform(d->multi, &running) != CURLM_OK)
        return slh_error_set(err, SLH_EDELIVER, "curl_multi_perform failed");
    harvest(d);
    return SLH_OK;
}

void
dl_http_wait(struct slh_deliverer *d, int ms)
{
    curl_multi_poll(d->multi, NULL, 0, ms, NULL);
}

void
dl_http_wakeup(struct slh_deliverer *d)
{
    curl_multi_wakeup(d->multi);
}

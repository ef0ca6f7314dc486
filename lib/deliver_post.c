/* deliver_post.c: what `slhook send` and `slhook check` need of curl
 * (deliver.h): one POST that waits for its answer, and a URL fit to print. */
#include "deliver_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum slh_err
slh_deliver_post(const char *url, const char *content_type, const char *body,
                 size_t len, long timeout, long *status, char **answer,
                 size_t max, struct slh_error *err)
{
    struct curl_slist *headers = NULL;
    struct sink sink = {0};
    char line[256];
    CURL *easy = NULL;
    CURLcode res;
    enum slh_err rc = SLH_OK;

    *status = 0;
    if (answer != NULL)
        *answer = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return slh_error_set(err, SLH_EDELIVER, "curl_global_init failed");
    sink.cap = answer != NULL ? max : 0;
    sink.buf = malloc(sink.cap + 1);
    easy = curl_easy_init();
    snprintf(line, sizeof(line), "Content-Type: %s", content_type);
    if (sink.buf == NULL || easy == NULL || !dl_http_header(&headers, line) ||
        !dl_http_header(&headers, "Expect:")) {
        rc = slh_error_set(err, SLH_ENOMEM, "out of memory");
        goto out;
    }
    sink.buf[0] = '\0';
    if (!dl_http_options(easy, url, timeout, &sink) ||
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) !=
            CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body) != CURLE_OK) {
        rc = slh_error_set(err, SLH_EINVAL, "%s: cannot set up curl", url);
        goto out;
    }
    res = curl_easy_perform(easy);
    if (res != CURLE_OK) {
        rc = slh_error_set(err, SLH_EDELIVER, "%s: %s", url,
                           curl_easy_strerror(res));
        goto out;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
    if (answer != NULL) {
        *answer = sink.buf;
        sink.buf = NULL;
    }
out:
    free(sink.buf);
    curl_slist_free_all(headers);
    if (easy != NULL)
        curl_easy_cleanup(easy);
    curl_global_cleanup();
    return rc;
}

char *
slh_deliver_url_masked(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *user = NULL, *password = NULL, *host = NULL;
    char *port = NULL, *path = NULL, *query = NULL, *out = NULL;
    size_t size, n = 0;

    if (u == NULL)
        return NULL;
    /* A proxy's socks5:// and socks5h:// are no scheme curl fetches. */
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) !=
            CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        out = strdup("(a URL that does not parse)");
        goto out;
    }
    (void)curl_url_get(u, CURLUPART_USER, &user, 0);
    (void)curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
    (void)curl_url_get(u, CURLUPART_PORT, &port, 0);
    (void)curl_url_get(u, CURLUPART_PATH, &path, 0);
    (void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
    /* Each query item shrinks to its key and "=***", at most 4 bytes
     * more than itself (a bare item becomes "***"). */
    size = strlen(scheme) + strlen(host) + (port != NULL ? strlen(port) : 0) +
           (path != NULL ? strlen(path) : 0) +
           (query != NULL ? strlen(query) * 5 : 0) + 16;
    out = malloc(size);
    if (out == NULL)
        goto out;
    n = (size_t)snprintf(out, size, "%s://%s%s%s%s%s", scheme,
                         user != NULL || password != NULL ? "***@" : "", host,
                         port != NULL ? ":" : "", port != NULL ? port : "",
                         path != NULL ? path : "/");
    for (char *item = query, *next; item != NULL && n < size; item = next) {
        char *eq;

        next = strchr(item, '&');
        if (next != NULL)
            *next++ = '\0';
        eq = strchr(item, '=');
        n += (size_t)snprintf(out + n, size - n, "%s%.*s%s",
                              item == query ? "?" : "&",
                              eq != NULL ? (int)(eq - item) : 0, item,
                              eq != NULL ? "=***" : "***");
    }
out:
    curl_free(scheme);
    curl_free(user);
    curl_free(password);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return out;
}

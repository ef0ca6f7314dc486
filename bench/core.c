/* bench/core: the handler's CPU per request, outside any web server.
 *
 *   core [-n N] FILE...
 *
 * Runs slh_handler_head and slh_handler_body (parsing, the checks, the event
 * ids, the relay bodies: what slhook.fcgi's request threads do between
 * reading a request and handing it to the committer) over the fixture
 * bodies in turn, N times in all, and prints the mean microseconds per
 * request. The bodies are sent with the secret of the built-in config, so
 * fixtures carrying another one are answered 401 and measured as such: the
 * line says how many were answered what.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "handler.h"

#define SECRET "bench-core-secret"

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* The body with every "SecretKey":"..." value replaced by SECRET. */
static char *
with_secret(const char *body)
{
    static const char key[] = "\"SecretKey\":\"";
    size_t cap = strlen(body) + 64 * sizeof(SECRET) + 1, n = 0;
    char *out = malloc(cap);
    const char *p = body, *k;

    if (out == NULL)
        return NULL;
    while ((k = strstr(p, key)) != NULL && n + 256 < cap) {
        const char *end = strchr(k + sizeof(key) - 1, '"');
        if (end == NULL)
            break;
        memcpy(out + n, p, (size_t)(k - p) + sizeof(key) - 1);
        n += (size_t)(k - p) + sizeof(key) - 1;
        memcpy(out + n, SECRET, sizeof(SECRET) - 1);
        n += sizeof(SECRET) - 1;
        p = end;
    }
    snprintf(out + n, cap - n, "%s", p);
    return out;
}

int
main(int argc, char **argv)
{
    struct slh_config cfg;
    struct slh_error err = {0};
    long n = 200000;
    int opt, nfiles, counts[600] = {0};
    char **bodies, lengths[32];
    struct timespec t0, t1;

    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt != 'n')
            return 2;
        n = strtol(optarg, NULL, 10);
    }
    nfiles = argc - optind;
    if (nfiles <= 0 || n <= 0) {
        fprintf(stderr, "usage: core [-n N] FILE...\n");
        return 2;
    }
    if (slh_config_parse(&cfg,
                         "[receiver]\nsecret_key = " SECRET "\n"
                         "spool = /nonexistent\n",
                         "bench-core", &err) != SLH_OK) {
        fprintf(stderr, "core: %s\n", err.text);
        return 1;
    }
    bodies = calloc((size_t)nfiles, sizeof(*bodies));
    for (int i = 0; i < nfiles; i++) {
        size_t len;
        char *raw = slurp(argv[optind + i], &len);
        if (raw == NULL || (bodies[i] = with_secret(raw)) == NULL) {
            perror(argv[optind + i]);
            return 1;
        }
        free(raw);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        const char *body = bodies[i % nfiles];
        struct slh_request req = {.method = "POST",
                                  .content_type = "application/json",
                                  .content_length = lengths,
                                  .remote_addr = "127.0.0.1",
                                  .body = body,
                                  .body_len = strlen(body)};
        struct slh_response resp;
        struct slh_batch batch;
        size_t len;

        snprintf(lengths, sizeof(lengths), "%zu", req.body_len);
        memset(&resp, 0, sizeof(resp));
        if (!slh_handler_head(&cfg, &req, &len, &resp) &&
            !slh_handler_body(&cfg, &req, &batch, &resp)) {
            resp.status = 200;
            slh_batch_free(&batch);
        }
        counts[resp.status < 600 && resp.status > 0 ? resp.status : 0]++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("core: %.2f us per request over %ld requests of %d bodies;",
           ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
            (double)(t1.tv_nsec - t0.tv_nsec)) /
               1e3 / (double)n,
           n, nfiles);
    for (int s = 0; s < 600; s++)
        if (counts[s] > 0)
            printf(" %d: %d", s, counts[s]);
    printf("\n");
    for (int i = 0; i < nfiles; i++)
        free(bodies[i]);
    free(bodies);
    slh_config_free(&cfg);
    return 0;
}

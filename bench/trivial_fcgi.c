/* trivial_fcgi: the benchmark's FastCGI baseline, the cheapest responder
 * libfcgi allows: read the body, answer 200. What slhook.fcgi is compared
 * with, behind the same web server.
 *
 *   trivial_fcgi [--listen ADDR] [--threads N]
 *
 * ADDR is HOST:PORT or /path.sock (default: the socket on fd 0). N request
 * threads (default 1) each accept and answer, as slhook.fcgi's do.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#define MAX_THREADS 256

static int listen_fd = FCGI_LISTENSOCK_FILENO;

static void *
worker(void *arg)
{
    static const char ok[] = "Status: 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 3\r\n\r\nOK\n";
    FCGX_Request fr;
    char buf[16384];

    (void)arg;
    FCGX_InitRequest(&fr, listen_fd, 0);
    while (FCGX_Accept_r(&fr) >= 0) {
        while (FCGX_GetStr(buf, sizeof(buf), fr.in) > 0)
            ;
        FCGX_PutStr(ok, sizeof(ok) - 1, fr.out);
        FCGX_Finish_r(&fr);
    }
    FCGX_Free(&fr, 1);
    return NULL;
}

int
main(int argc, char **argv)
{
    pthread_t threads[MAX_THREADS];
    const char *addr = NULL;
    long n = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            addr = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            n = strtol(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: trivial_fcgi [--listen ADDR] "
                            "[--threads N]\n");
            return 2;
        }
    }
    if (n < 1 || n > MAX_THREADS || FCGX_Init() != 0) {
        fprintf(stderr, "trivial_fcgi: bad --threads or no libfcgi\n");
        return 2;
    }
    if (addr != NULL && (listen_fd = FCGX_OpenSocket(addr, 1024)) < 0) {
        fprintf(stderr, "trivial_fcgi: cannot listen on %s\n", addr);
        return 1;
    }
    for (long i = 1; i < n; i++)
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0)
            return 1;
    worker(NULL);
    return 0;
}

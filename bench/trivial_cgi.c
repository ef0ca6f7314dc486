/* trivial_cgi: the benchmark's CGI baseline: read CONTENT_LENGTH bytes of
 * body, answer 200. Links nothing but libc, so its cost is the web server's
 * fork and exec, the floor under any CGI program. */
#include <stdio.h>
#include <stdlib.h>

int
main(void)
{
    const char *length = getenv("CONTENT_LENGTH");
    long left = length != NULL ? strtol(length, NULL, 10) : 0;
    char buf[16384];

    while (left > 0) {
        size_t want = left < (long)sizeof(buf) ? (size_t)left : sizeof(buf);
        size_t got = fread(buf, 1, want, stdin);
        if (got == 0)
            break;
        left -= (long)got;
    }
    fputs("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nOK\n", stdout);
    return 0;
}

/* check.h: the test programs' tiny harness.
 *
 * CHECK(cond, fmt, ...) counts a pass or a failure (printing the failure
 * with its place); check_summary() prints "N passed, N failed" and gives the
 * exit status. Fixtures are found under SLH_FIXTURES (tests/fixtures by
 * default). */
#ifndef SLH_TEST_CHECK_H
#define SLH_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed;
static int check_failed;

__attribute__((format(printf, 4, 5))) static int
check_at(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stdout, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

#define CHECK(cond, ...) check_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static int
check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed == 0 && check_passed > 0 ? 0 : 1;
}

/* Reads a whole file into a new NUL-terminated buffer (free()); *len gets
 * its length. NULL when unreadable. */
__attribute__((unused)) static char *
check_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, got;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (cap - n < 4096) {
            char *p = realloc(buf, cap + 65536);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
            cap += 65536;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* The fixture directory: $SLH_FIXTURES or tests/fixtures. */
__attribute__((unused)) static const char *
check_fixtures(void)
{
    const char *d = getenv("SLH_FIXTURES");
    return d != NULL && *d != '\0' ? d : "tests/fixtures";
}

#endif

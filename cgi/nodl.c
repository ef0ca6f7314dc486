/* nodl.c: SQLite's extension loader, refused in the static slhook.cgi.
 *
 * Debian's static libsqlite3 calls dlopen() to load extensions, and glibc
 * warns at link time that a static program's dlopen() needs the shared
 * libraries of the very glibc it was linked with at run time. slhook never
 * loads extensions (SQLite leaves them off unless enabled), and a static
 * program should not load shared objects anyway: the static link
 * (-Wl,--wrap=dlopen, Makefile) sends SQLite's calls here, where they
 * fail cleanly and the warning has nothing to warn about. glibc's own
 * dlopen (for iconv and NSS) is untouched.
 */
#include <stddef.h>

void *__wrap_dlopen(const char *file, int mode);

void *
__wrap_dlopen(const char *file, int mode)
{
    (void)file;
    (void)mode;
    return NULL;
}

/* store_pg_none.c: the PostgreSQL backend of a program built without
 * libpq: slhook.cgi, which is linked fully static, and Debian ships no
 * static Kerberos or OpenLDAP library for a static libpq to need (the
 * Makefile). It claims the spools store_pg.c would, so that a PostgreSQL
 * spool is never taken for a directory, and refuses to open them: the
 * handler's 503 with Retry-After, and its log line says why. slhook.cgi
 * comes here only when slhook-pg.cgi, which it runs in its place for such
 * a spool (cgi/cgi.h), could not be run. */
#include <stdlib.h>
#include <string.h>

#include "store_backend.h"

static bool
is_mine(const char *spool)
{
    return strncmp(spool, "postgresql://", 13) == 0 ||
           strncmp(spool, "postgres://", 11) == 0;
}

/* The URI is not repeated: it may hold a password, and nothing here masks
 * it. */
static enum slh_err
store_open(struct slh_store **out, const char *spool, enum slh_store_create how,
           struct slh_error *err)
{
    (void)spool;
    (void)how;
    *out = NULL;
    return slh_error_set(err, SLH_ESTORE,
                         "spool is a PostgreSQL URI: this slhook.cgi was built "
                         "without PostgreSQL, and slhook-pg.cgi, which "
                         "receives for it, could not be run (said above); "
                         "install it beside slhook.cgi");
}

/* Never called: no handle is ever made. */
static void
store_close(struct slh_store *st)
{
    free(st);
}

const struct slh_store_ops slh_store_pg_ops = {
    .name = "postgresql (not built in)",
    .is_mine = is_mine,
    .open = store_open,
    .close = store_close,
};

/* web_health.c: GET .../health, for load balancers and probes: 200 when
 * the config loaded (a front end answers 503 before this when it did not)
 * and the spool can take a write; else 503 with the reason. It shows
 * nothing else: it is open to all. */
#include "web_int.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

/* No spool yet: healthy when the first request can make it, that is when
 * its directory, or the directory to make it in, is writable. */
static void
no_spool_yet(const char *spool, struct slh_web_answer *ans)
{
    char *copy = strdup(spool), why[SLH_ERROR_TEXT];
    const char *dir = spool;

    if (copy == NULL) {
        slh_web_answer_error(ans, 503, "out of memory; try again later");
        return;
    }
    if (access(spool, F_OK) != 0)
        dir = dirname(copy);
    if (access(dir, W_OK | X_OK) == 0) {
        slh_web_answer_text(ans, 200, WEB_TEXT, "ok (no spool yet)\n");
    } else {
        snprintf(why, sizeof(why),
                 "spool %s: none yet, and %s is not "
                 "writable: %s",
                 spool, dir, strerror(errno));
        slh_web_answer_error(ans, 503, why);
    }
    free(copy);
}

void
web_health(const struct slh_config *cfg, struct slh_web_answer *ans)
{
    struct slh_error err = {0};
    struct slh_store *sp = NULL;
    enum slh_err rc;

    rc = slh_store_open(&sp, cfg->spool, SLH_STORE_EXISTING, &err);
    /* A directory to make the spool in is looked at; a store on a server
     * (a PostgreSQL URI, which may hold a password, never to be shown
     * here) has none: its backend's masked reason is the answer. */
    if (rc == SLH_ENOTFOUND && slh_store_is_local(cfg->spool)) {
        no_spool_yet(cfg->spool, ans);
        return;
    }
    if (rc == SLH_OK)
        rc = slh_store_health(sp, &err);
    slh_store_close(sp);
    if (rc != SLH_OK)
        slh_web_answer_error(ans, 503, err.text);
    else
        slh_web_answer_text(ans, 200, WEB_TEXT, "ok\n");
}

bool
web_open_store(const struct slh_config *cfg, struct slh_store **sp,
               struct slh_web_answer *ans)
{
    struct slh_error err = {0};

    switch (slh_store_open(sp, cfg->spool, SLH_STORE_EXISTING, &err)) {
    case SLH_OK:
        return true;
    case SLH_ENOTFOUND:
        *sp = NULL;
        return true;
    default:
        slh_web_answer_error(ans, 503, err.text);
        return false;
    }
}

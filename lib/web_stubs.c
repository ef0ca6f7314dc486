/* web_stubs.c: stand-ins until metrics.c and page.c land (removed then). */
#include "metrics.h"
#include "page.h"

#include <string.h>

enum slh_err
slh_metrics_write(FILE *out, struct slh_store *sp, const struct slh_config *cfg,
                  bool has_process, int64_t now_ms, struct slh_error *err)
{
    (void)sp;
    (void)cfg;
    (void)has_process;
    (void)now_ms;
    (void)err;
    fputs("# HELP slhook_up 1\n# TYPE slhook_up gauge\nslhook_up 1\n", out);
    return SLH_OK;
}

bool
slh_page_static(const char *path, bool gzip_ok, struct slh_web_answer *ans)
{
    (void)gzip_ok;
    if (strcmp(path, "/") != 0)
        return false;
    slh_web_answer_static(ans, 200, "text/html; charset=utf-8",
                          "<!DOCTYPE html><title>slhook</title>\n", 37);
    return true;
}

bool
slh_page_api(const struct slh_config *cfg, struct slh_store *sp,
             const struct slh_web_request *req, const char *path,
             const char *csrf, struct slh_web_answer *ans)
{
    (void)cfg;
    (void)sp;
    (void)req;
    if (strcmp(path, "/api/session") != 0)
        return false;
    FILE *f = slh_web_answer_open(ans);
    if (f == NULL)
        return true;
    fprintf(f, "{\"csrf\":\"%s\"}\n", csrf);
    slh_web_answer_close(ans, f, 200, "application/json");
    return true;
}

bool
slh_page_action(const struct slh_config *cfg, struct slh_store *sp,
                const struct slh_web_request *req, const char *path,
                struct slh_web_answer *ans)
{
    (void)cfg;
    (void)sp;
    (void)req;
    (void)path;
    (void)ans;
    return false;
}

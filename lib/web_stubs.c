/* web_stubs.c: stand-ins until metrics.c lands (removed then). */
#include "metrics.h"

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

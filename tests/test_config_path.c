/* test_config_path.c: which config file the front ends load
 * (front/config_path.h): -c, else $SLHOOK_CONFIG, else the default. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "config_path.h"

static void
expect(const char *option, const char *env, const char *want)
{
    const char *got;

    if (env != NULL)
        setenv("SLHOOK_CONFIG", env, 1);
    else
        unsetenv("SLHOOK_CONFIG");
    got = slh_config_path(option);
    CHECK(strcmp(got, want) == 0, "-c %s, SLHOOK_CONFIG=%s: '%s', want '%s'",
          option != NULL ? option : "(none)", env != NULL ? env : "(unset)",
          got, want);
}

int
main(void)
{
    expect(NULL, NULL, SLH_CONFIG_DEFAULT_PATH);
    expect(NULL, "", SLH_CONFIG_DEFAULT_PATH);
    expect(NULL, "/env.conf", "/env.conf");
    expect("/opt.conf", NULL, "/opt.conf");
    expect("/opt.conf", "/env.conf", "/opt.conf");
    /* An empty -c is no file: the default, not the environment's. */
    expect("", "/env.conf", SLH_CONFIG_DEFAULT_PATH);
    expect("", NULL, SLH_CONFIG_DEFAULT_PATH);
    expect("relative.conf", "/env.conf", "relative.conf");
    return check_summary();
}

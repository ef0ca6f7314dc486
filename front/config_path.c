#include "config_path.h"

#include <stdlib.h>

#include "config.h"

const char *
slh_config_path(const char *option)
{
    const char *path = option != NULL ? option : getenv("SLHOOK_CONFIG");

    return path != NULL && *path != '\0' ? path : SLH_CONFIG_DEFAULT_PATH;
}

/* config_path.h: which config file a front end loads.
 *
 * Every program takes the same three places, in this order: the path its
 * -c option gave, else $SLHOOK_CONFIG, else SLH_CONFIG_DEFAULT_PATH. It
 * reads the environment, which lib/ does not, so it lives beside the front
 * ends, which share it.
 */
#ifndef SLH_FRONT_CONFIG_PATH_H
#define SLH_FRONT_CONFIG_PATH_H

/*
 * The config file to load. option is the -c FILE given, or NULL when
 * there was none: a given one wins over $SLHOOK_CONFIG. An empty path (from
 * -c or the environment) counts as none: SLH_CONFIG_DEFAULT_PATH. The
 * result is option, the environment's string, or the literal (all
 * borrowed; the environment's only until it is changed).
 */
const char *slh_config_path(const char *option);

#endif

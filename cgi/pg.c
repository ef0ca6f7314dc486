/* pg.c: slhook-pg.cgi's own (cgi.h). It opens a PostgreSQL spool itself,
 * and starts no deliverer: the kick lock that tells whether one runs is a
 * file in a spool directory (kick.h), which a database on a server has
 * not; `slhook deliver` runs as a service instead (slhook-deliver.service).
 */
#include "cgi.h"

void
cgi_handoff(const struct slh_config *cfg, char **argv)
{
    (void)cfg;
    (void)argv;
}

void
cgi_kick(const struct slh_config *cfg)
{
    (void)cfg;
}

/* config_admin.c: the [admin] section (config.h's struct slh_admin): who
 * may see the operator's page and metrics, and whether it may act. */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* A token shorter than this is one a client could guess by trying. */
#define MIN_TOKEN_LEN 16

/* Loopback, IPv4 and IPv6: the default allow_from. */
static const char default_allow[] = "127.0.0.0/8 ::1/128";

bool
config_begin_admin(struct parser *p)
{
    if (p->cfg.admin.is_set)
        return fail(p, "a second [admin] section");
    p->cfg.admin.is_set = true;
    p->section = SEC_ADMIN;
    return true;
}

int
config_add_admin_allow(struct parser *p, const char *value)
{
    struct slh_admin *a = &p->cfg.admin;

    return config_add_blocks(p, &a->allow, &a->n_allow, value);
}

int
config_read_token_file(struct parser *p, const char *value)
{
    struct slh_admin *a = &p->cfg.admin;

    if (!config_read_secret_file(p, "token_file", "the token in token_file",
                                 value, &a->token))
        return 0;
    if (strlen(a->token) < MIN_TOKEN_LEN || strpbrk(a->token, " \t") != NULL)
        return fail(p,
                    "the token in token_file '%s' must be at least %d "
                    "characters, with no blank (openssl rand -hex 32 makes "
                    "one)",
                    value, MIN_TOKEN_LEN);
    return 1;
}

int
config_set_actions(struct parser *p, const char *value)
{
    if (strcmp(value, "yes") == 0 || strcmp(value, "no") == 0) {
        p->cfg.admin.has_actions = strcmp(value, "yes") == 0;
        return 1;
    }
    return fail(p, "bad actions '%.40s' (yes or no)", value);
}

bool
config_finish_admin(struct parser *p)
{
    struct slh_admin *a = &p->cfg.admin;
    int saved = p->line;
    int ok;

    if (!a->is_set || a->n_allow > 0)
        return true;
    ok = config_add_blocks(p, &a->allow, &a->n_allow, default_allow);
    p->line = saved;
    return ok != 0;
}

void
config_free_admin(struct slh_admin *admin)
{
    free(admin->allow);
    if (admin->token != NULL)
        OPENSSL_clear_free(admin->token, strlen(admin->token));
    memset(admin, 0, sizeof(*admin));
}

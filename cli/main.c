/* slhook: the operator's tool. Loads the config, then runs one command. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "log.h"
#include "sample.h"
#include "spool.h"

static void
usage(FILE *out)
{
    fprintf(
        out,
        "usage: slhook [-c FILE] COMMAND [ARGS]\n"
        "\n"
        "Commands:\n"
        "  check              validate the config and the spool\n"
        "  deliver [--once]   relay due events to destinations, retrying;\n"
        "                     --once returns when nothing is due\n"
        "  status [--json|--prometheus]\n"
        "                     per destination: pending, retrying, dead,\n"
        "                     delivered, oldest pending, last error\n"
        "  retry DEST         put DEST's dead letters back in the queue\n"
        "  sample TYPE        print a sample SocketLabs body of TYPE\n"
        "                     carrying the configured secret\n"
        "  send URL [TYPE|FILE]\n"
        "                     post a sample (default Delivered) or FILE to\n"
        "                     URL and print the answer\n"
        "\n"
        "Options:\n"
        "  -c FILE            config file (default: $SLHOOK_CONFIG, else\n"
        "                     %s)\n"
        "  -h, --help         this help\n"
        "  -V, --version      the version\n"
        "\n"
        "Sample types:",
        SLH_CONFIG_DEFAULT_PATH);
    for (size_t i = 0; slh_sample_types[i] != NULL; i++)
        fprintf(out, " %s", slh_sample_types[i]);
    fputc('\n', out);
}

/* What the user the tool runs as can do with the spool directory. */
static int
check_spool(const char *dir)
{
    struct stat st;
    char parent[4096];
    char *slash;

    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            printf("spool %s: not a directory\n", dir);
            return 1;
        }
        if (access(dir, W_OK | X_OK) != 0) {
            printf("spool %s: not writable by uid %ld: %s\n", dir,
                   (long)geteuid(), strerror(errno));
            return 1;
        }
        printf("spool %s: writable (owner uid %ld, mode %04o)\n", dir,
               (long)st.st_uid, (unsigned)(st.st_mode & 07777));
        /* Root may write anywhere: what counts is the web server's user. */
        if (geteuid() == 0)
            printf("  checked as root: check again as the web server's user "
                   "(e.g. runuser -u www-data -- slhook check)\n");
        return 0;
    }
    snprintf(parent, sizeof(parent), "%s", dir);
    slash = strrchr(parent, '/');
    if (slash == parent)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else
        strcpy(parent, ".");
    if (access(parent, W_OK | X_OK) != 0) {
        printf("spool %s: missing, and %s is not writable by uid %ld\n", dir,
               parent, (long)geteuid());
        return 1;
    }
    printf("spool %s: will be created on first use\n", dir);
    return 0;
}

static int
cmd_check(const struct slh_config *cfg)
{
    printf("%s: ok: %zu secret key(s), %zu destination(s)\n", cfg->path,
           cfg->n_secret_keys, cfg->n_dests);
    for (size_t i = 0; i < cfg->n_dests; i++) {
        const struct slh_dest *d = &cfg->dests[i];
        printf("  destination %s: %s%s\n", d->name,
               d->url != NULL ? d->url : d->file,
               d->signing_key != NULL ? " (signed)" : "");
    }
    return check_spool(cfg->spool);
}

static int
cmd_sample(int argc, char **argv, const struct slh_config *cfg)
{
    char *body;

    if (argc != 2) {
        fprintf(stderr, "usage: slhook sample TYPE\n");
        return 2;
    }
    body = slh_sample_make(argv[1], cfg->secret_keys[0],
                           cfg->n_server_ids > 0 ? cfg->server_ids[0] : 40211,
                           (long long)time(NULL));
    if (body == NULL) {
        fprintf(stderr, "slhook: unknown sample type '%s' (try --help)\n",
                argv[1]);
        return 2;
    }
    puts(body);
    free(body);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *path = getenv("SLHOOK_CONFIG");
    struct slh_config cfg = {0};
    struct slh_error err = {0};
    const char *cmd;
    int i = 1, rc;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-V") == 0 ||
                   strcmp(argv[i], "--version") == 0) {
            printf("slhook %s\n", SLH_VERSION);
            return 0;
        } else {
            fprintf(stderr, "slhook: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = argv[i];
    if (path == NULL || *path == '\0')
        path = SLH_CONFIG_DEFAULT_PATH;
    if (slh_config_load(&cfg, path, &err) != SLH_OK) {
        slh_log_early("slhook", err.text);
        return 1;
    }
    argc -= i;
    argv += i;
    if (strcmp(cmd, "check") == 0) {
        rc = cmd_check(&cfg);
    } else if (strcmp(cmd, "sample") == 0) {
        rc = cmd_sample(argc, argv, &cfg);
    } else if (strcmp(cmd, "deliver") == 0) {
        rc = cmd_deliver(argc, argv, &cfg);
    } else if (strcmp(cmd, "status") == 0) {
        rc = cmd_status(argc, argv, &cfg);
    } else if (strcmp(cmd, "retry") == 0) {
        rc = cmd_retry(argc, argv, &cfg);
    } else if (strcmp(cmd, "send") == 0) {
        rc = cmd_send(argc, argv, &cfg);
    } else {
        fprintf(stderr, "slhook: unknown command '%s' (try --help)\n", cmd);
        rc = 2;
    }
    slh_config_free(&cfg);
    return rc;
}

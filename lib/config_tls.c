/* config_tls.c: a [destination]'s TLS and proxy keys (ca_file, client_cert,
 * client_key, proxy), and the checks that tie them together once the whole
 * file is read. */
#include "config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Sets *slot to value as a path (config_path()) after checking that it names a
 * regular file this process can open for reading: curl would otherwise only
 * say so at the first attempt, in a deliverer nobody watches. The file's
 * contents are not read here: the key is a secret, and the CGI loads the
 * config on every request. O_NONBLOCK: a FIFO named by mistake must not
 * hang the load; it is then refused as no regular file.
 */
static int
set_file(struct parser *p, const char *key, const char *value, char **slot)
{
    struct stat st;
    char *path = config_path(p, value);
    int fd, e = 0;

    if (path == NULL)
        return config_fail_nomem(p);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &st) != 0)
        e = errno;
    else if (!S_ISREG(st.st_mode))
        e = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    if (fd >= 0)
        close(fd);
    if (e != 0) {
        free(path);
        if (e == EINVAL)
            return fail(p, "%s '%s' is not a regular file", key, value);
        return fail(p, "cannot read %s '%s': %s", key, value, strerror(e));
    }
    *slot = path;
    return 1;
}

int
config_set_ca_file(struct parser *p, const char *value)
{
    return set_file(p, "ca_file", value, &config_cur_dest(p)->ca_file);
}

int
config_set_client_cert(struct parser *p, const char *value)
{
    return set_file(p, "client_cert", value, &config_cur_dest(p)->client_cert);
}

int
config_set_client_key(struct parser *p, const char *value)
{
    return set_file(p, "client_key", value, &config_cur_dest(p)->client_key);
}

/* The length of the scheme prefix ("socks5h://") value starts with, 0 for
 * none the deliverer can use. */
static size_t
proxy_scheme_len(const char *value)
{
    static const char *const schemes[] = {"http://", "https://", "socks5://",
                                          "socks5h://"};

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i]);
        if (strncasecmp(value, schemes[i], n) == 0)
            return n;
    }
    return 0;
}

/* A proxy URL may carry a password, so messages never repeat it. */
int
config_set_proxy(struct parser *p, const char *value)
{
    struct slh_dest *d = config_cur_dest(p);
    size_t skip = proxy_scheme_len(value), end;
    const char *host;

    if (skip == 0)
        return fail(p, "proxy is not an http://, https://, socks5:// or "
                       "socks5h:// URL");
    for (const unsigned char *u = (const unsigned char *)value; *u != '\0';
         u++) {
        if (*u <= ' ' || *u == 0x7f)
            return fail(p, "proxy contains spaces or control characters");
    }
    /* The host follows the last '@' of the authority, if any. */
    end = skip + strcspn(value + skip, "/?#");
    host = value + skip;
    for (const char *at = host; at < value + end; at++) {
        if (*at == '@')
            host = at + 1;
    }
    if (host == value + end || *host == ':')
        return fail(p, "proxy has no host");
    d->proxy = strdup(value);
    return d->proxy != NULL ? 1 : config_fail_nomem(p);
}

bool
config_check_tls(struct parser *p, const struct slh_dest *d)
{
    const char *key = d->ca_file       ? "ca_file"
                      : d->client_cert ? "client_cert"
                      : d->client_key  ? "client_key"
                      : d->proxy       ? "proxy"
                                       : NULL;

    if (d->file != NULL && key != NULL)
        return config_fail_at(p, d->line,
                              "[destination %s] writes a file: %s is for url "
                              "destinations",
                              d->name, key);
    if ((d->client_cert == NULL) != (d->client_key == NULL))
        return config_fail_at(p, d->line,
                              "[destination %s] has %s but no %s: mutual TLS "
                              "needs both",
                              d->name,
                              d->client_cert ? "client_cert" : "client_key",
                              d->client_cert ? "client_key" : "client_cert");
    return true;
}

void
config_free_tls(struct slh_dest *d)
{
    free(d->ca_file);
    free(d->client_cert);
    free(d->client_key);
    free(d->proxy);
}

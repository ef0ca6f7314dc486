/* libFuzzer target: the configuration parser (lib/config*.c, over inih).
 *
 * The input is the config text. secret_key_file makes the parser read a
 * file, and ca_file, client_cert and client_key open one: to keep the
 * fuzzer from reading /dev or /proc (or blocking on a FIFO), such a line
 * holding a '/' skips the input, and the
 * parser runs in a private directory of a few prepared key files, which
 * the relative names reach (libFuzzer itself stays in the directory it was
 * started in).
 *
 * Checks the contract: a failure leaves the config zeroed with a reason
 * that never quotes a key; a success has at least one sane key and
 * destinations with exactly one of url and file; parsing is repeatable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

static int home_fd = -1, keys_fd = -1; /* where libFuzzer runs; the keys */
static char keys_dir[] = "/tmp/slhook-fuzz-config-XXXXXX";
static const char *const key_files[] = {"key", "empty", "blank",
                                        "nul", "ctl",   "long"};

/* At exit: the key directory goes (a crash leaves it, to replay with). */
static void
remove_keys(void)
{
    for (size_t i = 0; i < sizeof(key_files) / sizeof(key_files[0]); i++)
        (void)unlinkat(keys_fd, key_files[i], 0);
    (void)unlinkat(keys_fd, "dir", AT_REMOVEDIR);
    (void)rmdir(keys_dir);
}

static void
put_file(const char *name, const char *text, size_t len)
{
    FILE *f = fopen(name, "wb");

    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        perror(name);
        abort();
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char longkey[300];

    (void)argc;
    (void)argv;
    home_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (home_fd < 0 || mkdtemp(keys_dir) == NULL || chdir(keys_dir) != 0) {
        perror("fuzz_config: private directory");
        abort();
    }
    keys_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    memset(longkey, 'k', sizeof(longkey));
    put_file("key", FUZZ_SECRET "\n", strlen(FUZZ_SECRET) + 1);
    put_file("empty", "", 0);
    put_file("blank", " \n\t\n", 4);
    put_file("nul", "ab\0cd\n", 6);
    put_file("ctl", "ab\001cd\n", 6);
    put_file("long", longkey, sizeof(longkey));
    if (keys_fd < 0 || mkdir("dir", 0700) != 0 || fchdir(home_fd) != 0) {
        perror("fuzz_config: key files");
        abort();
    }
    atexit(remove_keys);
    return 0;
}

/* A line of a key that opens a file naming a path outside the private
 * directory. */
static bool
reads_outside(const char *text)
{
    static const char *const names[] = {"secret_key_file", "ca_file",
                                        "client_cert", "client_key"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *p = text;

        while ((p = strstr(p, names[i])) != NULL) {
            const char *eol = strchr(p, '\n');
            size_t n = eol != NULL ? (size_t)(eol - p) : strlen(p);

            if (memchr(p, '/', n) != NULL || memchr(p, '\\', n) != NULL)
                return true;
            p += n;
        }
    }
    return false;
}

/* A line that sets a key, "secret_key = ..." or "validation_key: ...". */
static bool
is_key_line(const char *line, size_t n)
{
    static const char *const names[] = {"secret_key", "validation_key"};

    while (n > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    for (size_t i = 0; i < 2; i++) {
        size_t k = strlen(names[i]);
        if (n <= k || memcmp(line, names[i], k) != 0)
            continue;
        /* Known finding: "secret_key KEY" with a later ':' or '=' is an
         * unknown key whose message quotes the name, key and all.
         * SLH_FUZZ_KNOWN=config-names counts it as exposed. */
        if (fuzz_known("config-names"))
            while (k < n && (line[k] == ' ' || line[k] == '\t'))
                k++;
        if (k < n && strchr(" \t=:", line[k]) != NULL)
            return true;
    }
    return false;
}

/* The secret appears on a line other than a key's own: the error text may
 * then rightly quote it (an unknown key, a bad url...). */
static bool
config_exposes_secret(const char *text)
{
    const char *line = text;

    while (*line != '\0') {
        const char *eol = strchr(line, '\n');
        size_t n = eol != NULL ? (size_t)(eol - line) : strlen(line);

        if (!is_key_line(line, n) && fuzz_has_piece(line, n))
            return true;
        line += n + (eol != NULL);
    }
    return false;
}

static bool
is_zero(const void *p, size_t n)
{
    const unsigned char *u = p;

    for (size_t i = 0; i < n; i++)
        if (u[i] != 0)
            return false;
    return true;
}

static void
check_config(const struct slh_config *cfg)
{
    static const char *const types[] = {"Failed",   "Delivered", "tracking",
                                        "Queued",   "Complaint", "Odd",
                                        "Deferred", "Validation"};

    FUZZ_ASSERT(cfg->n_secret_keys >= 1, "no secret key");
    for (size_t i = 0; i < cfg->n_secret_keys; i++) {
        const char *k = cfg->secret_keys[i];
        FUZZ_ASSERT(k != NULL && k[0] != '\0' && strlen(k) <= SLH_MAX_KEY_LEN,
                    "secret key %zu empty or too long", i);
        for (const char *c = k; *c != '\0'; c++)
            FUZZ_ASSERT((unsigned char)*c >= 0x20 && *c != 0x7f,
                        "control character in secret key %zu", i);
    }
    FUZZ_ASSERT(cfg->spool != NULL && cfg->path != NULL &&
                    strcmp(cfg->path, "fuzz.conf") == 0,
                "spool or path missing");
    for (size_t i = 0; i < cfg->n_allow; i++)
        FUZZ_ASSERT(cfg->allow[i].prefix <= 128, "prefix %u",
                    cfg->allow[i].prefix);
    for (size_t i = 0; i < cfg->n_dests; i++) {
        const struct slh_dest *d = &cfg->dests[i];

        FUZZ_ASSERT((d->url == NULL) != (d->file == NULL),
                    "destination %s: url and file", d->name);
        FUZZ_ASSERT(slh_config_dest(cfg, d->name) == d,
                    "destination %s not found by name", d->name);
        FUZZ_ASSERT(d->timeout > 0 && d->max_age > 0,
                    "destination %s: timeout %ld max_age %lld", d->name,
                    d->timeout, (long long)d->max_age);
        FUZZ_ASSERT((d->signing_key == NULL) == (d->signing_key_len == 0),
                    "destination %s: signing key", d->name);
        FUZZ_ASSERT((d->client_cert == NULL) == (d->client_key == NULL),
                    "destination %s: client_cert without client_key", d->name);
        FUZZ_ASSERT(d->url != NULL ||
                        (d->ca_file == NULL && d->client_cert == NULL &&
                         d->proxy == NULL),
                    "destination %s: TLS or proxy on a file", d->name);
        for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
            for (int kind = -1; kind <= 2; kind++)
                (void)slh_dest_wants(d, types[t], kind);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct slh_config cfg, again;
    struct slh_error err = {0}, err2 = {0};
    enum slh_err rc, rc2;
    char *text = malloc(size + 1);

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (reads_outside(text))
        goto out;

    FUZZ_ASSERT(fchdir(keys_fd) == 0, "cannot enter the key directory");
    rc = slh_config_parse(&cfg, text, "fuzz.conf", &err);
    if (rc != SLH_OK) {
        FUZZ_ASSERT(is_zero(&cfg, sizeof(cfg)), "failed parse left a config");
        FUZZ_ASSERT(err.code == rc && err.text[0] != '\0',
                    "failure %d without a reason", (int)rc);
        FUZZ_ASSERT(rc == SLH_ECONFIG || rc == SLH_ENOMEM,
                    "unexpected code %d: %s", (int)rc, err.text);
        FUZZ_ASSERT(strncmp(err.text, "fuzz.conf:", 10) == 0 ||
                        rc == SLH_ENOMEM,
                    "reason does not name the file: %s", err.text);
        FUZZ_ASSERT(config_exposes_secret(text) ||
                        !fuzz_has_piece(err.text, strlen(err.text)),
                    "reason quotes the secret key: %s", err.text);
    } else {
        check_config(&cfg);
    }

    rc2 = slh_config_parse(&again, text, "fuzz.conf", &err2);
    FUZZ_ASSERT(rc2 == rc && strcmp(err.text, err2.text) == 0,
                "not repeatable: %d '%s' then %d '%s'", (int)rc, err.text,
                (int)rc2, err2.text);
    FUZZ_ASSERT(fchdir(home_fd) == 0, "cannot leave the key directory");
    slh_config_free(&again);
    slh_config_free(&cfg);
    FUZZ_ASSERT(is_zero(&cfg, sizeof(cfg)), "free left something");
out:
    free(text);
    return 0;
}

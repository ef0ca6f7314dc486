/* kick.c: starting a deliverer from an image in memory, and hearing back.
 *
 * The "tool" here is /bin/sh, so that the config path slh_kick_start()
 * passes after -c is a script saying what a deliverer would: ready, an
 * error, nothing at all. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "kick.h"

static char dir[] = "/tmp/slh-test-kick.XXXXXX";
static char *sh;
static size_t sh_len;

/* Starts /bin/sh as the tool with script as its -c; returns the error
 * text, "" for SLH_OK. */
static const char *
start(const char *script, int wait_ms)
{
    static struct slh_error err;

    slh_error_clear(&err);
    if (slh_kick_start(script, dir, sh, sh_len, wait_ms, &err) == SLH_OK)
        return "";
    CHECK(err.code == SLH_EDELIVER, "code %d", err.code);
    return err.text;
}

/* Writes text as the whole file at path. */
static void
spill(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    CHECK(f != NULL && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
}

static bool
noted(const char *want)
{
    char text[SLH_ERROR_TEXT];
    time_t when = 0;

    return slh_kick_failure(dir, &when, text, sizeof(text)) &&
           strcmp(text, want) == 0 && when > time(NULL) - 60 &&
           when <= time(NULL);
}

int
main(void)
{
    struct slh_error err = {0};
    char note[256], buf[64];
    const char *why;
    int p[2], fd;
    ssize_t n;

    sh = check_slurp("/bin/sh", &sh_len);
    if (!CHECK(sh != NULL && mkdtemp(dir) != NULL, "setup"))
        return check_summary();
    snprintf(note, sizeof(note), "%s/%s", dir, SLH_KICK_NOTE);

    CHECK(!slh_kick_failure(dir, &(time_t){0}, buf, sizeof(buf)),
          "no note at first");

    why = start("echo ready >&2", 10000);
    CHECK(strcmp(why, "") == 0, "ready: '%s'", why);
    CHECK(access(note, F_OK) != 0, "ready: no note");

    why = start("echo 'slhook: deliver: the spool is gone' >&2; exit 1", 10000);
    CHECK(strcmp(why, "deliver: the spool is gone") == 0, "error: '%s'", why);
    CHECK(noted("deliver: the spool is gone"), "error: noted");

    why = start("exit 0", 10000);
    CHECK(strcmp(why, "the deliverer exited without a word") == 0,
          "silent exit: '%s'", why);
    CHECK(noted("the deliverer exited without a word"), "silent exit: noted");

    why = start("echo starting >&2; sleep 3", 300);
    CHECK(strcmp(why, "the deliverer said nothing within 300 ms") == 0,
          "timeout: '%s'", why);

    /* Words after "ready" do not matter; words before it do not either. */
    why = start("echo 'slhook: a warning' >&2; echo ready >&2; exit 1", 10000);
    CHECK(strcmp(why, "") == 0, "warning, then ready: '%s'", why);

    CHECK(slh_kick_start("x", dir, "not an ELF image", 16, 10000, &err) ==
                  SLH_EDELIVER &&
              strcmp(err.text, "cannot run the slhook tool it carries: Exec "
                               "format error") == 0,
          "not a program: '%s'", err.text);

    /* The deliverer's side: the note goes, "ready" is said, and the
     * descriptor is /dev/null from then on. */
    CHECK(access(note, F_OK) == 0, "a note before ready");
    if (CHECK(pipe(p) == 0, "pipe")) {
        fd = dup(p[1]);
        close(p[1]);
        slh_kick_ready(fd, dir);
        CHECK(access(note, F_OK) != 0, "ready removed the note");
        CHECK(write(fd, "later\n", 6) == 6, "fd writable after ready");
        n = read(p[0], buf, sizeof(buf));
        CHECK(n == 6 && memcmp(buf, "ready\n", 6) == 0, "said ready (%zd)", n);
        CHECK(read(p[0], buf, sizeof(buf)) == 0, "then nothing: /dev/null");
        close(fd);
        close(p[0]);
    }
    /* A starter that stopped listening: no SIGPIPE. */
    if (CHECK(pipe(p) == 0, "pipe")) {
        close(p[0]);
        slh_kick_ready(p[1], dir);
        CHECK(1, "no SIGPIPE");
        close(p[1]);
    }

    /* A note cut short, edited by hand or out of range is no note. */
    {
        static const char *const bad[] = {
            "",     "\n",  "x 12 text\n",
            "12\n", "-\n", "99999999999999999999999 overflow\n"};
        time_t when = 0;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            spill(note, bad[i]);
            CHECK(!slh_kick_failure(dir, &when, buf, sizeof(buf)),
                  "bad note %zu: none", i);
        }
        spill(note, "1700000000 a reason\n");
        CHECK(slh_kick_failure(dir, &when, buf, sizeof(buf)) &&
                  when == 1700000000 && strcmp(buf, "a reason") == 0,
              "a well-formed note: %lld '%s'", (long long)when, buf);
    }

    unlink(note);
    snprintf(note, sizeof(note), "%s/%s", dir, SLH_KICK_LOCK);
    unlink(note);
    rmdir(dir);
    free(sh);
    return check_summary();
}

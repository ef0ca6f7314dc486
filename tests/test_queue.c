/* test_queue: the delivering side of the SQLite store, where it looks
 * inside (store_sqlite.h): the deliverer's role, the purge's chunks, finish
 * on a replaced spool, owners' lock files and the take-back of dead ones,
 * error texts as stored, destinations after a purge. What every backend
 * does is in the conformance suite (test_store), the retry policy in
 * test_retry. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "check.h"
#include "sql_int.h"
#include "fixture_each.h"
#include "config.h"
#include "event.h"
#include "store.h"
#include "store_sqlite.h"

#define T0 INT64_C(1700000000000)
#define LEASE 10000
#define MAX_EVENTS 64

#include "fixture_store.h" /* after T0, MAX_EVENTS */

static char dir[64];

/* A spool dir/name configured with dests, every fixture stored in it. On
 * failure false, and what was made is still the caller's to free. */
static bool
fixture_spool(struct slh_config *cfg, struct slh_store **sp, const char *name,
              const char *dests)
{
    struct slh_error err = {0};
    char spool[128];

    snprintf(spool, sizeof(spool), "%s/%s", dir, name);
    if (!load_config(cfg, spool, dests) ||
        !CHECK(slh_store_open(sp, spool, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        return false;
    put_fixtures(*sp, cfg);
    return true;
}

static void
free_claims(struct slh_claim *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        slh_store_claim_free(&c[i]);
}

/* The deliverer's role, in SQLite: commits without fsync, a small page
 * cache. */
static void
test_deliverer_role(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};

    if (!fixture_spool(&cfg, &sp, "role",
                       "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        goto out;
    CHECK(slh_store_role(sp, SLH_STORE_DELIVERER, &err) == SLH_OK, "setup: %s",
          err.text);
    CHECK(sql_int(slh_sqlite_db(sp), "PRAGMA synchronous") == 1 &&
              sql_int(slh_sqlite_db(sp), "PRAGMA cache_size") == -256,
          "setup: synchronous=NORMAL, a 256 KiB page cache");
out:
    slh_store_close(sp);
    slh_config_free(&cfg);
}

/* Retention: delivered and old goes; pending, dead and recent stay. */
static void
test_purge(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_claim c[64] = {{0}};
    struct slh_outcome o[64];
    char spool[128];
    size_t n = 0, forgotten = 99;
    int64_t stored, day = 24LL * 3600 * 1000;

    snprintf(spool, sizeof(spool), "%s/purge", dir);
    if (!load_config(&cfg, spool,
                     "[destination a]\nurl = http://127.0.0.1:9/a\n"
                     "[destination b]\nurl = http://127.0.0.1:9/b\n"))
        return;
    if (!CHECK(slh_store_open(&sp, spool, SLH_STORE_CREATE, &err) == SLH_OK,
               "open: %s", err.text))
        goto out;
    put_fixtures(sp, &cfg);
    stored = sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event");
    CHECK(stored >= 15, "fixture events stored: %lld", (long long)stored);

    /* Every event delivered to a, at T0; b: first one dead, rest pending. */
    CHECK(slh_store_claim(sp, "a", 0, T0, 1000, 64, c, &n, NULL, &err) ==
                  SLH_OK &&
              (int64_t)n == stored,
          "claim a: %zu %s", n, err.text);
    for (size_t i = 0; i < n; i++) {
        memset(&o[i], 0, sizeof(o[i]));
        o[i].dest = "a";
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
        o[i].state = SLH_DELIVERED;
    }
    CHECK(slh_store_finish(sp, o, n, T0, &err) == SLH_OK, "finish a: %s",
          err.text);
    free_claims(c, n);
    CHECK(slh_store_claim(sp, "b", 0, T0, 1000, 1, c, &n, NULL, &err) ==
                  SLH_OK &&
              n == 1,
          "claim b");
    memset(&o[0], 0, sizeof(o[0]));
    o[0].dest = "b";
    o[0].seq = c[0].seq;
    memcpy(o[0].id, c[0].id, sizeof(o[0].id));
    o[0].state = SLH_DEAD;
    CHECK(slh_store_finish(sp, o, 1, T0, &err) == SLH_OK, "finish b");
    free_claims(c, n);

    /* Not yet old enough: nothing goes. */
    CHECK(slh_store_purge(sp, T0, &forgotten, &err) == SLH_OK && forgotten == 0,
          "cutoff at T0 forgets nothing: %zu %s", forgotten, err.text);
    CHECK(sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM delivery") ==
              2 * stored,
          "all delivery rows kept");

    /* Past the cutoff: a's delivered rows go; b's rows keep every event. */
    CHECK(slh_store_purge(sp, T0 + 8 * day, &forgotten, &err) == SLH_OK &&
              forgotten == 0,
          "events with b's rows stay: %zu %s", forgotten, err.text);
    CHECK(sql_int(slh_sqlite_db(sp),
                  "SELECT count(*) FROM delivery WHERE dest = 'a'") == 0,
          "a's delivered rows forgotten");
    CHECK(sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event") == stored,
          "every event kept while b holds it");

    /* b delivers all but its dead letter: those events go, it stays. */
    CHECK(slh_store_claim(sp, "b", 0, T0 + day, 1000, 64, c, &n, NULL, &err) ==
                  SLH_OK &&
              (int64_t)n == stored - 1,
          "claim b's pending: %zu", n);
    for (size_t i = 0; i < n; i++) {
        memset(&o[i], 0, sizeof(o[i]));
        o[i].dest = "b";
        o[i].seq = c[i].seq;
        memcpy(o[i].id, c[i].id, sizeof(o[i].id));
        o[i].state = SLH_DELIVERED;
    }
    CHECK(slh_store_finish(sp, o, n, T0 + day, &err) == SLH_OK, "finish");
    free_claims(c, n);
    CHECK(slh_store_purge(sp, T0 + 8 * day, &forgotten, &err) == SLH_OK &&
              (int64_t)forgotten == stored - 1,
          "delivered events forgotten: %zu", forgotten);
    CHECK(sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM event") == 1 &&
              sql_int(slh_sqlite_db(sp),
                      "SELECT count(*) FROM delivery WHERE state = 2") == 1,
          "the dead letter and its event stay");
out:
    slh_store_close(sp);
    slh_config_free(&cfg);
}

/* An outcome names its event twice, by seq and by id: one whose seq now
 * belongs to another event (the spool replaced under a writer since the
 * claim, seqs starting over) records nothing. */
static void
test_finish_names_event(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_claim c[MAX_EVENTS];
    struct slh_outcome o;
    char sql[160];
    size_t n = 0;

    if (!fixture_spool(&cfg, &sp, "names",
                       "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        goto out;
    if (!CHECK(slh_store_claim(sp, "a", 0, T0, LEASE, MAX_EVENTS, c, &n, NULL,
                               &err) == SLH_OK &&
                   n >= 2,
               "claim: %zu %s", n, err.text))
        goto out;
    memset(&o, 0, sizeof(o));
    o.dest = "a";
    o.seq = c[0].seq;
    memcpy(o.id, c[1].id, sizeof(o.id)); /* another event's id */
    o.state = SLH_DELIVERED;
    CHECK(slh_store_finish(sp, &o, 1, T0 + 5, &err) == SLH_OK, "finish: %s",
          err.text);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM delivery WHERE state = 0 AND seq IN "
             "(%lld, %lld)",
             (long long)c[0].seq, (long long)c[1].seq);
    CHECK(sql_int(slh_sqlite_db(sp), sql) == 2,
          "seq and id disagree: nothing recorded");
    memcpy(o.id, c[0].id, sizeof(o.id));
    CHECK(slh_store_finish(sp, &o, 1, T0 + 5, &err) == SLH_OK, "finish: %s",
          err.text);
    CHECK(sql_int(slh_sqlite_db(sp), sql) == 1, "seq and id agree: recorded");
    free_claims(c, n);
out:
    slh_store_close(sp);
    slh_config_free(&cfg);
}

/* How many of dest's pending rows name owner (0: none) and are leased
 * (due after at). */
static int64_t
owned(struct slh_store *sp, int64_t owner, int64_t at)
{
    char sql[200];

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM delivery WHERE state = 0 AND due > %" PRId64
             " AND owner IS %s%" PRId64,
             at, owner != 0 ? "" : "NULL AND 0 = ", owner);
    return sql_int(slh_sqlite_db(sp), sql);
}

static bool
is_file(const char *dir_, int64_t token)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s/%016" PRIx64 ".lock", dir_,
             SLH_SQLITE_CLAIMS, (uint64_t)token);
    return access(path, F_OK) == 0;
}

/* A child process that makes an owner in spool, says its token on the
 * pipe, and lives until killed: a deliverer alive in another process. */
static pid_t
live_owner(const char *spool, int64_t *token)
{
    int fds[2];
    pid_t pid;

    *token = 0;
    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        struct slh_sqlite_owner o;
        close(fds[0]);
        if (slh_sqlite_owner_open(&o, spool, NULL) == SLH_OK &&
            write(fds[1], &o.token, sizeof(o.token)) ==
                (ssize_t)sizeof(o.token))
            for (;;)
                pause();
        _exit(1);
    }
    close(fds[1]);
    if (pid < 0 ||
        read(fds[0], token, sizeof(*token)) != (ssize_t)sizeof(*token))
        *token = 0;
    close(fds[0]);
    return pid;
}

/*
 * The owners of claims: a deliverer that dies (its lock let go, by closing
 * its fd or by being killed) has its claims taken back at once by the next
 * one that looks, claimable again before their lease ends; a live owner's
 * (its lock held, in another process or by another open file in this one)
 * are left alone; finishing and giving back clear the owner.
 */
static void
test_owners(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_sqlite_owner a = {0, -1}, b = {0, -1}, c = {0, -1};
    struct slh_sqlite_owner dead[4];
    struct slh_claim cl[MAX_EVENTS];
    struct slh_outcome o;
    char spool[128], path[256];
    size_t n = 0, n_dead, taken = 99;
    int64_t child_token = 0;
    pid_t child = -1;
    struct stat st;

    snprintf(spool, sizeof(spool), "%s/owners", dir);
    if (!fixture_spool(&cfg, &sp, "owners",
                       "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        goto out;
    CHECK(slh_sqlite_owner_open(&a, spool, &err) == SLH_OK && a.token > 0 &&
              a.fd >= 0,
          "owner a: %s", err.text);
    CHECK(slh_sqlite_owner_open(&b, spool, &err) == SLH_OK && b.token > 0 &&
              b.token != a.token,
          "owner b, another token: %s", err.text);
    snprintf(path, sizeof(path), "%s/%s", spool, SLH_SQLITE_CLAIMS);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700,
          "claims directory, mode 0700");
    snprintf(path, sizeof(path), "%s/%s/%016" PRIx64 ".lock", spool,
             SLH_SQLITE_CLAIMS, (uint64_t)a.token);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
          "a's lock file, mode 0600");
    CHECK(fcntl(a.fd, F_GETFD) & FD_CLOEXEC, "close-on-exec");
    /* Not lock files: left alone. */
    snprintf(path, sizeof(path), "%s/%s/notes.txt", spool, SLH_SQLITE_CLAIMS);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    snprintf(path, sizeof(path), "%s/%s/12ab.lock", spool, SLH_SQLITE_CLAIMS);
    close(open(path, O_CREAT | O_WRONLY, 0600));

    /* a claims 3 rows, which name it. */
    CHECK(slh_store_claim(sp, "a", a.token, T0, LEASE, 3, cl, &n, NULL, &err) ==
                  SLH_OK &&
              n == 3,
          "a claims 3: %zu %s", n, err.text);
    CHECK(owned(sp, a.token, T0) == 3, "3 rows owned by a");
    free_claims(cl, n);
    /* Alive (its lock held by another open file of this process): no one
     * takes them, and b does not count itself. */
    CHECK(slh_sqlite_owners_dead(spool, b.token, dead, 4) == 0,
          "a alive, b itself: no one dead");
    /* a dies: its lock let go, its file left behind. */
    slh_sqlite_owner_drop(&a);
    CHECK(a.token == 0 && a.fd == -1, "dropped");
    n_dead = slh_sqlite_owners_dead(spool, b.token, dead, 4);
    if (CHECK(n_dead == 1, "a found dead: %zu", n_dead)) {
        int64_t a_token = dead[0].token;
        /* While b buries it, no one else finds it dead. */
        CHECK(slh_sqlite_owners_dead(spool, 0, dead + 1, 3) == 0,
              "being buried: not found twice");
        /* Let go again: the store's take-back looks for itself. */
        slh_sqlite_owner_drop(&dead[0]);
        CHECK(slh_store_take_back(sp, b.token, T0 + 5, &taken, &err) ==
                      SLH_OK &&
                  taken == 3,
              "a's 3 rows taken back: %zu %s", taken, err.text);
        CHECK(owned(sp, a_token, 0) == 0 && owned(sp, 0, T0 + 5) == 0,
              "a owns nothing, nothing leased");
        CHECK(sql_int(slh_sqlite_db(sp),
                      "SELECT count(*) FROM delivery WHERE attempts > 0") == 0,
              "the attempts a claimed are uncounted");
        CHECK(!is_file(spool, a_token), "a's lock file removed");
        CHECK(slh_sqlite_owners_dead(spool, b.token, dead, 4) == 0,
              "buried: no one dead");
    }
    /* Claimable at once, long before a's lease would have ended. */
    CHECK(slh_store_claim(sp, "a", b.token, T0 + 10, LEASE, MAX_EVENTS, cl, &n,
                          NULL, &err) == SLH_OK &&
              n == n_events,
          "b claims all %zu at once: %zu %s", n_events, n, err.text);
    CHECK(owned(sp, b.token, T0 + 10) == (int64_t)n_events, "all b's");

    /* b finishes one row and gives back another: both no longer b's. */
    memset(&o, 0, sizeof(o));
    o.dest = "a";
    o.seq = cl[0].seq;
    memcpy(o.id, cl[0].id, sizeof(o.id));
    o.state = SLH_PENDING;
    o.due = T0 + 500;
    CHECK(slh_store_finish(sp, &o, 1, T0 + 20, &err) == SLH_OK, "finish: %s",
          err.text);
    CHECK(slh_store_unclaim(sp, "a", &cl[1].seq, 1, T0 + 20, &err) == SLH_OK,
          "unclaim: %s", err.text);
    CHECK(owned(sp, b.token, 0) == (int64_t)n_events - 2 &&
              sql_int(slh_sqlite_db(sp), "SELECT count(*) FROM delivery WHERE "
                                         "owner IS NULL") == 2,
          "finished and given back: owned by no one");
    free_claims(cl, n);

    /* A live owner in another process: its rows are not taken, until it is
     * killed. */
    child = live_owner(spool, &child_token);
    if (!CHECK(child > 0 && child_token > 0, "live owner in a child"))
        goto out;
    CHECK(sqlite3_exec(slh_sqlite_db(sp),
                       "UPDATE delivery SET owner = NULL, due = 0", NULL, NULL,
                       NULL) == SQLITE_OK,
          "every row due, no one's");
    CHECK(slh_store_claim(sp, "a", child_token, T0 + 30, LEASE, 4, cl, &n, NULL,
                          &err) == SLH_OK &&
              n == 4,
          "the child's 4 claims: %s", err.text);
    free_claims(cl, n);
    CHECK(slh_sqlite_owner_open(&c, spool, &err) == SLH_OK, "owner c: %s",
          err.text);
    CHECK(slh_sqlite_owners_dead(spool, c.token, dead, 4) == 0,
          "the child and b alive: no one dead");
    CHECK(owned(sp, child_token, T0 + 30) == 4, "the child's rows untouched");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = -1;
    n_dead = slh_sqlite_owners_dead(spool, c.token, dead, 4);
    if (CHECK(n_dead == 1 && dead[0].token == child_token,
              "the killed child found dead: %zu", n_dead)) {
        slh_sqlite_owner_drop(&dead[0]);
        CHECK(slh_store_take_back(sp, c.token, T0 + 40, &taken, &err) ==
                      SLH_OK &&
                  taken == 4,
              "its 4 taken back: %zu %s", taken, err.text);
        CHECK(!is_file(spool, child_token), "its lock file removed");
    }
    CHECK(owned(sp, b.token, 0) == 0 && owned(sp, child_token, 0) == 0,
          "b's untouched (none), the child's gone");
    CHECK(slh_store_claim(sp, "a", c.token, T0 + 41, LEASE, MAX_EVENTS, cl, &n,
                          NULL, &err) == SLH_OK &&
              n == n_events,
          "all claimable by c at once: %zu", n);
    free_claims(cl, n);

    /* Closing removes one's own file. */
    {
        int64_t bt = b.token;
        slh_sqlite_owner_close(&b, spool);
        CHECK(!is_file(spool, bt) && b.token == 0 && b.fd == -1,
              "b closed: file removed");
    }
    slh_sqlite_owner_close(&c, spool);
    snprintf(path, sizeof(path), "%s/%s/12ab.lock", spool, SLH_SQLITE_CLAIMS);
    CHECK(access(path, F_OK) == 0, "a file not named as ours is left alone");
    /* A zeroed owner, and one that failed to open, are fine to close. */
    {
        struct slh_sqlite_owner z = {0};
        slh_sqlite_owner_close(&z, spool);
        slh_sqlite_owner_drop(&z);
        slh_sqlite_owner_close(NULL, spool);
        snprintf(path, sizeof(path), "%s/no/such/dir", dir);
        slh_error_clear(&err);
        CHECK(slh_sqlite_owner_open(&z, path, &err) == SLH_EIO &&
                  z.token == 0 && z.fd == -1 && err.text[0] != '\0',
              "no directory: %s", err.text);
        CHECK(slh_sqlite_owners_dead(path, 0, dead, 4) == 0,
              "no directory: no one dead");
    }
out:
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    slh_sqlite_owner_close(&a, spool);
    slh_sqlite_owner_close(&b, spool);
    slh_sqlite_owner_close(&c, spool);
    slh_store_close(sp);
    slh_config_free(&cfg);
}

struct take_back_args {
    int64_t self;
    size_t taken;
};

static enum slh_err
take_back_task(struct slh_store *st, void *arg, struct slh_error *err)
{
    struct take_back_args *a = arg;

    return slh_store_take_back(st, a->self, T0 + 5, &a->taken, err);
}

static enum slh_err
fail_task(struct slh_store *st, void *arg, struct slh_error *err)
{
    (void)st;
    (void)arg;
    return slh_error_set(err, SLH_ESTORE, "a later task failed");
}

/*
 * A take-back that is part of a writer's transaction (a task of a put)
 * forgets the dead owner only if that transaction commits: rolled back, the
 * rows stay the dead one's, and so does its lock file, for the next look.
 */
static void
test_take_back_rolled_back(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_sqlite_owner a = {0, -1};
    struct slh_claim cl[4];
    struct take_back_args args = {0, 0};
    struct slh_store_task tasks[2] = {{take_back_task, &args},
                                      {fail_task, NULL}};
    char spool[128];
    size_t n = 0;
    int64_t token;

    snprintf(spool, sizeof(spool), "%s/rollback", dir);
    if (!fixture_spool(&cfg, &sp, "rollback",
                       "[destination a]\nurl = http://127.0.0.1:9/a\n") ||
        !CHECK(slh_sqlite_owner_open(&a, spool, &err) == SLH_OK, "owner: %s",
               err.text))
        goto out;
    token = a.token;
    CHECK(slh_store_claim(sp, "a", token, T0, LEASE, 3, cl, &n, NULL, &err) ==
                  SLH_OK &&
              n == 3,
          "3 claimed: %s", err.text);
    free_claims(cl, n);
    slh_sqlite_owner_drop(&a); /* dies */
    CHECK(slh_store_put_tasks(sp, &cfg, NULL, 0, tasks, 2, T0, NULL, &err) ==
              SLH_ESTORE,
          "the put fails: %s", err.text);
    CHECK(owned(sp, token, T0 + 5) == 3, "rolled back: the rows still its");
    CHECK(is_file(spool, token), "and its lock file kept, for the next look");
    slh_error_clear(&err);
    CHECK(slh_store_put_tasks(sp, &cfg, NULL, 0, tasks, 1, T0, NULL, &err) ==
                  SLH_OK &&
              args.taken == 3,
          "the next look takes them back: %s", err.text);
    CHECK(owned(sp, token, 0) == 0 && !is_file(spool, token),
          "committed: rows back, lock file removed");
out:
    slh_sqlite_owner_close(&a, spool);
    slh_store_close(sp);
    slh_config_free(&cfg);
}

/*
 * The destinations named in the spool, configured or not, and what the
 * purge leaves of a destination's pending rows: all of them, at any age
 * (slhook(1) says so of a destination removed from the config).
 */
static void
test_dests(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    char **names = NULL;
    size_t n = 99;
    int64_t pending;

    if (!fixture_spool(&cfg, &sp, "dests", ""))
        goto out;
    CHECK(slh_store_dests(sp, &names, &n, &err) == SLH_OK, "dests: %s",
          err.text);
    CHECK(n == 0 && names == NULL, "no destination, no names: %zu", n);
    slh_store_close(sp);
    sp = NULL;
    slh_config_free(&cfg);
    if (!fixture_spool(&cfg, &sp, "dests2",
                       "[destination zeta]\nurl = http://127.0.0.1:9/z\n"
                       "[destination alpha]\nfile = /dev/null\n"
                       "events = Failed\n"))
        goto out;
    if (CHECK(slh_store_dests(sp, &names, &n, &err) == SLH_OK, "dests: %s",
              err.text) &&
        CHECK(n == 2, "two destinations: %zu", n))
        CHECK(strcmp(names[0], "alpha") == 0 && strcmp(names[1], "zeta") == 0,
              "in byte order: %s %s", names[0], names[1]);
    slh_store_dests_free(names, n);
    names = NULL;
    pending = sql_int(slh_sqlite_db(sp),
                      "SELECT count(*) FROM delivery WHERE state = 0");
    CHECK(slh_store_purge(sp, INT64_MAX / 2, NULL, &err) == SLH_OK, "purge: %s",
          err.text);
    CHECK(sql_int(slh_sqlite_db(sp),
                  "SELECT count(*) FROM delivery WHERE state = 0") == pending &&
              pending > 0,
          "the purge keeps every pending row, however old: %lld",
          (long long)pending);
    if (CHECK(slh_store_dests(sp, &names, &n, &err) == SLH_OK, "dests: %s",
              err.text))
        CHECK(n == 2, "both still named after the purge: %zu", n);
    slh_store_dests_free(names, n);
    slh_store_dests_free(NULL, 0);
out:
    slh_store_close(sp);
    slh_config_free(&cfg);
}

/* Whether s is text Jansson takes (valid UTF-8), as status --json needs. */
static bool
is_json_text(const char *s)
{
    json_t *j = json_string(s);
    bool ok = j != NULL;

    json_decref(j);
    return ok;
}

/* An error text cut mid-character by its buffer is stored cut on the
 * character's boundary; one stored invalid already (older spools) is read
 * back mended, so that status --json can print it. */
static void
test_utf8_error(void)
{
    struct slh_config cfg = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    struct slh_claim c[MAX_EVENTS];
    struct slh_outcome o;
    struct slh_store_stats st;
    char text[400], sql[600];
    sqlite3 *db;
    size_t n = 0;

    if (!fixture_spool(&cfg, &sp, "utf8",
                       "[destination a]\nurl = http://127.0.0.1:9/a\n"))
        goto out;
    db = slh_sqlite_db(sp);
    if (!CHECK(slh_store_claim(sp, "a", 0, T0, LEASE, MAX_EVENTS, c, &n, NULL,
                               &err) == SLH_OK &&
                   n >= 1,
               "claim: %zu %s", n, err.text))
        goto out;
    /* 254 bytes, then "é" (C3 A9) straddling the 255 the buffer keeps. */
    memset(text, 'x', 254);
    snprintf(text + 254, sizeof(text) - 254, "\xc3\xa9\xc3\xa9 and more");
    memset(&o, 0, sizeof(o));
    o.dest = "a";
    o.seq = c[0].seq;
    memcpy(o.id, c[0].id, sizeof(o.id));
    o.state = SLH_PENDING;
    o.due = T0 + 1000;
    memcpy(o.error, text, sizeof(o.error) - 1); /* as snprintf would cut */
    o.error[sizeof(o.error) - 1] = '\0';
    CHECK((unsigned char)o.error[254] == 0xc3 && o.error[255] == '\0',
          "the outcome's text is cut mid-character");
    CHECK(slh_store_finish(sp, &o, 1, T0 + 5, &err) == SLH_OK, "finish: %s",
          err.text);
    snprintf(sql, sizeof(sql),
             "SELECT length(CAST(last_error AS BLOB)) FROM delivery"
             " WHERE dest = 'a' AND seq = %lld",
             (long long)c[0].seq);
    CHECK(sql_int(db, sql) == 254, "stored cut before the character: %lld",
          (long long)sql_int(db, sql));
    CHECK(slh_store_stats(sp, "a", &st, &err) == SLH_OK, "stats: %s", err.text);
    CHECK(strlen(st.last_error) == 254 && is_json_text(st.last_error),
          "read back whole, valid: %zu", strlen(st.last_error));

    /* Stored by an older slhook: invalid bytes, and a character cut. */
    CHECK(sqlite3_exec(db,
                       "UPDATE delivery SET last_error = CAST(X'6162FF63C328"
                       "64E282' AS TEXT), attempts = 1 WHERE dest = 'a'",
                       NULL, NULL, NULL) == SQLITE_OK,
          "store invalid UTF-8: %s", sqlite3_errmsg(db));
    CHECK(slh_store_stats(sp, "a", &st, &err) == SLH_OK, "stats: %s", err.text);
    CHECK(strcmp(st.last_error, "ab?c?(d") == 0 && is_json_text(st.last_error),
          "invalid bytes replaced, the cut one dropped: '%s'", st.last_error);
    /* Longer than the buffer, a character across its end. */
    snprintf(sql, sizeof(sql),
             "UPDATE delivery SET last_error = '%.254s' || X'C3A9' ||"
             " 'tail' WHERE dest = 'a'",
             text);
    CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK,
          "store a long text: %s", sqlite3_errmsg(db));
    CHECK(slh_store_stats(sp, "a", &st, &err) == SLH_OK, "stats: %s", err.text);
    CHECK(strlen(st.last_error) == 254 && is_json_text(st.last_error),
          "a long stored text is cut on a character: %zu",
          strlen(st.last_error));
    free_claims(c, n);
out:
    slh_store_close(sp);
    slh_config_free(&cfg);
}

int
main(void)
{
    char cmd[128];
    int rc;

    snprintf(dir, sizeof(dir), "/tmp/slh-test-queue-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_deliverer_role();
    test_purge();
    test_finish_names_event();
    test_owners();
    test_take_back_rolled_back();
    test_utf8_error();
    test_dests();
    fixture_store_free();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    rc = check_summary();
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}

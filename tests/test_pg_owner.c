/* test_pg_owner: what the PostgreSQL backend does its own way with owners
 * and the purge (store_pg.h): the beat and the grace, a session ended
 * under a live owner, its lock held by another session, outcomes recorded
 * only where a row still names their owner, giving back after a lapse,
 * one purge turn among handles asking at once, the upgrade of a
 * version 1 schema by several processes at once, and version 3's
 * MessageIds. Needs the cluster that
 * tests/t_pg_fence.sh starts (SLH_TEST_PG: the URI's parameters); an
 * administrator's connection of its own (libpq) ends sessions and holds
 * locks as a server or a network would. */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "check.h"
#include "config.h"
#include "event.h"
#include "store.h"
#include "store_pg.h" /* SLH_PG_GRACE_MS, SLH_PG_LOCK_CLASS */

#define T0 INT64_C(1700000000000)
#define LEASE 600000
#define RACERS 4

/* A store of its own: its spool string, config, handle, and an
 * administrator's connection to its database. */
struct db {
    char spool[512];
    struct slh_config cfg;
    struct slh_store *st;
    PGconn *admin;
};

static bool
db_open(struct db *db, const char *name)
{
    const char *args = getenv("SLH_TEST_PG");
    char text[1024];
    struct slh_error err = {0};

    memset(db, 0, sizeof(*db));
    if (!CHECK(args != NULL && *args != '\0',
               "SLH_TEST_PG is not set: run tests/t_pg_fence.sh, which starts "
               "a PostgreSQL cluster for this test"))
        return false;
    snprintf(db->spool, sizeof(db->spool), "postgresql:///slh_%s_%ld?%s", name,
             (long)getpid(), args);
    snprintf(text, sizeof(text),
             "[receiver]\nsecret_key = q7Rt2mXw9LpB4sKd8Zf3\nspool = %s\n"
             "[destination a]\nurl = http://127.0.0.1:9/a\n",
             db->spool);
    if (!CHECK(slh_config_parse(&db->cfg, text, "test.ini", &err) == SLH_OK,
               "config: %s", err.text) ||
        !CHECK(slh_store_open(&db->st, db->spool, SLH_STORE_CREATE, &err) ==
                   SLH_OK,
               "open %s: %s", name, err.text))
        return false;
    db->admin = PQconnectdb(db->spool);
    return CHECK(PQstatus(db->admin) == CONNECTION_OK, "admin: %s",
                 PQerrorMessage(db->admin));
}

static void
db_close(struct db *db)
{
    slh_store_close(db->st);
    PQfinish(db->admin);
    slh_config_free(&db->cfg);
}

/* Runs sql (printf-style) on the administrator's connection: the first
 * column of its first row as a number, 0 when it has none, -1 on error. */
__attribute__((format(printf, 2, 3))) static int64_t
admin(struct db *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    PGresult *r;
    int64_t v = -1;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    r = PQexec(db->admin, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)
                ? (PQgetvalue(r, 0, 0)[0] == 't'
                       ? 1
                       : strtoll(PQgetvalue(r, 0, 0), NULL, 10))
                : 0;
    else if (PQresultStatus(r) == PGRES_COMMAND_OK)
        v = strtoll(PQcmdTuples(r), NULL, 10);
    else
        printf("admin: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return v;
}

/* Stores the event of a JSON body, received at T0. */
static bool
put_body(struct db *db, const char *body)
{
    struct slh_batch b = {0};
    const struct slh_batch *one = &b;
    struct slh_error err = {0};
    bool is_ok =
        slh_batch_parse(&b, body, strlen(body), SLH_MEDIA_JSON, &err) ==
            SLH_OK &&
        slh_store_put(db->st, &db->cfg, &one, 1, T0, NULL, &err) == SLH_OK;

    slh_batch_free(&b);
    return CHECK(is_ok, "put %s: %s", body, err.text);
}

/* Stores n events of Type Delivered at T0 (MessageIds tag0, tag1...). */
static bool
put_events(struct db *db, const char *tag, int n)
{
    for (int i = 0; i < n; i++) {
        char body[512];

        snprintf(body, sizeof(body),
                 "{\"Type\":\"Delivered\",\"ServerId\":40211,"
                 "\"MessageId\":\"%s%d\",\"Address\":\"u@example.org\"}",
                 tag, i);
        if (!put_body(db, body))
            return false;
    }
    return true;
}

/* Ends the session of owner token (as a restart or a blip would) and
 * waits until the server let go of its lock. */
static bool
end_session(struct db *db, int64_t token)
{
    if (!CHECK(admin(db,
                     "SELECT pg_terminate_backend(pid) FROM slhook_owner"
                     " WHERE token = %" PRId64,
                     token) == 1,
               "the owner's session ended"))
        return false;
    for (int i = 0; i < 50; i++) {
        if (admin(db,
                  "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                  " AND classid = %d AND objid = %" PRId64 " AND objsubid = 2",
                  SLH_PG_LOCK_CLASS, token) == 0)
            return true;
        usleep(100 * 1000);
    }
    return CHECK(0, "the ended session's lock is still held");
}

/* Beats o until it answers SLH_OK, up to tries times 100 ms apart: the
 * first statement after the server ended a session may find that out. */
static enum slh_err
beat(struct slh_store *st, struct slh_store_owner *o, bool is_fresh, int tries,
     struct slh_error *err)
{
    enum slh_err rc = SLH_ESTORE;

    for (int i = 0; i < tries && rc != SLH_OK; i++) {
        if (i > 0)
            usleep(100 * 1000);
        slh_error_clear(err);
        rc = slh_store_owner_beat(st, o, T0 + 1, is_fresh, err);
    }
    return rc;
}

/* The outcome delivered for claim c, as owner. */
static struct slh_outcome
delivered(const struct slh_claim *c, int64_t owner)
{
    struct slh_outcome o = {.dest = "a", .seq = c->seq, .owner = owner};

    memcpy(o.id, c->id, sizeof(o.id));
    o.state = SLH_DELIVERED;
    o.status = 200;
    return o;
}

static int64_t
n_delivered(struct db *db)
{
    return admin(db, "SELECT count(*) FROM slhook_delivery WHERE state = 1");
}

static void
free_claims(struct slh_claim *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        slh_store_claim_free(&c[i]);
}

/* Takes back for self every 100 ms until want rows came back or 10 s
 * passed; how many. */
static size_t
take_back_until(struct slh_store *st, int64_t self, size_t want)
{
    int64_t start = slh_now_ms();
    size_t total = 0, taken;

    while (total < want && slh_now_ms() - start < 10000) {
        taken = 0;
        if (slh_store_take_back(st, self, T0 + 1, &taken, NULL) != SLH_OK)
            break;
        total += taken;
        if (total < want)
            usleep(100 * 1000);
    }
    return total;
}

/* A store of name holding n events, owner a on its handle, another
 * handle *other with owner b, and n rows of "a" claimed by a into c
 * (*got of them); false, with the reason checked, when any fails. */
static bool
a_claims(struct db *db, const char *name, int n, struct slh_store_owner **a,
         struct slh_store **other, struct slh_store_owner **b,
         struct slh_claim *c, size_t *got)
{
    struct slh_error err = {0};

    if (!db_open(db, name) || !put_events(db, name, n) ||
        !CHECK(slh_store_owner_open(db->st, a, &err) == SLH_OK, "owner a: %s",
               err.text) ||
        !CHECK(slh_store_open(other, db->spool, SLH_STORE_EXISTING, &err) ==
                       SLH_OK &&
                   slh_store_owner_open(*other, b, &err) == SLH_OK,
               "another handle, owner b: %s", err.text))
        return false;
    return CHECK(slh_store_claim(db->st, "a", slh_store_owner_token(*a), T0,
                                 LEASE, (size_t)n, c, got, NULL,
                                 &err) == SLH_OK &&
                     *got == (size_t)n,
                 "a claims %d: %s", n, err.text);
}

/* Undoes a_claims(): c's n claims freed, both owners and both handles
 * closed. */
static void
a_claims_close(struct db *db, struct slh_store_owner *a,
               struct slh_store *other, struct slh_store_owner *b,
               struct slh_claim *c, size_t n)
{
    free_claims(c, n);
    slh_store_owner_close(b);
    slh_store_owner_close(a);
    slh_store_close(other);
    db_close(db);
}

/* An owner whose session ended is not taken back while its beat is
 * recent, and is after the grace; once buried it knows it, its outcomes
 * are dropped where its rows are another's, and a fresh beat makes it
 * again. */
static void
test_grace(void)
{
    struct db db;
    struct slh_store *other = NULL;
    struct slh_store_owner *a = NULL, *b = NULL;
    struct slh_claim c[2] = {0}, cb[2] = {0};
    struct slh_outcome o[2];
    struct slh_error err = {0};
    size_t n = 0, nb = 0, taken = 99;
    int64_t ended, ms;

    if (!a_claims(&db, "grace", 2, &a, &other, &b, c, &n))
        goto out;
    if (!end_session(&db, slh_store_owner_token(a)))
        goto out;
    ended = slh_now_ms();
    CHECK(slh_store_take_back(other, slh_store_owner_token(b), T0 + 1, &taken,
                              &err) == SLH_OK &&
              taken == 0,
          "its lock free, its beat recent: nothing taken (%zu)", taken);
    taken = take_back_until(other, slh_store_owner_token(b), 2);
    ms = slh_now_ms() - ended;
    printf("an owner without its lock: rows back %" PRId64
           " ms after its session ended (grace %d ms)\n",
           ms, SLH_PG_GRACE_MS);
    CHECK(taken == 2, "after the grace, its 2 rows taken back: %zu", taken);
    CHECK(ms >= SLH_PG_GRACE_MS - 1000 && ms <= SLH_PG_GRACE_MS + 1500,
          "about the grace after its beat: %" PRId64 " ms", ms);
    CHECK(admin(&db, "SELECT count(*) FROM slhook_owner WHERE token = %" PRId64,
                slh_store_owner_token(a)) == 0,
          "its row buried");
    CHECK(beat(db.st, a, false, 5, &err) != SLH_OK &&
              strstr(err.text, "taken for dead") != NULL,
          "its next beat tells it: %s", err.text);
    o[0] = delivered(&c[0], slh_store_owner_token(a));
    CHECK(slh_store_finish(db.st, o, 1, T0 + 2, &err) == SLH_OK &&
              n_delivered(&db) == 0,
          "its outcome for a row given back is dropped: %s", err.text);
    CHECK(slh_store_claim(other, "a", slh_store_owner_token(b), T0 + 2, LEASE,
                          2, cb, &nb, NULL, &err) == SLH_OK &&
              nb == 2,
          "b claims them: %zu", nb);
    CHECK(slh_store_finish(db.st, o, 1, T0 + 3, &err) == SLH_OK &&
              n_delivered(&db) == 0,
          "and for a row now b's: dropped");
    o[0] = delivered(&cb[0], slh_store_owner_token(b));
    o[1] = delivered(&cb[1], 0);
    CHECK(slh_store_finish(other, o, 2, T0 + 3, &err) == SLH_OK &&
              n_delivered(&db) == 2,
          "b's own outcome, and one of no owner's, recorded: %s", err.text);
    CHECK(beat(db.st, a, true, 5, &err) == SLH_OK &&
              admin(&db,
                    "SELECT count(*) FROM slhook_owner WHERE token = %" PRId64,
                    slh_store_owner_token(a)) == 1,
          "a fresh beat makes a again: %s", err.text);
    CHECK(beat(db.st, a, false, 1, &err) == SLH_OK, "and it beats: %s",
          err.text);
out:
    free_claims(cb, nb);
    a_claims_close(&db, a, other, b, c, n);
}

/* A session ended under a live owner that takes its lock again before the
 * grace: never taken back, its outcomes recorded. */
static void
test_relock(void)
{
    struct db db;
    struct slh_store *other = NULL;
    struct slh_store_owner *a = NULL, *b = NULL;
    struct slh_claim c[1] = {0};
    struct slh_outcome o;
    struct slh_error err = {0};
    size_t n = 0, taken = 0, total = 0;
    int64_t start;

    if (!a_claims(&db, "relock", 1, &a, &other, &b, c, &n))
        goto out;
    if (!end_session(&db, slh_store_owner_token(a)))
        goto out;
    CHECK(beat(db.st, a, false, 5, &err) == SLH_OK,
          "its session ended, a beats on a new one: %s", err.text);
    start = slh_now_ms();
    while (slh_now_ms() - start < SLH_PG_GRACE_MS + 1500) {
        (void)slh_store_owner_beat(db.st, a, T0 + 1, false, NULL);
        if (slh_store_take_back(other, slh_store_owner_token(b), T0 + 1, &taken,
                                NULL) == SLH_OK)
            total += taken;
        usleep(500 * 1000);
    }
    CHECK(total == 0, "beating past the grace: never taken back (%zu)", total);
    o = delivered(&c[0], slh_store_owner_token(a));
    CHECK(slh_store_finish(db.st, &o, 1, T0 + 2, &err) == SLH_OK &&
              n_delivered(&db) == 1,
          "its outcome recorded: %s", err.text);
out:
    a_claims_close(&db, a, other, b, c, n);
}

/* An owner whose lock another session holds (a session the server has not
 * yet ended, say): its beats fail, no one takes it back, and once it has
 * its lock again a fresh beat gives back what it held. */
static void
test_lock_elsewhere(void)
{
    struct db db;
    struct slh_store *other = NULL;
    struct slh_store_owner *a = NULL, *b = NULL;
    struct slh_claim c[2] = {0};
    struct slh_error err = {0};
    size_t n = 0, taken = 99;
    int64_t token = 0;

    if (!a_claims(&db, "elsewhere", 2, &a, &other, &b, c, &n))
        goto out;
    token = slh_store_owner_token(a);
    if (!end_session(&db, token) ||
        !CHECK(admin(&db, "SELECT pg_try_advisory_lock(%d, %" PRId64 ")",
                     SLH_PG_LOCK_CLASS, token) == 1,
               "its lock taken by another session"))
        goto out;
    CHECK(beat(db.st, a, false, 3, &err) != SLH_OK &&
              strstr(err.text, "another session's") != NULL,
          "its beats fail: %s", err.text);
    usleep((SLH_PG_GRACE_MS + 500) * 1000);
    CHECK(slh_store_take_back(other, slh_store_owner_token(b), T0 + 1, &taken,
                              &err) == SLH_OK &&
              taken == 0,
          "past the grace, its lock held: not taken (%zu)", taken);
    CHECK(admin(&db, "SELECT pg_advisory_unlock(%d, %" PRId64 ")",
                SLH_PG_LOCK_CLASS, token) == 1,
          "the other session lets go");
    CHECK(beat(db.st, a, true, 3, &err) == SLH_OK, "a fresh beat: %s",
          err.text);
    CHECK(admin(&db,
                "SELECT count(*) FROM slhook_delivery WHERE owner = %" PRId64,
                token) == 0 &&
              admin(&db, "SELECT sum(attempts) FROM slhook_delivery") == 0,
          "gives back what it held, the attempts uncounted");
    CHECK(beat(db.st, a, false, 1, &err) == SLH_OK, "and it beats on: %s",
          err.text);
out:
    a_claims_close(&db, a, other, b, c, n);
}

/* A session of the owner's that the server has not found dead (its
 * client gone with a broken network) holds its lock: the owner's beat on
 * a new session ends that one, and the next beat has the lock. Played by
 * the administrator's session, taking the lock and the row's pid. */
static void
test_zombie(void)
{
    struct db db;
    struct slh_store_owner *a = NULL;
    struct slh_error err = {0};
    int64_t token;
    PGresult *r;

    if (!db_open(&db, "zombie") ||
        !CHECK(slh_store_owner_open(db.st, &a, &err) == SLH_OK, "owner a: %s",
               err.text))
        goto out;
    token = slh_store_owner_token(a);
    if (!end_session(&db, token) ||
        !CHECK(admin(&db, "SELECT pg_try_advisory_lock(%d, %" PRId64 ")",
                     SLH_PG_LOCK_CLASS, token) == 1 &&
                   admin(&db,
                         "UPDATE slhook_owner SET pid = pg_backend_pid()"
                         " WHERE token = %" PRId64,
                         token) == 1,
               "an old session of a's holds its lock"))
        goto out;
    CHECK(beat(db.st, a, false, 1, &err) != SLH_OK &&
              strstr(err.text, "another session's") != NULL,
          "a's beat on a new session fails: %s", err.text);
    r = PQexec(db.admin, "SELECT 1");
    CHECK(PQresultStatus(r) != PGRES_TUPLES_OK, "and ended the old session");
    PQclear(r);
    PQreset(db.admin);
    CHECK(beat(db.st, a, false, 3, &err) == SLH_OK,
          "the next beat has the lock: %s", err.text);
out:
    slh_store_owner_close(a);
    db_close(&db);
}

struct racer {
    const char *spool;
    pthread_barrier_t *start;
    bool is_due;
    bool is_ok;
};

static void *
race_purge(void *arg)
{
    struct racer *r = arg;
    struct slh_store *st = NULL;

    r->is_ok =
        slh_store_open(&st, r->spool, SLH_STORE_EXISTING, NULL) == SLH_OK;
    pthread_barrier_wait(r->start);
    r->is_ok = r->is_ok && slh_store_purge_due(st, 60000, slh_now_ms(),
                                               &r->is_due, NULL) == SLH_OK;
    slh_store_close(st);
    return NULL;
}

/* Handles asking for the purge's turn at once: one gets it. */
static void
test_purge_race(void)
{
    struct db db;
    pthread_barrier_t start;

    if (!db_open(&db, "purge_race"))
        goto out;
    for (int round = 0; round < 5; round++) {
        struct racer r[RACERS];
        pthread_t t[RACERS];
        int n_due = 0, n_ok = 0;

        admin(&db, "UPDATE slhook_meta SET last_purge = 0");
        pthread_barrier_init(&start, NULL, RACERS);
        for (int i = 0; i < RACERS; i++) {
            r[i] = (struct racer){.spool = db.spool, .start = &start};
            pthread_create(&t[i], NULL, race_purge, &r[i]);
        }
        for (int i = 0; i < RACERS; i++) {
            pthread_join(t[i], NULL);
            n_due += r[i].is_due;
            n_ok += r[i].is_ok;
        }
        pthread_barrier_destroy(&start);
        CHECK(n_ok == RACERS && n_due == 1,
              "round %d: %d handles at once, %d got the turn", round, n_ok,
              n_due);
    }
    {
        bool is_due = false;

        admin(&db, "UPDATE slhook_meta SET last_purge = last_purge + 7200000");
        CHECK(slh_store_purge_due(db.st, 60000, slh_now_ms(), &is_due, NULL) ==
                      SLH_OK &&
                  is_due,
              "a last turn two hours ahead (the clock set back): due");
    }
out:
    db_close(&db);
}

/* Version 3 undone: the MessageId column gone, version 2's index back. */
#define UNDO_3                                                                 \
    "ALTER TABLE slhook_event DROP COLUMN message_id;"                         \
    " CREATE INDEX slhook_event_message_id"                                    \
    " ON slhook_event (((body::jsonb) ->> 'MessageId'));"                      \
    " UPDATE slhook_meta SET version = 2;"

/* A version 1 spool, with an owner of an older slhook (no beat) that died
 * holding a row, upgraded by several processes opening it at once. */
static void
test_upgrade(void)
{
    struct db db;
    struct slh_claim c[1] = {0};
    struct slh_error err = {0};
    size_t n = 0, taken = 0;
    pid_t kids[4];
    int n_ok = 0;

    if (!db_open(&db, "upgrade") || !put_events(&db, "u", 1))
        goto out;
    CHECK(slh_store_claim(db.st, "a", 77, T0, LEASE, 1, c, &n, NULL, &err) ==
                  SLH_OK &&
              n == 1,
          "claimed by owner 77: %s", err.text);
    free_claims(c, n);
    slh_store_close(db.st);
    db.st = NULL;
    CHECK(admin(&db,
                UNDO_3 "ALTER TABLE slhook_owner DROP COLUMN seen;"
                       " ALTER TABLE slhook_meta DROP COLUMN last_purge;"
                       " UPDATE slhook_meta SET version = 1;"
                       " INSERT INTO slhook_owner (token, pid, since, host,"
                       " client_pid) VALUES (77, 0, 0, 'gone', 0)") == 1,
          "made version 1 again");
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            struct slh_store *st = NULL;
            enum slh_err rc =
                slh_store_open(&st, db.spool, SLH_STORE_EXISTING, NULL);
            slh_store_close(st);
            _exit(rc == SLH_OK ? 0 : 1);
        }
    }
    for (int i = 0; i < 4; i++) {
        int status = 1;
        if (kids[i] > 0 && waitpid(kids[i], &status, 0) == kids[i] &&
            WIFEXITED(status) && WEXITSTATUS(status) == 0)
            n_ok++;
    }
    CHECK(n_ok == 4, "4 processes opened it at once: %d did", n_ok);
    CHECK(admin(&db, "SELECT version FROM slhook_meta") == SLH_PG_VERSION,
          "upgraded to %d", SLH_PG_VERSION);
    CHECK(admin(&db, "SELECT seen FROM slhook_owner WHERE token = 77") == 0 &&
              admin(&db, "SELECT last_purge FROM slhook_meta") == 0,
          "seen and last_purge there, 0 in old rows");
    CHECK(slh_store_open(&db.st, db.spool, SLH_STORE_EXISTING, &err) ==
                  SLH_OK &&
              slh_store_take_back(db.st, 0, T0 + 1, &taken, &err) == SLH_OK &&
              taken == 1,
          "an old owner without its lock: taken back at once (%zu) %s", taken,
          err.text);
out:
    db_close(&db);
}

/* The events of MessageId mid the store finds (at most 10). */
static size_t
found(struct db *db, const char *mid)
{
    struct slh_store_filter f = {.message_id = mid};
    struct slh_store_event *ev = NULL;
    struct slh_error err = {0};
    size_t n = 0;

    if (!CHECK(slh_store_events(db->st, &f, &ev, &n, &err) == SLH_OK,
               "events of %s: %s", mid, err.text))
        return 0;
    slh_store_events_free(ev, n);
    return n;
}

/* A version 2 spool upgraded to 3: its events, and one an older slhook
 * stores after (no message_id), found by MessageId before the idle
 * deliverer's index reads theirs and after; the new ones have it from
 * their put, as the body's jsonb has it. */
static void
test_upgrade_3(void)
{
    struct db db;
    struct slh_error err = {0};
    size_t n = 0, total = 0;

    if (!db_open(&db, "upgrade3") || !put_events(&db, "m", 4) ||
        !put_body(&db, "{\"Type\":\"Failed\",\"MessageId\":12345}") ||
        !put_body(&db, "{\"Type\":\"Failed\",\"messageid\":\"m0\"}"))
        goto out;
    CHECK(admin(&db,
                "SELECT count(*) FROM slhook_event WHERE message_id IS NULL"
                " OR message_id IS DISTINCT FROM"
                " coalesce(body::jsonb ->> 'MessageId', '')") == 0,
          "every put's message_id is its body's (a number's text, '' none)");
    slh_store_close(db.st);
    db.st = NULL;
    CHECK(admin(&db, UNDO_3) == 1, "made version 2 again");
    CHECK(slh_store_open(&db.st, db.spool, SLH_STORE_EXISTING, &err) ==
                  SLH_OK &&
              admin(&db, "SELECT version FROM slhook_meta") == SLH_PG_VERSION,
          "upgraded to %d: %s", SLH_PG_VERSION, err.text);
    CHECK(admin(&db,
                "INSERT INTO slhook_event (id, at, type, tracking,"
                " received, body) VALUES ('old', 1, 'Failed', 0, %lld,"
                " '{\"MessageId\":\"m1\"}')",
                (long long)T0) == 1,
          "an older slhook's event, stored since");
    CHECK(admin(&db, "SELECT count(*) FROM slhook_event"
                     " WHERE message_id IS NULL") == 7,
          "none of the seven read yet");
    CHECK(found(&db, "m0") == 1 && found(&db, "m1") == 2 &&
              found(&db, "12345") == 1 && found(&db, "m9") == 0,
          "found by their bodies before the index");
    do {
        CHECK(slh_store_index(db.st, 3, &n, &err) == SLH_OK, "index: %s",
              err.text);
        total += n;
    } while (n == 3 && total < 20);
    CHECK(total == 7 && n < 3, "indexed all seven in batches of 3: %zu", total);
    CHECK(found(&db, "m0") == 1 && found(&db, "m1") == 2 &&
              found(&db, "12345") == 1 && found(&db, "m9") == 0,
          "found by their column after it");
    CHECK(admin(&db, "SELECT count(*) FROM slhook_event"
                     " WHERE message_id IS NULL") == 0 &&
              admin(&db, "SELECT count(*) FROM slhook_event"
                         " WHERE message_id = ''") == 1,
          "every one read, the one without a MessageId as ''");
    CHECK(put_events(&db, "n", 1) &&
              slh_store_index(db.st, 3, &n, &err) == SLH_OK && n == 0 &&
              found(&db, "n0") == 1,
          "a new event: found, nothing to index (%zu)", n);
out:
    db_close(&db);
}

int
main(void)
{
    test_grace();
    test_relock();
    test_lock_elsewhere();
    test_zombie();
    test_purge_race();
    test_upgrade();
    test_upgrade_3();
    return check_summary();
}

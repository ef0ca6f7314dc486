/* store_sqlite_put.c: storing events, and the tasks that share their
 * transaction. */
#include "store_sqlite.h"

#include <stdlib.h>
#include <string.h>

/* ON CONFLICT rather than INSERT OR IGNORE: OR IGNORE would also swallow a
 * NOT NULL violation, silently dropping an event. (at, id) is unique exactly
 * when id is: at is a function of the DateTime the id hashes (event.h). */
static const char insert_event_sql[] =
    "INSERT INTO event(id, type, tracking, received, body, at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(at, id) DO NOTHING";

/* An event stored under the id an older slhook gave it (event.h). */
static const char find_legacy_sql[] =
    "SELECT 1 FROM event WHERE at = ?1 AND id = ?2";

static const char insert_delivery_sql[] =
    "INSERT INTO delivery(dest, seq, state, due, attempts)"
    " VALUES (?1, ?2, 0, ?3, 0)"; /* 0: SLH_PENDING */

/* Frees the n bodies not handed to SQLite yet (NULL entries are), and the
 * array. */
static void
free_bodies(char **bodies, size_t n)
{
    for (size_t i = 0; bodies != NULL && i < n; i++)
        free(bodies[i]);
    free(bodies);
}

/*
 * The relay body of every event but Validations of the n batches, in order,
 * into a new array *out of *count strings; NULL for an event whose body
 * slh_batch_bodies() made already. SLH_ENOMEM leaves nothing.
 */
static enum slh_err
make_bodies(const struct slh_batch *const *batches, size_t n, char ***out,
            size_t *count)
{
    size_t total = 0, k = 0;
    char **bodies;

    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; batches[i] != NULL && j < batches[i]->n; j++)
            total += !batches[i]->events[j].is_validation;
    bodies = calloc(total + 1, sizeof(*bodies));
    if (bodies == NULL)
        return SLH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; batches[i] != NULL && j < batches[i]->n; j++) {
            const struct slh_event *ev = &batches[i]->events[j];
            if (ev->is_validation)
                continue;
            if (ev->body != NULL) {
                k++; /* made already: stored from the event */
                continue;
            }
            bodies[k] = slh_event_body(ev);
            if (bodies[k++] == NULL) {
                free_bodies(bodies, k);
                return SLH_ENOMEM;
            }
        }
    }
    *out = bodies;
    *count = total;
    return SLH_OK;
}

/* Stores one new event's delivery rows. */
static int
add_deliveries(struct slh_sqlite *sq, const struct slh_config *cfg,
               const struct slh_event *ev, sqlite3_int64 seq, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = slh_sqlite_prepare(sq, insert_delivery_sql, &st);

    rc = rc == SQLITE_OK ? SQLITE_DONE : rc;
    for (size_t i = 0; i < cfg->n_dests && rc == SQLITE_DONE; i++) {
        const struct slh_dest *d = &cfg->dests[i];

        if (!slh_dest_wants(d, ev->type, ev->tracking))
            continue;
        sqlite3_bind_text(st, 1, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, seq);
        sqlite3_bind_int64(st, 3, now_ms);
        rc = slh_sqlite_run(st);
    }
    return rc;
}

/*
 * Whether ev, whose id is new, was stored under its legacy id by an older
 * slhook: only events with a '|' or '\\' in an identity field have one, so
 * the others cost no lookup. Returns an SQLite result code: SQLITE_ROW when
 * it was, SQLITE_DONE when not.
 */
static int
find_legacy(struct slh_sqlite *sq, const struct slh_event *ev)
{
    sqlite3_stmt *st;
    int rc;

    if (ev->legacy_id[0] == '\0')
        return SQLITE_DONE;
    rc = slh_sqlite_prepare(sq, find_legacy_sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, ev->at);
    sqlite3_bind_text(st, 2, ev->legacy_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    slh_sqlite_release(st);
    return rc;
}

/* Stores ev, with body (owned, NULL: ev's own) and its delivery rows
 * unless it is a duplicate; *fresh counts the new ones. An SQLite result
 * code, SQLITE_DONE when stored or a duplicate. */
static int
insert_event(struct slh_sqlite *sq, const struct slh_config *cfg,
             const struct slh_event *ev, char *body, int64_t now_ms,
             size_t *fresh)
{
    sqlite3_stmt *st = NULL;
    int rc = find_legacy(sq, ev);

    if (rc == SQLITE_ROW || rc != SQLITE_DONE) {
        free(body); /* a duplicate, stored by an older slhook, or a failure */
        return rc == SQLITE_ROW ? SQLITE_DONE : rc;
    }
    rc = slh_sqlite_prepare(sq, insert_event_sql, &st);
    if (rc != SQLITE_OK) {
        free(body);
        return rc;
    }
    sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, ev->tracking);
    sqlite3_bind_int64(st, 4, now_ms);
    sqlite3_bind_int64(st, 6, ev->at);
    /* SQLite owns body from here, even if binding fails. */
    if (body != NULL)
        sqlite3_bind_text(st, 5, body, -1, free);
    else
        sqlite3_bind_text(st, 5, ev->body, -1, SQLITE_STATIC);
    rc = slh_sqlite_run(st);
    if (rc != SQLITE_DONE || sqlite3_changes(sq->db) == 0)
        return rc; /* a failure, or a duplicate */
    (*fresh)++;
    return add_deliveries(sq, cfg, ev, sqlite3_last_insert_rowid(sq->db),
                          now_ms);
}

/* Every event of the n batches but Validations, bodies[] (made before the
 * transaction, handed over one by one) in their order. */
static enum slh_err
insert_all(struct slh_sqlite *sq, const struct slh_config *cfg,
           const struct slh_batch *const *batches, size_t n, char **bodies,
           int64_t now_ms, size_t *fresh, struct slh_error *err)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        const struct slh_batch *b = batches[i];

        for (size_t j = 0; b != NULL && j < b->n; j++) {
            const struct slh_event *ev = &b->events[j];
            char *body;

            if (ev->is_validation)
                continue;
            body = bodies[k];
            bodies[k++] = NULL;
            if (insert_event(sq, cfg, ev, body, now_ms, fresh) != SQLITE_DONE)
                return slh_sqlite_fail(sq, NULL, err);
        }
    }
    return SLH_OK;
}

/* Whether sq's commits fsync (synchronous=FULL, as opened) or leave that
 * to the next one that does (NORMAL). Only outside a transaction. */
static void
set_full_sync(struct slh_sqlite *sq, bool is_full)
{
    static const char full_sql[] = "PRAGMA synchronous=FULL";
    static const char normal_sql[] = "PRAGMA synchronous=NORMAL";
    sqlite3_stmt *st = NULL;

    if (slh_sqlite_prepare(sq, is_full ? full_sql : normal_sql, &st) ==
        SQLITE_OK)
        (void)slh_sqlite_run(st);
}

/* Checked last, to keep the window before COMMIT small: whether the
 * transaction would write into files no longer at the spool's path. SQLite
 * would go on writing into the unlinked files and report success, every
 * event lost at close; its own SQLITE_FCNTL_HAS_MOVED only looks at the
 * database file, hence the identities noted when opening. Tasks alone may
 * commit into a spool removed whole (nothing else sees its files any
 * more), never into a WAL that is not its database's. */
static enum slh_err
check_moved(struct slh_sqlite *sq, bool is_tasks_only, struct slh_error *err)
{
    if (!slh_sqlite_is_file(sq->path, sq->db_dev, sq->db_ino)) {
        sq->is_stale = true;
        if (is_tasks_only)
            return SLH_OK;
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: removed or replaced while open",
                             sq->path);
    }
    if (!slh_sqlite_is_file(sq->wal_path, sq->wal_dev, sq->wal_ino)) {
        sq->is_wal_lost = true;
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: -wal file removed while open; "
                             "restart slhook",
                             sq->path);
    }
    return SLH_OK;
}

/* What one put is asked to do, and has done. */
struct put {
    const struct slh_config *cfg;
    const struct slh_batch *const *batches;
    size_t n;
    char **bodies; /* each handed to SQLite in turn, NULL from then */
    size_t n_bodies;
    const struct slh_store_task *tasks;
    size_t n_tasks;
    int64_t now_ms;
    size_t fresh;       /* new events stored */
    bool is_tasks_only; /* tasks, and no event to store */
};

/* The transaction of a put, from the writers' lock to the commit. */
static enum slh_err
put_tx(struct slh_sqlite *sq, struct put *p, struct slh_error *err)
{
    bool own;
    enum slh_err e = slh_sqlite_begin(sq, NULL, &own, err);

    if (e != SLH_OK)
        return e;
    e = insert_all(sq, p->cfg, p->batches, p->n, p->bodies, p->now_ms,
                   &p->fresh, err);
    for (size_t i = 0; e == SLH_OK && i < p->n_tasks; i++)
        e = p->tasks[i].fn(&sq->base, p->tasks[i].arg, err);
    if (e == SLH_OK)
        e = check_moved(sq, p->is_tasks_only, err);
    return slh_sqlite_end(sq, own, e, err);
}

enum slh_err
slh_sqlite_put_tasks(struct slh_store *st, const struct slh_config *cfg,
                     const struct slh_batch *const *batches, size_t n,
                     const struct slh_store_task *tasks, size_t n_tasks,
                     int64_t now_ms, size_t *n_new, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    struct put p = {cfg, batches, n, NULL, 0, tasks, n_tasks, now_ms, 0, false};
    enum slh_err e;

    /* Within one process SQLite shares the WAL index of a database file
     * between connections, so a new connection to the same database would
     * pair the old, unlinked WAL's index with the new -wal file: no reopening
     * until the database itself is a new file. */
    if (sq->is_wal_lost && slh_sqlite_is_file(sq->path, sq->db_dev, sq->db_ino))
        return slh_error_set(err, SLH_ESTORE,
                             "spool %s: -wal file removed while open; "
                             "restart slhook",
                             sq->path);
    /* The relay bodies are made before BEGIN: the transaction, which every
     * other writer waits for, holds only the inserts. */
    if (make_bodies(batches, n, &p.bodies, &p.n_bodies) != SLH_OK)
        return slh_error_set(err, SLH_ESTORE, "spool %s: out of memory",
                             sq->path);
    /* Tasks alone never make a new spool: only events to store do, as a
     * deliverer's own connection leaves that to the receiver. Until then
     * they go on in the removed spool's files, as it would. */
    p.is_tasks_only = p.n_bodies == 0 && n_tasks > 0;
    e = SLH_OK;
    if ((sq->is_stale || sq->is_wal_lost) && !p.is_tasks_only)
        e = slh_sqlite_reopen(sq, err);
    if (e == SLH_OK) {
        if (p.is_tasks_only)
            set_full_sync(sq, false);
        e = put_tx(sq, &p, err);
        if (p.is_tasks_only)
            set_full_sync(sq, true);
    }
    if (e == SLH_OK && n_new != NULL)
        *n_new = p.fresh;
    free_bodies(p.bodies, p.n_bodies);
    return e;
}

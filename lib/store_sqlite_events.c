/* store_sqlite_events.c: reading stored events with their delivery rows,
 * and queueing a window of them again. */
#include "store_sqlite.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Newest first through event_received; the window is always bound (the
 * widest when not given) so that the index bounds the scan. */
static const char list_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM event"
    " WHERE received >= ?1 AND received < ?2"
    " AND (?3 IS NULL OR type = ?3 COLLATE NOCASE)"
    " ORDER BY received DESC, seq DESC";

/* One MessageId's events: those the message table has (version 8), and
 * those past its last seq, not indexed yet, read one by one (a deliverer
 * indexes them in its idle moments: slh_sqlite_index()); +received keeps
 * the planner off event_received, which would read the whole window. */
static const char list_mid_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM event"
    " WHERE seq IN (SELECT seq FROM message WHERE message_id = ?4"
    " UNION ALL SELECT seq FROM event"
    " WHERE seq > (SELECT coalesce(max(seq), 0) FROM message)"
    " AND json_extract(body, '$.MessageId') = ?4)"
    " AND +received >= ?1 AND +received < ?2"
    " AND (?3 IS NULL OR type = ?3 COLLATE NOCASE)"
    " ORDER BY received DESC, seq DESC";

/* An Address: no index has it (one would cost every receive a write), so
 * the newest ?6 events of the window are read, bodies and all. */
static const char list_address_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM"
    " (SELECT * FROM event WHERE received >= ?1 AND received < ?2"
    " ORDER BY received DESC, seq DESC LIMIT ?6)"
    " WHERE json_extract(body, '$.Address') = ?5 COLLATE NOCASE"
    " AND (?3 IS NULL OR type = ?3 COLLATE NOCASE)"
    " AND (?4 IS NULL OR json_extract(body, '$.MessageId') = ?4)"
    " ORDER BY received DESC, seq DESC";

/* An id prefix: no index has ids first (each event would land on a random
 * page of it), so the inner query reads the covering (at, id) index whole,
 * not the bodies: 2 s for ten million events. ?2 is the prefix's first 8
 * characters, which every prefix given has (SLH_STORE_PREFIX_MIN). */
static const char find_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM event"
    " WHERE seq IN (SELECT seq FROM event WHERE substr(id, 1, 8) = ?2"
    " AND substr(id, 1, length(?1)) = ?1 LIMIT 2)";

_Static_assert(SLH_STORE_PREFIX_MIN == 8, "find_sql's substr(id, 1, 8)");

static const char row_sql[] =
    "SELECT state, attempts, last_status, last_error, due, done, owner"
    " FROM delivery WHERE dest = ?1 AND seq = ?2";

/* A copy of column i's text, "" for NULL; NULL when out of memory. */
static char *
column_dup(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);

    return strdup(t != NULL ? (const char *)t : "");
}

/* The event of list_sql's or find_sql's current row into *ev. */
static enum slh_err
read_event(sqlite3_stmt *q, struct slh_store_event *ev, struct slh_error *err)
{
    const unsigned char *id = sqlite3_column_text(q, 1);

    memset(ev, 0, sizeof(*ev));
    ev->seq = sqlite3_column_int64(q, 0);
    snprintf(ev->id, sizeof(ev->id), "%s", id != NULL ? (const char *)id : "");
    ev->tracking = sqlite3_column_int(q, 3);
    ev->at = sqlite3_column_int64(q, 4);
    ev->received = sqlite3_column_int64(q, 5);
    ev->type = column_dup(q, 2);
    ev->body = column_dup(q, 6);
    if (ev->type == NULL || ev->body == NULL) {
        slh_store_event_free(ev);
        return slh_error_set(err, SLH_ENOMEM, "events: out of memory");
    }
    return SLH_OK;
}

/* Reads the row of (dest, seq) into *r (dest not set): SQLITE_ROW, or
 * SQLITE_DONE when there is none, or an error. */
static int
read_row(struct slh_sqlite *sq, const char *dest, int64_t seq,
         struct slh_store_row *r, bool *is_leased)
{
    sqlite3_stmt *q = NULL;
    int rc = slh_sqlite_prepare(sq, row_sql, &q);

    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(q, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, seq);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const unsigned char *e = sqlite3_column_text(q, 3);
        r->state = sqlite3_column_int(q, 0);
        r->attempts = sqlite3_column_int(q, 1);
        r->last_status = sqlite3_column_int(q, 2);
        snprintf(r->last_error, sizeof(r->last_error), "%s",
                 e != NULL ? (const char *)e : "");
        slh_store_utf8_mend(r->last_error);
        r->due = sqlite3_column_int64(q, r->state == SLH_PENDING ? 4 : 5);
        r->revived = r->state == SLH_PENDING ? sqlite3_column_int64(q, 5) : 0;
        r->is_retrying = r->state == SLH_PENDING && r->attempts > 0 &&
                         sqlite3_column_type(q, 3) != SQLITE_NULL;
        if (is_leased != NULL)
            *is_leased = r->state == SLH_PENDING &&
                         sqlite3_column_type(q, 6) != SQLITE_NULL;
    }
    slh_sqlite_release(q);
    return rc;
}

/* Every delivery row of ev, one lookup per destination that has rows. */
static enum slh_err
read_rows(struct slh_sqlite *sq, char **dests, size_t n_dests,
          struct slh_store_event *ev, struct slh_error *err)
{
    ev->rows = calloc(n_dests > 0 ? n_dests : 1, sizeof(*ev->rows));
    if (ev->rows == NULL)
        return slh_error_set(err, SLH_ENOMEM, "events: out of memory");
    for (size_t i = 0; i < n_dests; i++) {
        struct slh_store_row *r = &ev->rows[ev->n_rows];
        int rc = read_row(sq, dests[i], ev->seq, r, NULL);

        if (rc == SQLITE_DONE)
            continue;
        if (rc != SQLITE_ROW)
            return slh_sqlite_fail(sq, "events", err);
        r->dest = strdup(dests[i]);
        if (r->dest == NULL)
            return slh_error_set(err, SLH_ENOMEM, "events: out of memory");
        ev->n_rows++;
    }
    return SLH_OK;
}

/* Whether ev's rows pass f's destination and state conditions. */
static bool
is_wanted(const struct slh_store_event *ev, const struct slh_store_filter *f)
{
    if (f->dest == NULL && f->states == 0 && !f->is_retrying)
        return true;
    for (size_t i = 0; i < ev->n_rows; i++) {
        const struct slh_store_row *r = &ev->rows[i];

        if ((f->dest == NULL || strcmp(r->dest, f->dest) == 0) &&
            (f->states == 0 || (f->states >> r->state & 1u) != 0) &&
            (!f->is_retrying || r->is_retrying))
            return true;
    }
    return false;
}

/* The list's loop: events read, rows read, f applied, up to limit. */
static enum slh_err
list(struct slh_sqlite *sq, sqlite3_stmt *q, const struct slh_store_filter *f,
     char **dests, size_t n_dests, struct slh_store_event *out, size_t *n,
     struct slh_error *err)
{
    size_t limit = f->limit > 0 ? f->limit : SLH_STORE_LIST_LIMIT;
    enum slh_err rc = SLH_OK;
    int r = SQLITE_DONE;

    while (*n < limit && (r = sqlite3_step(q)) == SQLITE_ROW) {
        rc = read_event(q, &out[*n], err);
        if (rc == SLH_OK)
            rc = read_rows(sq, dests, n_dests, &out[*n], err);
        if (rc != SLH_OK) {
            slh_store_event_free(&out[*n]);
            return rc;
        }
        if (is_wanted(&out[*n], f))
            (*n)++;
        else
            slh_store_event_free(&out[*n]);
    }
    return *n < limit && r != SQLITE_DONE ? slh_sqlite_fail(sq, "events", err)
                                          : SLH_OK;
}

/*
 * A state few rows are in (dead letters, retrying ones) is listed through
 * delivery_due: its rows, RARE_ROWS at most, gathered and sorted, rather
 * than every event read newest first until enough match, which on a big
 * spool would read it all. Past RARE_ROWS the state is common enough for
 * that reading to end soon.
 */
#define RARE_ROWS 10000

static const char rare_sql[] =
    "SELECT d.seq, e.received FROM delivery d JOIN event e ON e.seq = d.seq"
    " WHERE d.dest = ?1 AND d.state = ?2"
    " AND +e.received >= ?3 AND +e.received < ?4"
    " AND (?5 IS NULL OR e.type = ?5 COLLATE NOCASE) LIMIT ?6";
static const char by_seq_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM event"
    " WHERE seq = ?1";

struct hit {
    int64_t received;
    int64_t seq;
};

/* Newest first, as list_sql orders. */
static int
hit_cmp(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;

    if (x->received != y->received)
        return x->received < y->received ? 1 : -1;
    return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

/* Adds dest's rows in state (within f's window and Type) to hits (room for
 * RARE_ROWS); *is_rare false when they do not fit. */
static enum slh_err
gather(struct slh_sqlite *sq, const struct slh_store_filter *f,
       const char *dest, int state, struct hit *hits, size_t *n_hits,
       bool *is_rare, struct slh_error *err)
{
    sqlite3_stmt *q = NULL;
    int r;

    if (slh_sqlite_prepare(sq, rare_sql, &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "events", err);
    sqlite3_bind_text(q, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, state);
    sqlite3_bind_int64(q, 3, f->since > 0 ? f->since : INT64_MIN);
    sqlite3_bind_int64(q, 4, f->until > 0 ? f->until : INT64_MAX);
    if (f->type != NULL)
        sqlite3_bind_text(q, 5, f->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, (int64_t)(RARE_ROWS - *n_hits) + 1);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n_hits == RARE_ROWS) {
            *is_rare = false;
            r = SQLITE_DONE;
            break;
        }
        hits[*n_hits].seq = sqlite3_column_int64(q, 0);
        hits[(*n_hits)++].received = sqlite3_column_int64(q, 1);
    }
    slh_sqlite_release(q);
    return r == SQLITE_DONE ? SLH_OK : slh_sqlite_fail(sq, "events", err);
}

/* The event of seq, with its rows, into out[*n] when f wants it. */
static enum slh_err
list_seq(struct slh_sqlite *sq, const struct slh_store_filter *f, int64_t seq,
         char **dests, size_t n_dests, struct slh_store_event *out, size_t *n,
         struct slh_error *err)
{
    sqlite3_stmt *q = NULL;
    enum slh_err rc;

    if (slh_sqlite_prepare(sq, by_seq_sql, &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "events", err);
    sqlite3_bind_int64(q, 1, seq);
    rc = list(sq, q, f, dests, n_dests, out, n, err);
    slh_sqlite_release(q);
    return rc;
}

/* f's events through their rare rows, when *is_rare (else nothing). */
static enum slh_err
list_rare(struct slh_sqlite *sq, const struct slh_store_filter *f, char **dests,
          size_t n_dests, struct slh_store_event *out, size_t *n, bool *is_rare,
          struct slh_error *err)
{
    size_t limit = f->limit > 0 ? f->limit : SLH_STORE_LIST_LIMIT;
    const char *const *names =
        f->dest != NULL ? &f->dest : (const char *const *)dests;
    size_t n_names = f->dest != NULL ? 1 : n_dests, n_hits = 0;
    struct hit *hits = malloc(RARE_ROWS * sizeof(*hits));
    enum slh_err rc = SLH_OK;

    *is_rare = hits != NULL;
    for (size_t i = 0; i < n_names && *is_rare && rc == SLH_OK; i++)
        for (int s = SLH_PENDING; s <= SLH_DEAD && *is_rare && rc == SLH_OK;
             s++)
            if ((f->states >> s & 1u) != 0)
                rc = gather(sq, f, names[i], s, hits, &n_hits, is_rare, err);
    if (*is_rare && rc == SLH_OK)
        qsort(hits, n_hits, sizeof(*hits), hit_cmp);
    for (size_t i = 0; *is_rare && rc == SLH_OK && i < n_hits && *n < limit;
         i++)
        if (i == 0 || hits[i].seq != hits[i - 1].seq)
            rc = list_seq(sq, f, hits[i].seq, dests, n_dests, out, n, err);
    free(hits);
    return rc;
}

/* The statement that reads f's events: by Address, by MessageId (the
 * message table), or newest first. */
static const char *
list_sql_for(const struct slh_store_filter *f)
{
    if (f->address != NULL)
        return list_address_sql;
    return f->message_id != NULL ? list_mid_sql : list_sql;
}

/* An export's events, after a seq in seq order: the primary key's
 * range. */
static const char export_sql[] =
    "SELECT seq, id, type, tracking, at, received, body FROM event"
    " WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/* f's values bound to list_sql_for(f)'s statement q. */
static void
bind_filter(sqlite3_stmt *q, const struct slh_store_filter *f)
{
    sqlite3_bind_int64(q, 1, f->since > 0 ? f->since : INT64_MIN);
    sqlite3_bind_int64(q, 2, f->until > 0 ? f->until : INT64_MAX);
    if (f->type != NULL)
        sqlite3_bind_text(q, 3, f->type, -1, SQLITE_STATIC);
    if (f->message_id != NULL)
        sqlite3_bind_text(q, 4, f->message_id, -1, SQLITE_STATIC);
    if (f->address != NULL) {
        sqlite3_bind_text(q, 5, f->address, -1, SQLITE_STATIC);
        sqlite3_bind_int64(
            q, 6, f->scan > 0 ? (int64_t)f->scan : SLH_STORE_ADDRESS_SCAN);
    }
}

/* The list's read transaction: the destinations, then the events; an
 * export's (after a seq: after >= 0) up to f->limit, f's other fields
 * zero. */
static enum slh_err
list_tx(struct slh_sqlite *sq, const struct slh_store_filter *f, int64_t after,
        struct slh_store_event *out, size_t *n, struct slh_error *err)
{
    sqlite3_stmt *q = NULL;
    char **dests = NULL;
    size_t n_dests = 0;
    bool is_rare = false;
    enum slh_err rc = slh_sqlite_dests(&sq->base, &dests, &n_dests, err);

    if (rc == SLH_OK && f->states != 0 && f->message_id == NULL &&
        f->address == NULL)
        rc = list_rare(sq, f, dests, n_dests, out, n, &is_rare, err);
    if (rc == SLH_OK && !is_rare &&
        slh_sqlite_prepare(sq, after < 0 ? list_sql_for(f) : export_sql, &q) !=
            SQLITE_OK)
        rc = slh_sqlite_fail(sq, "events", err);
    if (rc == SLH_OK && !is_rare) {
        if (after < 0) {
            bind_filter(q, f);
        } else {
            sqlite3_bind_int64(q, 1, after);
            sqlite3_bind_int64(q, 2, (int64_t)f->limit);
        }
        rc = list(sq, q, f, dests, n_dests, out, n, err);
    }
    slh_sqlite_release(q);
    slh_store_dests_free(dests, n_dests);
    return rc;
}

/* slh_sqlite_events(), or with after >= 0 slh_sqlite_export(). */
static enum slh_err
read_list(struct slh_sqlite *sq, const struct slh_store_filter *f,
          int64_t after, struct slh_store_event **events, size_t *n,
          struct slh_error *err)
{
    size_t limit = f->limit > 0 ? f->limit : SLH_STORE_LIST_LIMIT;
    struct slh_store_event *out = calloc(limit, sizeof(*out));
    enum slh_err rc;
    bool own;

    if (out == NULL)
        return slh_error_set(err, SLH_ENOMEM, "events: out of memory");
    /* One read transaction: the rows agree with their events. */
    rc = slh_sqlite_read_begin(sq, "events", &own, err);
    if (rc == SLH_OK)
        rc = list_tx(sq, f, after, out, n, err);
    slh_sqlite_read_end(sq, own);
    return slh_store_events_out(out, n, rc, events);
}

enum slh_err
slh_sqlite_events(struct slh_store *st, const struct slh_store_filter *f,
                  struct slh_store_event **events, size_t *n,
                  struct slh_error *err)
{
    return read_list(slh_sqlite(st), f, -1, events, n, err);
}

enum slh_err
slh_sqlite_export(struct slh_store *st, int64_t after, size_t max,
                  struct slh_store_event **events, size_t *n,
                  struct slh_error *err)
{
    struct slh_store_filter all = {.limit = max};

    return read_list(slh_sqlite(st), &all, after > 0 ? after : 0, events, n,
                     err);
}

/* The one event find_sql finds for id, with its rows. */
static enum slh_err
find(struct slh_sqlite *sq, const char *id, struct slh_store_event *ev,
     struct slh_error *err)
{
    sqlite3_stmt *q = NULL;
    enum slh_err rc = SLH_OK;
    int r;

    if (slh_sqlite_prepare(sq, find_sql, &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "event", err);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, id, SLH_STORE_PREFIX_MIN, SQLITE_STATIC);
    r = sqlite3_step(q);
    if (r == SQLITE_DONE)
        rc = slh_error_set(err, SLH_ENOTFOUND, "no event %s", id);
    else if (r != SQLITE_ROW)
        rc = slh_sqlite_fail(sq, "event", err);
    else
        rc = read_event(q, ev, err);
    if (rc == SLH_OK && (r = sqlite3_step(q)) != SQLITE_DONE) {
        slh_store_event_free(ev);
        rc = r == SQLITE_ROW ? slh_error_set(err, SLH_EINVAL,
                                             "event id %s is ambiguous: "
                                             "more than one event has it",
                                             id)
                             : slh_sqlite_fail(sq, "event", err);
    }
    slh_sqlite_release(q);
    return rc;
}

enum slh_err
slh_sqlite_event(struct slh_store *st, const char *id,
                 struct slh_store_event *ev, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    char **dests = NULL;
    size_t n_dests = 0;
    bool own;
    enum slh_err rc = slh_sqlite_read_begin(sq, "event", &own, err);

    if (rc == SLH_OK)
        rc = find(sq, id, ev, err);
    if (rc == SLH_OK)
        rc = slh_sqlite_dests(st, &dests, &n_dests, err);
    if (rc == SLH_OK)
        rc = read_rows(sq, dests, n_dests, ev, err);
    slh_sqlite_read_end(sq, own);
    slh_store_dests_free(dests, n_dests);
    if (rc != SLH_OK)
        slh_store_event_free(ev);
    return rc;
}

/* A chunk of the window, oldest first, after the last one's (received,
 * seq): a range on event_received, whose entries end with seq. */
static const char window_sql[] =
    "SELECT seq, type, tracking, received FROM event"
    " WHERE received >= ?1 AND received < ?2 AND (received, seq) > (?3, ?4)"
    " ORDER BY received, seq LIMIT ?5";
static const char requeue_sql[] =
    "UPDATE delivery SET state = 0, due = ?3, attempts = 0, done = ?3,"
    " owner = NULL WHERE dest = ?1 AND seq = ?2";
static const char backfill_sql[] =
    "INSERT INTO delivery(dest, seq, state, due, attempts, done)"
    " VALUES (?1, ?2, 0, ?3, 0, ?3)"; /* 0: SLH_PENDING */

/* Where a replay is: the window's events after (received, seq) are left. */
struct replay_at {
    int64_t received;
    int64_t seq;
    size_t count; /* rows queued (or, dry, that would be) so far */
};

/* Queues the event of seq for r->dest again, or for the first time, when
 * its row's state is one of r's states; at->count counts it. */
static enum slh_err
requeue_one(struct slh_sqlite *sq, const struct slh_store_replay *r,
            int64_t seq, int64_t now_ms, struct replay_at *at,
            struct slh_error *err)
{
    struct slh_store_row row = {0};
    unsigned states = r->states != 0 ? r->states : SLH_STORE_REPLAY_ANY;
    bool is_leased = false;
    sqlite3_stmt *st = NULL;
    int rc = read_row(sq, r->dest->name, seq, &row, &is_leased);
    unsigned bit = rc == SQLITE_ROW ? 1u << row.state : SLH_STORE_NO_ROW;

    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return slh_sqlite_fail(sq, "requeue", err);
    if ((states & bit) == 0 || is_leased)
        return SLH_OK;
    if (!r->is_dry_run) {
        if (slh_sqlite_prepare(sq,
                               rc == SQLITE_ROW ? requeue_sql : backfill_sql,
                               &st) != SQLITE_OK)
            return slh_sqlite_fail(sq, "requeue", err);
        sqlite3_bind_text(st, 1, r->dest->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, seq);
        sqlite3_bind_int64(st, 3, now_ms);
        if (slh_sqlite_run(st) != SQLITE_DONE)
            return slh_sqlite_fail(sq, "requeue", err);
    }
    at->count++;
    return SLH_OK;
}

/* One chunk of the window after at, in the transaction open: *n_seen gets
 * how many events it went through. */
static enum slh_err
requeue_chunk(struct slh_sqlite *sq, const struct slh_store_replay *r,
              int64_t now_ms, struct replay_at *at, size_t *n_seen,
              struct slh_error *err)
{
    sqlite3_stmt *q = NULL;
    enum slh_err rc = SLH_OK;
    int step = SQLITE_DONE;

    *n_seen = 0;
    if (slh_sqlite_prepare(sq, window_sql, &q) != SQLITE_OK)
        return slh_sqlite_fail(sq, "requeue", err);
    sqlite3_bind_int64(q, 1, r->since > 0 ? r->since : INT64_MIN);
    sqlite3_bind_int64(q, 2, r->until > 0 ? r->until : INT64_MAX);
    sqlite3_bind_int64(q, 3, at->received);
    sqlite3_bind_int64(q, 4, at->seq);
    sqlite3_bind_int64(q, 5, SLH_STORE_REPLAY_CHUNK);
    while (rc == SLH_OK && (step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(q, 1);
        int64_t seq = sqlite3_column_int64(q, 0);

        at->received = sqlite3_column_int64(q, 3);
        at->seq = seq;
        (*n_seen)++;
        if (slh_store_replay_wants(r, type != NULL ? type : "",
                                   sqlite3_column_int(q, 2)))
            rc = requeue_one(sq, r, seq, now_ms, at, err);
    }
    if (rc == SLH_OK && step != SQLITE_DONE)
        rc = slh_sqlite_fail(sq, "requeue", err);
    slh_sqlite_release(q);
    return rc;
}

enum slh_err
slh_sqlite_requeue(struct slh_store *st, const struct slh_store_replay *r,
                   int64_t now_ms, size_t *n, struct slh_error *err)
{
    struct slh_sqlite *sq = slh_sqlite(st);
    struct replay_at at = {INT64_MIN, INT64_MIN, 0};
    enum slh_err rc = SLH_OK;
    size_t seen = SLH_STORE_REPLAY_CHUNK;

    while (rc == SLH_OK && seen == SLH_STORE_REPLAY_CHUNK) {
        size_t before = at.count;
        bool own = false;

        if (r->is_dry_run) {
            rc = slh_sqlite_read_begin(sq, "requeue", &own, err);
            if (rc == SLH_OK)
                rc = requeue_chunk(sq, r, now_ms, &at, &seen, err);
            slh_sqlite_read_end(sq, own);
            continue;
        }
        rc = slh_sqlite_begin(sq, "requeue", &own, err);
        if (rc != SLH_OK)
            break;
        rc = requeue_chunk(sq, r, now_ms, &at, &seen, err);
        rc = slh_sqlite_end(sq, own, rc, err);
        if (rc != SLH_OK)
            at.count = before; /* rolled back */
    }
    if (n != NULL)
        *n = at.count;
    return rc;
}

/* The next events past the message table's last seq, in seq order. */
static const char index_sql[] =
    "INSERT INTO message(seq, message_id)"
    " SELECT seq, json_extract(body, '$.MessageId') FROM event"
    " WHERE seq > (SELECT coalesce(max(seq), 0) FROM message)"
    " ORDER BY seq LIMIT ?2";

enum slh_err
slh_sqlite_index(struct slh_store *st, size_t max, size_t *n,
                 struct slh_error *err)
{
    return slh_sqlite_change(slh_sqlite(st), "index", index_sql, NULL,
                             (int64_t)max, n, err);
}

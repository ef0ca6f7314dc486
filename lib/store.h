/* store.h: the durable queue, whatever keeps it.
 *
 * Every event the receiver accepts is stored here before it answers 200,
 * with a delivery row for each destination whose filter wants it; the
 * deliverers take their work from those rows. This header is the whole
 * contract between the front ends, the committer, the deliverer and the
 * command-line tool on one side, and the backend on the other: nothing in
 * it is a backend's. The backend is chosen from the config's `spool`
 * string (store.c): a postgresql:// or postgres:// URI is a PostgreSQL
 * spool (store_pg.h), anything else a directory, a SQLite spool
 * (store_sqlite.h). Adding one is a file with an ops table
 * (store_backend.h) and a line in store.c.
 *
 * An event is stored once: its identity is the hex SHA-256 of event.h
 * (slh_event_id()), and an event whose id, or whose legacy id
 * (slh_event_legacy_id()), is already stored is a duplicate. Validation
 * events are never stored. The secret key is never stored.
 *
 * A delivery row (destination, event) is pending, delivered or dead. A
 * deliverer claims due pending rows with a lease: the row's due time moves
 * past the attempt and the attempt is counted, in one write, so racing
 * deliverers (threads or processes) never take the same row. A claimed row
 * also names its owner (slh_store_owner_open()): when an owner dies, the
 * next deliverer to look takes back at once what it held
 * (slh_store_take_back()); the lease covers the rest (an owner alive but
 * stuck, a row claimed with no owner). For a pending row a store keeps
 * when slh_store_retry() or slh_store_requeue() revived it, so that
 * max_age counts from then.
 */
#ifndef SLH_STORE_H
#define SLH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "event.h"

#define SLH_STORE_ERROR_LEN 256 /* last_error buffer, NUL included */

enum slh_delivery_state { SLH_PENDING = 0, SLH_DELIVERED = 1, SLH_DEAD = 2 };

struct slh_store; /* opaque; one per thread */

/* What slh_store_open() may create. */
enum slh_store_create {
    SLH_STORE_CREATE,    /* the directory and the database, as needed */
    SLH_STORE_CREATE_DB, /* the database, in a directory that exists */
    SLH_STORE_EXISTING   /* nothing: the store must exist */
};

/*
 * Opens the store that spool (the config's string) names, creating what
 * how allows and upgrading an older schema in place. *out is a new handle,
 * released with slh_store_close(). On failure *out is NULL and err says
 * why, naming the place: SLH_ENOTFOUND when how forbade making what is
 * missing ("spool DIR: no spool yet", everything left as it was),
 * SLH_ESTORE otherwise. A store is trusted only when it is the running
 * user's own and writable by nobody else: otherwise the open fails
 * (SLH_ESTORE) before anything is made, naming the owner and the mode. A
 * reconnection after the store was removed (slh_store_put()) obeys the
 * same how.
 */
enum slh_err slh_store_open(struct slh_store **out, const char *spool,
                            enum slh_store_create how, struct slh_error *err);

/* Closes the handle. NULL is fine. */
void slh_store_close(struct slh_store *st);

/* What st has open, for messages ("DIR/slhook.db", a URI with its
 * password masked); borrowed from st. */
const char *slh_store_where(const struct slh_store *st);

/*
 * spool as messages show it: a URI's password (user:PASSWORD@,
 * password=PASSWORD) replaced by ***, anything else as it is. A new
 * string, NULL when out of memory. The config keeps one (spool_shown).
 */
char *slh_store_mask(const char *spool);

/*
 * Whether spool names a directory on this host (a SQLite spool), whose
 * owner and mode `slhook check` looks at; false for a store on a server.
 */
bool slh_store_is_local(const char *spool);

/*
 * One line about what st is, for `slhook check`, into buf (size bytes,
 * NUL-terminated, cut to fit): the engine and its version, the schema
 * version ("SQLite 3.40.1, schema 7"). SLH_ESTORE when it cannot be read.
 */
enum slh_err slh_store_describe(struct slh_store *st, char *buf, size_t size,
                                struct slh_error *err);

/*
 * Whether the store could take a write now, cheaply (GET .../health asks
 * on every probe): SLH_OK, or SLH_ESTORE with err saying what stands in
 * the way (not writable by this process, the disk full), naming the place
 * but no secret.
 */
enum slh_err slh_store_health(struct slh_store *st, struct slh_error *err);

/*
 * A consistency check of the whole store (slhook check): SLH_OK when it
 * finds nothing wrong, else SLH_ESTORE with the first problem in err. Reads
 * everything: not for the request path.
 */
enum slh_err slh_store_verify(struct slh_store *st, struct slh_error *err);

/*
 * Whether another store now lives where st's was opened (the directory
 * removed and made anew): st still reads the old one, where nothing new
 * arrives. False while it is the same, or while nothing is there yet.
 */
bool slh_store_is_replaced(struct slh_store *st);

/* What a connection is for: slh_store_role() tunes it. */
enum slh_store_role {
    /* Its writes (claims, outcomes) need not be durable one by one: a lost
     * outcome only repeats a delivery. It reads the queue in order, each
     * event once. */
    SLH_STORE_DELIVERER,
    /* It commits often, and others wait on each commit (slhook.fcgi's
     * committer): the store does its upkeep off this connection's commits
     * (SQLite: checkpoints, on a thread with a connection of its own,
     * started here and stopped by slh_store_close()). */
    SLH_STORE_COMMITTER,
};

/* Tunes st for role; a backend with nothing to tune returns SLH_OK. */
enum slh_err slh_store_role(struct slh_store *st, enum slh_store_role role,
                            struct slh_error *err);

/*
 * Where the store's own threads (SLH_STORE_COMMITTER's) tell what the
 * operator should hear, a failure of its upkeep: note(ctx, text) on that
 * thread, once per failure, again only when the text changes or after a
 * success (lib/ prints nothing). Set before slh_store_role(); note NULL
 * (the default) tells no one.
 */
void slh_store_on_note(struct slh_store *st,
                       void (*note)(void *ctx, const char *text), void *ctx);

/*
 * Stores, in one write that is durable (fsync'd) when this returns SLH_OK,
 * every event of the n batches except Validation ones: an event each, and
 * a pending delivery row (due now_ms) for each destination of cfg whose
 * filter wants it. Duplicates add nothing (above). *n_new (may be NULL)
 * gets the number of new events. On failure nothing at all is stored and
 * the result is SLH_ESTORE with the reason in err (disk full, read-only,
 * I/O error, the store removed or replaced since st opened it: then the
 * next put reopens it at its place, as a new process would).
 */
enum slh_err slh_store_put(struct slh_store *st, const struct slh_config *cfg,
                           const struct slh_batch *const *batches, size_t n,
                           int64_t now_ms, size_t *n_new,
                           struct slh_error *err);

/*
 * Work for a writer's transaction (slh_store_put_tasks()): fn(st, arg, err)
 * reads and writes through st inside it, and returns SLH_OK, or an error
 * that rolls the whole transaction back. A task may run again after such a
 * rollback (its effects undone), so whatever it hands out of the store is
 * its caller's only once the put it ran in returned SLH_OK.
 */
struct slh_store_task {
    enum slh_err (*fn)(struct slh_store *st, void *arg, struct slh_error *err);
    void *arg;
};

/*
 * slh_store_put(), and in the same transaction, after the inserts, the
 * n_tasks tasks in order: one write and one fsync for what would have been
 * several. A task's error fails the put with that error. Tasks alone (no
 * event to store) need not be durable at once, as a deliverer's own writes;
 * the next put that stores events makes them so with its own, and they
 * never make a new store where one was removed.
 */
enum slh_err slh_store_put_tasks(struct slh_store *st,
                                 const struct slh_config *cfg,
                                 const struct slh_batch *const *batches,
                                 size_t n, const struct slh_store_task *tasks,
                                 size_t n_tasks, int64_t now_ms, size_t *n_new,
                                 struct slh_error *err);

/*
 * Claim, finish, unclaim and take back each make a write of their own,
 * unless st is inside a writer's transaction already (as a task of
 * slh_store_put_tasks()): then they join it, and what they did stands or
 * falls with it.
 */

/* One claimed delivery row and what is needed to attempt it. */
struct slh_claim {
    int64_t seq;      /* the event's number in this store */
    int attempts;     /* attempts made, the claimed one included */
    int64_t received; /* unix ms the event was stored */
    int64_t revived;  /* unix ms it was retried or requeued, or 0 */
    char id[SLH_EVENT_ID_LEN + 1]; /* event id, hex */
    char *body;                    /* owned: the relay body, NUL-terminated */
    size_t body_len;
};

/* What an attempt came to, to be recorded by slh_store_finish(). */
struct slh_outcome {
    const char *dest;              /* destination name, borrowed */
    int64_t seq;                   /* the claim's seq */
    char id[SLH_EVENT_ID_LEN + 1]; /* and that event's id: see finish */
    int64_t owner; /* the claim's owner token: see finish; 0 for any */
    int state;     /* enum slh_delivery_state: the row's new state */
    int64_t due;   /* when SLH_PENDING: the next attempt (unix ms) */
    int status;    /* HTTP status, 0 when there was none */
    char error[SLH_STORE_ERROR_LEN]; /* why it failed, "" when delivered */
};

/* A deliverer's identity in the rows it claims; opaque, made by a store. */
struct slh_store_owner;

/*
 * Makes *out a new owner for st's store, alive as long as this process
 * holds it (whatever way the process ends, it dies with it; a program the
 * process runs does not inherit it). On failure *out is NULL, which claims
 * as no one, and err says why (SLH_EIO).
 */
enum slh_err slh_store_owner_open(struct slh_store *st,
                                  struct slh_store_owner **out,
                                  struct slh_error *err);

/* The token o claims with: > 0, or 0 for NULL (rows owned by no one). */
int64_t slh_store_owner_token(const struct slh_store_owner *o);

/* Ends o, whose claims are given back or finished, and frees it. NULL is
 * fine. */
void slh_store_owner_close(struct slh_store_owner *o);

/*
 * Gives back every pending row that owners no longer alive had claimed (up
 * to a few of them per call), as unclaim does: due at now_ms, the claimed
 * attempt uncounted, owned by no one; self (a token, 0 for none) is never
 * taken for dead. A dead owner is forgotten once its rows are back, that
 * is once the write commits; if it rolls back, the next call finds it
 * again. *taken (may be NULL) gets how many rows. Writes nothing when no
 * owner died. Where an owner dies only with its process (SQLite's lock
 * files) it is dead at once; where it is held by a connection that may
 * drop while its process lives (PostgreSQL's), only once it has neither
 * its hold nor a beat (slh_store_owner_beat()) for twice
 * SLH_STORE_FENCE_MS: a killed process's rows come back within that and
 * a second.
 */
enum slh_err slh_store_take_back(struct slh_store *st, int64_t self,
                                 int64_t now_ms, size_t *taken,
                                 struct slh_error *err);

/*
 * How long a deliverer may go without a beat that answered SLH_OK before
 * it must take its claims as lost (slh_store_owner_beat()); the others
 * wait twice as long before they take them back, so that it has stopped
 * well before they start.
 */
#define SLH_STORE_FENCE_MS 2500

/*
 * Keeps owner o of st's store alive, and tells whether what it claimed is
 * still its own: SLH_OK when it is now (its hold on the store, re-taken
 * after a new connection if need be, and a beat recorded); else an error
 * (SLH_ESTORE: the store cannot be reached, the hold is another's, o was
 * taken for dead) with err saying why. A deliverer beats about once a
 * second. One whose last SLH_OK is SLH_STORE_FENCE_MS old cancels its
 * attempts in flight (as not made), claims nothing and holds no claim
 * until a beat answers SLH_OK again, with is_fresh: the caller holds none
 * of o's claims, and whatever is still claimed under o is given back, as
 * unclaim does (due now_ms), in the same call. Outcomes of o's attempts
 * are then recorded only for rows that still name o (slh_store_finish()).
 * o NULL, or a store whose owners die only with their process (SQLite's
 * lock files), answers SLH_OK and writes nothing: a claim there never
 * lapses, so no caller ever has is_fresh.
 */
enum slh_err slh_store_owner_beat(struct slh_store *st,
                                  struct slh_store_owner *o, int64_t now_ms,
                                  bool is_fresh, struct slh_error *err);

/*
 * Claims up to max pending rows of destination dest that are due at now_ms
 * (earliest due first), leasing them until now_ms + lease_ms to owner (a
 * token, 0 for none) and counting an attempt on each. claims[0..*n) are
 * filled in (release each with slh_store_claim_free()); *next_due (may be
 * NULL) gets the earliest due of dest's pending rows after the claim,
 * leased ones included, or INT64_MAX when none is pending. On failure
 * nothing is claimed, *n is 0 and err says why (SLH_ESTORE, SLH_ENOMEM).
 */
enum slh_err slh_store_claim(struct slh_store *st, const char *dest,
                             int64_t owner, int64_t now_ms, int64_t lease_ms,
                             size_t max, struct slh_claim *claims, size_t *n,
                             int64_t *next_due, struct slh_error *err);

/* Releases what c owns and zeroes it. NULL is fine. */
void slh_store_claim_free(struct slh_claim *c);

/*
 * Records n outcomes in one write, each row then owned by no one; now_ms
 * stamps delivered and dead rows. A row that is no longer pending (finished
 * by a deliverer whose lease it outlived) is left as it is, and so is one
 * whose seq now names an event other than id (the store was replaced since
 * the claim, and seqs started over), and, where an owner's claims can
 * lapse while it lives (slh_store_owner_beat()), one that no longer names
 * the outcome's owner (taken back, perhaps claimed again: another's
 * attempt, or soon one). An error text is stored as valid
 * UTF-8: a character cut off by the end of the buffer is dropped, any other
 * invalid byte becomes '?'. On failure nothing is recorded (SLH_ESTORE).
 */
enum slh_err slh_store_finish(struct slh_store *st, const struct slh_outcome *o,
                              size_t n, int64_t now_ms, struct slh_error *err);

/*
 * Gives back n claimed rows of dest (seqs) that were not attempted after
 * all, a deliverer stopping: due at now_ms, the claimed attempt uncounted,
 * owned by no one.
 */
enum slh_err slh_store_unclaim(struct slh_store *st, const char *dest,
                               const int64_t *seqs, size_t n, int64_t now_ms,
                               struct slh_error *err);

/*
 * *due gets the earliest due time of dest's pending rows (leased ones
 * included), or INT64_MAX when none is pending. dest NULL means every
 * destination in the store.
 */
enum slh_err slh_store_next_due(struct slh_store *st, const char *dest,
                                int64_t *due, struct slh_error *err);

/* One destination's numbers, for `slhook status`. */
struct slh_store_stats {
    int64_t pending;        /* not yet delivered nor dead (retrying included) */
    int64_t retrying;       /* of those, the ones whose last attempt failed */
    int64_t dead;           /* dead letters */
    int64_t delivered;      /* delivered */
    int64_t oldest_pending; /* unix ms the oldest pending event was received,
                               0 when nothing is pending */
    int last_status;        /* HTTP status of the latest recorded failure, 0 */
    char last_error[SLH_STORE_ERROR_LEN]; /* its text, "" when none */
};

/*
 * Fills *s with dest's numbers, all read at one moment. A destination
 * without rows gets zeros. last_error is valid UTF-8 whatever was stored
 * (mended as slh_store_finish() stores it).
 */
enum slh_err slh_store_stats(struct slh_store *st, const char *dest,
                             struct slh_store_stats *s, struct slh_error *err);

/*
 * Puts every dead letter of dest back in the queue: pending, due at now_ms,
 * attempts 0, with max_age counted afresh from now_ms. *n (may be NULL) gets
 * how many.
 */
enum slh_err slh_store_retry(struct slh_store *st, const char *dest,
                             int64_t now_ms, size_t *n, struct slh_error *err);

/*
 * Forgets what no longer needs keeping: delivered rows finished before
 * cutoff_ms, then events received before cutoff_ms with no delivery row
 * left (pending and dead rows keep their event), in short writes that never
 * keep receivers waiting long. *n (may be NULL) gets the number of events
 * forgotten. A forgotten event posted again is no longer recognised as a
 * duplicate: keep cutoff well beyond SocketLabs' four-day horizon.
 */
enum slh_err slh_store_purge(struct slh_store *st, int64_t cutoff_ms, size_t *n,
                             struct slh_error *err);

/*
 * Whether it is the caller's turn to purge: *is_due true once every_ms
 * for the whole store, whichever of the processes and hosts sharing it
 * asks first after every_ms since the last turn began (that one's turn is
 * then noted, so that the rest find *is_due false). The store keeps the
 * time: a SQLite spool the mtime of a stamp file in its directory, by
 * now_ms; a PostgreSQL spool a row, by the server's clock (the hosts'
 * may disagree), where two asking at once never both get true. On failure
 * *is_due is false.
 */
enum slh_err slh_store_purge_due(struct slh_store *st, int64_t every_ms,
                                 int64_t now_ms, bool *is_due,
                                 struct slh_error *err);

/*
 * *names gets a new array of the *n distinct destination names that have
 * delivery rows in st (any state; a destination removed from the config
 * keeps its rows), in byte order, each a new string; release with
 * slh_store_dests_free(). On failure *names is NULL, *n is 0 and err says
 * why (SLH_ESTORE, SLH_ENOMEM).
 */
enum slh_err slh_store_dests(struct slh_store *st, char ***names, size_t *n,
                             struct slh_error *err);

/* Releases what slh_store_dests() gave. NULL is fine. */
void slh_store_dests_free(char **names, size_t n);

/*
 * A number that changes whenever another handle (a receiver storing
 * events, another deliverer) has written to the store since: a deliverer
 * polls it to know when to look again. 0 when it cannot be read.
 */
int64_t slh_store_data_version(struct slh_store *st);

/* Milliseconds since the epoch, from CLOCK_REALTIME. */
int64_t slh_now_ms(void);

/*
 * Reading stored events, for `slhook events`, `show` and `replay`.
 */

/* One delivery row of a stored event. */
struct slh_store_row {
    char *dest;      /* owned */
    int state;       /* enum slh_delivery_state */
    int attempts;    /* attempts made */
    int last_status; /* HTTP status of the last attempt, 0 when none */
    char last_error[SLH_STORE_ERROR_LEN]; /* "" when none */
    int64_t due; /* pending: the next attempt (unix ms); else when finished */
    int64_t revived;  /* pending: unix ms slh_store_retry() or
                         slh_store_requeue() revived it (max_age counts from
                         then), 0 when never; else 0 */
    bool is_retrying; /* pending, and its last attempt failed */
};

/* A stored event with its delivery rows (in destination byte order). */
struct slh_store_event {
    int64_t seq;
    char id[SLH_EVENT_ID_LEN + 1];
    char *type;                 /* owned: Type as received */
    int tracking;               /* enum slh_tracking */
    int64_t at;                 /* slh_event_at() of its DateTime */
    int64_t received;           /* unix ms it was stored */
    char *body;                 /* owned: the relay body (no SecretKey) */
    struct slh_store_row *rows; /* owned */
    size_t n_rows;
};

/* Which events slh_store_events() lists. Zero (or NULL) fields mean any. */
struct slh_store_filter {
    const char *dest;       /* with a row for this destination */
    unsigned states;        /* a bit (1u << state) per wanted state of that row
                               (of any row without dest); 0: any */
    bool is_retrying;       /* of pending rows, only those that failed before */
    const char *type;       /* Type, in any case */
    const char *message_id; /* MessageId (so spelled in the body), exactly */
    int64_t since;          /* received at or after (unix ms); 0: no bound */
    int64_t until;          /* received before (unix ms); 0: no bound */
    size_t limit;           /* at most this many; 0: SLH_STORE_LIST_LIMIT */
    const char *address;    /* Address (so spelled in the body), in any case.
                               No index has it: only the newest scan events
                               of the window are read for it */
    size_t scan;            /* with address; 0: SLH_STORE_ADDRESS_SCAN */
};
#define SLH_STORE_LIST_LIMIT 50
#define SLH_STORE_ADDRESS_SCAN 100000

/*
 * The events that f selects, newest first (by received time, then by
 * arrival), each with every delivery row it has: *events a new array of *n,
 * released with slh_store_events_free(). On failure *events is NULL, *n 0
 * and err says why (SLH_ESTORE, SLH_ENOMEM).
 */
enum slh_err slh_store_events(struct slh_store *st,
                              const struct slh_store_filter *f,
                              struct slh_store_event **events, size_t *n,
                              struct slh_error *err);

/* Releases n events and the array. NULL is fine. */
void slh_store_events_free(struct slh_store_event *events, size_t n);

/*
 * What happened in each of n minutes from since_ms (a whole minute): into
 * received[i] the events received in minute i, into delivered[i] the
 * delivery rows delivered in it, of events received at or after from_ms
 * (at most since_ms). No index has a row's delivery time: the rows are
 * found through the events received since from_ms, so that the read stays
 * bound to the window; a later delivery of an event received before (a
 * dead letter retried days after, say) is not counted. On failure both
 * arrays are zeroed and err says why (SLH_ESTORE).
 */
enum slh_err slh_store_minutes(struct slh_store *st, int64_t since_ms, size_t n,
                               int64_t from_ms, int64_t *received,
                               int64_t *delivered, struct slh_error *err);

/*
 * Reads the one event whose id is id, or begins with id (at least
 * SLH_STORE_PREFIX_MIN lowercase hex characters), into *ev (released with
 * slh_store_event_free()). SLH_EINVAL for a prefix too short or not hex,
 * SLH_ENOTFOUND when no event has it, SLH_EINVAL too when more than one
 * has ("ambiguous"), with err saying which.
 */
#define SLH_STORE_PREFIX_MIN 8
enum slh_err slh_store_event(struct slh_store *st, const char *id,
                             struct slh_store_event *ev, struct slh_error *err);

/* Releases what *ev owns and zeroes it. NULL is fine. */
void slh_store_event_free(struct slh_store_event *ev);

/* What slh_store_requeue() queues again. Zero fields mean any. */
struct slh_store_replay {
    const struct slh_dest *dest; /* for this destination; its filter
                                    (slh_dest_wants()) applies */
    int64_t since;            /* received at or after (unix ms); 0: no bound */
    int64_t until;            /* received before (unix ms); 0: no bound */
    const char *const *types; /* of these Types (any case); */
    size_t n_types;           /* 0: every Type */
    unsigned states;          /* bits 1u << state of dest's row, and
                                 SLH_STORE_NO_ROW; 0: SLH_STORE_REPLAY_ANY */
    bool is_dry_run;          /* count only: nothing is written */
};
#define SLH_STORE_NO_ROW 8u /* a states bit: events without a row for dest */
/* The default: every row that is not pending, and no row yet (backfill). */
#define SLH_STORE_REPLAY_ANY                                                   \
    (1u << SLH_DELIVERED | 1u << SLH_DEAD | SLH_STORE_NO_ROW)

/*
 * Queues again, for r->dest, every event received in r's window, of r's
 * Types, that r->dest's filter accepts and whose row for it is in one of
 * r's states: due at now_ms, attempts 0, last error kept, and max_age
 * counted afresh from now_ms. The event keeps its id, and so the
 * webhook-id it is relayed with. An event with no row for dest gets one
 * (a backfill: a destination added after the events arrived), when states
 * has SLH_STORE_NO_ROW. A row claimed by an owner (slh_store_owner_open())
 * and not finished is left alone, in flight, and so is every other
 * destination's. The window is gone through oldest first in short writes
 * (SLH_STORE_REPLAY_CHUNK events each), so that receivers storing events
 * meanwhile never wait long; on failure the writes before stand. *n (may
 * be NULL) gets how many rows were queued (with is_dry_run: would be).
 */
#define SLH_STORE_REPLAY_CHUNK 1000
enum slh_err slh_store_requeue(struct slh_store *st,
                               const struct slh_store_replay *r, int64_t now_ms,
                               size_t *n, struct slh_error *err);

/*
 * Makes up to max more of the stored events findable by MessageId through
 * an index (a write of its own, or the task's), oldest first; *n gets how
 * many, fewer than max when none is left. Lookups (slh_store_events() with
 * message_id) find every event whether indexed or not, the rest by reading
 * it: this is work a backend may take off the receive path, for a
 * deliverer's idle moments. A backend that indexes as it stores does
 * nothing (*n 0).
 */
#define SLH_STORE_INDEX_BATCH 128 /* a deliverer's max: ~2 ms of a write */
enum slh_err slh_store_index(struct slh_store *st, size_t max, size_t *n,
                             struct slh_error *err);

/*
 * Copying one store into another (`slhook migrate`), whatever the backend
 * of either: the events read in batches from one, oldest first, and
 * written as they are into the other; each destination's breaker and pace
 * through slh_store_throttle_get() and slh_store_throttle_put().
 */

/* Events a batch holds: slh_store_export()'s max, slh_store_import()'s n. */
#define SLH_STORE_IMPORT_CHUNK 1000

/*
 * The events stored after seq after (0: from the first), in seq order (the
 * order they arrived in), at most max, each with every delivery row it has
 * as slh_store_events() gives them: *events a new array of *n, released
 * with slh_store_events_free(); fewer than max only when no more is
 * stored. The events and their rows are read at one moment. On failure
 * *events is NULL, *n 0 and err says why (SLH_ESTORE, SLH_ENOMEM).
 */
enum slh_err slh_store_export(struct slh_store *st, int64_t after, size_t max,
                              struct slh_store_event **events, size_t *n,
                              struct slh_error *err);

/*
 * Stores the n events as they are given (another store's, as
 * slh_store_export() read them), in one write that is durable (fsync'd)
 * when this returns SLH_OK, in their order: each event's id, at, type,
 * tracking, received and body (its seq is st's own), with its rows: dest,
 * state, attempts, last_status (0: none), last_error ("": none, unless
 * is_retrying), due (a finished row's is when it finished) and revived,
 * each owned by no one. An event whose (at, id) st holds already (a copy
 * made before, or the same event received by both) is skipped whole, its
 * rows in st left as they are: a copy made again adds only what is new,
 * and a copied event posted again is a duplicate. The tally of delivered
 * rows follows (slh_store_verify()). *n_new (may be NULL) gets the number
 * of events stored. On failure nothing is stored: SLH_EINVAL for an event
 * without its id, type or body, a row without its dest, or a state out of
 * range; SLH_ESTORE with the reason in err otherwise.
 */
enum slh_err slh_store_import(struct slh_store *st,
                              const struct slh_store_event *events, size_t n,
                              size_t *n_new, struct slh_error *err);

/*
 * *n gets how many owners (slh_store_owner_open()) other than self (a
 * token, 0 for none) are alive in st's store at this moment: the
 * deliverers running on it (each holds one from its start), on this host
 * or, for a store on a server, any. Reads only.
 */
enum slh_err slh_store_owners_alive(struct slh_store *st, int64_t self,
                                    size_t *n, struct slh_error *err);

/*
 * Protecting a destination (throttle.h decides; the store keeps it, so that
 * every deliverer of the spool shares it and a restart keeps it).
 */

/* One destination's breaker and pace. All zero: closed, no pace yet. */
struct slh_throttle_state {
    int failures;     /* consecutive failed attempts while closed */
    int64_t opened;   /* unix ms the breaker opened; 0: closed */
    int probes;       /* failed probes since it opened */
    int64_t probe_at; /* open: no probe starts before this (unix ms) */
    bool is_probing;  /* open: a probe is in flight */
    int64_t pace_us;  /* rate: the first start not yet reserved (unix us) */
};

/*
 * *s gets dest's state as last written, all zero when none was. Inside a
 * writer's transaction (a task), what it reads stays until the task's
 * slh_store_throttle_put(): read, decide and write in one task.
 */
enum slh_err slh_store_throttle_get(struct slh_store *st, const char *dest,
                                    struct slh_throttle_state *s,
                                    struct slh_error *err);

/* Writes dest's state (a write of its own, or the task's). */
enum slh_err slh_store_throttle_put(struct slh_store *st, const char *dest,
                                    const struct slh_throttle_state *s,
                                    struct slh_error *err);

/*
 * Makes dead letters of dest's pending rows, not claimed by an owner, that
 * are past max_age seconds since receipt (or revival, as
 * slh_retry_decide() counts it) at now_ms: done now_ms, the attempts kept,
 * last error why. For an open breaker's rows, which no attempt decides.
 * *n (may be NULL) gets how many, in one write.
 */
enum slh_err slh_store_expire(struct slh_store *st, const char *dest,
                              int64_t max_age, int64_t now_ms, const char *why,
                              size_t *n, struct slh_error *err);

#endif

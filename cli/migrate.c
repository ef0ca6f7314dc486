/* slhook migrate: one spool copied into another, whatever keeps either,
 * through the store's interface alone (store.h: slh_store_export(),
 * slh_store_import()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "store.h"

#define PROGRESS_EVERY 100000 /* events between two progress lines */

const char cmd_migrate_usage[] =
    "usage: slhook migrate [--force] FROM TO\n"
    "  copies every event of the spool FROM into the spool TO (each a\n"
    "  directory, a SQLite spool, or a postgresql:// URI), with each\n"
    "  destination's delivery row as it stands (pending, retrying, dead or\n"
    "  delivered) and each destination's breaker and pace. TO is made if\n"
    "  need be; FROM is only read. Events TO holds already are skipped, so\n"
    "  running it again copies only what arrived since. Stop the\n"
    "  deliverers of FROM first: it refuses while one runs, unless --force\n"
    "  (a row one finishes after it was copied is delivered again from TO)\n";

/* What a copy read and wrote. */
struct tally {
    size_t read, copied, rows;
};

/* The events of from, batch by batch in seq order, imported into to. */
static int
copy_events(struct slh_store *from, struct slh_store *to, struct tally *t)
{
    struct slh_error err = {0};
    int64_t after = 0;
    size_t n = SLH_STORE_IMPORT_CHUNK;

    while (n == SLH_STORE_IMPORT_CHUNK) {
        struct slh_store_event *ev = NULL;
        size_t fresh = 0;

        n = 0;
        if (slh_store_export(from, after, SLH_STORE_IMPORT_CHUNK, &ev, &n,
                             &err) != SLH_OK ||
            slh_store_import(to, ev, n, &fresh, &err) != SLH_OK) {
            slh_store_events_free(ev, n);
            fprintf(stderr,
                    "slhook: migrate: %s\n  %zu event(s) copied before "
                    "stand; run it again to go on (they are skipped)\n",
                    err.text, t->copied);
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            t->rows += ev[i].n_rows;
        if (n > 0)
            after = ev[n - 1].seq;
        if ((t->read + n) / PROGRESS_EVERY != t->read / PROGRESS_EVERY)
            fprintf(stderr, "slhook: migrate: %zu events read\n", t->read + n);
        t->read += n;
        t->copied += fresh;
        slh_store_events_free(ev, n);
    }
    return 0;
}

/* Whether s is a destination's state never written (store.h: all zero). */
static bool
is_unset(const struct slh_throttle_state *s)
{
    return s->failures == 0 && s->opened == 0 && s->probes == 0 &&
           s->probe_at == 0 && !s->is_probing && s->pace_us == 0;
}

/* name's breaker and pace, from from to to, unless to has its own already
 * (a deliverer on to wrote it: newer than from's); *n counts copies. */
static int
copy_throttle(struct slh_store *from, struct slh_store *to, const char *name,
              size_t *n)
{
    struct slh_throttle_state s, there;
    struct slh_error err = {0};
    bool is_copied = false;

    if (slh_store_throttle_get(from, name, &s, &err) == SLH_OK &&
        slh_store_throttle_get(to, name, &there, &err) == SLH_OK) {
        is_copied = !is_unset(&s) && is_unset(&there);
        if (!is_copied ||
            slh_store_throttle_put(to, name, &s, &err) == SLH_OK) {
            *n += is_copied;
            return 0;
        }
    }
    fprintf(stderr, "slhook: migrate: destination %s: %s\n", name, err.text);
    return 1;
}

/* Every destination from has rows for, and cfg's; their numbers in both
 * stores printed (from's, then to's). */
static int
copy_dests(struct slh_store *from, struct slh_store *to,
           const struct slh_config *cfg)
{
    struct slh_error err = {0};
    char **names = NULL;
    size_t n_names = 0, copied = 0;
    int rc = 0;

    if (slh_store_dests(from, &names, &n_names, &err) != SLH_OK) {
        fprintf(stderr, "slhook: migrate: %s\n", err.text);
        return 1;
    }
    for (size_t i = 0; i < n_names && rc == 0; i++) {
        struct slh_store_stats a, b;

        rc = copy_throttle(from, to, names[i], &copied);
        if (rc == 0 && slh_store_stats(from, names[i], &a, &err) == SLH_OK &&
            slh_store_stats(to, names[i], &b, &err) == SLH_OK)
            printf("destination %s: pending %lld (retrying %lld), dead %lld, "
                   "delivered %lld; in TO: %lld (%lld), %lld, %lld\n",
                   names[i], (long long)a.pending, (long long)a.retrying,
                   (long long)a.dead, (long long)a.delivered,
                   (long long)b.pending, (long long)b.retrying,
                   (long long)b.dead, (long long)b.delivered);
    }
    /* A configured destination without rows may still have a state. */
    for (size_t i = 0; i < cfg->n_dests && rc == 0; i++) {
        bool has_rows = false;

        for (size_t k = 0; k < n_names && !has_rows; k++)
            has_rows = strcmp(names[k], cfg->dests[i].name) == 0;
        if (!has_rows)
            rc = copy_throttle(from, to, cfg->dests[i].name, &copied);
    }
    slh_store_dests_free(names, n_names);
    if (rc == 0)
        printf("breaker and pace: copied for %zu destination(s)\n", copied);
    return rc;
}

/* FROM's deliverers: none, or --force. */
static int
check_deliverers(struct slh_store *from, bool is_forced)
{
    struct slh_error err = {0};
    size_t n = 0;

    if (slh_store_owners_alive(from, 0, &n, &err) != SLH_OK) {
        fprintf(stderr, "slhook: migrate: %s\n", err.text);
        return 1;
    }
    if (n == 0)
        return 0;
    fprintf(stderr,
            "slhook: migrate: %zu deliverer(s) running on %s (slhook "
            "deliver, or slhook.fcgi's own): %s: a row one finishes after "
            "it was copied is delivered again from TO\n",
            n, slh_store_where(from),
            is_forced ? "copying anyway (--force)"
                      : "stop them first, or pass --force");
    return is_forced ? 0 : 1;
}

/* The store of spool: FROM, which must exist (is_from), or TO, made as
 * needed. 0, or the exit status. */
static int
open_one(const char *spool, bool is_from, struct slh_store **sp)
{
    struct slh_error err = {0};
    enum slh_err e;

    if (!is_from && !cmd_may_make_spool(spool, "migrate"))
        return 1;
    e = slh_store_open(sp, spool,
                       is_from ? SLH_STORE_EXISTING : SLH_STORE_CREATE, &err);
    if (e == SLH_ENOTFOUND)
        fprintf(stderr, "slhook: migrate: %s: nothing to copy\n", err.text);
    else if (e != SLH_OK)
        fprintf(stderr, "slhook: migrate: %s\n", err.text);
    return e == SLH_OK ? 0 : 1;
}

/* The arguments: [--force] FROM TO. -1 to go on, else the exit status. */
static int
migrate_args(int argc, char **argv, bool *is_forced, const char **from,
             const char **to)
{
    int i = 1;

    *is_forced = argc > 1 && strcmp(argv[1], "--force") == 0;
    i += *is_forced;
    if (argc - i != 2 || argv[i][0] == '-' || argv[i + 1][0] == '-') {
        fputs(cmd_migrate_usage, stderr);
        return 2;
    }
    *from = argv[i];
    *to = argv[i + 1];
    if (strcmp(*from, *to) == 0) {
        fprintf(stderr, "slhook: migrate: FROM and TO are the same spool\n");
        return 2;
    }
    return -1;
}

int
cmd_migrate(int argc, char **argv, const struct slh_config *cfg)
{
    struct slh_store *from = NULL, *to = NULL;
    struct slh_error err = {0};
    struct tally t = {0};
    const char *from_spool = NULL, *to_spool = NULL;
    bool is_forced = false;
    int rc = migrate_args(argc, argv, &is_forced, &from_spool, &to_spool);

    if (rc >= 0)
        return rc;
    /* TO is made only once FROM is known to be there, and quiet. */
    rc = open_one(from_spool, true, &from);
    if (rc == 0)
        rc = check_deliverers(from, is_forced);
    if (rc == 0)
        rc = open_one(to_spool, false, &to);
    if (rc == 0) {
        printf("from %s\nto %s\n", slh_store_where(from), slh_store_where(to));
        rc = copy_events(from, to, &t);
    }
    if (rc == 0)
        printf("events: %zu read (with %zu delivery rows), %zu copied, %zu "
               "in TO already\n",
               t.read, t.rows, t.copied, t.read - t.copied);
    if (rc == 0)
        rc = copy_dests(from, to, cfg);
    if (rc == 0 && slh_store_verify(to, &err) != SLH_OK) {
        fprintf(stderr, "slhook: migrate: %s\n", err.text);
        rc = 1;
    }
    if (rc == 0)
        printf("%s: sound\n", slh_store_where(to));
    slh_store_close(from);
    slh_store_close(to);
    return rc == 0 && fflush(stdout) != 0 ? 1 : rc;
}

/* The operator tool's commands on stored events: events, show, replay.
 * Arguments in, the store's answers printed; what is shown is view.h's. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "kick.h"
#include "store.h"
#include "view.h"
#include "when.h"

#define LIMIT_MAX 100000 /* --limit: the list is held in memory */
#define SHOW_MAX 100     /* events show --message-id prints */

const char cmd_events_usage[] =
    "usage: slhook events [--dest NAME] [--state STATE] [--type TYPE]\n"
    "                     [--since TIME] [--until TIME] [--limit N] [--json]\n"
    "  the stored events, newest first (default limit 50): received time,\n"
    "  id (12 hex), Type, Address, MessageId and each destination's state\n"
    "  STATE: pending, retrying, dead or delivered (of --dest's row, else of\n"
    "  any row); --json: JSON Lines, one object per event\n"
    "  TIME: RFC 3339 (2026-12-02T10:00:00Z), a date (2026-12-02: midnight\n"
    "  UTC) or an age before now (45s, 90m, 2h, 3d)\n";

const char cmd_show_usage[] =
    "usage: slhook show ID | slhook show --message-id MID\n"
    "  one stored event (ID: the full id or a unique prefix of at least 8\n"
    "  hex characters), or every event with that MessageId: the body as\n"
    "  relayed, and per destination its state, attempts, last status, next\n"
    "  attempt and last error\n";

const char cmd_replay_usage[] =
    "usage: slhook replay DEST [--since TIME] [--until TIME] [--type TYPE]...\n"
    "                     [--state delivered|dead|any] [--dry-run]\n"
    "  queue again for DEST, due now, the stored events received in the\n"
    "  window that DEST's filter accepts (default --state any: delivered,\n"
    "  dead, or never queued for DEST, a backfill); they keep their\n"
    "  webhook-id. --dry-run counts and changes nothing.\n"
    "  TIME: as for events\n";

/* argv[*i]'s value into *value: false (usage said) when there is none. */
static bool
value_of(int argc, char **argv, int *i, const char **value, const char *usage)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "slhook: %s needs a value\n%s", argv[*i], usage);
        return false;
    }
    *value = argv[++*i];
    return true;
}

/* A TIME argument into *ms: false (said why) when it is none. */
static bool
time_of(const char *text, int64_t now, int64_t *ms)
{
    struct slh_error err = {0};

    if (slh_when_parse(text, now, ms, &err) == SLH_OK)
        return true;
    fprintf(stderr, "slhook: %s\n", err.text);
    return false;
}

/* The spool opened for reading: *sp NULL (and 0) when there is none yet,
 * said on stderr; 1 when it failed to open. */
static int
open_spool(const struct slh_config *cfg, const char *cmd, struct slh_store **sp)
{
    struct slh_error err = {0};

    switch (slh_store_open(sp, cfg->spool, SLH_STORE_EXISTING, &err)) {
    case SLH_OK:
        return 0;
    case SLH_ENOTFOUND:
        fprintf(stderr, "slhook: %s: no spool yet at %s: nothing received\n",
                cmd, cfg->spool_shown);
        return 0;
    default:
        fprintf(stderr, "slhook: %s: %s\n", cmd, err.text);
        return 1;
    }
}

/* Whether name is a destination: configured, or with rows left in sp. */
static bool
is_dest(const struct slh_config *cfg, struct slh_store *sp, const char *name)
{
    char **names = NULL;
    size_t n = 0;
    bool found = slh_config_dest(cfg, name) != NULL;

    if (!found && sp != NULL && slh_store_dests(sp, &names, &n, NULL) == SLH_OK)
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(names[i], name) == 0;
    slh_store_dests_free(names, n);
    return found;
}

/* A --limit value: 1 to LIMIT_MAX. */
static bool
limit_of(const char *text, size_t *limit)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 1 || v > LIMIT_MAX) {
        fprintf(stderr, "slhook: bad --limit '%s' (1 to %d)\n", text,
                LIMIT_MAX);
        return false;
    }
    *limit = (size_t)v;
    return true;
}

/* One option of events into f (and *json): false when it is bad. */
static bool
events_option(int argc, char **argv, int *i, struct slh_store_filter *f,
              bool *json, int64_t now)
{
    const char *opt = argv[*i], *v = NULL;

    if (strcmp(opt, "--json") == 0) {
        *json = true;
        return true;
    }
    if (!value_of(argc, argv, i, &v, cmd_events_usage))
        return false;
    if (strcmp(opt, "--dest") == 0)
        f->dest = v;
    else if (strcmp(opt, "--type") == 0)
        f->type = v;
    else if (strcmp(opt, "--state") == 0) {
        if (!slh_view_state_filter(v, &f->states, &f->is_retrying)) {
            fprintf(stderr,
                    "slhook: bad --state '%s' (pending, retrying, dead or "
                    "delivered)\n",
                    v);
            return false;
        }
    } else if (strcmp(opt, "--since") == 0)
        return time_of(v, now, &f->since);
    else if (strcmp(opt, "--until") == 0)
        return time_of(v, now, &f->until);
    else if (strcmp(opt, "--limit") == 0)
        return limit_of(v, &f->limit);
    else {
        fprintf(stderr, "slhook: events: unknown option '%s'\n%s", opt,
                cmd_events_usage);
        return false;
    }
    return true;
}

/* The window's bounds in order; else said. */
static bool
is_window(int64_t since, int64_t until)
{
    if (since == 0 || until == 0 || since < until)
        return true;
    fprintf(stderr, "slhook: --since must come before --until\n");
    return false;
}

/* Prints events as lines of text or JSON; false when out of memory. */
static bool
print_events(const struct slh_store_event *ev, size_t n, bool json)
{
    if (!json)
        puts(slh_view_header());
    for (size_t i = 0; i < n; i++) {
        char *line = json ? slh_view_json(&ev[i]) : slh_view_line(&ev[i]);
        if (line == NULL) {
            fprintf(stderr, "slhook: events: out of memory\n");
            return false;
        }
        puts(line);
        free(line);
    }
    return true;
}

int
cmd_events(int argc, char **argv, const struct slh_config *cfg)
{
    int64_t now = slh_now_ms();
    bool json = false;
    size_t n = 0;
    int rc;
    struct slh_store_filter f = {0};
    struct slh_store_event *ev = NULL;
    struct slh_store *sp = NULL;
    struct slh_error err = {0};

    for (int i = 1; i < argc; i++)
        if (!events_option(argc, argv, &i, &f, &json, now))
            return 2;
    if (!is_window(f.since, f.until))
        return 2;
    rc = open_spool(cfg, "events", &sp);
    if (rc == 0 && f.dest != NULL && !is_dest(cfg, sp, f.dest)) {
        fprintf(stderr, "slhook: events: no destination '%s' in %s\n", f.dest,
                cfg->path);
        rc = 1;
    }
    if (rc == 0 && sp != NULL &&
        slh_store_events(sp, &f, &ev, &n, &err) != SLH_OK) {
        fprintf(stderr, "slhook: events: %s\n", err.text);
        rc = 1;
    }
    if (rc == 0 && !print_events(ev, n, json))
        rc = 1;
    slh_store_events_free(ev, n);
    slh_store_close(sp);
    return rc == 0 && fflush(stdout) != 0 ? 1 : rc;
}

/* Prints one event as show does; false when out of memory. */
static bool
print_show(const struct slh_store_event *ev)
{
    char *text = slh_view_show(ev);

    if (text == NULL) {
        fprintf(stderr, "slhook: show: out of memory\n");
        return false;
    }
    fputs(text, stdout);
    free(text);
    return true;
}

/* show --message-id MID: every event with it, newest first. */
static int
show_message(struct slh_store *sp, const char *mid)
{
    struct slh_store_filter f = {.message_id = mid, .limit = SHOW_MAX};
    struct slh_store_event *ev = NULL;
    struct slh_error err = {0};
    size_t n = 0;
    int rc = 0;

    if (slh_store_events(sp, &f, &ev, &n, &err) != SLH_OK) {
        fprintf(stderr, "slhook: show: %s\n", err.text);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "slhook: show: no event with MessageId %s\n", mid);
        rc = 1;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            putchar('\n');
        if (!print_show(&ev[i]))
            rc = 1;
    }
    slh_store_events_free(ev, n);
    return rc;
}

/* show ID: the one event with that id, or id prefix. */
static int
show_id(struct slh_store *sp, const char *id)
{
    struct slh_store_event ev;
    struct slh_error err = {0};
    int rc = 0;

    if (slh_store_event(sp, id, &ev, &err) != SLH_OK) {
        fprintf(stderr, "slhook: show: %s\n", err.text);
        return 1;
    }
    if (!print_show(&ev))
        rc = 1;
    slh_store_event_free(&ev);
    return rc;
}

int
cmd_show(int argc, char **argv, const struct slh_config *cfg)
{
    struct slh_store *sp = NULL;
    const char *mid = NULL;
    int rc;

    if (argc == 3 && strcmp(argv[1], "--message-id") == 0)
        mid = argv[2];
    else if (argc != 2 || argv[1][0] == '-') {
        fputs(cmd_show_usage, stderr);
        return 2;
    }
    rc = open_spool(cfg, "show", &sp);
    if (rc == 0 && sp == NULL)
        rc = 1; /* no spool: no such event */
    if (rc == 0)
        rc = mid != NULL ? show_message(sp, mid) : show_id(sp, argv[1]);
    slh_store_close(sp);
    return rc == 0 && fflush(stdout) != 0 ? 1 : rc;
}

/* One option of replay into r: false when it is bad. types has room for
 * every argument. */
static bool
replay_option(int argc, char **argv, int *i, struct slh_store_replay *r,
              const char **types, int64_t now)
{
    const char *opt = argv[*i], *v = NULL;

    if (strcmp(opt, "--dry-run") == 0) {
        r->is_dry_run = true;
        return true;
    }
    if (!value_of(argc, argv, i, &v, cmd_replay_usage))
        return false;
    if (strcmp(opt, "--type") == 0)
        types[r->n_types++] = v;
    else if (strcmp(opt, "--state") == 0) {
        if (!slh_view_replay_state(v, &r->states)) {
            fprintf(stderr,
                    "slhook: bad --state '%s' (delivered, dead or any)\n", v);
            return false;
        }
    } else if (strcmp(opt, "--since") == 0)
        return time_of(v, now, &r->since);
    else if (strcmp(opt, "--until") == 0)
        return time_of(v, now, &r->until);
    else {
        fprintf(stderr, "slhook: replay: unknown option '%s'\n%s", opt,
                cmd_replay_usage);
        return false;
    }
    return true;
}

/* What replay did, or would do, and what a user may want to know next. */
static void
replay_said(const struct slh_config *cfg, const struct slh_store_replay *r,
            size_t n, int64_t now)
{
    char keep[32];

    if (r->is_dry_run)
        printf("%zu event(s) would be queued again for %s (dry run: nothing "
               "changed)\n",
               n, r->dest->name);
    else
        printf("%zu event(s) queued again for %s\n", n, r->dest->name);
    slh_when_duration(cfg->retention, keep, sizeof(keep));
    if (r->since != 0 && r->since < now - cfg->retention * 1000)
        fprintf(stderr,
                "slhook: replay: delivered events are kept %s (retention): "
                "older ones are forgotten already\n",
                keep);
    if (n > 0 && !r->is_dry_run && !slh_kick_held(cfg->spool))
        fprintf(stderr, "slhook: no deliverer is running: `slhook deliver "
                        "--once` sends them now, else the next event "
                        "received does\n");
}

/* Parses replay's arguments into r (types: room for argc). -1 to go on,
 * else the exit status. */
static int
replay_args(int argc, char **argv, const struct slh_config *cfg,
            struct slh_store_replay *r, const char **types, int64_t now)
{
    if (argc < 2 || argv[1][0] == '-') {
        fputs(cmd_replay_usage, stderr);
        return 2;
    }
    r->types = types;
    for (int i = 2; i < argc; i++)
        if (!replay_option(argc, argv, &i, r, types, now))
            return 2;
    if (!is_window(r->since, r->until))
        return 2;
    r->dest = slh_config_dest(cfg, argv[1]);
    if (r->dest == NULL) {
        fprintf(stderr, "slhook: replay: no destination '%s' in %s\n", argv[1],
                cfg->path);
        return 1;
    }
    return -1;
}

int
cmd_replay(int argc, char **argv, const struct slh_config *cfg)
{
    struct slh_store_replay r = {0};
    struct slh_store *sp = NULL;
    struct slh_error err = {0};
    const char **types = calloc((size_t)argc, sizeof(*types));
    int64_t now = slh_now_ms();
    size_t n = 0;
    int rc = types == NULL ? 1 : replay_args(argc, argv, cfg, &r, types, now);

    if (rc >= 0)
        goto out;
    rc = open_spool(cfg, "replay", &sp);
    if (rc == 0 && sp != NULL &&
        slh_store_requeue(sp, &r, now, &n, &err) != SLH_OK) {
        fprintf(stderr, "slhook: replay: %s (%zu queued before)\n", err.text,
                n);
        rc = 1;
    }
    if (rc == 0)
        replay_said(cfg, &r, n, now);
out:
    slh_store_close(sp);
    free(types);
    return rc;
}

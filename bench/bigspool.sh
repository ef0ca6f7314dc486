#!/bin/bash
# bench/bigspool.sh: issue 16's query times on a big spool, and what its
# indexes cost an insert.
#
# Builds a spool of BIG_N events (10 million) received over the last
# seven days, one `crm` row each (delivered, one in a thousand dead), in a
# temporary directory: the schema made by slhook itself, the rows by one
# SQL statement (a generator, not BIG_N posts). The message table of
# schema version 8 is filled afterwards in one statement, timed (deliverers
# fill it after an upgrade from 7, 128 events a transaction); inserts are timed as the receive path makes them (nothing indexed),
# then what a deliverer's indexing of those costs, then with version 7's
# expression index on the event table, and without it again (the
# difference is what it cost a receive; the two v8 rows show the noise):
# BIG_PUTS events one a transaction, as slhook.cgi commits them, with
# slhook's pragmas (synchronous=FULL, cache_size=-512), then the same not
# fsync'd, then BIG_BATCH (50) a transaction, as slhook.fcgi's committer
# under load. Between, the operator's commands, each run BIG_RUNS times
# (the first with what the build left in the page cache): `events`
# (newest 50), the newest 50 of a one-hour window and the whole window
# (--json), `show` by full id, by 8-character prefix and by MessageId,
# `replay --dry-run` of an hour, and `events --state dead` (through
# delivery_due: dead letters are rare). Prints figures; asserts nothing.
# Removes the spool at the end unless KEEP=1.
#
# Settings (environment): B (build), BIG_N (10000000), BIG_DIR (a new
# directory under /var/tmp), BIG_RUNS (3), BIG_PUTS (2000), BIG_BATCH (50).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
N=${BIG_N:-10000000}
RUNS=${BIG_RUNS:-3}
PUTS=${BIG_PUTS:-2000}
DIR=${BIG_DIR:-$(mktemp -d /var/tmp/slh-bigspool.XXXXXX)}
DB=$DIR/spool/slhook.db
for p in "$B/slhook" sqlite3; do
    command -v "$p" >/dev/null || { echo "bigspool: $p missing"; exit 1; }
done
cleanup() {
    if [ -n "${KEEP:-}" ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
mkdir -p "$DIR/spool" && chmod 0700 "$DIR/spool"
cat >"$DIR/slhook.conf" <<EOF
[receiver]
secret_key = bench-bigspool-secret
spool = $DIR/spool
[destination crm]
file = $DIR/crm.jsonl
EOF
S() { "$B/slhook" -c "$DIR/slhook.conf" "$@"; }
# shellcheck source=bench/timing.sh
. "$ROOT/bench/timing.sh"

# The schema at this build's version, made by slhook (deliver --once opens
# the spool as a deliverer would, finds nothing due and returns).
S deliver --once >/dev/null 2>&1 || { echo "bigspool: no spool made"; exit 1; }
version=$(sqlite3 "$DB" "PRAGMA user_version")
echo "bigspool: $N events into $DB (schema version $version)"

END=$(now_ms)
START=$((END - 7 * 86400 * 1000))
t0=$(date +%s)
sqlite3 "$DB" >/dev/null <<EOF || exit 1
PRAGMA journal_mode=DELETE;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-2000000;
DROP INDEX IF EXISTS event_id8;
DROP INDEX IF EXISTS event_message_id;
BEGIN;
WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < $N - 1),
e(i, received, type) AS (
    SELECT i, $START + i * (7 * 86400 * 1000 / $N),
           CASE WHEN i % 10 < 6 THEN 'Delivered' WHEN i % 10 < 8 THEN 'Tracking'
                WHEN i % 10 = 8 THEN 'Failed' ELSE 'Complaint' END FROM g)
INSERT INTO event(seq, id, at, type, tracking, received, body)
SELECT i + 1, lower(hex(randomblob(32))), received / 1000 * 1000, type,
       CASE type WHEN 'Tracking' THEN 1 ELSE -1 END, received,
       json_object('Type', type, 'DateTime',
                   strftime('%Y-%m-%dT%H:%M:%S.0000000Z', received / 1000,
                            'unixepoch'),
                   'MessageId', lower(hex(randomblob(12))), 'Address',
                   'user' || (i % 50000) || '@example.com', 'ServerId', 40211,
                   'MailingId', 'mailing-' || (i % 1000), 'Response',
                   '250 2.0.0 OK')
FROM e;
INSERT INTO delivery(dest, seq, state, due, attempts, last_status, last_error,
                     done, owner)
SELECT 'crm', seq, CASE WHEN seq % 1000 = 0 THEN 2 ELSE 1 END, received + 500,
       1, CASE WHEN seq % 1000 = 0 THEN 410 ELSE 200 END,
       CASE WHEN seq % 1000 = 0 THEN 'HTTP 410' END, received + 500, NULL
FROM event;
COMMIT;
EOF
t1=$(date +%s)
sqlite3 "$DB" "PRAGMA journal_mode=WAL" >/dev/null
echo "  generated in $((t1 - t0)) s"

# What the two indexes cost an insert: PUTS events, one per transaction as
# slhook.cgi commits them, and BIG_BATCH a transaction as slhook.fcgi's
# committer does under load, each with its crm row, with slhook's pragmas.
BATCH=${BIG_BATCH:-50}
puts_sql() {
    awk -v n="$PUTS" -v base="$1" -v now="$END" -v sync="$2" -v batch="$3" \
        'BEGIN {
        print "PRAGMA synchronous=" sync "; PRAGMA cache_size=-512;"
        for (i = 0; i < n; i++) {
            s = base + i
            if (i % batch == 0) printf "BEGIN IMMEDIATE; "
            printf "INSERT INTO event(id, at, type, tracking, " \
                "received, body) VALUES (lower(hex(randomblob(32))), %d, " \
                "'\''Delivered'\'', -1, %d, json_object('\''Type'\'', " \
                "'\''Delivered'\'', '\''MessageId'\'', " \
                "lower(hex(randomblob(12))) || '\''-%d'\'', '\''Address'\'', " \
                "'\''user%d@example.com'\'')); " \
                "INSERT INTO delivery VALUES ('\''crm'\'', " \
                "last_insert_rowid(), 0, %d, 0, NULL, NULL, NULL, NULL); ", \
                now, now + i, s, s % 50000, now + i
            if (i % batch == batch - 1 || i == n - 1) print "COMMIT;"
        }
    }'
}
# put BASE SYNC BATCH: microseconds an event for PUTS more events.
put() {
    puts_sql "$1" "$2" "$3" >"$DIR/puts.sql"
    t=$(secs sqlite3 "$DB" <"$DIR/puts.sql")
    awk -v t="$t" -v n="$PUTS" 'BEGIN { printf "%7.1f", t * 1e6 / n }'
}
PUT_BASE=0
# inserts LABEL: one line of the four figures.
inserts() {
    local a b c
    a=$(put $PUT_BASE FULL 1)
    b=$(put $((PUT_BASE + PUTS)) NORMAL 1)
    c=$(put $((PUT_BASE + 2 * PUTS)) FULL "$BATCH")
    PUT_BASE=$((PUT_BASE + 3 * PUTS))
    printf '  %-22s %s %s %s\n' "$1" "$a" "$b" "$c"
}
echo "inserts, us an event ($PUTS a run): one a transaction fsync'd (FULL),"
echo "one a transaction not fsync'd (NORMAL: the pages' work alone), $BATCH a"
echo "transaction fsync'd (FULL, as the committer under load):"
put 900000000 FULL 1 >/dev/null # warms the cache, not counted
printf '  %-58s' "the message table filled in one statement:"
echo "$(secs sqlite3 "$DB" "INSERT INTO message SELECT seq,
    json_extract(body, '\$.MessageId') FROM event") s"
inserts "v8 (nothing indexed)"
# What a deliverer then does for them, 128 events a transaction.
behind=$(sqlite3 "$DB" "SELECT count(*) FROM event WHERE seq >
    (SELECT coalesce(max(seq), 0) FROM message)")
awk -v n="$behind" 'BEGIN { print "PRAGMA synchronous=NORMAL;"
    for (i = 0; i < n; i += 128)
        print "BEGIN IMMEDIATE; INSERT INTO message SELECT seq," \
            " json_extract(body, '\''$.MessageId'\'') FROM event WHERE seq >" \
            " (SELECT coalesce(max(seq), 0) FROM message) ORDER BY seq" \
            " LIMIT 128; COMMIT;" }' >"$DIR/index.sql"
t=$(secs sqlite3 "$DB" <"$DIR/index.sql")
awk -v t="$t" -v n="$behind" 'BEGIN { printf "  %-22s %7.1f (%d events, " \
    "128 a transaction, by a deliverer)\n", "indexed after", t * 1e6 / n, n }'
printf '  CREATE INDEX %-45s' "event_message_id (version 7's):"
echo "$(secs sqlite3 "$DB" "CREATE INDEX event_message_id ON
    event(json_extract(body, '\$.MessageId'))") s"
inserts "v7 (expression index)"
sqlite3 "$DB" "DROP INDEX event_message_id"
inserts "v8 again"
echo "  disk: $(du -sh "$DIR/spool" | cut -f1) ($(sqlite3 "$DB" \
    "SELECT count(*) FROM event") events)"
sqlite3 "$DB" "INSERT INTO message SELECT seq, json_extract(body,
    '\$.MessageId') FROM event WHERE seq > (SELECT coalesce(max(seq), 0)
    FROM message)"

ID=$(sqlite3 "$DB" "SELECT id FROM event WHERE seq = $((N / 3))")
MID=$(sqlite3 "$DB" "SELECT json_extract(body, '\$.MessageId') FROM event
    WHERE seq = $((N / 2))")
SINCE=$(date -u -d @$(((END - 2 * 86400 * 1000) / 1000)) +%Y-%m-%dT%H:%M:%SZ)
UNTIL=$(date -u -d @$(((END - 2 * 86400 * 1000 + 3600 * 1000) / 1000)) \
    +%Y-%m-%dT%H:%M:%SZ)
in_hour=$(sqlite3 "$DB" "SELECT count(*) FROM event WHERE received >= \
    $((END - 2 * 86400 * 1000)) AND received < \
    $((END - 2 * 86400 * 1000 + 3600 * 1000))")
echo "queries (seconds, $RUNS runs each; the hour $SINCE holds $in_hour events):"
timed "events (newest 50)" S events
timed "events --json (newest 50)" S events --json
timed "events --since/--until an hour (newest 50)" \
    S events --since "$SINCE" --until "$UNTIL"
timed "events --since/--until an hour --limit 100000" \
    S events --since "$SINCE" --until "$UNTIL" --limit 100000 --json
timed "show ID (full)" S show "$ID"
timed "show PREFIX (8 hex)" S show "${ID:0:8}"
timed "show --message-id" S show --message-id "$MID"
timed "replay crm --dry-run (an hour)" \
    S replay crm --since "$SINCE" --until "$UNTIL" --dry-run
timed "events --state dead" S events --state dead
echo "  replay's count: $(S replay crm --since "$SINCE" --until "$UNTIL" \
    --dry-run 2>/dev/null)"


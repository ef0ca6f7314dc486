#!/bin/bash
# bench/bigspool_pg.sh: issue 18's plans on a big PostgreSQL spool.
#
# Starts a PostgreSQL cluster of its own (tests/pg_lib.sh: initdb in a
# temporary directory, Unix socket only, the server's defaults), lets
# slhook make its schema, then fills it with BIG_N events (1,000,000)
# received over the last eight days by SQL (a generator, not BIG_N posts):
# one `crm` row each, delivered, one in a thousand dead; ids and
# MessageIds hex, every event its own; the last day's eighth older than
# [receiver] retention (7 days), for the purge. VACUUM ANALYZE, as
# autovacuum would do on its own a little later.
#
# Then every statement of lib/store_pg_*.c (bench/pg_sql.py: as compiled)
# that the operator's commands and the purge run is EXPLAINed (ANALYZE,
# BUFFERS) with realistic values, prepared as slhook prepares it; writes
# inside a transaction that is rolled back. Then the commands themselves,
# each run BIG_RUNS times, timed around the process (its start, the config
# and the connection included): events (newest 50), --state dead,
# --state retrying (no row is), an hour's newest 50, show by id, by
# prefix, by MessageId, status, check, replay --dry-run of an hour, and
# last the purge (`deliver --once`: a deliverer purges on its first
# turn), which deletes the eighth day's delivered events.
#
# Prints figures and plans (the plans also into BIG_DIR/plans.txt);
# asserts nothing. Removes its directory at the end unless KEEP=1.
#
# Settings (environment): B (build), BIG_N (1000000), BIG_DIR (a new
# directory under /var/tmp), BIG_RUNS (3), BIG_INDEX (SQL run after the
# fill, before the plans: an index to try, say).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
N=${BIG_N:-1000000}
RUNS=${BIG_RUNS:-3}
T=${BIG_DIR:-$(mktemp -d /var/tmp/slh-bigpg.XXXXXX)}
for p in "$B/slhook" psql python3; do
    command -v "$p" >/dev/null || {
        echo "bigspool_pg: $p missing"
        exit 1
    }
done
nok() { echo "bigspool_pg: $*" >&2; }
lib_cleanup() {
    if [ -n "${KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
# shellcheck source=tests/pg_lib.sh
. "$ROOT/tests/pg_lib.sh"
pg_start || exit 1
PSQL=(psql -X -q -t -A -v ON_ERROR_STOP=1 -h "$PG_DIR" -U slhook -d slh_big)
Q() { "${PSQL[@]}" -c "$1"; }
cat >"$T/slhook.conf" <<EOF
[receiver]
secret_key = bench-bigspool-secret
spool = postgresql:///slh_big?$PG_ARGS
[destination crm]
file = $T/crm.jsonl
EOF
S() { "$B/slhook" -c "$T/slhook.conf" "$@"; }
TIMED_WIDTH=46
# shellcheck source=bench/timing.sh
. "$ROOT/bench/timing.sh"

S deliver --once >/dev/null 2>&1 || {
    echo "bigspool_pg: no spool made"
    exit 1
}
echo "bigspool_pg: $N events into database slh_big of a cluster in $PG_DIR"
echo "  $("$PG_BIN/postgres" --version), schema $(Q 'SELECT version FROM slhook_meta')"
END=$(now_ms)
DAY=86400000
START=$((END - 8 * DAY))
t0=$(date +%s)
Q "INSERT INTO slhook_event (id, at, type, tracking, received, body,
                          message_id)
SELECT md5(i || 'a') || md5(i || 'b'), received / 1000 * 1000, type,
       CASE type WHEN 'Tracking' THEN 1 ELSE -1 END, received,
       json_build_object('Type', type, 'DateTime',
           to_char(to_timestamp(received / 1000.0) AT TIME ZONE 'UTC',
                   'YYYY-MM-DD\"T\"HH24:MI:SS.US0\"Z\"'),
           'MessageId', substr(md5(i || 'm'), 1, 24), 'Address',
           'user' || (i % 50000) || '@example.com', 'ServerId', 40211,
           'MailingId', 'mailing-' || (i % 1000), 'Response',
           '250 2.0.0 OK')::text, substr(md5(i || 'm'), 1, 24)
FROM (SELECT i, $START + i * (8 * $DAY / $N) AS received,
             CASE WHEN i % 10 < 6 THEN 'Delivered'
                  WHEN i % 10 < 8 THEN 'Tracking'
                  WHEN i % 10 = 8 THEN 'Failed' ELSE 'Complaint' END AS type
      FROM generate_series(0, $N - 1) i) g ORDER BY i" || exit 1
Q "INSERT INTO slhook_delivery (dest, seq, state, due, attempts, last_status,
                             last_error, done, owner)
SELECT 'crm', seq, CASE WHEN seq % 1000 = 0 THEN 2 ELSE 1 END, received + 500,
       1, CASE WHEN seq % 1000 = 0 THEN 410 ELSE 200 END,
       CASE WHEN seq % 1000 = 0 THEN 'HTTP 410' END, received + 500, NULL
FROM slhook_event" || exit 1
t1=$(date +%s)
Q "VACUUM ANALYZE" || exit 1
t2=$(date +%s)
echo "  generated in $((t1 - t0)) s, VACUUM ANALYZE $((t2 - t1)) s; table" \
    "$(Q "SELECT pg_size_pretty(pg_table_size('slhook_event'))"), indexes" \
    "$(Q "SELECT string_agg(indexrelid::regclass || ' ' ||
          pg_size_pretty(pg_relation_size(indexrelid)), ', ')
          FROM pg_index WHERE indrelid = 'slhook_event'::regclass")"
if [ -n "${BIG_INDEX:-}" ]; then
    t0=$(date +%s%N)
    Q "$BIG_INDEX; ANALYZE" || exit 1
    echo "  BIG_INDEX: $BIG_INDEX: $((($(date +%s%N) - t0) / 1000000)) ms"
fi

# The values the statements get: an id, a MessageId, an hour two days ago.
ID=$(Q "SELECT id FROM slhook_event WHERE seq = $((N / 3))")
MID=$(Q "SELECT body::jsonb ->> 'MessageId' FROM slhook_event
         WHERE seq = $((N / 2))")
H0=$((END - 2 * DAY))
H1=$((H0 + 3600000))
SINCE=$(date -u -d @$((H0 / 1000)) +%Y-%m-%dT%H:%M:%SZ)
UNTIL=$(date -u -d @$((H1 / 1000)) +%Y-%m-%dT%H:%M:%SZ)
CUT=$((END - 7 * DAY))
LO=-9223372036854775808
HI=9223372036854775807
SEQS=$(Q "SELECT '{' || string_agg(seq::text, ',') || '}' FROM
          (SELECT seq FROM slhook_event ORDER BY received DESC LIMIT 50) s")

# shellcheck disable=SC2046 # the flags, a word each
python3 "$ROOT/bench/pg_sql.py" "$T/sql" -I"$ROOT/lib" -I"$ROOT/front" \
    $(pkg-config --cflags libpq) >/dev/null || exit 1
# plan LABEL NAME ARGS [write]: EXPLAIN (ANALYZE, BUFFERS) of statement
# NAME executed with ARGS (SQL literals), prepared as slhook prepares it
# (no types: the server infers them; the first runs are planned with
# their values); a write is rolled back.
plan() {
    local label=$1 name=$2 args=${3:+($3)} begin="" end=""
    [ -n "${4:-}" ] && begin="BEGIN;" end="ROLLBACK;"
    {
        echo "### $label ($name)"
        "${PSQL[@]}" <<EOF 2>&1
$begin
PREPARE q AS $(cat "$T/sql/$name.sql");
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE q$args;
$end
EOF
    } >"$T/plan.txt"
    cat "$T/plan.txt" >>"$T/plans.txt"
    echo >>"$T/plans.txt"
    printf '  %-46s %s\n' "$label" "$(grep -o -E \
        'Execution Time: .*|ERROR: .*' "$T/plan.txt" | tail -n 1)"
}
: >"$T/plans.txt"
echo "plans (EXPLAIN ANALYZE; the plans themselves in plans.txt):"
ALL="'{crm}'"
plan "events (newest 50)" list_sql \
    "$LO, $HI, NULL, NULL, NULL, 0, false, $ALL, 50"
plan "events --since/--until an hour" list_sql \
    "$H0, $H1, NULL, NULL, NULL, 0, false, $ALL, 50"
plan "events --type Complaint" list_sql \
    "$LO, $HI, 'Complaint', NULL, NULL, 0, false, $ALL, 50"
plan "show --message-id" list_sql \
    "$LO, $HI, NULL, '$MID', NULL, 0, false, $ALL, 50"
# A row condition: list_rows_sql now, list_sql before (the conditions in
# an OR with their absence).
for sql in list_sql list_rows_sql; do
    plan "events --state dead" $sql \
        "$LO, $HI, NULL, NULL, NULL, 4, false, $ALL, 50"
    plan "events --state retrying (none is)" $sql \
        "$LO, $HI, NULL, NULL, NULL, 1, true, $ALL, 50"
    plan "events --state delivered" $sql \
        "$LO, $HI, NULL, NULL, NULL, 2, false, $ALL, 50"
    plan "events --dest crm --state dead, an hour" $sql \
        "$H0, $H1, NULL, NULL, 'crm', 4, false, $ALL, 50"
    plan "events --dest crm" $sql \
        "$LO, $HI, NULL, NULL, 'crm', 0, false, $ALL, 50"
done
plan "the page's Address search" list_address_sql \
    "$LO, $HI, NULL, NULL, NULL, 0, false, $ALL, 50, 'user77@example.com', 100000"
plan "their rows (50 events)" rows_sql "$ALL, '$SEQS'"
plan "show ID" find_sql "'$ID'"
plan "show PREFIX (8 hex)" find_sql "'${ID:0:8}'"
plan "replay --dry-run, a chunk" window_sql "$H0, $H1, $LO, $LO, 'crm', 1000"
plan "status: a destination" stats_sql "'crm'"
plan "status: the destinations" dests_sql ""
plan "status: the breaker" throttle_sql "'crm'"
plan "page: received a minute, 3 h" received_sql \
    "$((END - 3 * 3600000)), $END"
plan "page: delivered a minute, 3 h" delivered_sql \
    "$((END - 3 * 3600000)), $END, $ALL, $((END - 3 * 3600000))"
plan "check: the tally" tally_sql ""
plan "deliverer: next due" next_all_sql ""
plan "deliverer: claim (none due)" claim_sql \
    "'crm', $END, 100, $((END + 60000)), 1" write
plan "expire (max_age 4 days)" expire_sql \
    "'crm', $((END - 4 * DAY)), $END, 'expired'" write
plan "retry dead letters" retry_sql "'crm', $END" write
plan "purge: delivered rows, a chunk" purge_delivered_sql \
    "$CUT, 5000, 'crm'" write
plan "purge: events, a chunk (rows kept)" purge_events_sql \
    "$CUT, 5000, $ALL" write
{
    echo "### purge: events, a chunk, after the rows (purge_events_sql)"
    "${PSQL[@]}" <<EOF 2>&1
BEGIN;
DELETE FROM slhook_delivery WHERE dest = 'crm' AND state = 1 AND due < $CUT;
PREPARE q AS $(cat "$T/sql/purge_events_sql.sql");
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE q($CUT, 5000, $ALL);
ROLLBACK;
EOF
} >"$T/plan.txt"
cat "$T/plan.txt" >>"$T/plans.txt"
printf '  %-46s %s\n' "purge: events, a chunk, after the rows" \
    "$(grep -o -E 'Execution Time: .*|ERROR: .*' "$T/plan.txt" | tail -n 1)"

echo "commands (seconds, $RUNS runs each; the process's start included):"
timed "events (newest 50)" S events
timed "events --state dead" S events --state dead
timed "events --state retrying (none is)" S events --state retrying
timed "events --since/--until an hour (newest 50)" \
    S events --since "$SINCE" --until "$UNTIL"
timed "show ID (full)" S show "$ID"
timed "show PREFIX (8 hex)" S show "${ID:0:8}"
timed "show --message-id" S show --message-id "$MID"
timed "status" S status
timed "status --prometheus" S status --prometheus
timed "check" S check
timed "replay crm --dry-run (an hour)" \
    S replay crm --since "$SINCE" --until "$UNTIL" --dry-run
before=$(Q "SELECT count(*) FROM slhook_event")
echo "  purge (deliver --once, retention 7 days):" \
    "$(secs S deliver --once) s, events $before -> $(Q \
        "SELECT count(*) FROM slhook_event")"
echo "  purge again, nothing left to delete: $(secs S deliver --once) s"
echo "plans: $T/plans.txt"
[ -n "${KEEP:-}" ] || cat "$T/plans.txt"
pg_stop

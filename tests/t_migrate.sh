#!/bin/sh
# t_migrate.sh: `slhook migrate` (issue 18). A SQLite spool with events in
# every state (delivered, retrying with its attempt counted, dead, revived
# from dead, pending never tried; four destinations; a breaker's count) is
# copied into PostgreSQL, on a cluster started here (tests/pg_lib.sh):
# `slhook events --json` of both the same, check sound, the breaker's
# count there, a second run copying nothing; back into a new SQLite spool,
# the same again (the round trip); a copied event posted again to
# slhook.fcgi on the copy a duplicate; the pending ones delivered by a
# deliverer on the copy, the delivered ones never again; and while that
# deliverer runs, migrate refuses to copy from its spool without --force.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
lib_init migrate
need "$B/slhook" "$B/slhook.fcgi" "$B/slhook.cgi" python3 psql sqlite3

pg_start || finish
start_receiver PORT "$T/recv.log" --mode b=503 --mode c=410 --mode d=410
SQ=$T/spool
PG="postgresql:///slh_mig?$PG_ARGS"
BACK=$T/back
# conf FILE SPOOL: the four destinations, b with a breaker (its count of
# failures is kept in the spool).
conf() {
    cat >"$1" <<EOF
[receiver]
secret_key = $SECRET
server_id = 40211
spool = $2
[destination a]
url = http://127.0.0.1:$PORT/a
[destination b]
url = http://127.0.0.1:$PORT/b
breaker = 5
[destination c]
url = http://127.0.0.1:$PORT/c
[destination d]
url = http://127.0.0.1:$PORT/d
EOF
}
conf "$T/sq.conf" "$SQ"
conf "$T/pg.conf" "$PG"
conf "$T/back.conf" "$BACK"
# Root makes no spool directory from the command line (cmd.h): these are
# made first, as an operator would, each still without a database.
mkdir -m 0700 "$BACK" "$T/while"
# hits NAME: the requests the receiver had for /NAME; ids NAME: of how
# many events (webhook-id).
hits() {
    python3 -c 'import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["name"] == sys.argv[2]))' \
        "$T/recv.log" "$1"
}
at_least() {
    [ "$(hits "$1")" -ge "$2" ]
}
ids() {
    python3 -c 'import json, sys
print(len({json.loads(l)["headers"].get("webhook-id") for l in open(sys.argv[1])
           if json.loads(l)["name"] == sys.argv[2]}))' "$T/recv.log" "$1"
}

# The source: three events tried once (a 200, b 503, c and d 410), d's
# dead letters revived, then two events never tried.
hold_kick_lock "$SQ"
events "$T/first.json" mig 3
cgi "$T/sq.conf" "$T/first.json"
expect "SQLite: 3 events stored" 200 "$STATUS"
"$B/slhook" -c "$T/sq.conf" deliver --once >"$T/deliver1" 2>&1
expect "deliver --once: exit 0" 0 $?
"$B/slhook" -c "$T/sq.conf" retry d >/dev/null 2>&1
expect "retry d: exit 0" 0 $?
events "$T/second.json" mig2 2
cgi "$T/sq.conf" "$T/second.json"
expect "SQLite: 2 more stored" 200 "$STATUS"
kill "$LOCK_PID"
"$B/slhook" -c "$T/sq.conf" events --json --limit 100 >"$T/sq.json" 2>&1
check "the source has every state" sh -c "
    grep -q '\"a\":{\"state\":\"delivered\"' '$T/sq.json' &&
    grep -q '\"b\":{\"state\":\"retrying\",\"attempts\":1' '$T/sq.json' &&
    grep -q '\"c\":{\"state\":\"dead\"' '$T/sq.json' &&
    grep -q '\"d\":{\"state\":\"pending\",\"attempts\":0' '$T/sq.json'"
expect "the breaker's count of b's failures in the source" 3 \
    "$(sql "$SQ/slhook.db" "SELECT failures FROM throttle WHERE dest = 'b'")"

"$B/slhook" -c "$T/sq.conf" migrate "$SQ" "$PG" >"$T/mig1" 2>&1
expect "migrate SQLite to PostgreSQL: exit 0" 0 $?
check "it says what it copied" \
    grep -q "^events: 5 read (with 20 delivery rows), 5 copied, 0 in TO" \
    "$T/mig1"
check "each destination's numbers the same in both" \
    grep -q "^destination b: pending 5 (retrying 3), dead 0, delivered 0; in TO: 5 (3), 0, 0$" \
    "$T/mig1"
check "the breaker's state copied" \
    grep -q "^breaker and pace: copied for 1 destination" "$T/mig1"
check "the copy is sound" grep -q "^postgresql:.*: sound$" "$T/mig1"
"$B/slhook" -c "$T/pg.conf" events --json --limit 100 >"$T/pg.json" 2>&1
check "events --json: the same on PostgreSQL" cmp "$T/sq.json" "$T/pg.json"
"$B/slhook" -c "$T/pg.conf" check >"$T/check-pg" 2>&1
expect "check on the copy: exit 0 (the tally agrees)" 0 $?
PSQL="pg_psql slh_mig -t -A"
expect "the breaker's count of b's failures in the copy" 3 \
    "$($PSQL -c "SELECT failures FROM slhook_throttle WHERE dest = 'b'")"
expect "no row owned in the copy" 0 \
    "$($PSQL -c 'SELECT count(*) FROM slhook_delivery WHERE owner IS NOT NULL')"
expect "every MessageId read as it was copied (none left to index)" 0 \
    "$($PSQL -c "SELECT count(*) FROM slhook_event WHERE message_id IS NULL
        OR message_id <> coalesce(body::jsonb ->> 'MessageId', '')")"

"$B/slhook" -c "$T/sq.conf" migrate "$SQ" "$PG" >"$T/mig2" 2>&1
expect "migrate again: exit 0" 0 $?
check "again: nothing copied" \
    grep -q "^events: 5 read (with 20 delivery rows), 0 copied, 5 in TO" \
    "$T/mig2"
check "again: the breaker's state left alone" \
    grep -q "^breaker and pace: copied for 0 destination" "$T/mig2"

# The round trip: PostgreSQL back into a new SQLite spool.
"$B/slhook" -c "$T/pg.conf" migrate "$PG" "$BACK" >"$T/mig3" 2>&1
expect "migrate PostgreSQL to a new SQLite spool: exit 0" 0 $?
check "5 copied back" grep -q "5 copied, 0 in TO" "$T/mig3"
"$B/slhook" -c "$T/back.conf" events --json --limit 100 >"$T/back.json" 2>&1
check "events --json: the same after the round trip" \
    cmp "$T/sq.json" "$T/back.json"
"$B/slhook" -c "$T/back.conf" check >"$T/check-back" 2>&1
expect "check on the round trip's spool: exit 0" 0 $?
expect "the breaker's count after the round trip" 3 \
    "$(sql "$BACK/slhook.db" "SELECT failures FROM throttle WHERE dest = 'b'")"

# Dedup history kept: the first batch posted again to the copy.
A=$T/fcgi.sock
start_fcgi "$T/fcgi.log" "$A" -c "$T/pg.conf" --no-deliver
fcgi_ready "$A"
post "$A" --body "$T/first.json"
expect "slhook.fcgi on the copy, a copied batch again: 200" 200 "$STATUS"
stop_pid "$FPID" >/dev/null
check "a duplicate: nothing new" grep -q "events=3 new=0" "$T/fcgi.log"

# A deliverer on the copy: the 2 pending events to a, and d's revived 3;
# a's delivered 3 never again.
before=$(hits a)
"$B/slhook" -c "$T/pg.conf" deliver >"$T/deliver2" 2>&1 &
DPID=$!
track $DPID
check "the copy's pending rows delivered to a" \
    wait_for 20 at_least a $((before + 2))
sleep 1
expect "a: 5 events, each once" "5 5" "$(hits a) $(ids a)"
check "d's revived rows tried again" test "$(hits d)" -ge 6
"$B/slhook" -c "$T/pg.conf" migrate "$PG" "$T/while" >"$T/mig4" 2>&1
expect "migrate while a deliverer runs on FROM: refused (exit 1)" 1 $?
check "it says why" grep -q "1 deliverer(s) running on postgresql:" "$T/mig4"
check "nothing made" test ! -e "$T/while/slhook.db"
"$B/slhook" -c "$T/pg.conf" migrate --force "$PG" "$T/while" >"$T/mig5" 2>&1
expect "with --force: exit 0" 0 $?
check "with --force: warned" grep -q "copying anyway" "$T/mig5"
stop_pid "$DPID" >/dev/null

# More than a batch: 2100 events in one request, copied in three
# transactions of at most a thousand.
hold_kick_lock "$T/big"
chmod 0700 "$T/big"
printf '[receiver]\nsecret_key = %s\nspool = %s\nmax_events = 3000\nmax_body = 8m\n[destination a]\nurl = http://127.0.0.1:9/a\n' \
    "$SECRET" "$T/big" >"$T/big.conf"
events "$T/big.json" big 2100
cgi "$T/big.conf" "$T/big.json"
expect "2100 events in one request: 200" 200 "$STATUS"
kill "$LOCK_PID"
"$B/slhook" -c "$T/big.conf" migrate "$T/big" \
    "postgresql:///slh_big?$PG_ARGS" >"$T/mig8" 2>&1
expect "migrate 2100 events: exit 0" 0 $?
check "all 2100 copied, with a row each" \
    grep -q "^events: 2100 read (with 2100 delivery rows), 2100 copied" \
    "$T/mig8"
expect "2100 in the copy, in the order received" "2100 t" \
    "$(pg_psql slh_big -t -A -F ' ' -c \
        "SELECT count(*), bool_and(o = n) FROM (SELECT
            (body::jsonb ->> 'MessageId') AS m, row_number() OVER (ORDER BY seq) AS o,
            substr(body::jsonb ->> 'MessageId', 5)::integer + 1 AS n
            FROM slhook_event) x")"

# What it refuses to do.
"$B/slhook" -c "$T/sq.conf" migrate "$SQ" "$SQ" >"$T/mig6" 2>&1
expect "FROM and TO the same: usage (exit 2)" 2 $?
"$B/slhook" -c "$T/sq.conf" migrate "$T/none" "$PG" >"$T/mig7" 2>&1
expect "no spool at FROM: exit 1" 1 $?
check "says so" grep -q "nothing to copy" "$T/mig7"

pg_stop
finish

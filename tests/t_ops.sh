#!/bin/sh
# t_ops.sh: finding, inspecting and replaying stored events, and the
# retention that bounds them (issue 16), end to end. slhook.cgi (shell
# mode) stores ten events, `slhook deliver --once` relays them to
# tests/receiver.py; their received times are then set an hour apart in
# the spool (the test's clock), and `events` (text and --json), `show` (id,
# prefix, --message-id) and `replay` (a window, Types, states, --dry-run, a
# backfill to a destination added afterwards) are checked against the
# spool and against what the receiver gets again: the events of the window
# and no other, with their original webhook-id. Last, the hourly purge
# under the default retention and a shorter one, and what check says.
. "$(dirname "$0")/lib.sh"
lib_init ops
need "$B/slhook" "$B/slhook.cgi" sqlite3 python3 curl

HOUR=3600000

# posts NAME: how many requests the receiver logged for /NAME.
posts() {
    python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["name"] == sys.argv[2]))' \
        "$T/recv.log" "$1"
}

# ids_posted NAME FROM: the webhook-id of /NAME's posts after the first
# FROM of them, sorted, one a line.
ids_posted() {
    python3 -c '
import json, sys
posts = [json.loads(l) for l in open(sys.argv[1])]
posts = [p for p in posts if p["name"] == sys.argv[2]][int(sys.argv[3]):]
print("\n".join(sorted(p["headers"]["webhook-id"] for p in posts)))' \
        "$T/recv.log" "$1" "$2"
}

# ids_of WHERE: the ids of the stored events matching WHERE, sorted.
ids_of() {
    sql "$DB" "SELECT id FROM event WHERE $1 ORDER BY id"
}

quiet() {
    "$@" >/dev/null 2>&1
}

# has TEXT PATTERN: whether a line of TEXT matches PATTERN (grep).
has() {
    printf '%s\n' "$1" | grep -q -- "$2"
}

# iso MS: RFC 3339 of a unix ms time, to the second.
iso() {
    date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%SZ
}

start_receiver PORT "$T/recv.log"
check "receiver started" test -n "$PORT"
CONF=$T/slhook.conf
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool

[destination crm]
url = http://127.0.0.1:$PORT/crm
EOF
DB=$T/spool/slhook.db
S() { "$B/slhook" -c "$CONF" "$@"; }
hold_kick_lock "$T/spool"

# Ten events, ops-0 ... ops-9: even ones Delivered, odd ones Failed.
i=0
while [ $i -lt 10 ]; do
    tmpl=$FIX/delivered-1.json
    [ $((i % 2)) -eq 1 ] && tmpl=$FIX/failed-1.json
    python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
e["MessageId"] = "ops-%s" % sys.argv[2]
e["Address"] = "user%s@mail.example" % sys.argv[2]
json.dump(e, open(sys.argv[3], "w"))' "$tmpl" $i "$T/e$i.json"
    "$B/slhook.cgi" -c "$CONF" <"$T/e$i.json" 2>>"$T/cgi.log" |
        grep -q '^Status: 200' || nok "event $i stored"
    i=$((i + 1))
done
S deliver --once 2>>"$T/deliver.log"
expect "ten events relayed to crm" 10 "$(posts crm)"
expect "and their MessageIds indexed before --once ended" 10 \
    "$(sql "$DB" "SELECT count(*) FROM message WHERE message_id LIKE 'ops-%'")"

# The test's clock: ops-N received at BASE + N hours.
NOW=$(($(date +%s) * 1000))
BASE=$((NOW - 20 * HOUR))
sql "$DB" "UPDATE event SET received = $BASE + CAST(substr(json_extract(body,
    '\$.MessageId'), 5) AS INTEGER) * $HOUR"
expect "received times set" 10 "$(sql "$DB" "SELECT count(*) FROM event
    WHERE (received - $BASE) % $HOUR = 0")"

# ---- events ----
S events >"$T/events.txt" 2>"$T/events.err"
check "events: exit 0" test $? -eq 0
check "events: a header" grep -q '^RECEIVED  *ID  *TYPE  *ADDRESS  *MESSAGE ID  *DELIVERIES$' "$T/events.txt"
expect "events: ten lines after it" 10 "$(($(wc -l <"$T/events.txt") - 1))"
expect "events: newest first" "ops-9 ops-8 ops-7" \
    "$(sed -n '2,4p' "$T/events.txt" | awk '{print $5}' | xargs)"
id9=$(ids_of "json_extract(body, '\$.MessageId') = 'ops-9'")
expect "events: a line's columns" \
    "$(iso $((BASE + 9 * HOUR))) $(echo "$id9" | cut -c1-12) Failed user9@mail.example ops-9 crm=delivered" \
    "$(sed -n 2p "$T/events.txt" | xargs)"
expect "events --limit 3" 3 "$(S events --limit 3 | tail -n +2 | wc -l)"
expect "events --type Failed" "ops-9 ops-7 ops-5 ops-3 ops-1" \
    "$(S events --type Failed | tail -n +2 | awk '{print $5}' | xargs)"
expect "events --since/--until (RFC 3339): [2h, 5h)" "ops-4 ops-3 ops-2" \
    "$(S events --since "$(iso $((BASE + 2 * HOUR)))" \
        --until "$(iso $((BASE + 5 * HOUR)))" | tail -n +2 |
        awk '{print $5}' | xargs)"
expect "events --since an age (725m: ops-8 came 12 h ago)" "ops-9 ops-8" \
    "$(S events --since 725m | tail -n +2 | awk '{print $5}' | xargs)"
expect "events --dest crm --state delivered: all" 10 \
    "$(S events --dest crm --state delivered | tail -n +2 | wc -l)"
expect "events --state dead: none" 0 \
    "$(S events --state dead | tail -n +2 | wc -l)"

S events --json >"$T/events.json"
check "events --json: one object per event, each field as stored" python3 -c '
import json, sqlite3, sys
from datetime import datetime, timezone
db = sqlite3.connect(sys.argv[2])
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 10, len(lines)
for line in lines:
    o = json.loads(line)
    assert sorted(o) == ["address", "deliveries", "id", "message_id",
                         "received", "type"], sorted(o)
    received, typ, body = db.execute(
        "SELECT received, type, body FROM event WHERE id = ?",
        (o["id"],)).fetchone()
    b = json.loads(body)
    when = datetime.fromtimestamp(received / 1000, timezone.utc)
    assert o["received"] == when.strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (received % 1000), (o["received"], received)
    assert o["type"] == typ and o["message_id"] == b["MessageId"] and \
        o["address"] == b["Address"], o
    assert o["deliveries"] == {"crm": {"state": "delivered", "attempts": 1,
        "last_status": 200, "last_error": None, "next_attempt": None}}, o
assert [json.loads(l)["message_id"] for l in lines] == \
    ["ops-%d" % i for i in range(9, -1, -1)]
' "$T/events.json" "$DB"

# ---- show ----
S show "$id9" >"$T/show.txt"
check "show ID: exit 0" test $? -eq 0
expect "show: the id" "id:         $id9" "$(sed -n 1p "$T/show.txt")"
expect "show: the body as stored and relayed" \
    "$(sql "$DB" "SELECT body FROM event WHERE id = '$id9'")" \
    "$(sed -n 's/^body:       //p' "$T/show.txt")"
check "show: no SecretKey" sh -c "! grep -q '$SECRET\|SecretKey' '$T/show.txt'"
expect "show: the destination's line" "crm delivered 1 200 - -" \
    "$(grep '^crm ' "$T/show.txt" | xargs)"
expect "show PREFIX (8 hex): the same" "$(cat "$T/show.txt")" \
    "$(S show "$(echo "$id9" | cut -c1-8)")"
expect "show --message-id: the same" "$(cat "$T/show.txt")" \
    "$(S show --message-id ops-9)"
S show --message-id nope >/dev/null 2>"$T/err"
check "show --message-id unknown: exit 1" test $? -eq 1
check "  and says so" grep -q "no event with MessageId nope" "$T/err"
# A second id with ops-9's first eight characters makes them ambiguous.
sql "$DB" "INSERT INTO event(id, at, type, tracking, received, body)
    VALUES ('$(echo "$id9" | cut -c1-8)' || substr(hex(zeroblob(28)), 1, 56),
    0, 'Open', 1, $BASE, '{}')"
S show "$(echo "$id9" | cut -c1-8)" >/dev/null 2>"$T/err"
check "show: an ambiguous prefix: exit 1" test $? -eq 1
check "  and says so" grep -q "ambiguous" "$T/err"
check "show: a longer prefix tells them apart" \
    quiet S show "$(echo "$id9" | cut -c1-20)"
sql "$DB" "DELETE FROM event WHERE at = 0"
S show 0123456 >/dev/null 2>"$T/err"
check "show: a prefix of 7: exit 1" test $? -eq 1
check "  and says what an id is" grep -q "at least 8 hex" "$T/err"
S show >/dev/null 2>&1
check "show: no ID: exit 2" test $? -eq 2

# ---- replay: a window ----
before=$(posts crm)
out=$(S replay crm --since "$(iso $((BASE + 3 * HOUR)))" \
    --until "$(iso $((BASE + 4 * HOUR)))" 2>/dev/null)
expect "replay a one-hour window: how many" \
    "1 event(s) queued again for crm" "$out"
S deliver --once 2>>"$T/deliver.log"
expect "  the receiver gets it again, and nothing else" $((before + 1)) \
    "$(posts crm)"
expect "  with its original webhook-id" \
    "$(ids_of "json_extract(body, '\$.MessageId') = 'ops-3'")" \
    "$(ids_posted crm "$before")"

# Offsets, and --type (repeatable).
before=$(posts crm)
since=$(TZ=Etc/GMT-1 date -d "@$(((BASE + 5 * HOUR) / 1000))" \
    +%Y-%m-%dT%H:%M:%S+01:00)
out=$(S replay crm --since "$since" --until "$(iso $((BASE + 8 * HOUR)))" \
    --type failed --type Complaint 2>/dev/null)
expect "replay --type failed --type Complaint in [5h, 8h)" \
    "2 event(s) queued again for crm" "$out"
S deliver --once 2>>"$T/deliver.log"
expect "  ops-5 and ops-7, again, with their ids" \
    "$(ids_of "json_extract(body, '\$.MessageId') IN ('ops-5', 'ops-7')")" \
    "$(ids_posted crm "$before")"

# --dry-run changes nothing.
before=$(posts crm)
snap=$(sql "$DB" "SELECT group_concat(seq || state || due || attempts, ',')
    FROM delivery")
out=$(S replay crm --dry-run 2>/dev/null)
expect "replay --dry-run: counts every event" \
    "10 event(s) would be queued again for crm (dry run: nothing changed)" \
    "$out"
expect "  and changes nothing" "$snap" \
    "$(sql "$DB" "SELECT group_concat(seq || state || due || attempts, ',')
        FROM delivery")"
S deliver --once 2>>"$T/deliver.log"
expect "  and nothing is posted" "$before" "$(posts crm)"

# --state: dead letters only.
sql "$DB" "UPDATE delivery SET state = 2, last_status = 410, last_error =
    'HTTP 410' WHERE seq = (SELECT seq FROM event WHERE
    json_extract(body, '\$.MessageId') = 'ops-0')"
expect "events --state dead: ops-0" "ops-0" \
    "$(S events --state dead | tail -n +2 | awk '{print $5}' | xargs)"
before=$(posts crm)
out=$(S replay crm --state dead 2>/dev/null)
expect "replay --state dead" "1 event(s) queued again for crm" "$out"
check "  the row pending, attempts 0, due now" test "$(sql "$DB" "SELECT
    state || ',' || attempts || ',' || (due <= $(($(date +%s) * 1000 + 1000)))
    FROM delivery WHERE state = 0")" = "0,0,1"
S deliver --once 2>>"$T/deliver.log"
expect "  ops-0 posted again" \
    "$(ids_of "json_extract(body, '\$.MessageId') = 'ops-0'")" \
    "$(ids_posted crm "$before")"

# ---- replay: a backfill to a destination added afterwards ----
cat >>"$CONF" <<EOF

[destination late]
url = http://127.0.0.1:$PORT/late
events = Failed
EOF
out=$(S replay late --since "$(iso $((BASE + 4 * HOUR)))" 2>/dev/null)
expect "backfill: the Failed events since 4h, for a new destination" \
    "3 event(s) queued again for late" "$out"
S deliver --once 2>>"$T/deliver.log"
expect "  late receives ops-5, ops-7 and ops-9 with their ids" \
    "$(ids_of "json_extract(body, '\$.MessageId') IN ('ops-5', 'ops-7',
        'ops-9')")" "$(ids_posted late 0)"
expect "  and the events list shows their rows" "crm=delivered late=delivered" \
    "$(S events --limit 1 | tail -n 1 | awk '{print $6, $7}')"
expect "  its filter applies: the five Failed events (three now delivered)" \
    "5 event(s) would be queued again for late (dry run: nothing changed)" \
    "$(S replay late --dry-run 2>/dev/null)"

# ---- bad input ----
S replay nope >/dev/null 2>"$T/err"
check "replay: an unknown destination: exit 1" test $? -eq 1
check "  and says so" grep -q "no destination 'nope'" "$T/err"
S replay crm --since yesterday >/dev/null 2>"$T/err"
check "replay: a bad TIME: exit 2" test $? -eq 2
check "  and says what TIME is" grep -q "bad time 'yesterday'.*RFC 3339" "$T/err"
S replay crm --state pending >/dev/null 2>&1
check "replay --state pending: exit 2" test $? -eq 2
S replay crm --since 1h --until 2h >/dev/null 2>"$T/err"
check "replay: --since after --until: exit 2" test $? -eq 2
S events --limit 0 >/dev/null 2>&1
check "events --limit 0: exit 2" test $? -eq 2
S events --state sleeping >/dev/null 2>&1
check "events --state sleeping: exit 2" test $? -eq 2
S events --dest nope >/dev/null 2>&1
check "events --dest unknown: exit 1" test $? -eq 1
S events --bogus >/dev/null 2>&1
check "events --bogus: exit 2" test $? -eq 2
for c in events show replay; do
    out=$("$B/slhook" -c /nonexistent "$c" --help)
    check "$c --help: exit 0, no config needed" test $? -eq 0
    check "  prints its usage" has "$out" "^usage: slhook $c"
done

# ---- retention ----
# ops-1 delivered three days ago, ops-2 one day ago: the hourly purge (the
# stamp removed, so the next deliverer purges) keeps both under the default
# 7d, and forgets ops-1 under 2d.
for i in 1 2; do
    sql "$DB" "UPDATE event SET received = $NOW - (5 - 2 * $i) * 24 * $HOUR
        WHERE json_extract(body, '\$.MessageId') = 'ops-$i';
        UPDATE delivery SET done = $NOW - (5 - 2 * $i) * 24 * $HOUR WHERE
        seq = (SELECT seq FROM event WHERE json_extract(body, '\$.MessageId')
        = 'ops-$i')"
done
purged() {
    rm -f "$T/spool/purge.stamp"
    S deliver --once 2>>"$T/deliver.log"
    sql "$DB" "SELECT group_concat(json_extract(body, '\$.MessageId'), ' ')
        FROM (SELECT body FROM event WHERE json_extract(body, '\$.MessageId')
        IN ('ops-1', 'ops-2') ORDER BY seq)"
}
expect "retention 7d (default): both kept" "ops-1 ops-2" "$(purged)"
sed -i 's/^spool = .*/&\nretention = 2d/' "$CONF"
expect "retention 2d: the one of three days ago forgotten" "ops-2" "$(purged)"
sed -i '/^retention = 2d$/d' "$CONF"
out=$(S check)
check "check prints the retention (7d by default)" \
    has "$out" '^  retention 7d: '
check "  and warns of nothing" sh -c "! printf '%s' \"\$1\" | grep -q warning" \
    - "$out"
sed -i 's/^spool = .*/&\nretention = 2d/' "$CONF"
out=$(S check)
check "check warns below 4d" has "$out" '^warning: retention 2d is below 4d'
check "  SocketLabs' retry horizon" has "$out" "SocketLabs' retry horizon"
finish

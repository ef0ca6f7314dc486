#!/bin/sh
# t_faults.sh: every destination fault at once. slhook.fcgi receives a load
# over FastCGI and delivers in-process to six destinations:
#   healthy  answers 200
#   flap     answers 500 to every event's first post, 200 to its second
#   down     nobody listening during the load; a receiver comes up later
#   hang     never answers (timeout = 1 s, max_age = 20s)
#   gone     answers 410
#   tls      https with a self-signed certificate (max_age = 20s)
# Each failed TLS attempt costs the one delivery thread some 25 ms of CPU
# (OpenSSL 3.0 reading the system CA bundle for every new connection), so
# the tls destination slows the others by seconds; the healthy one must
# still have everything well before the failing ones give up (max_age).
# Every event ends delivered or a dead letter with its reason, in `slhook
# status --json` and in the spool's delivery table; nothing is lost; the
# healthy, flapping and recovered destinations get every event, and the
# hanging one does not hold up the healthy one.
. "$(dirname "$0")/lib.sh"
lib_init faults
need python3 sqlite3 curl openssl "$B/slhook.fcgi" "$B/slhook"

EVENTS=${FAULTS_EVENTS:-120}
DOWN_FOR=${FAULTS_DOWN_FOR:-6} # seconds "down" stays down after the load
MAX_AGE=20
DB=$T/spool/slhook.db

start_receiver PORT "$T/recv.log" --mode flap=flap --mode hang=hang \
    --mode gone=410
DOWN_PORT=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 \
    -keyout "$T/tls.key" -out "$T/tls.crt" >/dev/null 2>&1 ||
    abort "openssl req -x509"
start_receiver TLS_PORT "$T/tls.log" --tls "$T/tls.crt:$T/tls.key"

CONF=$T/slhook.conf
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool

[destination healthy]
url = http://127.0.0.1:$PORT/healthy

[destination flap]
url = http://127.0.0.1:$PORT/flap

[destination down]
url = http://127.0.0.1:$DOWN_PORT/down

[destination hang]
url = http://127.0.0.1:$PORT/hang
timeout = 1
max_age = ${MAX_AGE}s

[destination gone]
url = http://127.0.0.1:$PORT/gone

[destination tls]
url = https://127.0.0.1:$TLS_PORT/tls
max_age = ${MAX_AGE}s
EOF
"$B/slhook" -c "$CONF" check >/dev/null 2>&1
check "config valid" test $? -eq 0

ADDR=127.0.0.1:$(free_port)
start_fcgi "$T/fcgi.log" "$ADDR" -c "$CONF"
check "responder up" fcgi_ready "$ADDR"
python3 "$ROOT/tests/load_client.py" load "$ADDR" \
    --template "$FIX/delivered-1.json" --template "$FIX/failed-1.json" \
    --template "$FIX/tracking-1.json" --events "$EVENTS" --clients 4 \
    --batch 3 --tag fault --ok-log "$T/ok.log" >"$T/load.out"
check "load: every event answered 200" test $? -eq 0
cat "$T/load.out"
loaded=$(date +%s)
expect "every event acknowledged" "$EVENTS" "$(wc -l <"$T/ok.log")"

sleep "$DOWN_FOR"
start_receiver DOWN_PORT_UP "$T/down.log" --port "$DOWN_PORT"
expect "down destination back on its port" "$DOWN_PORT" "$DOWN_PORT_UP"
up=$(date +%s)

status() {
    "$B/slhook" -c "$CONF" status --json >"$T/status.json" 2>"$T/status.err"
}
none_pending() {
    status && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["destinations"]
sys.exit(0 if all(x["pending"] == 0 for x in d) else 1)' "$T/status.json"
}
wait_for 150 none_pending
check "every delivery settled within $(($(date +%s) - loaded)) s" test $? -eq 0
echo "settled $(($(date +%s) - loaded)) s after the load; down was up after $((up - loaded)) s"
"$B/slhook" -c "$CONF" status
stop_pid "$FPID"
expect "responder stops on SIGTERM" 0 $?

# ---- status --json: the per-destination outcome and its reason ----
status
python3 - "$T/status.json" "$EVENTS" >"$T/status.check" <<'EOF'
import json, sys
d = {x["name"]: x for x in json.load(open(sys.argv[1]))["destinations"]}
n = int(sys.argv[2])
want = {
    "healthy": ("delivered", None),
    "flap": ("delivered", None),
    "down": ("delivered", None),
    "hang": ("dead", "Timeout"),
    "gone": ("dead", "HTTP 410"),
    "tls": ("dead", "SSL"),
}
for name, (state, reason) in want.items():
    x = d.get(name, {})
    other = "dead" if state == "delivered" else "delivered"
    ok = x.get(state) == n and x.get(other) == 0 and x.get("pending") == 0
    if reason is not None:
        ok = ok and reason in (x.get("last_error") or "")
    print("%s %s: %s=%s %s=%s pending=%s last_error=%r" % (
        "ok" if ok else "FAIL", name, state, x.get(state), other,
        x.get(other), x.get("pending"), x.get("last_error")))
EOF
cat "$T/status.check"
while read -r verdict name rest; do
    expect "status --json: $name${rest:+ ($rest)}" ok "$verdict"
done <"$T/status.check"
expect "status --json names six destinations" 6 "$(wc -l <"$T/status.check")"

# ---- the spool: a row per event and destination, each settled ----
q() {
    sql "$DB" "$1"
}
expect "every event stored once" "$EVENTS" "$(q 'SELECT count(*) FROM event')"
python3 - "$T/ok.log" "$DB" >"$T/missing" <<'EOF'
import sqlite3, sys
acked = [l.split()[0] for l in open(sys.argv[1])]
db = sqlite3.connect(sys.argv[2])
rows = {}
for mid, n in db.execute(
        "SELECT json_extract(e.body, '$.MessageId'), count(d.dest)"
        " FROM event e LEFT JOIN delivery d ON d.seq = e.seq GROUP BY e.seq"):
    rows[mid] = n
for m in acked:
    if rows.get(m) != 6:
        print(m, rows.get(m))
EOF
expect "every 200'd event has a delivery row for each destination" 0 \
    "$(wc -l <"$T/missing")"
expect "no row pending" 0 "$(q 'SELECT count(*) FROM delivery WHERE state = 0')"
expect "every dead letter has its reason" 0 \
    "$(q 'SELECT count(*) FROM delivery WHERE state = 2 AND (last_error IS NULL OR last_error = '\'''\'')')"
expect "hang: dead letters, timed out" "$EVENTS" \
    "$(q "SELECT count(*) FROM delivery WHERE dest = 'hang' AND state = 2 AND last_error LIKE '%Timeout%' AND last_status IS NULL")"
expect "tls: dead letters, certificate refused" "$EVENTS" \
    "$(q "SELECT count(*) FROM delivery WHERE dest = 'tls' AND state = 2 AND (last_error LIKE '%SSL%' OR last_error LIKE '%certificate%')")"
expect "gone: dead at the first 410" "$EVENTS" \
    "$(q "SELECT count(*) FROM delivery WHERE dest = 'gone' AND state = 2 AND last_status = 410 AND attempts = 1")"
expect "hang, tls: dead only once max_age had passed" 0 \
    "$(q "SELECT count(*) FROM delivery d JOIN event e ON e.seq = d.seq WHERE d.dest IN ('hang', 'tls') AND d.done - e.received < $MAX_AGE * 1000")"
for d in hang tls; do
    tries=$(q "SELECT min(attempts) || '-' || max(attempts) FROM delivery WHERE dest = '$d'")
    check "$d: retried before dying ($tries attempts per event)" \
        test "${tries#*-}" -ge 2
done
expect "healthy, flap, down: all delivered" $((3 * EVENTS)) \
    "$(q "SELECT count(*) FROM delivery WHERE dest IN ('healthy', 'flap', 'down') AND state = 1")"

# ---- what the destinations saw ----
python3 - "$T/ok.log" "$T/recv.log" "$T/down.log" "$T/tls.log" "$loaded" \
    >"$T/seen" <<'EOF'
import collections, json, sys
acked = set(l.split()[0] for l in open(sys.argv[1]))
recs = [json.loads(l) for l in open(sys.argv[2])]
recs += [json.loads(l) for l in open(sys.argv[3])]
loaded = float(sys.argv[5])
by = collections.defaultdict(lambda: collections.defaultdict(list))
last_ok = {}
for r in recs:
    mid = json.loads(r["body"])["MessageId"]
    by[r["name"]][mid].append(r["status"])
    if r["status"] == 200:
        last_ok[r["name"]] = max(last_ok.get(r["name"], 0), r["time"])
def got(name, pred):
    return sum(1 for m in acked if pred(by[name].get(m, [])))
print("healthy_200", got("healthy", lambda s: 200 in s))
print("flap_500_then_200", got("flap", lambda s: s[:1] == [500] and 200 in s))
print("down_200", got("down", lambda s: 200 in s))
print("gone_once", got("gone", lambda s: s == [410]))
print("hang_tried", got("hang", lambda s: len(s) >= 1))
print("unknown", sum(1 for n in by for m in by[n] if m not in acked))
print("tls_requests", sum(1 for _ in open(sys.argv[4])))
print("healthy_done_after_load", int(last_ok.get("healthy", 1e12) - loaded + 1))
EOF
cat "$T/seen"
seen() {
    sed -n "s/^$1 //p" "$T/seen"
}
expect "healthy got every event" "$EVENTS" "$(seen healthy_200)"
expect "flap: a 500, then a 200, for every event" "$EVENTS" "$(seen flap_500_then_200)"
expect "down: every event once it came up" "$EVENTS" "$(seen down_200)"
expect "gone: one post per event, no retry after 410" "$EVENTS" "$(seen gone_once)"
expect "hang: every event attempted" "$EVENTS" "$(seen hang_tried)"
expect "no event nobody sent" 0 "$(seen unknown)"
expect "tls: no request got through the handshake" 0 "$(seen tls_requests)"
check "healthy not held up by the failing ones (done $(seen healthy_done_after_load) s after the load)" \
    test "$(seen healthy_done_after_load)" -lt "$MAX_AGE"
check "no sanitizer report" sh -c "! grep -qE 'Sanitizer|runtime error' '$T'/*.log"
finish

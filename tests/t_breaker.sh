#!/bin/sh
# t_breaker.sh: destinations that protect themselves, against real
# receivers (tests/receiver.py) and the real `slhook deliver`: a circuit
# breaker that holds a destination answering 503 to one probe per backoff
# step while a healthy one drains at full speed, then delivers all of it
# exactly once when it comes back; an open breaker's events dead at max_age;
# rate = 100/s (1,000 events in 10 s, never more than 100 started in a
# second);
# concurrency = 3; status showing the breaker. Prints the figures.
. "$(dirname "$0")/lib.sh"
lib_init breaker
need "$B/slhook" "$B/slhook.cgi" python3 curl
N=1000
OUTAGE=60 # seconds "down" answers 503, as the issue asks

py() {
    script=$1
    shift
    python3 -c "$script" "$@"
}

# conf FILE SPOOL: the [receiver] part, max_events high enough for one post.
conf() {
    cat >"$1" <<EOF
[receiver]
secret_key = $SECRET
spool = $2
max_events = $N
EOF
}

# store CONF TAG: N events through slhook.cgi in one post.
store() {
    events "$T/$2.json" "$2" "$N"
    cgi "$1" "$T/$2.json"
    expect "$2: $N events stored" 200 "$STATUS"
}

# count NAME [STATUS]: requests the receiver logged for NAME (with STATUS).
count() {
    py '
import json, sys
n = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["name"] == sys.argv[2] and (len(sys.argv) < 4 or str(r["status"]) == sys.argv[3]):
        n += 1
print(n)' "$T/recv.log" "$@"
}

# json_of CONF NAME FIELD...: a field of NAME in status --json.
json_of() {
    c=$1
    shift
    "$B/slhook" -c "$c" status --json 2>/dev/null | py '
import json, sys
d = {x["name"]: x for x in json.load(sys.stdin)["destinations"]}[sys.argv[1]]
for k in sys.argv[2:]:
    d = d[k] if d is not None else None
print("null" if d is None else d)' "$@"
}

# is_json CONF NAME WANT FIELD...: whether that field is WANT.
is_json() {
    c=$1
    name=$2
    want=$3
    shift 3
    [ "$(json_of "$c" "$name" "$@")" = "$want" ]
}

# is_rfc3339 TEXT
is_rfc3339() {
    echo "$1" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$'
}

start_receiver PORT "$T/recv.log"

# ---- breaker: down for OUTAGE seconds, a healthy one beside it ----
CONF=$T/outage.conf
conf "$CONF" "$T/spool"
cat >>"$CONF" <<EOF

[destination down]
url = http://127.0.0.1:$PORT/down
breaker = 5

[destination healthy]
url = http://127.0.0.1:$PORT/healthy

[destination old]
url = http://127.0.0.1:$PORT/old
breaker = 3
max_age = 6s
EOF
"$B/slhook" -c "$CONF" check >"$T/check.out" 2>&1
check "check accepts rate, concurrency and breaker" test $? -eq 0
check "check shows the breaker" \
    grep -q '^    at most 8 in flight, breaker after 5 failures in a row$' \
    "$T/check.out"
hold_kick_lock "$T/spool"
mode "$PORT" down 503
mode "$PORT" old 503
store "$CONF" out
t0=$(date +%s.%N)
"$B/slhook" -c "$CONF" deliver 2>"$T/deliver.err" &
DPID=$!
track $DPID
wait_for 20 is_json "$CONF" healthy "$N" delivered
healthy_done=$(date +%s.%N)
check "healthy: all $N delivered while down is failing" \
    test "$(json_of "$CONF" healthy delivered)" = "$N"
wait_for 5 is_json "$CONF" down open breaker state
expect "status --json: down's breaker open" open \
    "$(json_of "$CONF" down breaker state)"
check "status --json: when it opened, RFC 3339" \
    is_rfc3339 "$(json_of "$CONF" down breaker opened)"
"$B/slhook" -c "$CONF" status >"$T/status.txt"
check "status: BREAKER column, open:AGE for down, closed for old's peer" py '
import sys
lines = open(sys.argv[1]).read().splitlines()
head = lines[0].split()
rows = {l.split()[0]: l.split() for l in lines[1:]}
i = head.index("BREAKER")
ok = rows["down"][i].startswith("open:") and rows["healthy"][i] == "-"
sys.exit(0 if ok else "status: %r" % lines)' "$T/status.txt"
"$B/slhook" -c "$CONF" status --prometheus >"$T/status.prom"
check "status --prometheus: slhook_breaker_open and opened, with HELP/TYPE" py '
import re, sys
t = open(sys.argv[1]).read()
ok = ("# TYPE slhook_breaker_open gauge" in t
      and "# HELP slhook_breaker_opened_timestamp_seconds " in t
      and "slhook_breaker_open{destination=\"down\"} 1" in t
      and "slhook_breaker_open{destination=\"healthy\"} 0" in t
      and re.search(r"^slhook_breaker_opened_timestamp_seconds\{destination=\"down\"\} 1[0-9]{9}$", t, re.M))
sys.exit(0 if ok else t)' "$T/status.prom"
# The outage lasts OUTAGE seconds from the start.
sleep "$(py 'import sys, time; print(max(0, float(sys.argv[1]) + float(sys.argv[2]) - time.time()))' "$t0" "$OUTAGE")"
down_during=$(count down)
mode "$PORT" down 200
t_back=$(date +%s.%N)
# Before it opens: up to two rounds of 8 in flight (concurrency). Then one
# probe per backoff step (1, 2, 4, 8 ... s, jitter only later) that starts
# within the outage.
steps=$(py 'import sys
t, n = 1, 0
while t <= float(sys.argv[1]):
    n, t = n + 1, t + 2 ** (n + 1)
print(n)' "$OUTAGE")
check "down: at most 8 + 8 attempts, then $steps probes (one per backoff step) during ${OUTAGE}s: $down_during" \
    test "$down_during" -le $((16 + steps))
# The probe after the last failed one comes a backoff step later: up to 64 s
# (with jitter) after a 60 s outage.
wait_for 100 is_json "$CONF" down "$N" delivered
t_down_done=$(date +%s.%N)
check "down: all $N delivered once it came back" \
    test "$(json_of "$CONF" down delivered)" = "$N"
check "down: each event received with 200 exactly once" py '
import json, sys
ok = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["name"] == "down" and r["status"] == 200:
        w = r["headers"]["webhook-id"]
        ok[w] = ok.get(w, 0) + 1
bad = [w for w, n in ok.items() if n != 1]
sys.exit(0 if len(ok) == int(sys.argv[2]) and not bad else "%d ids, %d twice" % (len(ok), len(bad)))' "$T/recv.log" "$N"
expect "status --json: down's breaker closed again" closed \
    "$(json_of "$CONF" down breaker state)"
wait_for 15 is_json "$CONF" old "$N" dead
check "old: open the whole time, all $N dead letters at max_age (6 s)" \
    test "$(json_of "$CONF" old dead)" = "$N"
old_attempts=$(count old)
check "old: a few attempts in all, not one per event: $old_attempts" \
    test "$old_attempts" -le 16
stop_pid $DPID
check "deliver logs when down's breaker opened" \
    grep -q '^slhook: down: breaker open after failed attempts in a row (the last: HTTP 503' \
    "$T/deliver.err"
check "... and when it closed" \
    grep -q '^slhook: down: breaker closed: HTTP 200$' "$T/deliver.err"
py '
import json, sys
t0, back, done, hdone = map(float, sys.argv[2:6])
arr = {"down": [], "healthy": []}
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["name"] in arr:
        arr[r["name"]].append((r["time"], r["status"]))
h = sorted(t for t, s in arr["healthy"])
d = sorted(arr["down"])
during = [t for t, s in d if t < back]
probes = ", ".join("%.1f" % (t - t0) for t in during)
ok = sorted(t for t, s in d if s == 200)
print("figures: healthy drained %d in %.2f s (first to last arrival %.2f s)"
      % (len(h), hdone - t0, h[-1] - h[0]))
print("figures: down, %d attempts in the %.0f s outage, at s %s"
      % (len(during), back - t0, probes))
print("figures: down drained %d in %.2f s after it came back (first 200 at +%.2f s)"
      % (len(ok), ok[-1] - back, ok[0] - back))' "$T/recv.log" "$t0" "$t_back" "$t_down_done" "$healthy_done"

# ---- rate = 100/s ----
RCONF=$T/rate.conf
conf "$RCONF" "$T/rspool"
cat >>"$RCONF" <<EOF

[destination paced]
url = http://127.0.0.1:$PORT/paced
rate = 100/s
EOF
hold_kick_lock "$T/rspool"
store "$RCONF" paced
"$B/slhook" -c "$RCONF" deliver 2>"$T/rdeliver.err" &
DPID=$!
track $DPID
wait_for 25 is_json "$RCONF" paced "$N" delivered
stop_pid $DPID
check "rate 100/s: $N events in 10 s +-10 %, never over 100 started in a second" py '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
rs = [r for r in rs if r["name"] == "paced"]
ts = sorted(r["time"] for r in rs)
span = ts[-1] - ts[0]
# Starts per second of the deliverer'"'"'s clock: each attempt'"'"'s
# webhook-timestamp is the second it started (arrival times add the
# receiver'"'"'s own jitter, a few ms: reported, not judged).
per = {}
for r in rs:
    k = r["headers"]["webhook-timestamp"]
    per[k] = per.get(k, 0) + 1
j = 0
slide = 0
for i in range(len(ts)):
    while ts[i] - ts[j] >= 1.0:
        j += 1
    slide = max(slide, i - j + 1)
print("figures: rate 100/s: %d in %.2f s (first to last arrival); most started in a second %d; most arrived in any sliding second %d"
      % (len(ts), span, max(per.values()), slide))
ok = len(ts) == int(sys.argv[2]) and 9.0 <= span <= 11.0 and max(per.values()) <= 100
sys.exit(0 if ok else "not paced")' "$T/recv.log" "$N"

# ---- concurrency = 3 ----
CCONF=$T/narrow.conf
conf "$CCONF" "$T/cspool"
cat >>"$CCONF" <<EOF

[destination narrow]
url = http://127.0.0.1:$PORT/narrow
concurrency = 3
EOF
hold_kick_lock "$T/cspool"
N=45
store "$CCONF" narrow
mode "$PORT" narrow hang:0.2
"$B/slhook" -c "$CCONF" deliver --once 2>"$T/cdeliver.err"
check "concurrency 3: deliver --once exits 0" test $? -eq 0
check "concurrency 3: never more than 3 in flight, and 3 used" py '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
rs = [r for r in rs if r["name"] == "narrow"]
most = max(r["inflight"] for r in rs)
print("figures: concurrency 3: %d requests, at most %d in flight" % (len(rs), most))
sys.exit(0 if len(rs) == 45 and most == 3 else "most %d of %d" % (most, len(rs)))' "$T/recv.log"
check "no sanitizer report" sh -c "! grep -qE 'Sanitizer|runtime error' '$T'/*.err"
finish

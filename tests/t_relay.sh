#!/bin/sh
# t_relay.sh: the relay commands end to end. slhook.cgi (shell mode) stores
# the fixtures; `slhook deliver` relays them to tests/receiver.py on
# loopback, which checks signatures with Python's hmac module; then status
# (text, --json, --prometheus), retry, send, two deliverer processes at
# once, SIGTERM, TLS verification, and a CGI-only deployment delivering
# within two seconds and retrying with nobody running a command.
. "$(dirname "$0")/lib.sh"
lib_init relay
WHSEC=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
# What the CGI-only part stops: everything but the main receiver.
helpers=

# py SCRIPT ARGS...: a Python check on the receiver's log; exit status 0
# when it holds, else it prints why.
py() {
    script=$1
    shift
    python3 -c "$script" "$@"
}

# Holds the spool's kick lock, so that slhook.cgi starts no deliverer and
# the commands under test are the only ones delivering.
hold_lock() {
    mkdir -p "$1"
    : >"$T/locked"
    python3 -c '
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
open(sys.argv[2], "w").write("locked")
time.sleep(600)' "$1/deliver.lock" "$T/locked" &
    track $!
    helpers="$helpers $!"
    wait_for 5 test -s "$T/locked"
}

store() { # CONF FILE...: each through slhook.cgi; counts the 200s
    conf=$1
    shift
    stored=0
    for f in "$@"; do
        if "$B/slhook.cgi" -c "$conf" <"$f" 2>/dev/null |
            grep -q '^Status: 200'; then
            stored=$((stored + 1))
        fi
    done
}

start_receiver PORT "$T/recv.log" --secret "signed=$WHSEC"
check "receiver started" test -n "$PORT"

CONF=$T/slhook.conf
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool
max_events = 400

[destination signed]
url = http://127.0.0.1:$PORT/signed/hook
signing_secret = $WHSEC
header = Authorization: Bearer abc123
timeout = 2

[destination gone]
url = http://127.0.0.1:$PORT/gone
events = Failed

[destination file]
file = $T/events.jsonl
events = Tracking
EOF
hold_lock "$T/spool"

# ---- send ----
out=$("$B/slhook" -c "$CONF" send "http://127.0.0.1:$PORT/sendme" Complaint)
check "send: exit 0 on 200" test $? -eq 0
check "send: prints the status" test "$(echo "$out" | head -n 1)" = "HTTP 200"
check "send: posted a Complaint sample carrying the secret" py '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
r = [x for x in recs if x["name"] == "sendme"]
b = json.loads(r[-1]["body"])
ok = (len(r) == 1 and b["Type"] == "Complaint" and b["SecretKey"] == sys.argv[2]
      and b["ServerId"] == 40211
      and r[-1]["headers"]["content-type"] == "application/json")
sys.exit(0 if ok else "send: %r" % r)' "$T/recv.log" "$SECRET"
"$B/slhook" -c "$CONF" send "http://127.0.0.1:$PORT/sendme" \
    "$FIX/legacy-form-failed.txt" >/dev/null
check "send FILE: a form body posted as form" py '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
ok = (r["body"] == open(sys.argv[2]).read()
      and r["headers"]["content-type"] == "application/x-www-form-urlencoded")
sys.exit(0 if ok else "send file: %r" % r)' "$T/recv.log" "$FIX/legacy-form-failed.txt"
mode "$PORT" sendbad 500
out=$("$B/slhook" -c "$CONF" send "http://127.0.0.1:$PORT/sendbad" Delivered)
rc=$?
check "send: exit 1 on 500" test $rc -eq 1
check "send: prints status and body" test "$out" = "HTTP 500
mode 500"
"$B/slhook" -c "$CONF" send "http://127.0.0.1:$PORT/x" NoSuchType \
    >/dev/null 2>&1
check "send: unknown type and no such file is an error" test $? -eq 1
"$B/slhook" -c "$CONF" send "http://127.0.0.1:1/" >/dev/null 2>"$T/err"
check "send: nobody listening is an error" grep -q "Couldn't connect" "$T/err"

# ---- deliver --once ----
mode "$PORT" gone 410
store "$CONF" "$FIX"/*.json "$FIX"/legacy-form-*.txt
check "fixtures stored through slhook.cgi" test "$stored" -ge 18
"$B/slhook" -c "$CONF" deliver --once 2>"$T/deliver.err"
check "deliver --once: exit 0" test $? -eq 0
check "deliver --once: every event once to signed, signed and verified" py '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if "/signed/" in l]
recs = [r for r in recs if r["name"] == "signed"]
ids = [r["headers"]["webhook-id"] for r in recs]
bad = [r for r in recs if not r["sig_ok"]
       or r["headers"].get("authorization") != "Bearer abc123"
       or not r["headers"]["user-agent"].startswith("slhook/")
       or "SecretKey" in r["body"]]
ok = len(ids) >= 15 and len(set(ids)) == len(ids) and not bad
sys.exit(0 if ok else "signed: %d posts, %d ids, bad %r" % (len(ids), len(set(ids)), bad[:1]))' "$T/recv.log"
check "deliver --once: gone got only Failed events" py '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
recs = [r for r in recs if r["name"] == "gone"]
ok = recs and all(json.loads(r["body"])["Type"] == "Failed" for r in recs)
sys.exit(0 if ok else "gone: %r" % recs)' "$T/recv.log"
check "deliver --once: the file got the Tracking events, one per line" py '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
ok = lines[-1] == "" and len(lines) > 3 and all(
    json.loads(l)["Type"] == "Tracking" for l in lines[:-1])
sys.exit(0 if ok else "file: %r" % lines)' "$T/events.jsonl"
check "deliver: log lines per outcome" grep -q "signed [0-9a-f]\{64\}: delivered, HTTP 200" "$T/deliver.err"
check "deliver: dead letters logged" grep -q "gone [0-9a-f]\{64\}: dead letter after 1 attempt(s): HTTP 410" "$T/deliver.err"
check "deliver: no secret in the log" sh -c "! grep -q -e '$SECRET' -e MfKQ9r8G '$T/deliver.err'"

# ---- status ----
"$B/slhook" -c "$CONF" status >"$T/status.txt"
check "status: exit 0" test $? -eq 0
check "status: text names every destination" py '
import sys
rows = {l.split()[0]: l.split() for l in open(sys.argv[1]).read().splitlines()[1:]}
ok = (set(rows) == {"signed", "gone", "file"} and rows["signed"][1] == "0"
      and rows["gone"][3] != "0" and "HTTP 410" in " ".join(rows["gone"]))
sys.exit(0 if ok else "status: %r" % rows)' "$T/status.txt"
"$B/slhook" -c "$CONF" status --json >"$T/status.json"
check "status --json: numbers and last error" py '
import json, sys
d = {x["name"]: x for x in json.load(open(sys.argv[1]))["destinations"]}
ok = (d["signed"]["pending"] == 0 and d["signed"]["delivered"] >= 15
      and d["gone"]["dead"] >= 3 and d["gone"]["pending"] == 0
      and d["gone"]["last_status"] == 410
      and d["gone"]["last_error"].startswith("HTTP 410")
      and d["file"]["delivered"] >= 3 and d["file"]["last_error"] is None)
sys.exit(0 if ok else "json: %r" % d)' "$T/status.json"
"$B/slhook" -c "$CONF" status --prometheus >"$T/status.prom"
check "status --prometheus: exposition format" py '
import re, sys
text = open(sys.argv[1]).read()
sample = re.compile(r"^[a-z_]+(\{destination=\"[a-z]+\"(,state=\"[a-z]+\")?\})? [0-9.e+-]+$")
bad = [l for l in text.splitlines() if not l.startswith("# HELP ")
       and not l.startswith("# TYPE ") and not sample.match(l)]
ok = (not bad and "# TYPE slhook_deliveries gauge" in text
      and re.search(r"^slhook_deliveries\{destination=\"gone\",state=\"dead\"\} [1-9]", text, re.M)
      and "slhook_deliveries{destination=\"signed\",state=\"pending\"} 0" in text
      and "\nslhook_deliver_start_failure_timestamp_seconds 0\n" in text)
sys.exit(0 if ok else "prometheus: bad lines %r" % bad)' "$T/status.prom"
"$B/slhook" -c "$CONF" status --yaml >/dev/null 2>&1
check "status: unknown option is a usage error" test $? -eq 2
"$B/slhook" -c "$CONF" deliver --once --ready-fd 2x >/dev/null 2>"$T/err" </dev/null
check "deliver: a --ready-fd that is no number is a usage error" \
    test $? -eq 2 -a "$(cat "$T/err")" = "usage: slhook deliver [--once]"

# ---- retry ----
"$B/slhook" -c "$CONF" retry nosuch >/dev/null 2>&1
check "retry: unknown destination exits 1" test $? -eq 1
dead=$(py 'import json,sys; print([x for x in json.load(open(sys.argv[1]))["destinations"] if x["name"] == "gone"][0]["dead"])' "$T/status.json")
out=$("$B/slhook" -c "$CONF" retry gone)
check "retry: says how many came back" test "$out" = "$dead dead letter(s) of gone back in the queue"
mode "$PORT" gone 200
"$B/slhook" -c "$CONF" deliver --once 2>/dev/null
check "retry: the dead letters are delivered" py '
import json, sys
d = {x["name"]: x for x in json.loads(sys.stdin.read())["destinations"]}
sys.exit(0 if d["gone"]["delivered"] == int(sys.argv[1]) and d["gone"]["dead"] == 0
         else "gone: %r" % d["gone"])' "$dead" <<EOF
$("$B/slhook" -c "$CONF" status --json)
EOF

# ---- two deliverer processes at once ----
py '
import json
print(json.dumps([{"Type": "Delivered", "ServerId": 40211, "SecretKey": "'$SECRET'",
                   "MessageId": "race-%d" % i, "Address": "r%d@example.org" % i}
                  for i in range(400)]))' >"$T/race.json"
before=$(wc -l <"$T/recv.log")
store "$CONF" "$T/race.json"
check "400 events stored in one request" test "$stored" -eq 1
"$B/slhook" -c "$CONF" deliver --once 2>/dev/null &
p1=$!
"$B/slhook" -c "$CONF" deliver --once 2>/dev/null &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
check "two deliverers: both exit 0" test "$r1$r2" = 00
check "two deliverers: each event posted once to each destination" py '
import json, sys, collections
recs = [json.loads(l) for l in open(sys.argv[1]).readlines()[int(sys.argv[2]):]]
c = collections.Counter((r["name"], r["headers"].get("webhook-id")) for r in recs)
signed = [k for k in c if k[0] == "signed"]
twice = [k for k, n in c.items() if n > 1]
sys.exit(0 if len(signed) == 400 and not twice else
         "%d signed, twice %r" % (len(signed), twice[:3]))' "$T/recv.log" "$before"

# ---- SIGTERM stops a looping deliverer cleanly ----
CONF2=$T/hang.conf
cat >"$CONF2" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool2
[destination hang]
url = http://127.0.0.1:$PORT/hang
timeout = 30
EOF
mode "$PORT" hang hang
hold_lock "$T/spool2"
store "$CONF2" "$FIX/delivered-1.json"
"$B/slhook" -c "$CONF2" deliver 2>/dev/null &
dpid=$!
sleep 0.7
t0=$(date +%s%N)
kill -TERM $dpid
wait $dpid
rc=$?
t1=$(date +%s%N)
check "SIGTERM: exit 0" test $rc -eq 0
check "SIGTERM: stops within 2.5 s with an attempt hanging" \
    test $(((t1 - t0) / 1000000)) -lt 2500
check "SIGTERM: the abandoned attempt is pending again" py '
import json, sys
d = json.loads(sys.stdin.read())["destinations"][0]
sys.exit(0 if d["pending"] == 1 and d["retrying"] == 0 else "hang: %r" % d)' <<EOF
$("$B/slhook" -c "$CONF2" status --json)
EOF

# ---- TLS is verified: a self-signed receiver gets nothing ----
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 \
    -keyout "$T/tls.key" -out "$T/tls.crt" >/dev/null 2>&1
start_receiver TLS_PORT "$T/tls.log" --tls "$T/tls.crt:$T/tls.key"
helpers="$helpers $RPID"
TLSURL=https://127.0.0.1:$TLS_PORT/tls
CONF3=$T/tls.conf
printf '[receiver]\nsecret_key = %s\nspool = %s\n[destination tls]\nurl = %s\n' \
    "$SECRET" "$T/spool3" "$TLSURL" >"$CONF3"
hold_lock "$T/spool3"
store "$CONF3" "$FIX/delivered-1.json"
"$B/slhook" -c "$CONF3" deliver --once 2>/dev/null
"$B/slhook" -c "$CONF3" status --json >"$T/tls.json"
check "TLS: a certificate nobody vouches for is refused" py '
import json, os, sys
d = json.load(open(sys.argv[2]))["destinations"][0]
ok = (d["pending"] == 1 and d["retrying"] == 1 and d["delivered"] == 0
      and ("SSL" in d["last_error"] or "certificate" in d["last_error"])
      and (not os.path.exists(sys.argv[1]) or os.path.getsize(sys.argv[1]) == 0))
sys.exit(0 if ok else "tls: %r" % d)' "$T/tls.log" "$T/tls.json"
"$B/slhook" -c "$CONF3" send "$TLSURL" >/dev/null 2>"$T/err"
check "TLS: send refuses it too" grep -q -e SSL -e certificate "$T/err"

# ---- a CGI-only deployment: no daemon, delivered within two seconds ----
for p in $helpers; do kill "$p" 2>/dev/null; done
sleep 0.1
"$B/slhook" -c "$CONF" sample Delivered >"$T/one.json"
msgid=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["MessageId"])' "$T/one.json")
t0=$(date +%s%N)
store "$CONF" "$T/one.json"
check "CGI: stored" test "$stored" -eq 1
arrived=""
i=0
while [ $i -lt 40 ]; do
    if grep -q "$msgid" "$T/recv.log"; then
        arrived=$(date +%s%N)
        break
    fi
    sleep 0.05
    i=$((i + 1))
done
check "CGI: the event arrived without any daemon" test -n "$arrived"
if [ -n "$arrived" ]; then
    ms=$(((arrived - t0) / 1000000))
    echo "CGI-only delivery took $ms ms"
    check "CGI: within two seconds ($ms ms)" test "$ms" -lt 2000
fi
# A retry happens on schedule with nobody running a command: the kicked
# deliverer stays while something is pending.
mode "$PORT" signed flap
"$B/slhook" -c "$CONF" sample Failed >"$T/two.json"
msgid=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["MessageId"])' "$T/two.json")
store "$CONF" "$T/two.json"
# It runs 10 nicer than the CGI that kicked it: receiving comes first. It
# lowers its priority once started (slower under ASan): up to 2 s to see it.
want_nice=$(yielded_nice /proc/$$/stat)
i=0
while :; do
    kicked=$(pgrep -f "slhook -c $CONF deliver --kicked" | head -n 1)
    got_nice=$(nice_of "/proc/${kicked:-0}/stat" 2>/dev/null)
    [ "$got_nice" = "$want_nice" ] || [ $i -ge 40 ] && break
    sleep 0.05
    i=$((i + 1))
done
expect "CGI: the kicked deliverer yields the CPU (nice)" "$want_nice" "$got_nice"
i=0
while [ $i -lt 60 ] &&
    ! grep "$msgid" "$T/recv.log" | grep '"name": "signed"' |
    grep -q '"status": 200'; do
    sleep 0.1
    i=$((i + 1))
done
check "CGI: a failed attempt is retried without any command" py '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if sys.argv[2] in l]
st = [r["status"] for r in recs if r["name"] == "signed"]
sys.exit(0 if st == [500, 200] else "statuses %r" % st)' "$T/recv.log" "$msgid"
# With nothing pending any more, the kicked deliverer goes away.
i=0
while pgrep -f "slhook -c $CONF deliver --kicked" >/dev/null && [ $i -lt 40 ]; do
    sleep 0.1
    i=$((i + 1))
done
gone=yes
pgrep -f "slhook -c $CONF deliver --kicked" >/dev/null && gone=no
check "CGI: the kicked deliverer exits when the queue is empty" test $gone = yes

finish

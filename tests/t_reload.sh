#!/bin/sh
# t_reload.sh: SIGHUP reloads the config. slhook.fcgi (on a TCP port)
# survives it and answers with the new config (a new secret key, a new
# destination); a broken config is refused with a log line and the old one
# keeps answering; under a continuous load five reloads lose no request.
# `slhook deliver` takes a config without a destination: nothing more is
# posted there, and `slhook status` shows its rows as not configured.
. "$(dirname "$0")/lib.sh"
lib_init reload
CLIENT="python3 $ROOT/tests/fcgi_client.py"
NEWKEY=Zn4pW8kQ2rTy6uVb1cXe
CONF=$T/slhook.conf
LOG=$T/fcgi.log

# with_key KEY ID FILE: the Delivered fixture carrying KEY and MessageId ID.
with_key() {
    python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
e["SecretKey"], e["MessageId"] = sys.argv[2], sys.argv[3]
json.dump(e, open(sys.argv[4], "w"))' "$FIX/delivered-1.json" "$1" "$2" "$3"
}

# count PATTERN FILE: the lines of FILE matching PATTERN.
count() {
    grep -c -- "$1" "$2" 2>/dev/null || true
}

# py SCRIPT ARGS...: a Python check; exit status 0 when it holds.
py() {
    script=$1
    shift
    python3 -c "$script" "$@"
}

# ---- slhook.fcgi ----
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool

[destination a]
file = $T/a.jsonl
EOF
PORT=$(free_port)
A=127.0.0.1:$PORT
start_fcgi "$LOG" "$A" -c "$CONF" --threads 4
SRV=$FPID
check "listening on $A" fcgi_ready "$A"
with_key "$SECRET" old-1 "$T/old.json"
with_key "$NEWKEY" new-1 "$T/new.json"
with_key "$NEWKEY" new-2 "$T/new2.json"
post "$A" --body "$T/old.json"
expect "the old key before the reload" 200 "$STATUS"
post "$A" --body "$T/new.json"
expect "the new key before the reload" 401 "$STATUS"

cat >"$CONF" <<EOF
[receiver]
secret_key = $NEWKEY
spool = $T/spool

[destination a]
file = $T/a.jsonl

[destination b]
file = $T/b.jsonl
EOF
# The pause: from SIGHUP to the first request answered on the new config,
# polled from one process (at most 20 s; the old key meanwhile gets 401).
# A request lost to the reload is the load's check, below: here it counts
# as not answered yet.
python3 - "$ROOT" "$A" "$SRV" "$T/new.json" >"$T/pause.out" <<'EOF'
import os, signal, sys, time
sys.path.insert(0, sys.argv[1] + "/tests")
import fcgi_client as fc
addr, pid, body = sys.argv[2], int(sys.argv[3]), open(sys.argv[4], "rb").read()
params = fc.make_params("POST", "application/json", len(body))
t0 = time.monotonic()
os.kill(pid, signal.SIGHUP)
status, lost = None, 0
while status != 200 and time.monotonic() - t0 < 20:
    try:
        with fc.connect(addr) as s:
            status = fc.roundtrip(s, params, body, False)[0]
    except (OSError, ValueError):
        lost += 1
print(status, "%.0f" % ((time.monotonic() - t0) * 1000), lost)
EOF
read -r STATUS ms lost <"$T/pause.out"
expect "the new key after the reload" 200 "$STATUS"
echo "reload pause: $ms ms (SIGHUP to the first answer on the new config; $lost lost)"
check "the same process after SIGHUP" kill -0 "$SRV"
post "$A" --body "$T/old.json"
expect "the old key after the reload" 401 "$STATUS"
post "$A" --body "$T/new2.json"
expect "an event after the reload" 200 "$STATUS"
check "the new destination gets the events stored since" wait_for 10 \
    grep -q new-2 "$T/b.jsonl"
check "the reload is logged" grep -q "slhook.fcgi: reloading; " "$LOG"
expect "started twice, on the same socket" 2 \
    "$(count "threads on $A, delivering" "$LOG")"

# A config that does not load is refused, and the running one kept.
printf '[receiver]\nsecret_key = x\nbogus = 1\n' >"$T/broken.conf"
cp "$CONF" "$T/good.conf"
cp "$T/broken.conf" "$CONF"
kill -HUP "$SRV"
check "a broken config is refused with a log line naming path:line" \
    wait_for 10 grep -q "reload refused, the running config kept: $CONF:3" "$LOG"
check "still running after a refused reload" kill -0 "$SRV"
post "$A" --body "$T/new.json"
expect "the running config still answers" 200 "$STATUS"
expect "not restarted for a refused config" 2 \
    "$(count "threads on $A, delivering" "$LOG")"
# A spool that cannot be opened is refused too.
sed "s|^spool = .*|spool = /proc/nonexistent/spool|" "$T/good.conf" >"$CONF"
kill -HUP "$SRV"
check "an unusable spool is refused" wait_for 10 sh -c \
    "[ \$(grep -c 'reload refused' '$LOG') -eq 2 ]"
post "$A" --body "$T/new.json"
expect "the running config answers after that too" 200 "$STATUS"
cp "$T/good.conf" "$CONF"

# Five reloads under a continuous load: every request answered 200.
python3 - "$ROOT" "$A" "$T/load.stop" "$FIX/delivered-1.json" "$NEWKEY" \
    >"$T/load.out" 2>"$T/load.err" <<'EOF' &
import json, os, sys, threading
sys.path.insert(0, sys.argv[1] + "/tests")
import fcgi_client as fc
addr, stop, fixture, key = sys.argv[2:6]
template = json.load(open(fixture))
template["SecretKey"] = key
lock = threading.Lock()
counts, n = {}, [0]
def client(k):
    i = 0
    while not os.path.exists(stop):
        e = dict(template, MessageId="load-%d-%d" % (k, i))
        i += 1
        body = json.dumps(e).encode()
        try:
            with fc.connect(addr) as s:
                status, _, _ = fc.roundtrip(
                    s, fc.make_params("POST", "application/json", len(body)),
                    body, False)
        except (OSError, ValueError) as ex:
            status = type(ex).__name__
        with lock:
            counts[status] = counts.get(status, 0) + 1
threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("requests %d ok %d %s" % (sum(counts.values()), counts.get(200, 0),
                                fc.counts_detail(counts)))
EOF
LOAD=$!
track $LOAD
sleep 1
starts=$(count "threads on $A, delivering" "$LOG")
for r in 1 2 3 4 5; do
    kill -HUP "$SRV"
    wait_for 20 sh -c "[ \$(grep -c 'threads on $A, delivering' '$LOG') -ge $((starts + r)) ]"
    sleep 0.5
done
: >"$T/load.stop"
wait "$LOAD"
expect "five reloads under load" $((starts + 5)) \
    "$(count "threads on $A, delivering" "$LOG")"
read -r _ n _ ok rest <"$T/load.out"
echo "load during five reloads: $(cat "$T/load.out")"
check "requests sent during the reloads ($n)" [ "${n:-0}" -gt 50 ]
expect "every request answered 200 [$rest]" "$n" "$ok"
stop_pid "$SRV"
expect "SIGTERM after reloads: exit 0" 0 $?

# ---- slhook deliver ----
start_receiver RPORT "$T/recv.log"
DCONF=$T/deliver.conf
cat >"$DCONF" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/dspool

[destination keep]
url = http://127.0.0.1:$RPORT/keep

[destination gone]
url = http://127.0.0.1:$RPORT/gone
EOF
mode "$RPORT" gone 500
# Root makes no spool from a shell (slhook(1)): the directory is made here,
# as an operator would for the user the programs run as.
mkdir -m 0700 "$T/dspool"
"$B/slhook" -c "$DCONF" deliver 2>"$T/deliver.log" &
DPID=$!
track $DPID
# The looping deliverer holds the kick lock: the CGI starts none beside it.
wait_for 10 test -e "$T/dspool/deliver.lock"
sleep 0.5
"$B/slhook.cgi" -c "$DCONF" <"$FIX/failed-1.json" >/dev/null 2>&1
posts() { # NAME: the posts the receiver logged for NAME
    py 'import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["name"] == sys.argv[2]))' \
        "$T/recv.log" "$1"
}
check "keep gets the event" wait_for 10 sh -c "grep -q '\"name\": *\"keep\"' '$T/recv.log'"
check "gone is tried (and answers 500)" wait_for 10 sh -c "grep -q '\"name\": *\"gone\"' '$T/recv.log'"

sed '/^\[destination gone\]/,$d' "$DCONF" >"$DCONF.new"
mv "$DCONF.new" "$DCONF"
kill -HUP "$DPID"
check "deliver: the reload is logged" wait_for 10 grep -q "reloaded $DCONF: 1 destination" "$T/deliver.log"
check "deliver: the same process after SIGHUP" kill -0 "$DPID"
n_gone=$(posts gone)
mode "$RPORT" gone 200
"$B/slhook.cgi" -c "$DCONF" <"$FIX/failed-2.json" >/dev/null 2>&1
check "keep gets the event stored after the reload" wait_for 10 sh -c \
    "[ \$(grep -c '\"name\": *\"keep\"' '$T/recv.log') -ge 2 ]"
# gone's row was due again 1 s after its failure (plus jitter): a deliverer
# still on the old config would have posted it by now.
sleep 4
expect "the removed destination gets nothing more" "$n_gone" "$(posts gone)"

"$B/slhook" -c "$DCONF" status >"$T/status.txt"
check "status: the removed destination's row, not configured" grep -q \
    "^gone (not configured) *1 *1 *0 *0 " "$T/status.txt"
"$B/slhook" -c "$DCONF" status --json >"$T/status.json"
check "status --json: configured false, its pending row" py '
import json, sys
d = {x["name"]: x for x in json.load(open(sys.argv[1]))["destinations"]}
ok = (d["gone"]["configured"] is False and d["gone"]["kind"] is None
      and d["gone"]["pending"] == 1 and d["keep"]["configured"] is True
      and d["keep"]["delivered"] == 2)
sys.exit(0 if ok else "json: %r" % d)' "$T/status.json"
"$B/slhook" -c "$DCONF" status --prometheus >"$T/status.prom"
check "status --prometheus: its pending row, configured 0" sh -c "
    grep -qx 'slhook_deliveries{destination=\"gone\",state=\"pending\"} 1' '$T/status.prom' &&
    grep -qx 'slhook_destination_configured{destination=\"gone\"} 0' '$T/status.prom' &&
    grep -qx 'slhook_destination_configured{destination=\"keep\"} 1' '$T/status.prom'"

cp "$T/broken.conf" "$DCONF.broken"
cp "$DCONF" "$DCONF.good"
cp "$DCONF.broken" "$DCONF"
kill -HUP "$DPID"
check "deliver: a broken config is refused" wait_for 10 grep -q \
    "deliver: reload refused, the running config kept: $DCONF:3" "$T/deliver.log"
cp "$DCONF.good" "$DCONF"
"$B/slhook.cgi" -c "$DCONF" <"$FIX/failed-3.json" >/dev/null 2>&1
check "deliver: the running config still delivers" wait_for 10 sh -c \
    "[ \$(grep -c '\"name\": *\"keep\"' '$T/recv.log') -ge 3 ]"
# A second reload that takes: the config replaced now is the first
# reload's own, which the deliverer had freed before it was done with it
# (a use after free that a sanitizer build stops on).
kill -HUP "$DPID"
check "deliver: a second reload is logged" wait_for 10 sh -c \
    "[ \$(grep -c 'reloaded $DCONF: 1 destination' '$T/deliver.log') -ge 2 ]"
check "deliver: the same process after two reloads" kill -0 "$DPID"
"$B/slhook.cgi" -c "$DCONF" <"$FIX/delivered-1.json" >/dev/null 2>&1
check "deliver: the second reload's config delivers" wait_for 10 sh -c \
    "[ \$(grep -c '\"name\": *\"keep\"' '$T/recv.log') -ge 4 ]"
stop_pid "$DPID"
expect "deliver: SIGTERM after reloads: exit 0" 0 $?
finish

#!/bin/sh
# t_crash.sh: nothing answered 200 is lost when processes die. Parallel
# FastCGI clients (tests/load_client.py, retrying what gets no 200, as
# SocketLabs does) send thousands of distinct events, 1 to 3 per request.
#   Phase 1: slhook.fcgi delivering in-process, SIGKILLed CRASH_KILLS times
#            under the load (at spread-out points, with a random delay) and
#            restarted on the same port each time.
#   Phase 2: slhook.fcgi --no-deliver and a looping `slhook deliver` beside
#            it, the receiver slowed to 20 ms a post so that attempts are in
#            flight; the deliverer SIGKILLed CRASH_DKILLS times (the
#            responder too, every other time) and restarted.
# Then `slhook deliver --once` until nothing is pending. What the last
# killed deliverer had claimed is taken back at once by the first of those
# (its lock file is free: store_sqlite.h), not left to its lease (about 40 s
# here): the drain must end well before one would have.
# Destinations: an HTTP receiver taking every event, a file taking Failed
# and Complaint. Counted and printed: 200s given, delivered, lost (a 200'd
# event missing from a destination that wants it: must be 0), duplicates.
# `make crash` runs it long: more events, more kills.
. "$(dirname "$0")/lib.sh"
lib_init crash
need python3 sqlite3 curl "$B/slhook.fcgi" "$B/slhook"

EVENTS=${CRASH_EVENTS:-5000} # per phase
CLIENTS=${CRASH_CLIENTS:-6}
KILLS=${CRASH_KILLS:-6}
DKILLS=${CRASH_DKILLS:-6}
LOAD="python3 $ROOT/tests/load_client.py"
TEMPLATES="--template $FIX/delivered-1.json --template $FIX/failed-1.json
    --template $FIX/complaint-1.json --template $FIX/deferred-1.json"
DB=$T/spool/slhook.db
: >"$T/ok.log"

start_receiver RPORT "$T/recv.log"
CONF=$T/slhook.conf
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
server_id = 40211
max_body = 65536
spool = $T/spool

[destination hook]
url = http://127.0.0.1:$RPORT/hook
timeout = 2

[destination file]
file = $T/events.jsonl
events = Failed Complaint
timeout = 2
EOF
ADDR=127.0.0.1:$(free_port)

# rand MAX: a random integer in [0, MAX).
rand() {
    python3 -c "import random; print(random.randrange($1))"
}

acked() {
    wc -l <"$T/ok.log"
}

# at_progress K OF: waits until the load acknowledged about K/(OF+1) of the
# phase's events (jittered), then a random 0-200 ms. Returns 1 when the
# load ended first.
at_progress() {
    target=$((BASE + EVENTS * $1 / ($2 + 1) + $(rand $((EVENTS / (4 * ($2 + 1)) + 1)))))
    while [ "$(acked)" -lt "$target" ]; do
        kill -0 "$LPID" 2>/dev/null || return 1
        sleep 0.02
    done
    sleep "0.$(printf '%03d' "$(rand 200)")"
}

fcgi_up() {
    start_fcgi "$T/fcgi.log" "$ADDR" -c "$CONF" "$@"
}

# kill9 PID: SIGKILL, and reap it.
kill9() {
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# load_bg TAG OUT: the phase's load in the background, acknowledging into
# ok.log, its summary into OUT; $LPID.
load_bg() {
    $LOAD load "$ADDR" $TEMPLATES --events "$EVENTS" --clients "$CLIENTS" \
        --batch 3 --tag "$1" --ok-log "$T/ok.log" >"$2" &
    LPID=$!
    track $LPID
}

deliver_up() {
    "$B/slhook" -c "$CONF" deliver 2>>"$T/deliver.log" &
    DPID=$!
    track $DPID
}

# ---- phase 1: the responder killed while it receives and delivers ----
fcgi_up
check "responder up" fcgi_ready "$ADDR"
BASE=0
load_bg p1 "$T/load1.out"
killed=0
k=1
while [ $k -le "$KILLS" ]; do
    at_progress $k "$KILLS" || break
    kill9 "$FPID"
    killed=$((killed + 1))
    fcgi_up
    k=$((k + 1))
done
wait "$LPID"
check "phase 1 load: every event answered 200 in the end" test $? -eq 0
cat "$T/load1.out"
expect "phase 1: responder killed under load" "$KILLS" "$killed"
check "phase 1: every event acknowledged" test "$(acked)" -eq "$EVENTS"
# And once more while it is delivering what it took.
sleep 0.3
kill9 "$FPID"

# ---- phase 2: the deliverer killed mid-delivery ----
mode "$RPORT" hook hang:0.02
fcgi_up --no-deliver
check "responder up (--no-deliver)" fcgi_ready "$ADDR"
deliver_up
BASE=$(acked)
load_bg p2 "$T/load2.out"
dkilled=0
k=1
while [ $k -le "$DKILLS" ]; do
    at_progress $k "$DKILLS" || break
    kill9 "$DPID"
    dkilled=$((dkilled + 1))
    if [ $((k % 2)) -eq 0 ]; then
        kill9 "$FPID"
        fcgi_up --no-deliver
    fi
    deliver_up
    k=$((k + 1))
done
wait "$LPID"
check "phase 2 load: every event answered 200 in the end" test $? -eq 0
cat "$T/load2.out"
expect "phase 2: deliverer killed under load" "$DKILLS" "$dkilled"
check "phase 2: every event acknowledged" test "$(acked)" -eq $((2 * EVENTS))
# Killed once more mid-delivery, with the queue still long.
sleep 0.5
kill9 "$DPID"
stop_pid "$FPID"
expect "responder stops on SIGTERM" 0 $?
mode "$RPORT" hook 200

# ---- drain: deliver --once until nothing is pending ----
pending() {
    sql "$DB" "SELECT count(*) FROM delivery WHERE state = 0"
}
leased=$(sql "$DB" "SELECT count(*) FROM delivery WHERE state = 0 AND due > $(date +%s%3N)")
echo "drain: $leased rows leased by killed deliverers"
t0=$(date +%s)
rounds=0
while [ "$(pending)" -gt 0 ] && [ $(($(date +%s) - t0)) -lt 180 ]; do
    "$B/slhook" -c "$CONF" deliver --once 2>>"$T/drain.log"
    rounds=$((rounds + 1))
    [ "$(pending)" -gt 0 ] && sleep 1
done
drained=$(($(date +%s) - t0))
echo "drain: $rounds run(s) of deliver --once, $drained s"
expect "nothing pending after the drain" 0 "$(pending)"
check "drained in $drained s, not after the killed ones' 40 s leases" \
    test "$drained" -lt 30

# ---- the count ----
$LOAD tally --ok-log "$T/ok.log" --receiver-log "$T/recv.log" --dest hook \
    --file "$T/events.jsonl" --file-types Failed,Complaint --spool "$DB" \
    >"$T/tally"
cat "$T/tally"
get() {
    sed -n "s/^$1 //p" "$T/tally"
}
answers=$(($(sed -n 's/.* ok \([0-9]*\) .*/\1/p' "$T/load1.out") + $(sed -n 's/.* ok \([0-9]*\) .*/\1/p' "$T/load2.out")))
retried=$(cat "$T/load1.out" "$T/load2.out" | sed -n 's/.*retried=\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
echo "crash: $((killed + 1)) responder kills, $((dkilled + 1)) deliverer kills (+$((dkilled / 2)) responder)"
echo "crash: 200s given: $(get acked) events in $answers answers ($retried requests sent again)"
echo "crash: delivered: hook $(get hook_delivered), file $(get file_delivered) of $(get file_wanted) wanted"
echo "crash: lost: $(get lost)"
echo "crash: duplicates: hook $(get hook_duplicates), file $(get file_duplicates)"
expect "every 200'd event in the spool" 0 "$(get spool_missing)"
expect "lost" 0 "$(get lost)"
expect "every 200'd event posted to hook" "$(get acked)" "$(get hook_delivered)"
expect "every 200'd Failed/Complaint appended to the file" \
    "$(get file_wanted)" "$(get file_delivered)"
expect "no torn line in the file" 0 "$(get file_torn)"
expect "no other Type in the file" 0 "$(get file_unwanted)"
expect "no delivery row left undelivered" 0 "$(get rows_not_delivered)"
expect "no dead letter" 0 "$(get rows_dead)"
# Rows a killed deliverer had claimed are given back with the claimed
# attempt uncounted, so attempts do not show them: the rows leased at the
# drain's start and the events posted twice (posted, not yet recorded) do.
check "kills landed mid-delivery ($leased rows leased, $(get hook_duplicates) events posted twice)" \
    test $((leased + $(get hook_duplicates))) -gt 0
expect "one event row per event" "$(get acked)" \
    "$(sql "$DB" 'SELECT count(*) FROM event')"
check "no sanitizer report" sh -c "! grep -qE 'Sanitizer|runtime error' '$T'/*.log"
finish

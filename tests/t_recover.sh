#!/bin/sh
# t_recover.sh: a restarted slhook.fcgi takes back at once what its killed
# predecessor had claimed for delivery, rather than waiting out the lease
# (two minutes with the default timeout of 10 s). Parallel FastCGI clients
# (tests/load_client.py, retrying what gets no 200) send RECOVER_EVENTS
# distinct events; slhook.fcgi, delivering in-process to a real HTTP
# receiver, is SIGKILLed RECOVER_KILLS times under the load and restarted
# on the same port each time. Goal: every event answered 200 is at the
# destination within 10 s of the last restart. Printed: how many first got
# there later than that ("late": they waited for a lease), and when the
# last one did. RECOVER_WAIT=S waits up to S s after the last restart for
# the late ones to come (to measure them; 0 by default, where a late event
# is a failure anyway).
. "$(dirname "$0")/lib.sh"
lib_init recover
need python3 sqlite3 curl "$B/slhook.fcgi" "$B/slhook"

EVENTS=${RECOVER_EVENTS:-4000}
CLIENTS=${RECOVER_CLIENTS:-6}
KILLS=${RECOVER_KILLS:-4}
WAIT=${RECOVER_WAIT:-0}
GOAL=10 # seconds after the last restart
LOAD="python3 $ROOT/tests/load_client.py"
TEMPLATES="--template $FIX/delivered-1.json --template $FIX/failed-1.json
    --template $FIX/complaint-1.json --template $FIX/deferred-1.json"
DB=$T/spool/slhook.db
: >"$T/ok.log"

# Each post takes a few ms, as a real destination's would: attempts are in
# flight, and claimed rows wait for a slot, whenever the responder dies.
start_receiver RPORT "$T/recv.log" --mode hook=hang:0.005
CONF=$T/slhook.conf
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
server_id = 40211
max_body = 65536
spool = $T/spool

[destination hook]
url = http://127.0.0.1:$RPORT/hook
EOF
ADDR=127.0.0.1:$(free_port)

rand() {
    python3 -c "import random; print(random.randrange($1))"
}

acked() {
    wc -l <"$T/ok.log"
}

now() {
    date +%s.%N
}

# at_progress K: waits until the load acknowledged about K/(KILLS+1) of its
# events, then a random 0-200 ms. Returns 1 when the load ended first.
at_progress() {
    target=$((EVENTS * $1 / (KILLS + 1)))
    while [ "$(acked)" -lt "$target" ]; do
        kill -0 "$LPID" 2>/dev/null || return 1
        sleep 0.02
    done
    sleep "0.$(printf '%03d' "$(rand 200)")"
}

fcgi_up() {
    start_fcgi "$T/fcgi.log" "$ADDR" -c "$CONF"
}

# delivered: how many 200'd events are at the destination.
delivered() {
    $LOAD tally --ok-log "$T/ok.log" --receiver-log "$T/recv.log" \
        --dest hook 2>/dev/null | sed -n 's/^acked //p;s/^hook_lost //p' |
        { read -r a && read -r l && echo $((a - l)); }
}

# note_claimed: notes the delivery rows leased (due later) right now.
note_claimed() {
    sql "$DB" "SELECT seq FROM delivery WHERE state = 0 AND due > $(date +%s%3N)" \
        >>"$T/claimed"
}

fcgi_up
check "responder up" fcgi_ready "$ADDR"
$LOAD load "$ADDR" $TEMPLATES --events "$EVENTS" --clients "$CLIENTS" \
    --batch 3 --tag r --ok-log "$T/ok.log" >"$T/load.out" &
LPID=$!
track $LPID
killed=0
: >"$T/claimed"
k=1
while [ $k -le "$KILLS" ]; do
    at_progress $k || break
    kill -KILL "$FPID"
    wait "$FPID" 2>/dev/null
    killed=$((killed + 1))
    note_claimed
    fcgi_up
    last=$(now)
    k=$((k + 1))
done
wait "$LPID"
check "load: every event answered 200 in the end" test $? -eq 0
cat "$T/load.out"
expect "responder killed under load" "$KILLS" "$killed"
check "every event acknowledged" test "$(acked)" -eq "$EVENTS"
held=$(sort -u "$T/claimed" | wc -l)
echo "recover: $held rows were claimed by a killed responder when it died"
check "kills left claimed rows behind ($held)" test "$held" -gt 0

# Wait for everything, $GOAL s after the last restart (or $WAIT s).
limit=$((GOAL > WAIT ? GOAL : WAIT))
while [ "$(delivered)" -lt "$EVENTS" ] &&
    python3 -c "import sys, time; sys.exit(time.time() > $last + $limit)"; do
    sleep 0.5
done
$LOAD tally --ok-log "$T/ok.log" --receiver-log "$T/recv.log" --dest hook \
    --since "$last" >"$T/tally" 2>/dev/null
get() {
    sed -n "s/^$1 //p" "$T/tally"
}
late=$(($(get hook_late) + $(get hook_lost)))
echo "recover: $KILLS kills; of $(get acked) events answered 200, $late got" \
    "to the destination more than $GOAL s after the last restart" \
    "($(get hook_lost) not yet); the last $(get hook_last_after) s after it"
expect "every 200'd event at the destination within $GOAL s of the last restart" \
    0 "$late"
expect "nothing pending" 0 "$(sql "$DB" 'SELECT count(*) FROM delivery WHERE state = 0')"
stop_pid "$FPID"
expect "responder stops on SIGTERM" 0 $?
expect "the dead ones' lock files removed, and the last one's" "" \
    "$(ls "$T/spool/claims")"
check "no sanitizer report" sh -c "! grep -qE 'Sanitizer|runtime error' '$T'/*.log"
finish

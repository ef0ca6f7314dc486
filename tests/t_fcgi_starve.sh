#!/bin/sh
# slhook.fcgi against clients that connect and say nothing, or send their
# request a byte a second (issue 14, items 4 and 5): a normal request is
# still answered 200 within a second, the slow ones are closed (or
# answered 400, when their params came) after read_timeout, and SIGTERM
# exits at once however many are held open. Also the records a web server
# may send that need no handler: FCGI_GET_VALUES, a second request id.
. "$(dirname "$0")/lib.sh"
lib_init fcgi-starve
FCGI=$B/slhook.fcgi
CLIENT="python3 $ROOT/tests/fcgi_client.py"
IDLE=64
TRICKLE=64

# conf FILE READ_TIMEOUT
conf() {
    cat >"$1" <<EOF
[receiver]
secret_key = $SECRET
max_body = 65536
spool = $T/spool
read_timeout = $2
EOF
}

# exited_within SECONDS PID: waits for PID (a child) at most SECONDS;
# true, with its exit status in $RC, when it ended in time.
exited_within() {
    n=$(($1 * 10))
    while [ $n -gt 0 ] && kill -0 "$2" 2>/dev/null; do
        [ "$(ps -o stat= -p "$2" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
        n=$((n - 1))
    done
    if kill -0 "$2" 2>/dev/null &&
        [ "$(ps -o stat= -p "$2" 2>/dev/null | cut -c1)" != Z ]; then
        kill -KILL "$2"
        wait "$2"
        RC=timeout
        return 1
    fi
    wait "$2"
    RC=$?
    return 0
}

# -- read_timeout 3 s: the slow connections are let go -----------------------
conf "$T/short.conf" 3s
PORT=$(free_port)
A=127.0.0.1:$PORT
start_fcgi "$T/short.log" "$A" -c "$T/short.conf" --no-deliver
SRV=$FPID
check "listening on $A" fcgi_ready "$A"

$CLIENT "$A" values >"$T/values.out"
expect "FCGI_GET_VALUES: FCGI_MPXS_CONNS" FCGI_MPXS_CONNS=0 \
    "$(grep MPXS "$T/values.out")"
check "FCGI_GET_VALUES: FCGI_MAX_CONNS" grep -q '^FCGI_MAX_CONNS=[1-9]' "$T/values.out"
check "FCGI_GET_VALUES: FCGI_MAX_REQS" grep -q '^FCGI_MAX_REQS=[1-9]' "$T/values.out"
$CLIENT "$A" mpx --body "$FIX/delivered-1.json" >"$T/mpx.out"
expect "a second request id: FCGI_CANT_MPX_CONN (1)" "2 END_REQUEST 1" \
    "$(head -1 "$T/mpx.out")"
expect "the first request on that connection" "1 200" "$(sed -n 2p "$T/mpx.out")"

# 64 idle, 64 trickling (half with their params sent at once); after 2 s,
# one normal request. Bound: 1 s (it takes milliseconds when nothing
# starves it; before, it waited until the idle connections were closed).
$CLIENT "$A" starve --body "$FIX/delivered-1.json" --idle $IDLE \
    --trickle $TRICKLE --wait 2 --seconds 8 >"$T/short.out"
cat "$T/short.out"
set -- $(grep '^normal' "$T/short.out")
expect "normal request beside $IDLE idle and $TRICKLE trickling" 200 "${2:-}"
check "answered within 1 s (${3:-?} s)" \
    awk -v t="${3:-99}" 'BEGIN { exit !(t < 1.0) }'
# Each closed after read_timeout (3 s) from its opening, and before the
# next sweeps (every 0.5 s) plus a generous margin: 6 s.
set -- $(grep '^idle' "$T/short.out")
expect "idle connections closed" "$IDLE of $IDLE" "${3:-} ${4:-} ${5:-}"
check "idle closed after 3-6 s (${7:-?} s)" \
    awk -v t="${7:-99}" 'BEGIN { exit !(t >= 2.9 && t < 6) }'
set -- $(grep '^trickle' "$T/short.out")
expect "trickling connections closed" "$TRICKLE of $TRICKLE" "${3:-} ${4:-} ${5:-}"
check "trickling closed after 3-6 s (${7:-?} s)" \
    awk -v t="${7:-99}" 'BEGIN { exit !(t >= 2.9 && t < 6) }'
expect "those with their params answered 400" $((TRICKLE / 2)) "${9:-}"
check "timeouts logged" grep -q 'read_timeout' "$T/short.log"
check "a timed-out request's log line" grep -q '^slhook: 400 .*read_timeout' "$T/short.log"
kill -TERM "$SRV"
exited_within 20 "$SRV"
expect "SIGTERM exit (idle)" 0 "$RC"

# -- read_timeout 30 s: SIGTERM does not wait for them ---------------------
conf "$T/long.conf" 30s
PORT=$(free_port)
A=127.0.0.1:$PORT
start_fcgi "$T/long.log" "$A" -c "$T/long.conf" --no-deliver
SRV=$FPID
check "listening on $A" fcgi_ready "$A"
$CLIENT "$A" starve --body "$FIX/delivered-2.json" --idle $IDLE \
    --trickle $TRICKLE --wait 2 --seconds 30 >"$T/long.out" &
STARVE=$!
track $STARVE
wait_for 20 grep -qs '^normal' "$T/long.out"
set -- $(grep '^normal' "$T/long.out")
expect "normal request, read_timeout 30 s" 200 "${2:-}"
check "answered within 1 s (${3:-?} s)" \
    awk -v t="${3:-99}" 'BEGIN { exit !(t < 1.0) }'
t0=$(date +%s.%N)
kill -TERM "$SRV"
exited_within 20 "$SRV"
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "SIGTERM with $IDLE idle and $TRICKLE trickling connections: exit in $secs s"
expect "SIGTERM exit with trickling connections" 0 "$RC"
check "exit within 3 s ($secs s), not read_timeout (30 s)" \
    awk -v t="$secs" 'BEGIN { exit !(t < 3) }'
wait "$STARVE"
cat "$T/long.out"
set -- $(grep '^trickle' "$T/long.out")
expect "trickling connections closed at the stop" "$TRICKLE of $TRICKLE" \
    "${3:-} ${4:-} ${5:-}"
check "stop logged the connections it closed" \
    grep -q 'closed at the stop' "$T/long.log"

# -- bodies held in memory are bounded --------------------------------------
# One thread, max_body 64 KiB: 3 bodies' worth (192 KiB) may be held. Three
# connections that send 60,000 of a body's bytes and stall hold that; a
# fourth body is then dropped and answered 503 (Retry-After), and once the
# three are let go (read_timeout 3 s) the same body is read again (400: it
# is not JSON).
PORT=$(free_port)
A=127.0.0.1:$PORT
start_fcgi "$T/hog.log" "$A" -c "$T/short.conf" --no-deliver --threads 1
SRV=$FPID
check "listening on $A" fcgi_ready "$A"
head -c 60000 /dev/zero | tr '\0' ' ' >"$T/spaces.json"
$CLIENT "$A" hog --body "$T/spaces.json" --conns 3 --bytes 59000 \
    --seconds 8 >"$T/hog.out" &
HOG=$!
track $HOG
wait_for 10 grep -q hogging "$T/hog.out"
sleep 0.5
post "$A" --body "$T/spaces.json" --type application/json
expect "a body over the memory bound" 503 "$STATUS"
check "503 says Retry-After" grep -qi '^retry-after:' "$ANSWER"
check "503 says out of memory" grep -qx 'out of memory; try again later' \
    "$ANSWER"
check "logged as over the bound" grep -q 'memory bound' "$T/hog.log"
sleep 4
post "$A" --body "$T/spaces.json" --type application/json
expect "the same body once the stalled ones are closed" 400 "$STATUS"
kill -TERM "$SRV"
exited_within 20 "$SRV"
expect "SIGTERM exit (bound)" 0 "$RC"

# -- 16 hostile bodies at once cost little, and it is given back ------------
# 16 bodies of 1 MiB, each a JSON array of tiny events with no key, at once
# (issue 14: 617 MB resident before, 573 MB still held 20 s later). The
# events are counted before the body is parsed (413), so the peak is the
# bodies themselves; what parsing did take is given back within a few
# sweeps. Not under a sanitizer: its allocator is not glibc's.
case $B in
*san*) ;;
*)
    python3 "$ROOT/bench/mem_bodies.py" "$FCGI" --clients 16 --idle 3 \
        >"$T/mem.out" 2>&1
    cat "$T/mem.out"
    set -- $(grep '^burst' "$T/mem.out") # burst: VmRSS N MiB VmHWM N MiB
    check "peak with 16 hostile 1 MiB bodies under 64 MiB (${6:-?} MiB)" \
        awk -v m="${6:-999}" 'BEGIN { exit !(m < 64) }'
    set -- $(grep '^after' "$T/mem.out")
    check "resident 3 s after them under 20 MiB (${5:-?} MiB)" \
        awk -v m="${5:-999}" 'BEGIN { exit !(m < 20) }'
    ;;
esac

check "no sanitizer reports" sh -c "! grep -E 'Sanitizer|runtime error' '$T'/*.log"
finish

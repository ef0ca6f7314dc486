#!/bin/sh
# slhook.fcgi driven over real FastCGI sockets by tests/fcgi_client.py, as a
# web server would: on a TCP port (--listen), on a Unix socket (--listen),
# and on fd 0 from spawn-fcgi. The answers, the spool's rows, concurrent
# requests sharing commits, and SIGTERM with requests in flight and with an
# idle kept-alive connection.
. "$(dirname "$0")/lib.sh"
lib_init fcgi
FCGI=$B/slhook.fcgi
CLIENT="python3 $ROOT/tests/fcgi_client.py"
DB=$T/spool/slhook.db

q() {
    sql "$DB" "$1"
}

# start LOG ADDR ARGS...: start_fcgi with the test config; $SRV its pid.
start() {
    start_fcgi "$@" -c "$T/slhook.conf"
    SRV=$FPID
}

# stop PID [SIGNAL [CHILD]]: SIGTERM (or SIGNAL) to PID, then the exit
# status of PID, or of CHILD when PID runs under it (137 if it had to be
# killed after 20 s).
stop() {
    kill -"${2:-TERM}" "$1"
    (sleep 20 && kill -KILL "$1") >/dev/null 2>&1 &
    dog=$!
    wait "${3:-$1}"
    rc=$?
    pkill -P "$dog" sleep
    kill "$dog" 2>/dev/null
    wait "$dog" 2>/dev/null
    return $rc
}

# stats LOG: the "N requests stored in M commits" of a stopped server.
stats() {
    sed -n 's/.*stopped; \([0-9]*\) requests stored in \([0-9]*\) commits.*/\1 \2/p' "$1"
}

cat >"$T/slhook.conf" <<EOF
[receiver]
secret_key = $SECRET
server_id = 40211
max_body = 65536
spool = $T/spool

[destination log]
file = $T/events.jsonl
EOF

# -- the command line ----------------------------------------------------
check "built" test -x "$FCGI"
[ -x "$FCGI" ] || finish
expect "--version" "slhook.fcgi" "$("$FCGI" --version | cut -d' ' -f1)"
"$FCGI" --help >/dev/null
expect "--help exit" 0 $?
"$FCGI" --threads 0 2>/dev/null
expect "--threads 0 exit" 2 $?
"$FCGI" --bogus 2>/dev/null
expect "unknown option exit" 2 $?
printf '[receiver]\nsecret_key = x\nbogus = 1\n' >"$T/bad.conf"
"$FCGI" -c "$T/bad.conf" --listen 127.0.0.1:1 2>"$T/bad.log"
expect "config error exit" 1 $?
check "config error names path:line" grep -q "$T/bad.conf:3" "$T/bad.log"
SLHOOK_CONFIG=$T/bad.conf "$FCGI" --listen 127.0.0.1:1 2>/dev/null
expect "SLHOOK_CONFIG is read" 1 $?
"$FCGI" -c "$T/slhook.conf" </dev/null 2>"$T/nosock.log"
expect "no socket on fd 0 exit" 1 $?
check "no socket on fd 0 says so" grep -q "not a listening socket" "$T/nosock.log"

# -- every fixture and every refusal, on a TCP port -------------------------
PORT=$(free_port)
A=127.0.0.1:$PORT
start "$T/a.log" "$A" --threads 4
check "listening on $A" fcgi_ready "$A"
expect "its threads named for what they do (top -H, perf)" \
    "slh-checkpoint slh-commit slh-deliver slh-request slh-request slh-request slh-request slhook.fcgi" \
    "$(sort /proc/"$SRV"/task/*/comm | tr '\n' ' ' | sed 's/ $//')"

$CLIENT "$A" each "$FIX"/*.json "$FIX"/*.txt >"$T/each.out"
check "every fixture answered" [ "$(wc -l <"$T/each.out")" -eq "$(ls "$FIX"/*.json "$FIX"/*.txt | wc -l)" ]
while read -r name status body; do
    case $name in
    *validation*) want=$SECRET ;;
    *) want=OK ;;
    esac
    expect "$name" "200 $want" "$status $body"
done <"$T/each.out"
n_events=$(q 'SELECT count(*) FROM event')
check "fixtures stored ($n_events events)" [ "$n_events" -gt 10 ]
expect "a delivery row per event" "$n_events" \
    "$(q 'SELECT count(*) FROM delivery WHERE dest = '\''log'\''')"
# The in-process deliverer relays them to the file destination.
i=0
while [ $i -lt 100 ] && [ "$(wc -l 2>/dev/null <"$T/events.jsonl" || echo 0)" -lt "$n_events" ]; do
    sleep 0.1
    i=$((i + 1))
done
expect "events delivered to the file" "$n_events" "$(wc -l 2>/dev/null <"$T/events.jsonl")"
# Relaying yields to receiving: of the 8 threads (main, committer,
# checkpointer, 4 request threads, deliverer) the deliverer alone runs 10
# nicer than the rest (field 19 of /proc/PID/task/TID/stat; 19 at most).
base=$(nice_of /proc/"$SRV"/stat)
nicer=$(yielded_nice /proc/"$SRV"/stat)
nices=$(for t in /proc/"$SRV"/task/*; do nice_of "$t/stat"; done |
    sort -n | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
expect "thread nice values (value:threads)" "$base:7 $nicer:1 " "$nices"
check "no secret in the spool" [ "$(q "SELECT count(*) FROM event WHERE body LIKE '%$SECRET%'")" -eq 0 ]
check "validation not stored" [ "$(q "SELECT count(*) FROM event WHERE type = 'Validation'")" -eq 0 ]

$CLIENT "$A" each "$FIX"/*.json "$FIX"/*.txt >"$T/each.out"
while read -r name status body; do
    expect "$name again" 200 "$status"
done <"$T/each.out"
expect "duplicates stored once" "$n_events" "$(q 'SELECT count(*) FROM event')"

sed "s/$SECRET/wrong-key-0000/" "$FIX/delivered-1.json" >"$T/wrongkey.json"
post "$A" --body "$T/wrongkey.json"
expect "wrong key" 401 "$STATUS"
post "$A" --method GET
expect "GET" 405 "$STATUS"
check "GET: Allow: POST" grep -qi '^allow: POST' "$T/answer"
printf '{"Type":"Delivered",' >"$T/bad.json"
post "$A" --body "$T/bad.json"
expect "bad JSON" 400 "$STATUS"
head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big.json"
post "$A" --body "$T/big.json" --type application/json
expect "over max_body" 413 "$STATUS"
post "$A" --body "$FIX/delivered-1.json" --param CONTENT_LENGTH=
expect "no CONTENT_LENGTH" 411 "$STATUS"
post "$A" --body "$FIX/delivered-1.json" --type text/plain
expect "text/plain" 415 "$STATUS"
post "$A" --body "$FIX/delivered-1.json" --length 5000
expect "body shorter than CONTENT_LENGTH" 400 "$STATUS"
sed 's/40211/40212/' "$FIX/failed-1.json" >"$T/otherserver.json"
post "$A" --body "$T/otherserver.json"
expect "other ServerId" 403 "$STATUS"
expect "refusals stored nothing" "$n_events" "$(q 'SELECT count(*) FROM event')"

stop "$SRV"
expect "SIGTERM exit (idle)" 0 $?
check "log line per request" grep -q '^slhook: 200 Delivered id=' "$T/a.log"
check "log line for a refusal" grep -q '^slhook: 401 ' "$T/a.log"
check "no secret in the log" [ "$(grep -c "$SECRET" "$T/a.log")" -eq 0 ]

# -- concurrency: distinct events from parallel clients share commits -----
# Under strace, to count the disk syncs independently of the program's own
# count of commits (LeakSanitizer cannot work under ptrace: off for this one).
PORT=$(free_port)
A=127.0.0.1:$PORT
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -f -c -e trace=fsync,fdatasync -o "$T/syncs.txt" \
    "$FCGI" -c "$T/slhook.conf" --listen "$A" </dev/null 2>"$T/b.log" &
TRACER=$!
track $TRACER
check "listening again" fcgi_ready "$A"
SRV=$(pgrep -P "$TRACER")
before=$(q 'SELECT count(*) FROM event')
$CLIENT "$A" load --body "$FIX/delivered-1.json" --requests 200 \
    --clients 16 --tag conc >"$T/load.out"
cat "$T/load.out"
check "200 concurrent requests all 200" grep -q '^requests 200 ok 200 ' "$T/load.out"
expect "200 new events" $((before + 200)) "$(q 'SELECT count(*) FROM event')"
expect "200 distinct MessageIds" 200 \
    "$(q "SELECT count(DISTINCT json_extract(body, '\$.MessageId')) FROM event WHERE json_extract(body, '\$.MessageId') LIKE 'conc-%'")"
$CLIENT "$A" load --body "$FIX/failed-1.json" --requests 100 \
    --clients 4 --keep-conn --tag keep >"$T/keep.out"
cat "$T/keep.out"
check "100 requests on kept-alive connections" grep -q '^requests 100 ok 100 ' "$T/keep.out"

# SIGTERM while a kept-alive connection sits idle: it must not hold the
# process (libfcgi would block reading it).
$CLIENT "$A" hold --body "$FIX/queued-1.json" --seconds 30 >"$T/hold.out" &
HOLD=$!
track $HOLD
i=0
while [ $i -lt 50 ] && ! grep -qs '^200$' "$T/hold.out"; do
    sleep 0.1
    i=$((i + 1))
done
check "held connection answered" grep -q '^200$' "$T/hold.out"
t0=$(date +%s)
stop "$SRV" TERM "$TRACER"
expect "SIGTERM exit with an idle kept-alive connection" 0 $?
check "stopped within 5 s" [ $(($(date +%s) - t0)) -le 5 ]
wait "$HOLD"
check "idle kept-alive connection closed" grep -q 'closed by server' "$T/hold.out"
set -- $(stats "$T/b.log")
echo "group commit: $1 requests in $2 commits"
expect "every request stored" 301 "$1"
check "commits shared ($2 commits for $1 requests)" [ "${2:-999}" -lt "${1:-0}" ]
syncs=$(awk '$NF == "fsync" || $NF == "fdatasync" { n += $4 } END { print n + 0 }' "$T/syncs.txt")
echo "disk syncs: $syncs for $1 requests"
check "disk syncs counted" [ "$syncs" -gt 0 ]
check "fewer disk syncs ($syncs) than requests ($1)" [ "$syncs" -lt "${1:-0}" ]

# -- requests held at once are bounded --------------------------------------
# With the spool's writers' lock held elsewhere nothing commits: one request
# thread hands at most 3 requests (their buffers) to the committer and
# holds a 4th waiting for room, leaving the rest of the server's requests
# unread in their sockets; all are answered once the lock is let go.
# Connections are accepted regardless (so that idle ones cannot starve the
# rest): what is counted is the server's sockets whose request was read,
# those with nothing left in their receive queue.
PORT=$(free_port)
A=127.0.0.1:$PORT
start "$T/bound.log" "$A" --threads 1
check "listening with one thread" fcgi_ready "$A"
read_requests() {
    ss -Htn state established "( sport = :$PORT )" | awk '$1 == 0' | wc -l
}
flock "$T/spool/write.lock" sleep 4 &
LOCKER=$!
track $LOCKER
sleep 0.3
$CLIENT "$A" load --body "$FIX/delivered-2.json" --requests 10 \
    --clients 10 --tag bound >"$T/bound.out" &
LOAD=$!
track $LOAD
sleep 1.5
held=$(read_requests)
unread=$(ss -Htn state established "( sport = :$PORT )" | awk '$1 > 0' | wc -l)
echo "requests read while nothing commits: $held; left unread: $unread"
check "at most 3 requests with the committer and 1 waiting ($held)" \
    [ "$held" -ge 1 -a "$held" -le 4 ]
check "the rest left unread ($unread)" [ "$unread" -ge 6 ]
wait "$LOAD"
cat "$T/bound.out"
check "all 10 answered once the lock was let go" \
    grep -q '^requests 10 ok 10 ' "$T/bound.out"
wait "$LOCKER"

# The committer answers on the bare connection once libfcgi's part of the
# request is freed: with the request's own id (the client checks every
# record's), and a server that hung up meanwhile costs nothing but the
# answer (the event is stored; the next request is served).
body=$T/req-id.json
sed 's/"MessageId":"[^"]*"/"MessageId":"req-id-4660"/' \
    "$FIX/delivered-1.json" >"$body"
$CLIENT "$A" request --body "$body" --req-id 4660 >"$T/req-id.out" 2>&1
expect "answer to request id 4660" 200 "$(head -1 "$T/req-id.out")"
flock "$T/spool/write.lock" sleep 1 &
LOCKER=$!
track $LOCKER
sleep 0.2
sed 's/"MessageId":"[^"]*"/"MessageId":"hung-up"/' \
    "$FIX/delivered-1.json" >"$body"
$CLIENT "$A" request --body "$body" --hang-up
wait "$LOCKER"
sed 's/"MessageId":"[^"]*"/"MessageId":"after-hang-up"/' \
    "$FIX/delivered-1.json" >"$body"
expect "the request after a hang-up" 200 \
    "$($CLIENT "$A" request --body "$body" | head -1)"
expect "the hung-up request's event stored" 1 \
    "$(q "SELECT count(*) FROM event WHERE json_extract(body, '\$.MessageId') = 'hung-up'")"
check "the hung-up request logged" grep -q '^slhook: 200 Delivered' "$T/bound.log"
stop "$SRV"
expect "SIGTERM exit (bound)" 0 $?

# -- kept-alive connections do not starve new ones ---------------------------
# Two request threads wait in accept() and the rest park; a thread reading a
# kept connection's next request does not count. With 4 threads and 3 idle
# kept connections, the fourth thread must still take a new one.
PORT=$(free_port)
A=127.0.0.1:$PORT
start "$T/kept.log" "$A" --threads 4
check "listening with four threads" fcgi_ready "$A"
HOLDS=""
for n in 1 2 3; do
    $CLIENT "$A" hold --body "$FIX/queued-1.json" --seconds 20 \
        >"$T/kept-$n.out" &
    HOLDS="$HOLDS $!"
    track $!
done
i=0
while [ $i -lt 100 ] && [ "$(cat "$T"/kept-?.out 2>/dev/null | grep -c '^200$')" -lt 3 ]; do
    sleep 0.1
    i=$((i + 1))
done
expect "three kept connections answered and held" 3 \
    "$(cat "$T"/kept-?.out | grep -c '^200$')"
body=$T/kept.json
sed 's/"MessageId":"[^"]*"/"MessageId":"beside-kept"/' \
    "$FIX/delivered-1.json" >"$body"
expect "a new connection beside three kept ones" 200 \
    "$(timeout 5 $CLIENT "$A" request --body "$body" | head -1)"
stop "$SRV"
expect "SIGTERM exit (kept)" 0 $?
for h in $HOLDS; do wait "$h"; done
check "kept connections closed at the stop" \
    [ "$(cat "$T"/kept-?.out | grep -c 'closed by server')" -eq 3 ]

# -- SIGTERM under load: nothing answered 200 is missing -------------------
PORT=$(free_port)
A=127.0.0.1:$PORT
start "$T/c.log" "$A"
check "listening for the load" fcgi_ready "$A"
$CLIENT "$A" load --body "$FIX/complaint-1.json" --requests 100000 \
    --clients 16 --tag term --ok-log "$T/ok.ids" >"$T/term.out" &
LOAD=$!
track $LOAD
i=0
while [ $i -lt 100 ] && [ "$(wc -l 2>/dev/null <"$T/ok.ids" || echo 0)" -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
stop "$SRV"
expect "SIGTERM exit under load" 0 $?
wait "$LOAD"
cat "$T/term.out"
answered=$(sort -u "$T/ok.ids" | wc -l)
check "requests answered 200 before the stop ($answered)" [ "$answered" -ge 300 ]
q "SELECT json_extract(body, '\$.MessageId') FROM event WHERE json_extract(body, '\$.MessageId') LIKE 'term-%'" |
    sort -u >"$T/stored.ids"
sort -u "$T/ok.ids" >"$T/ok.sorted"
expect "every 200 stored" 0 "$(comm -23 "$T/ok.sorted" "$T/stored.ids" | wc -l)"
set -- $(stats "$T/c.log")
echo "under load: $1 requests in $2 commits"
expect "log counts what was stored" "$(wc -l <"$T/stored.ids")" "$1"

# -- the listening socket on fd 0, from spawn-fcgi ----------------------------
spawn-fcgi -n -s "$T/fd0.sock" -- "$FCGI" -c "$T/slhook.conf" --no-deliver \
    2>"$T/d.log" >/dev/null &
SRV=$!
track $SRV
check "spawn-fcgi socket ready" fcgi_ready "$T/fd0.sock"
post "$T/fd0.sock" --body "$FIX/tracking-1.json"
expect "fd 0: tracking" 200 "$STATUS"
post "$T/fd0.sock" --body "$FIX/legacy-form-validation.txt"
expect "fd 0: validation" "$SECRET" "$(sed '1,/^$/d' "$ANSWER")"
stop "$SRV" USR1
expect "fd 0: SIGUSR1 (libfcgi's graceful stop) exit" 0 $?
check "fd 0: log line" grep -q '^slhook: 200 Tracking ' "$T/d.log"

# -- --listen on a Unix socket ---------------------------------------------
start "$T/e.log" "$T/e.sock" --threads 2
check "unix socket ready" fcgi_ready "$T/e.sock"
post "$T/e.sock" --body "$FIX/deferred-1.json"
expect "unix socket: deferred" 200 "$STATUS"
stop "$SRV" INT
expect "unix socket: SIGINT exit" 0 $?

# A sanitizer build reports to the server's stderr without failing a request.
check "no sanitizer reports" sh -c "! grep -E 'Sanitizer|runtime error' '$T'/*.log"

finish

#!/bin/sh
# t_pg_fence.sh: deliverers on one PostgreSQL spool never post a row at
# the same time, whatever happens to their connections (store_pg.h, issue
# 18), on a cluster started here (tests/pg_lib.sh). Two `slhook deliver`
# processes share the spool; the destination is a receiver that answers a
# webhook-id's first post only after SLOW seconds, noting when each post
# began and ended (answered, or closed by the deliverer). While a first
# post is in flight:
#   1. the deliverer's session is ended (pg_terminate_backend): it takes
#      its lock again on a new one and finishes; the other never posts it;
#   2. its session is ended and another session takes its lock: it stops
#      its post (fenced) before anyone may take the row back, and the row
#      is delivered once that session lets go, the posts never overlapping;
#   3. it is SIGKILLed: the other posts the row, within 10 s (measured);
#   4. as 2, in slhook.fcgi (claims and outcomes through its committer),
#      alone: it delivers the row itself once the lock is let go.
# Then tests/test_pg_owner (the backend's owners, beats, grace, purge turn
# and upgrade, in C) on the same cluster; its checks are counted here.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
lib_init pg_fence
need "$B/slhook" "$B/slhook.fcgi" "$B/tests/test_pg_owner" python3 psql

SLOW=8
pg_start || finish
PSQL="pg_psql slh_fence -t -A"

cat >"$T/recv.py" <<'EOF'
import json, select, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = open(sys.argv[1], "a")
slow = float(sys.argv[2])
lock = threading.Lock()
seen = {}


def note(**rec):
    with lock:
        log.write(json.dumps(rec) + "\n")
        log.flush()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        wid = self.headers.get("webhook-id", "")
        start = time.time()
        with lock:
            seen[wid] = seen.get(wid, 0) + 1
            first = seen[wid] == 1
        note(ev="start", id=wid, t=start)
        until = start + (slow if first else 0.2)
        how = "answered"
        # Watch the connection while waiting: a deliverer that stops its
        # attempt closes it, and that is when its post ended.
        while time.time() < until:
            r, _, _ = select.select([self.connection], [], [],
                                    min(until - time.time(), 0.05))
            if r:
                try:
                    data = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    data = b""
                if not data:
                    how = "closed"
                    break
        if how == "answered":
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                how = "closed"
        else:
            self.close_connection = True
        note(ev="end", id=wid, t=time.time(), how=how, start=start)


ThreadingHTTPServer.daemon_threads = True
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
EOF
POSTS=$T/posts.jsonl
: >"$POSTS"
python3 "$T/recv.py" "$POSTS" "$SLOW" >"$T/recv.port" 2>"$T/recv.err" &
RPID=$!
track $RPID
wait_for 5 test -s "$T/recv.port" || abort "the receiver did not start"
PORT=$(head -n 1 "$T/recv.port")

cat >"$T/slhook.conf" <<EOF
[receiver]
secret_key = $SECRET
spool = postgresql:///slh_fence?$PG_ARGS
[destination a]
url = http://127.0.0.1:$PORT/a
timeout = 60
EOF
"$B/slhook" -c "$T/slhook.conf" deliver --once >"$T/make.log" 2>&1
expect "deliver --once makes the spool" 0 $?

# posts ID [EV [HOW]]: how many EV (start) lines the receiver wrote for ID
# (end lines: those with HOW, when given).
posts() {
    python3 - "$POSTS" "$1" "${2:-start}" "${3:-}" <<'EOF'
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["id"] == sys.argv[2] and r["ev"] == sys.argv[3] and \
            (not sys.argv[4] or r.get("how") == sys.argv[4]):
        n += 1
print(n)
EOF
}

has_posts() { [ "$(posts "$@")" -ge 1 ]; }

# apart ID: no two posts of ID overlap in time; prints the gap between
# the first's end and the second's start, if there is a second.
apart() {
    python3 - "$POSTS" "$1" <<'EOF'
import json, sys
ends = sorted((r["start"], r["t"]) for r in map(json.loads, open(sys.argv[1]))
              if r["id"] == sys.argv[2] and r["ev"] == "end")
for (s1, e1), (s2, e2) in zip(ends, ends[1:]):
    if s2 < e1:
        print("overlap: %.3f..%.3f and %.3f..%.3f" % (s1, e1, s2, e2))
        sys.exit(1)
if len(ends) > 1:
    print("%.2f s between the two posts" % (ends[1][0] - ends[0][1]))
EOF
}

apart_() { apart "$1" >/dev/null; }

# An event for destination a, due now, straight into the tables: the
# deliverers hear of it through the insert's notification.
insert_event() {
    $PSQL -c "WITH e AS (INSERT INTO slhook_event
        (id, at, type, tracking, received, body) VALUES ('$1', 0,
        'Delivered', 0, (extract(epoch FROM now()) * 1000)::bigint,
        '{\"Type\":\"Delivered\",\"MessageId\":\"$1\"}') RETURNING seq)
        INSERT INTO slhook_delivery (dest, seq, state, due, attempts)
        SELECT 'a', seq, 0, 0, 0 FROM e"
}

# state ID: the state of ID's row (0 pending, 1 delivered).
state() {
    $PSQL -c "SELECT d.state FROM slhook_delivery d JOIN slhook_event e
        USING (seq) WHERE e.id = '$1'"
}
is_delivered() { [ "$(state "$1")" = 1 ]; }

# owner_pid ID: the deliverer process whose claim ID's row is.
owner_pid() {
    $PSQL -c "SELECT o.client_pid FROM slhook_delivery d JOIN slhook_event e
        USING (seq) JOIN slhook_owner o ON o.token = d.owner
        WHERE e.id = '$1'"
}

is_owner() {
    [ "$($PSQL -c "SELECT count(*) FROM slhook_owner WHERE client_pid = $1")" \
        = 1 ]
}

now() { date +%s.%N; }

start_deliverer() {
    "$B/slhook" -c "$T/slhook.conf" deliver >"$T/deliver.$1.log" 2>&1 &
    DPID=$!
    track $DPID
    wait_for 10 is_owner $DPID || nok "deliverer $1 made no owner"
}

# hold_lock PID: ends the session of deliverer PID's owner and takes its
# lock in a session that keeps it for HOLD s (5458760: SLH_PG_LOCK_CLASS,
# the first key of our advisory locks); that psql's pid in $HPID.
HOLD=8
hold_lock() {
    $PSQL -c "SELECT pg_terminate_backend(pid) FROM slhook_owner
        WHERE client_pid = $1" \
        -c "SELECT pg_advisory_lock(5458760, token::integer)
        FROM slhook_owner WHERE client_pid = $1" \
        -c "SELECT pg_sleep($HOLD)" >"$T/hold.log" 2>&1 &
    HPID=$!
}

start_deliverer A
DA=$DPID

# 1. The session ended under a post in flight: carried on, posted once.
ID1=$(printf 'a1%062d' 1)
insert_event "$ID1"
wait_for 10 has_posts "$ID1" || abort "the first event was not posted"
start_deliverer B
DB=$DPID
$PSQL -c "SELECT pg_terminate_backend(pid) FROM slhook_owner
    WHERE client_pid = $DA" >/dev/null
wait_for $((SLOW + 5)) is_delivered "$ID1"
check "1: delivered after its deliverer's session ended" is_delivered "$ID1"
expect "1: posted once, answered" "1 1" \
    "$(posts "$ID1") $(posts "$ID1" end answered)"
check "1: the deliverer lives on" kill -0 "$DA"

# 2. The session ended and its lock taken by another session for HOLD s:
# the deliverer cannot beat, stops its post; the row is delivered after.
ID2=$(printf 'a2%062d' 2)
insert_event "$ID2"
wait_for 10 has_posts "$ID2" || abort "the second event was not posted"
P=$(owner_pid "$ID2")
t0=$(now)
hold_lock "$P"
wait_for 6 has_posts "$ID2" end closed
check "2: its lock another's: the deliverer stopped its post" \
    has_posts "$ID2" end closed
t1=$(python3 -c "import json,sys
print(min(r['t'] for r in map(json.loads, open('$POSTS'))
    if r['id'] == '$ID2' and r['ev'] == 'end'))" 2>/dev/null)
[ -n "$t1" ] && echo "2: the post stopped $(python3 -c "print('%.2f' % ($t1 - $t0))") s after the session ended"
check "2: and before the lock was free again (${HOLD} s)" \
    python3 -c "import sys; sys.exit(not (${t1:-1e12} - $t0 < $HOLD))"
wait "$HPID"
wait_for 15 is_delivered "$ID2"
check "2: delivered once the lock was let go" is_delivered "$ID2"
check "2: posted at most twice" test "$(posts "$ID2")" -le 2
check "2: never two posts at once ($(apart "$ID2" 2>&1))" apart_ "$ID2"
check "2: both deliverers live on" kill -0 "$DA" "$DB"
L2=$T/deliver.A.log
[ "$P" = "$DB" ] && L2=$T/deliver.B.log
check "2: it logged that it was fenced, and why" \
    grep -qE "^slhook: deliver: fenced: no good beat for [0-9]+ ms \(.+\): the [0-9]+ row\(s\) it held dropped" "$L2"
check "2: and that it was fenced no more" \
    grep -q "^slhook: deliver: fenced no more: a beat worked" "$L2"

# 3. SIGKILL under a post in flight: the other one posts it within 10 s.
ID3=$(printf 'a3%062d' 3)
insert_event "$ID3"
wait_for 10 has_posts "$ID3" || abort "the third event was not posted"
P=$(owner_pid "$ID3")
t0=$(now)
kill -KILL "$P"
wait "$P" 2>/dev/null
wait_for 12 test "$(posts "$ID3")" -ge 2
t2=$(python3 -c "import json
s = sorted(r['t'] for r in map(json.loads, open('$POSTS'))
    if r['id'] == '$ID3' and r['ev'] == 'start')
print(s[1] if len(s) > 1 else 1e12)")
took=$(python3 -c "print('%.2f' % ($t2 - $t0))")
echo "3: a SIGKILLed deliverer's row posted by the other $took s after the kill"
check "3: within 10 s ($took s)" \
    python3 -c "import sys; sys.exit(not ($t2 - $t0 < 10))"
wait_for 5 is_delivered "$ID3"
check "3: delivered" is_delivered "$ID3"
check "3: never two posts at once ($(apart "$ID3" 2>&1))" apart_ "$ID3"
L3=$T/deliver.A.log
[ "$P" = "$DA" ] && L3=$T/deliver.B.log
check "3: the other logged what it took back" \
    grep -qE "^slhook: deliver: took back [1-9][0-9]* row\(s\) that dead deliverers had claimed" "$L3"
for p in $DA $DB; do [ "$p" = "$P" ] || stop_pid "$p"; done

# 4. Case 2 in slhook.fcgi, alone: its delivery thread claims and records
# through the committer's connection, its owner held by its own. It stops
# its post, and once the lock is let go gives the row back to itself and
# delivers it.
start_fcgi "$T/fcgi.log" "$T/fcgi.sock" -c "$T/slhook.conf"
wait_for 10 is_owner $FPID || nok "slhook.fcgi made no owner"
ID4=$(printf 'a4%062d' 4)
insert_event "$ID4"
wait_for 10 has_posts "$ID4" || abort "the fourth event was not posted"
hold_lock "$FPID"
wait_for 6 has_posts "$ID4" end closed
check "4: slhook.fcgi, its lock another's: stopped its post" \
    has_posts "$ID4" end closed
wait "$HPID"
wait_for 15 is_delivered "$ID4"
check "4: delivered by it once the lock was let go" is_delivered "$ID4"
check "4: never two posts at once ($(apart "$ID4" 2>&1))" apart_ "$ID4"
check "4: slhook.fcgi lives on" kill -0 "$FPID"
check "4: slhook.fcgi logged that it was fenced, and no more" sh -c "
    grep -q '^slhook.fcgi: deliverer: fenced: no good beat' '$T/fcgi.log' &&
    grep -q '^slhook.fcgi: deliverer: fenced no more' '$T/fcgi.log'"
stop_pid "$FPID"

# The backend's own checks, in C, counted with these.
SLH_TEST_PG=$PG_ARGS "$B/tests/test_pg_owner" >"$T/owner.out" 2>&1
expect "test_pg_owner: exit 0" 0 $?
grep -E '^FAIL|ms' "$T/owner.out"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$T/owner.out" | tail -n 1)
[ -n "$summary" ] || nok "test_pg_owner printed no summary"
pass=$((pass + ${summary%% passed*}))
f=${summary#*, }
fail=$((fail + ${f%% failed}))
pg_stop
finish

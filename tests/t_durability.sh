#!/bin/sh
# t_durability.sh: the 200 is written only after the commit is durable, so a
# power cut after a 200 cannot lose the event. slhook.cgi (CGI variables,
# body on stdin) and slhook.fcgi (parallel FastCGI clients, commits shared)
# run under strace; in the syscall order, for every answer "Status: 200",
# each event of its request (found by its MessageId in the body read from
# stdin or the FastCGI socket) must have been written into the spool's WAL
# (a pwrite64 of the page holding it) and the WAL fsync'd or fdatasync'd
# after that, all before the write of "Status: 200" to stdout or the
# socket. The checker is shown to catch a trace whose syncs are taken out.
# On a full tmpfs, both answer 503 with Retry-After and never write a 200,
# and the spool holds none of those events.
. "$(dirname "$0")/lib.sh"
lib_init durability
need strace python3 sqlite3 "$B/slhook.cgi" "$B/slhook.fcgi"

# LeakSanitizer cannot work under ptrace: off for the traced runs of a
# sanitizer build (make test SANITIZE=...); the rest of ASan stays on.
TRACE="env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
    strace -f -y -tt -s 65536
    -e trace=fsync,fdatasync,read,write,writev,pwrite64,pwritev,sendto,sendmsg"
LOAD="python3 $ROOT/tests/load_client.py"

# order_check TRACE [--no-200]: checks the order above in one strace log;
# prints "responses N ok200 K bad B other M" and fails when B > 0 (or, with
# --no-200, when any 200 was written at all).
order_check() {
    python3 - "$@" <<'EOF'
import re, sys
path, no200 = sys.argv[1], "--no-200" in sys.argv[2:]
line_re = re.compile(r"^(\d+)\s+\S+\s+(.*)$")
call_re = re.compile(r"^(\w+)\((.*)$", re.S)
fd_re = re.compile(r"^(\d+)<([^>]*)>")
mid_re = re.compile(r'D7Q-[0-9a-z-]+(?=\\")')
calls, pending = [], {}
with open(path, encoding="latin-1") as f:
    for idx, raw in enumerate(f):
        m = line_re.match(raw.rstrip("\n"))
        if not m:
            continue
        pid, rest = int(m.group(1)), m.group(2)
        if rest.startswith("<... "):
            name, _, tail = rest[5:].partition(" resumed>")
            if pid in pending:
                pname, ptext, start = pending.pop(pid)
                calls.append((pid, pname, ptext + tail, start, idx))
            continue
        c = call_re.match(rest)
        if not c:
            continue
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (c.group(1), c.group(2)[:-len("<unfinished ...>")], idx)
        else:
            calls.append((pid, c.group(1), c.group(2), idx, idx))
calls.sort(key=lambda c: c[3])
wal_writes, wal_syncs, chan = [], [], {}
responses = []
for pid, name, text, start, end in calls:
    fd = fd_re.match(text)
    if not fd:
        continue
    num, target = int(fd.group(1)), fd.group(2)
    ok = re.search(r"\)\s*=\s*(\d+)\s*$", text) is not None
    if target.endswith("slhook.db-wal"):
        if name in ("pwrite64", "pwritev", "write", "writev") and ok:
            wal_writes.append((start, end, set(mid_re.findall(text))))
        elif name in ("fsync", "fdatasync") and ok:
            wal_syncs.append(end)
        continue
    # A socket is one process's, whichever thread uses it: slhook.fcgi reads
    # a request in one thread and its committer thread writes the answer.
    if num in (0, 1):
        key = (pid, "stdio")
    elif target.startswith("socket:") or target.startswith("TCP"):
        key = ("socket", num)
    else:
        continue
    if name == "read":
        chan.setdefault(key, []).append(text)
    elif name in ("write", "writev", "sendto", "sendmsg"):
        st = re.search(r"Status: (\d{3})", text)
        if st is None:
            continue
        req = "".join(chan.pop(key, []))
        responses.append((int(st.group(1)), start, set(mid_re.findall(req)),
                          "Retry-After" in text))
bad, ok200, other, unmatched = 0, 0, 0, 0
for status, at, mids, retry in responses:
    if status != 200:
        other += 1
        if status == 503 and not retry:
            print("503 without Retry-After at line", at + 1)
            bad += 1
        continue
    if no200:
        print("a 200 was written at line", at + 1)
        bad += 1
        continue
    if not mids:
        unmatched += 1
        continue
    for mid in sorted(mids):
        w = next((w for w in wal_writes if mid in w[2] and w[1] < at), None)
        if w is None:
            print("200 at line %d: %s never written to the WAL before it"
                  % (at + 1, mid))
            bad += 1
        elif not any(w[1] < s < at for s in wal_syncs):
            print("200 at line %d: %s written to the WAL (line %d) but not "
                  "synced before the 200" % (at + 1, mid, w[1] + 1))
            bad += 1
    ok200 += 1
print("responses %d ok200 %d bad %d other %d unmatched %d"
      % (len(responses), ok200, bad, other, unmatched))
sys.exit(1 if bad or unmatched else 0)
EOF
}

# field NAME FILE: a number from order_check's summary line.
field() {
    sed -n "s/.*\b$1 \([0-9]*\).*/\1/p" "$2" | tail -n 1
}

CONF=$T/slhook.conf
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
max_body = 262144
spool = $T/spool

[destination file]
file = $T/events.jsonl
EOF
# Holding the kick lock keeps slhook.cgi from starting a deliverer: only
# the receiving path is traced.
mkdir -p "$T/spool"
python3 -c '
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").write("locked")
time.sleep(3600)' "$T/spool/deliver.lock" "$T/locked" &
track $!
wait_for 5 test -s "$T/locked" || abort "cannot hold the kick lock"

# ---- slhook.cgi: one process per request ----
cgi_ok=0
cgi_events=0
i=0
while [ $i -lt 12 ]; do
    n=$((i % 3 + 1)) # 1, 2 or 3 events per request
    events "$T/cgi-$i.json" "D7Q-cgi-$i" "$n"
    SLHOOK_CONFIG=$CONF GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
        CONTENT_TYPE=application/json CONTENT_LENGTH=$(wc -c <"$T/cgi-$i.json") \
        REMOTE_ADDR=127.0.0.1 $TRACE -o "$T/cgi-$i.trace" "$B/slhook.cgi" \
        <"$T/cgi-$i.json" >"$T/cgi-$i.out" 2>>"$T/cgi.log"
    if grep -q '^Status: 200' "$T/cgi-$i.out" &&
        order_check "$T/cgi-$i.trace" >"$T/cgi-$i.check" &&
        [ "$(field ok200 "$T/cgi-$i.check")" = 1 ]; then
        cgi_ok=$((cgi_ok + 1))
        cgi_events=$((cgi_events + n))
    else
        echo "cgi request $i:"
        cat "$T/cgi-$i.out" "$T/cgi-$i.check"
    fi
    i=$((i + 1))
done
echo "slhook.cgi: $cgi_ok of 12 requests ($cgi_events events): WAL written, synced, then the 200"
expect "cgi: every 200 after its WAL sync" 12 "$cgi_ok"
expect "cgi: the events are in the spool" "$cgi_events" "$(stored "$T/spool/slhook.db" D7Q-cgi)"

# The checker itself: the same trace without its syncs must fail.
grep -v -E 'f(data)?sync\([0-9]+<[^>]*slhook\.db-wal>' "$T/cgi-4.trace" \
    >"$T/nosync.trace"
order_check "$T/nosync.trace" >"$T/nosync.check"
check "checker: a 200 with no WAL sync before it is caught" \
    grep -q "not synced before the 200" "$T/nosync.check"
sed -n '/slhook\.db-wal>/!p' "$T/cgi-4.trace" >"$T/nowal.trace"
order_check "$T/nowal.trace" >"$T/nowal.check"
check "checker: a 200 with no WAL write before it is caught" \
    grep -q "never written to the WAL" "$T/nowal.check"

# ---- slhook.fcgi: threads sharing commits ----
ADDR=127.0.0.1:$(free_port)
$TRACE -o "$T/fcgi.trace" "$B/slhook.fcgi" -c "$CONF" --listen "$ADDR" \
    </dev/null 2>"$T/fcgi.log" &
SPID=$!
track $SPID
check "fcgi under strace up" fcgi_ready "$ADDR"
$LOAD load "$ADDR" --template "$FIX/failed-1.json" \
    --template "$FIX/delivered-2.json" --events 150 --clients 6 --batch 3 \
    --tag D7Q-fcgi --ok-log "$T/fcgi.ok" >"$T/fcgi.load"
cat "$T/fcgi.load"
FCGI_PID=$(pgrep -P "$SPID" -x slhook.fcgi)
kill -TERM "$FCGI_PID"
wait "$SPID"
expect "fcgi: SIGTERM exit under strace" 0 $?
answers=$(sed -n 's/.* ok \([0-9]*\) .*/\1/p' "$T/fcgi.load")
order_check "$T/fcgi.trace" >"$T/fcgi.check"
check "fcgi: every 200 after its WAL sync" test $? -eq 0
cat "$T/fcgi.check"
expect "fcgi: every 200 answer checked" "$answers" "$(field ok200 "$T/fcgi.check")"
check "fcgi: commits were shared ($(grep -c 'fdatasync([0-9]*<[^>]*slhook.db-wal>' "$T/fcgi.trace") WAL syncs for $answers answers)" \
    test "$(grep -c 'fdatasync([0-9]*<[^>]*slhook.db-wal>' "$T/fcgi.trace")" -le "$answers"
expect "fcgi: the events are in the spool" 150 "$(stored "$T/spool/slhook.db" D7Q-fcgi)"

# ---- the 503 path: a spool on a full tmpfs never writes a 200 ----
FULL=$T/full
mount_tmpfs "$FULL" 1m || abort "mount tmpfs (needs root)"
sed "s|^spool = .*|spool = $FULL/spool|" "$CONF" >"$T/full.conf"
events "$T/small.json" D7Q-small 1
cgi "$T/full.conf" "$T/small.json"
expect "full: a first event stored while there is room" 200 "$STATUS"
ADDR=127.0.0.1:$(free_port)
$TRACE -o "$T/full-fcgi.trace" "$B/slhook.fcgi" -c "$T/full.conf" \
    --listen "$ADDR" --no-deliver </dev/null 2>"$T/full-fcgi.log" &
SPID=$!
track $SPID
check "fcgi on the small tmpfs up" fcgi_ready "$ADDR"
dd if=/dev/zero of="$FULL/filler" bs=4k 2>/dev/null
check "the tmpfs is full" test "$(df --output=avail "$FULL" | tail -n 1)" -eq 0
i=0
n503=0
while [ $i -lt 5 ]; do
    events "$T/big-$i.json" "D7Q-full-$i" 3 "$FIX/complaint-1.json" 30000
    post "$ADDR" --body "$T/big-$i.json"
    if [ "$STATUS" = 503 ] && has_retry_after; then n503=$((n503 + 1)); fi
    i=$((i + 1))
done
expect "fcgi, disk full: 503 with Retry-After" 5 "$n503"
SLHOOK_CONFIG=$T/full.conf GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
    CONTENT_TYPE=application/json CONTENT_LENGTH=$(wc -c <"$T/big-0.json") \
    REMOTE_ADDR=127.0.0.1 $TRACE -o "$T/full-cgi.trace" "$B/slhook.cgi" \
    <"$T/big-0.json" >"$T/full-cgi.out" 2>>"$T/cgi.log"
check "cgi, disk full: 503 with Retry-After" \
    sh -c "grep -q '^Status: 503' '$T/full-cgi.out' && grep -q '^Retry-After: [0-9]' '$T/full-cgi.out'"
kill -TERM "$(pgrep -P "$SPID" -x slhook.fcgi)"
wait "$SPID"
order_check "$T/full-fcgi.trace" --no-200 >"$T/full-fcgi.check"
check "fcgi, disk full: no 200 ever written" test $? -eq 0
check "fcgi, disk full: the 503s are in the trace" \
    test "$(field other "$T/full-fcgi.check")" -ge 5
order_check "$T/full-cgi.trace" --no-200 >"$T/full-cgi.check"
check "cgi, disk full: no 200 ever written" test $? -eq 0
check "cgi, disk full: the 503 is in the trace" \
    test "$(field other "$T/full-cgi.check")" -eq 1
rm -f "$FULL/filler"
expect "disk full: none of the refused events stored" 0 \
    "$(stored "$FULL/spool/slhook.db" D7Q-full)"
check "no sanitizer report" sh -c "! grep -qE 'Sanitizer|runtime error' '$T'/*.log"
finish

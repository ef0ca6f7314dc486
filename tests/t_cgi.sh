#!/bin/sh
# slhook.cgi on its own: pipe mode (`slhook sample TYPE | slhook.cgi`, its
# exit status, a terminal on stdin), CGI mode, a config error answered with
# a complete 503, an unread body drained, and the receive path never
# loading libcurl.
. "$(dirname "$0")/lib.sh"
lib_init cgi
need sqlite3

CONF=$T/slhook.conf
cat >"$CONF" <<CONF_EOF
[receiver]
secret_key = $SECRET
spool = $T/spool
CONF_EOF
DB=$T/spool/slhook.db
# Root runs the pipe test: from a shell it makes no spool directory (the
# web server's user could not write in one of root's), so root makes its
# own on purpose, which it then uses.
mkdir -m 0700 "$T/spool"

# Pipe mode: every JSON and form fixture, content type guessed from the body.
for f in "$FIX"/*.json "$FIX"/legacy-form-*.txt; do
    name=${f##*/}
    "$B/slhook.cgi" -c "$CONF" <"$f" >"$T/out" 2>>"$T/cgi.log"
    got=$(sed -n 's/^Status: \([0-9]*\).*/\1/p' "$T/out")
    expect "pipe $name" 200 "$got"
done
expect "pipe: events stored once each" 18 "$(sql "$DB" 'SELECT count(*) FROM event')"

"$B/slhook" -c "$CONF" sample Failed | "$B/slhook.cgi" -c "$CONF" >"$T/out" 2>>"$T/cgi.log"
expect "pipe: a 200 exits 0" 0 "$?"
check "sample | slhook.cgi answers 200 OK" grep -q '^OK' "$T/out"
expect "the sample is stored" 19 "$(sql "$DB" 'SELECT count(*) FROM event')"
printf '{"Type":"Delivered","SecretKey":"nope"}' | "$B/slhook.cgi" -c "$CONF" \
    >"$T/out" 2>>"$T/cgi.log"
rc=$?
check "pipe: wrong key is 401" grep -q '^Status: 401' "$T/out"
expect "pipe: a 401 exits 1" 1 "$rc"
printf 'neither JSON nor form' | "$B/slhook.cgi" -c "$CONF" >"$T/out" 2>>"$T/cgi.log"
rc=$?
check "pipe: a bad body is 400" grep -q '^Status: 400' "$T/out"
expect "pipe: a 400 exits 1" 1 "$rc"
# A terminal on stdin: the usage, at once, rather than silent waiting.
check "a terminal on stdin: usage on stderr, exit 2" python3 -c '
import os, pty, subprocess, sys
m, s = pty.openpty()
p = subprocess.Popen([sys.argv[1], "-c", sys.argv[2]], stdin=s,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
os.close(s)
try:
    out, err = p.communicate(timeout=10)
except subprocess.TimeoutExpired:
    p.kill()
    sys.exit("still waiting on the terminal after 10 s")
sys.exit(0 if p.returncode == 2 and err.startswith(b"usage: slhook.cgi")
         and out == b"" else "exit %d, stderr %r" % (p.returncode, err))' \
    "$B/slhook.cgi" "$CONF"
check "the log line names status and Type" \
    grep -q '^slhook: 200 Failed id=[0-9a-f]* events=1 new=1 ' "$T/cgi.log"
check "no secret in the log" sh -c "! grep -q '$SECRET' '$T/cgi.log'"

# CGI mode, as a web server runs it.
cgi "$CONF" "$FIX/tracking-3.json"
expect "CGI: a duplicate is 200" 200 "$STATUS"
SLHOOK_CONFIG=$CONF GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET \
    "$B/slhook.cgi" </dev/null >"$T/out" 2>>"$T/cgi.log"
expect "CGI: exits 0 whatever it answers (the server reads the Status)" 0 "$?"
check "CGI: GET is 405 with Allow" grep -q '^Allow: POST' "$T/out"

# A body answered before it is read (415 here) is read to its end first:
# under mod_cgid, leaving it unread resets the connection.
head -c 200000 /dev/zero >"$T/big"
SLHOOK_CONFIG=$CONF GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
    CONTENT_TYPE=text/plain CONTENT_LENGTH=200000 \
    sh -c "'$B/slhook.cgi' >'$T/out' 2>>'$T/cgi.log'; cat >'$T/rest'" <"$T/big"
check "CGI: 415 answered" grep -q '^Status: 415' "$T/out"
expect "CGI: the unread body was drained" 0 "$(wc -c <"$T/rest")"

# A broken config: 503 (SocketLabs retries), and the path:line named.
printf '[receiver]\nsecret_key = %s\nbogus = 1\n' "$SECRET" >"$T/bad.conf"
cgi "$T/bad.conf" "$FIX/delivered-1.json"
expect "CGI: broken config is 503" 503 "$STATUS"
check "the log names path:line" grep -q "bad.conf:3: " "$T/cgi.log"
# complete_503 FILE TEXT: FILE holds a complete 503 (Status, Retry-After, a
# Content-Length that matches) whose body is the line TEXT.
complete_503() {
    python3 -c '
import re, sys
head, sep, body = open(sys.argv[1], "rb").read().partition(b"\r\n\r\n")
h = head.decode().split("\r\n")
lengths = [int(l.split(":")[1]) for l in h if l.lower().startswith("content-length:")]
ok = (sep and h[0] == "Status: 503 Service Unavailable"
      and any(re.match(r"(?i)retry-after: [1-9][0-9]*$", l) for l in h)
      and lengths == [len(body)] and body == sys.argv[2].encode() + b"\n")
sys.exit(0 if ok else "answer: %r" % (head + sep + body))' "$1" "$2"
}

# The 503 of a broken or missing config is a complete answer (Status,
# Retry-After, a Content-Length that matches), sent after reading the body:
# under mod_cgid stdin and stdout are one socket, and anything less was cut
# off (curl: "transfer closed with outstanding read data remaining").
for c in "$T/bad.conf" "$T/no-such.conf"; do
    name=${c##*/}
    SLHOOK_CONFIG=$c GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
        CONTENT_TYPE=application/json CONTENT_LENGTH=200000 \
        sh -c "'$B/slhook.cgi' >'$T/out' 2>>'$T/cgi.log'; cat >'$T/rest'" \
        <"$T/big"
    check "CGI, $name: a complete 503 with Retry-After" \
        complete_503 "$T/out" "not configured"
    expect "CGI, $name: the body was read first" 0 "$(wc -c <"$T/rest")"
done

# Every other 503 the CGI writes is as complete, and says why: a spool
# that cannot be made (under /proc), and a body it has no memory for (a
# Content-Length of 2 TB that max_body allows: malloc fails, and so does
# a sanitizer's allocator, told to return NULL).
printf '[receiver]\nsecret_key = %s\nspool = /proc/slhook-none/spool\n' \
    "$SECRET" >"$T/nospool.conf"
cgi "$T/nospool.conf" "$FIX/delivered-1.json"
check "CGI: a spool it cannot make: a complete 503" \
    complete_503 "$ANSWER" "events could not be stored; try again later"
printf '[receiver]\nsecret_key = %s\nspool = %s/bigspool\nmax_body = 3000000000000\n' \
    "$SECRET" "$T" >"$T/huge.conf"
SLHOOK_CONFIG=$T/huge.conf GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
    CONTENT_TYPE=application/json CONTENT_LENGTH=2000000000000 \
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1 \
    "$B/slhook.cgi" <"$FIX/delivered-1.json" >"$T/out" 2>>"$T/cgi.log"
check "CGI: no memory for the body: a complete 503" \
    complete_503 "$T/out" "out of memory; try again later"

# lighttpd sends SIGTERM right after the CGI closes stdout: the log line and
# the kicked deliverer must still follow.
cat >"$T/kick.conf" <<CONF_EOF
[receiver]
secret_key = $SECRET
spool = $T/kspool
[destination file]
file = $T/kicked.jsonl
CONF_EOF
lost=$(python3 "$ROOT/tests/cgi_sigterm.py" "$B/slhook.cgi" "$T/kick.conf" \
    "$FIX/delivered-1.json" 100)
expect "every request logged despite SIGTERM (without: ~30 % lost)" 0 "$lost"
wait_for 20 sh -c "[ \$(wc -l <'$T/kicked.jsonl' 2>/dev/null || echo 0) -ge 100 ]"
expect "the kicked deliverer relayed all 100" 100 "$(wc -l <"$T/kicked.jsonl")"

# The receive path never loads libcurl (7 ms against 0.7 ms of start-up).
# Neither as a shared library (readelf's NEEDED entries) nor linked in (its
# symbols: the binary is static, and not stripped).
check "slhook.cgi needs no libcurl" sh -c "! readelf -d '$B/slhook.cgi' | grep -qi curl"
check "slhook.cgi holds no libcurl code" sh -c "nm '$B/slhook.cgi' | grep -q ' T main$' && ! nm '$B/slhook.cgi' | grep -q ' curl_'"
check "slhook.cgi does not open libcurl" sh -c \
    "! strace -f -e trace=openat '$B/slhook.cgi' -c '$CONF' <'$FIX/queued-2.json' 2>&1 >/dev/null | grep -q 'libcurl'"
finish

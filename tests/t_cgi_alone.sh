#!/bin/sh
# slhook.cgi copied alone into a cgi-bin (no `make install`, no slhook tool
# anywhere it could look) still relays: it carries the tool and runs it from
# memory. Whatever keeps a deliverer from starting is logged on the CGI's
# standard error (the web server's error log) on every request that meets
# it, and shown by `slhook status` and `slhook check` until one starts.
. "$(dirname "$0")/lib.sh"
lib_init cgialone
need python3 curl strace unshare setpriv flock "$B/slhook.cgi" "$B/slhook"
id www-data >/dev/null 2>&1 || abort "no user www-data"

# The web server's view: the program alone in a directory, a PATH without
# any slhook, the receiver's user for the second part.
chmod 755 "$T"
mkdir -p "$T/cgi-bin"
cp "$B/slhook.cgi" "$T/cgi-bin/slhook.cgi"
start_receiver PORT "$T/recv.log"

CONF=$T/slhook.conf
cat >"$CONF" <<CONF_EOF
[receiver]
secret_key = $SECRET
spool = $T/spool

[destination crm]
url = http://127.0.0.1:$PORT/crm
CONF_EOF
chmod 644 "$CONF"

# post FILE [RUNNER...]: one CGI request with FILE as the body, run by
# RUNNER (e.g. setpriv ...); $STATUS, the CGI's stderr appended to
# $T/cgi.log and copied to $T/last.err.
post() {
    f=$1
    shift
    env -i PATH=/usr/bin:/bin GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
        CONTENT_TYPE=application/json CONTENT_LENGTH=$(wc -c <"$f") \
        REMOTE_ADDR=127.0.0.1 SLHOOK_CONFIG="$CONF" \
        "$@" "$T/cgi-bin/slhook.cgi" <"$f" >"$T/answer" 2>"$T/last.err"
    cat "$T/last.err" >>"$T/cgi.log"
    STATUS=$(sed -n 's/^Status: \([0-9]*\).*/\1/p' "$T/answer")
}

# relayed TAG: how many posts the receiver got with a MessageId TAG-*.
relayed() {
    python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    body = json.loads(line)["body"]
    if "\"%s-" % sys.argv[2] in body:
        n += 1
print(n)' "$T/recv.log" "$1" 2>/dev/null || echo 0
}

# wait_relayed TAG N: waits up to 15 s for N posts of TAG-*.
wait_relayed() {
    n=0
    while [ "$(relayed "$1")" -lt "$2" ] && [ $n -lt 150 ]; do
        sleep 0.1
        n=$((n + 1))
    done
}

# --- alone, it relays
events "$T/a.json" alone 1
post "$T/a.json"
expect "alone: 200" 200 "$STATUS"
wait_relayed alone 1
expect "alone: the event reached the destination" 1 "$(relayed alone)"
check "alone: nothing said delivery could not start" \
    sh -c "! grep -q 'could not start' '$T/cgi.log'"

# The deliverer is the tool the CGI carries, run from memory (execveat of a
# descriptor), not a program found on disk. The one started above must have
# ended first (it leaves once nothing is pending), or this request starts
# none.
check "alone: the first deliverer has ended" \
    wait_for 20 flock -n "$T/spool/deliver.lock" true
events "$T/b.json" frommem 1
env -i PATH=/usr/bin:/bin GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
    CONTENT_TYPE=application/json CONTENT_LENGTH=$(wc -c <"$T/b.json") \
    SLHOOK_CONFIG="$CONF" strace -ff -s 4096 -e trace=execve,execveat \
    -o "$T/exec.trace" "$T/cgi-bin/slhook.cgi" <"$T/b.json" >/dev/null \
    2>>"$T/cgi.log"
# -ff: a file per process, so that no call is split into "<unfinished ...>"
# and "<... resumed>" lines by another process's (that failed this check
# now and then under a sanitizer).
check "alone: the deliverer runs from memory" sh -c "cat '$T'/exec.trace.* |
    grep -q 'execveat([0-9]*, \"\", \[\"slhook\", \"-c\", \"$CONF\", \"deliver\", \"--kicked\".*AT_EMPTY_PATH) = 0'"
check "alone: no program on disk named slhook was run" \
    sh -c "! cat '$T'/exec.trace.* | grep -q 'execve(\"[^\"]*/slhook\"'"

# --- libcurl missing on the host (an empty file in its place, in a mount
# namespace of this test's own): the receive path does not need it, the
# deliverer does, and the CGI says so on every request.
CURL=$(ldd "$B/slhook" | awk '/libcurl/ { print $3 }')
[ -f "$CURL" ] || abort "no libcurl found for $B/slhook"
: >"$T/nocurl.log"
for i in 1 2; do
    events "$T/nc-$i.json" nocurl-$i 1
    unshare -m --propagation private sh -c "mount --bind /dev/null '$CURL' &&
        exec env -i PATH=/usr/bin:/bin GATEWAY_INTERFACE=CGI/1.1 \
        REQUEST_METHOD=POST CONTENT_TYPE=application/json \
        CONTENT_LENGTH=$(wc -c <"$T/nc-$i.json") SLHOOK_CONFIG='$CONF' \
        '$T/cgi-bin/slhook.cgi'" <"$T/nc-$i.json" >"$T/answer" \
        2>>"$T/nocurl.log"
    expect "no libcurl, request $i: still 200 (stored)" 200 \
        "$(sed -n 's/^Status: \([0-9]*\).*/\1/p' "$T/answer")"
done
expect "no libcurl: each request logs that delivery could not start, and why" 2 \
    "$(grep -c '^slhook: delivery could not start: error while loading shared libraries: .*libcurl' "$T/nocurl.log")"
"$B/slhook" -c "$CONF" status >"$T/status.txt" 2>&1
check "no libcurl: status says delivery could not start" \
    grep -q '^delivery could not start (last tried .*Z): .*libcurl' "$T/status.txt"
"$B/slhook" -c "$CONF" status --json >"$T/status.json" 2>&1
check "no libcurl: status --json has the error" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["deliver_start_error"]
sys.exit(0 if e and "libcurl" in e["error"] and e["time"].endswith("Z") else 1)' "$T/status.json"
"$B/slhook" -c "$CONF" check >"$T/check.txt" 2>&1
rc=$?
expect "no libcurl: check fails" 1 "$rc"
check "no libcurl: check says why" \
    grep -q '^delivery: could not start (last tried .*): .*libcurl' "$T/check.txt"

# --- the kick lock left behind by root (slhook deliver run as root once):
# the web server's user cannot take it, so its deliverer cannot either.
rm -rf "$T/spool"
mkdir -p "$T/spool"
chown www-data:www-data "$T/spool"
chmod 700 "$T/spool"
: >"$T/spool/deliver.lock"
chmod 600 "$T/spool/deliver.lock"
AS_WWW="setpriv --reuid=www-data --regid=www-data --init-groups --"
for i in 1 2; do
    events "$T/lk-$i.json" lock-$i 1
    chmod 644 "$T/lk-$i.json"
    post "$T/lk-$i.json" $AS_WWW
    expect "root's lock, request $i: 200 (stored)" 200 "$STATUS"
    check "root's lock, request $i: the log says delivery could not start, and why" \
        grep -q "^slhook: delivery could not start: deliver: $T/spool/deliver.lock: cannot take the lock" \
        "$T/last.err"
done
$AS_WWW "$B/slhook" -c "$CONF" check >"$T/check.txt" 2>&1
expect "root's lock: check (as www-data) fails" 1 "$?"
check "root's lock: check says why" grep -q 'deliver.lock: cannot take the lock' "$T/check.txt"

# Fixed: the next request starts a deliverer, which relays everything that
# waited, and the note goes.
rm -f "$T/spool/deliver.lock"
events "$T/fixed.json" fixed 1
chmod 644 "$T/fixed.json"
post "$T/fixed.json" $AS_WWW
expect "fixed: 200" 200 "$STATUS"
check "fixed: the deliverer started" sh -c "! grep -q 'could not start' '$T/last.err'"
wait_relayed lock 2
wait_relayed fixed 1
expect "fixed: what waited was relayed" 2 "$(relayed lock)"
expect "fixed: the new event was relayed" 1 "$(relayed fixed)"
$AS_WWW "$B/slhook" -c "$CONF" status >"$T/status.txt" 2>&1
check "fixed: status no longer says delivery could not start" \
    sh -c "! grep -q 'could not start' '$T/status.txt'"
$AS_WWW "$B/slhook" -c "$CONF" check >"$T/check.txt" 2>&1
expect "fixed: check passes" 0 "$?"
finish

#!/bin/sh
# t_log.sh: [receiver] log. slhook.fcgi started by the real spawn-fcgi, as
# nginx/slhook.conf starts it (stderr on /dev/null), writes each request's
# line to log = FILE, and to the new file after mv and SIGHUP (logrotate);
# slhook.cgi and `slhook deliver` write there too. log = syslog, and the
# error of a config that does not load with stderr on /dev/null, reach
# syslog(3): the tests run those in a private mount namespace whose /dev
# has a /dev/log that a listener in the test's directory owns.
. "$(dirname "$0")/lib.sh"
lib_init log
need spawn-fcgi unshare
CONF=$T/slhook.conf
CLIENT="python3 $ROOT/tests/fcgi_client.py"

count() { # PATTERN FILE: the lines of FILE matching PATTERN
    grep -c -- "$1" "$2" 2>/dev/null || true
}

# spawn LOG PORT CONF [COMMAND...]: spawn-fcgi starts slhook.fcgi on
# 127.0.0.1:PORT (its pid in $SPID, spawn-fcgi's own output in LOG), as
# the given COMMAND prefix (e.g. the namespace's) runs it; $FCGI_ARGS, when
# set, go after its -c CONF.
spawn() {
    out=$1
    port=$2
    conf=$3
    shift 3
    rm -f "$T/spawn.pid"
    # shellcheck disable=SC2086
    "$@" spawn-fcgi -a 127.0.0.1 -p "$port" -P "$T/spawn.pid" -- \
        "$B/slhook.fcgi" -c "$conf" ${FCGI_ARGS:-} >"$out" 2>&1
    SPID=$(cat "$T/spawn.pid" 2>/dev/null)
    [ -n "$SPID" ] && LIB_PIDS="$LIB_PIDS $SPID"
}

# stop_spawned PID: SIGTERM, then waits (at most 20 s) until it is gone.
stop_spawned() {
    kill -TERM "$1" 2>/dev/null
    wait_for 20 sh -c "! kill -0 $1 2>/dev/null"
}

# ---- log = FILE under spawn-fcgi ----
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool
log = $T/fcgi.log
EOF
PORT=$(free_port)
A=127.0.0.1:$PORT
spawn "$T/spawn.out" "$PORT" "$CONF"
check "spawn-fcgi started slhook.fcgi" test -n "$SPID"
check "spawn-fcgi gave it /dev/null (stdout)" test "$(readlink "/proc/$SPID/fd/1")" = /dev/null
check "its stderr is now the log file" test "$(readlink "/proc/$SPID/fd/2")" = "$T/fcgi.log"
check "listening on $A" fcgi_ready "$A"
check "the start is logged to the file" grep -q "slhook.fcgi .*threads on fd 0" "$T/fcgi.log"
post "$A" --body "$FIX/delivered-1.json"
expect "a request" 200 "$STATUS"
check "its line is in the file" wait_for 5 grep -q "^slhook: 200 Delivered id=" "$T/fcgi.log"
mv "$T/fcgi.log" "$T/fcgi.log.1"
kill -HUP "$SPID"
check "after mv and SIGHUP a new file" wait_for 10 grep -q "threads on fd 0" "$T/fcgi.log"
post "$A" --body "$FIX/delivered-2.json"
expect "a request after the reload" 200 "$STATUS"
check "its line is in the new file" wait_for 5 grep -q "^slhook: 200 Delivered id=" "$T/fcgi.log"
: >"$T/fcgi.log"
expect "the old file got no more requests" 1 "$(count '^slhook: 200' "$T/fcgi.log.1")"
check "the reload is in the old file" grep -q "reloading" "$T/fcgi.log.1"
# Lines of 16 request threads at once: each whole, on a line of its own.
$CLIENT "$A" load --body "$FIX/delivered-1.json" --requests 400 \
    --clients 8 >"$T/load.out"
check "400 requests from 8 clients" grep -q "^requests 400 ok 400 " "$T/load.out"
expect "a line per request, each whole" 400 \
    "$(grep -c '^slhook: 200 Delivered id=[0-9a-f]* events=1 new=[01] [0-9.]*ms from 127.0.0.1\( (new: counted per shared commit)\)\?$' "$T/fcgi.log")"
stop_spawned "$SPID"
check "the stop is logged to the file" grep -q "slhook.fcgi: stopped" "$T/fcgi.log"

# --log on the command line, as the shipped spawn-fcgi examples start it:
# in place of the config's log (here none: stderr, /dev/null under
# spawn-fcgi), and kept across a reload.
sed '/^log = /d' "$CONF" >"$T/nolog.conf"
PORT=$(free_port)
FCGI_ARGS="--log $T/opt.log" spawn "$T/spawn.out" "$PORT" "$T/nolog.conf"
check "--log: listening" fcgi_ready "127.0.0.1:$PORT"
post "127.0.0.1:$PORT" --body "$FIX/delivered-1.json"
check "--log FILE: the request's line there" \
    wait_for 5 grep -q "^slhook: 200 Delivered id=" "$T/opt.log"
kill -HUP "$SPID"
check "--log FILE: kept across a reload" \
    wait_for 10 grep -q "reloading" "$T/opt.log"
stop_spawned "$SPID"
"$B/slhook.fcgi" -c "$T/nolog.conf" --log relative.log \
    --listen 127.0.0.1:1 >/dev/null 2>"$T/opt.err"
expect "--log with a relative path: usage error" 2 "$?"
check "... says why" grep -q "absolute path" "$T/opt.err"

# slhook.cgi and slhook deliver write to it too.
"$B/slhook.cgi" -c "$CONF" <"$FIX/failed-1.json" >/dev/null 2>"$T/cgi.err"
check "slhook.cgi: its line in the file" grep -q "^slhook: 200 Failed .*from 127.0.0.1" "$T/fcgi.log"
check "slhook.cgi: nothing on its stderr" test ! -s "$T/cgi.err"
"$B/slhook" -c "$CONF" status >/dev/null 2>"$T/status.err"
check "slhook status: still prints to the terminal" test $? -eq 0
cat >"$T/deliver.conf" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool
log = $T/deliver.log

[destination f]
file = $T/events.jsonl
EOF
"$B/slhook.cgi" -c "$T/deliver.conf" <"$FIX/failed-2.json" >/dev/null 2>&1
# The deliverer the CGI starts hears from it on stderr until it has said
# it started; only then does its own log target apply.
check "slhook.cgi: the deliverer it started relayed" \
    wait_for 10 test -s "$T/events.jsonl"
check "slhook.cgi: no 'could not start' with log = FILE" \
    sh -c "! grep -q 'could not start' '$T/deliver.log'"
check "the started deliverer's line in the file" \
    wait_for 5 grep -q "^slhook: f [0-9a-f]*: delivered" "$T/deliver.log"
"$B/slhook" -c "$T/deliver.conf" deliver --once 2>"$T/deliver.err"
check "slhook deliver: its lines in the file" grep -q "^slhook: f [0-9a-f]*: delivered" "$T/deliver.log"
check "slhook deliver: nothing on its stderr" test ! -s "$T/deliver.err"

printf '[receiver]\nsecret_key = %s\nlog = relative.log\n' "$SECRET" >"$T/rel.conf"
"$B/slhook" -c "$T/rel.conf" check >/dev/null 2>"$T/rel.err"
check "a relative log path is a config error" grep -q "rel.conf:3: bad log 'relative.log'" "$T/rel.err"
printf '[receiver]\nsecret_key = %s\nspool = %s\nlog = /proc/nonexistent/x.log\n' \
    "$SECRET" "$T/spool" >"$T/nolog.conf"
"$B/slhook.fcgi" -c "$T/nolog.conf" --listen "127.0.0.1:$(free_port)" \
    </dev/null 2>"$T/nolog.err"
expect "a log file that cannot be opened: exit 1" 1 $?
check "... and says so" grep -q "log /proc/nonexistent/x.log: " "$T/nolog.err"

# ---- syslog, in a private mount namespace ----
# /dev there is a tmpfs of our own: the devices slhook needs, and /dev/log
# a link to a datagram socket of this test. The namespace (and the /dev)
# lives as long as a process in it.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
out = open(sys.argv[2], "ab", buffering=0)
print("ready", flush=True)
while True:
    out.write(s.recv(65536).rstrip(b"\n") + b"\n")' "$T/log.sock" "$T/syslog.out" \
    >"$T/syslogd.ready" &
track $!
wait_for 5 test -s "$T/syslogd.ready"
# in_ns COMMAND...: runs COMMAND in a new mount namespace with that /dev.
in_ns() {
    unshare -m --propagation private sh -c '
        mount -t tmpfs -o mode=0755 slh-dev /dev &&
        mknod -m 0666 /dev/null c 1 3 && mknod -m 0666 /dev/zero c 1 5 &&
        mknod -m 0666 /dev/random c 1 8 && mknod -m 0666 /dev/urandom c 1 9 &&
        ln -s "$0" /dev/log && exec "$@"' "$T/log.sock" "$@"
}
in_ns sh -c 'test -S /dev/log && test -c /dev/null'
check "the namespace has /dev/log" test $? -eq 0

# A config that does not load, stderr on /dev/null: the error in syslog.
printf '[receiver]\nsecret_key = x\nbogus = 1\n' >"$T/bad.conf"
spawn "$T/spawn-bad.out" "$(free_port)" "$T/bad.conf" in_ns
check "startup error in syslog, at err (daemon.err: <27>)" wait_for 5 grep -q \
    "^<27>.* slhook.fcgi\[[0-9]*\]: $T/bad.conf:3: unknown key 'bogus'" "$T/syslog.out"

cat >"$T/syslog.conf" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool
log = syslog
EOF
PORT=$(free_port)
A=127.0.0.1:$PORT
spawn "$T/spawn-syslog.out" "$PORT" "$T/syslog.conf" in_ns
check "spawn-fcgi started slhook.fcgi (log = syslog)" test -n "$SPID"
check "listening on $A (log = syslog)" fcgi_ready "$A"
check "the start in syslog (daemon.notice: <29>)" grep -q \
    "^<29>.* slhook.fcgi\[$SPID\]: slhook.fcgi .* threads on fd 0" "$T/syslog.out"
post "$A" --body "$FIX/tracking-1.json"
expect "a request (log = syslog)" 200 "$STATUS"
check "a 200 line in syslog (daemon.info: <30>)" wait_for 5 grep -q \
    "^<30>.* slhook.fcgi\[$SPID\]: slhook: 200 Tracking id=" "$T/syslog.out"
sed "s/$SECRET/wrong-key-0000/" "$FIX/delivered-1.json" >"$T/wrongkey.json"
post "$A" --body "$T/wrongkey.json"
expect "a refused request (log = syslog)" 401 "$STATUS"
check "a 401 line in syslog (daemon.warning: <28>)" wait_for 5 grep -q \
    "^<28>.* slhook.fcgi\[$SPID\]: slhook: 401 " "$T/syslog.out"
check "no secret in syslog" sh -c "! grep -q '$SECRET' '$T/syslog.out'"
stop_spawned "$SPID"
check "the stop in syslog" grep -q "slhook.fcgi\[$SPID\]: slhook.fcgi: stopped" "$T/syslog.out"
finish

# lib.sh: shell helpers of the shell tests (tests/t_*.sh, and
# tests/e2e_lib.sh for the end-to-end ones). Sourced after setting nothing;
# the script calls lib_init first (or makes its own $T and trap, as
# e2e_lib.sh does) and finish last.
#
# lib_init makes $T (a temporary directory), sets ROOT, B (absolute), FIX,
# SECRET, and installs a trap that kills every process registered with
# track, unmounts every mount registered with track_mount, and removes $T
# (KEEP=1 keeps it). Checks count into pass/fail; finish prints
# "N passed, N failed" and exits non-zero when anything failed. A passed
# check is printed when VERBOSE is set; LIB_PREFIX, when set, goes before
# each check's description (e2e_lib.sh puts the deployment mode there).

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIX=$ROOT/tests/fixtures/socketlabs
SECRET=q7Rt2mXw9LpB4sKd8Zf3
pass=0
fail=0
T=
LIB_PIDS=
LIB_MOUNTS=
LIB_LOOPS=

lib_cleanup() {
    for p in $LIB_PIDS; do kill -KILL "$p" 2>/dev/null; done
    for p in $LIB_PIDS; do wait "$p" 2>/dev/null; done
    # Deliverers that slhook.cgi started, detached, for this test's configs.
    if [ -n "$T" ]; then
        for p in $(pgrep -f -- "-c $T/" 2>/dev/null); do kill -KILL "$p"; done
        # And responders a web server started for them (lighttpd's
        # bin-path): a server killed above cannot stop its children, whose
        # command line names nothing of ours; their environment does.
        for p in $(pgrep -x slhook.fcgi 2>/dev/null); do
            if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null |
                grep -q "^SLHOOK_CONFIG=$T/"; then
                kill -KILL "$p"
            fi
        done
    fi
    # Innermost first: a loop mount may sit inside a tmpfs.
    for m in $LIB_MOUNTS; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    for l in $LIB_LOOPS; do losetup -d "$l" 2>/dev/null; done
    if [ -n "$T" ]; then
        if [ -n "${KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
    fi
}

# lib_init NAME: the temporary directory /tmp/slh-NAME.XXXXXX, the trap.
lib_init() {
    B=${B:-build}
    case $B in /*) ;; *) B=$ROOT/$B ;; esac
    T=$(mktemp -d "/tmp/slh-$1.XXXXXX") || exit 1
    trap lib_cleanup EXIT
    trap 'exit 130' INT TERM HUP
}

ok() {
    pass=$((pass + 1))
    [ -z "${VERBOSE:-}" ] || echo "ok: ${LIB_PREFIX:-}$1"
}

nok() {
    fail=$((fail + 1))
    echo "FAIL: ${LIB_PREFIX:-}$1"
}

# check DESC COMMAND...: passes when COMMAND succeeds.
check() {
    desc=$1
    shift
    if "$@"; then ok "$desc"; else nok "$desc"; fi
}

# expect DESC WANT GOT
expect() {
    if [ "$2" = "$3" ]; then ok "$1"; else nok "$1: want '$2', got '$3'"; fi
}

finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}

# abort DESC: a failure after which nothing else makes sense.
abort() {
    nok "$1"
    finish
}

# need PROGRAM...: each must be installed and built; a failure, never a skip.
need() {
    for p in "$@"; do
        case $p in
        */*) [ -x "$p" ] || abort "$p is not built (make)" ;;
        *) command -v "$p" >/dev/null 2>&1 ||
            abort "$p is not installed (run tools/install-deps)" ;;
        esac
    done
}

# track PID...: killed (SIGKILL) on exit if still running.
track() {
    LIB_PIDS="$LIB_PIDS $*"
}

# track_mount DIR: unmounted on exit; later ones first.
track_mount() {
    LIB_MOUNTS="$1 $LIB_MOUNTS"
}

untrack_mount() {
    LIB_MOUNTS=$(echo " $LIB_MOUNTS " | sed "s| $1 | |")
}

# track_loop DEV: a loop device detached on exit.
track_loop() {
    LIB_LOOPS="$LIB_LOOPS $1"
}

# nice_of STATFILE: the nice value in a /proc/PID[/task/TID]/stat file
# (field 19; the command name before it may hold spaces).
nice_of() {
    sed 's/^.*) //' "$1" | cut -d' ' -f17
}

# yielded_nice STATFILE: the nice value a deliverer runs at when started
# from the process or thread of STATFILE: 10 more, 19 at most.
yielded_nice() {
    n=$(($(nice_of "$1") + 10))
    echo $((n > 19 ? 19 : n))
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS COMMAND...: polls every 0.1 s until COMMAND succeeds.
wait_for() {
    n=$(($1 * 10))
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    "$@"
}

# stop_pid PID [SIGNAL]: sends SIGNAL (TERM), waits at most 20 s (then
# SIGKILL), returns the exit status. PID must be a child of this shell.
stop_pid() {
    kill -"${2:-TERM}" "$1" 2>/dev/null
    n=200
    while [ $n -gt 0 ] && kill -0 "$1" 2>/dev/null; do
        # a zombie is done: wait reaps it below
        [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
        n=$((n - 1))
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1"
}

# start_receiver VAR LOG ARGS...: tests/receiver.py logging to LOG; its
# port goes into $VAR, its pid into $RPID.
start_receiver() {
    var=$1
    log=$2
    shift 2
    : >"$log.port"
    python3 "$ROOT/tests/receiver.py" --log "$log" "$@" >"$log.port" \
        2>"$log.err" &
    RPID=$!
    track $RPID
    wait_for 5 test -s "$log.port" || abort "receiver $log did not start"
    eval "$var=\$(head -n 1 \"\$log.port\")"
}

# mode PORT NAME MODE: sets how receiver.py answers /NAME.
mode() {
    curl -s -X PUT --data "$3" "http://127.0.0.1:$1/_mode/$2" >/dev/null
}

# fcgi_ready ADDR: waits until a responder answers there (GET: 405).
fcgi_ready() {
    wait_for 10 sh -c "python3 '$ROOT/tests/fcgi_client.py' '$1' request \
        --method GET 2>/dev/null | grep -q '^405$'"
}

# start_fcgi LOG ADDR ARGS...: slhook.fcgi --listen ADDR; pid in $FPID.
start_fcgi() {
    log=$1
    addr=$2
    shift 2
    "$B/slhook.fcgi" --listen "$addr" "$@" </dev/null 2>>"$log" &
    FPID=$!
    track $FPID
}

# post ADDR ARGS...: one FastCGI request (fcgi_client.py request ARGS);
# $STATUS and $ANSWER (the file holding status line, headers, body).
post() {
    addr=$1
    shift
    ANSWER=$T/answer
    python3 "$ROOT/tests/fcgi_client.py" "$addr" request "$@" >"$ANSWER" \
        2>"$ANSWER.err"
    STATUS=$(head -n 1 "$ANSWER")
}

# cgi CONF BODYFILE: slhook.cgi run as a web server runs it (CGI
# variables, body on stdin); $STATUS and $ANSWER as for post.
cgi() {
    ANSWER=$T/answer
    SLHOOK_CONFIG=$1 GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
        CONTENT_TYPE=application/json CONTENT_LENGTH=$(wc -c <"$2") \
        REMOTE_ADDR=127.0.0.1 "$B/slhook.cgi" <"$2" >"$ANSWER" \
        2>>"$T/cgi.log"
    STATUS=$(sed -n 's/^Status: \([0-9]*\).*/\1/p' "$ANSWER" | head -n 1)
}

# has_retry_after: the last answer carries a Retry-After header.
has_retry_after() {
    grep -qi '^retry-after: *[0-9]' "$ANSWER"
}

# sql DB QUERY
# lighttpd_fcgi CONF PREFIX: lighttpd's config lines that run $B/slhook.fcgi
# on config CONF, one process, for the URLs under PREFIX (its socket in $T).
lighttpd_fcgi() {
    cat <<EOF
fastcgi.server = ( "$2" => ((
    "socket" => "$T/fcgi.sock",
    "bin-path" => "$B/slhook.fcgi",
    "bin-environment" => ( "SLHOOK_CONFIG" => "$1" ),
    "check-local" => "disable",
    "max-procs" => 1,
)) )
EOF
}

sql() {
    sqlite3 -cmd '.timeout 5000' "$1" "$2"
}

# mount_tmpfs DIR SIZE [OPTIONS]: a fresh tmpfs, unmounted on exit.
mount_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2${3:+,$3}" tmpfs "$1" || return 1
    track_mount "$1"
}

# events FILE TAG N [TEMPLATE [PAD]]: a JSON array of N events made from
# TEMPLATE (a fixture; default delivered-1.json), MessageIds TAG-0 ...,
# each with PAD bytes of filler in its Response (default 0).
events() {
    python3 - "$1" "$2" "$3" "${4:-$FIX/delivered-1.json}" "${5:-0}" <<'EOF'
import json, sys
out, tag, n, tmpl, pad = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
base = json.load(open(tmpl))
evs = []
for i in range(n):
    e = dict(base)
    e["MessageId"] = "%s-%d" % (tag, i)
    if pad:
        e["Response"] = "x" * pad
    evs.append(e)
json.dump(evs if n > 1 else evs[0], open(out, "w"), separators=(",", ":"))
EOF
}

# stored DB TAG: how many events with a MessageId TAG-* the spool holds.
stored() {
    sql "$1" "SELECT count(*) FROM event WHERE json_extract(body, '\$.MessageId') LIKE '$2-%'"
}

# hold_kick_lock SPOOL: holds the spool's kick lock (a background Python
# process, tracked; its pid in $LOCK_PID), so that slhook.cgi starts no
# deliverer and the commands under test are the only ones delivering.
hold_kick_lock() {
    mkdir -p "$1"
    rm -f "$T/kick-locked"
    python3 -c '
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
open(sys.argv[2], "w").write("locked")
time.sleep(600)' "$1/deliver.lock" "$T/kick-locked" &
    LOCK_PID=$!
    track $LOCK_PID
    wait_for 5 test -s "$T/kick-locked" || abort "cannot hold $1's kick lock"
}

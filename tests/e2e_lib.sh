# e2e_lib.sh: shared by the end-to-end tests (tests/t_e2e_*.sh). Sourced.
#
# Each test runs a real web server with the site config that ships in
# apache/, lighttpd/ or nginx/, its paths rewritten into a temporary
# directory (ship_conf), over HTTPS with a certificate made for the run.
# A test script calls e2e_init, then for each deployment mode:
#   mode_begin NAME          a fresh directory $D, slhook.conf, a receiver
#   (write the server's config into $D, start it on $PORT, mode_stop_cmd)
#   contract_suite           the same checks for every mode, against $URL
#   mode_end                 stops what the mode started
# and finish last, which prints "N passed, N failed". The checks and the
# helpers not specific to a web server come from tests/lib.sh.
#
# Servers start as root and serve as $RUN_USER (www-data), as they do when
# deployed; run by another user, everything runs as that user. Nothing
# outside the temporary directory is written, and every process started is
# stopped on exit.

. "$(dirname "$0")/lib.sh"
# The test config's body limit, under every server's own 1 MiB limit so that
# the handler's 413 is the one tested; the server's is tested with 2 MiB.
MAX_BODY=65536
D=
MODE=
# Every passed check is listed, under its mode (mode_begin sets LIB_PREFIX).
VERBOSE=${VERBOSE-1}

e2e_cleanup() {
    [ -n "$T" ] || return 0
    if [ -n "$MODE" ]; then mode_end; fi
    if [ -n "$E2E_KEEP" ]; then
        echo "kept $T"
    else
        rm -rf "$T"
    fi
}

e2e_init() {
    B=${B:-build}
    case $B in /*) ;; *) B=$PWD/$B ;; esac
    trap e2e_cleanup EXIT
    trap 'exit 130' INT TERM HUP
    need curl python3 setpriv openssl sqlite3 promtool "$@"
    for p in slhook slhook.cgi slhook.fcgi; do
        [ -x "$B/$p" ] || abort "$B/$p is missing (run make)"
    done
    if [ "$(id -u)" -eq 0 ]; then
        RUN_USER=${E2E_USER:-www-data}
        id "$RUN_USER" >/dev/null 2>&1 || abort "no user $RUN_USER"
    else
        RUN_USER=$(id -un)
    fi
    AS_USER=
    if [ "$(id -u)" -eq 0 ] && [ "$RUN_USER" != root ]; then
        AS_USER="setpriv --reuid=$RUN_USER --regid=$RUN_USER --init-groups --"
    fi
    T=$(mktemp -d "${TMPDIR:-/tmp}/slhook-e2e.XXXXXX") ||
        abort "mktemp failed"
    chmod 755 "$T"
    # Copies, so the web server's user can run them wherever the tree is.
    mkdir -p "$T/bin"
    cp "$B/slhook" "$B/slhook.cgi" "$B/slhook.fcgi" "$T/bin/"
    chmod 755 "$T/bin" "$T/bin/"*
    # The site configs' certificate, for hooks.example.com, which curl
    # resolves to 127.0.0.1 and verifies against the certificate itself.
    mkdir -p "$T/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -days 2 -subj /CN=hooks.example.com \
        -addext subjectAltName=DNS:hooks.example.com \
        -keyout "$T/tls/privkey.pem" -out "$T/tls/fullchain.pem" \
        >"$T/tls/openssl.log" 2>&1 || abort "openssl made a certificate"
}

# ship_conf FILE: the shipped config FILE (relative to the tree), its paths,
# ports and certificate moved into this run's directories, into $D/site.conf.
# FPORT, when set, replaces the responder's port 9300.
ship_conf() {
    sed -e "s|/etc/letsencrypt/live/hooks.example.com/|$T/tls/|g" \
        -e "s|/usr/local/lib/slhook|$T/bin|g" \
        -e "s|/etc/slhook/slhook.conf|$D/slhook.conf|g" \
        -e "s|/run/slhook/|$D/run/|g" \
        -e "s|/run/lighttpd/|$D/run/|g" \
        -e "s|127.0.0.1:9300|127.0.0.1:${FPORT:-9300}|g" \
        -e "s|\*:443|127.0.0.1:$PORT|" \
        -e "s|\":443\"|\"127.0.0.1:$PORT\"|" \
        -e "s|listen 443 ssl;|listen 127.0.0.1:$PORT ssl;|" \
        -e "/listen \\[::\\]:443/d" \
        -e "s|include fastcgi_params;|include /etc/nginx/fastcgi_params;|" \
        "$ROOT/$1" >"$D/site.conf"
    if grep -v '^ *#' "$D/site.conf" |
        grep -E '[ "(:]/(etc/slhook|etc/letsencrypt|usr/local|run/)|:443([^0-9]|$)'; then
        nok "$1: a deployment path is left in the rewritten config"
    fi
}

# as_user CMD...: runs CMD as the web server's user. "$AS_USER CMD &" does
# the same in the background with $! the pid of CMD itself.
as_user() {
    # shellcheck disable=SC2086
    $AS_USER "$@"
}

# wait_tcp PORT: until something accepts connections on 127.0.0.1:PORT.
wait_tcp() {
    python3 - "$1" <<'EOF'
import socket, sys, time
end = time.time() + 15
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

# wait_file PATH: until PATH exists (a socket, a pid file), 15 s at most.
wait_file() {
    wait_for 15 test -e "$1"
}

# mode_stop_cmd CMD: run by mode_end (last registered, first run).
mode_stop_cmd() {
    printf '%s\n' "$1" | cat - "$D/stop" >"$D/stop.new"
    mv "$D/stop.new" "$D/stop"
}

# stop_pidfile FILE: TERM the process named in FILE, wait for it to go.
stop_pidfile() {
    [ -s "$1" ] || return 0
    stop_pid "$(cat "$1")"
}

# stop_pid PID: TERM, then KILL after 10 s. Replaces lib.sh's, which waits
# for PID: a daemon's, from its pid file, is not a child of this shell.
stop_pid() {
    kill "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -9 "$1" 2>/dev/null
    return 0
}

# mode_begin NAME: $D, $PORT, $D/slhook.conf, a receiver on $RPORT.
mode_begin() {
    MODE=$1
    LIB_PREFIX="$MODE: "
    D=$T/$MODE
    mkdir -p "$D/www" "$D/run" "$D/var" "$D/log"
    : >"$D/stop"
    chmod 755 "$D" "$D/www"
    # The web server's user owns only what it writes: sockets, logs, spool.
    chown "$RUN_USER" "$D/run" "$D/var" "$D/log"
    PORT=$(free_port)
    URL=https://hooks.example.com:$PORT/slhook
    # HTTP/1.1, as SocketLabs' sender speaks it.
    CURL_OPTS="--http1.1 --cacert $T/tls/fullchain.pem"
    CURL_OPTS="$CURL_OPTS --resolve hooks.example.com:$PORT:127.0.0.1"
    python3 "$ROOT/tests/e2e_receiver.py" --port-file "$D/receiver.port" \
        --out "$D/received.jsonl" 2>"$D/log/receiver.log" &
    mode_stop_cmd "stop_pid $!"
    wait_file "$D/receiver.port" || nok "receiver started"
    RPORT=$(cat "$D/receiver.port")
    cat >"$D/slhook.conf" <<EOF
; $MODE: written by tests/e2e_lib.sh
[receiver]
secret_key = $SECRET
server_id = 40211
allow_from = 127.0.0.0/8 ::1
max_body = $MAX_BODY
spool = $D/var/spool

[destination hook]
url = http://127.0.0.1:$RPORT/$MODE
timeout = 5

[destination log]
file = $D/var/events.jsonl
EOF
    # Readable by the web server's user only, as a file holding a secret is.
    chown "$RUN_USER" "$D/slhook.conf"
    chmod 600 "$D/slhook.conf"
}

mode_end() {
    [ -n "$MODE" ] || return 0
    while read -r cmd; do
        eval "$cmd"
    done <"$D/stop"
    : >"$D/stop"
    # A deliverer the CGI started (its command line names this directory)
    # finishes by itself once nothing is due; give it that chance first.
    i=0
    while [ -n "$(pgrep -f -- "$D/" 2>/dev/null)" ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    for pid in $(pgrep -f -- "$D/" 2>/dev/null); do
        echo "note: $MODE: stopping leftover process $pid"
        kill "$pid" 2>/dev/null
    done
    for log in "$D"/log/*.log; do
        [ -f "$log" ] || continue
        if grep -qE 'Sanitizer|runtime error|valgrind' "$log"; then
            nok "no sanitizer report in $(basename "$log")"
            grep -E -A5 'Sanitizer|runtime error' "$log" | head -n 40
        fi
    done
    MODE=
    LIB_PREFIX=
}

# show_logs: the server's and handler's logs, after a failure.
show_logs() {
    for log in "$D"/log/*.log; do
        [ -s "$log" ] || continue
        echo "--- $log"
        tail -n 15 "$log"
    done
}

# post URL CTYPE FILE: sets CODE; body in $D/resp, headers in
# $D/resp.h.
post() {
    # shellcheck disable=SC2086
    CODE=$(curl $CURL_OPTS -sS -m 20 -o "$D/resp" -D "$D/resp.h" -w '%{http_code}' \
        -H "Content-Type: $2" -H 'Expect:' --data-binary "@$3" "$1" \
        2>"$D/curl.err") || CODE="curl-exit-$?"
}

# post_repeat N URL CTYPE FILE: post N times; CODE is the first status that
# differs from the first one's, else the status they all had.
post_repeat() {
    k=$1
    shift
    post "$@"
    first=$CODE
    while [ "$k" -gt 1 ]; do
        post "$@"
        if [ "$CODE" != "$first" ]; then
            CODE="$first then $CODE"
            return
        fi
        k=$((k - 1))
    done
}

# get URL [CURL-ARGS...]: as post, a GET (or what CURL-ARGS make it).
get() {
    u=$1
    shift
    # shellcheck disable=SC2086
    CODE=$(curl $CURL_OPTS -sS -m 20 -o "$D/resp" -D "$D/resp.h" -w '%{http_code}' \
        "$@" "$u" 2>"$D/curl.err") || CODE="curl-exit-$?"
}

# expect_answer DESC CODE [BODY]: the last answer had status CODE, and body
# BODY (ignoring a final newline) when one is given.
expect_answer() {
    got=$(tr -d '\r' <"$D/resp")
    if [ "$CODE" != "$2" ]; then
        nok "$1: status $CODE, want $2 ($(head -c 100 "$D/resp" | tr '\n' ' ')$(cat "$D/curl.err"))"
    elif [ $# -ge 3 ] && [ "$got" != "$3" ]; then
        nok "$1: body '$(printf %s "$got" | head -c 200)', want '$3'"
    else
        ok "$1"
    fi
}

# lines FILE: its number of lines, 0 when it does not exist.
lines() {
    if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

ctype_of() {
    case $1 in
    *.txt) echo application/x-www-form-urlencoded ;;
    *) echo application/json ;;
    esac
}

# contract_suite: what SocketLabs and its users see at $URL, the same
# through every server and mode.
contract_suite() {
    url=$URL
    bodies=$D/bodies
    mkdir -p "$bodies"

    for f in "$FIX"/*.json "$FIX"/*.txt; do
        name=$(basename "$f")
        post "$url" "$(ctype_of "$f")" "$f"
        case $name in
        *validation*) expect_answer "$name" 200 "$SECRET" ;;
        *) expect_answer "$name" 200 OK ;;
        esac
    done

    post "$url" 'application/json; charset=utf-8' "$FIX/delivered-1.json"
    expect_answer "duplicate, with a charset parameter" 200 OK

    get "$url"
    expect_answer "GET" 405
    check "GET answer has Allow: POST" grep -qi '^Allow: *POST' "$D/resp.h"

    sed "s/$SECRET/wrongkey/" "$FIX/delivered-1.json" >"$bodies/wrong-key"
    post "$url" application/json "$bodies/wrong-key"
    expect_answer "wrong SecretKey" 401
    check "401 body holds no secret" sh -c "! grep -q '$SECRET' '$D/resp'"

    sed "s/$SECRET/wrongkey/" "$FIX/legacy-form-delivered.txt" \
        >"$bodies/wrong-key-form"
    post "$url" application/x-www-form-urlencoded "$bodies/wrong-key-form"
    expect_answer "wrong SecretKey, form" 401

    sed 's/"ServerId":40211/"ServerId":1/' "$FIX/failed-1.json" \
        >"$bodies/wrong-server"
    post "$url" application/json "$bodies/wrong-server"
    expect_answer "other ServerId" 403

    printf '{"Type":"Delivered","SecretKey":"%s",' "$SECRET" >"$bodies/bad"
    post "$url" application/json "$bodies/bad"
    expect_answer "truncated JSON" 400

    printf '{"SecretKey":"%s","ServerId":40211}' "$SECRET" >"$bodies/notype"
    post "$url" application/json "$bodies/notype"
    expect_answer "no Type" 400

    # Answers given before the body is read, five times each: a handler that
    # leaves its input unread loses some of them to a reset connection.
    post_repeat 5 "$url" text/plain "$FIX/delivered-1.json"
    expect_answer "text/plain (5 times)" 415

    python3 -c 'import sys
pad = "x" * (int(sys.argv[1]) + 1)
sys.stdout.write("{\"Type\":\"Delivered\",\"Pad\":\"%s\"}" % pad)' \
        "$MAX_BODY" >"$bodies/over"
    post_repeat 5 "$url" application/json "$bodies/over"
    expect_answer "body over max_body (5 times)" 413

    # Past lighttpd's own server.max-request-size (1 MiB in the shipped
    # configs) lighttpd answers 413 itself and may close while the client
    # is still sending, which curl reports as a send failure (exit 55/56),
    # as for the 64 KiB header below; every other server, and lighttpd
    # otherwise, must answer 413.
    head -c 2097152 /dev/zero | tr '\0' x >"$bodies/huge"
    post "$url" application/json "$bodies/huge"
    case $MODE:$CODE in
    lighttpd*:curl-exit-55 | lighttpd*:curl-exit-56)
        ok "2 MiB body refused by lighttpd (connection closed mid-send)" ;;
    *) expect_answer "2 MiB body" 413 ;;
    esac

    # A 64 KiB request header: the web server refuses it before slhook sees
    # it, each in its own way (nginx and Apache answer 400; lighttpd answers
    # 431 and closes while the client is still sending, which curl reports
    # as a send failure, exit 55), and nothing is stored.
    "$T/bin/slhook" -c "$D/slhook.conf" sample Delivered \
        >"$bodies/bigheader.json" 2>>"$D/log/sample.log"
    bigid=$(sed -n 's/.*"MessageId":"\([^"]*\)".*/\1/p' "$bodies/bigheader.json")
    pad=$(head -c 65536 /dev/zero | tr '\0' x)
    # shellcheck disable=SC2086
    CODE=$(curl $CURL_OPTS -sS -m 20 -o "$D/resp" -w '%{http_code}' \
        -H 'Content-Type: application/json' -H "X-Pad: $pad" \
        --data-binary "@$bodies/bigheader.json" "$url" 2>"$D/curl.err") ||
        CODE="curl-exit-$?"
    case $CODE in
    400 | 431 | 494 | curl-exit-55 | curl-exit-56)
        ok "64 KiB header refused ($CODE)" ;;
    *) nok "64 KiB header: $CODE, want 400, 431, 494 or a closed connection ($(head -c 200 "$D/curl.err"))" ;;
    esac
    check "the event behind the 64 KiB header is not stored" \
        not_stored "$bigid"

    # Sixteen new events at once: concurrent writers to one spool.
    i=0
    while [ $i -lt 16 ]; do
        "$T/bin/slhook" -c "$D/slhook.conf" sample Delivered \
            >"$bodies/sample-$i.json" 2>>"$D/log/sample.log"
        i=$((i + 1))
    done
    i=0
    pids=
    while [ $i -lt 16 ]; do
        # shellcheck disable=SC2086
        curl $CURL_OPTS -sS -m 20 -o /dev/null -w '%{http_code}\n' \
            -H 'Content-Type: application/json' \
            --data-binary "@$bodies/sample-$i.json" "$url" \
            >"$bodies/burst-$i" 2>&1 &
        pids="$pids $!"
        i=$((i + 1))
    done
    # shellcheck disable=SC2086
    wait $pids
    codes=$(cat "$bodies"/burst-* | sort | uniq -c | tr -s ' \n' '  ')
    check "16 concurrent posts all 200 (got:$codes)" \
        test "$(cat "$bodies"/burst-* | grep -c '^200$')" -eq 16

    # Downstream: every accepted event at the HTTP receiver and in the file.
    python3 "$ROOT/tests/e2e_check.py" expect "$FIX"/*.json "$FIX"/*.txt \
        "$bodies"/sample-*.json >"$D/expected-ids"
    n=$(wc -l <"$D/expected-ids")
    i=0
    while ! python3 "$ROOT/tests/e2e_check.py" compare \
        "$D/expected-ids" "$D/received.jsonl" >"$D/compare" &&
        [ $i -lt 150 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    check "$n events relayed to the HTTP receiver: $(cat "$D/compare")" \
        python3 "$ROOT/tests/e2e_check.py" compare "$D/expected-ids" \
        "$D/received.jsonl"
    i=0
    while [ "$(lines "$D/var/events.jsonl")" -lt "$n" ] && [ $i -lt 50 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    check "$n lines in the file destination" \
        test "$(lines "$D/var/events.jsonl")" -eq "$n"

    check "spool directory is 0700 and the server user's" \
        test "$(stat -c '%a %U' "$D/var/spool" 2>&1)" = "700 $RUN_USER"
    check "spool database is 0600" \
        test "$(stat -c '%a' "$D/var/spool/slhook.db" 2>&1)" = 600
    check "slhook status, as the server's user" status_as_user
    check "slhook check, as the server's user: spool writable" check_as_user
    if [ -n "$AS_USER" ]; then
        # A spool the server's user cannot write: check must say so.
        mkdir -m 0700 "$D/rootspool"
        sed "s|^spool = .*|spool = $D/rootspool|" "$D/slhook.conf" \
            >"$D/rootspool.conf"
        chown "$RUN_USER" "$D/rootspool.conf"
        check "slhook check, as the server's user: root's spool not writable" \
            check_as_user_fails "$D/rootspool.conf"
    fi
    if [ "$fail" -gt 0 ]; then show_logs; fi
}

status_as_user() {
    as_user "$T/bin/slhook" -c "$D/slhook.conf" status >"$D/status.out" 2>&1
}

check_as_user() {
    if as_user "$T/bin/slhook" -c "$D/slhook.conf" check >"$D/check.out" 2>&1 &&
        grep -q "spool $D/var/spool: writable" "$D/check.out"; then
        return 0
    fi
    cat "$D/check.out"
    return 1
}

check_as_user_fails() {
    if as_user "$T/bin/slhook" -c "$1" check >"$D/check.out" 2>&1; then
        cat "$D/check.out"
        return 1
    fi
    grep -q "not writable" "$D/check.out" || { cat "$D/check.out"; false; }
}

# web_conf [ADMIN-LINES]: $D/slhook.conf as mode_begin wrote it
# ($D/slhook.conf.plain), then ADMIN-LINES; replaced in one rename, so that
# no request reads half a file.
web_conf() {
    { cat "$D/slhook.conf.plain"; [ -z "${1:-}" ] || printf '\n%s\n' "$1"; } \
        >"$D/slhook.conf.new"
    chown "$RUN_USER" "$D/slhook.conf.new"
    chmod 600 "$D/slhook.conf.new"
    mv "$D/slhook.conf.new" "$D/slhook.conf"
    web_reload
}

# web_reload: this mode's slhook takes up $D/slhook.conf. slhook.cgi reads
# it on every request: nothing to do. Each slhook.fcgi of this mode gets
# SIGHUP and re-execs itself on the new config: the ones the test started
# name the config on their command line (-c); the ones the server spawned
# (lighttpd's bin-path, mod_fcgid) have it in SLHOOK_CONFIG. A signal, not
# a server restart: mod_fcgid may run several, and each is found by its pid.
web_reload() {
    for pid in $(pgrep -f -- "$T/bin/slhook.fcgi"); do
        if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null |
            grep -qxF -- "$D/slhook.conf" ||
            tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
            grep -qxF -- "SLHOOK_CONFIG=$D/slhook.conf"; then
            kill -HUP "$pid"
        fi
    done
}

# status_is WANT URL [CURL-ARGS...]: GET URL answers WANT three times in a
# row (a reload's new process, and every process of the mode, answering).
status_is() {
    want=$1
    shift
    for _ in 1 2 3; do
        get "$@"
        [ "$CODE" = "$want" ] || return 1
    done
}

# has_header NAME-AND-VALUE-REGEX: the last answer has such a header line.
has_header() {
    tr -d '\r' <"$D/resp.h" | grep -qiE "^$1"
}

# promtool_ok: the last answer's body passes promtool check metrics.
promtool_ok() {
    promtool check metrics <"$D/resp" >"$D/promtool.out" 2>&1 && return 0
    head -n 20 "$D/promtool.out"
    return 1
}

# web_suite: GET under the handler's path (lib/web.h) through the server:
# /health for everyone; without [admin] nothing else; with it, 403 from a
# client not in allow_from, the token (Bearer or the login form's cookie),
# metrics that promtool accepts, the page. Ends on the mode's plain config.
web_suite() {
    cp "$D/slhook.conf" "$D/slhook.conf.plain"
    get "$URL/health"
    expect_answer "GET /health" 200 ok
    get "$URL/metrics"
    expect_answer "GET /metrics without [admin]" 404
    get "$URL/events/x"
    expect_answer "GET /events/x without [admin]" 404
    # The page's path with nothing under it is the webhook's, as GET on the
    # bare path (contract_suite): 405 (tests/test_web.c holds the same).
    get "$URL/"
    expect_answer "GET / without [admin]: the webhook's 405" 405

    web_conf "[admin]
allow_from = 192.0.2.0/24"
    check "[admin] taken up (a reload, for slhook.fcgi)" \
        wait_for 15 status_is 403 "$URL/metrics"
    expect_answer "GET /metrics from outside [admin] allow_from" 403
    get "$URL/"
    expect_answer "GET / from outside [admin] allow_from" 403
    get "$URL/health"
    expect_answer "GET /health from outside [admin] allow_from" 200 ok

    token=$(openssl rand -hex 32)
    printf '%s\n' "$token" >"$D/admin.token"
    chown "$RUN_USER" "$D/admin.token"
    chmod 600 "$D/admin.token"
    web_conf "[admin]
allow_from = 127.0.0.1 ::1
token_file = $D/admin.token"
    check "[admin] with token_file taken up" \
        wait_for 15 status_is 401 "$URL/metrics"
    expect_answer "GET /metrics without the token" 401
    check "401 says how: WWW-Authenticate" has_header 'WWW-Authenticate: Bearer'
    get "$URL/metrics" -H "Authorization: Bearer x$token"
    expect_answer "GET /metrics with a wrong token" 401
    get "$URL/metrics" -H "Authorization: Bearer $token"
    expect_answer "GET /metrics with the token" 200
    check "metrics: Content-Type text/plain; version=0.0.4" \
        has_header 'Content-Type: text/plain; version=0\.0\.4'
    check "metrics pass promtool check metrics" promtool_ok
    check "metrics hold no secret" sh -c "! grep -qF -e '$SECRET' -e '$token' '$D/resp'"

    get "$URL/login" -d "token=x$token"
    expect_answer "POST /login with a wrong token" 401
    get "$URL/login" -d "token=$token"
    expect_answer "POST /login with the token" 303
    check "login: Location .../slhook/" has_header 'Location: (https://[^/]*)?/slhook/$'
    check "login: Set-Cookie slhook_login, HttpOnly, Secure, Path=/slhook/" \
        sh -c "tr -d '\r' <'$D/resp.h' | grep -i '^Set-Cookie: slhook_login=' |
            grep -q 'Path=/slhook/;.*HttpOnly.*Secure'"
    cookie=$(tr -d '\r' <"$D/resp.h" |
        sed -n 's/^[Ss]et-[Cc]ookie: \(slhook_login=[^;]*\).*/\1/p')
    check "the login cookie is not the token" \
        sh -c "[ -n '$cookie' ] && ! printf %s '$cookie' | grep -qF '$token'"
    get "$URL/metrics" -H "Cookie: $cookie"
    expect_answer "GET /metrics with the login cookie" 200
    check "metrics (cookie) pass promtool check metrics" promtool_ok

    get "$URL/" -H "Authorization: Bearer $token"
    expect_answer "GET / with the token" 200
    check "the page: Content-Type text/html" has_header 'Content-Type: text/html'
    check "the page: a Content-Security-Policy" \
        has_header 'Content-Security-Policy: .'
    get "$URL/" -H "Cookie: $cookie"
    expect_answer "GET / with the login cookie" 200
    get "$URL/"
    expect_answer "GET / without the token: the login form" 401
    check "the login form is HTML" has_header 'Content-Type: text/html'
    get "$URL/api/session" -H "Authorization: Bearer $token"
    expect_answer "GET /api/session with the token" 200
    check "/api/session is JSON" python3 -c 'import json, sys
json.load(open(sys.argv[1]))' "$D/resp"
    get "$URL" -H "Authorization: Bearer $token"
    expect_answer "GET the bare path with the token" 303
    check "bare path: Location .../slhook/" \
        has_header 'Location: (https://[^/]*)?/slhook/$'
    post "$URL" application/json "$FIX/delivered-1.json"
    expect_answer "the webhook, with [admin] set" 200 OK

    web_conf
    check "the plain config taken up again" \
        wait_for 15 status_is 404 "$URL/metrics"
    rm -f "$D/slhook.conf.plain" "$D/admin.token"
    if [ "$fail" -gt 0 ]; then show_logs; fi
}

# server_login_suite SED-SCRIPT RESTART: the site config's commented example
# of the server's own login in front of the page, enabled by SED-SCRIPT (its
# password file moved into $D), then RESTART (stop the server, start it on
# the changed $D/site.conf): /metrics asks for the server's password, the
# webhook and /slhook/health do not. Run on the mode's plain slhook.conf.
server_login_suite() {
    pw=$(openssl rand -hex 12)
    printf 'ops:%s\n' "$(openssl passwd -apr1 "$pw")" >"$D/htpasswd"
    chmod 644 "$D/htpasswd"
    cp "$D/site.conf" "$D/site.conf.nologin"
    sed -i -E -e "$1" -e "s|/etc/[a-z0-9]+/slhook\.htpasswd|$D/htpasswd|" \
        "$D/site.conf"
    check "the server's login is in the config, commented out" \
        sh -c "! cmp -s '$D/site.conf' '$D/site.conf.nologin' &&
            grep -q '^ *[^# ].*$D/htpasswd' '$D/site.conf'"
    $2 || return 0
    get "$URL/metrics"
    expect_answer "server login: /metrics without the password" 401
    check "server login: WWW-Authenticate: Basic" \
        has_header 'WWW-Authenticate: Basic'
    get "$URL/" -u "ops:$pw"
    expect_answer "server login: / with the password reaches slhook" 405
    get "$URL/metrics" -u "ops:$pw"
    expect_answer "server login: /metrics with the password reaches slhook" \
        404 "not found"
    get "$URL/health"
    expect_answer "server login: /health without the password" 200 ok
    post "$URL" application/json "$FIX/delivered-1.json"
    expect_answer "server login: the webhook without the password" 200 OK
    if [ "$fail" -gt 0 ]; then show_logs; fi
}

# allowlist_suite SED-SCRIPT: the site config's optional SocketLabs
# allow-list, enabled by SED-SCRIPT: the server itself refuses a post from
# 127.0.0.1, before slhook sees it.
allowlist_suite() {
    cp "$D/site.conf" "$D/site.conf.orig"
    sed -i -E "$1" "$D/site.conf"
    check "the allow-list is in the config, commented out" \
        sh -c "! cmp -s '$D/site.conf' '$D/site.conf.orig' &&
            grep -q '^ *[^#].*52\.152\.150\.178' '$D/site.conf'"
}

allowlist_expect() {
    post "$URL" application/json "$FIX/delivered-1.json"
    expect_answer "a post from 127.0.0.1, allow-list enabled" 403
    check "refused before slhook (no event stored)" no_events
}

# not_stored MESSAGEID: no event of the spool carries that MessageId.
not_stored() {
    [ "$(as_user sqlite3 "$D/var/spool/slhook.db" \
        "SELECT count(*) FROM event WHERE body LIKE '%\"$1\"%'" 2>&1)" = 0 ]
}

# no_events: the spool has no event (or does not exist: a CGI never ran).
no_events() {
    [ ! -e "$D/var/spool/slhook.db" ] ||
        [ "$(as_user sqlite3 "$D/var/spool/slhook.db" \
            'SELECT count(*) FROM event' 2>&1)" = 0 ]
}

# spawn_fcgi_start: slhook.fcgi on $D/run/fcgi.sock under spawn-fcgi, as the
# shipped lighttpd and nginx configs say to start it (as $RUN_USER when
# root), stopped with the mode.
spawn_fcgi_start() {
    if [ "$(id -u)" -eq 0 ]; then
        set -- -u "$RUN_USER" -g "$(id -gn "$RUN_USER")"
    else
        set --
    fi
    spawn-fcgi -s "$D/run/fcgi.sock" -M 0660 -P "$D/run/spawn-fcgi.pid" \
        "$@" -- "$T/bin/slhook.fcgi" -c "$D/slhook.conf" \
        >"$D/log/spawn-fcgi.log" 2>&1
    mode_stop_cmd "stop_pidfile '$D/run/spawn-fcgi.pid'"
    check "spawn-fcgi made the socket" wait_file "$D/run/fcgi.sock"
}

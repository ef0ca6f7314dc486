#!/bin/sh
# The secret key never leaks. With a distinctive secret in the config, every
# SocketLabs fixture (rewritten to carry it) and a set of bad requests go
# through ${B}/slhook.cgi in CGI mode; then `slhook deliver --once` relays the
# events to a file and to an HTTP receiver started here. Every log line, every
# answer, every spool row (sqlite3 .dump), the raw spool files, every relayed
# header and body and the file destination are searched for the secret and
# for any 8 consecutive characters of it: nothing may be found, except in the
# answer to a Validation request, which is the key by contract. Also: keys of
# every other length are refused with 401, and the comparison is constant
# time (CRYPTO_memcmp in lib/handler.c). KEEP=1 keeps the work directory.
set -u
. "$(dirname "$0")/lib.sh"
lib_init secrets
cd "$ROOT" || exit 1
need "$B/slhook.cgi" "$B/slhook" sqlite3 python3

FIXTURE_SECRET=$SECRET # lib.sh's: the one in the fixtures
SECRET=Vb8Kq2Zx7Wm4Rt9Lp3Nf6Hj

# Every 8-character piece of the secret, one per line, for grep -F -f.
i=1
while [ $i -le $((${#SECRET} - 7)) ]; do
    printf '%s\n' "$SECRET" | cut -c "$i-$((i + 7))"
    i=$((i + 1))
done >"$T/pieces"

# leaks FILE...: prints the lines of the files that hold a piece.
leaks() {
    grep -a -n -r -F -f "$T/pieces" "$@" /dev/null
}
# no_leak DESCRIPTION FILE...: one test.
no_leak() {
    d=$1
    shift
    if leaks "$@" >"$T/found"; then
        nok "$d: the secret found in:"
        head -n 5 "$T/found" | cut -c 1-300
    else
        ok "$d"
    fi
}

# --- a downstream receiver that records raw request lines, headers, bodies
cat >"$T/receiver.py" <<'EOF'
import os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out, port_file = sys.argv[1], sys.argv[2]
lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with lock, open(out, "ab") as f:
            f.write(self.requestline.encode() + b"\n")
            f.write(bytes(self.headers))
            f.write(body + b"\n--\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass

srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
EOF
python3 "$T/receiver.py" "$T/relayed" "$T/port" &
track $!
wait_for 10 test -s "$T/port"
port=$(cat "$T/port" 2>/dev/null)
[ -n "$port" ] || abort "the receiver did not start"

conf=$T/slhook.conf
cat >"$conf" <<EOF
[receiver]
secret_key = $SECRET
server_id = 40211
max_body = 65536
spool = $T/spool

[destination hook]
url = http://127.0.0.1:$port/hook
header = X-Relay: secrets-test
signing_secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw

[destination jsonl]
file = $T/events.jsonl
EOF

# The CGI runs from a directory of its own. The spool's kick lock is held
# meanwhile, so that it starts no deliverer: the delivery is done below,
# where its log is read.
mkdir -p "$T/bin" "$T/req" "$T/out" "$T/spool"
cp "$B/slhook.cgi" "$T/bin/slhook.cgi"
: >"$T/locked"
python3 -c '
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
open(sys.argv[2], "w").write("locked")
time.sleep(600)' "$T/spool/deliver.lock" "$T/locked" &
lock_pid=$!
track $lock_pid
wait_for 5 test -s "$T/locked" || abort "cannot hold the kick lock"

# run_cgi NAME TYPE [LENGTH]: posts $T/req/NAME as one CGI request; the answer
# goes to $T/out/NAME, the log to $T/cgi.log; $status gets the status.
run_cgi() {
    len=$3
    [ -n "$len" ] || len=$(wc -c <"$T/req/$1" | tr -d ' ')
    env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
        CONTENT_TYPE="$2" CONTENT_LENGTH="$len" REMOTE_ADDR=142.0.180.7 \
        SERVER_PROTOCOL=HTTP/1.1 SLHOOK_CONFIG="$conf" \
        "$T/bin/slhook.cgi" <"$T/req/$1" >"$T/out/$1" 2>>"$T/cgi.log"
    status=$(sed -n '1s/^Status: \([0-9][0-9]*\).*/\1/p' "$T/out/$1")
}
# expect_status NAME TYPE STATUS [LENGTH]: one request, one test of its
# status.
expect_status() {
    run_cgi "$1" "$2" "${4:-}"
    check "$1: want $3, got '${status:-none}'" [ "${status:-none}" = "$3" ]
}
# req NAME: writes stdin, with the fixture secret swapped for ours, as a
# request body.
req() {
    sed "s/$FIXTURE_SECRET/$SECRET/g" >"$T/req/$1"
}

# --- every fixture, carrying the secret
fx=tests/fixtures/socketlabs
n_fixtures=0
for f in "$fx"/*.json "$fx"/legacy-form-*.txt; do
    name=$(basename "$f")
    req "fx-$name" <"$f"
    case $name in
    legacy-form-*) type=application/x-www-form-urlencoded ;;
    *) type="application/json; charset=utf-8" ;;
    esac
    expect_status "fx-$name" "$type" 200
    n_fixtures=$((n_fixtures + 1))
    case $name in
    *validation*)
        # The one place the key may appear: the Validation answer.
        check "fx-$name: the validation answer is the key" \
            grep -q -x -F "$SECRET" "$T/out/fx-$name"
        mv "$T/out/fx-$name" "$T/validation-answer-$name"
        ;;
    esac
done
check "fixtures found ($n_fixtures)" [ "$n_fixtures" -ge 23 ]

# --- keys of other lengths and near misses: 401
ev='{"Type":"Delivered","ServerId":40211,"Address":"a@b.example","SecretKey":'
short=$(printf '%s' "$SECRET" | cut -c 1-$((${#SECRET} - 1)))
long=$SECRET$SECRET$SECRET$SECRET$SECRET$SECRET$SECRET$SECRET
lower=$(printf '%s' "$SECRET" | tr '[:upper:]' '[:lower:]')
printf '%s"%s"}' "$ev" "$short" | req key-shorter
printf '%s"%sX"}' "$ev" "$SECRET" | req key-longer
printf '%s"%s"}' "$ev" "$long" | req key-much-longer
printf '%s"%s"}' "$ev" "$(printf '%s' "$SECRET" | cut -c 1-8)" | req key-prefix-8
printf '%s""}' "$ev" | req key-empty
printf '%s"%s"}' "$ev" "$lower" | req key-other-case
printf '%s"%s "}' "$ev" "$SECRET" | req key-trailing-space
printf '%s"%s\\u0000"}' "$ev" "$SECRET" | req key-escaped-nul
printf '%s"%s"}' "$ev" "Qz1Wx2Ec3Rv4Tb5Yn6Um7" | req key-wrong
printf '%s["%s"]}' "$ev" "$SECRET" | req key-in-array
for name in key-shorter key-longer key-much-longer key-prefix-8 key-empty \
    key-other-case key-trailing-space key-wrong key-in-array; do
    expect_status $name application/json 401
done
expect_status key-escaped-nul application/json 400
printf 'Type=Delivered&ServerId=40211&SecretKey=%sX' "$SECRET" | req form-key-longer
printf 'Type=Delivered&ServerId=40211&SecretKey=%s' "$short" | req form-key-shorter
expect_status form-key-longer application/x-www-form-urlencoded 401
expect_status form-key-shorter application/x-www-form-urlencoded 401
printf '{"Type":"Validation","ServerId":40211,"SecretKey":"%sX"}' "$SECRET" |
    req validation-key-longer
expect_status validation-key-longer application/json 401

# --- broken bodies with the key in or near the broken part: 400
printf '%s"%s' "$ev" "$SECRET" | req json-unterminated
printf '%s"%s\\q"}' "$ev" "$SECRET" | req json-bad-escape
printf '%s"%s\001"}' "$ev" "$SECRET" | req json-control-char
printf '%s"%s\377"}' "$ev" "$SECRET" | req json-invalid-utf8
printf '%s"%s"} %s' "$ev" "$SECRET" "$SECRET" | req json-trailing-key
printf '%s"%s",' "$ev" "$SECRET" | req json-truncated-after
printf '{"SecretKey":"%s","Type":"Delivered","secretkey":"%s"}' "$SECRET" \
    "$SECRET" | req json-duplicate-key
printf '{"SecretKey":"%s","Type":7}' "$SECRET" | req json-type-number
printf '{"SecretKey":"%s","Type":"Tracking","TrackingType":"%s"}' \
    "$SECRET" "$SECRET" | req json-tracking-bad
printf '[{"Type":"Delivered","SecretKey":"%s"},"%s"]' "$SECRET" "$SECRET" |
    req json-array-junk
printf '{"data":"%s"}' "$SECRET" | req json-data-string
for name in json-unterminated json-bad-escape json-control-char \
    json-invalid-utf8 json-trailing-key json-truncated-after \
    json-duplicate-key json-type-number json-array-junk \
    json-data-string; do
    expect_status $name application/json 400
done
expect_status json-tracking-bad application/json 400
printf 'Type=Delivered&SecretKey=%s%%ZZ' "$SECRET" | req form-bad-escape
printf 'Type=Delivered&SecretKey=%s%%FF' "$SECRET" | req form-invalid-utf8
printf 'Type=Delivered&SecretKey=%s%%00' "$SECRET" | req form-nul
printf 'SecretKey=%s&Type=Delivered&SecretKey=%s' "$SECRET" "$SECRET" |
    req form-duplicate
printf 'SecretKey=%s' "$SECRET" | req form-no-type
for name in form-bad-escape form-invalid-utf8 form-nul form-duplicate \
    form-no-type; do
    expect_status $name application/x-www-form-urlencoded 400
done
# A JSON body labelled as a form (curl -d's default media type): the form
# parser must not quote the key back, whatever it makes of the body.
printf '{"SecretKey":"%s","Type":"Delivered","Url":"https://x.example/%%FF"}' \
    "$SECRET" | req json-as-form-bad-utf8
printf '{"SecretKey":"%s","Type":"Delivered","Url":"https://x.example/?a=%%ZZ"}' \
    "$SECRET" | req json-as-form-bad-escape
expect_status json-as-form-bad-utf8 application/x-www-form-urlencoded 400
expect_status json-as-form-bad-escape application/x-www-form-urlencoded 400
for f in "$fx"/*.json; do
    name=as-form-$(basename "$f")
    req "$name" <"$f"
    expect_status "$name" application/x-www-form-urlencoded 400
done

# --- the head and the body length, with the key in the body
cp "$T/req/fx-delivered-1.json" "$T/req/length-short"
expect_status length-short application/json 400 9999
cp "$T/req/fx-delivered-1.json" "$T/req/length-over"
expect_status length-over application/json 413 999999
cp "$T/req/fx-delivered-1.json" "$T/req/text-plain"
expect_status text-plain text/plain 415
cp "$T/req/fx-delivered-1.json" "$T/req/length-cut"
expect_status length-cut application/json 400 40

# --- the answers and the receive log
no_leak "the CGI log" "$T/cgi.log"
no_leak "the CGI answers" "$T/out"/*
lines=$(wc -l <"$T/cgi.log")
check "one log line per request ($lines)" [ "$lines" -ge 60 ]

# --- relay: to the file and the HTTP receiver
kill "$lock_pid"
wait "$lock_pid" 2>/dev/null
"$B/slhook" -c "$conf" deliver --once >"$T/deliver.out" 2>"$T/deliver.log"
rc=$?
check "deliver --once exits 0 (got $rc)" [ $rc -eq 0 ]
"$B/slhook" -c "$conf" status --json >"$T/status.out" 2>&1
check "status --json exits 0" [ $? -eq 0 ]
"$B/slhook" -c "$conf" check >"$T/check.out" 2>&1
check "check exits 0" [ $? -eq 0 ]

db=$T/spool/slhook.db
events=$(sqlite3 "$db" 'select count(*) from event' 2>/dev/null)
# The fixtures overlap (batch-3 repeats three of them): 18 distinct events,
# as many as the log lines count new.
new=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^new=/) n += substr($i, 5) }
    END { print n + 0 }' "$T/cgi.log")
[ "${events:-0}" -ge 18 ] && [ "${events:-0}" = "$new" ]
check "events stored (${events:-none}, new in the log $new)" [ $? -eq 0 ]
posted=$(grep -c '^POST /hook ' "$T/relayed" 2>/dev/null)
check "every event posted (${posted:-0} of ${events:-?})" \
    [ "${posted:-0}" -eq "${events:-x}" ]
written=$(wc -l <"$T/events.jsonl" 2>/dev/null)
check "every event written to the file (${written:-0} of ${events:-?})" \
    [ "${written:-0}" -eq "${events:-x}" ]
check "relayed bodies carry no SecretKey field" \
    sh -c "! grep -a -i -q 'secretkey' '$T/relayed' '$T/events.jsonl'"
check "the relayed bodies are signed" \
    grep -a -q -i '^webhook-signature: v1,' "$T/relayed"

sqlite3 "$db" .dump >"$T/dump.sql" 2>&1
check "the spool dumps" grep -q 'CREATE TABLE' "$T/dump.sql"
no_leak "the spool rows (.dump)" "$T/dump.sql"
no_leak "the raw spool files" "$T/spool"/*
no_leak "the relayed requests (headers and bodies)" "$T/relayed"
no_leak "the file destination" "$T/events.jsonl"
no_leak "the deliverer's log" "$T/deliver.log" "$T/deliver.out"
no_leak "status and check" "$T/status.out" "$T/check.out"
# The deliverer a CGI starts gets only a config path: its arguments as
# strace shows them (the one event sent here is new, so it kicks one).
# LeakSanitizer cannot run under ptrace: a sanitizer build leaves leaks to
# the other runs of the CGI here.
events_json=$(printf '{"Type":"Delivered","SecretKey":"%s","ServerId":40211,"MessageId":"kick-args","Address":"a@example.com","DateTime":"2026-01-01T00:00:00Z"}' "$SECRET")
printf '%s' "$events_json" >"$T/req/kick-args"
env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
    CONTENT_TYPE=application/json CONTENT_LENGTH=${#events_json} \
    ASAN_OPTIONS=detect_leaks=0 SLHOOK_CONFIG="$conf" strace -f -e trace=execve,execveat -s 4096 \
    -o "$T/kick.trace" "$T/bin/slhook.cgi" <"$T/req/kick-args" \
    >"$T/out/kick-args" 2>>"$T/cgi.log"
check "the kick: a deliverer was started" \
    grep -q 'execveat(.*"deliver", "--kicked"' "$T/kick.trace"
no_leak "the kick's arguments" "$T/kick.trace"

# --- a config with the key mistyped (the '=' forgotten, as is easy with a
# base64 key ending in '='): the error names the line, not the key. The CGI
# logs it on every request until the config is fixed.
n=0
ctl=$(printf '\001')
for line in "secret_key $SECRET" "secret_key $SECRET=" "secret_key $SECRET==" \
    "secret_key ${SECRET}:" "validation_key $SECRET=" "secret_key = $SECRET
secret_key $SECRET=" "secret_key = $SECRET$ctl"; do
    n=$((n + 1))
    bad_conf=$T/bad-$n.conf
    printf '[receiver]\n%s\n' "$line" >"$bad_conf"
    "$B/slhook" -c "$bad_conf" check >"$T/bad-$n.out" 2>&1
    check "bad config $n: check fails" [ $? -ne 0 ]
    env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
        CONTENT_TYPE=application/json CONTENT_LENGTH=2 SLHOOK_CONFIG="$bad_conf" \
        "$T/bin/slhook.cgi" <"$T/req/fx-delivered-1.json" \
        >>"$T/bad-$n.out" 2>&1
    check "bad config $n: the CGI answers 503" \
        grep -q '^Status: 503' "$T/bad-$n.out"
    no_leak "bad config $n: the messages" "$T/bad-$n.out"
done

# Under SANITIZE=address,undefined a report would land in these logs.
if grep -a -l -E 'Sanitizer|runtime error' "$T/cgi.log" "$T/deliver.log" \
    "$T"/bad-*.out >"$T/found"; then
    nok "sanitizer reports in: $(cat "$T/found")"
else
    ok "no sanitizer report"
fi

# --- the comparison itself
check "lib/handler.c compares keys with CRYPTO_memcmp" \
    grep -q 'CRYPTO_memcmp' lib/handler.c
if grep -n -E '(strcmp|strncmp|memcmp|strcasecmp)\([^)]*(key|secret)' \
    lib/handler.c | grep -v CRYPTO_memcmp >"$T/found"; then
    nok "lib/handler.c compares a key without CRYPTO_memcmp:"
    cat "$T/found"
else
    ok "lib/handler.c compares keys only with CRYPTO_memcmp"
fi

finish

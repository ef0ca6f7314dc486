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
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
B=${B:-build}
case $B in /*) ;; *) B=$top/$B ;; esac

SECRET=Vb8Kq2Zx7Wm4Rt9Lp3Nf6Hj
FIXTURE_SECRET=q7Rt2mXw9LpB4sKd8Zf3
pass=0 fail=0
tmp=$(mktemp -d /tmp/slhook-secrets.XXXXXX)
recv_pid=

cleanup() {
    [ -n "$recv_pid" ] && { kill "$recv_pid"; wait "$recv_pid"; } 2>/dev/null
    if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*"
}
# check DESCRIPTION COMMAND...: one test, passing when COMMAND succeeds.
check() {
    d=$1
    shift
    if "$@"; then ok; else bad "$d"; fi
}

for f in "$B/slhook.cgi" "$B/slhook"; do
    if [ ! -x "$f" ]; then
        bad "$f is not built"
        echo "$pass passed, $fail failed"
        exit 1
    fi
done
for tool in sqlite3 python3; do
    if ! command -v $tool >/dev/null; then
        bad "$tool is needed"
        echo "$pass passed, $fail failed"
        exit 1
    fi
done

# Every 8-character piece of the secret, one per line, for grep -F -f.
i=1
while [ $i -le $((${#SECRET} - 7)) ]; do
    printf '%s\n' "$SECRET" | cut -c "$i-$((i + 7))"
    i=$((i + 1))
done >"$tmp/pieces"

# leaks FILE...: prints the lines of the files that hold a piece.
leaks() {
    grep -a -n -F -f "$tmp/pieces" "$@" /dev/null
}
# no_leak DESCRIPTION FILE...: one test.
no_leak() {
    d=$1
    shift
    if leaks "$@" >"$tmp/found"; then
        bad "$d: the secret found in:"
        head -n 5 "$tmp/found" | cut -c 1-300
    else
        ok
    fi
}

# --- a downstream receiver that records raw request lines, headers, bodies
cat >"$tmp/receiver.py" <<'EOF'
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
python3 "$tmp/receiver.py" "$tmp/relayed" "$tmp/port" &
recv_pid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
port=$(cat "$tmp/port" 2>/dev/null)
if [ -z "$port" ]; then
    bad "the receiver did not start"
    echo "$pass passed, $fail failed"
    exit 1
fi

conf=$tmp/slhook.conf
cat >"$conf" <<EOF
[receiver]
secret_key = $SECRET
server_id = 40211
max_body = 65536
spool = $tmp/spool

[destination hook]
url = http://127.0.0.1:$port/hook
header = X-Relay: secrets-test
signing_secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw

[destination jsonl]
file = $tmp/events.jsonl
EOF

# The CGI runs from a directory of its own, beside a stand-in for the slhook
# tool, so that the deliverer it kicks after a 200 only leaves a note: the
# delivery is done below, where its log is read.
mkdir -p "$tmp/bin" "$tmp/req" "$tmp/out"
cp "$B/slhook.cgi" "$tmp/bin/slhook.cgi"
printf '#!/bin/sh\necho "$*" >>"%s/kicked"\n' "$tmp" >"$tmp/bin/slhook"
chmod +x "$tmp/bin/slhook"

# cgi NAME TYPE [LENGTH]: posts $tmp/req/NAME as one CGI request; the answer
# goes to $tmp/out/NAME, the log to $tmp/cgi.log; $status gets the status.
cgi() {
    len=$3
    [ -n "$len" ] || len=$(wc -c <"$tmp/req/$1" | tr -d ' ')
    env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
        CONTENT_TYPE="$2" CONTENT_LENGTH="$len" REMOTE_ADDR=142.0.180.7 \
        SERVER_PROTOCOL=HTTP/1.1 SLHOOK_CONFIG="$conf" \
        "$tmp/bin/slhook.cgi" <"$tmp/req/$1" >"$tmp/out/$1" 2>>"$tmp/cgi.log"
    status=$(sed -n '1s/^Status: \([0-9][0-9]*\).*/\1/p' "$tmp/out/$1")
}
# expect NAME TYPE STATUS [LENGTH]: one request, one test of its status.
expect() {
    cgi "$1" "$2" "${4:-}"
    check "$1: want $3, got '${status:-none}'" [ "${status:-none}" = "$3" ]
}
# req NAME: writes stdin, with the fixture secret swapped for ours, as a
# request body.
req() {
    sed "s/$FIXTURE_SECRET/$SECRET/g" >"$tmp/req/$1"
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
    expect "fx-$name" "$type" 200
    n_fixtures=$((n_fixtures + 1))
    case $name in
    *validation*)
        # The one place the key may appear: the Validation answer.
        check "fx-$name: the validation answer is the key" \
            grep -q -x -F "$SECRET" "$tmp/out/fx-$name"
        mv "$tmp/out/fx-$name" "$tmp/validation-answer-$name"
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
    expect $name application/json 401
done
expect key-escaped-nul application/json 400
printf 'Type=Delivered&ServerId=40211&SecretKey=%sX' "$SECRET" | req form-key-longer
printf 'Type=Delivered&ServerId=40211&SecretKey=%s' "$short" | req form-key-shorter
expect form-key-longer application/x-www-form-urlencoded 401
expect form-key-shorter application/x-www-form-urlencoded 401
printf '{"Type":"Validation","ServerId":40211,"SecretKey":"%sX"}' "$SECRET" |
    req validation-key-longer
expect validation-key-longer application/json 401

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
    expect $name application/json 400
done
expect json-tracking-bad application/json 400
printf 'Type=Delivered&SecretKey=%s%%ZZ' "$SECRET" | req form-bad-escape
printf 'Type=Delivered&SecretKey=%s%%FF' "$SECRET" | req form-invalid-utf8
printf 'Type=Delivered&SecretKey=%s%%00' "$SECRET" | req form-nul
printf 'SecretKey=%s&Type=Delivered&SecretKey=%s' "$SECRET" "$SECRET" |
    req form-duplicate
printf 'SecretKey=%s' "$SECRET" | req form-no-type
for name in form-bad-escape form-invalid-utf8 form-nul form-duplicate \
    form-no-type; do
    expect $name application/x-www-form-urlencoded 400
done
# A JSON body labelled as a form (curl -d's default media type): the form
# parser must not quote the key back, whatever it makes of the body.
printf '{"SecretKey":"%s","Type":"Delivered","Url":"https://x.example/%%FF"}' \
    "$SECRET" | req json-as-form-bad-utf8
printf '{"SecretKey":"%s","Type":"Delivered","Url":"https://x.example/?a=%%ZZ"}' \
    "$SECRET" | req json-as-form-bad-escape
expect json-as-form-bad-utf8 application/x-www-form-urlencoded 400
expect json-as-form-bad-escape application/x-www-form-urlencoded 400
for f in "$fx"/*.json; do
    name=as-form-$(basename "$f")
    req "$name" <"$f"
    expect "$name" application/x-www-form-urlencoded 400
done

# --- the head and the body length, with the key in the body
cp "$tmp/req/fx-delivered-1.json" "$tmp/req/length-short"
expect length-short application/json 400 9999
cp "$tmp/req/fx-delivered-1.json" "$tmp/req/length-over"
expect length-over application/json 413 999999
cp "$tmp/req/fx-delivered-1.json" "$tmp/req/text-plain"
expect text-plain text/plain 415
cp "$tmp/req/fx-delivered-1.json" "$tmp/req/length-cut"
expect length-cut application/json 400 40

# --- the answers and the receive log
no_leak "the CGI log" "$tmp/cgi.log"
no_leak "the CGI answers" "$tmp/out"/*
lines=$(wc -l <"$tmp/cgi.log")
check "one log line per request ($lines)" [ "$lines" -ge 60 ]

# --- relay: to the file and the HTTP receiver
"$B/slhook" -c "$conf" deliver --once >"$tmp/deliver.out" 2>"$tmp/deliver.log"
rc=$?
check "deliver --once exits 0 (got $rc)" [ $rc -eq 0 ]
"$B/slhook" -c "$conf" status --json >"$tmp/status.out" 2>&1
check "status --json exits 0" [ $? -eq 0 ]
"$B/slhook" -c "$conf" check >"$tmp/check.out" 2>&1
check "check exits 0" [ $? -eq 0 ]

db=$tmp/spool/slhook.db
events=$(sqlite3 "$db" 'select count(*) from event' 2>/dev/null)
# The fixtures overlap (batch-3 repeats three of them): 18 distinct events,
# as many as the log lines count new.
new=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^new=/) n += substr($i, 5) }
    END { print n + 0 }' "$tmp/cgi.log")
[ "${events:-0}" -ge 18 ] && [ "${events:-0}" = "$new" ]
check "events stored (${events:-none}, new in the log $new)" [ $? -eq 0 ]
posted=$(grep -c '^POST /hook ' "$tmp/relayed" 2>/dev/null)
check "every event posted (${posted:-0} of ${events:-?})" \
    [ "${posted:-0}" -eq "${events:-x}" ]
written=$(wc -l <"$tmp/events.jsonl" 2>/dev/null)
check "every event written to the file (${written:-0} of ${events:-?})" \
    [ "${written:-0}" -eq "${events:-x}" ]
check "relayed bodies carry no SecretKey field" \
    sh -c "! grep -a -i -q 'secretkey' '$tmp/relayed' '$tmp/events.jsonl'"
check "the relayed bodies are signed" \
    grep -a -q -i '^webhook-signature: v1,' "$tmp/relayed"

sqlite3 "$db" .dump >"$tmp/dump.sql" 2>&1
check "the spool dumps" grep -q 'CREATE TABLE' "$tmp/dump.sql"
no_leak "the spool rows (.dump)" "$tmp/dump.sql"
no_leak "the raw spool files" "$tmp/spool"/*
no_leak "the relayed requests (headers and bodies)" "$tmp/relayed"
no_leak "the file destination" "$tmp/events.jsonl"
no_leak "the deliverer's log" "$tmp/deliver.log" "$tmp/deliver.out"
no_leak "status and check" "$tmp/status.out" "$tmp/check.out"
# The kicked deliverer got only a config path.
[ -f "$tmp/kicked" ] && no_leak "the kick's arguments" "$tmp/kicked"

# --- a config with the key mistyped (the '=' forgotten, as is easy with a
# base64 key ending in '='): the error names the line, not the key. The CGI
# logs it on every request until the config is fixed.
n=0
ctl=$(printf '\001')
for line in "secret_key $SECRET" "secret_key $SECRET=" "secret_key $SECRET==" \
    "secret_key ${SECRET}:" "validation_key $SECRET=" "secret_key = $SECRET
secret_key $SECRET=" "secret_key = $SECRET$ctl"; do
    n=$((n + 1))
    bad_conf=$tmp/bad-$n.conf
    printf '[receiver]\n%s\n' "$line" >"$bad_conf"
    "$B/slhook" -c "$bad_conf" check >"$tmp/bad-$n.out" 2>&1
    check "bad config $n: check fails" [ $? -ne 0 ]
    env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
        CONTENT_TYPE=application/json CONTENT_LENGTH=2 SLHOOK_CONFIG="$bad_conf" \
        "$tmp/bin/slhook.cgi" <"$tmp/req/fx-delivered-1.json" \
        >>"$tmp/bad-$n.out" 2>&1
    check "bad config $n: the CGI answers 503" \
        grep -q '^Status: 503' "$tmp/bad-$n.out"
    no_leak "bad config $n: the messages" "$tmp/bad-$n.out"
done

# Under SANITIZE=address,undefined a report would land in these logs.
if grep -a -l -E 'Sanitizer|runtime error' "$tmp/cgi.log" "$tmp/deliver.log" \
    "$tmp"/bad-*.out >"$tmp/found"; then
    bad "sanitizer reports in: $(cat "$tmp/found")"
else
    ok
fi

# --- the comparison itself
check "lib/handler.c compares keys with CRYPTO_memcmp" \
    grep -q 'CRYPTO_memcmp' lib/handler.c
if grep -n -E '(strcmp|strncmp|memcmp|strcasecmp)\([^)]*(key|secret)' \
    lib/handler.c | grep -v CRYPTO_memcmp >"$tmp/found"; then
    bad "lib/handler.c compares a key without CRYPTO_memcmp:"
    cat "$tmp/found"
else
    ok
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/bin/sh
# t_tls.sh: a destination's ca_file, client_cert/client_key and proxy, and
# the answer header "webhook-delivery: abort", end to end. The test makes
# its own private CA with openssl (a server and a client certificate, and a
# client certificate of another CA), starts tests/receiver.py as an HTTPS
# server that requires a client certificate of that CA, a plain one, and a
# real tinyproxy and a real microsocks (SOCKS5), each with a password, on
# loopback ports; slhook.cgi stores one
# event and `slhook deliver --once` relays it to every destination:
#   mtls      ca_file + client_cert + client_key          delivered
#   nocert    ca_file (relative to the config), no cert   refused: retrying
#   noca      client cert, the system's CAs               refused: retrying
#   otherca   ca_file, a client cert of another CA        refused: retrying
#   wrongca   a ca_file that did not issue the server's   refused: retrying
#   plainproxy http:// through the proxy                  delivered, proxied
#   tlsproxy  mtls through the proxy (CONNECT)            delivered, tunnelled
#   badpass, badpasstls  a wrong proxy password         refused: retrying
#   socks     http:// through socks5:// (the proxy given an address)
#   socksh    mtls to https://localhost through socks5h:// (the proxy
#             given the name, which it resolves)           both delivered
#   abort200/abort500  answer with Webhook-Delivery: Abort  dead at once
# Neither the proxy's password nor a key appears in check's output, the
# deliverer's log or the spool.
. "$(dirname "$0")/lib.sh"
lib_init tls
need python3 sqlite3 openssl tinyproxy microsocks "$B/slhook.cgi" "$B/slhook"

PKI=$T/pki
DB=$T/spool/slhook.db
PROXY_PASS=pr0xyS3cret9
mkdir -p "$PKI"

# ---- a private CA, its server and client certificates, another CA ----
# ca NAME: a self-signed CA certificate NAME.pem and its key NAME.key.
ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -days 1 -subj "/CN=slhook test $1" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$PKI/$1.key" -out "$PKI/$1.pem" >/dev/null 2>&1
}
# leaf NAME CN CA EXTENSIONS: NAME.pem/NAME.key for CN, signed by CA.
leaf() {
    printf '%s\n' "$4" >"$PKI/$1.ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=$2" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" \
        >/dev/null 2>&1 &&
        openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$3.pem" \
            -CAkey "$PKI/$3.key" -CAcreateserial -days 1 \
            -extfile "$PKI/$1.ext" -out "$PKI/$1.pem" >/dev/null 2>&1
}
ca ca && ca otherca &&
    leaf server 127.0.0.1 ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth" &&
    leaf client slhook-client ca "extendedKeyUsage=clientAuth" &&
    leaf other slhook-other otherca "extendedKeyUsage=clientAuth" ||
    abort "openssl: cannot make the test CA and certificates"
check "openssl: the client certificate verifies against the CA" \
    sh -c "openssl verify -CAfile '$PKI/ca.pem' '$PKI/client.pem' >/dev/null"

# ---- the receivers and the proxy ----
start_receiver TLS_PORT "$T/tls.log" --tls "$PKI/server.pem:$PKI/server.key" \
    --client-ca "$PKI/ca.pem"
start_receiver PORT "$T/recv.log" --mode abort200=abort:200 \
    --mode abort500=abort:500
PPORT=$(free_port)
cat >"$T/tinyproxy.conf" <<EOF
Port $PPORT
Listen 127.0.0.1
Timeout 30
LogFile "$T/tinyproxy.log"
LogLevel Info
MaxClients 20
Allow 127.0.0.1
BasicAuth slh $PROXY_PASS
EOF
tinyproxy -d -c "$T/tinyproxy.conf" >"$T/tinyproxy.out" 2>&1 &
track $!
wait_for 5 grep -qs "Accepting connections" "$T/tinyproxy.log" ||
    abort "tinyproxy did not start: $(cat "$T/tinyproxy.out")"
PROXY=http://slh:$PROXY_PASS@127.0.0.1:$PPORT
SPORT=$(free_port)
microsocks -i 127.0.0.1 -p "$SPORT" -u slh -P "$PROXY_PASS" \
    >"$T/socks.log" 2>&1 &
track $!
wait_for 5 python3 -c "import socket
socket.create_connection(('127.0.0.1', $SPORT), 1)" 2>/dev/null ||
    abort "microsocks did not start: $(cat "$T/socks.log")"
WRONG_PASS=wr0ngPa55word

# The receiver itself refuses a client without a certificate of its CA.
check "receiver: curl with the client certificate gets 200" sh -c "curl -s \
    -o /dev/null -w '%{http_code}' --cacert '$PKI/ca.pem' \
    --cert '$PKI/client.pem' --key '$PKI/client.key' \
    https://127.0.0.1:$TLS_PORT/probe | grep -qx 200"
check "receiver: curl without one is refused" sh -c "! curl -s -o /dev/null \
    --cacert '$PKI/ca.pem' https://127.0.0.1:$TLS_PORT/probe"

# ---- the config ----
CONF=$T/slhook.conf
TLSURL=https://127.0.0.1:$TLS_PORT
cp "$PKI/ca.pem" "$T/ca-beside.pem"
cat >"$CONF" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool

[destination mtls]
url = $TLSURL/mtls
ca_file = $PKI/ca.pem
client_cert = $PKI/client.pem
client_key = $PKI/client.key

[destination nocert]
url = $TLSURL/nocert
ca_file = ca-beside.pem

[destination noca]
url = $TLSURL/noca
client_cert = $PKI/client.pem
client_key = $PKI/client.key

[destination otherca]
url = $TLSURL/otherca
ca_file = $PKI/ca.pem
client_cert = $PKI/other.pem
client_key = $PKI/other.key

[destination wrongca]
url = $TLSURL/wrongca
ca_file = $PKI/otherca.pem
client_cert = $PKI/client.pem
client_key = $PKI/client.key

[destination plainproxy]
url = http://127.0.0.1:$PORT/plainproxy
proxy = $PROXY

[destination tlsproxy]
url = $TLSURL/tlsproxy
ca_file = $PKI/ca.pem
client_cert = $PKI/client.pem
client_key = $PKI/client.key
proxy = $PROXY

[destination badpass]
url = http://127.0.0.1:$PORT/badpass
proxy = http://slh:$WRONG_PASS@127.0.0.1:$PPORT

[destination badpasstls]
url = $TLSURL/badpasstls
ca_file = $PKI/ca.pem
client_cert = $PKI/client.pem
client_key = $PKI/client.key
proxy = http://slh:$WRONG_PASS@127.0.0.1:$PPORT

[destination socks]
url = http://127.0.0.1:$PORT/socks
proxy = socks5://slh:$PROXY_PASS@127.0.0.1:$SPORT

[destination socksh]
url = https://localhost:$TLS_PORT/socksh
ca_file = $PKI/ca.pem
client_cert = $PKI/client.pem
client_key = $PKI/client.key
proxy = socks5h://slh:$PROXY_PASS@127.0.0.1:$SPORT

[destination abort200]
url = http://127.0.0.1:$PORT/abort200

[destination abort500]
url = http://127.0.0.1:$PORT/abort500
EOF

# ---- check: paths shown, the proxy masked, no secret ----
"$B/slhook" -c "$CONF" check >"$T/check.out" 2>&1
check "check: exit 0" test $? -eq 0
check "check: shows ca_file by path (made whole)" \
    grep -qF "ca_file $T/ca-beside.pem" "$T/check.out"
check "check: shows the client certificate and key by path" \
    grep -qF "client_cert $PKI/client.pem, client_key $PKI/client.key" \
    "$T/check.out"
check "check: shows the proxy with its credentials masked" \
    grep -qF "proxy http://***@127.0.0.1:$PPORT/" "$T/check.out"
check "check: shows a socks5h proxy masked too" \
    grep -qF "proxy socks5h://***@127.0.0.1:$SPORT/" "$T/check.out"
check "check: never the proxy's password" \
    sh -c "! grep -q '$PROXY_PASS' '$T/check.out'"
check "check: never a key's contents" \
    sh -c "! grep -q -e 'PRIVATE KEY' -e '^MI' '$T/check.out'"
check "check: no warning while the key is private" \
    sh -c "! grep -q '^warning' '$T/check.out'"
chmod 644 "$PKI/client.key"
"$B/slhook" -c "$CONF" check >"$T/check.out" 2>&1
check "check: a client_key anyone may read is a warning, not an error" \
    sh -c "[ $? -eq 0 ] && grep -qF 'warning: destination mtls: client_key \
$PKI/client.key is readable by anyone' '$T/check.out'"
chmod 600 "$PKI/client.key"

# A ca_file on an http:// url does nothing: a warning.
printf '[receiver]\nsecret_key = %s\nspool = %s\n[destination d]\n%s\n%s\n' \
    "$SECRET" "$T/spool-bad" "url = http://127.0.0.1:$PORT/d" \
    "ca_file = $PKI/ca.pem" >"$T/http.conf"
"$B/slhook" -c "$T/http.conf" check >"$T/http.out" 2>&1
check "check: ca_file on an http:// url is a warning" sh -c "[ $? -eq 0 ] &&
    grep -q '^warning: destination d: ca_file and client_cert are for \
https:// urls' '$T/http.out'"

# ---- config errors: path:line, before any delivery ----
bad() { # LINES...: a config of [receiver] and one destination
    printf '[receiver]\nsecret_key = %s\nspool = %s\n[destination d]\n' \
        "$SECRET" "$T/spool-bad" >"$T/bad.conf"
    printf '%s\n' "$@" >>"$T/bad.conf"
    "$B/slhook" -c "$T/bad.conf" check >"$T/bad.out" 2>&1
}
bad "url = $TLSURL/x" "ca_file = $PKI/missing.pem"
check "check: a missing ca_file is an error at its line" \
    grep -qF "$T/bad.conf:6: cannot read ca_file '$PKI/missing.pem'" \
    "$T/bad.out"
bad "url = $TLSURL/x" "client_cert = $PKI/client.pem"
check "check: client_cert without client_key is an error" \
    grep -qF "$T/bad.conf:4: [destination d] has client_cert but no \
client_key" \
    "$T/bad.out"
bad "url = $TLSURL/x" "proxy = socks4://slh:$PROXY_PASS@127.0.0.1:1080"
check "check: an unknown proxy scheme is an error" \
    grep -qF "$T/bad.conf:6: proxy is not an http://" "$T/bad.out"
check "check: ... which does not repeat the password" \
    sh -c "! grep -q '$PROXY_PASS' '$T/bad.out'"
bad "file = $T/out.jsonl" "proxy = $PROXY"
check "check: a file destination takes no proxy" \
    grep -qF "$T/bad.conf:4: [destination d] writes a file: proxy is for url" \
    "$T/bad.out"

# ---- one event to every destination ----
hold_kick_lock "$T/spool"
"$B/slhook.cgi" -c "$CONF" <"$FIX/delivered-1.json" 2>"$T/cgi.err" |
    grep -q '^Status: 200' || abort "slhook.cgi did not store the event"
"$B/slhook" -c "$CONF" deliver --once 2>"$T/deliver.err"
check "deliver --once: exit 0" test $? -eq 0
"$B/slhook" -c "$CONF" status --json >"$T/status.json"

# state DEST: "pending retrying dead delivered" from status --json.
state() {
    python3 -c '
import json, sys
for d in json.load(open(sys.argv[1]))["destinations"]:
    if d["name"] == sys.argv[2]:
        print(d["pending"], d["retrying"], d["dead"], d["delivered"])' \
        "$T/status.json" "$1"
}
# last_error DEST
last_error() {
    python3 -c '
import json, sys
for d in json.load(open(sys.argv[1]))["destinations"]:
    if d["name"] == sys.argv[2]:
        print(d["last_error"])' "$T/status.json" "$1"
}
# posts LOG NAME [CN]: how many posts LOG's receiver took for NAME (with a
# client certificate of that CN, when given).
posts() {
    python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    cn = sys.argv[3] if len(sys.argv) > 3 else r["client_cn"]
    if r["name"] == sys.argv[2] and r["client_cn"] == cn:
        n += 1
print(n)' "$@"
}
# attempts DEST: the delivery row's attempt count in the spool.
attempts() {
    sql "$DB" "SELECT attempts FROM delivery WHERE dest = '$1'"
}
# tls_refusal DEST: retrying, a TLS reason, and nothing posted. In TLS 1.3
# a server checks the client's certificate after the client's handshake is
# done: curl may learn of the refusal from the server's alert ("alert
# certificate required") or, when the server has already closed the
# connection, as a failure to send its request.
tls_refusal() {
    expect "$1: refused, retrying" "1 1 0 0" "$(state "$1")"
    check "$1: the reason is TLS's ($(last_error "$1"))" sh -c \
        "echo '$(last_error "$1")' | grep -qi -e SSL -e certificate -e alert \
            -e 'sending data to the peer' -e 'receiving data from the peer'"
    expect "$1: the receiver took nothing" 0 "$(posts "$T/tls.log" "$1")"
}

expect "mtls: delivered with ca_file, client_cert and client_key" \
    "0 0 0 1" "$(state mtls)"
expect "mtls: the receiver saw the client certificate" 1 \
    "$(posts "$T/tls.log" mtls slhook-client)"
tls_refusal nocert
tls_refusal noca
tls_refusal otherca
check "noca: refused for the server's certificate, not the client's" sh -c \
    "echo '$(last_error noca)' | grep -qi -e 'certificate' -e 'issuer'"
tls_refusal wrongca
check "wrongca: the server's certificate is what failed" sh -c \
    "echo '$(last_error wrongca)' | grep -qi 'certificate problem'"

# ---- the proxy ----
expect "plainproxy: delivered" "0 0 0 1" "$(state plainproxy)"
expect "plainproxy: the receiver got it" 1 "$(posts "$T/recv.log" plainproxy)"
check "plainproxy: through tinyproxy (its log has the request)" grep -qF \
    "POST http://127.0.0.1:$PORT/plainproxy" "$T/tinyproxy.log"
expect "tlsproxy: delivered" "0 0 0 1" "$(state tlsproxy)"
expect "tlsproxy: the receiver saw the client certificate" 1 \
    "$(posts "$T/tls.log" tlsproxy slhook-client)"
check "tlsproxy: tunnelled through tinyproxy (CONNECT in its log)" grep -qF \
    "CONNECT 127.0.0.1:$TLS_PORT" "$T/tinyproxy.log"
# tinyproxy refuses a wrong password with 401 and closes the connection,
# which curl may see before the answer while it still sends the body.
expect "badpass: the proxy's refusal is a failure, retried" "1 1 0 0" \
    "$(state badpass)"
check "badpass: ... its error says so ($(last_error badpass))" sh -c \
    "echo '$(last_error badpass)' | grep -q -e '^HTTP 40[17]' \
        -e 'receiving data from the peer'"
expect "badpasstls: refused by the proxy, retried" "1 1 0 0" \
    "$(state badpasstls)"
check "badpasstls: ... its error says so ($(last_error badpasstls))" sh -c \
    "echo '$(last_error badpasstls)' |
        grep -q 'CONNECT tunnel failed, response 40[17]'"
expect "badpass, badpasstls: the receivers took nothing" "0 0" \
    "$(posts "$T/recv.log" badpass) $(posts "$T/tls.log" badpasstls)"
expect "no other destination went through the proxy" 4 \
    "$(grep -c 'Request (file descriptor' "$T/tinyproxy.log")"

# socks HOST:PORT: microsocks connected once to HOST:PORT as the client
# gave it (an address, or a name it then resolved itself).
socks() {
    test "$(grep -c "connected to $1\$" "$T/socks.log")" -eq 1
}
expect "socks: delivered through socks5://" "0 0 0 1" "$(state socks)"
expect "socks: the receiver got it" 1 "$(posts "$T/recv.log" socks)"
check "socks: the proxy connected to the address it was given" \
    socks "127.0.0.1:$PORT"
expect "socksh: delivered through socks5h://, mutual TLS" "0 0 0 1" \
    "$(state socksh)"
expect "socksh: the receiver saw the client certificate" 1 \
    "$(posts "$T/tls.log" socksh slhook-client)"
check "socksh: the proxy was given the name, to resolve itself" \
    socks "localhost:$TLS_PORT"

# ---- webhook-delivery: abort ----
for s in 200 500; do
    expect "abort$s: a dead letter at once" "0 0 1 0" "$(state abort$s)"
    expect "abort$s: after one attempt" 1 "$(attempts abort$s)"
    check "abort$s: the error says why ($(last_error abort$s))" sh -c \
        "echo '$(last_error abort$s)' | grep -q \
'^aborted by destination (webhook-delivery: abort): HTTP $s'"
done
# A second pass, once the refused ones are due again: the aborted events
# are not tried again, the refused ones are.
sleep 1.5
"$B/slhook" -c "$CONF" deliver --once 2>>"$T/deliver.err"
expect "abort200: not posted again" 1 "$(posts "$T/recv.log" abort200)"
expect "abort500: not posted again" 1 "$(posts "$T/recv.log" abort500)"
expect "nocert: tried again" 2 "$(attempts nocert)"

# ---- no secret anywhere ----
check "deliverer's log: never the proxy's password, right or wrong" \
    sh -c "! grep -q -e '$PROXY_PASS' -e '$WRONG_PASS' '$T/deliver.err'"
check "deliverer's log: an attempt line per destination" \
    test "$(grep -c . "$T/deliver.err")" -ge 10
sqlite3 "$DB" .dump >"$T/spool.dump"
check "spool: never the proxy's password, right or wrong" \
    sh -c "! grep -q -e '$PROXY_PASS' -e '$WRONG_PASS' '$T/spool.dump'"
check "spool: never a key" sh -c "! grep -q 'PRIVATE KEY' '$T/spool.dump'"

finish

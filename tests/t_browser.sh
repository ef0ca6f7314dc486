#!/bin/sh
# The operator's page in a real browser (issue 17): lighttpd, started here
# on a loopback port, runs slhook.fcgi (mod_fastcgi, bin-path) at /fcgi and
# slhook.cgi (mod_cgi) at /cgi, with [admin] actions = yes; tests/receiver.py
# is downstream. Known traffic goes in through the webhook; then
# tests/browser.py drives headless Chromium over the page (figures, chart,
# search, an XSS Address, a retry of dead letters) and measures its first
# load. SCREENSHOT=FILE keeps the page's picture there (docs/operator-page.png
# for the README).
. "$(dirname "$0")/lib.sh"
lib_init browser
need lighttpd curl /usr/bin/chromium /usr/bin/chromedriver \
    "$B/slhook.fcgi" "$B/slhook.cgi" "$B/slhook"
/usr/bin/python3 -c 'import selenium' 2>/dev/null ||
    abort "python3-selenium is not installed (run tools/install-deps)"

PORT=$(free_port)
start_receiver RPORT "$T/received.log" --mode gone=410
mkdir -p "$T/www"
conf=$T/slhook.conf
cat >"$conf" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool

[destination crm]
url = http://127.0.0.1:$RPORT/crm

; Failed events only; answers 410 (a dead letter) until told otherwise.
[destination gone]
url = http://127.0.0.1:$RPORT/gone
events = Failed

[destination arch]
file = $T/arch.jsonl

[admin]
allow_from = 127.0.0.1
actions = yes
EOF

cat >"$T/lighttpd.conf" <<EOF
server.modules = ( "mod_access", "mod_alias", "mod_setenv", "mod_cgi",
                   "mod_fastcgi" )
server.bind = "127.0.0.1"
server.port = $PORT
server.document-root = "$T/www"
server.errorlog = "$T/lighttpd.log"
server.breakagelog = "$T/handler.log"
alias.url = ( "/cgi" => "$B/slhook.cgi" )
\$HTTP["url"] =~ "^/cgi(/|\$)" {
    cgi.assign = ( "" => "" )
    setenv.add-environment = ( "SLHOOK_CONFIG" => "$conf" )
}
EOF
lighttpd_fcgi "$conf" /fcgi >>"$T/lighttpd.conf"
lighttpd -D -f "$T/lighttpd.conf" >"$T/lighttpd.out" 2>&1 &
LPID=$!
track $LPID
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$PORT/fcgi/health" ||
    { cat "$T/lighttpd.log" 2>/dev/null; abort "lighttpd and slhook.fcgi started"; }
ok "lighttpd and slhook.fcgi started"

# event TYPE MESSAGEID ADDRESS: one event posted to the webhook.
event() {
    printf '{"Type":"%s","ServerId":40211,"MessageId":"%s","Address":"%s",' \
        "$1" "$2" "$3"
    printf '"DateTime":"2026-12-02T10:00:00Z","SecretKey":"%s"}' "$SECRET"
}
XSS='<img src=x onerror=alert(1)>'
{
    printf '['
    event Delivered page-1 a@example.org
    printf ','
    event Failed page-2 b@example.org
    printf ','
    event Failed page-3 c@example.org
    printf ','
    event Complaint page-4 d@example.org
    printf ','
    event Failed page-5 e@example.org
    printf ','
    event Delivered page-6 "$XSS"
    printf ']'
} >"$T/batch.json"
got=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$T/batch.json" "http://127.0.0.1:$PORT/fcgi")
expect "the webhook stores six events" 200 "$got"

# settled: crm and arch delivered all six, gone's three Failed dead.
settled() {
    "$B/slhook" -c "$conf" status --json >"$T/status.json" 2>/dev/null &&
        /usr/bin/python3 - "$T/status.json" <<'EOF'
import json, sys
d = {x["name"]: x for x in json.load(open(sys.argv[1]))["destinations"]}
ok = (d["crm"]["delivered"] == 6 and d["arch"]["delivered"] == 6
      and d["gone"]["dead"] == 3 and d["gone"]["pending"] == 0)
sys.exit(0 if ok else 1)
EOF
}
wait_for 20 settled || { cat "$T/status.json"; nok "the traffic settled"; }

# The same page through the CGI.
got=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' \
    "http://127.0.0.1:$PORT/cgi/")
expect "slhook.cgi serves the page" "200 text/html; charset=utf-8" "$got"
got=$(curl -s "http://127.0.0.1:$PORT/cgi/api/status" | /usr/bin/python3 -c '
import json, sys
print(" ".join("%s=%d/%d" % (d["name"], d["delivered"], d["dead"])
               for d in json.load(sys.stdin)["destinations"]))')
expect "slhook.cgi answers api/status" "crm=6/0 gone=0/3 arch=6/0" "$got"

cat >"$T/expect.json" <<EOF
{
  "destinations": {
    "crm": {"pending": 0, "retrying": 0, "dead": 0, "delivered": 6},
    "gone": {"pending": 0, "retrying": 0, "dead": 3, "delivered": 0},
    "arch": {"pending": 0, "retrying": 0, "dead": 0, "delivered": 6}
  },
  "message_id": "page-3",
  "attempts_of_message": ["arch", "crm", "gone"],
  "xss_address": "<img src=x onerror=alert(1)>",
  "retry_dest": "gone",
  "retry_delivered": 3
}
EOF
shot=${SCREENSHOT:-$T/operator-page.png}
case $shot in /*) ;; *) shot=$ROOT/$shot ;; esac
/usr/bin/python3 "$ROOT/tests/browser.py" "http://127.0.0.1:$PORT/fcgi/" \
    "$RPORT" "$T/expect.json" "$shot" >"$T/browser.out" 2>&1
rc=$?
grep -E '^(FAIL|figure)' "$T/browser.out"
summary=$(tail -n 1 "$T/browser.out")
case $summary in
*" passed, 0 failed") ok "browser: $summary" ;;
*) nok "browser (exit $rc): $summary"; tail -n 20 "$T/browser.out" ;;
esac
b_pass=$(echo "$summary" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
pass=$((pass + ${b_pass:-0}))
check "a screenshot of the page" test -s "$shot"
finish

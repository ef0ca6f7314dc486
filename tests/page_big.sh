#!/bin/sh
# page_big.sh: the operator's page's figures against a spool of a million
# events over 7 days (issue 17: first load under 100 KB, rendered in under
# 300 ms). Opt-in, not part of make test: writing the spool takes a minute
# or two. N=events (1000000) changes the size.
#
# slhook makes the spool (a webhook post through slhook.cgi); sqlite3 then
# writes the events straight into it (store_sqlite.h's schema), each with
# a delivered row for crm and arch, every 1000th dead for crm, the newest
# 200 pending (due tomorrow: no deliverer works while the page is timed). lighttpd serves slhook.fcgi; curl times each API answer,
# then tests/browser.py loads the page in headless Chromium.
. "$(dirname "$0")/lib.sh"
lib_init page-big
need lighttpd curl sqlite3 /usr/bin/chromium "$B/slhook.fcgi" "$B/slhook.cgi"
N=${N:-1000000}

conf=$T/slhook.conf
cat >"$conf" <<EOF
[receiver]
secret_key = $SECRET
spool = $T/spool
; No purge while measuring: the oldest events are 7 days old.
retention = 30d
[destination crm]
url = http://127.0.0.1:9/crm
[destination arch]
file = $T/arch.jsonl
[admin]
allow_from = 127.0.0.1
actions = yes
EOF
printf '{"Type":"Delivered","ServerId":1,"MessageId":"seed","Address":"s@example.org","DateTime":"2026-12-02T10:00:00Z","SecretKey":"%s"}' \
    "$SECRET" >"$T/seed.json"
cgi "$conf" "$T/seed.json"
expect "slhook made the spool" 200 "$STATUS"

now=$(($(date +%s) * 1000))
t0=$(date +%s.%N)
sqlite3 "$T/spool/slhook.db" <<EOF
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $N)
INSERT INTO event(id, at, type, tracking, received, body)
SELECT printf('%08x', x * 2654435761 % 4294967296) || printf('%056x', x),
       1796205600000 + x, CASE x % 4 WHEN 0 THEN 'Failed' ELSE 'Delivered' END, 0,
       $now - 7 * 86400000 + x * (7 * 86400000 / $N),
       json_object('Type', CASE x % 4 WHEN 0 THEN 'Failed' ELSE 'Delivered' END,
                   'ServerId', 1, 'MessageId', 'big-' || x,
                   'Address', 'user' || (x % 50000) || '@example.org',
                   'DateTime', '2026-12-02T10:00:00Z')
FROM n;
INSERT INTO delivery(dest, seq, state, due, attempts, last_status, last_error, done)
SELECT d.name, e.seq,
       CASE WHEN e.seq > $N - 199 THEN 0
            WHEN d.name = 'crm' AND e.seq % 1000 = 0 THEN 2 ELSE 1 END,
       CASE WHEN e.seq > $N - 199 THEN $now + 86400000 ELSE e.received + 1000 END,
       1,
       CASE WHEN d.name = 'crm' AND e.seq % 1000 = 0 THEN 410 ELSE 200 END,
       CASE WHEN d.name = 'crm' AND e.seq % 1000 = 0 THEN 'HTTP 410' END,
       CASE WHEN e.seq > $N - 199 THEN NULL ELSE e.received + 1000 END
FROM event e, (SELECT 'crm' AS name UNION ALL SELECT 'arch') d WHERE e.seq > 1;
INSERT INTO message SELECT seq, json_extract(body, '\$.MessageId') FROM event
WHERE seq > (SELECT coalesce(max(seq), 0) FROM message);
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
echo "figure: $N events written in $(echo "$(date +%s.%N) - $t0" | bc) s," \
    "$(du -m "$T/spool/slhook.db" | cut -f1) MB"
count=$(sqlite3 "$T/spool/slhook.db" 'SELECT COUNT(*) FROM event')
expect "the spool holds them all" $((N + 1)) "$count"

PORT=$(free_port)
mkdir -p "$T/www"
cat >"$T/lighttpd.conf" <<EOF
server.modules = ( "mod_access", "mod_fastcgi" )
server.bind = "127.0.0.1"
server.port = $PORT
server.document-root = "$T/www"
server.errorlog = "$T/lighttpd.log"
EOF
lighttpd_fcgi "$conf" /fcgi >>"$T/lighttpd.conf"
lighttpd -D -f "$T/lighttpd.conf" >"$T/lighttpd.out" 2>&1 &
track $!
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$PORT/fcgi/health" ||
    abort "lighttpd and slhook.fcgi started"

base=http://127.0.0.1:$PORT/fcgi
# The second of three answers (the first warms the page cache).
for p in api/status api/failures api/chart 'api/search?q=big-777' \
    'api/search?q=user4242%40example.org' \
    "api/search?q=$(printf '%08x' $((777 * 2654435761 % 4294967296)))" \
    'api/search?q=nobody%40example.org' metrics; do
    for i in 1 2 3; do
        line=$(curl -s -o "$T/answer" -w '%{http_code} %{time_total}' \
            "$base/$p")
    done
    set -- $line
    echo "figure: GET /$p: $1 in $(echo "$2 * 1000" | bc | cut -d. -f1) ms," \
        "$(wc -c <"$T/answer") bytes"
    expect "/$p answers" 200 "$1"
done

/usr/bin/python3 "$ROOT/tests/browser.py" "$base/" - - >"$T/browser.out" 2>&1
grep -E '^(FAIL|figure)' "$T/browser.out"
summary=$(tail -n 1 "$T/browser.out")
case $summary in
*" passed, 0 failed") ok "browser: $summary" ;;
*) nok "browser: $summary"; tail -n 20 "$T/browser.out" ;;
esac
finish

#!/bin/sh
# t_pg_store.sh: the PostgreSQL spool (issue 18), on a cluster started here
# (tests/pg_lib.sh) and stopped at the end. First the programs: `check`
# before the spool exists and after (the server's and the schema's
# versions, the URI's password masked), `deliver --once` making the
# database, slhook.fcgi storing a POST (200) that `status` then counts,
# slhook.cgi handing the spool to slhook-pg.cgi (200, stored once), and
# answering 503 when it has no slhook-pg.cgi beside it. Then the store
# conformance suite (tests/test_store.c) against both backends, SQLite and
# this cluster; its checks are counted with these.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
lib_init pg_store
need "$B/tests/test_store" "$B/slhook" "$B/slhook.fcgi" "$B/slhook.cgi" \
    "$B/slhook-pg.cgi" python3 psql

pg_start || finish
PW=s3cretpw
cat >"$T/slhook.conf" <<EOF
[receiver]
secret_key = $SECRET
server_id = 40211
spool = postgresql://slhook:$PW@/slh_cli?$PG_ARGS
[destination a]
url = http://127.0.0.1:9/a
EOF

"$B/slhook" -c "$T/slhook.conf" check >"$T/check0" 2>&1
expect "check, no database yet: exit 0" 0 $?
check "check, no database yet: says so" \
    grep -q "no database yet: made on first use" "$T/check0"
"$B/slhook" -c "$T/slhook.conf" deliver --once >"$T/deliver" 2>&1
expect "deliver --once makes the database: exit 0" 0 $?
"$B/slhook" -c "$T/slhook.conf" check >"$T/check1" 2>&1
expect "check: exit 0" 0 $?
check "check: the server's version and the schema's" \
    grep -qE "PostgreSQL 1[0-9.]+.*, schema 3, database slh_cli as slhook" \
    "$T/check1"
check "check: sound" grep -q ": sound$" "$T/check1"
check "check: the URI's password masked" \
    grep -q "postgresql://slhook:\*\*\*@/slh_cli" "$T/check1"
printf '[receiver]\nsecret_key = %s\nspool = %s\n' "$SECRET" \
    "postgres:///slh_cli?password=$PW&$PG_ARGS" >"$T/param.conf"
"$B/slhook" -c "$T/param.conf" check >"$T/check2" 2>&1
expect "check, postgres:// and password=: exit 0" 0 $?
check "check: password= masked" \
    grep -q "postgres:///slh_cli?password=\*\*\*&host=" "$T/check2"
check "no password in what check or deliver print" \
    sh -c "! grep -q '$PW' '$T/check0' '$T/check1' '$T/check2' '$T/deliver'"

# The receive path: slhook.fcgi stores, status counts; the CGI refuses.
A=$T/fcgi.sock
start_fcgi "$T/fcgi.log" "$A" -c "$T/slhook.conf"
i=0
while [ ! -S "$A" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
post "$A" --body "$FIX/delivered-1.json"
expect "slhook.fcgi on PostgreSQL: 200" 200 "$STATUS"
post "$A" --body "$FIX/delivered-1.json"
expect "the same event again: 200" 200 "$STATUS"
# The server stopped at once under slhook.fcgi's open connections: 503s
# with Retry-After while it is down, then 200s without restarting slhook.
pg_down
post "$A" --body "$FIX/failed-1.json"
expect "PostgreSQL down: 503" 503 "$STATUS"
check "with Retry-After" has_retry_after
pg_up
post "$A" --body "$FIX/failed-1.json"
expect "PostgreSQL back: 200, slhook not restarted" 200 "$STATUS"
kill "$FPID"
wait "$FPID" 2>/dev/null
check "stored once: new=1, then new=0" \
    sh -c "grep -q 'events=1 new=1' '$T/fcgi.log' &&
        grep -q 'events=1 new=0' '$T/fcgi.log'"
"$B/slhook" -c "$T/slhook.conf" status >"$T/status" 2>&1
expect "status: exit 0" 0 $?
check "status: the two events, each once, for a" \
    grep -qE "^ *a +2 " "$T/status"
# The hourly purge, its turn kept in the database: both events made
# delivered long ago, then forgotten by the next deliverer once the last
# turn is an hour old; the tally follows (check verifies it).
PSQL="pg_psql slh_cli -t -A"
check "the purge's turn taken by the first deliverer" \
    test "$($PSQL -c 'SELECT last_purge > 0 FROM slhook_meta')" = t
$PSQL -c "UPDATE slhook_delivery SET state = 1, due = 1000, done = 1000;
    UPDATE slhook_event SET received = 1000"
"$B/slhook" -c "$T/slhook.conf" deliver --once >>"$T/deliver" 2>&1
expect "within the hour, no other purge" 2 \
    "$($PSQL -c 'SELECT count(*) FROM slhook_event')"
$PSQL -c "UPDATE slhook_meta SET last_purge = last_purge - 3600000"
"$B/slhook" -c "$T/slhook.conf" deliver --once >>"$T/deliver" 2>&1
expect "the purge on PostgreSQL: old delivered events forgotten" 0 \
    "$($PSQL -c 'SELECT count(*) FROM slhook_event')"
"$B/slhook" -c "$T/slhook.conf" check >"$T/check3" 2>&1
expect "check after the purge: the tally agrees (exit 0)" 0 $?

# slhook.cgi runs slhook-pg.cgi, beside it, in its place: stored, once.
cgi "$T/slhook.conf" "$FIX/delivered-1.json"
expect "slhook.cgi, a PostgreSQL spool: 200" 200 "$STATUS"
cgi "$T/slhook.conf" "$FIX/delivered-1.json"
expect "the same event again: 200" 200 "$STATUS"
expect "stored once" 1 "$($PSQL -c 'SELECT count(*) FROM slhook_event')"
check "logged as new, then as a duplicate" \
    sh -c "grep -q 'events=1 new=1' '$T/cgi.log' &&
        grep -q 'events=1 new=0' '$T/cgi.log'"
# Copied alone into a directory, slhook.cgi has no slhook-pg.cgi to run.
mkdir "$T/alone"
cp "$B/slhook.cgi" "$T/alone/"
B_BUILT=$B
B=$T/alone
cgi "$T/slhook.conf" "$FIX/delivered-1.json"
B=$B_BUILT
expect "slhook.cgi without slhook-pg.cgi: 503" 503 "$STATUS"
check "with Retry-After" has_retry_after
check "its log says slhook-pg.cgi cannot be run, and why" \
    grep -q "$T/alone/slhook-pg.cgi receives for .*: it cannot be run: No such file" \
    "$T/cgi.log"
check "and that it was built without PostgreSQL" \
    grep -q "this slhook.cgi was built without PostgreSQL" "$T/cgi.log"
check "no password in any log" \
    sh -c "! grep -q '$PW' '$T/cgi.log' '$T/fcgi.log' '$T/status'"

# /health is open to all: a database that is gone (dropped under a running
# slhook.fcgi) is a 503 that names the spool masked, never its password.
sed "s|/slh_cli?|/slh_gone?|" "$T/slhook.conf" >"$T/gone.conf"
start_fcgi "$T/fcgi.log" "$T/gone.sock" -c "$T/gone.conf" --no-deliver
fcgi_ready "$T/gone.sock"
pg_psql postgres \
    -c "DROP DATABASE slh_gone WITH (FORCE)" >/dev/null
post "$T/gone.sock" --method GET --param PATH_INFO=/health
expect "/health, the database gone: 503" 503 "$STATUS"
check "saying so, the URI masked" \
    grep -q "postgresql://slhook:\*\*\*@/slh_gone.*no spool yet" "$ANSWER"
check "no password in /health's answer" sh -c "! grep -q '$PW' '$ANSWER'"
kill "$FPID"
wait "$FPID" 2>/dev/null

# The conformance suite, its summary added to ours.
SLH_TEST_PG=$PG_ARGS "$B/tests/test_store" >"$T/store.out" 2>&1
expect "test_store: exit 0" 0 $?
grep -E '^FAIL|^backend' "$T/store.out"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$T/store.out" | tail -n 1)
[ -n "$summary" ] || nok "test_store printed no summary"
pass=$((pass + ${summary%% passed*}))
f=${summary#*, }
fail=$((fail + ${f%% failed}))
pg_stop
finish

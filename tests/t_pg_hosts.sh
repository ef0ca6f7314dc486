#!/bin/sh
# t_pg_hosts.sh: two hosts on one PostgreSQL spool (issue 18). One cluster
# (tests/pg_lib.sh); two slhook.fcgi "hosts" a and b, each with its own
# config and FastCGI socket, the same spool and destination; one lighttpd
# in front with both as backends of /slhook (round robin), /a/slhook and
# /b/slhook reaching one each, and /cgi/slhook running slhook.cgi on the
# same spool (lighttpd runs a CGI itself; nginx would need fcgiwrap). The
# destination (tests/hosts_client.py receive) records each post's
# webhook-id, which host posted it (each host's destination sends its own
# X-Slhook-Host header) and when it began and ended.
#   The CGI leg: slhook.cgi stores into the spool (a check of its own that
#     fails, never skips, while slhook.cgi cannot store there); only
#     then are posts sent through it.
#   Dedup: events posted at the same moment to both hosts are stored once
#     and relayed once.
#   Kills: 8 clients post (some events through each host in turn); one
#     host is SIGKILLed four times (a, b, a, b), each time holding claimed
#     rows: the survivor takes them back within 10 s (printed), then the
#     host is started again.
#   Drops: under a light load and 1 s posts, the server ends the
#     connection holding a host's owner lock (four times, a, b, a, b): the
#     host connects again and takes its lock again, keeps its owner (the
#     other host must not take back a live host's claims), and no event is
#     posted by both at once.
#   A PostgreSQL restart (pg_ctl stop -m fast, start) under the first
#     load, the destination slow so that posts are in flight across it:
#     while it is down every answer is 503 with Retry-After and none 200;
#     after it, 200s again from the same two processes, and every row
#     delivered within 30 s (a claim given up while it was down must not
#     wait for its lease).
# Then, once every row is delivered: every event answered 200 is in the
# database once and reached the destination, and no webhook-id was posted
# twice at the same time (a post counted as ended when its poster closed
# the connection, or was killed). About 2 minutes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
lib_init pg_hosts
need "$B/slhook.fcgi" "$B/slhook.cgi" "$B/slhook" python3 psql lighttpd curl

HC="python3 $ROOT/tests/hosts_client.py"
TEMPLATES="--template $FIX/delivered-1.json --template $FIX/failed-1.json
    --template $FIX/complaint-1.json --template $FIX/deferred-1.json"
KILLS=4
TAKEOVER_MAX=10 # seconds: issue 18's bound
# seconds from PostgreSQL's return to the last row delivered: a deliverer
# resumes 10 s after an error; a claim waiting for its lease takes 64 s.
LATE_MAX=30
CGI_OK=0
: >"$T/ok.log"
: >"$T/kills"
: >"$T/answers"

now() {
    date +%s.%N
}

# secs_since T: seconds from T to now, to the millisecond.
secs_since() {
    python3 -c "import time; print('%.3f' % (time.time() - $1))"
}

pg_start || finish
PSQL="pg_psql slh_hosts -t -A"
SPOOL="postgresql:///slh_hosts?$PG_ARGS"

# The destination, 50 ms a post to begin with.
$HC receive --spans "$T/spans.jsonl" --port-file "$T/recv.port" \
    --delay 0.05 2>"$T/recv.err" &
track $!
wait_for 5 test -s "$T/recv.port" || abort "the destination did not start"
RPORT=$(cat "$T/recv.port")

delay() {
    curl -s -X PUT --data "$1" "http://127.0.0.1:$RPORT/_delay" >/dev/null
}

# conf NAME: NAME's config, in $T/NAME.conf: all alike but for the header
# that tells the destination who posted.
conf() {
    cat >"$T/$1.conf" <<EOF
[receiver]
secret_key = $SECRET
server_id = 40211
spool = $SPOOL
[destination hook]
url = http://127.0.0.1:$RPORT/hook
header = X-Slhook-Host: $1
; 4 at a time: a claimed batch of 64 takes a while to post, so that a host
; killed holds claims. Their lease, (64 / 4 + 1) * 2 s + 30 s = 64 s, is
; far beyond the 10 s a take-over may take.
concurrency = 4
timeout = 2
EOF
}

# host_up NAME: slhook.fcgi on $T/NAME.sock; its pid in $PID_NAME.
host_up() {
    rm -f "$T/$1.sock"
    start_fcgi "$T/$1.log" "$T/$1.sock" -c "$T/$1.conf"
    eval "PID_$1=\$FPID"
}

pid_of() {
    eval "echo \$PID_$1"
}

for h in a b cgi; do conf $h; done
# Both at once on a database that does not exist yet.
host_up a
host_up b
for h in a b; do
    fcgi_ready "$T/$h.sock" ||
        abort "host $h did not start: $(tail -n 1 "$T/$h.log")"
    ok "host $h answers"
done
schema_made() {
    v=$($PSQL -c 'SELECT version FROM slhook_meta' 2>/dev/null)
    [ -n "$v" ] && [ "$v" -ge 1 ]
}
check "the schema made by hosts starting at once on no database" \
    wait_for 10 schema_made

# ---- lighttpd in front of both ----
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
mkdir -p "$T/www"
cat >"$T/lighttpd.conf" <<EOF
server.modules = ( "mod_alias", "mod_setenv", "mod_fastcgi", "mod_cgi" )
server.bind = "127.0.0.1"
server.port = $PORT
server.document-root = "$T/www"
server.errorlog = "$T/lighttpd.log"
server.breakagelog = "$T/cgi.log"
server.max-request-size = 1024
fastcgi.balance = "round-robin"
fastcgi.server = (
    "/slhook" => (
        "a" => ( "socket" => "$T/a.sock", "check-local" => "disable" ),
        "b" => ( "socket" => "$T/b.sock", "check-local" => "disable" ) ),
    "/a/slhook" => (( "socket" => "$T/a.sock", "check-local" => "disable" )),
    "/b/slhook" => (( "socket" => "$T/b.sock", "check-local" => "disable" ))
)
alias.url = ( "/cgi/slhook" => "$B/slhook.cgi" )
\$HTTP["url"] =~ "^/cgi/slhook(/|\$)" {
    cgi.assign = ( "" => "" )
    setenv.add-environment = ( "SLHOOK_CONFIG" => "$T/cgi.conf" )
}
EOF
lighttpd -tt -f "$T/lighttpd.conf" >"$T/lighttpd.start" 2>&1 || {
    cat "$T/lighttpd.start"
    abort "lighttpd accepts the config"
}
lighttpd -D -f "$T/lighttpd.conf" >>"$T/lighttpd.start" 2>&1 &
LPID=$!
track $LPID
# health_is CODE: /slhook/health through lighttpd (either host) answers
# CODE; the body in $T/health.
health_is() {
    [ "$(curl -s -o "$T/health" -w '%{http_code}' "$URL/slhook/health")" = "$1" ]
}
check "lighttpd answers: /slhook/health 200 through it" \
    wait_for 10 health_is 200

# A server that takes no writes (a standby, or read-only as here) is
# refused by /health, and by a URI that lists several servers with
# target_session_attrs=read-write, which otherwise skips one that cannot be
# reached: what README's "Running on several hosts" says.
printf '[receiver]\nsecret_key = %s\nspool = %s\n' "$SECRET" \
    "postgresql:///slh_hosts?host=$T/nopg,$PG_DIR&user=slhook&target_session_attrs=read-write" \
    >"$T/multi.conf"
"$B/slhook" -c "$T/multi.conf" check >"$T/multi.out" 2>&1
check "several servers in the URI: the unreachable first one skipped" \
    grep -q ": sound$" "$T/multi.out"
$PSQL -c "ALTER SYSTEM SET default_transaction_read_only = on" \
    -c "SELECT pg_reload_conf()" >/dev/null
check "a server that takes no writes: /health 503" wait_for 5 health_is 503
check "saying why" grep -q "takes no writes" "$T/health"
"$B/slhook" -c "$T/multi.conf" check >"$T/multi.out" 2>&1
rc=$?
check "target_session_attrs=read-write refuses it" test $rc -ne 0
PGOPTIONS="-c default_transaction_read_only=off" \
    $PSQL -c "ALTER SYSTEM RESET default_transaction_read_only" \
    -c "SELECT pg_reload_conf()" >/dev/null
check "writes again: /health 200" wait_for 5 health_is 200

# stored: each MessageId in the database and how many times, into
# $T/stored.
stored() {
    $PSQL -F ' ' -c "SELECT body::jsonb ->> 'MessageId', count(*)
        FROM slhook_event GROUP BY 1" >"$T/stored"
}

# tally [ARGS...]: hosts_client.py check on what is stored now; its "key
# value" lines in $T/tally, printed.
tally() {
    stored
    $HC check --ok-log "$T/ok.log" --spans "$T/spans.jsonl" \
        --stored "$T/stored" --kills "$T/kills" "$@" >"$T/tally"
    sed 's/^/    /' "$T/tally"
}

val() {
    sed -n "s/^$1 //p" "$T/tally"
}

# pending: the delivery rows not delivered (pending or dead).
pending() {
    $PSQL -c "SELECT count(*) FROM slhook_delivery WHERE state <> 1"
}

none_pending() {
    [ "$(pending)" = 0 ]
}

# drained: every delivery row delivered (none pending, none dead), within
# 90 s.
drained() {
    wait_for 90 none_pending
}

# ---- the CGI leg ----
# cgi_leg_probe: one event through /cgi/slhook must be answered 200 and be
# in the database; then the CGI takes part in what follows (CGI_OK=1).
cgi_leg_probe() {
    events "$T/cgi-probe.json" cgi-probe 1
    code=$(curl -s -o "$T/cgi-probe.out" -w '%{http_code}' \
        -H 'Content-Type: application/json' \
        --data-binary "@$T/cgi-probe.json" "$URL/cgi/slhook")
    n=$($PSQL -c "SELECT count(*) FROM slhook_event
        WHERE body::jsonb ->> 'MessageId' = 'cgi-probe-0'")
    if [ "$code" = 200 ] && [ "$n" = 1 ]; then
        ok "the CGI leg: slhook.cgi stores into the PostgreSQL spool"
        CGI_OK=1
        return
    fi
    nok "the CGI leg: slhook.cgi stores into the PostgreSQL spool (answer $code, stored $n times: $(tail -n 1 "$T/cgi.log" 2>/dev/null)); it is left out of the rest"
}
cgi_leg_probe

# ---- dedup: one event at both hosts at once ----
cgi_flag=
[ "$CGI_OK" = 1 ] && cgi_flag=--cgi
$HC both --url "$URL" --template "$FIX/delivered-2.json" --tag dd \
    --events 30 $cgi_flag --give-up 10 --ok-log "$T/ok.log" >"$T/both.out"
check "dedup: every post answered 200 ($(cat "$T/both.out"))" \
    test "$(grep -c '^dd-' "$T/ok.log")" -eq $((30 * (2 + CGI_OK)))
check "dedup: delivered" drained
tally --tag dd
expect "dedup: 30 events acknowledged" 30 "$(val acked)"
expect "dedup: each stored once" 0 "$(val stored_twice)"
expect "dedup: none missing from the database" 0 "$(val missing_stored)"
expect "dedup: each relayed exactly once" 1 "$(val once_only)"

# ---- SIGKILL one host under load, four times ----

# held: the rows pending and claimed by $tokens; holds: any.
held() {
    $PSQL -c "SELECT count(*) FROM slhook_delivery
        WHERE state = 0 AND owner IN ($tokens)"
}

holds() {
    [ "$(held)" -gt 0 ]
}

# take_over NAME: NAME is killed while it holds claimed rows; how long
# until no row is owned by its tokens (the survivor took them back) is
# printed, and must be within TAKEOVER_MAX seconds. Then NAME again.
take_over() {
    pid=$(pid_of "$1")
    tokens=$($PSQL -c "SELECT coalesce(string_agg(token::text, ','), '0')
        FROM slhook_owner WHERE client_pid = $pid")
    # What it holds just before: a survivor may take it back within
    # milliseconds of the kill, before a query after it would count.
    wait_for 5 holds
    held=$(held)
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    t0=$(now)
    echo "$1 $t0" >>"$T/kills"
    i=0
    while [ "$(held)" -gt 0 ] && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    took=$(secs_since "$t0")
    left=$(held)
    echo "    kill $k: host $1 (tokens $tokens) held $held claimed rows;" \
        "none left after $took s"
    if [ "$held" -gt 0 ]; then HELD=$((HELD + 1)); fi
    check "kill $k: host $1's $held claims taken over within $TAKEOVER_MAX s ($took s)" \
        python3 -c "import sys; sys.exit(not ($left == 0 and $took <= $TAKEOVER_MAX))"
    host_up "$1"
    check "kill $k: host $1 answers again" fcgi_ready "$T/$1.sock"
}

# load_bg TAG [RATE]: the load in the background until $T/stop-TAG exists,
# each client starting RATE events a second at most (20); $LDPID.
load_bg() {
    cgi_every=0
    [ "$CGI_OK" = 1 ] && cgi_every=10
    # shellcheck disable=SC2086
    $HC load --url "$URL" $TEMPLATES --tag "$1" --clients 8 --rate "${2:-20}" \
        --seconds 60 --stop-file "$T/stop-$1" --dup-every 7 \
        --cgi-every "$cgi_every" --ok-log "$T/ok.log" \
        --answers "$T/answers" >"$T/load-$1.out" &
    LDPID=$!
    track $LDPID
}

# load_end TAG WHAT: stops the load TAG; checks that every event it posted
# was answered 200 in the end.
load_end() {
    touch "$T/stop-$1"
    wait "$LDPID"
    rc=$?
    check "$2: every event answered 200 in the end ($(cat "$T/load-$1.out"))" \
        test $rc -eq 0
}

# each_host_twice PAUSE ACTION: ACTION a, b, a and b, PAUSE s apart; k
# counts them, for ACTION's messages.
each_host_twice() {
    k=1
    for h in a b a b; do
        sleep "$1"
        "$2" "$h"
        k=$((k + 1))
    done
}

# Slow posts: a host always holds a batch of claims while it is killed.
delay 0.3
load_bg kl
HELD=0
each_host_twice 1.5 take_over
load_end kl kills
check "kills: $KILLS kills made while the host held claims (held: $HELD)" \
    test "$HELD" -eq "$KILLS"

# ---- a deliverer's connection dropped under load ----
# The server ends the connection that holds a host's owner lock
# (pg_terminate_backend, as a network cut or an idle timeout would): the
# host lives on and goes on posting what it claimed, so the other host must
# not take its claims back meanwhile: its owner is still there 2 s later.
# Four drops, a, b, a, b, under a light load and 1 s posts, so that the
# other host, idle, would post what it took back at once, while the first
# one still does.

# drop_conn NAME: ends the connection holding NAME's owner lock (advisory
# lock SLH_PG_LOCK_CLASS = 5458760, token) while NAME holds claims.
drop_conn() {
    tokens=$($PSQL -c "SELECT coalesce(string_agg(token::text, ','), '0')
        FROM slhook_owner WHERE client_pid = $(pid_of "$1")")
    if [ "$tokens" = 0 ]; then
        nok "drop $k: host $1, alive, has no owner: taken back at a drop before"
        return
    fi
    wait_for 5 holds
    held=$(held)
    locks_sql="SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
        AND classid = 5458760 AND objsubid = 2 AND granted
        AND objid::bigint IN ($tokens)"
    n=$($PSQL -c "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
        WHERE locktype = 'advisory' AND classid = 5458760 AND objsubid = 2
        AND objid::bigint IN ($tokens) AND granted")
    if [ "$n" = 1 ] && [ "$held" -gt 0 ]; then DROPPED=$((DROPPED + 1)); fi
    sleep 2
    owners=$($PSQL -c "SELECT count(*) FROM slhook_owner
        WHERE token IN ($tokens)")
    locks=$($PSQL -c "$locks_sql")
    echo "    drop $k: host $1's lock connection ended ($n) holding $held" \
        "claims; 2 s later its locks: $locks, owner rows: $owners," \
        "claims: $(held)"
    expect "drop $k: host $1 connects again and holds its lock" 1 "$locks"
    expect "drop $k: host $1 keeps its owner while it lives" 1 "$owners"
}

delay 0.01
check "before the drops: drained" drained
delay 1
load_bg dr 0.8
DROPPED=0
each_host_twice 1 drop_conn
load_end dr drops
check "drops: $DROPPED of 4 connections ended while their host held claims" \
    test "$DROPPED" -eq 4
delay 0.01
check "drops: drained" drained
tally --tag dr
expect "drops: every event answered 200 reached the destination" 0 \
    "$(val not_relayed)"
expect "drops: no webhook-id posted twice at the same time" 0 \
    "$(val overlaps)"

# ---- PostgreSQL restarted under load ----
delay 0.01
check "before the restart: drained" drained
# Slow posts from here on: attempts in flight while the server goes away.
delay 0.5
pids="$(pid_of a) $(pid_of b)"
load_bg pg
sleep 2
pg_stop
t_down=$(now)
sleep 2
t_up=$(now)
pg_up
t_back=$(now)
sleep 3
load_end pg restart
$HC window --answers "$T/answers" --from "$t_down" --to "$t_up" \
    --after "$t_back" >"$T/tally"
sed 's/^/    /' "$T/tally"
check "restart: answers while it was down ($(val window_answers))" \
    test "$(val window_answers)" -gt 0
expect "restart: no 200 while it was down" 0 "$(val window_200)"
expect "restart: every answer while it was down a 503" \
    "$(val window_answers)" "$(val window_503)"
expect "restart: each 503 with Retry-After" 0 \
    "$(val window_503_no_retry_after)"
check "restart: 200s again after it ($(val after_200))" \
    test "$(val after_200)" -gt 0
# shellcheck disable=SC2086
check "restart: the same two slhook.fcgi processes, still running" \
    kill -0 $pids

# ---- everything acknowledged is there, once, and reached the destination ----
# Claims a deliverer gave up while the server was down must not wait for
# their lease (64 s here, 2 minutes with the default timeout).
delay 0.01
drained
took=$(secs_since "$t_back")
expect "every delivery row delivered, none dead" 0 "$(pending)"
check "every row delivered within $LATE_MAX s of the restart, no claim left to its lease ($took s)" \
    python3 -c "import sys; sys.exit(not $took <= $LATE_MAX)"
tally
check "200s counted ($(val acked))" test "$(val acked)" -gt 0
expect "every event answered 200 is in the database" 0 "$(val missing_stored)"
expect "no event stored twice" 0 "$(val stored_twice)"
expect "every event answered 200 reached the destination" 0 \
    "$(val not_relayed)"
expect "no webhook-id posted twice at the same time" 0 "$(val overlaps)"

stop_pid "$LPID"
for h in a b; do
    check "host $h stops cleanly" stop_pid "$(pid_of $h)"
done
if grep -E 'Sanitizer|runtime error' "$T"/a.log "$T"/b.log >/dev/null; then
    nok "no sanitizer report in the hosts' logs"
fi
pg_stop
finish

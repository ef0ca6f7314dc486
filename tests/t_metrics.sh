#!/bin/sh
# t_metrics.sh: the Prometheus exposition passes `promtool check metrics`
# (Debian's prometheus package; missing, it is a failure, not a skip). The
# spool's part as `slhook status --prometheus` prints it: with no spool
# yet, and after slhook.cgi stored the fixtures and `slhook deliver --once`
# left a file destination delivered, a url one dead or retrying behind an
# open breaker, and one no longer configured; with a kick note too. And
# the whole of it, the process's counters and histograms included, as
# tests/test_metrics writes it through slh_metrics_write() (a destination
# label with a quote, a backslash and a newline among them).
. "$(dirname "$0")/lib.sh"
lib_init metrics
need "$B/slhook" "$B/slhook.cgi" "$B/tests/test_metrics" promtool

# promcheck DESC FILE: promtool finds nothing to say about FILE.
promcheck() {
    if promtool check metrics <"$2" >"$T/promtool.out" 2>&1; then
        ok "$1"
    else
        nok "$1: $(head -n 5 "$T/promtool.out" | tr '\n' ' ')"
    fi
}

# families FILE: how many metric families FILE declares (TYPE lines).
families() {
    grep -c '^# TYPE slhook_' "$1"
}

write_conf() { # FILE DESTINATIONS...: a config on $T/spool
    f=$1
    shift
    printf '[receiver]\nsecret_key = %s\nspool = %s\n' "$SECRET" "$T/spool" >"$f"
    for d in "$@"; do printf '%b\n' "$d" >>"$f"; done
}

ALL=$T/all.conf
CONF=$T/slhook.conf
write_conf "$ALL" \
    '[destination gone]\nurl = http://127.0.0.1:9/gone\nevents = Failed\nmax_age = 1' \
    '[destination down]\nurl = http://127.0.0.1:9/down\nbreaker = 2\ntimeout = 1' \
    "[destination file]\nfile = $T/events.jsonl\nevents = Tracking"
write_conf "$CONF" \
    '[destination down]\nurl = http://127.0.0.1:9/down\nbreaker = 2\ntimeout = 1' \
    "[destination file]\nfile = $T/events.jsonl\nevents = Tracking"

# No spool yet: the configured destinations with zeros.
"$B/slhook" -c "$CONF" status --prometheus >"$T/empty.prom" 2>/dev/null
expect "status --prometheus, no spool: exit 0" 0 $?
check "no spool: zeros for both destinations" \
    grep -qx 'slhook_deliveries{destination="down",state="pending"} 0' \
    "$T/empty.prom"
promcheck "promtool: status --prometheus with no spool" "$T/empty.prom"

# The fixtures stored (nobody delivering meanwhile), then one pass.
hold_kick_lock "$T/spool"
n=0
for f in "$FIX"/*.json; do
    "$B/slhook.cgi" -c "$ALL" <"$f" 2>/dev/null | grep -q '^Status: 200' &&
        n=$((n + 1))
done
check "the fixtures stored ($n)" test "$n" -gt 10
sleep 1.1 # past gone's max_age: its rows die at their first failure
"$B/slhook" -c "$ALL" deliver --once >/dev/null 2>&1
printf '1764000000 could not start: "a note" \\ here\n' >"$T/spool/deliver.error"
"$B/slhook" -c "$CONF" status --prometheus >"$T/status.prom" 2>/dev/null
expect "status --prometheus: exit 0" 0 $?
check "the file destination delivered" \
    grep -qE '^slhook_deliveries\{destination="file",state="delivered"\} [1-9]' \
    "$T/status.prom"
check "down's breaker open" \
    grep -qx 'slhook_breaker_open{destination="down"} 1' "$T/status.prom"
check "gone: dead letters, no longer configured" sh -c "
    grep -qE '^slhook_deliveries\{destination=\"gone\",state=\"dead\"\} [1-9]' '$T/status.prom' &&
    grep -qx 'slhook_destination_configured{destination=\"gone\"} 0' '$T/status.prom'"
check "the kick note's time" grep -qx \
    'slhook_deliver_start_failure_timestamp_seconds 1764000000' "$T/status.prom"
expect "status --prometheus: 8 families" 8 "$(families "$T/status.prom")"
promcheck "promtool: status --prometheus after deliveries" "$T/status.prom"

# The whole exposition, every counter bumped.
"$B/tests/test_metrics" "$T/all.prom" >"$T/test_metrics.out" 2>&1
expect "test_metrics wrote the exposition" 0 $?
check "it holds the requests by status" \
    grep -q '^# TYPE slhook_requests_total counter$' "$T/all.prom"
check "it holds the commit histogram" \
    grep -q '^# TYPE slhook_commit_duration_seconds histogram$' "$T/all.prom"
check "a destination's label escaped" grep -qF \
    'slhook_delivery_latency_seconds_count{destination="we\"ird\\dest\nx"} 2' \
    "$T/all.prom"
expect "the whole exposition: 14 families" 14 "$(families "$T/all.prom")"
promcheck "promtool: the whole exposition" "$T/all.prom"

# promtool itself fails what it should: a counter without _total.
printf '# HELP slhook_x x\n# TYPE slhook_x counter\nslhook_x 1\n' >"$T/bad.prom"
check "promtool fails a counter without _total" \
    sh -c "! promtool check metrics <'$T/bad.prom' >/dev/null 2>&1"

finish

#!/bin/sh
# t_spool_safety.sh: who may make, open and trust a spool, and what check
# and status say about it (issue 14, items 3, 7, 13, 14, 15).
# - status, check and retry on a missing spool make nothing;
# - root from a shell makes no spool (slhook.cgi, deliver), and is refused
#   another user's spool (status, slhook.cgi, deliver, retry), told whose it
#   is and how to run as that user, leaving nothing of root's in it;
# - a world-writable spool is refused, path, owner and mode named;
# - a writer stopped with the writers' lock makes a request wait about 5 s
#   and answer 503 with Retry-After, not wait as long as it holds the lock;
# - check masks URL credentials, reports a damaged database, warns of no
#   destination and fails a file destination without its directory;
# - status --json prints valid JSON for a last error cut mid-character.
# Runs as root, and as nobody (runuser).
. "$(dirname "$0")/lib.sh"
lib_init spoolsafe
need sqlite3 python3 runuser flock "$B/slhook" "$B/slhook.cgi"
[ "$(id -u)" -eq 0 ] || abort "needs root"

# nobody must reach the spools under $T.
chmod 0711 "$T"

# conf FILE SPOOL [DESTINATION LINES]
conf() {
    printf '[receiver]\nsecret_key = %s\nspool = %s\n%s\n' "$SECRET" "$2" \
        "${3:-}" >"$1"
    chmod 0644 "$1"
}

# pipe CONF [USER]: `slhook sample Delivered | slhook.cgi` from a shell;
# $RC, $T/out, $T/err.
pipe() {
    if [ -n "${2:-}" ]; then
        runuser -u "$2" -- sh -c "'$B/slhook' -c '$1' sample Delivered |
            '$B/slhook.cgi' -c '$1'" >"$T/out" 2>"$T/err"
    else
        "$B/slhook" -c "$1" sample Delivered | "$B/slhook.cgi" -c "$1" \
            >"$T/out" 2>"$T/err"
    fi
    RC=$?
}

# cli CONF ARGS...: slhook as root; $RC, $T/out, $T/err.
cli() {
    c=$1
    shift
    "$B/slhook" -c "$c" "$@" >"$T/out" 2>"$T/err"
    RC=$?
}

json_ok() {
    python3 -m json.tool "$1" >/dev/null
}

DEST='[destination a]
url = http://127.0.0.1:9/a'

# ---- 3. reading makes nothing; root from a shell makes no spool ----
conf "$T/missing.conf" "$T/missing" "$DEST"
cli "$T/missing.conf" status
expect "status, no spool: exit 0" 0 "$RC"
check "status, no spool: says so" grep -q "no spool yet at $T/missing" "$T/err"
check "status, no spool: zero figures" \
    grep -Eq '^a +0 +0 +0 +0 +- +- +-$' "$T/out"
cli "$T/missing.conf" status --json
check "status --json, no spool: valid JSON" json_ok "$T/out"
cli "$T/missing.conf" status --prometheus
expect "status --prometheus, no spool: exit 0" 0 "$RC"
cli "$T/missing.conf" check
expect "check, no spool: exit 0" 0 "$RC"
cli "$T/missing.conf" retry a
expect "retry, no spool: exit 0" 0 "$RC"
check "retry, no spool: says so" grep -q "no spool yet" "$T/out"
check "status, check, retry made no spool" test ! -e "$T/missing"
runuser -u nobody -- "$B/slhook" -c "$T/missing.conf" status >/dev/null 2>&1
check "status as nobody made no spool either" test ! -e "$T/missing"

pipe "$T/missing.conf"
expect "root's pipe test, no spool: exit 1" 1 "$RC"
check "... answered 503" grep -q '^Status: 503' "$T/out"
check "... says root makes none, and what to do" \
    grep -q "root makes none from a shell.*runuser -u www-data -- slhook.cgi" \
    "$T/err"
cli "$T/missing.conf" deliver --once
expect "root's deliver, no spool: exit 1" 1 "$RC"
check "... says why" grep -q "no spool yet at $T/missing, and root makes none" \
    "$T/err"
check "root made no spool" test ! -e "$T/missing"
mkdir -m 0700 "$T/missing"
pipe "$T/missing.conf"
expect "root's pipe test in root's own spool directory: stored" 0 "$RC"

# ---- 3 and 13. another user's spool ----
conf "$T/theirs.conf" "$T/theirs" "$DEST"
install -d -m 0700 -o nobody "$T/theirs"
pipe "$T/theirs.conf" nobody
expect "nobody's pipe test makes nobody's spool" 0 "$RC"
check "... owned by nobody" test "$(stat -c %U "$T/theirs/slhook.db")" = nobody
refused() {
    check "$1: refused" test "$RC" -ne 0
    check "$1: says whose spool, and to run as that user" \
        grep -q "spool $T/theirs is owned by nobody (uid 65534, mode 0700), not by uid 0; run as that user: runuser -u nobody" \
        "$T/err"
}
cli "$T/theirs.conf" status
refused "root's status"
pipe "$T/theirs.conf"
refused "root's pipe test"
check "... answered 503" grep -q '^Status: 503' "$T/out"
cli "$T/theirs.conf" deliver --once
refused "root's deliver"
cli "$T/theirs.conf" retry a
refused "root's retry"
expect "nothing of root's left in nobody's spool" "" \
    "$(find "$T/theirs" -uid 0)"
cli "$T/theirs.conf" check
expect "root's check of nobody's spool: exit 0" 0 "$RC"
check "... warns that it did not open it, and how to check" \
    grep -q "^warning: spool $T/theirs is uid 65534's: its database is not checked as root; check as that user: runuser -u nobody -- slhook check" \
    "$T/out"
expect "nothing of root's left in nobody's spool" "" \
    "$(find "$T/theirs" -uid 0)"
runuser -u nobody -- "$B/slhook" -c "$T/theirs.conf" status >"$T/out" 2>&1
check "nobody's status works" grep -Eq '^a +1 ' "$T/out"
runuser -u nobody -- "$B/slhook" -c "$T/theirs.conf" check >"$T/out" 2>&1
check "nobody's check finds the database sound" grep -q "slhook.db: sound" \
    "$T/out"

# ---- 13. a world-writable spool ----
mkdir -m 1777 "$T/wide"
chmod 1777 "$T/wide"
conf "$T/wide.conf" "$T/wide" "$DEST"
cgi "$T/wide.conf" "$FIX/delivered-1.json"
expect "a world-writable spool: 503" 503 "$STATUS"
check "... the log names path, owner and mode" \
    grep -q "spool $T/wide is writable by others (owner root, uid 0, mode 1777)" \
    "$T/cgi.log"
check "... nothing made in it" test -z "$(ls -A "$T/wide")"
cli "$T/wide.conf" deliver --once
check "deliver refuses it" sh -c "[ $RC -ne 0 ] &&
    grep -q 'spool $T/wide is writable by others' '$T/err'"
cli "$T/wide.conf" check
check "check reports it as an error" sh -c "[ $RC -eq 1 ] &&
    grep -q '^error: spool $T/wide is writable by others' '$T/out'"

# ---- 7. a writer stopped with the writers' lock ----
conf "$T/lock.conf" "$T/lock"
cgi "$T/lock.conf" "$FIX/delivered-1.json"
expect "lock: a first request stores" 200 "$STATUS"
(flock 9 && exec sleep 20) 9>>"$T/lock/write.lock" &
holder=$!
track "$holder"
sleep 0.5
t0=$(date +%s%N)
cgi "$T/lock.conf" "$FIX/tracking-3.json"
ms=$((($(date +%s%N) - t0) / 1000000))
kill "$holder" 2>/dev/null
echo "writers' lock held 20 s: answered $STATUS after $ms ms"
expect "lock held 20 s: 503" 503 "$STATUS"
check "... with Retry-After" has_retry_after
check "... after about the 5 s bound, not 20 s: $ms ms" \
    test "$ms" -ge 4500 -a "$ms" -lt 12000

# ---- 14. check ----
conf "$T/creds.conf" "$T/creds" '[destination crm]
url = https://bob:Pa55w0rdXYZ@127.0.0.1:8443/hook?token=T0kenABC&sig=Sig999#Frag777
[destination plain]
url = http://127.0.0.1:9/plain'
cli "$T/creds.conf" check
cat "$T/out" "$T/err" >"$T/check.out"
check "check masks the URL" \
    grep -q "destination crm: https://\*\*\*@127.0.0.1:8443/hook?token=\*\*\*&sig=\*\*\*$" \
    "$T/check.out"
check "... leaves a plain one as it is" \
    grep -q "destination plain: http://127.0.0.1:9/plain$" "$T/check.out"
for s in bob Pa55w0rdXYZ T0kenABC Sig999 Frag777; do
    check "check never prints '$s'" sh -c "! grep -q '$s' '$T/check.out'"
done

conf "$T/none.conf" "$T/none"
cli "$T/none.conf" check
expect "check, no destination: exit 0" 0 "$RC"
check "... warns" grep -q "^warning: no destination: events would be stored but relayed nowhere" "$T/out"

conf "$T/nodir.conf" "$T/nodir" "[destination f]
file = $T/no/such/dir/events.jsonl"
cli "$T/nodir.conf" check
expect "check, a file destination without its directory: exit 1" 1 "$RC"
check "... says so" grep -q "^error: destination f: $T/no/such/dir/events.jsonl cannot be written" "$T/out"

# A damaged database: every POST would be 503 "malformed".
conf "$T/bad.conf" "$T/bad" "max_events = 300"
events "$T/many.json" bad 200 "$FIX/delivered-1.json" 300
cgi "$T/bad.conf" "$T/many.json"
expect "damaged: stored first" 200 "$STATUS"
cli "$T/bad.conf" check
check "check, a sound database: ok" sh -c "[ $RC -eq 0 ] &&
    grep -q 'slhook.db: sound' '$T/out'"
size=$(stat -c %s "$T/bad/slhook.db")
head -c 8192 /dev/zero | tr '\0' 'Z' |
    dd of="$T/bad/slhook.db" bs=4096 seek=$((size / 4096 / 2)) conv=notrunc \
        2>/dev/null
cli "$T/bad.conf" check
expect "check, a damaged database: exit 1" 1 "$RC"
check "... says so" grep -q "^error: spool $T/bad/slhook.db: damaged: .*Page [0-9]" "$T/out"

# ---- 15. a last error cut mid-character ----
# The kick lock held: no deliverer records an error of its own over it.
conf "$T/utf.conf" "$T/utf" "$DEST"
mkdir -m 0700 "$T/utf"
(flock 9 && exec sleep 600) 9>>"$T/utf/deliver.lock" &
track $!
sleep 0.5
cgi "$T/utf.conf" "$FIX/delivered-1.json"
sql "$T/utf/slhook.db" "UPDATE delivery SET attempts = 1, last_status = 500,
    last_error = CAST(X'48545450203530303A20C3A9C3' AS TEXT)"
cli "$T/utf.conf" status --json
expect "status --json, a cut character stored: exit 0" 0 "$RC"
check "... valid JSON" json_ok "$T/out"
check "... the text kept up to the cut" grep -q '"last_error": "HTTP 500: é"' "$T/out"

finish

#!/bin/sh
# t_disk.sh: the spool's disk failing under the real front ends. For each
# of: the spool's file system full (a small tmpfs), gone read-only under a
# running slhook.fcgi (a loop-mounted ext4 with errors=remount-ro, made to
# fail through /sys/fs/ext4/DEV/trigger_fs_error; the kernel refuses a
# read-only remount while SQLite holds the files open for writing), and the
# spool directory removed while slhook.fcgi runs: slhook.fcgi (FastCGI) and
# slhook.cgi (CGI variables, body on stdin) answer 503 with Retry-After,
# never 200 for an event that is not stored (the spool is read afterwards),
# and once the disk is back the next requests get 200, are stored, and are
# relayed by the responder's own deliverer. Needs root (mount, losetup).
. "$(dirname "$0")/lib.sh"
lib_init disk
need python3 sqlite3 curl mkfs.ext4 e2fsck losetup "$B/slhook.fcgi" \
    "$B/slhook.cgi" "$B/slhook"

# conf FILE SPOOL [URL]: a config with a file destination outside the
# spool's file system, and an HTTP one at URL if given.
conf() {
    cat >"$1" <<EOF
[receiver]
secret_key = $SECRET
max_body = 262144
spool = $2

[destination file]
file = $T/$(basename "$1" .conf).jsonl
EOF
    [ -z "${3:-}" ] || printf '\n[destination late]\nurl = %s\n' "$3" >>"$1"
}

# send WHO ADDR|CONF BODY: one request through the FastCGI responder at
# ADDR or slhook.cgi with CONF; $STATUS, $ANSWER.
send() {
    if [ "$1" = fcgi ]; then post "$2" --body "$3"; else cgi "$2" "$3"; fi
}

# refused WHAT WHO ADDR|CONF BODY: the request must get 503 with Retry-After.
refused() {
    send "$2" "$3" "$4"
    expect "$1: $2 answers 503" 503 "$STATUS"
    check "$1: $2's 503 has Retry-After" has_retry_after
}

# accepted WHAT WHO ADDR|CONF BODY: the request must get 200.
accepted() {
    send "$2" "$3" "$4"
    expect "$1: $2 answers 200" 200 "$STATUS"
}

# responder WHAT: slhook.fcgi with $T/WHAT.conf on a free port, $ADDR, its
# pid $FPID; one check that it is up.
responder() {
    ADDR=127.0.0.1:$(free_port)
    start_fcgi "$T/$1-fcgi.log" "$ADDR" -c "$T/$1.conf"
    check "$1: responder up" fcgi_ready "$ADDR"
}

# responder_stop WHAT: SIGTERM to it; one check that it exits 0.
responder_stop() {
    stop_pid "$FPID"
    expect "$1: responder stops on SIGTERM" 0 $?
}

# relayed JSONL PREFIX N: the responder's deliverer appended N events whose
# MessageId begins with PREFIX.
relayed() {
    [ "$(grep -c "\"MessageId\":\"$2" "$1" 2>/dev/null)" -ge "$3" ]
}

# ---- 1. the spool's file system full ----
FULL=$T/full
mount_tmpfs "$FULL" 2m || abort "mount tmpfs (needs root)"
# "late" has nobody listening until the disk has room again: its rows are
# retried while the disk is full, so the deliverer meets the full disk too.
LATE_PORT=$(free_port)
conf "$T/full.conf" "$FULL/spool" "http://127.0.0.1:$LATE_PORT/late"
responder full
events "$T/f-ok.json" full-ok 2
accepted "full: room left" fcgi "$ADDR" "$T/f-ok.json"
wait_for 5 relayed "$T/full.jsonl" full-ok 2
dd if=/dev/zero of="$FULL/filler" bs=4k 2>/dev/null
check "full: the tmpfs is full" test "$(df --output=avail "$FULL" | tail -n 1)" -eq 0
i=0
while [ $i -lt 4 ]; do
    events "$T/f-big$i.json" "full-big$i" 3 "$FIX/failed-1.json" 30000
    refused "full" fcgi "$ADDR" "$T/f-big$i.json"
    i=$((i + 1))
done
refused "full" cgi "$T/full.conf" "$T/f-big0.json"
events "$T/f-cgi.json" full-cgi 2 "$FIX/failed-1.json" 30000
refused "full" cgi "$T/full.conf" "$T/f-cgi.json"
DB=$FULL/spool/slhook.db
expect "full: the refused events are not stored" 0 \
    "$(sql "$DB" "SELECT count(*) FROM event WHERE json_extract(body, '\$.MessageId') LIKE 'full-big%' OR json_extract(body, '\$.MessageId') LIKE 'full-cgi%'")"
expect "full: the accepted ones are" 2 "$(stored "$DB" full-ok)"
sleep 3 # the deliverer's retries of "late" meet the full disk
rm -f "$FULL/filler"
start_receiver PORT "$T/late.log" --port "$LATE_PORT"
i=0
while [ $i -lt 4 ]; do
    accepted "full, room again: SocketLabs' retry" fcgi "$ADDR" "$T/f-big$i.json"
    expect "full, room again: stored" 3 "$(stored "$DB" "full-big$i")"
    i=$((i + 1))
done
# An error ends a delivery run; the responder starts another 10 s later.
# (Checked before any slhook.cgi stores an event: it would start a
# deliverer of its own.)
wait_for 30 relayed "$T/full.jsonl" full-big 12
check "full, room again: relayed by the responder" test $? -eq 0
wait_for 30 sh -c "[ \$(grep -c full-ok '$T/late.log') -ge 2 ]"
check "full, room again: the rows retried while full are delivered" test $? -eq 0
grep 'delivery stopped' "$T/full-fcgi.log" | head -n 1
accepted "full, room again" cgi "$T/full.conf" "$T/f-cgi.json"
expect "full, room again: cgi's stored" 2 "$(stored "$DB" full-cgi)"
responder_stop full
umount "$FULL" && untrack_mount "$FULL"

# ---- 2. the file system goes read-only under the running responder ----
IMG=$T/ext4.img
RO=$T/ro
mkdir -p "$RO"
truncate -s 32M "$IMG" && mkfs.ext4 -q -F "$IMG" >/dev/null 2>&1 ||
    abort "mkfs.ext4"
LOOP1=$(losetup -f --show "$IMG") || abort "losetup (needs root and loop devices)"
track_loop "$LOOP1"
mount -o errors=remount-ro "$LOOP1" "$RO" || abort "mount $LOOP1"
track_mount "$RO"
conf "$T/ro.conf" "$RO/spool"
DB=$RO/spool/slhook.db
responder ro
events "$T/r-ok.json" ro-ok 1
accepted "ro: still writable" fcgi "$ADDR" "$T/r-ok.json"
wait_for 10 relayed "$T/ro.jsonl" ro-ok 1
check "ro: relayed before the failure" test $? -eq 0
dev=$(basename "$(readlink "/sys/dev/block/$(mountpoint -d "$RO")")")
echo "slhook t_disk" >"/sys/fs/ext4/$dev/trigger_fs_error"
check "ro: the file system went read-only" \
    sh -c "! touch '$RO/probe' 2>/dev/null"
events "$T/r-fcgi.json" ro-fcgi 3
events "$T/r-cgi.json" ro-cgi 1
refused "ro" fcgi "$ADDR" "$T/r-fcgi.json"
refused "ro" fcgi "$ADDR" "$T/r-fcgi.json"
refused "ro" cgi "$T/ro.conf" "$T/r-cgi.json"
# What an operator does: unmount (lazily: the responder holds the files),
# repair, mount again; the responder runs on.
umount -l "$RO"
e2fsck -fy "$IMG" >/dev/null 2>&1
LOOP2=$(losetup -f --show "$IMG") || abort "losetup again"
track_loop "$LOOP2"
mount -o errors=remount-ro "$LOOP2" "$RO" || abort "mount $LOOP2"
check "ro: writable again" touch "$RO/probe"
expect "ro: the refused events were not stored" 0 \
    "$(sql "$DB" "SELECT count(*) FROM event WHERE json_extract(body, '\$.MessageId') NOT LIKE 'ro-ok%'")"
expect "ro: the accepted one survived" 1 "$(stored "$DB" ro-ok)"
# The first request may still meet the old files (503) and move on to the
# new mount; SocketLabs retries, and so does this.
n=0
STATUS=
while [ $n -lt 3 ] && [ "$STATUS" != 200 ]; do
    send fcgi "$ADDR" "$T/r-fcgi.json"
    [ "$STATUS" = 200 ] || [ "$STATUS" = 503 ] || break
    n=$((n + 1))
done
expect "ro, back: fcgi answers 200 (attempt $n)" 200 "$STATUS"
expect "ro, back: stored" 3 "$(stored "$DB" ro-fcgi)"
wait_for 10 relayed "$T/ro.jsonl" ro-fcgi 3
check "ro, back: relayed by the responder from the new mount" test $? -eq 0
accepted "ro, back" cgi "$T/ro.conf" "$T/r-cgi.json"
expect "ro, back: cgi's stored" 1 "$(stored "$DB" ro-cgi)"
responder_stop ro
umount "$RO" && untrack_mount "$RO"

# A read-only file system before anything opened the spool: slhook.cgi
# (a fresh process per request) answers 503 from the start.
# No destination: slhook.cgi then starts no deliverer, which would hold
# the files open and make the kernel refuse the read-only remount.
RT=$T/rotmp
mount_tmpfs "$RT" 4m || abort "mount tmpfs"
printf '[receiver]\nsecret_key = %s\nspool = %s\n' "$SECRET" "$RT/spool" \
    >"$T/rotmp.conf"
events "$T/t-ok.json" rotmp-ok 1
events "$T/t-no.json" rotmp-no 1
accepted "ro tmpfs: writable" cgi "$T/rotmp.conf" "$T/t-ok.json"
mount -o remount,ro "$RT" || nok "remount ro"
refused "ro tmpfs" cgi "$T/rotmp.conf" "$T/t-no.json"
mount -o remount,rw "$RT" || nok "remount rw"
expect "ro tmpfs: the refused event is not stored" 0 \
    "$(stored "$RT/spool/slhook.db" rotmp-no)"
accepted "ro tmpfs, back" cgi "$T/rotmp.conf" "$T/t-no.json"
expect "ro tmpfs, back: stored" 1 "$(stored "$RT/spool/slhook.db" rotmp-no)"

# ---- 3. the spool directory removed while the responder runs ----
SP=$T/rm/spool
mkdir -p "$T/rm"
conf "$T/rm.conf" "$SP"
DB=$SP/slhook.db
responder rm
events "$T/m-ok.json" rm-ok 2
accepted "rm: before" fcgi "$ADDR" "$T/m-ok.json"
rm -rf "$SP"
events "$T/m-1.json" rm-one 2
send fcgi "$ADDR" "$T/m-1.json"
first=$STATUS
case $first in
503)
    ok "rm: the request after the removal is refused"
    check "rm: its 503 has Retry-After" has_retry_after
    check "rm: the refusal created nothing" test ! -e "$SP"
    accepted "rm: SocketLabs' retry" fcgi "$ADDR" "$T/m-1.json"
    ;;
200) ok "rm: the request after the removal is stored anew" ;;
*) nok "rm: request after the removal: status '$first'" ;;
esac
expect "rm: stored in the new spool" 2 "$(stored "$DB" rm-one)"
expect "rm: the new spool holds nothing else" 2 \
    "$(sql "$DB" 'SELECT count(*) FROM event')"
events "$T/m-2.json" rm-two 3
accepted "rm: and on" fcgi "$ADDR" "$T/m-2.json"
expect "rm: stored" 3 "$(stored "$DB" rm-two)"
wait_for 10 relayed "$T/rm.jsonl" rm-two 3
check "rm: the responder's deliverer follows the new spool" test $? -eq 0
check "rm: and relays every event of it" relayed "$T/rm.jsonl" rm-one 2
events "$T/m-3.json" rm-cgi 1
accepted "rm: cgi" cgi "$T/rm.conf" "$T/m-3.json"
expect "rm: cgi's stored" 1 "$(stored "$DB" rm-cgi)"
responder_stop rm

check "no sanitizer report" sh -c "! grep -qE 'Sanitizer|runtime error' '$T'/*.log"
finish

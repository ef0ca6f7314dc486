# shellcheck shell=bash
# bench/timing.sh: the timing helpers of bench/bigspool.sh and
# bench/bigspool_pg.sh, sourced by both. RUNS: how many runs timed()
# makes; TIMED_WIDTH: its label column (44).

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# secs CMD...: wall seconds CMD took, to the millisecond.
secs() {
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e9 }'
}
# timed LABEL CMD...: RUNS runs, their times on one line.
timed() {
    local label=$1 line=""
    shift
    for _ in $(seq "$RUNS"); do line="$line $(secs "$@")"; done
    printf "  %-${TIMED_WIDTH:-44}s%s s\n" "$label" "$line"
}

# shellcheck shell=bash
# Stage timing for tools/test and .ci/run (sourced, not run).
#
#   stage NAME CMD...       run CMD in the foreground, time it
#   stage_bg NAME CMD...    run CMD in the background, its output kept in
#                           a log printed whole when it is waited for
#   stage_wait NAME         wait for a background stage; fails as it failed
#   stage_table             one line per stage and the total
#
# Each stage appends "NAME SECONDS STATUS" to $KOLLA_STAGE_LOG, so a caller
# (.ci/run) that runs tools/test prints the stages of both in one table.

: "${KOLLA_STAGE_LOG:=$(mktemp "${TMPDIR:-/tmp}/kolla-stages.XXXXXX")}"
export KOLLA_STAGE_LOG
# The first script to source this starts the clock for the total.
: "${KOLLA_STAGE_T0:=$(date +%s)}"
export KOLLA_STAGE_T0
stage_dir=$(mktemp -d "${TMPDIR:-/tmp}/kolla-stage-logs.XXXXXX")
declare -A stage_pid

stage_now() { date +%s.%N; }

stage_record() { # NAME START STATUS
    printf '%s %.0f %s\n' "$1" "$(echo "$(stage_now) - $2" | bc)" "$3" >>"$KOLLA_STAGE_LOG"
}

stage() {
    local name=$1 start status=0
    shift
    start=$(stage_now)
    echo "== stage $name: $*"
    "$@" || status=$?
    stage_record "$name" "$start" "$([ $status -eq 0 ] && echo ok || echo "failed($status)")"
    return $status
}

stage_bg() {
    local name=$1 start
    shift
    start=$(stage_now)
    echo "== stage $name (in the background): $*"
    # The stage's own end is recorded where it ends, not when it is
    # waited for.
    (
        status=0
        "$@" || status=$?
        stage_record "$name" "$start" "$([ $status -eq 0 ] && echo ok || echo "failed($status)")"
        exit $status
    ) >"$stage_dir/$name.log" 2>&1 &
    stage_pid[$name]=$!
}

stage_wait() {
    local name=$1 status=0
    wait "${stage_pid[$name]}" || status=$?
    echo "== stage $name ended ($([ $status -eq 0 ] && echo ok || echo "failed, status $status")); its output:"
    cat "$stage_dir/$name.log"
    return $status
}

stage_table() {
    echo "== stage times (wall clock; stages run side by side overlap)"
    awk '{ printf "  %-30s %6ds  %s\n", $1, $2, $3 }' "$KOLLA_STAGE_LOG"
    printf '  %-30s %6ds\n' total "$(( $(date +%s) - KOLLA_STAGE_T0 ))"
}

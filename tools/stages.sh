# shellcheck shell=bash
# Stage timing for tools/test and .ci/run (sourced, not run).
#
#   stage NAME CMD...       run CMD in the foreground, time it
#   stage_bg NAME CMD...    run CMD in the background, its output kept in
#                           a log printed whole when it is waited for
#   stage_wait NAME         wait for a background stage; fails as it failed
#   stage_table             one line per stage and the total
#   stage_budget SECONDS    end the whole run, saying what it was running,
#                           if it lasts longer than SECONDS
#   stage_cpu_watch         note the machine's CPU use each minute, which
#                           stage_table prints (where the run left cores
#                           idle, and where it queued for them)
#
# A stage named in the array stage_limit (stage_limit[NAME]=SECONDS, set by
# the caller) that runs longer is ended: what it was running (the test
# binary, the kolla or docker command it waited on) is printed first, and
# the stage fails as "timed out". A hang costs its limit and says where it
# was, instead of holding the run until CI's own cut-off, which says
# nothing.
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
declare -A stage_limit

stage_now() { date +%s.%N; }

stage_record() { # NAME START STATUS
    printf '%s %.0f %s\n' "$1" "$(echo "$(stage_now) - $2" | bc)" "$3" >>"$KOLLA_STAGE_LOG"
}

# How a stage ended, for the table.
stage_outcome() { # NAME STATUS
    if [ -e "$stage_dir/$1.expired" ]; then
        echo "timed-out(${stage_limit[$1]}s)"
    elif [ "$2" -eq 0 ]; then
        echo ok
    else
        echo "failed($2)"
    fi
}

# PID and every process under it.
stage_tree() { # PID
    local child
    echo "$1"
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do stage_tree "$child"; done
}

# Print what the processes under PID are doing, then end them all.
stage_end_tree() { # PID WHY
    local pids
    pids=$(stage_tree "$1" | paste -sd, -)
    {
        echo "== $2; what it was running:"
        ps -o pid,etimes,args --forest -p "$pids" || true
        echo "== the engine's containers then:"
        docker ps -a --format '{{.Names}}\t{{.Status}}\t{{.Image}}' 2>&1 | head -40 || true
    } >&2
    # shellcheck disable=SC2046 # one pid a word
    kill -TERM $(stage_tree "$1") 2>/dev/null || true
    sleep 10
    # shellcheck disable=SC2046
    kill -KILL $(stage_tree "$1") 2>/dev/null || true
}

# CMD..., ended if it outlasts NAME's limit.
stage_limited() { # NAME CMD...
    local name=$1 limit=${stage_limit[$1]:-} pid watchdog status=0
    shift
    if [ -z "$limit" ]; then
        "$@"
        return
    fi
    "$@" &
    pid=$!
    (
        sleep "$limit"
        touch "$stage_dir/$name.expired"
        stage_end_tree "$pid" "stage $name ran past its limit of $limit s"
    ) &
    watchdog=$!
    wait "$pid" || status=$?
    # shellcheck disable=SC2046
    kill $(stage_tree "$watchdog") 2>/dev/null || true
    return $status
}

stage() {
    local name=$1 start status=0
    shift
    start=$(stage_now)
    echo "== stage $name: $*"
    stage_limited "$name" "$@" || status=$?
    stage_record "$name" "$start" "$(stage_outcome "$name" $status)"
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
        stage_limited "$name" "$@" || status=$?
        stage_record "$name" "$start" "$(stage_outcome "$name" $status)"
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
    if [ -n "${stage_cpu_pid:-}" ]; then
        # shellcheck disable=SC2046
        kill $(stage_tree "$stage_cpu_pid") 2>/dev/null || true
        echo "== CPU busy, % of all cores, each minute from the start:"
        fold -w 72 -s <<<"  $(paste -sd' ' - <"$stage_dir/cpu" 2>/dev/null)"
    fi
}

# Busy and total jiffies of all cores since boot.
stage_cpu_sample() {
    awk '/^cpu / { total = 0; for (i = 2; i <= 9; i++) total += $i; print total, $5 + $6 }' /proc/stat
}

stage_cpu_watch() {
    : >"$stage_dir/cpu"
    (
        read -r total0 idle0 < <(stage_cpu_sample)
        while sleep 60; do
            read -r total idle < <(stage_cpu_sample)
            echo $((100 - 100 * (idle - idle0) / (total - total0 + 1))) >>"$stage_dir/cpu"
            total0=$total idle0=$idle
        done
    ) &
    stage_cpu_pid=$!
}

# The whole run's limit: past it, what runs is printed and ended, and the
# run fails (its stage table still printed by the caller's EXIT trap).
stage_budget() { # SECONDS
    local run=$$
    (
        sleep "$1"
        touch "$stage_dir/run.expired"
        # Everything under the run but this watchdog.
        local mine=$BASHPID child
        for child in $(ps -o pid= --ppid "$run"); do
            [ "$child" = "$mine" ] || [ "$child" = "${stage_cpu_pid:-}" ] || stage_end_tree "$child" "the run went past its limit of $1 s"
        done
    ) &
    stage_budget_pid=$!
}

stage_budget_end() {
    if [ -n "${stage_budget_pid:-}" ]; then
        # shellcheck disable=SC2046
        kill $(stage_tree "$stage_budget_pid") 2>/dev/null || true
    fi
    if [ -e "$stage_dir/run.expired" ]; then
        echo "== the run was ended at its limit: see what it was running above" >&2
        return 1
    fi
}

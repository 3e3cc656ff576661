# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run): timing, medians, ratios
# and the last line every bench prints.
#
# Each bench runs its loop once more than BENCH_RUNS: run 0 is a warm-up
# for every side (page cache, the engine's own caches, first-use costs) and
# is dropped before the medians.

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "scale=3; $1 / $2" | bc; }

# drop_warmup ARRAY...: removes run 0 from each named array.
drop_warmup() {
    local -n samples
    for samples in "$@"; do
        samples=("${samples[@]:1}")
    done
}

# run_label N: how a run's line on stderr begins.
run_label() { if [ "$1" = 0 ]; then echo "warm-up"; else echo "run $1"; fi; }

# verdict NAME KOLLA PEER TARGET RUNS: the bench's last line,
#   NAME ratio=KOLLA/PEER (target TARGET) runs=RUNS
verdict() {
    printf '%s ratio=%.2f (target %s) runs=%d\n' "$1" "$(ratio "$2" "$3")" "$4" "$5"
}

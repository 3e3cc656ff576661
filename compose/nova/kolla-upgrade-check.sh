#!/bin/bash
# The new image's `nova-status upgrade check` against the live cloud, with
# upstream's fast-forward step taken: while the computes run a release
# older than the one before the new one (Zed's under Epoxy's API), the
# check "Older than N-1 computes" fails, as it must until they are
# upgraded; Nova's control services start regardless
# (nova.conf: [workarounds] disable_compute_service_check_for_ffu), and
# `kolla upgrade --all` upgrades every nova-compute a few stages later.
# That one failure is reported as a warning (exit 1) naming the step;
# anything else exits as nova-status does (0 passed, 1 warns, 2 failed).
# Across several releases, the new code cannot read the old schema (its
# checks of the instances crash on columns the old release lacks): that
# crash is a warning too, and nova-api's bootstrap job runs this check
# again once its migrations have moved the schema, failing there.
# nova-status has no JSON output: its table's "Check:" and "Result:"
# lines are read.
set -uo pipefail
report=$(nova-status upgrade check 2>&1)
status=$?
printf '%s\n' "$report"
case "$status" in
0 | 1) exit "$status" ;;
2) ;;
*)
    if grep -q -e "Unknown column" -e "doesn't exist" <<<"$report"; then
        echo "kolla-upgrade-check.sh: this release's nova-status cannot read the live schema, a release older than the one before it (a fast-forward); its checks run again once the bootstrap job has migrated the schema"
        exit 1
    fi
    exit 2
    ;;
esac
failed=$(printf '%s\n' "$report" | python3 -c '
import sys
check = None
for line in sys.stdin:
    text = line.strip().strip("|").strip()
    if text.startswith("Check: "):
        check = text[len("Check: "):].strip()
    elif text.startswith("Result: ") and check is not None:
        if text[len("Result: "):].strip() == "Failure":
            print(check)
        check = None
')
if [ "$failed" = "Older than N-1 computes" ]; then
    echo "kolla-upgrade-check.sh: a fast-forward upgrade: the computes run a release older than the one before this; Nova control services start anyway ([workarounds] disable_compute_service_check_for_ffu) until nova-compute is upgraded on every compute node, which kolla upgrade --all does after them"
    exit 1
fi
exit 2

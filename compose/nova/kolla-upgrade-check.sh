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
set -uo pipefail
report=$(nova-status upgrade check --json)
status=$?
printf '%s\n' "$report" | python3 -c '
import json, sys
status = int(sys.argv[1])
raw = sys.stdin.read()
try:
    report = json.loads(raw)
except ValueError:
    print(raw)
    sys.exit(status or 2)
names = {0: "Success", 1: "Warning", 2: "Failure"}
for check in report.get("checks", []):
    details = (check.get("details") or "").strip()
    line = check.get("check", "?") + ": " + names.get(check.get("result"), "?")
    print(line + (": " + details if details else ""))
failed = [c.get("check") for c in report.get("checks", []) if c.get("result") == 2]
if status == 2 and failed == ["Older than N-1 computes"]:
    print("kolla-upgrade-check.sh: a fast-forward upgrade: the computes run a release older than the one before this; Nova control services start anyway ([workarounds] disable_compute_service_check_for_ffu) until nova-compute is upgraded on every compute node, which kolla upgrade --all does after them")
    sys.exit(1)
sys.exit(status)
' "$status"

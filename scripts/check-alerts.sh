#!/usr/bin/env bash
# Checks and unit-tests butler's Prometheus alerting rules with promtool.
#
# Without promtool the check is skipped (exit 0) with a message, unless CI is
# set to anything but "" or "false": then a missing promtool is a failure.
# scripts/test-deps.sh installs promtool (Debian package prometheus).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
promtool=${PROMTOOL:-promtool}

if ! command -v "$promtool" >/dev/null 2>&1; then
	if [[ -n ${CI:-} && ${CI:-} != false ]]; then
		echo "check-alerts: $promtool not found and CI is set; run scripts/test-deps.sh" >&2
		exit 1
	fi
	echo "check-alerts: $promtool not found, skipping the alert rule checks (run scripts/test-deps.sh)" >&2
	exit 0
fi

"$promtool" check rules "$here/butler-alerts.yml"
# promtool resolves rule_files relative to the test file.
"$promtool" test rules "$here/butler-alerts.test.yml"

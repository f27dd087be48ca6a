#!/usr/bin/env bash
# Shows butler keeping a real Prometheus in step with a remote store, in four
# steps, in well under a minute:
#
#   0. render    what butler would write (butler render), written nowhere
#   1. good      the first sync applies the configuration; Prometheus reloads
#   2. refused   the source becomes YAML that Prometheus refuses: butler exits 1
#                and puts the last known good files back; Prometheus keeps
#                running the old configuration
#   3. no storm  the same bad source again: exit 1, and no new reload
#   4. fixed     the source is fixed (shown first with sync --dry-run): applied
#
# Everything runs on 127.0.0.1 on free ports, in a temporary directory that is
# removed at the end, with every process it started stopped (also on Ctrl-C or
# failure). Each step checks butler's exit code, its metrics and what
# Prometheus runs, so the demo is also a smoke test: it exits 0 when the story
# went as told, 1 as soon as something differs.
#
# Needs /usr/bin/prometheus (Debian package prometheus: run
# scripts/test-deps.sh as root; PROMETHEUS=PATH names another binary),
# python3 and curl. Builds bin/butler with `make build` when it is missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo_data=$root/testdata/demo
butler=$root/bin/butler
prometheus=${PROMETHEUS:-/usr/bin/prometheus}
# The annotation of the demo's alert rule: Prometheus's own template, which
# butler must leave alone.
# shellcheck disable=SC2016 # a Go template, not a shell expansion
rule_summary='{{ $labels.instance }} of job {{ $labels.job }} is down'

# Settings from the caller's environment would point butler elsewhere.
unset BUTLER_CONFIG BUTLER_STATE_DIR BUTLER_TEXTFILE

work=""
prom_pid=""
store_pid=""
failures=0

# ------------------------------------------------------------------ output

banner() {
	printf '\n=== %s\n' "$*"
}

say() {
	printf '%s\n' "$*"
}

indent() {
	sed 's/^/    /'
}

die() {
	printf '\ndemo: FAILED: %s\n' "$*" >&2
	exit 1
}

# check DESCRIPTION GOT WANT: one expectation of the story.
check() {
	if [[ $2 == "$3" ]]; then
		printf '  ok    %s: %s\n' "$1" "$2"
	else
		printf '  FAIL  %s: got %q, want %q\n' "$1" "$2" "$3"
		failures=$((failures + 1))
	fi
}

# check_true DESCRIPTION COMMAND...: an expectation tested by a command.
check_true() {
	local what=$1
	shift
	if "$@"; then
		printf '  ok    %s\n' "$what"
	else
		printf '  FAIL  %s\n' "$what"
		failures=$((failures + 1))
	fi
}

# end_step NAME: stops the demo loudly when a check of the step failed.
end_step() {
	if ((failures > 0)); then
		show_logs
		die "step \"$1\": $failures check(s) failed; butler or Prometheus did not behave as told"
	fi
}

show_logs() {
	local f
	for f in "$work/prometheus.log" "$work/store.log"; do
		[[ -s $f ]] || continue
		printf '\n--- last lines of %s\n' "$f" >&2
		tail -n 15 "$f" >&2
	done
}

# ------------------------------------------------------------------ cleanup

# stop PID: SIGTERM, then SIGKILL if it has not ended within 10 s.
stop() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	trap - INT TERM
	[[ -n $prom_pid ]] && stop "$prom_pid"
	[[ -n $store_pid ]] && stop "$store_pid"
	[[ -n $work ]] && rm -rf -- "$work"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ------------------------------------------------------------------ helpers

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
	"$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server WHAT PID_VAR PORT_VAR LOG READY_PATH COMMAND...: starts COMMAND
# in the background, output to LOG, with @PORT@ in its words replaced by a free
# port, and waits until http://127.0.0.1:PORT READY_PATH answers. A port taken
# between the probe and the bind makes the server exit, and the next port is
# tried, three in all. The pid and the port are set in PID_VAR and PORT_VAR
# as soon as they are known, so that cleanup stops the server on any exit.
start_server() {
	local what=$1 log=$4 ready=$5 attempt
	local -n pid_var=$2 port_var=$3
	shift 5
	for attempt in 1 2 3; do
		port_var=$(free_port)
		"${@//@PORT@/$port_var}" >"$log" 2>&1 &
		pid_var=$!
		if wait_http "http://127.0.0.1:$port_var$ready" "$pid_var"; then
			return 0
		fi
		wait "$pid_var" 2>/dev/null || true
		pid_var=""
	done
	show_logs
	die "$what did not start"
}

# wait_http URL PID: waits until URL answers 2xx, for at most 30 s; fails at
# once when PID has ended (a port taken in the meantime, say).
wait_http() {
	local url=$1 pid=$2 i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		if curl --noproxy '*' -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "$url did not answer within 30 s"
}

# http GET URL: the body, or the demo fails.
http() {
	curl --noproxy '*' -fsS --max-time 5 "$1" || die "GET $1 failed"
}

# prom_metric NAME_WITH_LABELS: one sample of Prometheus's own metrics; 0 when
# the series does not exist yet.
prom_metric() {
	http "$prom_url/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print (v == "" ? 0 : v) }'
}

# running_version: the config_version external label Prometheus runs with.
running_version() {
	http "$prom_url/api/v1/status/config" | grep -o 'config_version: [A-Za-z0-9]*' | cut -d' ' -f2
}

# file_version FILE: the config_version label in a prometheus.yml on disk.
file_version() {
	sed -n 's/^ *config_version: *//p' "$1"
}

# textfile_value NAME: a sample of butler's textfile, labels ignored (one
# manager); empty when the series is not there.
textfile_value() {
	awk -v n="$1" '$1 == n || index($1, n "{") == 1 { print $2 }' "$textfile"
}

reload_requests() {
	prom_metric 'prometheus_http_request_duration_seconds_count{handler="/-/reload"}'
}

# use_version NAME: the store now serves testdata/demo/versions/NAME.yml as
# prometheus/prometheus.yml.
use_version() {
	cp "$demo_data/versions/$1.yml" "$work/store/prometheus/prometheus.yml"
	say "The store now serves versions/$1.yml as prometheus/prometheus.yml."
}

# butler_cmd ARGS...: runs butler with the demo's configuration, prints its
# output (stdout and logs) indented, and leaves the exit code in $rc and the
# output in $out.
butler_cmd() {
	say "\$ butler $*"
	rc=0
	out=$("$butler" --config "$work/butler.toml" "$@" 2>&1) || rc=$?
	[[ -z $out ]] || printf '%s\n' "$out" | indent
	say "exit code: $rc"
}

# sync_and_observe: butler sync, then what butler's textfile says and what
# Prometheus runs; the values are left in variables for the checks.
sync_and_observe() {
	butler_cmd sync
	say "butler's textfile:"
	grep -E '^butler_(reload_status|reloads_total|lkg|lkg_restores_total|manager_success|run_success)[{ ]' "$textfile" | indent
	m_reload_status=$(textfile_value butler_reload_status)
	m_reloads_total=$(textfile_value butler_reloads_total)
	m_lkg=$(textfile_value butler_lkg)
	m_restores=$(textfile_value butler_lkg_restores_total)
	m_manager_success=$(textfile_value butler_manager_success)
	m_run_success=$(textfile_value butler_run_success)
	observe_prometheus
}

observe_prometheus() {
	p_version=$(running_version)
	p_reload_ok=$(prom_metric prometheus_config_last_reload_successful)
	p_reloads=$(reload_requests)
	d_version=$(file_version "$dest/prometheus.yml")
	say "Prometheus:"
	{
		say "running config_version: $p_version   (/api/v1/status/config)"
		say "prometheus_config_last_reload_successful $p_reload_ok"
		say "reload requests received: $p_reloads   (/metrics, handler=\"/-/reload\")"
	} | indent
	say "On disk: $dest/prometheus.yml has config_version: $d_version"
}

# ------------------------------------------------------------------ setup

if [[ ! -x $prometheus ]]; then
	echo "demo: $prometheus not found; run scripts/test-deps.sh as root (it installs the Debian package prometheus)" >&2
	exit 1
fi
command -v curl >/dev/null 2>&1 || {
	echo "demo: curl not found; install it (apt-get install curl)" >&2
	exit 1
}
command -v python3 >/dev/null 2>&1 || {
	echo "demo: python3 not found; it serves the demo's remote store (apt-get install python3)" >&2
	exit 1
}
# The interpreter itself rather than a wrapper, so the pid is the server's.
python=$(python3 -c 'import sys; print(sys.executable)')

if [[ ! -x $butler ]]; then
	banner "Building butler (make build)"
	make -C "$root" build
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/butler-demo.XXXXXX")
dest=$work/etc/prometheus
textfile=$work/textfile/butler.prom
mkdir -p "$dest" "$work/prometheus-data" "$work/store"
cp -R "$demo_data/store/." "$work/store/"

banner "Setting up in $work"

# The remote store: a plain HTTP server over $work/store.
start_server "the store's HTTP server" store_pid store_port "$work/store.log" /prometheus/rules/demo.yml \
	"$python" -m http.server --bind 127.0.0.1 --directory "$work/store" @PORT@
say "remote store:  http://127.0.0.1:$store_port/ serving $work/store (python3 -m http.server)"

# Prometheus, started on a bootstrap configuration at the place butler manages.
cp "$demo_data/bootstrap.yml" "$dest/prometheus.yml"
start_server Prometheus prom_pid prom_port "$work/prometheus.log" /-/ready \
	"$prometheus" \
	--config.file="$dest/prometheus.yml" \
	--storage.tsdb.path="$work/prometheus-data" \
	--web.listen-address=127.0.0.1:@PORT@ \
	--web.enable-lifecycle
prom_url=http://127.0.0.1:$prom_port
prom_version=$("$prometheus" --version 2>&1 | awk 'NR == 1 { print $3 }')
say "Prometheus:    $prom_url (version $prom_version), running the bootstrap config $dest/prometheus.yml"

sed -e "s|@WORK_DIR@|$work|g" -e "s|@STORE_PORT@|$store_port|g" -e "s|@PROM_PORT@|$prom_port|g" \
	"$demo_data/butler.toml.tmpl" >"$work/butler.toml"
say "butler.toml:   $work/butler.toml (from testdata/demo/butler.toml.tmpl):"
grep -vE '^[[:space:]]*(#|$)' "$work/butler.toml" | indent
check "running config_version" "$(running_version)" bootstrap
end_step setup

# ------------------------------------------------------------------ the story

banner "Step 0 - render: what butler would write, written nowhere"
use_version v1-good
butler_cmd render --manager prometheus
check "butler render exit code" "$rc" 0
check_true "prometheus.yml rendered with the vars ({{datacenter}} -> demo1)" grep -q 'datacenter: demo1' <<<"$out"
check_true "the rule file keeps Prometheus's {{ \$labels.instance }} (delims [[ ]])" grep -qF "summary: \"$rule_summary\"" <<<"$out"
check "config_version on disk (still the bootstrap)" "$(file_version "$dest/prometheus.yml")" bootstrap
end_step render

banner "Step 1 - good: the first sync applies the configuration and Prometheus reloads"
sync_and_observe
check "butler sync exit code" "$rc" 0
check butler_reload_status "$m_reload_status" 200
check butler_manager_success "$m_manager_success" 1
check butler_run_success "$m_run_success" 1
check butler_lkg_restores_total "$m_restores" 0
check_true "butler_lkg is set" test -n "$m_lkg"
check "running config_version" "$p_version" v1
check "reload requests received" "$p_reloads" 1
check prometheus_config_last_reload_successful "$p_reload_ok" 1
check_true "Prometheus loaded the rule with {{ \$labels.instance }} intact" \
	grep -qF "\"summary\":\"$rule_summary\"" <<<"$(http "$prom_url/api/v1/rules")"
end_step good
lkg_good=$m_lkg
reloads_good=$m_reloads_total

banner "Step 2 - refused: valid YAML that Prometheus refuses; butler restores the last known good"
use_version v2-refused
sync_and_observe
check "butler sync exit code" "$rc" 1
check butler_reload_status "$m_reload_status" 500
check butler_manager_success "$m_manager_success" 0
check butler_run_success "$m_run_success" 0
check butler_lkg_restores_total "$m_restores" 1
check "butler_lkg (LKG stored in step 1, not replaced)" "$m_lkg" "$lkg_good"
check "config_version on disk (the LKG put back)" "$d_version" v1
check "running config_version (Prometheus kept the old config)" "$p_version" v1
check "reload requests received" "$p_reloads" 2
check prometheus_config_last_reload_successful "$p_reload_ok" 0
end_step refused
reloads_refused=$m_reloads_total

banner "Step 3 - no reload storm: the same bad source again"
say "The store still serves versions/v2-refused.yml."
sync_and_observe
check "butler sync exit code" "$rc" 1
check "butler_reload_status (still says what happened)" "$m_reload_status" 500
check butler_manager_success "$m_manager_success" 0
check "butler_reloads_total (no new reload)" "$m_reloads_total" "$reloads_refused"
check butler_lkg_restores_total "$m_restores" 1
check "reload requests received (none new)" "$p_reloads" 2
check "config_version on disk" "$d_version" v1
check "running config_version" "$p_version" v1
end_step "no reload storm"

banner "Step 4a - fixed, first a dry run: the diff against what is on disk, nothing changed"
use_version v3-fixed
textfile_before=$(cksum <"$textfile")
butler_cmd sync --dry-run
check "butler sync --dry-run exit code" "$rc" 0
check_true "the diff shows config_version v1 -> v3" grep -q '^+ *config_version: v3' <<<"$out"
check_true "butler's textfile untouched" test "$(cksum <"$textfile")" = "$textfile_before"
check "config_version on disk" "$(file_version "$dest/prometheus.yml")" v1
check "reload requests received" "$(reload_requests)" 2
end_step "dry run"

banner "Step 4b - fixed: the sync applies it and Prometheus serves the new configuration"
sync_and_observe
check "butler sync exit code" "$rc" 0
check butler_reload_status "$m_reload_status" 200
check butler_manager_success "$m_manager_success" 1
check butler_run_success "$m_run_success" 1
check butler_lkg_restores_total "$m_restores" 1
check "butler_reloads_total" "$m_reloads_total" $((reloads_good + 2))
check_true "butler_lkg moved on (LKG stored again)" awk -v a="$m_lkg" -v b="$lkg_good" 'BEGIN { exit !(a > b) }'
check "config_version of the LKG copy" "$(file_version "$work/state/lkg/prometheus/prometheus.yml")" v3
check "config_version on disk" "$d_version" v3
check "running config_version" "$p_version" v3
check "reload requests received" "$p_reloads" 3
check prometheus_config_last_reload_successful "$p_reload_ok" 1
end_step fixed

banner "demo: OK - applied, refused and restored, no reload storm, fixed"

#!/usr/bin/env bash
# Installs what butler's tests need, when it is missing.
#
#   scripts/test-deps.sh           programs the integration tests run, and Go modules
#   scripts/test-deps.sh --lint    the same, plus staticcheck
#
# The programs come from Debian packages (bookworm names):
#   prometheus                -> /usr/bin/prometheus, /usr/bin/promtool
#   prometheus-alertmanager   -> /usr/bin/prometheus-alertmanager (and amtool)
#   prometheus-node-exporter  -> /usr/bin/prometheus-node-exporter
#   git                       -> /usr/bin/git
#   curl, make                -> used by the demo that make test runs
#   patch                     -> applies the dry-run diffs in a test
#   nginx                     -> /usr/sbin/nginx (nginx as a manager)
#   minisign                  -> /usr/bin/minisign: signs what the verify tests check
#   groff                     -> /usr/bin/groff (groff-base): the man page test
#   dpkg-deb, man, systemd-analyze (dpkg, man-db, systemd)
#                             -> the test of the Debian package
# When every program is found, apt is not touched and nothing is printed.
# When one is missing and the user is not root (or there is no apt-get), the
# script says which and goes on: the tests that need it skip, or fail when CI
# is set. The packages are installed without starting their services; tests
# start the programs themselves on free ports.
set -euo pipefail

usage() {
	sed -n '2,5s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

lint=false
for arg in "$@"; do
	case $arg in
	--lint) lint=true ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "test-deps: unknown argument $arg" >&2
		usage >&2
		exit 2
		;;
	esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Program -> Debian package, in a stable order.
programs=(prometheus promtool prometheus-alertmanager prometheus-node-exporter git curl make patch nginx minisign groff dpkg-deb man systemd-analyze)
declare -A package_of=(
	[prometheus]=prometheus
	[promtool]=prometheus
	[prometheus-alertmanager]=prometheus-alertmanager
	[prometheus-node-exporter]=prometheus-node-exporter
	[git]=git
	[curl]=curl
	[make]=make
	[patch]=patch
	[nginx]=nginx
	[minisign]=minisign
	[groff]=groff-base
	[dpkg-deb]=dpkg
	[man]=man-db
	[systemd-analyze]=systemd
)
# Debian service units of the packages, stopped and disabled after an install.
declare -A unit_of=(
	[prometheus]=prometheus.service
	[prometheus-alertmanager]=prometheus-alertmanager.service
	[prometheus-node-exporter]=prometheus-node-exporter.service
	[nginx]=nginx.service
)
default_ports=(9090 9093 9100 80)

missing_programs() {
	local p
	for p in "${programs[@]}"; do
		command -v "$p" >/dev/null 2>&1 || printf '%s\n' "$p"
	done
}

packages_for() {
	local p
	for p in "$@"; do
		printf '%s\n' "${package_of[$p]}"
	done | sort -u
}

cleanup_files=()
cleanup() {
	if ((${#cleanup_files[@]})); then
		rm -f -- "${cleanup_files[@]}"
	fi
}
trap cleanup EXIT

# apt_install PACKAGE...: one apt-get update, one install; services stay down.
apt_install() {
	local log
	log=$(mktemp)
	cleanup_files+=("$log")

	# Tell invoke-rc.d and deb-systemd-invoke not to start services, unless
	# the machine already has a policy of its own (containers usually do).
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		cleanup_files+=(/usr/sbin/policy-rc.d)
	fi

	echo "test-deps: installing $* (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get update -q >"$log" 2>&1 ||
		! apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "$@" >>"$log" 2>&1; then
		cat "$log" >&2
		echo "test-deps: apt-get failed" >&2
		exit 1
	fi
}

# stop_services PACKAGE...: keep the default ports free for other uses; the
# tests start their own instances. Only for packages installed just now.
stop_services() {
	local pkg unit
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
		for pkg in "$@"; do
			unit=${unit_of[$pkg]:-}
			[[ -n $unit ]] || continue
			systemctl disable --now --quiet "$unit" 2>/dev/null || true
		done
	fi
	command -v ss >/dev/null 2>&1 || return 0
	local port busy
	for port in "${default_ports[@]}"; do
		busy=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
		if [[ -n $busy ]]; then
			echo "test-deps: warning: something listens on port $port:" >&2
			printf '%s\n' "$busy" >&2
		fi
	done
}

mapfile -t missing < <(missing_programs)
if ((${#missing[@]})); then
	mapfile -t packages < <(packages_for "${missing[@]}")
	if ((EUID != 0)); then
		echo "test-deps: missing ${missing[*]}; as root, run this script again or: apt-get install --no-install-recommends ${packages[*]}" >&2
		echo "test-deps: tests that need them will skip (or fail when CI is set)" >&2
	elif ! command -v apt-get >/dev/null 2>&1; then
		echo "test-deps: missing ${missing[*]} and no apt-get to install them; install them by hand" >&2
		echo "test-deps: tests that need them will skip (or fail when CI is set)" >&2
	else
		apt_install "${packages[@]}"
		stop_services "${packages[@]}"
		mapfile -t still < <(missing_programs)
		if ((${#still[@]})); then
			echo "test-deps: still missing after the install: ${still[*]}" >&2
			exit 1
		fi
	fi
fi

if ! command -v go >/dev/null 2>&1; then
	echo "test-deps: go not found; install the Go toolchain named in go.mod" >&2
	exit 1
fi
(cd "$root" && go mod download)
(cd "$root/scripts/deb" && go mod download) # the packager of make deb, a module of its own

if $lint; then
	gobin=$(go env GOBIN)
	[[ -n $gobin ]] || gobin=$(go env GOPATH)/bin
	staticcheck_version=0.8.2
	if [[ $("$gobin/staticcheck" -version 2>/dev/null || true) != *"($staticcheck_version)"* ]]; then
		echo "test-deps: installing staticcheck v$staticcheck_version into $gobin"
		(cd "$root" && go install "honnef.co/go/tools/cmd/staticcheck@v$staticcheck_version")
	fi
fi

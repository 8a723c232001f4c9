# SPDX-License-Identifier: Apache-2.0
# harness.sh - what the shell suites that drive a real sbxd share (sourced,
# not run): their paths, the Check-style counting, starting and stopping
# sbxd, and finding the QEMU processes of their own state directory.
#
# Before sourcing, set SUITE (the name of the state directory under
# $O/test-state, e.g. "sbx-cli"). Then:
#   harness_setup KEYNAME [TOOL...]  checks what is needed, clears what an
#                                    interrupted run left, creates an API key
#                                    ($KEY), starts sbxd on a free port
#                                    ($PORT) and exports the sbx CLI's
#                                    settings;
#   pass/fail/summary                count checks and print
#                                    "P%: Checks: N, Failures: F, Errors: 0"
#                                    (what tests/run-all.sh counts);
#   start_sbxd, stop_sbxd, kill9_sbxd, qemu_pids, kill_qemu, bail.
# shellcheck shell=sh

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
O=${O:-build}
case "$O" in /*) ob=$O ;; *) ob=$root/$O ;; esac

SBX=$ob/sbx
SBXD=$ob/sbxd
IMAGE=$ob/images/default
STATE=$ob/test-state/$SUITE
LOG=$ob/test-state/$SUITE.sbxd.log
WORK=$ob/test-state/$SUITE.work
PIDFILE=$ob/test-state/$SUITE.sbxd.pid

checks=0
failures=0
SBXD_PID=
PORT=

summary() {
	if [ "$checks" -gt 0 ]; then
		pct=$((100 * (checks - failures) / checks))
	else
		pct=0
	fi
	echo "$pct%: Checks: $checks, Failures: $failures, Errors: 0"
}

pass() {
	checks=$((checks + 1))
	echo "ok $checks - $1"
}

# fail DESCRIPTION [DETAIL...]
fail() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "not ok $checks - $1"
	shift
	for line in "$@"; do
		echo "#   $line"
	done
}

qemu_pids() { pgrep -f "qemu-system-[a-z0-9_]+ .*$STATE/" 2>/dev/null || true; }

kill_qemu() {
	pids=$(qemu_pids)
	[ -z "$pids" ] && return 0
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null
	sleep 2
	pids=$(qemu_pids)
	# shellcheck disable=SC2086
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	return 0
}

# start_sbxd: sbxd on $PORT; 0 once /healthz answers (within 60 s).
start_sbxd() {
	"$SBXD" serve --listen "127.0.0.1:$PORT" --state-dir "$STATE" --image "$IMAGE" \
		>>"$LOG" 2>&1 &
	SBXD_PID=$!
	echo "$SBXD_PID" >"$PIDFILE"
	i=0
	while [ $i -lt 600 ] && kill -0 "$SBXD_PID" 2>/dev/null; do
		curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# stop_sbxd: SIGTERM, then SIGKILL after 30 s; 1 if it took the SIGKILL.
stop_sbxd() {
	[ -z "$SBXD_PID" ] && return 0
	kill -TERM "$SBXD_PID" 2>/dev/null
	i=0
	while kill -0 "$SBXD_PID" 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	stopped=0
	if kill -0 "$SBXD_PID" 2>/dev/null; then
		kill -KILL "$SBXD_PID" 2>/dev/null
		stopped=1
	fi
	wait "$SBXD_PID" 2>/dev/null
	SBXD_PID=
	rm -f "$PIDFILE"
	return $stopped
}

kill9_sbxd() {
	[ -z "$SBXD_PID" ] && return 0
	kill -KILL "$SBXD_PID" 2>/dev/null
	wait "$SBXD_PID" 2>/dev/null
	SBXD_PID=
}

cleanup() {
	stop_sbxd
	kill_qemu
}

bail() {
	fail "$1"
	cleanup
	summary
	exit 1
}

trap 'cleanup; summary; exit 130' INT TERM

harness_setup() {
	keyname=$1
	shift
	for t in curl "$@"; do
		command -v "$t" >/dev/null 2>&1 || bail "$t is missing (make deps)"
	done
	[ -x "$SBX" ] || bail "$SBX is missing (make all)"
	[ -x "$SBXD" ] || bail "$SBXD is missing (make all)"
	[ -f "$IMAGE/rootfs.ext4" ] || bail "$IMAGE is missing (make image)"

	# A run that was interrupted may have left its sbxd or VMs behind.
	if [ -f "$PIDFILE" ]; then
		old=$(cat "$PIDFILE")
		if [ -n "$old" ] && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null |
			grep -q -- "$STATE"; then
			kill -KILL "$old" 2>/dev/null
		fi
		rm -f "$PIDFILE"
	fi
	kill_qemu
	rm -rf "$STATE" "$WORK"
	mkdir -p "$STATE" "$WORK/config"
	: >"$LOG"

	KEY=$("$SBXD" key create --name "$keyname" --state-dir "$STATE" 2>>"$LOG" | tail -n 1)
	case "$KEY" in sbx_*) ;; *) bail "sbxd key create printed no key (log: $LOG)" ;; esac

	# A free port: pick one at random and retry if sbxd cannot bind it.
	for _ in 1 2 3 4 5; do
		PORT=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
		start_sbxd && break
		stop_sbxd
	done
	[ -n "$SBXD_PID" ] || bail "sbxd did not start (log: $LOG)"
	echo "$SUITE: sbxd http://127.0.0.1:$PORT (pid $SBXD_PID, state $STATE, log $LOG)"

	# The CLI as a person would set it up; no config file of the user's.
	export SBX_ENDPOINT="http://127.0.0.1:$PORT" SBX_API_KEY="$KEY" \
		XDG_CONFIG_HOME="$WORK/config"
}

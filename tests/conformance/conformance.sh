#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# conformance.sh: the sbxd conformance suite, one step of `make test`
# (registered in EXTRA_TEST_STEPS by tests/conformance/conformance.mk; also
# `make conformance`). See docs/conformance.md.
#
#  1. installs langsmith@0.12.0 and ws into $O/conformance (cached);
#  2. starts its own sbxd on a free loopback port, state in
#     $O/test-state/conformance, with API keys A, B and an admin key;
#  3. runs tests/conformance/*.test.js with `node --test` against it, as a
#     user of the langsmith client would (LANGSMITH_ENDPOINT/LANGSMITH_API_KEY);
#     pool.test.js also runs an sbxd of its own (--pool-size 1, state in
#     $O/test-state/conformance-pool) that it restarts;
#  4. deletes what the suite left, stops sbxd with SIGTERM and checks that no
#     QEMU process of its state directory remains (one more check);
#  5. ends with Node's summary ("# pass N", "# fail N") and the Check-style
#     line "P%: Checks: N, Failures: F, Errors: 0" that tests/run-all.sh counts.
#
# Environment: O (build directory, default build), CONFORMANCE_FILTER (a
# regular expression: run only the tests whose name matches it).
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
O=${O:-build}
case "$O" in /*) ob=$O ;; *) ob=$root/$O ;; esac

SBXD=$ob/sbxd
IMAGE=$ob/images/default
STATE=$ob/test-state/conformance
# pool.test.js runs an sbxd of its own, in a state directory deep on purpose
# (a CI checkout is deeper than a developer's: Unix socket paths must not care)
POOL_STATE=$ob/test-state/conformance-pool/in-a-state-directory-deep-enough-to-pass-the-socket-path-limit
LOG=$ob/test-state/conformance.sbxd.log
TAP=$ob/test-state/conformance.tap
NM=$ob/conformance
. "$root/tests/conformance/sbxd-harness.sh"

summary() { # checks failures
	if [ "$1" -gt 0 ]; then
		pct=$((100 * ($1 - $2) / $1))
	else
		pct=0
	fi
	echo "$pct%: Checks: $1, Failures: $2, Errors: 0"
}

fail_early() {
	echo "conformance: $*"
	summary 1 1
	exit 1
}

[ -x "$SBXD" ] || fail_early "$SBXD is missing (make all)"
[ -f "$IMAGE/rootfs.ext4" ] || fail_early "$IMAGE is missing (make image)"
"$root/tests/conformance/npm-install.sh" "$NM" || fail_early "could not install the Node packages"

mkdir -p "$ob/test-state"
: >"$LOG"
h_fresh_state
n=$(h_kill_qemu "$POOL_STATE")
[ "$n" -gt 0 ] && echo "conformance: ended $n QEMU process(es) of $POOL_STATE left by an earlier run"

NODE_PID=
cleanup() {
	if [ -n "$NODE_PID" ]; then
		pkill -TERM -P "$NODE_PID" 2>/dev/null # the test files' processes
		kill -TERM "$NODE_PID" 2>/dev/null
	fi
	[ -n "$H_PID" ] && h_stop
	h_kill_qemu "$STATE" >/dev/null
	h_kill_qemu "$POOL_STATE" >/dev/null
}
# Interrupted (Ctrl-C, or run-all.sh stopped): end node, sbxd and the VMs.
trap 'echo "conformance: interrupted"; cleanup; exit 130' INT TERM HUP

KEY_A=$(h_key A) && KEY_B=$(h_key B) && KEY_ADMIN=$(h_key admin --admin) &&
	KEY_QUOTA=$(h_key quota --max-sandboxes 1) ||
	fail_early "sbxd key create failed (log: $LOG)"
case "$KEY_A$KEY_B$KEY_ADMIN$KEY_QUOTA" in *" "* | "") fail_early "unexpected output of sbxd key create" ;; esac

h_start || { cleanup; fail_early "sbxd did not start (log: $LOG)"; }
echo "conformance: sbxd $H_ENDPOINT (pid $H_PID, state $STATE, log $LOG)"
accel=$(sed -n 's/.*accelerator \([a-z]*\).*/\1/p' "$LOG" | head -n 1)
echo "conformance: accelerator ${accel:-unknown}; langsmith $(node -p "require('$NM/node_modules/langsmith/package.json').version"), ws $(node -p "require('$NM/node_modules/ws/package.json').version"), node $(node --version)"

set -- "$root"/tests/conformance/*.test.js
[ -n "${CONFORMANCE_FILTER:-}" ] && set -- --test-name-pattern="$CONFORMANCE_FILTER" "$@"
rm -f "$TAP"
# The spec reporter for people, TAP into a file for the counts; the suite's
# files run one after another (they share sbxd and its few VMs).
env -u LANGCHAIN_ENDPOINT -u LANGCHAIN_API_KEY -u LANGSMITH_TRACING -u LANGCHAIN_TRACING_V2 \
	NODE_PATH="$NM/node_modules" \
	LANGSMITH_ENDPOINT="$H_ENDPOINT" LANGSMITH_API_KEY="$KEY_A" \
	SBX_TEST_KEY_B="$KEY_B" SBX_TEST_KEY_QUOTA="$KEY_QUOTA" SBX_TEST_NODE_MODULES="$NM/node_modules" \
	SBX_TEST_SBXD="$SBXD" SBX_TEST_IMAGE="$IMAGE" SBX_TEST_POOL_STATE="$POOL_STATE" \
	node --test --test-concurrency=1 \
	--test-reporter=spec --test-reporter-destination=stdout \
	--test-reporter=tap --test-reporter-destination="$TAP" "$@" </dev/null &
# In the background so that a signal runs the trap at once, not after node.
NODE_PID=$!
wait "$NODE_PID"
node_rc=$?
NODE_PID=

# One more check: nothing outlives the suite. The suite deletes its
# sandboxes itself; whatever it left is deleted here and counted as a failure.
left=$(h_sweep "$KEY_ADMIN")
stop_ok=1
h_stop || stop_ok=0
qemu_left=$(h_kill_qemu "$STATE")
qemu_left=$((qemu_left + $(h_kill_qemu "$POOL_STATE")))
final_ok=1
if [ "$left" -gt 0 ]; then
	echo "conformance: the suite left $left sandbox(es) behind (deleted now)"
	final_ok=0
fi
if [ "$stop_ok" = 0 ]; then
	echo "conformance: sbxd did not stop cleanly on SIGTERM (log: $LOG)"
	final_ok=0
fi
if [ "$qemu_left" -gt 0 ]; then
	echo "conformance: $qemu_left QEMU process(es) of $STATE were still running (killed now)"
	final_ok=0
fi
if [ "$final_ok" = 1 ]; then
	echo "ok - sbxd stops on SIGTERM and no sandbox or QEMU process of the suite remains"
else
	echo "not ok - sbxd stops on SIGTERM and no sandbox or QEMU process of the suite remains"
fi

# Node's own summary, then the line run-all.sh counts.
count() { sed -n "s/^# $1 \([0-9][0-9]*\)\$/\1/p" "$TAP" 2>/dev/null | tail -n 1; }
pass=$(count pass)
fail=$(count fail)
cancelled=$(count cancelled)
if [ -z "$pass" ] || [ -z "$fail" ]; then
	echo "conformance: node --test printed no summary (exit status $node_rc)"
	summary 1 1
	exit 1
fi
grep -E '^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$TAP"
failures=$((fail + ${cancelled:-0}))
checks=$((pass + failures + 1))
[ "$final_ok" = 1 ] || failures=$((failures + 1))
# A node exit status that is not explained by failed tests is one more failure.
[ "$node_rc" -ne 0 ] && [ "$failures" -eq 0 ] && failures=1
summary "$checks" "$failures"
[ "$failures" -eq 0 ]

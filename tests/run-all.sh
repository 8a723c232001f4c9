#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs every test step of sbx and ends with one line "N passed, N failed".
# Check suites count their individual checks (from Check's summary line);
# every other step (fuzz replay, bounded fuzz run, layering) counts as one.
#
# The make variables UNIT_BINS, VM_TEST_BINS and FUZZ_REPLAY_BINS arrive
# through the environment (see tests/module.mk).
#   --unit-only   no VM, no fuzz run (make unit)
set -u

O=${O:-build}
unit_only=0
[ "${1:-}" = "--unit-only" ] && unit_only=1

passed=0
failed=0
failed_steps=""
log_dir="$O/test-logs"
mkdir -p "$log_dir"

note_fail() {
	failed_steps="$failed_steps
  - $1"
}

# run_check NAME CMD...: a Check binary; count its checks.
run_check() {
	name=$1
	shift
	log="$log_dir/$name.log"
	echo "== $name"
	# POSIX sh has no pipefail: the status of "$@" | tee is tee's, so a
	# suite that exits non-zero after its summary (LeakSanitizer at exit,
	# a crash in teardown) would count as passed. The suite's own status
	# goes through a file instead.
	rc_file="$log_dir/$name.rc"
	rm -f "$rc_file"
	{
		"$@" 2>&1
		echo $? >"$rc_file"
	} | tee "$log"
	rc=$(cat "$rc_file" 2>/dev/null)
	case "$rc" in
	'' | *[!0-9]*) rc=255 ;; # no status recorded: the runner itself was cut short
	esac
	summary=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n 1)
	if [ -z "$summary" ]; then
		echo "!! $name printed no Check summary (crashed or did not run; exit status $rc)"
		failed=$((failed + 1))
		note_fail "$name (no summary, exit status $rc, see $log)"
		return
	fi
	n=$(echo "$summary" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
	f=$(echo "$summary" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
	e=$(echo "$summary" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
	bad=$((f + e))
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		# its checks passed, but the suite did not: count one failure
		echo "!! $name exited with status $rc although its summary says every check passed"
		bad=1
		note_fail "$name (exit status $rc after a summary of no failures, see $log)"
	elif [ "$bad" -gt 0 ]; then
		note_fail "$name ($bad of $n failed, see $log)"
	fi
	[ "$bad" -gt "$n" ] && n=$bad
	passed=$((passed + n - bad))
	failed=$((failed + bad))
	return 0
}

# run_step NAME CMD...: one pass/fail step.
run_step() {
	name=$1
	shift
	log="$log_dir/$name.log"
	echo "== $name"
	if "$@" >"$log" 2>&1; then
		tail -n 3 "$log"
		passed=$((passed + 1))
	else
		tail -n 30 "$log"
		echo "!! $name failed (full log: $log)"
		failed=$((failed + 1))
		note_fail "$name (see $log)"
	fi
}

run_step layering tools/check-layering.sh "$O"
run_step layering-self-test tools/check-layering.sh --self-test

for b in ${UNIT_BINS:-}; do
	run_check "$(basename "$b")" "$b"
done

for b in ${FUZZ_REPLAY_BINS:-}; do
	corpus="tests/fuzz/corpus/$(basename "$b" | sed -E 's/^fuzz_//; s/_replay$//')"
	run_step "$(basename "$b")" "$b" "$corpus"
done

if [ "$unit_only" = 0 ]; then
	if [ -n "${FUZZ_RUN_TARGET:-}" ]; then
		run_step fuzz-run ${MAKE:-make} --no-print-directory "$FUZZ_RUN_TARGET" FUZZ_TIME="${FUZZ_TIME:-30}"
	fi
	for b in ${VM_TEST_BINS:-}; do
		run_check "$(basename "$b")" "$b"
	done
	for s in ${EXTRA_TEST_STEPS:-}; do
		run_check "$(basename "$s")" "$s"
	done
fi

leftover=$(pgrep -c -f 'qemu-system-x86_64.*sbx-' 2>/dev/null || true)
if [ "${leftover:-0}" -gt 0 ]; then
	echo "!! $leftover QEMU process(es) of sbx are still running after the tests"
	failed=$((failed + 1))
	note_fail "leftover QEMU processes"
fi

if [ -n "$failed_steps" ]; then
	echo "Failed:$failed_steps"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

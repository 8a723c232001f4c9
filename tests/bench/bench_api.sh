#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# bench_api.sh: `make bench` figures of sbxd's API (tests/bench/bench_api.js,
# through the official langsmith client). Runs a private sbxd on a free
# loopback port with its state in $O/test-state/bench-api, and takes it and
# every VM down again. Prints figures; asserts nothing.
#   SBX_BENCH_RUNS (100), SBX_BENCH_FILE_MIB (256), SBX_BENCH_PARALLEL (10)
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
O=${O:-build}
case "$O" in /*) ob=$O ;; *) ob=$root/$O ;; esac

SBXD=$ob/sbxd
IMAGE=$ob/images/default
STATE=$ob/test-state/bench-api
LOG=$ob/test-state/bench-api.sbxd.log
NM=$ob/conformance
. "$root/tests/conformance/sbxd-harness.sh"

[ -x "$SBXD" ] || { echo "bench_api: $SBXD is missing (make all)"; exit 1; }
[ -f "$IMAGE/rootfs.ext4" ] || { echo "bench_api: $IMAGE is missing (make image)"; exit 1; }
"$root/tests/conformance/npm-install.sh" "$NM" || exit 1

mkdir -p "$ob/test-state"
: >"$LOG"
h_fresh_state
trap 'h_stop; h_kill_qemu "$STATE" >/dev/null; exit 130' INT TERM

KEY=$(h_key bench) && [ -n "$KEY" ] || { echo "bench_api: sbxd key create failed (log: $LOG)"; exit 1; }
h_start || { h_kill_qemu "$STATE" >/dev/null; echo "bench_api: sbxd did not start (log: $LOG)"; exit 1; }

# "tcg (KVM probe failed: ...)" from sbxd's log line "accelerator: ...".
accel=$(sed -n 's/.*info: accelerator: \(.*\) probe_ms=.*/\1/p' "$LOG" | head -n 1)
[ -n "$accel" ] || accel=$(sed -n 's/.*accelerator \([a-z]*\)).*/\1/p' "$LOG" | head -n 1)
case "$accel" in
tcg*) short="tcg (no usable KVM)" ;;
kvm*) short=kvm ;;
*) short=${accel:-unknown} ;;
esac
echo "sbxd API benchmark: sbxd $H_ENDPOINT, langsmith $(node -p "require('$NM/node_modules/langsmith/package.json').version") client, node $(node --version)"
echo "accelerator: ${accel:-unknown}"

env -u LANGCHAIN_ENDPOINT -u LANGCHAIN_API_KEY -u LANGSMITH_TRACING -u LANGCHAIN_TRACING_V2 \
	NODE_PATH="$NM/node_modules" LANGSMITH_ENDPOINT="$H_ENDPOINT" LANGSMITH_API_KEY="$KEY" \
	SBX_BENCH_ACCEL="$short" node "$root/tests/bench/bench_api.js"
rc=$?

h_sweep "$KEY" >/dev/null
h_stop || rc=1

# The same with a prewarmed pool of one default sandbox.
echo "with a prewarmed pool (sbxd serve --pool-size 1):"
SBX_POOL_SIZE=1
export SBX_POOL_SIZE
if h_start; then
	env -u LANGCHAIN_ENDPOINT -u LANGCHAIN_API_KEY -u LANGSMITH_TRACING -u LANGCHAIN_TRACING_V2 \
		NODE_PATH="$NM/node_modules" LANGSMITH_ENDPOINT="$H_ENDPOINT" LANGSMITH_API_KEY="$KEY" \
		SBX_BENCH_ACCEL="$short" node "$root/tests/bench/bench_pool.js" || rc=1
	h_sweep "$KEY" >/dev/null
	h_stop || rc=1
else
	echo "bench_api: sbxd with a pool did not start (log: $LOG)"
	rc=1
fi
n=$(h_kill_qemu "$STATE")
[ "$n" -gt 0 ] && { echo "bench_api: $n QEMU process(es) were left running (killed)"; rc=1; }
exit $rc

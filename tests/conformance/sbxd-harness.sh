# SPDX-License-Identifier: Apache-2.0
# sbxd-harness.sh: sourced (not run) by tests/conformance/conformance.sh and
# tests/bench/bench_api.sh. Starts a private sbxd on a free loopback port with
# its own state directory, and takes it all down again: sandboxes, sbxd, and
# any QEMU process whose command line names that state directory.
#
# Inputs (variables set before calling):
#   SBXD    the sbxd binary            IMAGE  the image directory
#   STATE   absolute state directory   LOG    sbxd's log file
# Outputs of h_start: H_PID, H_PORT, H_ENDPOINT (http://127.0.0.1:PORT).

H_PID=
H_PORT=
H_ENDPOINT=

h_say() { echo "harness: $*" >&2; }

# PIDs of the QEMU processes that run VMs of state directory $1.
h_qemu_pids() {
	pgrep -f "qemu-system-[a-z0-9_]+ .*$1/" 2>/dev/null || true
}

# h_kill_qemu STATE: ends them (TERM, then KILL after 5 s); prints how many.
h_kill_qemu() {
	pids=$(h_qemu_pids "$1")
	n=$(echo "$pids" | grep -c . || true)
	if [ "$n" -gt 0 ]; then
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null || true
		i=0
		while [ $i -lt 50 ] && [ -n "$(h_qemu_pids "$1")" ]; do
			sleep 0.1
			i=$((i + 1))
		done
		pids=$(h_qemu_pids "$1")
		# shellcheck disable=SC2086
		[ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
	fi
	echo "$n"
}

# h_fresh_state: a clean $STATE. A run that was interrupted may have left its
# sbxd (pid file next to the state directory) or its VMs running: end those
# first, then remove the directory.
h_fresh_state() {
	pidfile="$STATE.sbxd.pid"
	if [ -f "$pidfile" ]; then
		old=$(cat "$pidfile")
		if [ -n "$old" ] && { tr '\0' ' ' <"/proc/$old/cmdline"; } 2>/dev/null | grep -q -- "$STATE"; then
			h_say "ending sbxd $old left by an earlier run"
			kill -TERM "$old" 2>/dev/null || true
			sleep 1
			kill -KILL "$old" 2>/dev/null || true
		fi
		rm -f "$pidfile"
	fi
	n=$(h_kill_qemu "$STATE")
	[ "$n" -gt 0 ] && h_say "ended $n QEMU process(es) left by an earlier run"
	rm -rf "$STATE"
	mkdir -p "$STATE"
}

# h_key NAME [--admin]: creates an API key, prints it.
h_key() {
	name=$1
	shift
	"$SBXD" key create --name "$name" "$@" --state-dir "$STATE" 2>>"$LOG" | tail -n 1
}

h_free_port() {
	node -e 'const s = require("net").createServer();
		s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# h_start: sbxd serve in the background; waits until /healthz answers.
h_start() {
	for attempt in 1 2 3; do
		H_PORT=$(h_free_port)
		H_ENDPOINT="http://127.0.0.1:$H_PORT"
		"$SBXD" serve --listen "127.0.0.1:$H_PORT" --state-dir "$STATE" \
			--image "$IMAGE" >>"$LOG" 2>&1 &
		H_PID=$!
		echo "$H_PID" >"$STATE.sbxd.pid"
		i=0
		while [ $i -lt 600 ]; do
			if ! kill -0 "$H_PID" 2>/dev/null; then
				wait "$H_PID" 2>/dev/null
				H_PID=
				break
			fi
			if curl -fsS -o /dev/null --max-time 2 "$H_ENDPOINT/healthz" 2>/dev/null; then
				return 0
			fi
			sleep 0.1
			i=$((i + 1))
		done
		if [ -n "$H_PID" ]; then
			h_say "sbxd did not answer /healthz within 60 s (log: $LOG)"
			h_stop >/dev/null
			return 1
		fi
		h_say "sbxd exited at start (attempt $attempt; log: $LOG)"
	done
	return 1
}

# h_sweep KEY: deletes every sandbox KEY sees (an admin key sees all);
# prints how many there were.
h_sweep() {
	names=$(curl -fsS --max-time 30 -H "X-Api-Key: $1" "$H_ENDPOINT/api/v2/sandboxes/boxes" |
		node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
			for (const b of JSON.parse(s).sandboxes || []) console.log(b.name); });' 2>/dev/null) || names=
	n=0
	for nm in $names; do
		n=$((n + 1))
		curl -sS -o /dev/null --max-time 120 -X DELETE -H "X-Api-Key: $1" \
			"$H_ENDPOINT/api/v2/sandboxes/boxes/$nm" || true
	done
	echo "$n"
}

# h_stop: SIGTERM, wait up to 30 s, then SIGKILL. Returns 0 when sbxd ended
# on SIGTERM with status 0.
h_stop() {
	[ -n "$H_PID" ] || return 0
	kill -TERM "$H_PID" 2>/dev/null || true
	i=0
	while [ $i -lt 300 ] && kill -0 "$H_PID" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	rc=0
	if kill -0 "$H_PID" 2>/dev/null; then
		h_say "sbxd did not stop within 30 s of SIGTERM; killing it"
		kill -KILL "$H_PID" 2>/dev/null || true
		rc=1
	fi
	wait "$H_PID" 2>/dev/null || rc=1
	H_PID=
	rm -f "$STATE.sbxd.pid"
	return $rc
}

#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# crash_loop.sh - kill -9 of sbxd in the middle of create, exec, snapshot,
# stop and delete, at several points in time, then a restart: the sandboxes
# the API lists, the rows of sbxd.db, the QEMU processes, the VM
# directories and the snapshots must agree exactly, and every ready sandbox
# must run a command. Real VMs (TCG), a real sbxd, the sbx CLI.
#
# Needs: make all, make image; sqlite3 and jq (tools/deps.sh installs them).
# Ends with a Check-style summary line like the other suites.
set -u

SUITE=crash
# shellcheck source=tests/integration/harness.sh
. "$(dirname "$0")/harness.sh"

DB=$STATE/sbxd.db
# when to kill sbxd after starting an operation, in seconds (TCG: a create
# takes 1-4 s, a capture 0.2-5 s, a stop 1-3 s, a delete ≈1.5 s)
DELAYS=${CRASH_DELAYS:-0.1 0.7 1.5 3}

# VM names of the running QEMU processes (libvirt names domains sbx-NAME)
qemu_vms() {
	for p in $(qemu_pids); do
		tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | sed -n 's/^guest=sbx-\([^,]*\).*/\1/p'
	done | grep -v '^zygote-' | sort
}

harness_setup crash sqlite3 jq

api() { curl -fsS -H "X-Api-Key: $KEY" "http://127.0.0.1:$PORT/api/v2/sandboxes$1"; }
sql() { sqlite3 -readonly "$DB" "$1" 2>/dev/null; }

# Waits until no sandbox is in a transition (provisioning, deleting,
# stopping, starting) and no snapshot is building: sbxd settled what the
# crash interrupted. Returns 1 after 180 s.
settle() {
	i=0
	while [ $i -lt 360 ]; do
		busy=$(sql "SELECT count(*) FROM sandboxes WHERE state IN ('provisioning','deleting')
			OR transition IS NOT NULL" || echo x)
		building=$(sql "SELECT count(*) FROM snapshots WHERE state IN ('building','deleting')" || echo x)
		[ "$busy" = 0 ] && [ "$building" = 0 ] && return 0
		sleep 0.5
		i=$((i + 1))
	done
	return 1
}

# Snapshot directories that are not the zygote's and are not a stopped
# sandbox's stop snapshot: they must be exactly the rows.
snapshot_dirs() {
	for d in "$STATE"/snapshots/*/; do
		[ -f "$d/manifest.json" ] || continue
		id=$(basename "$d")
		[ "$(jq -r .kind "$d/manifest.json" 2>/dev/null)" = zygote ] && continue
		echo "$id"
	done | sort
}

# consistent LABEL: every set agrees; every ready sandbox runs `true`.
consistent() {
	label=$1
	problems=""
	api_names=$(api /boxes | jq -r '.sandboxes[].name' 2>/dev/null | sort)
	db_names=$(sql "SELECT name FROM sandboxes ORDER BY name" | sort)
	[ "$api_names" = "$db_names" ] ||
		problems="$problems|API lists [$(echo $api_names)] but the store has [$(echo $db_names)]"
	want_vms=$(sql "SELECT vm_name FROM sandboxes WHERE state = 'ready'" | sort)
	got_vms=$(qemu_vms)
	[ "$want_vms" = "$got_vms" ] ||
		problems="$problems|QEMU runs [$(echo $got_vms)] but the ready sandboxes are [$(echo $want_vms)]"
	dirs=$(ls "$STATE/vms" 2>/dev/null | grep -v '^zygote-' | sort)
	[ "$want_vms" = "$dirs" ] ||
		problems="$problems|VM directories [$(echo $dirs)] but the ready sandboxes are [$(echo $want_vms)]"
	snap_rows=$(sql "SELECT id FROM snapshots WHERE state != 'failed' UNION SELECT stop_snapshot_id FROM sandboxes
		WHERE stop_snapshot_id IS NOT NULL AND state = 'stopped'" | sort)
	snap_dirs=$(snapshot_dirs)
	[ "$snap_rows" = "$snap_dirs" ] ||
		problems="$problems|snapshot directories [$(echo $snap_dirs)] but the store has [$(echo $snap_rows)]"
	for bn in $(sql "SELECT name FROM sandboxes WHERE state = 'ready'"); do
		"$SBX" exec --timeout 60 "$bn" -- true </dev/null >/dev/null 2>"$WORK/err" ||
			problems="$problems|ready sandbox $bn does not run a command: $(head -c 200 "$WORK/err")"
	done
	echo "#   $label: sandboxes $(sql "SELECT group_concat(name || '=' || state, ' ') FROM sandboxes"); snapshots $(sql "SELECT group_concat(name || '=' || state, ' ') FROM snapshots")"
	if [ -z "$problems" ]; then
		pass "$label: API, store, QEMU processes, VM directories and snapshots agree ($(echo $db_names | wc -w) sandbox(es))"
	else
		old_ifs=$IFS
		IFS='|'
		# shellcheck disable=SC2086
		fail "$label" $problems "log: $LOG"
		IFS=$old_ifs
	fi
}

# crash LABEL DELAY: kill -9 sbxd DELAY s after the background job started,
# restart it, let it settle, check.
crash() {
	job=$!
	sleep "$2"
	kill9_sbxd
	# the CLI job fails or retries: it gets 10 s, then it is ended
	i=0
	while kill -0 "$job" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$job" 2>/dev/null
	wait "$job" 2>/dev/null
	start_sbxd || bail "$1: sbxd did not start again (log: $LOG)"
	if settle; then
		consistent "$1"
	else
		fail "$1: sbxd did not settle within 180 s" "log: $LOG"
	fi
}

# a long-lived sandbox for exec, snapshot and stop
"$SBX" create --name keep </dev/null >/dev/null 2>"$WORK/err" || bail "cannot create sandbox keep: $(cat "$WORK/err")"
consistent "start"

n=0
for d in $DELAYS; do
	n=$((n + 1))
	echo "# ---- kill -9 after $d s ----"

	"$SBX" create --name "c$n" </dev/null >/dev/null 2>&1 &
	crash "create c$n, kill -9 after $d s" "$d"

	"$SBX" exec "keep" -- sh -c 'echo x > /root/f; sleep 4' </dev/null >/dev/null 2>&1 &
	crash "exec in keep, kill -9 after $d s" "$d"

	"$SBX" snapshot create keep "s$n" </dev/null >/dev/null 2>&1 &
	crash "snapshot of keep, kill -9 after $d s" "$d"

	"$SBX" snapshot create --memory keep "m$n" </dev/null >/dev/null 2>&1 &
	crash "memory snapshot of keep, kill -9 after $d s" "$d"

	"$SBX" stop keep </dev/null >/dev/null 2>&1 &
	crash "stop keep, kill -9 after $d s" "$d"
	# whatever the stop reached, keep runs again for the next round
	if [ "$(sql "SELECT state FROM sandboxes WHERE name = 'keep'")" = stopped ]; then
		"$SBX" start keep </dev/null >/dev/null 2>"$WORK/err" ||
			fail "start keep after the crash" "$(head -c 300 "$WORK/err")"
	fi

	if [ -n "$(sql "SELECT name FROM sandboxes WHERE name = 'c$n' AND state = 'ready'")" ]; then
		"$SBX" rm "c$n" </dev/null >/dev/null 2>&1 &
		crash "delete c$n, kill -9 after $d s" "$d"
	fi
	# tidy up what the round left so that rounds stay small
	"$SBX" rm -f "c$n" </dev/null >/dev/null 2>&1
	"$SBX" snapshot rm -f "s$n" "m$n" </dev/null >/dev/null 2>&1
done

# the file written by the exec rounds is in keep: nothing of it was lost
out=$("$SBX" exec keep -- cat /root/f </dev/null 2>"$WORK/err")
if [ "$out" = x ]; then
	pass "keep still has the file an interrupted exec wrote"
else
	fail "keep lost /root/f" "got '$out': $(head -c 200 "$WORK/err")"
fi
"$SBX" rm keep </dev/null >/dev/null 2>&1
consistent "end (all deleted)"

stop_sbxd
left=$(qemu_pids)
if [ -z "$left" ]; then
	pass "no QEMU process of the test remains but the zygote's"
else
	# the zygote is kept by design while sbxd runs; after a stop none remains
	fail "QEMU processes remain after sbxd stopped: $left"
fi
kill_qemu
rm -f "$PIDFILE"
summary
[ "$failures" = 0 ]

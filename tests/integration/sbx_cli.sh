#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# sbx_cli.sh: the sbx command-line tool end to end, one step of `make test`
# (registered in EXTRA_TEST_STEPS by tools/sbx.mk).
#
# Starts its own sbxd on a free loopback port (state in
# $O/test-state/sbx-cli), creates an API key and drives $O/sbx as a person
# would: create, ls, status, exec (exit codes, stdout and stderr kept
# apart, stdin, env, cwd, signals, timeout), cp both ways (a binary file,
# byte-identical; stdin and stdout), rename, rm, and the errors a person
# meets. Real microVMs (TCG where KVM cannot run a guest). Then it stops
# sbxd and checks that no QEMU process of its state directory remains.
# Ends with the Check-style line "P%: Checks: N, Failures: F, Errors: 0"
# that tests/run-all.sh counts.
#
# Environment: O (build directory, default build).
# shellcheck disable=SC2016 # the checks are eval'd strings on purpose
set -u

SUITE=sbx-cli
# shellcheck source=tests/integration/harness.sh
. "$(dirname "$0")/harness.sh"

# expect DESCRIPTION CONDITION-COMMAND...: one check.
expect() {
	desc=$1
	shift
	if "$@"; then
		pass "$desc"
	else
		fail "$desc" "stdout: $(head -c 400 "$WORK/out" 2>/dev/null)" \
			"stderr: $(head -c 400 "$WORK/err" 2>/dev/null)" "exit code: ${rc:-?}"
	fi
}

# run ARGS...: $SBX ARGS with stdout, stderr and exit code kept in
# $WORK/out, $WORK/err and $rc; stdin from /dev/null.
run() {
	"$SBX" "$@" </dev/null >"$WORK/out" 2>"$WORK/err"
	rc=$?
}

# run_env VAR=VALUE ARGS...: the same with one variable changed.
run_env() {
	var=$1
	shift
	env "$var" "$SBX" "$@" </dev/null >"$WORK/out" 2>"$WORK/err"
	rc=$?
}

out_is() { [ "$(cat "$WORK/out")" = "$1" ]; }
err_has() { grep -q -- "$1" "$WORK/err"; }
rc_is() { [ "$rc" = "$1" ]; }

harness_setup cli

# ---- control plane ----
run ls
expect "ls with no sandboxes prints only the header" \
	eval 'rc_is 0 && [ "$(wc -l <"$WORK/out")" = 1 ] && grep -q "^NAME" "$WORK/out"'

run create --name cli-a
expect "create --name prints the name" eval 'rc_is 0 && out_is cli-a'

run create --no-wait --name cli-c --idle-ttl 0 --lifetime 3600
expect "create --no-wait returns at once with the name" eval 'rc_is 0 && out_is cli-c'

run status --json cli-c
expect "create --idle-ttl and --lifetime reach the sandbox" \
	eval 'rc_is 0 && grep -q "\"max_lifetime_seconds\": 3600" "$WORK/out" &&
		grep -q "\"idle_ttl_seconds\": 0" "$WORK/out" && grep -q "\"expires_at\": \"20" "$WORK/out"'

run create --lifetime soon
expect "create --lifetime with a word is a usage error" \
	eval 'rc_is 2 && err_has "lifetime wants seconds"'

run ls
expect "ls shows the sandbox as ready" eval 'rc_is 0 && grep -q "^cli-a  *ready " "$WORK/out"'

run ls --json
expect "ls --json is the API's list" eval 'rc_is 0 && grep -q "\"name\": \"cli-a\"" "$WORK/out"'

run status cli-a
expect "status prints ready" eval 'rc_is 0 && out_is ready'

run create --name cli-a
expect "create of a taken name fails with the API's message" \
	eval 'rc_is 1 && err_has "already exists"'

# ---- exec ----
run exec cli-a -- sh -c 'echo out; echo err >&2; exit 7'
expect "exec passes the exit code through and keeps stdout and stderr apart" \
	eval 'rc_is 7 && out_is out && [ "$(cat "$WORK/err")" = err ]'

run exec cli-a 'echo $((6 * 7)) | tr 4 x'
expect "exec takes one argument as a shell command line" eval 'rc_is 0 && out_is x2'

run exec cli-a -- printf '%s|' 'a b' "it's" ''
expect "exec quotes several arguments word by word" eval "rc_is 0 && out_is \"a b|it's||\""

printf 'one\ntwo\nthree\n' | "$SBX" exec cli-a -- wc -l >"$WORK/out" 2>"$WORK/err"
rc=$?
expect "exec forwards stdin that is not a terminal" eval 'rc_is 0 && out_is 3'

run exec --env FOO=bar --cwd /tmp cli-a -- sh -c 'echo "$FOO $(pwd)"'
expect "exec sets --env and --cwd" eval 'rc_is 0 && out_is "bar /tmp"'

run exec cli-a -- sh -c 'kill -9 $$'
expect "exec reports a signal as 128+N" eval 'rc_is 137'

run exec --timeout 2 cli-a -- sleep 30
expect "exec --timeout kills the command and exits 124" \
	eval 'rc_is 124 && err_has "longer than 2 s"'

"$SBX" exec cli-a -- sh -c 'head -c 3000000 /dev/zero | tr "\0" a; echo; echo done >&2' \
	</dev/null >"$WORK/big" 2>"$WORK/err"
rc=$?
expect "exec streams 3 MB of output intact" \
	eval 'rc_is 0 && [ "$(wc -c <"$WORK/big")" = 3000001 ] && [ "$(tr -d a <"$WORK/big")" = "" ] && err_has done'

# ---- audit: exactly the 8 commands above, in order, with their ends ----
run audit cli-a
audit_got=$(awk 'NR > 1 { printf "%s:%s:%s ", $3, $4, $6 }' "$WORK/out")
audit_want="cli:7:exited cli:0:exited cli:0:exited cli:0:exited cli:0:exited cli:137:exited cli:137:timeout cli:0:exited "
expect "audit lists exactly the commands run, by key, with exit codes and outcomes" \
	eval 'rc_is 0 && [ "$audit_got" = "$audit_want" ] || { echo "# audit: got  $audit_got"; echo "# audit: want $audit_want"; false; }'
run audit --json cli-a
expect "audit --json has the command text and the working directory" \
	eval 'rc_is 0 && grep -q "\"cwd\": \"/tmp\"" "$WORK/out" && grep -q "exit 7" "$WORK/out"'
run audit no-such-box
expect "audit of an unknown sandbox fails clearly" eval 'rc_is 1 && err_has "no sandbox named"'

# ---- /metrics counted what ran above ----
curl -fsS "$SBX_ENDPOINT/metrics" >"$WORK/metrics" 2>"$WORK/err"
rc=$?
metric() { awk -v k="$1" '$1 == k { print int($2) }' "$WORK/metrics"; }
expect "/metrics counts the 3 MB of stdout, the execs and the creates, and the NotFound errors" \
	eval 'rc_is 0 && [ "$(metric "sbx_stream_bytes_total{direction=\"stdout\"}")" -ge 3000000 ] &&
		[ "$(metric sbx_exec_start_seconds_count)" -ge 8 ] &&
		[ "$(metric "sbx_exec_start_seconds_bucket{le=\"+Inf\"}")" = "$(metric sbx_exec_start_seconds_count)" ] &&
		[ "$(metric sbx_create_seconds_count)" -ge 2 ] &&
		[ "$(metric "sbx_errors_total{kind=\"NotFound\"}")" -ge 1 ]'

run exec cli-c -- true
expect "exec waits for a sandbox that is still starting" eval 'rc_is 0'

# ---- shell: a PTY driven through script(1), which gives sbx a terminal ----
if command -v script >/dev/null 2>&1; then
	# The typist waits on what the terminal shows, not on the clock: it
	# types once the remote shell's prompt is there, and keeps script's
	# stdin open until the last command behind sbx has printed its end
	# marker (script may stop at the end of its input). Each wait has a
	# deadline; past it, the checks below say what went wrong.
	: >"$WORK/pty"
	# shellcheck disable=SC2094 # the typist reads what script writes
	(
		i=0
		while ! grep -q '[#$] ' "$WORK/pty" && [ $i -lt 300 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		printf 'stty size; tty; exit 3\r'
		i=0
		while ! grep -q '^pty-test-end' "$WORK/pty" && [ $i -lt 600 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	) | TERM=xterm script -qec \
		"stty rows 30 cols 100; '$SBX' shell cli-a; echo rc=\$?; stty -a; echo pty-test-end" \
		/dev/null >"$WORK/pty" 2>&1
	rc=$(sed -n 's/.*rc=\([0-9]*\).*/\1/p' "$WORK/pty" | head -n 1)
	expect "shell runs on a PTY of our terminal's size and passes its exit code" \
		eval 'rc_is 3 && grep -q "30 100" "$WORK/pty" && grep -q "^/dev/pts/[0-9]" "$WORK/pty"'
	expect "shell restores the terminal when it ends" \
		eval 'grep -q " icanon" "$WORK/pty" && grep -q " echo " "$WORK/pty"'
else
	fail "script(1) is missing: cannot test sbx shell (apt-get install bsdutils)"
fi

# ---- cp ----
head -c 3145728 /dev/urandom >"$WORK/blob"
printf '\000\001\377\r\n' >>"$WORK/blob"
sum=$(sha256sum <"$WORK/blob" | cut -d' ' -f1)

run cp "$WORK/blob" cli-a:/root/blob
expect "cp LOCAL NAME:PATH uploads" eval 'rc_is 0'

run exec cli-a -- sh -c 'sha256sum </root/blob'
expect "the uploaded file is byte-identical in the sandbox" \
	eval "rc_is 0 && [ \"\$(cut -d' ' -f1 \"\$WORK/out\")\" = $sum ]"

run cp cli-a:/root/blob "$WORK/blob.back"
expect "cp NAME:PATH LOCAL downloads a byte-identical file" \
	eval 'rc_is 0 && cmp -s "$WORK/blob" "$WORK/blob.back"'

mkdir -p "$WORK/dir"
run cp cli-a:/root/blob "$WORK/dir"
expect "cp into a local directory keeps the file name" \
	eval 'rc_is 0 && cmp -s "$WORK/blob" "$WORK/dir/blob"'

"$SBX" cp - cli-a:/tmp/piped <"$WORK/blob" >"$WORK/out" 2>"$WORK/err"
rc=$?
expect "cp - NAME:PATH uploads stdin" eval 'rc_is 0'

"$SBX" cp cli-a:/tmp/piped - </dev/null >"$WORK/piped" 2>"$WORK/err"
rc=$?
expect "cp NAME:PATH - downloads to stdout, byte-identical" \
	eval 'rc_is 0 && cmp -s "$WORK/blob" "$WORK/piped"'

run cp cli-a:/no/such/file "$WORK/missing"
expect "cp of a missing file fails and leaves no local file" \
	eval 'rc_is 1 && [ ! -e "$WORK/missing" ] && [ -z "$(ls -A "$WORK" | grep "\.sbx-")" ]'

# ---- rename, rm ----
run rename cli-a cli-b
expect "rename" eval 'rc_is 0'
run status cli-b
expect "the renamed sandbox answers under its new name" eval 'rc_is 0 && out_is ready'
run status cli-a
expect "the old name is gone" eval 'rc_is 1 && err_has "no sandbox named .cli-a."'

run rm cli-b cli-c
expect "rm deletes sandboxes" eval 'rc_is 0'
run ls --quiet
expect "ls no longer lists them" eval 'rc_is 0 && [ ! -s "$WORK/out" ]'
run rm cli-b
expect "rm of a missing sandbox fails" eval 'rc_is 1 && err_has "no sandbox named"'
run rm -f cli-b
expect "rm -f of a missing sandbox succeeds" eval 'rc_is 0'

# ---- errors for a person ----
run_env SBX_API_KEY=sbx_wrong ls
expect "a wrong key is refused in words" eval 'rc_is 1 && err_has "refused the API key"'
run_env SBX_API_KEY= ls
expect "no key at all says how to set one" eval 'rc_is 1 && err_has "no API key: set SBX_API_KEY"'
run --endpoint http://127.0.0.1:1 ls
expect "an unreachable sbxd says so" \
	eval 'rc_is 1 && err_has "cannot reach sbxd at http://127.0.0.1:1: connection refused"'

# ---- nothing left behind ----
if stop_sbxd; then
	pass "sbxd stops on SIGTERM"
else
	fail "sbxd stops on SIGTERM (killed; log: $LOG)"
fi
sleep 1
left=$(qemu_pids)
if [ -z "$left" ]; then
	pass "no QEMU process of the test remains"
else
	fail "no QEMU process of the test remains" "still running: $left"
	kill_qemu
fi

summary
[ "$failures" = 0 ]

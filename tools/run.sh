#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `make run` (after deps, all and image): runs sbxd in the foreground on
# 127.0.0.1:8080 with its state in /var/lib/sbx, and prints how to use it.
#
#   SBX_LISTEN=ADDR:PORT, SBX_STATE_DIR=DIR (and every other SBX_* setting,
#   or /etc/sbx/sbxd.conf) change where it serves and keeps its state.
#
# The first run creates an API key named "first" and keeps it in
# STATE/first-key (mode 0600); later runs reuse it and print it again. No key
# is created when the state directory already has valid keys of its own.
# Ctrl-C stops sbxd; sandboxes keep running and the next `make run` adopts
# them (see docs/sbxd.md).
set -eu

O=${O:-build}
SBXD=$O/sbxd
[ -x "$SBXD" ] || { echo "run: $SBXD is missing (make all)" >&2; exit 1; }

setting() { "$SBXD" config | sed -n "s/^$1 = //p"; }
STATE=$(setting state-dir)
LISTEN=$(setting listen)
PUBLIC=$(setting public-url)
export SBX_STATE_DIR="$STATE" SBX_LISTEN="$LISTEN"

# The URL a client on this machine uses, and the one to show (public-url
# when set, for clients elsewhere).
LOCAL_ENDPOINT=http://$(echo "$LISTEN" | sed 's/^0\.0\.0\.0:/127.0.0.1:/; s/^\[::\]:/[::1]:/')
ENDPOINT=${PUBLIC%/}
ENDPOINT=${ENDPOINT:-$LOCAL_ENDPOINT}

mkdir -p "$STATE"
KEYFILE=$STATE/first-key

# The valid keys of this state directory, one "NAME" a line.
valid_keys() {
	"$SBXD" key list --state-dir "$STATE" 2>/dev/null | awk 'NR > 1 && $4 == "valid" { print $1 }'
}

KEY=
KEYNOTE=
if [ -s "$KEYFILE" ] && valid_keys | grep -qx first; then
	KEY=$(head -n 1 "$KEYFILE")
	KEYNOTE="kept in $KEYFILE from an earlier run"
elif [ -z "$(valid_keys)" ]; then
	rm -f "$KEYFILE"
	for name in first "first-$(date +%Y%m%d%H%M%S)"; do
		KEY=$("$SBXD" key create --name "$name" --state-dir "$STATE" 2>/dev/null | tail -n 1) && break
		KEY=
	done
	[ -n "$KEY" ] || { echo "run: sbxd key create failed" >&2; exit 1; }
	(umask 077 && echo "$KEY" >"$KEYFILE.tmp" && mv "$KEYFILE.tmp" "$KEYFILE")
	chmod 0600 "$KEYFILE"
	KEYNOTE="new; saved in $KEYFILE (mode 0600)"
fi

"$SBXD" serve &
pid=$!
# Ctrl-C reaches sbxd through us: a background job of a script ignores SIGINT.
trap 'kill -INT $pid 2>/dev/null || true' INT
trap 'kill -TERM $pid 2>/dev/null || true' TERM HUP

finish() {
	rc=0
	while kill -0 "$pid" 2>/dev/null; do
		wait "$pid" && rc=0 || rc=$?
	done
	exit "$rc"
}

i=0
until curl -fsS -o /dev/null --max-time 2 "$LOCAL_ENDPOINT/healthz" 2>/dev/null; do
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" && rc=0 || rc=$?
		echo "run: sbxd exited with status $rc before it served (is $LISTEN in use, or another sbxd on $STATE?)" >&2
		exit "$rc"
	fi
	i=$((i + 1))
	[ $i -lt 1200 ] || { echo "run: sbxd did not answer $LOCAL_ENDPOINT/healthz within 120 s" >&2; break; }
	sleep 0.1
done

if [ -n "$KEY" ]; then
	KEYREF="\$(cat $KEYFILE)"
else
	KEYREF="<your key>"
fi
cat <<EOF

==============================================================================
 sbx is running: sbxd serves $ENDPOINT (state in $STATE)
EOF
if [ -n "$KEY" ]; then
	cat <<EOF
 API key: $KEY
          ($KEYNOTE)
EOF
else
	cat <<EOF
 API keys: $STATE already has keys of its own (sbxd key list --state-dir $STATE);
           make one with: $SBXD key create --state-dir $STATE
EOF
fi
cat <<EOF

 With the langsmith client (Node.js; npm install langsmith@0.12.0 ws), put
 these five lines in demo.mjs:

   import { SandboxClient } from "langsmith/sandbox";
   const client = new SandboxClient();            // LANGSMITH_ENDPOINT, LANGSMITH_API_KEY
   const sandbox = await client.createSandbox();  // boots a microVM
   console.log((await sandbox.run("uname -a")).stdout);
   await sandbox.delete();

 and run it from another terminal:

   export LANGSMITH_ENDPOINT=$ENDPOINT
   export LANGSMITH_API_KEY=$KEYREF
   node demo.mjs

 With the sbx CLI:

   export SBX_ENDPOINT=$ENDPOINT SBX_API_KEY=$KEYREF
   $O/sbx create --name demo
   $O/sbx exec demo -- uname -a
   $O/sbx rm demo

 Ctrl-C stops sbxd; sandboxes keep running and the next 'make run' adopts them.
==============================================================================

EOF
finish

#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The module rules of docs/architecture (style.md §3.1), checked mechanically:
#  - protocol/ includes nothing from host/ or guest/; its headers name no msgpack type;
#  - only protocol/*.c includes <msgpack.h>;
#  - guest/ never includes libvirt, and the agent binary has no vir* symbol
#    and no dynamic dependency.
set -u
O=${1:-build}
bad=0
fail() { echo "layering: $*"; bad=1; }

grep -nE '#include *"(\.\./)?(host|guest)/' protocol/*.c protocol/*.h 2>/dev/null &&
	fail "protocol/ includes host/ or guest/"
grep -nE 'msgpack_' protocol/*.h 2>/dev/null && fail "a protocol/ header names a msgpack type"
for f in $(git ls-files '*.c' '*.h' 2>/dev/null); do
	case "$f" in protocol/*.c) continue ;; esac
	grep -qE '#include *<msgpack' "$f" && fail "$f includes <msgpack.h> (only protocol/*.c may)"
done
grep -lE '#include *<libvirt' guest/*.c guest/*.h 2>/dev/null && fail "guest/ includes libvirt"
if [ -x "$O/sbx-agent" ]; then
	nm "$O/sbx-agent" 2>/dev/null | grep -qE ' vir[A-Z]' && fail "sbx-agent contains vir* symbols"
	# sanitizer builds (make asan) link the agent dynamically on purpose
	if ! nm "$O/sbx-agent" 2>/dev/null | grep -q '__asan_init'; then
		readelf -d "$O/sbx-agent" 2>/dev/null | grep -q NEEDED && fail "sbx-agent is not static"
	fi
fi
[ "$bad" = 0 ] && echo "layering: ok"
exit "$bad"

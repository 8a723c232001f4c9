#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The layering of docs/architecture.md ("Layers and their doors"), checked
# mechanically. Every #include "..." of a C file names its folder from the
# top of the tree; this script fails on any include that crosses folders
# other than along an edge of the table below, or that enters another
# folder through a header that is not one of its public ones.
# Also:
#  - protocol/ headers name no msgpack type, and only protocol/*.c includes
#    <msgpack.h>;
#  - guest/ never includes libvirt; the agent binary has no vir* symbol
#    and no dynamic dependency;
#  - no Makefile fragment adds an -I flag other than -I. (and libraries').
#
#   tools/check-layering.sh [O]         check the tree (and $O/sbx-agent)
#   tools/check-layering.sh --self-test check that a wrong include fails
set -u

# folder: the folders its files may include from (besides its own and base).
# A file belongs to the longest folder of this table that holds it.
EDGES='
base:
protocol:
guest: protocol
host/vm:
host/agent: protocol
snapshot: host/vm host/agent protocol
sbxd/common:
sbxd/store:
sbxd/http:
sbxd/mgr: sbxd/store sbxd/common
sbxd/backend: sbxd/mgr sbxd/store sbxd/common snapshot host/vm host/agent protocol
sbxd/api: sbxd/http sbxd/mgr sbxd/store sbxd/common
sbxd/dataplane: sbxd/dataplane/parse sbxd/api sbxd/http sbxd/mgr sbxd/store sbxd/common host/agent protocol
sbxd/dataplane/parse:
sbxd: sbxd/api sbxd/dataplane sbxd/dataplane/parse sbxd/backend sbxd/http sbxd/mgr sbxd/store sbxd/common snapshot host/vm host/agent protocol
tools: snapshot host/vm host/agent protocol
'
# folder: its public headers, the only ones other folders may include.
DOORS='
base: *
protocol: proto.h
host/vm: vm.h
host/agent: agent_client.h
snapshot: snap.h
sbxd/common: key.h metrics.h image.h
sbxd/store: store.h
sbxd/http: http_server.h
sbxd/mgr: mgr.h
sbxd/backend: backend.h
sbxd/api: api.h dataplane.h
sbxd/dataplane: dp.h
sbxd/dataplane/parse: *
'

# the folder (a line of EDGES) a file belongs to: its longest prefix there
folder_of() {
	local best="" d
	for d in $(echo "$EDGES" | sed -n 's/^\([^:]*\):.*/\1/p'); do
		case "$1" in "$d"/*)
			[ ${#d} -gt ${#best} ] && best=$d ;;
		esac
	done
	echo "$best"
}

# check_tree ROOT: prints one line per bad include, returns 1 if any
check_tree() {
	local root=$1 rc=0 files f from allowed inc to doors

	files=$(cd "$root" && find base protocol guest host snapshot sbxd tools \
		-name '*.[ch]' 2>/dev/null | sort)
	for f in $files; do
		from=$(folder_of "$f")
		[ -n "$from" ] || { echo "layering: $f is in no folder of the table"; rc=1; continue; }
		allowed=" base $from $(echo "$EDGES" | sed -n "s|^$from: *||p") "
		for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$root/$f"); do
			if [ ! -f "$root/$inc" ]; then
				echo "layering: $f includes \"$inc\", which is not a path from the top"
				rc=1
				continue
			fi
			to=$(folder_of "$inc")
			[ "$to" = "$from" ] && continue
			case "$allowed" in *" $to "*) ;; *)
				echo "layering: $f includes $inc: $from may not depend on $to (docs/architecture.md)"
				rc=1
				continue ;;
			esac
			doors=" $(echo "$DOORS" | sed -n "s|^$to: *||p") "
			case "$doors" in
			*" * "* | *" ${inc##*/} "*) ;;
			*)
				echo "layering: $f includes $inc: not a public header of $to (those are:$doors)"
				rc=1 ;;
			esac
		done
	done
	return $rc
}

if [ "${1:-}" = "--self-test" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp" 2>/dev/null
	check_tree "$tmp" >/dev/null || { echo "self-test: the tree itself fails"; exit 1; }
	ok=1
	# a lower layer reaching up; a private header of another folder
	for bad in 'sbxd/http/http_server.c:sbxd/api/api.h' 'tools/sbx-snapshot.c:snapshot/snap_int.h' \
		'snapshot/capture.c:sbxd/store/store.h' 'sbxd/mgr/mgr.c:host/vm/vm.h'; do
		f=${bad%%:*}
		cp "$tmp/$f" "$tmp/$f.orig"
		printf '#include "%s"\n' "${bad#*:}" >>"$tmp/$f"
		if check_tree "$tmp" >/dev/null; then
			echo "self-test: $f including ${bad#*:} was not caught"
			ok=0
		fi
		mv "$tmp/$f.orig" "$tmp/$f"
	done
	[ "$ok" = 1 ] && echo "layering self-test: ok"
	[ "$ok" = 1 ]
	exit
fi

O=${1:-build}
bad=0
fail() { echo "layering: $*"; bad=1; }

check_tree . || bad=1
grep -nE 'msgpack_' protocol/*.h 2>/dev/null && fail "a protocol/ header names a msgpack type"
for f in $(git ls-files '*.c' '*.h' 2>/dev/null); do
	case "$f" in protocol/*.c) continue ;; esac
	grep -qE '#include *<msgpack' "$f" && fail "$f includes <msgpack.h> (only protocol/*.c may)"
done
grep -lE '#include *<libvirt' guest/*.c guest/*.h 2>/dev/null && fail "guest/ includes libvirt"
git grep -nE -- '(^|[[:space:]])-I([^.[:space:]]|\.[^[:space:]])' -- Makefile '*.mk' && fail "an -I flag other than -I. (docs/architecture.md)"
if [ -x "$O/sbx-agent" ]; then
	nm "$O/sbx-agent" 2>/dev/null | grep -qE ' vir[A-Z]' && fail "sbx-agent contains vir* symbols"
	# sanitizer builds (make asan) link the agent dynamically on purpose
	if ! nm "$O/sbx-agent" 2>/dev/null | grep -q '__asan_init'; then
		readelf -d "$O/sbx-agent" 2>/dev/null | grep -q NEEDED && fail "sbx-agent is not static"
	fi
fi
[ "$bad" = 0 ] && echo "layering: ok"
exit "$bad"

# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Helpers shared by the rootfs/ build scripts (sourced, not run).

msg() { printf 'image: %s\n' "$*"; }
die() {
	printf 'image: error: %s\n' "$*" >&2
	exit 1
}
need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "'$t' is not installed (run 'make deps')"
	done
}

# Temporary paths removed on any exit; a finished file or directory is moved
# into place with rename(2), so a final name only ever holds a complete item.
SBX_TMP_PATHS=()
sbx_cleanup() {
	local p
	for p in "${SBX_TMP_PATHS[@]}"; do
		[ -n "$p" ] && [ -e "$p" ] && sbx_rm_tree "$p"
	done
	return 0
}

# sbx_rm_tree DIR: remove DIR, first detaching anything still mounted below
# it (an interrupted mmdebstrap can leave its /proc, /sys, /dev mounts in
# the tree) and never crossing into another file system.
sbx_rm_tree() {
	local dir mp
	dir=$(realpath -- "$1")
	if [ -d "$dir" ] && [ -r /proc/self/mountinfo ]; then
		awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
			sort -r | while IFS= read -r mp; do umount -l -- "$mp" 2>/dev/null || true; done
	fi
	rm -rf --one-file-system -- "$dir"
}
trap sbx_cleanup EXIT
trap 'exit 130' INT TERM HUP

# mktemp_in DIR PREFIX [-d]: sets TMP_PATH to a new temporary file (or
# directory with -d) in DIR, so that the final rename stays on one file
# system; it is removed on exit unless it was renamed into place.
# (Not to be called in $(...): the clean-up list lives in this shell.)
TMP_PATH=
mktemp_in() {
	local dir=$1 prefix=$2 flag=${3:-}
	mkdir -p -- "$dir"
	# shellcheck disable=SC2086
	TMP_PATH=$(mktemp $flag -p "$dir" ".$prefix.tmp.XXXXXX") || die "cannot create a temporary in $dir"
	SBX_TMP_PATHS+=("$TMP_PATH")
}

# publish TMP FINAL: atomically put a finished file in place.
publish() {
	mv -f -- "$1" "$2"
}

# sbx_cache_dir O: where downloaded .debs are kept ($O/cache).
sbx_cache_dir() { printf '%s/cache\n' "$1"; }

# Run apt-get without its "unsandboxed as root" warning when we are root.
sbx_apt_get() {
	if [ "$(id -u)" = 0 ]; then
		apt-get -q -o APT::Sandbox::User=root "$@"
	else
		apt-get -q "$@"
	fi
}

# sbx_mkext4 TREE IMG SIZE LABEL: a sparse raw ext4 image of SIZE holding
# TREE's files (owners, modes and extended attributes as they are in TREE),
# checked with e2fsck. No loop mount: mkfs.ext4 -d copies the tree.
sbx_mkext4() {
	local tree=$1 img=$2 size=$3 label=$4
	need mkfs.ext4 e2fsck truncate
	rm -f -- "$img"
	truncate -s "$size" "$img" || die "bad image size '$size'"
	mkfs.ext4 -q -F -b 4096 -L "$label" -m 0 -d "$tree" "$img" ||
		die "mkfs.ext4 -d $tree failed (is $size big enough?)"
	e2fsck -fn "$img" >/dev/null 2>&1 || die "the new image does not pass e2fsck"
	chmod 644 "$img"
}

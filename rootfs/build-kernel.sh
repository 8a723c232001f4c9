#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Fetch Debian's amd64 kernel package and unpack it (no kernel build).
#
#   rootfs/build-kernel.sh OUT_DIR CACHE_DIR
#
# CACHE_DIR keeps the downloaded .debs (apt-get download runs there).
# OUT_DIR is replaced as a whole once everything is ready:
#   OUT_DIR/vmlinuz                     the bzImage from /boot
#   OUT_DIR/vmlinux                     the same kernel uncompressed (an ELF
#                                       with a PVH entry note): QEMU boots it
#                                       without the slow in-guest xz step
#   OUT_DIR/lib/modules/RELEASE/...     the module tree, with depmod's indexes
#   OUT_DIR/kernel.json                 package, version, release, deb sha256
# The metapackage (linux-image-amd64 unless SBX_KERNEL_META says otherwise)
# is resolved to the real linux-image-<abi>-amd64 package it depends on.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

[ $# -eq 2 ] || die "usage: $0 OUT_DIR CACHE_DIR"
out=$1
cache=$2
meta=${SBX_KERNEL_META:-linux-image-amd64}
need apt-get apt-cache dpkg-deb depmod python3 sha256sum
mkdir -p -- "$cache" "$(dirname "$out")"
cache=$(cd "$cache" && pwd)

# fetch PKG: make sure the cache holds PKG's candidate .deb (a cached file
# whose SHA-256 matches the archive's is not downloaded again) and print its
# path. Offline, the newest cached .deb of PKG is used, with a warning.
fetch() {
	local pkg=$1 info ver arch sha file
	info=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null) || info=
	if [ -z "$info" ] && [ "$(id -u)" = 0 ] && [ -z "${updated:-}" ]; then
		# No package lists yet (a fresh or cleaned machine): fetch them once.
		updated=1
		msg "no apt package lists: running apt-get update..." >&2
		sbx_apt_get update >/dev/null 2>&1 || true
		info=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null) || info=
	fi
	ver=$(printf '%s\n' "$info" | sed -n 's/^Version: //p' | head -n1)
	arch=$(printf '%s\n' "$info" | sed -n 's/^Architecture: //p' | head -n1)
	sha=$(printf '%s\n' "$info" | sed -n 's/^SHA256: //p' | head -n1)
	if [ -n "$ver" ]; then
		file=$cache/${pkg}_${ver//:/%3a}_${arch}.deb
		if [ -s "$file" ] && [ "$(sha256sum <"$file" | cut -d' ' -f1)" = "$sha" ]; then
			printf '%s\n' "$file"
			return 0
		fi
		if (cd "$cache" && sbx_apt_get download "$pkg=$ver" >/dev/null) && [ -s "$file" ]; then
			printf '%s\n' "$file"
			return 0
		fi
	fi
	file=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" -printf '%T@ %p\n' | sort -rn | head -n1 | cut -d' ' -f2-)
	[ -n "$file" ] || die "cannot download $pkg (run 'apt-get update'; is the network up?)"
	printf 'image: warning: cannot download %s, using the cached %s\n' "$pkg" "$(basename "$file")" >&2
	printf '%s\n' "$file"
}

msg "downloading kernel package..."
meta_deb=$(fetch "$meta")
# Depends: linux-image-6.1.0-NN-amd64 (= 6.1.xxx-y)
real=$(dpkg-deb -f "$meta_deb" Depends | tr ',|' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1)
[ -n "$real" ] || die "$(basename "$meta_deb") does not depend on a linux-image-<version> package"
real_deb=$(fetch "$real")
pkg=$(dpkg-deb -f "$real_deb" Package)
ver=$(dpkg-deb -f "$real_deb" Version)

msg "unpacking $pkg $ver..."
mktemp_in "$(dirname "$out")" kernel -d
tmp=$TMP_PATH
mkdir -p "$tmp/x"
dpkg-deb -x "$real_deb" "$tmp/x"
set -- "$tmp"/x/lib/modules/*/
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	die "$pkg: expected exactly one /lib/modules/<release> directory"
fi
release=$(basename "$1")
vmlinuz=$tmp/x/boot/vmlinuz-$release
[ -f "$vmlinuz" ] || die "$pkg: no /boot/vmlinuz-$release"
mv "$vmlinuz" "$tmp/vmlinuz"
python3 "$here/imgtool.py" vmlinux "$tmp/vmlinuz" "$tmp/vmlinux"
mkdir -p "$tmp/lib/modules"
mv "$tmp/x/lib/modules/$release" "$tmp/lib/modules/$release"
mv "$tmp/x/boot/config-$release" "$tmp/config" 2>/dev/null || true
rm -rf "$tmp/x"
# modules.dep/modules.alias are made by the package's postinst; make them here
# so that module aliases (softdep "crypto-crc32c") can be resolved.
depmod -b "$tmp" "$release"

python3 - "$tmp/kernel.json" "$pkg" "$ver" "$release" "$real_deb" "$meta" <<'EOF'
import hashlib, json, os, sys
out, pkg, ver, rel, deb, meta = sys.argv[1:]
h = hashlib.sha256()
with open(deb, "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
info = {"package": pkg, "version": ver, "release": rel, "metapackage": meta,
        "deb": os.path.basename(deb), "deb_sha256": h.hexdigest()}
with open(out, "w") as f:
    json.dump(info, f, indent=2)
    f.write("\n")
EOF

chmod 755 "$tmp"
rm -rf -- "$out"
mv -- "$tmp" "$out"
msg "kernel $release ($pkg $ver) ready"

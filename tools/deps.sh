#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install what sbx needs on Debian bookworm, only what is missing, and do the
# one-time system set-up of libvirt's embedded QEMU driver. Idempotent: a
# second run prints one line and changes nothing.
set -eu

PKGS="gcc make pkg-config clang libclang-rt-14-dev
libvirt-daemon-driver-qemu libvirt-daemon libvirt-dev qemu-system-x86 qemu-utils
libmsgpack-dev liburing-dev libzstd-dev libssl-dev check libsubunit-dev libarchive-dev
libsqlite3-dev libwebsockets-dev libjansson-dev libxml2-dev libcurl4-openssl-dev sqlite3 jq
mmdebstrap debootstrap kmod e2fsprogs cpio zstd xz-utils ca-certificates
nodejs npm"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		# nodejs may come from elsewhere than Debian (npm bundled with it)
		case "$p" in nodejs|npm) command -v "$p" >/dev/null 2>&1 && continue ;; esac
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: these Debian packages are missing:$missing" >&2
		echo "deps: run 'make deps' as root (or install them with apt-get) and try again" >&2
		exit 1
	fi
	echo "deps: installing:$missing (this can take a few minutes)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null || { echo "deps: 'apt-get update' failed: check /etc/apt/sources.list* and the network" >&2; exit 1; }
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing | grep -E '^(Setting up|E:)' || true
	for p in $missing; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			case "$p" in nodejs|npm) command -v "$p" >/dev/null 2>&1 ;; *) false ;; esac ||
			{ echo "deps: package $p did not install" >&2; exit 1; }
	done
fi

# libvirt's embedded QEMU driver refuses to start without this account, even
# when qemu.conf names another user.
if [ "$(id -u)" = 0 ]; then
	getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
	getent passwd libvirt-qemu >/dev/null ||
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin -g libvirt-qemu libvirt-qemu
fi
echo "deps: all packages present"

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Build the default root file system: Debian bookworm minbase + python3, as a
# raw sparse ext4 image, from this machine's own apt sources.
#
#   rootfs/build-rootfs.sh OUT.ext4 WORK_DIR [SIZE]
#   rootfs/build-rootfs.sh --print-sources WORK_DIR   (show the apt sources used)
#
# SIZE is the image's virtual size (default 2G). WORK_DIR holds the
# temporary tree. The image is written beside OUT.ext4 and renamed onto it
# only when complete. Environment:
#   SBX_SUITE        Debian suite to bootstrap (default bookworm)
#   SBX_APT_SOURCES  an apt sources file (one-line or deb822) to use instead
#                    of the Debian entries found in /etc/apt
#   SBX_INCLUDE      extra packages, comma-separated (default python3)
# Needs root (mmdebstrap's root mode: maintainer scripts run in a chroot).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	die "usage: $0 OUT.ext4 WORK_DIR [SIZE]"
fi
out=$1
work=$2
size=${3:-2G}
suite=${SBX_SUITE:-bookworm}
include=${SBX_INCLUDE:-python3}
label=sbx-root
need mmdebstrap awk
[ "$out" = --print-sources ] || [ "$(id -u)" = 0 ] || die "building the root file system needs root (mmdebstrap, file ownership)"

# debian_sources: print the Debian entries of this machine's apt sources as
# deb822 stanzas for $suite, $suite-updates and $suite-security, component
# main. Entries of other archives (third-party repositories, other suites,
# entries signed with another keyring) are left out.
debian_sources() {
	local f files=()
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 0
	awk -v suite="$suite" '
	function debian_suite(s) {
		return s == suite || s == suite "-updates" || s == suite "-security" || s == suite "/updates"
	}
	function debian_key(k) { return k == "" || k ~ /debian-archive-keyring/ }
	function has_main(comps,   n, a, i) {
		n = split(comps, a, /[ \t]+/)
		for (i = 1; i <= n; i++) if (a[i] == "main") return 1
		return 0
	}
	function emit(uris, suites, key,   n, a, i, keep) {
		n = split(suites, a, /[ \t]+/); keep = ""
		for (i = 1; i <= n; i++) if (debian_suite(a[i])) keep = keep (keep == "" ? "" : " ") a[i]
		if (keep == "" || uris == "" || !debian_key(key)) return
		printf "Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n", uris, keep
		if (key != "") printf "Signed-By: %s\n", key
		printf "\n"
	}
	function flush() {
		if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no" && has_main(comps))
			emit(uris, suites, key)
		types = uris = suites = comps = key = enabled = ""
	}
	FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
	deb822 {
		if ($0 ~ /^[ \t]*$/) { flush(); next }
		if ($0 ~ /^#/ || $0 !~ /^[A-Za-z-]+:/) next
		k = tolower(substr($0, 1, index($0, ":") - 1)); v = substr($0, index($0, ":") + 1)
		gsub(/^[ \t]+|[ \t]+$/, "", v)
		if (k == "types") types = v; else if (k == "uris") uris = v
		else if (k == "suites") suites = v; else if (k == "components") comps = v
		else if (k == "signed-by") key = v; else if (k == "enabled") enabled = v
		next
	}
	/^[ \t]*deb[ \t]/ {
		line = $0; sub(/#.*/, "", line); opts = ""
		if (match(line, /\[[^]]*\]/)) {
			opts = substr(line, RSTART + 1, RLENGTH - 2)
			line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
		}
		n = split(line, w, /[ \t]+/); j = 0
		for (i = 1; i <= n; i++) if (w[i] != "") ww[++j] = w[i]
		if (j < 4) next
		key = ""
		if (match(opts, /signed-by=[^ \t]+/)) key = substr(opts, RSTART + 10, RLENGTH - 10)
		comps = ""; for (i = 4; i <= j; i++) comps = comps " " ww[i]
		if (has_main(comps)) emit(ww[2], ww[3], key)
		key = ""
	}
	END { flush() }
	' "${files[@]}"
}

if [ "$out" = --print-sources ]; then
	debian_sources
	exit 0
fi
mkdir -p -- "$work" "$(dirname "$out")"
mktemp_in "$work" rootfs -d
tmp=$TMP_PATH
sources=$tmp/debian.sources
if [ -n "${SBX_APT_SOURCES:-}" ]; then
	[ -f "$SBX_APT_SOURCES" ] || die "SBX_APT_SOURCES=$SBX_APT_SOURCES is not a file"
	cp -- "$SBX_APT_SOURCES" "$sources"
else
	debian_sources >"$sources"
	[ -s "$sources" ] || die "no Debian '$suite' entry (component main) in /etc/apt/sources.list{,.d}; set SBX_APT_SOURCES to an apt sources file"
fi
tree=$tmp/tree

msg "bootstrapping Debian $suite minbase + $include (about 1 minute)..."
# Documentation, manual pages and translations are never unpacked (the dpkg
# filter stays in the image, so packages installed later stay lean too);
# copyright files are kept.
mmdebstrap --quiet --mode=root --variant=minbase --include="$include" \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--dpkgopt='path-exclude=/usr/share/lintian/*' \
	--aptopt='Acquire::Languages "none"' \
	"$suite" "$tree" "$sources" >"$tmp/mmdebstrap.log" 2>&1 ||
	{
		tail -n 30 "$tmp/mmdebstrap.log" >&2
		die "mmdebstrap failed (full log above)"
	}

msg "configuring and cleaning the tree..."
tree=$(realpath -- "$tree")
if awk -v d="$tree" 'index($5, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
	die "file systems are still mounted under $tree after mmdebstrap"
fi
# Identity: the same for every image; the agent sets the real one at start.
echo sandbox >"$tree/etc/hostname"
cat >"$tree/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	sandbox
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
: >"$tree/etc/machine-id"
rm -f "$tree/var/lib/dbus/machine-id"
# Nothing of the build machine: mmdebstrap copies its resolv.conf in.
rm -f "$tree/etc/resolv.conf"
: >"$tree/etc/resolv.conf"
rm -f "$tree"/etc/ssh/ssh_host_*
# Caches, package lists, logs, backups of dpkg's state.
rm -rf "$tree"/var/cache/apt/* "$tree"/var/lib/apt/lists/* "$tree"/var/cache/debconf/*-old \
	"$tree"/var/lib/dpkg/*-old "$tree"/var/log/* "$tree"/tmp/* "$tree"/var/tmp/* \
	"$tree"/root/.cache "$tree"/root/.bash_history
mkdir -p "$tree/var/lib/apt/lists/partial" "$tree/var/cache/apt/archives/partial"
# Mount points sbx-agent moves its mounts onto.
for d in proc sys dev run tmp; do mkdir -p "$tree/$d"; done
chmod 1777 "$tree/tmp" "$tree/var/tmp"
# Device nodes are provided by devtmpfs at run time.
find "$tree/dev" -mindepth 1 -delete
# poweroff, halt, reboot, shutdown. Debian's come with an init system
# (systemd-sysv, sysvinit-core); minbase has none, and systemctl refuses to
# run under another PID 1. These signal sbx-agent, PID 1, as busybox's do;
# it ends every process, syncs and powers the VM off (docs/agent.md).
# /usr/local/sbin is first in PATH: they also win over an init system's
# tools installed later.
mkdir -p "$tree/usr/local/sbin"
cat >"$tree/usr/local/sbin/poweroff" <<'EOF'
#!/bin/sh
# sbx: poweroff, halt, reboot and shutdown in a sandbox. PID 1 (sbx-agent)
# ends every process, syncs and powers the VM off on SIGUSR2 (poweroff),
# SIGUSR1 (halt) and SIGTERM (reboot): a sandbox does not reboot or stay
# halted, the VM is powered off in every case. Options (-f, -p...) are
# accepted and ignored; shutdown acts at once ("now" or "+0" only).
me=${0##*/}
case $me in
halt) sig=USR1 ;;
reboot) sig=TERM ;;
*) sig=USR2 ;;
esac
if [ "$me" = shutdown ]; then
	when=
	for a in "$@"; do
		case $a in
		-r | --reboot) sig=TERM ;;
		-H | --halt) sig=USR1 ;;
		-c | -k) echo "shutdown: $a is not supported in a sandbox" >&2 && exit 1 ;;
		-*) ;;
		*) [ -n "$when" ] || when=$a ;;
		esac
	done
	case ${when:-now} in
	now | +0) ;;
	*) echo "shutdown: only 'now' works in a sandbox, not '$when'" >&2 && exit 1 ;;
	esac
fi
kill -s "$sig" 1
EOF
chmod 755 "$tree/usr/local/sbin/poweroff"
for n in halt reboot shutdown; do ln -sf poweroff "$tree/usr/local/sbin/$n"; done

msg "making the ext4 image ($size virtual)..."
mktemp_in "$(dirname "$out")" "$(basename "$out")"
img=$TMP_PATH
sbx_mkext4 "$tree" "$img" "$size" "$label"
sbx_rm_tree "$tree"
chmod 644 "$img"
publish "$img" "$out"
used=$(du -k --apparent-size "$out" | cut -f1)
alloc=$(du -k "$out" | cut -f1)
msg "root file system ready: $out ($((used / 1024)) MiB virtual, $((alloc / 1024)) MiB allocated)"

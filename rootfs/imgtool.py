#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Helpers for sbx guest images (run by rootfs/module.mk and rootfs/sbx-image).

  imgtool.py vmlinux  BZIMAGE OUT
        unpack the ELF kernel inside a bzImage (must have a PVH entry note)
  imgtool.py modules  --kernel-dir K --modules LIST
        print the modules to load, dependencies first
  imgtool.py initrd   --kernel-dir K --agent AGENT --modules LIST
                      --out INITRD --info INFO.json [--compress none|gzip|zstd]
        write the initramfs (newc cpio) and a JSON note of what is in it
  imgtool.py manifest --dir DIR --name NAME --rootfs-source TEXT
                      (--kernel-info kernel.json --initrd-info initrd.json
                       | --boot-from MANIFEST) [--hash-cache FILE]
        write DIR/manifest.json for DIR/{vmlinuz,vmlinux,initrd.img,rootfs.ext4}
  imgtool.py verify   DIR
        check DIR's files against DIR/manifest.json

Only the standard library; the kernel's modinfo (kmod) and, for zstd
modules or a zstd initramfs, the zstd tool.
"""

import argparse
import datetime
import fnmatch
import gzip
import hashlib
import json
import lzma
import os
import stat
import struct
import subprocess
import sys
import tempfile
import zlib

FORMAT_VERSION = 1
IMAGE_FILES = ("vmlinuz", "vmlinux", "initrd.img", "rootfs.ext4")
MOD_DIR = "lib/modules/sbx"
KO_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
# Empty directories the agent mounts onto or uses before switching root.
INITRD_DIRS = ("dev", "proc", "sys", "run", "tmp", "newroot")


class Error(Exception):
    pass


def die(msg):
    print(f"image: error: {msg}", file=sys.stderr)
    sys.exit(1)


def modname(filename):
    """Module name as the kernel spells it: no suffix, '-' is '_'."""
    base = os.path.basename(filename)
    for suf in KO_SUFFIXES:
        if base.endswith(suf):
            base = base[: -len(suf)]
            break
    return base.replace("-", "_")


def ko_basename(path):
    """File name of the module once decompressed (foo.ko.xz -> foo.ko)."""
    base = os.path.basename(path)
    for suf in KO_SUFFIXES[1:]:
        if base.endswith(suf):
            return base[: -len(suf)] + ".ko"
    return base


def sha256_file(path, cache=None):
    st = os.stat(path)
    key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    if cache is not None and cache.get(os.path.abspath(path), {}).get("key") == key:
        return cache[os.path.abspath(path)]["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 << 20)
            if not b:
                break
            h.update(b)
    digest = h.hexdigest()
    if cache is not None:
        cache[os.path.abspath(path)] = {"key": key, "sha256": digest}
    return digest


def atomic_write(path, data):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp.", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise Error(f"{what} {path} does not exist")
    except (OSError, ValueError) as e:
        raise Error(f"{what} {path} cannot be read: {e}")


# ---------------------------------------------------------------- modules


class Kernel:
    def __init__(self, kdir):
        self.kdir = kdir
        base = os.path.join(kdir, "lib", "modules")
        try:
            rels = [r for r in os.listdir(base) if os.path.isdir(os.path.join(base, r))]
        except OSError as e:
            raise Error(f"no module tree under {base}: {e}")
        if len(rels) != 1:
            raise Error(f"expected one kernel release under {base}, found {rels}")
        self.release = rels[0]
        self.root = os.path.join(base, self.release)
        self.paths = {}  # module name -> path of its .ko[.xz|.zst]
        for dirpath, _dirs, files in os.walk(os.path.join(self.root, "kernel")):
            for fn in files:
                if fn.endswith(KO_SUFFIXES):
                    self.paths.setdefault(modname(fn), os.path.join(dirpath, fn))
        self.builtin = set()
        try:
            with open(os.path.join(self.root, "modules.builtin")) as f:
                self.builtin = {modname(line.strip()) for line in f if line.strip()}
        except FileNotFoundError:
            pass
        # From depmod's modules.alias: exact aliases, and wildcard patterns
        # with the literal text before their first wildcard.
        self.alias_exact, self.alias_glob = {}, []
        try:
            with open(os.path.join(self.root, "modules.alias")) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) != 3 or parts[0] != "alias":
                        continue
                    pat, mod = parts[1], parts[2].replace("-", "_")
                    cut = min((pat.find(ch) for ch in "*?[" if ch in pat), default=-1)
                    if cut < 0:
                        self.alias_exact.setdefault(pat, set()).add(mod)
                    else:
                        self.alias_glob.append((pat[:cut], pat, mod))
        except FileNotFoundError:
            pass

    def modinfo(self, name, field):
        try:
            out = subprocess.run(
                ["modinfo", "-F", field, self.paths[name]],
                check=True, capture_output=True, text=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            raise Error(f"modinfo {self.paths[name]}: {e}")
        return out

    def depends(self, name):
        out = self.modinfo(name, "depends").strip()
        return [d.replace("-", "_") for d in out.split(",") if d]

    def softdeps_pre(self, name):
        """Names after "pre:" in each softdep line (ignoring "post:")."""
        pre = []
        for line in self.modinfo(name, "softdep").splitlines():
            mode = None
            for word in line.split():
                if word in ("pre:", "post:"):
                    mode = word
                elif mode == "pre:":
                    pre.append(word)
        return pre

    def resolve_alias(self, alias):
        """Modules providing ALIAS. Where both an arch-optimised module
        (kernel/arch/...) and a generic one provide it, only the generic one
        is kept: the optimised one fails to load on a CPU without the feature
        (TCG's default CPU has no SSE4.2, so crc32c-intel would not load)."""
        name = alias.replace("-", "_")
        if name in self.paths or name in self.builtin:
            return [name]
        found = set(self.alias_exact.get(alias, ()))
        found |= {m for pre, pat, m in self.alias_glob
                  if alias.startswith(pre) and fnmatch.fnmatchcase(alias, pat)}
        found = sorted(found)
        if not found:
            raise Error(f"no module provides {alias!r} (modules.alias missing?)")
        if any(m in self.builtin for m in found):
            return []
        generic = [m for m in found if m in self.paths
                   and os.sep + "arch" + os.sep not in self.paths[m][len(self.root):]]
        return generic or found

    def load_order(self, wanted):
        order, state = [], {}

        def visit(name, chain):
            if name in self.builtin:
                return
            if name not in self.paths:
                via = " (needed by " + " <- ".join(reversed(chain)) + ")" if chain else ""
                raise Error(f"module {name} is neither built into kernel {self.release} "
                            f"nor in its module tree{via}")
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise Error("module dependency cycle: " + " -> ".join(chain + [name]))
            state[name] = "visiting"
            for dep in self.depends(name):
                visit(dep, chain + [name])
            for alias in self.softdeps_pre(name):
                for dep in self.resolve_alias(alias):
                    visit(dep, chain + [name])
            state[name] = "done"
            order.append(name)

        for name in wanted:
            visit(name.replace("-", "_"), [])
        return order

    def ko_bytes(self, name):
        path = self.paths[name]
        if path.endswith(".ko.xz"):
            with lzma.open(path) as f:
                return f.read()
        if path.endswith(".ko.gz"):
            with gzip.open(path) as f:
                return f.read()
        if path.endswith(".ko.zst"):
            try:
                return subprocess.run(["zstd", "-dc", path], check=True,
                                      capture_output=True).stdout
            except (OSError, subprocess.CalledProcessError) as e:
                raise Error(f"cannot decompress {path} (is zstd installed?): {e}")
        with open(path, "rb") as f:
            return f.read()


def read_module_list(path):
    names = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    if not names:
        raise Error(f"{path} lists no modules")
    return names


# ---------------------------------------------------------------- cpio


class Cpio:
    """A newc ("070701") archive written in memory: owner root, fixed mtime,
    inode numbers in order, so the same inputs give the same bytes."""

    def __init__(self, mtime):
        self.parts = []
        self.ino = 0
        self.mtime = mtime

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1, trailer=False):
        self.ino += 0 if trailer else 1
        nameb = name.encode() + b"\0"
        fields = [0 if trailer else self.ino, mode, 0, 0, nlink, self.mtime, len(data), 0, 0,
                  rdev[0], rdev[1], len(nameb), 0]
        hdr = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.parts.append(hdr + nameb + b"\0" * (-(len(hdr) + len(nameb)) % 4))
        self.parts.append(data + b"\0" * (-len(data) % 4))

    def dir(self, name, perm=0o755):
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def file(self, name, data, perm=0o644):
        self._entry(name, stat.S_IFREG | perm, data)

    def chardev(self, name, major, minor, perm=0o600):
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def bytes(self):
        self._entry("TRAILER!!!", 0, nlink=1, trailer=True)
        out = b"".join(self.parts)
        return out + b"\0" * (-len(out) % 512)


def build_initrd(kdir, agent, modlist, compress):
    k = Kernel(kdir)
    order = k.load_order(read_module_list(modlist))
    try:
        with open(agent, "rb") as f:
            agent_data = f.read()
    except OSError as e:
        raise Error(f"cannot read the agent binary {agent}: {e}")
    if agent_data[:4] != b"\x7fELF":
        raise Error(f"{agent} is not an ELF executable")
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    c = Cpio(mtime)
    for d in INITRD_DIRS:
        c.dir(d, 0o1777 if d == "tmp" else 0o755)
    # The kernel opens /dev/console for PID 1's stdin/stdout/stderr before
    # anything is mounted: with this node the agent's early messages reach
    # the console (it mounts devtmpfs over /dev afterwards).
    c.chardev("dev/console", 5, 1)
    c.file("init", agent_data, 0o755)
    c.dir("lib")
    c.dir("lib/modules")
    c.dir(MOD_DIR)
    files = []
    for name in order:
        fn = ko_basename(k.paths[name])
        c.file(f"{MOD_DIR}/{fn}", k.ko_bytes(name))
        files.append(fn)
    c.file(f"{MOD_DIR}/modules.order", "".join(f + "\n" for f in files).encode())
    data = c.bytes()
    if compress == "gzip":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    elif compress == "zstd":
        data = subprocess.run(["zstd", "-q", "-19", "-c"], input=data, check=True,
                              capture_output=True).stdout
    info = {
        "kernel_release": k.release,
        "agent_sha256": hashlib.sha256(agent_data).hexdigest(),
        "agent_size": len(agent_data),
        "compression": compress,
        "modules": files,
    }
    return data, info


# ---------------------------------------------------------------- vmlinux


def has_pvh_note(elf):
    """True if the ELF has a Xen note XEN_ELFNOTE_PHYS32_ENTRY (18): QEMU
    then boots it directly with the PVH protocol."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, off, _va, _pa, filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = off, off + filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12: pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def unpack_vmlinux(bzimage, out):
    with open(bzimage, "rb") as f:
        data = f.read()
    if data[0x202:0x206] != b"HdrS":
        raise Error(f"{bzimage} is not a bzImage")
    # The compressed payload follows the setup code; find it by its magic.
    for magic, kind in ((b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
                        (b"\x1f\x8b\x08", "gzip")):
        at = data.find(magic)
        if at < 0:
            continue
        try:
            if kind == "xz":
                elf = lzma.LZMADecompressor().decompress(data[at:])
            elif kind == "gzip":
                elf = zlib.decompressobj(31).decompress(data[at:])
            else:
                elf = subprocess.run(["zstd", "-dc"], input=data[at:], capture_output=True
                                     ).stdout
        except (lzma.LZMAError, zlib.error, OSError):
            continue
        if elf[:4] == b"\x7fELF":
            break
    else:
        raise Error(f"cannot find the compressed kernel in {bzimage}")
    if not has_pvh_note(elf):
        raise Error(f"the kernel in {bzimage} has no PVH entry point (CONFIG_PVH)")
    atomic_write(out, elf)


# ---------------------------------------------------------------- manifest


def file_entry(path, cache):
    st = os.stat(path)
    return {"size": st.st_size, "sha256": sha256_file(path, cache)}


def write_manifest(a):
    d = a.dir
    for fn in IMAGE_FILES:
        if not os.path.isfile(os.path.join(d, fn)):
            raise Error(f"{d}/{fn} is missing")
    if a.boot_from:
        base = read_json(a.boot_from, "manifest")
        kernel, agent, initramfs = base["kernel"], base["agent"], base["initramfs"]
    else:
        if not (a.kernel_info and a.initrd_info):
            raise Error("give --kernel-info and --initrd-info, or --boot-from")
        ki = read_json(a.kernel_info, "kernel note")
        ii = read_json(a.initrd_info, "initramfs note")
        if ki["release"] != ii["kernel_release"]:
            raise Error(f"initramfs modules are for kernel {ii['kernel_release']}, "
                        f"the kernel is {ki['release']}: rebuild the initramfs")
        kernel = {"package": ki["package"], "version": ki["version"],
                  "release": ki["release"]}
        agent = {"sha256": ii["agent_sha256"], "size": ii["agent_size"]}
        initramfs = {"compression": ii["compression"], "init": "/init",
                     "modules_dir": "/" + MOD_DIR, "modules": ii["modules"]}

    cache = None
    if a.hash_cache:
        try:
            cache = read_json(a.hash_cache, "hash cache")
        except Error:
            cache = {}
    files = {fn: file_entry(os.path.join(d, fn), cache) for fn in IMAGE_FILES}
    rootfs_path = os.path.join(d, "rootfs.ext4")
    files["rootfs.ext4"]["virtual_size"] = files["rootfs.ext4"]["size"]
    created = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(created), datetime.timezone.utc)
            if created else datetime.datetime.now(datetime.timezone.utc))
    m = {
        "format_version": FORMAT_VERSION,
        "name": a.name,
        "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": kernel,
        "agent": agent,
        "initramfs": initramfs,
        "rootfs": {
            "format": "raw",
            "filesystem": "ext4",
            "label": a.label,
            "virtual_size": files["rootfs.ext4"]["size"],
            "allocated": os.stat(rootfs_path).st_blocks * 512,
            "source": a.rootfs_source,
        },
        # What to boot: vmlinux (PVH, no in-guest decompression: seconds
        # faster under TCG) or vmlinuz (the same kernel as a bzImage), the
        # initramfs, the root disk as the first virtio-blk device, and the
        # image's part of the kernel command line.
        "boot": {"kernel": "vmlinux", "initrd": "initrd.img", "root_disk": "rootfs.ext4",
                 "cmdline": "sbx.root=/dev/vda"},
        "files": files,
    }
    atomic_write(os.path.join(d, "manifest.json"),
                 (json.dumps(m, indent=2) + "\n").encode())
    if cache is not None:
        atomic_write(a.hash_cache, (json.dumps(cache, indent=1) + "\n").encode())


def verify(d):
    """Print one line per file; return the number of problems."""
    mpath = os.path.join(d, "manifest.json")
    try:
        m = read_json(mpath, "manifest")
    except Error as e:
        print(f"FAIL  manifest.json: {e}")
        return 1
    if not isinstance(m, dict) or m.get("format_version") != FORMAT_VERSION \
            or not isinstance(m.get("files"), dict):
        print(f"FAIL  manifest.json: not an sbx image manifest (format_version "
              f"{m.get('format_version') if isinstance(m, dict) else '?'}, "
              f"expected {FORMAT_VERSION})")
        return 1
    bad = 0
    for fn in IMAGE_FILES:
        if fn not in m["files"]:
            print(f"FAIL  {fn}: not listed in the manifest")
            bad += 1
    for fn, want in sorted(m["files"].items()):
        path = os.path.join(d, fn)
        if os.path.basename(fn) != fn:
            print(f"FAIL  {fn}: bad file name in the manifest")
            bad += 1
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:
            print(f"FAIL  {fn}: missing")
            bad += 1
            continue
        if st.st_size != want.get("size"):
            print(f"FAIL  {fn}: size {st.st_size}, manifest says {want.get('size')} "
                  f"(corrupted or replaced)")
            bad += 1
            continue
        got = sha256_file(path)
        if got != want.get("sha256"):
            print(f"FAIL  {fn}: sha256 {got}, manifest says {want.get('sha256')} (corrupted)")
            bad += 1
            continue
        print(f"ok    {fn}  {st.st_size} bytes  sha256 {got[:16]}...")
    return bad


# ---------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("vmlinux")
    s.add_argument("bzimage")
    s.add_argument("out")

    s = sub.add_parser("modules")
    s.add_argument("--kernel-dir", required=True)
    s.add_argument("--modules", required=True)

    s = sub.add_parser("initrd")
    s.add_argument("--kernel-dir", required=True)
    s.add_argument("--agent", required=True)
    s.add_argument("--modules", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--info", required=True)
    s.add_argument("--compress", choices=("none", "gzip", "zstd"), default="none")

    s = sub.add_parser("manifest")
    s.add_argument("--dir", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--label", default="sbx-root")
    s.add_argument("--rootfs-source", required=True)
    s.add_argument("--kernel-info")
    s.add_argument("--initrd-info")
    s.add_argument("--boot-from")
    s.add_argument("--hash-cache")

    s = sub.add_parser("verify")
    s.add_argument("dir")

    a = p.parse_args()
    try:
        if a.cmd == "vmlinux":
            unpack_vmlinux(a.bzimage, a.out)
        elif a.cmd == "modules":
            k = Kernel(a.kernel_dir)
            for name in k.load_order(read_module_list(a.modules)):
                print(ko_basename(k.paths[name]))
        elif a.cmd == "initrd":
            data, info = build_initrd(a.kernel_dir, a.agent, a.modules, a.compress)
            # The note first, the image last: the image's final name only
            # appears once both are complete.
            atomic_write(a.info, (json.dumps(info, indent=2) + "\n").encode())
            atomic_write(a.out, data)
        elif a.cmd == "manifest":
            write_manifest(a)
        elif a.cmd == "verify":
            bad = verify(a.dir)
            if bad:
                print(f"{a.dir}: {bad} problem(s)")
                sys.exit(1)
            print(f"{a.dir}: all files match manifest.json")
    except Error as e:
        die(str(e))
    except KeyError as e:
        die(f"a manifest or note lacks the field {e}")


if __name__ == "__main__":
    main()

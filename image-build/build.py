#!/usr/bin/env python3
"""Build the Station Blanche kiosk image: a Debian 12 system for x86-64 PCs.

    image-build/build [--test | --test-units] [--cache DIR] OUT_DIR

Stages, each one a function below:
  base   debootstrap --variant=minbase, then apt installs packages.txt; cached as a tar.zst keyed
         by a hash of the package list and of this recipe (debootstrap is the slow part).
  wheels the kiosk and its Python dependencies as wheels, built on this host (PyPI is reached
         here; the chroot then installs them offline, with no network and no CA of its own).
  tree   the base unpacked, our files (image-build/rootfs/, systemd/), the kiosk's venv, users,
         units enabled, gettys masked. Only the test variant (--test, --test-units) also gets
         image-build/rootfs-test/: the VM test's taps and controls, never on a kiosk.
  test   (--test) OUT/vmlinuz, OUT/initrd.img, OUT/root.ext4 for QEMU's -kernel/-initrd.
  disk   (default) OUT/kiosk.img: GPT with a BIOS boot partition, an ESP, the read-only root and
         the data partition (grown to the disk at first boot); GRUB for legacy BIOS, and shim +
         Debian's signed GRUB for UEFI (Secure Boot on or off). Write it to the PC's disk.
Nothing is loop-mounted: filesystems are made from trees with `mkfs.ext4 -d` and mtools.
The build needs root (chroot, file ownership) and the Debian packages of ./run's APT_PACKAGES.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SUITE = "bookworm"
# Bump when the base recipe changes in a way the package list does not show.
BASE_RECIPE = "3"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
VENV = "/opt/kiosk/venv"
DEFAULT_CACHE = "/var/cache/station-blanche"
ESP_MIB = 64
DATA_MIB = 256
# Units of systemd/ that are installed and enabled in the image; the rest of systemd/ (the
# central server's unit) is for the town's server, not for a kiosk.
KIOSK_UNITS = ("kiosk-station.service", "kiosk-shipper.service", "kiosk-ui.service")
SERVER_UNITS = ("kiosk-server.service",)
# Files of every image, and files of the test variant only (the journal and event taps, the
# control port and its USB-gadget composite maker, the udev rule that starts them).
ROOTFS = HERE / "rootfs"
ROOTFS_TEST = HERE / "rootfs-test"
# The user the shipper runs as; the station token on the data partition is root:<its group> 0640.
SHIPPER_USER = "kiosk-ship"
MASKED_UNITS = (
    "getty@.service",
    "serial-getty@.service",
    "autovt@.service",
    "console-getty.service",
    "getty-static.service",
    "container-getty@.service",
    "ctrl-alt-del.target",
    "debug-shell.service",
    "emergency.service",
    "rescue.service",
    "systemd-networkd-wait-online.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
)
# Secure Boot: Debian's shim (signed by Microsoft's UEFI CA, as PCs trust out of the box) loads
# Debian's signed GRUB, which boots only kernels signed by Debian (linux-image-amd64 is).
SHIM = "usr/lib/shim/shimx64.efi.signed"
MOK_MANAGER = "usr/lib/shim/mmx64.efi.signed"
SIGNED_GRUB = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
GRUB_MODULES_COMMON = (
    "part_gpt part_msdos ext2 fat normal linux search search_fs_uuid configfile echo test "
    "boot gzio minicmd password_pbkdf2"
).split()


def log(message: str) -> None:
    """Say what the build is doing, with the time since it started."""
    print(f"[build {time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


STARTED = time.monotonic()


class BuildError(Exception):
    """A fatal build error with a hint on what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def die(message: str, hint: str | None = None) -> NoReturn:
    """Stop the build with a message and, where one helps, a hint."""
    raise BuildError(message, hint)


def run(
    *cmd: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
    capture: bool = False,
) -> str:
    """Run a command, fail the build if it fails; return its stdout when *capture*."""
    args = [str(c) for c in cmd]
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            env=env,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            check=False,
            text=True,
        )
    except FileNotFoundError:
        die(f"{args[0]}: command not found", hint="run ./run setup as root to install it")
    if done.returncode != 0:
        die(f"{' '.join(args)} exited with {done.returncode}")
    return done.stdout if capture else ""


def chroot(root: Path, *cmd: str) -> None:
    """Run a command inside the image tree."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "HOME": "/root",
    }
    run("chroot", root, *cmd, env=env)


@contextlib.contextmanager
def mounted(source: str, target: Path, *options: str) -> Iterator[Path]:
    """Mount for the duration of a block (never left behind, even on failure)."""
    target.mkdir(parents=True, exist_ok=True)
    run("mount", *options, source, target)
    try:
        yield target
    finally:
        subprocess.run(["umount", "--lazy", str(target)], check=False)


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """/proc and /dev inside the tree, as apt, dpkg's triggers and ensurepip need them."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mounted("proc", root / "proc", "-t", "proc"))
        stack.enter_context(mounted("/dev", root / "dev", "--bind"))
        stack.enter_context(mounted("devpts", root / "dev/pts", "-t", "devpts"))
        yield


@contextlib.contextmanager
def no_service_starts(root: Path) -> Iterator[None]:
    """Keep maintainer scripts from starting daemons in the build tree (policy-rc.d)."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


@dataclass(frozen=True)
class Mirrors:
    """Where debootstrap and apt fetch Debian's packages."""

    main: str
    security: str


def host_mirrors() -> Mirrors:
    """Use the mirrors this host's apt uses: they are the ones its network reaches."""
    main, security = DEFAULT_MIRROR, DEFAULT_SECURITY
    texts: list[str] = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            texts.append(path.read_text())
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if not uris or not suites or SUITE not in suites.group(1):
                continue
            if "security" in suites.group(1):
                security = uris.group(1)
            else:
                main = uris.group(1)
        for m in re.finditer(rf"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+{SUITE}(\S*)\s", text, re.M):
            if m.group(2) == "-security":
                security = m.group(1)
            elif m.group(2) == "":
                main = m.group(1)
    return Mirrors(main=main.rstrip("/"), security=security.rstrip("/"))


def package_list() -> list[str]:
    """The Debian packages of the image (packages.txt without comments)."""
    lines = (HERE / "packages.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def base_key(mirrors: Mirrors) -> str:
    """Cache key of the base tree: the package list, the recipe version and the mirrors."""
    digest = hashlib.sha256()
    for part in [BASE_RECIPE, SUITE, mirrors.main, mirrors.security, *package_list()]:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def build_base(cache: Path, work: Path, mirrors: Mirrors) -> Path:
    """Return the cached base tarball, making it with debootstrap and apt when missing."""
    tarball = cache / f"base-{base_key(mirrors)}.tar.zst"
    if tarball.exists():
        log(f"base: cached {tarball.name}")
        return tarball
    root = work / "base"
    if root.exists():
        shutil.rmtree(root)
    log(f"base: debootstrap {SUITE} from {mirrors.main} (about 2 minutes)")
    run("debootstrap", "--variant=minbase", SUITE, root, mirrors.main)
    (root / "etc/apt/sources.list").write_text(
        f"deb {mirrors.main} {SUITE} main\n"
        f"deb {mirrors.main} {SUITE}-updates main\n"
        f"deb {mirrors.security} {SUITE}-security main\n"
    )
    # apt in the chroot resolves names with the host's resolver (systemd-resolved, once
    # installed, turns resolv.conf into a link that only works on the booted kiosk).
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf", follow_symlinks=True)
    # initramfs-tools must find the kernel's modules for the disks of any PC, not this host's.
    conf = root / "etc/initramfs-tools/conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "kiosk.conf").write_text("MODULES=most\nCOMPRESS=zstd\n")
    log("base: apt-get install " + " ".join(package_list()))
    with chroot_mounts(root), no_service_starts(root):
        chroot(root, "apt-get", "update", "-qq")
        chroot(root, "apt-get", "upgrade", "-y", "-qq")
        chroot(root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *package_list())
        chroot(root, "apt-get", "clean")
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    cache.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    log(f"base: saving {tarball}")
    run(
        "tar",
        "--numeric-owner",
        "--xattrs",
        "--acls",
        "-I",
        "zstd -T0 -3",
        "-C",
        root,
        "-cf",
        partial,
        ".",
    )
    partial.rename(tarball)
    shutil.rmtree(root)
    return tarball


def build_wheels(cache: Path, work: Path) -> Path:
    """Wheels of the kiosk and its dependencies, made here (the host reaches PyPI)."""
    out = work / "wheels"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pip_cache = cache / "pip"
    log("wheels: pip wheel of this repository and its dependencies")
    # Dependencies are cached across builds in pip's cache; the kiosk's own wheel is new each time.
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--cache-dir",
        pip_cache,
        "--wheel-dir",
        out,
        REPO,
    )
    return out


@dataclass(frozen=True)
class Identity:
    """Filesystem UUIDs of this build: the root and data partitions are found by them, not by
    label, so that a stick plugged at boot with a look-alike label is never mounted as ours."""

    root_uuid: str
    data_uuid: str

    @classmethod
    def new(cls) -> Identity:
        """Fresh UUIDs for a new build."""
        return cls(root_uuid=str(uuid.uuid4()), data_uuid=str(uuid.uuid4()))


def kernel_cmdline(identity: Identity) -> str:
    """The kernel command line shared by the disk image and the test variant."""
    return (
        f"root=UUID={identity.root_uuid} ro rootfstype=ext4 "
        # New USB devices start unauthorised; 60-kiosk-usb-policy.rules decides.
        "usbcore.authorized_default=0 "
        # No sysrq_always_enabled here, whatever its value: its mere presence turns SysRq on
        # (found by the VM test: Alt+SysRq+B rebooted the kiosk). kernel.sysrq=0 is in sysctl.d.
        "systemd.show_status=false "
        "quiet loglevel=3 vt.global_cursor_default=0 "
        # Room for the whole boot's kernel messages until journald reads them.
        "log_buf_len=1M"
    )


def install_files(root: Path, test_units: bool) -> None:
    """Copy our files and the kiosk's units into *root*; the test-only ones only when asked."""
    sources = [ROOTFS, ROOTFS_TEST] if test_units else [ROOTFS]
    for source in sources:
        run("cp", "-a", "--no-preserve=ownership", f"{source}/.", root)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for unit in sorted((REPO / "systemd").iterdir()):
        if unit.name in SERVER_UNITS:
            continue
        dest = units / unit.name
        if unit.is_dir():
            shutil.copytree(unit, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(unit, dest)
    for path in (root / "usr/local/lib/kiosk").iterdir():
        path.chmod(0o755)


def install_tree(
    root: Path, wheels: Path, identity: Identity, signatures_mirror: str, test_units: bool
) -> None:
    """Add our files, the kiosk's venv, users and units to the unpacked base tree."""
    log("tree: our files and units" + (" (with the test-only ones)" if test_units else ""))
    install_files(root, test_units)
    units = root / "etc/systemd/system"
    (root / "etc/fstab").write_text(
        "# The system is read-only; what must change lives in RAM (tmpfs) or on the data\n"
        "# partition. Partitions are found by the UUIDs of this build.\n"
        f"UUID={identity.root_uuid} / ext4 ro,noatime,errors=remount-ro 0 1\n"
        # x-systemd.growfs: the filesystem grows to its partition, which systemd-repart grows
        # to the end of the disk at first boot (/etc/repart.d/50-kiosk-data.conf).
        f"UUID={identity.data_uuid} /var/lib/kiosk ext4 "
        "rw,nosuid,nodev,noexec,noatime,x-systemd.device-timeout=30s,x-systemd.growfs 0 2\n"
        "tmpfs /tmp tmpfs rw,nosuid,nodev,mode=1777,size=40% 0 0\n"
        "tmpfs /var/tmp tmpfs rw,nosuid,nodev,mode=1777,size=64M 0 0\n"
        "tmpfs /var/log tmpfs rw,nosuid,nodev,noexec,mode=755,size=64M 0 0\n"
        "tmpfs /var/cache tmpfs rw,nosuid,nodev,noexec,mode=755,size=64M 0 0\n"
        "tmpfs /var/lib/systemd tmpfs rw,nosuid,nodev,noexec,mode=755,size=16M 0 0\n"
        "tmpfs /var/lib/private tmpfs rw,nosuid,nodev,noexec,mode=700,size=16M 0 0\n"
        "tmpfs /var/lib/clamav tmpfs rw,nosuid,nodev,noexec,mode=755,size=1M 0 0\n"
    )
    # Mount points must exist in the read-only root: nothing can create them at boot.
    for mountpoint in (
        "var/lib/kiosk",
        "var/lib/private",
        "var/lib/systemd",
        "var/lib/clamav",
        "var/cache",
        "var/log",
        "var/tmp",
        "tmp",
        "boot/efi",
    ):
        (root / mountpoint).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/private").chmod(0o700)
    (root / "etc/hostname").write_text("kiosk\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 kiosk\n")
    # An empty machine-id on a read-only root: systemd makes a transient one at each boot.
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "var/lib/dbus/machine-id").symlink_to("/etc/machine-id")
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.symlink_to("/run/systemd/resolve/stub-resolv.conf")
    # The kiosk's configuration and the signatures mirror live on the data partition, so IT
    # can change them without rebuilding; /etc only points there.
    (root / "etc/kiosk").mkdir(exist_ok=True)
    for name in ("kiosk.toml",):
        link = root / "etc/kiosk" / name
        link.unlink(missing_ok=True)
        link.symlink_to(f"/var/lib/kiosk/{name}")
    fresh = root / "etc/clamav/freshclam.conf"
    fresh.unlink(missing_ok=True)
    fresh.symlink_to("/var/lib/kiosk/freshclam.conf")
    (root / "usr/share/kiosk").mkdir(parents=True, exist_ok=True)
    (root / "usr/share/kiosk/freshclam.conf.default").write_text(freshclam_conf(signatures_mirror))

    log("tree: kiosk venv from wheels (offline)")
    staging = root / "tmp/wheels"
    shutil.copytree(wheels, staging)
    with chroot_mounts(root), no_service_starts(root):
        chroot(root, "python3", "-m", "venv", VENV)
        chroot(
            root,
            f"{VENV}/bin/pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-cache-dir",
            "--find-links",
            "/tmp/wheels",  # noqa: S108 - the image tree's /tmp, inside the chroot
            "station-blanche",
        )
        chroot(root, "ln", "-sf", f"{VENV}/bin/kiosk", "/usr/local/bin/kiosk")
        for user, groups in (("kiosk-ui", "tty"), (SHIPPER_USER, "")):
            chroot(
                root,
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                user,
            )
            if groups:
                chroot(root, "usermod", "-a", "-G", groups, user)
        chroot(root, "groupadd", "--system", "kiosk-outbox")
        chroot(root, "usermod", "-a", "-G", "kiosk-outbox", SHIPPER_USER)
        # No password and no shell for anyone: the kiosk has nothing to log in to.
        chroot(root, "passwd", "--lock", "root")
        enable = [u for u in KIOSK_UNITS if (units / u).exists()]
        enable += [
            "systemd-networkd.service",
            "systemd-resolved.service",
            "systemd-timesyncd.service",
            "clamav-daemon.service",
            "kiosk-usb-lock.service",
            "kiosk-console-lock.service",
        ]
        chroot(root, "systemctl", "enable", "--quiet", *enable)
        chroot(root, "systemctl", "mask", "--quiet", *MASKED_UNITS)
        chroot(root, "systemctl", "set-default", "--quiet", "multi-user.target")
    shutil.rmtree(staging)
    for junk in ("etc/ssh", "var/cache/apt/archives"):
        shutil.rmtree(root / junk, ignore_errors=True)


def freshclam_conf(mirror: str) -> str:
    """freshclam's configuration: the town's own signature mirror, nothing else."""
    if not mirror:
        return (
            "# No signature mirror was named at build time: freshclam stays off.\n"
            "# Name one (the town's server can host a mirror) and restart clamav-freshclam.\n"
            "DatabaseDirectory /var/lib/kiosk/signatures\nLogSyslog yes\nForeground yes\n"
            "Checks 0\n"
        )
    return (
        "# Signatures come only from the town's mirror (a private mirror, e.g. cvdupdate).\n"
        "DatabaseDirectory /var/lib/kiosk/signatures\n"
        "DatabaseOwner clamav\n"
        "LogSyslog yes\n"
        "Foreground yes\n"
        f"PrivateMirror {mirror}\n"
        "ScriptedUpdates no\n"
        "Checks 24\n"
        "NotifyClamd /etc/clamav/clamd.conf\n"
    )


def unpack_base(tarball: Path, root: Path) -> None:
    """A fresh tree from the cached base."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    log(f"tree: unpacking {tarball.name}")
    run(
        "tar", "--numeric-owner", "--xattrs", "--acls", "-I", "zstd -T0", "-C", root, "-xf", tarball
    )


def kernel_files(root: Path) -> tuple[Path, Path]:
    """The kernel and initrd the base installed (there is exactly one)."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if len(kernels) != 1 or len(initrds) != 1:
        die(f"expected one kernel and one initrd in {root / 'boot'}, found {kernels} {initrds}")
    return kernels[0], initrds[0]


def tree_size_mib(root: Path) -> int:
    """Disk use of a tree in MiB."""
    out = run("du", "-s", "--block-size=1M", "--one-file-system", root, capture=True)
    return int(out.split()[0])


def make_ext4(tree: Path, image: Path, label: str, fs_uuid: str, size_mib: int) -> None:
    """An ext4 filesystem image from a tree, with no loop device and no mount."""
    image.unlink(missing_ok=True)
    run(
        "mkfs.ext4",
        "-q",
        "-F",
        "-L",
        label,
        "-U",
        fs_uuid,
        "-d",
        tree,
        "-E",
        "root_owner=0:0",
        "-O",
        "^orphan_file,^metadata_csum_seed",
        image,
        f"{size_mib}M",
    )


def group_id(root: Path, name: str) -> int:
    """The number of a group in the image tree's /etc/group (not this host's)."""
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    die(f"no group {name} in {root / 'etc/group'}")


def make_data_tree(
    tree: Path,
    signatures_mirror: str,
    config: Path | None,
    token: Path | None,
    signatures: Path | None,
    token_gid: int = 0,
) -> None:
    """The data partition's first content: config, token, signatures (all optional)."""
    if tree.exists():
        shutil.rmtree(tree)
    (tree / "signatures").mkdir(parents=True)
    (tree / "freshclam.conf").write_text(freshclam_conf(signatures_mirror))
    if config is not None:
        shutil.copy2(config, tree / "kiosk.toml")
        (tree / "kiosk.toml").chmod(0o644)
    if token is not None:
        shutil.copy2(token, tree / "token")
        # Read by the shipper through its group; tmpfiles.d/kiosk.conf keeps it so at each boot.
        os.chown(tree / "token", 0, token_gid)
        (tree / "token").chmod(0o640 if token_gid else 0o600)
    if signatures is not None:
        for db in signatures.iterdir():
            shutil.copy2(db, tree / "signatures" / db.name)
            (tree / "signatures" / db.name).chmod(0o644)


def grub_early_config(identity: Identity) -> str:
    """The config built into GRUB's core: find our root by UUID, then read its grub.cfg."""
    return (
        f"search --no-floppy --fs-uuid --set=root {identity.root_uuid}\n"
        "set prefix=($root)/boot/grub\n"
        "configfile $prefix/grub.cfg\n"
    )


def grub_config(identity: Identity, kernel: str, initrd: str) -> str:
    """GRUB's menu: one entry, no delay, and no editing (a superuser with no password set)."""
    return (
        "set timeout=0\n"
        "set timeout_style=hidden\n"
        "# Editing needs a superuser; none has a password: nobody can add init=/bin/sh.\n"
        'set superusers="kiosk-it"\n'
        "menuentry 'Station Blanche' --unrestricted {\n"
        f"  linux /boot/{kernel} {kernel_cmdline(identity)}\n"
        f"  initrd /boot/{initrd}\n"
        "}\n"
    )


GPT_TYPES = {
    "bios": "21686148-6449-6E6F-744E-656564454649",
    "esp": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    "root": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
    "data": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
}


def make_disk(root: Path, data_tree: Path, identity: Identity, out: Path, work: Path) -> Path:
    """The whole-disk image for real PCs: BIOS boot + ESP + root + data, GRUB for both."""
    kernel, initrd = kernel_files(root)
    grub_dir = root / "boot/grub"
    grub_dir.mkdir(parents=True, exist_ok=True)
    (grub_dir / "grub.cfg").write_text(grub_config(identity, kernel.name, initrd.name))
    early = work / "grub-early.cfg"
    early.write_text(grub_early_config(identity))

    log("disk: GRUB images (i386-pc core, x86_64-efi BOOTX64.EFI)")
    bios_dir = work / "grub-i386-pc"
    shutil.rmtree(bios_dir, ignore_errors=True)
    shutil.copytree("/usr/lib/grub/i386-pc", bios_dir)
    run(
        "grub-mkimage",
        "-O",
        "i386-pc",
        "-d",
        bios_dir,
        "-c",
        early,
        "-p",
        "/boot/grub",
        "-o",
        bios_dir / "core.img",
        "biosdisk",
        *GRUB_MODULES_COMMON,
    )
    efi = work / "BOOTX64.EFI"
    run(
        "grub-mkimage",
        "-O",
        "x86_64-efi",
        "-d",
        "/usr/lib/grub/x86_64-efi",
        "-c",
        early,
        "-p",
        "/boot/grub",
        "-o",
        efi,
        "efi_gop",
        "efi_uga",
        "all_video",
        *GRUB_MODULES_COMMON,
    )
    # Modules the menu loads at run time come from the root partition, for both firmwares.
    for target in ("i386-pc", "x86_64-efi"):
        shutil.copytree(f"/usr/lib/grub/{target}", grub_dir / target, dirs_exist_ok=True)

    log("disk: ESP (FAT32 with mtools)")
    esp = work / "esp.img"
    esp.unlink(missing_ok=True)
    run("mkfs.vfat", "-F", "32", "-n", "KIOSK-ESP", "-C", esp, str(ESP_MIB * 1024))
    run("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/EFI/debian")
    if all((root / f).exists() for f in (SHIM, MOK_MANAGER, SIGNED_GRUB)):
        # Secure Boot on or off: shim, then the signed GRUB next to it (grubx64.efi), which
        # reads its prefix's grub.cfg (/EFI/debian, built into it): our early config. Signed
        # GRUB loads no module from disk; the menu on the root needs none it lacks.
        log("disk: UEFI by shim and Debian's signed GRUB (Secure Boot)")
        run("mcopy", "-i", esp, root / SHIM, "::/EFI/BOOT/BOOTX64.EFI")
        run("mcopy", "-i", esp, root / SIGNED_GRUB, "::/EFI/BOOT/grubx64.efi")
        run("mcopy", "-i", esp, root / MOK_MANAGER, "::/EFI/BOOT/mmx64.efi")
        run("mcopy", "-i", esp, early, "::/EFI/debian/grub.cfg")
        run("mcopy", "-i", esp, early, "::/EFI/BOOT/grub.cfg")
    else:
        run("mcopy", "-i", esp, efi, "::/EFI/BOOT/BOOTX64.EFI")

    log("disk: root and data filesystems")
    root_mib = tree_size_mib(root) * 115 // 100 + 128
    root_img = work / "root.ext4"
    make_ext4(root, root_img, "kiosk-root", identity.root_uuid, root_mib)
    data_img = work / "data.ext4"
    make_ext4(data_tree, data_img, "kiosk-data", identity.data_uuid, DATA_MIB)

    disk = out / "kiosk.img"
    disk.unlink(missing_ok=True)
    mib = 1024 * 1024
    starts = {"bios": 1, "esp": 2, "root": 2 + ESP_MIB, "data": 2 + ESP_MIB + root_mib}
    sizes = {"bios": 1, "esp": ESP_MIB, "root": root_mib, "data": DATA_MIB}
    total = starts["data"] + DATA_MIB + 1
    with disk.open("wb") as f:
        f.truncate(total * mib)
    script = "label: gpt\n" + "".join(
        f"start={starts[p] * 2048}, size={sizes[p] * 2048}, type={GPT_TYPES[p]}, name=kiosk-{p}\n"
        for p in ("bios", "esp", "root", "data")
    )
    subprocess.run(["sfdisk", "--quiet", str(disk)], input=script, text=True, check=True)
    for part, image in (("esp", esp), ("root", root_img), ("data", data_img)):
        run(
            "dd",
            f"if={image}",
            f"of={disk}",
            "bs=1M",
            f"seek={starts[part]}",
            "conv=notrunc,sparse",
            "status=none",
        )
    log("disk: GRUB for legacy BIOS (boot.img in the MBR, core.img in the BIOS boot partition)")
    install_grub_bios(disk, bios_dir, starts["bios"] * 2048)
    return disk


# Offsets in GRUB 2.06's i386-pc boot.img and diskboot.img (include/grub/i386/pc/boot.h).
BOOT_BPB = (0x03, 0x5A)  # the disk's own BPB bytes are kept
BOOT_KERNEL_SECTOR = 0x5C  # LBA of core.img's first sector, 8 bytes
BOOT_DRIVE_CHECK = 0x66  # a jump replaced by two NOPs for hard disks
MBR_KEEP = (0x1B8, 0x200)  # disk signature, partition table and 0x55AA stay the disk's
SECTOR = 512
BLOCKLIST = SECTOR - 12  # first blocklist of diskboot.img: start (8), len (2), segment (2)


def install_grub_bios(disk: Path, grub_dir: Path, core_lba: int) -> None:
    """What grub-bios-setup does for a GPT disk, on an image file: the boot sector in the MBR
    pointing at core.img, and core.img in the BIOS boot partition with its blocklist filled."""
    boot = bytearray((grub_dir / "boot.img").read_bytes())
    core = bytearray((grub_dir / "core.img").read_bytes())
    if len(boot) != SECTOR:
        die(f"{grub_dir / 'boot.img'} is not one sector")
    if len(core) % SECTOR:
        core += bytes(SECTOR - len(core) % SECTOR)
    sectors = len(core) // SECTOR
    if sectors > 2048:
        die("core.img does not fit in the 1 MiB BIOS boot partition")
    with disk.open("r+b") as f:
        mbr = f.read(SECTOR)
        boot[BOOT_BPB[0] : BOOT_BPB[1]] = mbr[BOOT_BPB[0] : BOOT_BPB[1]]
        boot[MBR_KEEP[0] : MBR_KEEP[1]] = mbr[MBR_KEEP[0] : MBR_KEEP[1]]
        boot[BOOT_KERNEL_SECTOR : BOOT_KERNEL_SECTOR + 8] = core_lba.to_bytes(8, "little")
        # Some BIOSes pass a wrong boot drive; GRUB then trusts 0x80 for a hard disk.
        boot[BOOT_DRIVE_CHECK : BOOT_DRIVE_CHECK + 2] = b"\x90\x90"
        # The rest of core.img follows its first sector contiguously.
        core[BLOCKLIST : BLOCKLIST + 8] = (core_lba + 1).to_bytes(8, "little")
        core[BLOCKLIST + 8 : BLOCKLIST + 10] = (sectors - 1).to_bytes(2, "little")
        f.seek(core_lba * SECTOR)
        f.write(core)
        f.seek(0)
        f.write(boot)


def write_manifest(out: Path, identity: Identity, files: dict[str, str], test_units: bool) -> None:
    """OUT/manifest.json: what was built, for the test harness and for IT."""
    manifest = {
        "root_uuid": identity.root_uuid,
        "data_uuid": identity.data_uuid,
        "cmdline": kernel_cmdline(identity),
        "files": files,
        "packages": package_list(),
        "test_units": test_units,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of image-build/build."""
    parser = argparse.ArgumentParser(prog="image-build/build", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="output directory (created)")
    parser.add_argument(
        "--test",
        action="store_true",
        help="build the QEMU test variant (kernel, initrd, root.ext4, the test-only units) only",
    )
    parser.add_argument(
        "--test-units",
        action="store_true",
        help="put the VM test's taps and controls (image-build/rootfs-test/) in a disk image too",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("KIOSK_IMAGE_CACHE", DEFAULT_CACHE)),
        help="cache of the debootstrap base and pip (default %(default)s)",
    )
    parser.add_argument("--config", type=Path, help="kiosk.toml to put on the data partition")
    parser.add_argument("--token-file", type=Path, help="station token for the data partition")
    parser.add_argument(
        "--signatures", type=Path, help="directory of ClamAV databases to put on the data partition"
    )
    parser.add_argument(
        "--signatures-mirror",
        default="",
        help="URL of the town's ClamAV mirror for freshclam (empty: freshclam off)",
    )
    return parser.parse_args(argv)


def wants_test_units(args: argparse.Namespace) -> bool:
    """The test-only files go in with --test (the QEMU variant) or --test-units, never else."""
    return bool(args.test or args.test_units)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the image; return the exit code."""
    args = parse_args(argv)
    try:
        if os.geteuid() != 0:
            die("the image build needs root", hint="run it as root (chroot, file ownership)")
        out: Path = args.out.resolve()
        out.mkdir(parents=True, exist_ok=True)
        work = out / "work"
        work.mkdir(exist_ok=True)
        mirrors = host_mirrors()
        tarball = build_base(args.cache, work, mirrors)
        wheels = build_wheels(args.cache, work)
        identity = Identity.new()
        root = work / "root"
        unpack_base(tarball, root)
        test_units = wants_test_units(args)
        install_tree(root, wheels, identity, args.signatures_mirror, test_units)
        data_tree = work / "data"
        make_data_tree(
            data_tree,
            args.signatures_mirror,
            args.config,
            args.token_file,
            args.signatures,
            token_gid=group_id(root, SHIPPER_USER),
        )
        files: dict[str, str] = {}
        if args.test:
            # Root and data are two whole drives there, with no partition table to grow.
            shutil.rmtree(root / "etc/repart.d", ignore_errors=True)
            kernel, initrd = kernel_files(root)
            shutil.copy2(kernel, out / "vmlinuz")
            shutil.copy2(initrd, out / "initrd.img")
            log("test: root.ext4")
            size = tree_size_mib(root) * 115 // 100 + 128
            make_ext4(root, out / "root.ext4", "kiosk-root", identity.root_uuid, size)
            files = {"kernel": "vmlinuz", "initrd": "initrd.img", "root": "root.ext4"}
        else:
            disk = make_disk(root, data_tree, identity, out, work)
            files = {"disk": disk.name}
        write_manifest(out, identity, files, test_units)
        shutil.rmtree(work)
        log(f"done: {out}")
        return 0
    except BuildError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"build: hint: {exc.hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

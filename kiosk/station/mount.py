"""Safe mounting of a stick: read-only from the first mount, in a private directory, always undone.

`StickMount` mounts every volume of one stick under `<mount_dir>/<session>/` on an `ExitStack`, so
that whatever fails (a mount, the scan, the stick leaving) everything it did is undone: loop devices
detached, filesystems unmounted (lazily if the device is gone), directories removed. Each block
device is set read-only (`blockdev --setro`) before it is mounted `ro,nosuid,nodev,noexec,
nosymfollow`, with journal replay off where the filesystem has one (`noload` for ext3/4,
`rescue=nologreplay` for btrfs, `norecovery` for xfs): a hostile or dirty stick is never written.

Every call here blocks (subprocesses): the station runs them with `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from kiosk.errors import DeviceError
from kiosk.models import Reason
from kiosk.names import display_name, escape_name
from kiosk.station.device import Kind, Volume
from kiosk.station.mountinfo import is_mountpoint, mounts

log = logging.getLogger(__name__)

BASE_OPTIONS = ("nosuid", "nodev", "noexec", "nosymfollow")
# Options that stop a journaling filesystem from replaying (i.e. writing) its journal.
NO_REPLAY = {
    "ext3": ("noload",),
    "ext4": ("noload",),
    "btrfs": ("rescue=nologreplay",),
    "xfs": ("norecovery",),
}
EXTRA = {
    "vfat": ("utf8", "shortname=mixed"),
    "exfat": ("iocharset=utf8",),
}
COMMAND_TIMEOUT = 60.0
DETAIL_CHARS = 160  # one helper's stderr, as kept in a report's detail for IT
# Lines that say what went wrong, best first: a failure or an error, then other refusals.
_TELLING = (
    re.compile(r"fail|error", re.IGNORECASE),
    re.compile(r"invalid|cannot|can't|unknown|bad |wrong|not ", re.IGNORECASE),
)


class MountError(DeviceError):
    """A volume cannot be mounted; `reason` is the Reason code for the report."""

    def __init__(self, message: str, *, reason: Reason, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


def helper_detail(stderr: str) -> str:
    """Return the one line of a helper's stderr worth keeping for IT: short, inert, bounded.

    Helpers say much more than why they failed (ntfs-3g appends a whole paragraph on chkdsk,
    dmraid and nvidia FakeRAID to every refusal) and may echo bytes from the stick (a volume
    name). The first line that tells a failure is kept, else the first non-empty one; control,
    bidi and zero-width characters are written out visibly, and it is cut to DETAIL_CHARS.
    """
    lines = [" ".join(line.split()) for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    chosen = next(
        (line for pattern in _TELLING for line in lines if pattern.search(line)), lines[0]
    )
    return display_name(chosen, DETAIL_CHARS)


def _run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=COMMAND_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceError(f"{args[0]}: {exc}") from exc
    if check and result.returncode != 0:
        detail = helper_detail(result.stderr) or f"exit status {result.returncode}"
        raise DeviceError(f"{' '.join(args)}: {detail}")
    return result


@dataclass(frozen=True, slots=True)
class Probe:
    """What a low-level probe of a block device found."""

    fs_type: str | None
    usage: str | None
    label: str | None
    partition_table: bool


def probe(node: str) -> Probe:
    """Probe a block device with `blkid -p` (no cache: the stick's own bytes decide)."""
    result = _run(["blkid", "-p", "-o", "export", node], check=False)
    values: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return Probe(
        fs_type=values.get("TYPE") or None,
        usage=values.get("USAGE") or None,
        label=values.get("LABEL") or None,
        partition_table=bool(values.get("PTTYPE")),
    )


def options_for(fs_type: str, *, writable: bool = False) -> list[str]:
    """Return the mount options of one filesystem type."""
    options = ["rw" if writable else "ro", *BASE_OPTIONS, *EXTRA.get(fs_type, ())]
    if not writable:
        options += NO_REPLAY.get(fs_type, ())
    return options


def set_readonly(node: str, readonly: bool = True) -> None:
    """Mark a block device read-only (or read-write again) in the kernel."""
    _run(["blockdev", "--setro" if readonly else "--setrw", node])


def is_readonly(node: str) -> bool:
    """Tell whether the kernel holds a block device read-only."""
    return _run(["blockdev", "--getro", node]).stdout.strip() == "1"


def _types_to_try(fs_type: str) -> list[str]:
    if fs_type == "ntfs":
        # The kernel's ntfs3 first; ntfs-3g (FUSE) where the kernel lacks it.
        return ["ntfs3", "ntfs-3g"] if shutil.which("ntfs-3g") else ["ntfs3"]
    return [fs_type]


def mount(node: str, fs_type: str, target: Path, *, writable: bool = False) -> str | None:
    """Mount one block device at *target* (read-only unless *writable*).

    Return None when the first driver mounted it without a word, else a short note of what was
    said (a driver that refused it first, warnings of the one that mounted it: an unclean NTFS,
    say): the stick did not mount cleanly. A kernel without ntfs3 (Debian 12's) is no sign.
    """
    errors: list[str] = []
    refusals: list[str] = []
    for kind in _types_to_try(fs_type):
        options = options_for(fs_type, writable=writable)
        if kind == "ntfs-3g":
            options = [o for o in options if o != "nosymfollow"]
        result = _run(
            ["mount", "-t", kind, "-o", ",".join(options), node, str(target)], check=False
        )
        if result.returncode == 0:
            said = helper_detail(result.stderr)
            notes = [*refusals, f"{kind}: {said}"] if said else refusals
            return "; ".join(notes) or None
        error = f"{kind}: {helper_detail(result.stderr) or result.returncode}"
        errors.append(error)
        if "unknown filesystem type" not in result.stderr:
            refusals.append(error)  # a driver that exists and refused this filesystem
    raise MountError(
        f"cannot mount {node} ({fs_type}): {'; '.join(errors)}", reason=Reason.MOUNT_FAILED
    )


def unmount(target: Path) -> None:
    """Unmount *target*; a busy or vanished device is detached lazily rather than left behind."""
    for _ in range(5):
        result = _run(["umount", str(target)], check=False)
        if result.returncode == 0 or not is_mountpoint(target):
            return
        time.sleep(0.2)
    log.warning("lazy unmount of %s", target)
    _run(["umount", "--lazy", str(target)], check=False)


def attach_image(image: Path, *, readonly: bool = True) -> str:
    """Attach an image file to a free loop device and return its node."""
    args = ["losetup", "--find", "--show"]
    if readonly:
        args.append("--read-only")
    node = _run([*args, str(image)]).stdout.strip()
    if not node.startswith("/dev/"):
        raise DeviceError(f"losetup gave no device for {image}")
    return node


def detach_image(node: str) -> None:
    """Detach a loop device attached by `attach_image`."""
    _run(["losetup", "--detach", node], check=False)


def clear_stale(base: Path) -> list[str]:
    """Unmount whatever a killed station left under *base*, deepest first; return the targets."""
    prefix = f"{base}/"
    stale = sorted(
        (m.target for m in mounts() if m.target.startswith(prefix)), key=len, reverse=True
    )
    for target in stale:
        log.warning("unmounting %s left by a previous run", target)
        unmount(Path(target))
    if base.is_dir():
        # Only our own two levels (session, volume): never a walk of whatever base points to.
        for session_dir in base.iterdir():
            if session_dir.is_dir() and not session_dir.is_symlink():
                for volume_dir in session_dir.iterdir():
                    if volume_dir.is_dir() and not volume_dir.is_symlink():
                        _rmdir(volume_dir)
                _rmdir(session_dir)
    return stale


def private_dir(path: Path) -> Path:
    """Create *path* (and parents) owned by root, mode 0700, and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def mountable(volumes: list[Volume]) -> list[Volume]:
    """Return the volumes to mount: partitions, or a disk's own filesystem when it has none.

    A disk whose table holds partitions is not mounted itself. But a filesystem made on the whole
    device (exFAT, FAT) carries the 0x55AA signature of a DOS table too, and udev then reports
    both a partition table and a filesystem: with no partition of it in sight, the filesystem wins.
    """
    partitions = {v.stick for v in volumes if v.kind is Kind.PARTITION}
    return [
        v
        for v in volumes
        if not v.partition_table or (v.fs_type and v.stick not in partitions and not v.partitions)
    ]


class StickMount:
    """Mount every volume of one stick under one private directory; undo it all on close."""

    def __init__(
        self,
        volumes: Iterable[Volume],
        base: Path,
        name: str,
        *,
        allowed: Iterable[str],
        writable: bool = False,
    ) -> None:
        self.volumes = mountable(list(volumes))
        self.base = base
        self.name = name
        self.allowed = frozenset(allowed)
        self.writable = writable
        self.root: Path | None = None
        # What to scan: ("", root) for one filesystem; ("1", root/1), ("2", root/2)... for several
        # (the scanner does not cross into another filesystem, so each is scanned on its own).
        self.roots: list[tuple[str, Path]] = []
        self.mounted: list[Volume] = []  # volumes as mounted, with probed fs_type filled in
        self.unclean: list[str] = []  # notes of volumes that did not mount cleanly (see mount)
        self._stack = ExitStack()

    def __enter__(self) -> StickMount:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> Path:
        """Check, attach and mount everything; return the directory to scan."""
        if not self.volumes:
            raise MountError("no filesystem on this stick", reason=Reason.NO_FILESYSTEM)
        folders = [v for v in self.volumes if v.kind is Kind.FOLDER]
        if folders:
            # A demo folder is scanned where it is: nothing to mount.
            self.root = Path(folders[0].node or folders[0].key)
            self.mounted = folders[:1]
            self.roots = [("", self.root)]
            return self.root
        session_dir = private_dir(self.base) / self.name
        session_dir.mkdir(mode=0o700)
        self._stack.callback(_rmdir, session_dir)
        single = len(self.volumes) == 1
        for index, volume in enumerate(self.volumes, start=1):
            target = session_dir if single else session_dir / str(index)
            if not single:
                target.mkdir(mode=0o700)
                self._stack.callback(_rmdir, target)
            self.mounted.append(self._mount_one(volume, target))
            self.roots.append(("" if single else str(index), target))
        self.root = session_dir
        return session_dir

    def _mount_one(self, volume: Volume, target: Path) -> Volume:
        node = volume.node or ""
        if volume.kind is Kind.IMAGE:
            node = attach_image(Path(volume.key), readonly=not self.writable)
            self._stack.callback(detach_image, node)
        if not node or not os.path.exists(node):
            raise MountError(f"{node or volume.key}: device gone", reason=Reason.DEVICE_REMOVED)
        # Read-only in the kernel before anything else reads the device: no write can reach it.
        set_readonly(node, not self.writable)
        found = probe(node)
        fs_type = (
            found.fs_type if volume.kind is Kind.IMAGE or not volume.fs_type else volume.fs_type
        )
        if not fs_type:
            raise MountError(f"{node}: no filesystem", reason=Reason.NO_FILESYSTEM)
        if found.fs_type and found.fs_type != fs_type:
            # udev and the probe disagree (the stick changed under us): trust neither.
            raise MountError(
                f"{node}: filesystem {found.fs_type} is not the {fs_type} announced",
                reason=Reason.UNSUPPORTED_FS,
            )
        if fs_type not in self.allowed:
            raise MountError(
                f"{node}: filesystem {fs_type} not allowed", reason=Reason.UNSUPPORTED_FS
            )
        note = mount(node, fs_type, target, writable=self.writable)
        self._stack.callback(unmount, target)
        if note is not None:
            log.info("%s did not mount cleanly: %s", node, note)
            self.unclean.append(note)
        return replace(
            volume, node=node, fs_type=fs_type, label=volume.label or _label(found.label)
        )

    def close(self) -> None:
        """Unmount, detach and remove everything this mount did (idempotent)."""
        self._stack.close()

    @contextlib.contextmanager
    def writable_copy(self) -> Iterator[StickMount]:
        """Yield the same stick mounted read-write (for deleting named files), then undo it."""
        other = StickMount(
            self.volumes, self.base, f"{self.name}-rw", allowed=self.allowed, writable=True
        )
        with other:
            yield other


def _label(label: str | None) -> str | None:
    return escape_name(label.encode("utf-8", "surrogateescape")) if label else None


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)

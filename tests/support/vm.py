"""The kiosk's test image in QEMU (TCG), driven through QMP, read through virtio ports.

What the guest says reaches the host by three files QEMU writes: the serial console (kernel and
early boot), the journal as JSON lines (kiosk-testlog.service) and the station's event lines
prefixed with the guest's monotonic clock (kiosk-testevents.service). Sticks and keyboards come
and go with QMP `blockdev-add`/`device_add` on a qemu-xhci bus, as on a real USB port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.qmp import QMP

GUEST_SERVER = "10.0.2.100"
GUEST_PORT = 8000
RELAY = Path(__file__).with_name("relay.py")


@dataclass(frozen=True)
class TestImage:
    """The output of `image-build/build --test`."""

    __test__ = False  # not a pytest test class, whatever its name

    directory: Path
    kernel: Path
    initrd: Path
    root: Path
    cmdline: str
    data_uuid: str

    @classmethod
    def load(cls, directory: Path) -> TestImage:
        """Read OUT/manifest.json."""
        manifest = json.loads((directory / "manifest.json").read_text())
        files = manifest["files"]
        return cls(
            directory=directory,
            kernel=directory / files["kernel"],
            initrd=directory / files["initrd"],
            root=directory / files["root"],
            cmdline=manifest["cmdline"],
            data_uuid=manifest["data_uuid"],
        )


class Tail:
    """Lines appended to a file that QEMU writes, each with the host time it was read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.lines: list[tuple[float, str]] = []

    def poll(self) -> list[tuple[float, str]]:
        """Read what is new; return the new complete lines."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        now = time.monotonic()
        *complete, self._partial = (self._partial + data).split(b"\n")
        new = [(now, line.decode("utf-8", "replace")) for line in complete]
        self.lines.extend(new)
        return new


@dataclass
class StationEvent:
    """One station event line as tapped in the guest."""

    guest_time: float
    host_time: float
    data: dict[str, Any]


@dataclass
class VM:
    """One QEMU process running the test image."""

    image: TestImage | None
    workdir: Path
    data_image: Path | None
    server_port: int
    extra_cmdline: str = ""
    # A whole-disk image (image-build/build without --test) booted by its own GRUB instead.
    disk: Path | None = None
    disk_format: str = "raw"
    firmware: str = "bios"
    machine: str = "pc"
    # Certificate and key the relay presents to the guest (the shipper speaks only HTTPS).
    tls: tuple[Path, Path] | None = None
    memory_mib: int = 2048
    process: subprocess.Popen[bytes] | None = None
    qmp: QMP | None = None
    started_at: float = 0.0
    console: Tail = field(init=False)
    journal_tail: Tail = field(init=False)
    events_tail: Tail = field(init=False)
    journal: list[dict[str, Any]] = field(default_factory=list)
    events: list[StationEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.console = Tail(self.workdir / "console.log")
        self.journal_tail = Tail(self.workdir / "journal.jsonl")
        self.events_tail = Tail(self.workdir / "events.log")

    @property
    def hold_file(self) -> Path:
        """While this file exists, new guest connections get no reply (see relay.py)."""
        return self.workdir / "hold-replies"

    def cmdline(self) -> str:
        """The image's own command line plus the test's switches."""
        assert self.image is not None
        return " ".join(
            [
                self.image.cmdline,
                "console=ttyS0,115200",
                # On the serial console only (the screen is tty1): a unit that fails, or a boot
                # stuck behind a slow start job, is then said in console.log.
                "systemd.show_status=auto",
                # Nothing can be downloaded here, and nothing waits for a network that is not there.
                "systemd.mask=clamav-freshclam.service",
                "systemd.mask=systemd-networkd-wait-online.service",
                self.extra_cmdline,
            ]
        ).strip()

    def argv(self) -> list[str]:
        """The QEMU command line."""
        relay = f"{shlex.quote(sys.executable)} {RELAY} {self.server_port} {self.hold_file}"
        if self.tls is not None:
            relay += f" {self.tls[0]} {self.tls[1]}"
        w = self.workdir
        return [
            "qemu-system-x86_64",
            "-machine",
            self.machine,
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            str(self.memory_mib),
            *self.boot_args(),
            "-device",
            "qemu-xhci,id=xhci",
            "-netdev",
            f"user,id=net0,restrict=on,guestfwd=tcp:{GUEST_SERVER}:{GUEST_PORT}-cmd:{relay}",
            "-device",
            "virtio-net-pci,netdev=net0",
            "-device",
            "virtio-serial-pci,id=vser",
            "-chardev",
            f"file,id=journal,path={w / 'journal.jsonl'}",
            "-device",
            "virtserialport,chardev=journal,name=org.kiosk.journal",
            "-chardev",
            f"file,id=events,path={w / 'events.log'}",
            "-device",
            "virtserialport,chardev=events,name=org.kiosk.events",
            "-chardev",
            f"socket,id=control,path={w / 'control.sock'},server=on,wait=off",
            "-device",
            "virtserialport,chardev=control,name=org.kiosk.control",
            "-serial",
            f"file:{w / 'console.log'}",
            # The screen has an id so that a USB keyboard can be bound to it (input-send-event
            # then reaches that keyboard, and only it).
            "-vga",
            "none",
            "-device",
            "VGA,id=video0",
            "-display",
            "none",
            "-qmp",
            f"unix:{w / 'qmp.sock'},server=on,wait=off",
        ]

    def boot_args(self) -> list[str]:
        """Kernel and disks: -kernel/-initrd with the test image, or a whole disk and firmware."""
        if self.disk is not None:
            args = [
                "-drive",
                f"if=none,id=disk,file={self.disk},format={self.disk_format},snapshot=on",
                "-device",
                "virtio-blk-pci,drive=disk,bootindex=0",
            ]
            if self.firmware in ("uefi", "uefi-secureboot"):
                # .ms.fd: OVMF with Secure Boot enforced and Microsoft's keys enrolled, as PCs
                # are sold; it needs SMM (machine q35,smm=on and a secure pflash).
                kind = ".ms" if self.firmware == "uefi-secureboot" else ""
                variables = self.workdir / "OVMF_VARS.fd"
                shutil.copyfile(f"/usr/share/OVMF/OVMF_VARS_4M{kind}.fd", variables)
                code = f"/usr/share/OVMF/OVMF_CODE_4M{kind}.fd"
                args += [
                    "-drive",
                    f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                    "-drive",
                    f"if=pflash,format=raw,unit=1,file={variables}",
                ]
                if kind:
                    args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
            return args
        assert self.image is not None and self.data_image is not None
        return [
            "-kernel",
            str(self.image.kernel),
            "-initrd",
            str(self.image.initrd),
            "-append",
            self.cmdline(),
            "-drive",
            f"if=none,id=root,file={self.image.root},format=raw,readonly=on",
            "-device",
            "virtio-blk-pci,drive=root",
            "-drive",
            f"if=none,id=data,file={self.data_image},format=raw",
            "-device",
            "virtio-blk-pci,drive=data",
        ]

    def start(self) -> None:
        """Start QEMU and connect to its monitor."""
        for name in ("console.log", "journal.jsonl", "events.log", "qmp.sock", "control.sock"):
            (self.workdir / name).unlink(missing_ok=True)
        self.started_at = time.monotonic()
        with (self.workdir / "qemu.out").open("wb") as out:
            self.process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.qmp = QMP(self.workdir / "qmp.sock")

    def stop(self) -> None:
        """Stop QEMU (quit, then kill) and every relay it started."""
        if self.qmp is not None and not self.qmp.closed:
            with contextlib.suppress(Exception):
                self.qmp.command("quit", timeout=5)
            self.qmp.close()
        if self.process is not None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            # Relays of held connections are in QEMU's session.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def monitor(self) -> QMP:
        """The QMP monitor (the VM must be started)."""
        assert self.qmp is not None, "VM not started"
        return self.qmp

    # -- reading the guest ------------------------------------------------------------------

    def poll(self) -> None:
        """Read what the guest wrote since the last poll."""
        self.console.poll()
        for _, line in self.journal_tail.poll():
            with contextlib.suppress(ValueError):
                self.journal.append(json.loads(line))
        for host_time, line in self.events_tail.poll():
            stamp, _, body = line.partition(" ")
            try:
                guest_time = float(stamp)
                data = json.loads(body)
            except ValueError:
                continue
            self.events.append(StationEvent(guest_time, host_time, data))

    def wait_for(self, what: str, predicate: Callable[[], Any], timeout: float) -> Any:
        """Poll the guest until *predicate* returns something true; fail with *what*."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            result = predicate()
            if result:
                return result
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"QEMU exited ({self.process.returncode}) waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timeout ({timeout} s) waiting for {what}\n{self.diagnostics()}"
                )
            time.sleep(0.2)

    def journal_lines(self, identifier: str | None = None, unit: str | None = None) -> list[str]:
        """MESSAGE of journal entries, optionally of one syslog identifier or unit."""
        out = []
        for entry in self.journal:
            if identifier and entry.get("SYSLOG_IDENTIFIER") != identifier:
                continue
            if unit and entry.get("_SYSTEMD_UNIT") != unit:
                continue
            message = entry.get("MESSAGE")
            if isinstance(message, list):  # non-UTF-8 messages come as byte arrays
                message = bytes(message).decode("utf-8", "replace")
            out.append(str(message))
        return out

    def find_journal(self, needle: str, identifier: str | None = None) -> str | None:
        """The first journal message containing *needle*."""
        for message in self.journal_lines(identifier):
            if needle in message:
                return message
        return None

    def diagnostics(self, lines: int = 40) -> str:
        """The end of the console and of the journal, for failure messages."""
        self.poll()
        console = "\n".join(line for _, line in self.console.lines[-lines:])
        journal = "\n".join(
            f"{e.get('SYSLOG_IDENTIFIER', e.get('_SYSTEMD_UNIT', '?'))}: {e.get('MESSAGE')}"
            for e in self.journal[-lines:]
        )
        return f"--- console ---\n{console}\n--- journal ---\n{journal}"

    # -- devices ----------------------------------------------------------------------------

    def plug_stick(self, ident: str, image: Path, serial: str, readonly: bool = False) -> float:
        """Hot-plug a USB stick backed by *image*; return the host time of device_add."""
        qmp = self.monitor()
        qmp.execute(
            "blockdev-add",
            {
                "driver": "raw",
                "node-name": f"{ident}-node",
                "read-only": readonly,
                "file": {"driver": "file", "filename": str(image), "read-only": readonly},
            },
        )
        at = time.monotonic()
        qmp.command(
            "device_add",
            driver="usb-storage",
            id=ident,
            drive=f"{ident}-node",
            bus="xhci.0",
            serial=serial,
            removable=True,
        )
        return at

    def unplug_stick(self, ident: str, timeout: float = 30.0) -> float:
        """Pull a stick: device_del, wait for DEVICE_DELETED, then free its block node."""
        qmp = self.monitor()
        at = time.monotonic()
        qmp.command("device_del", id=ident)
        qmp.wait_event("DEVICE_DELETED", timeout=timeout, since=at, device=ident)
        qmp.execute("blockdev-del", {"node-name": f"{ident}-node"})
        return at

    def plug_keyboard(self, ident: str) -> None:
        """Hot-plug a USB keyboard, bound to the screen so that send_keys(usb=True) types on it."""
        self.monitor().command(
            "device_add", driver="usb-kbd", id=ident, bus="xhci.0", display="video0"
        )

    def unplug(self, ident: str, timeout: float = 30.0) -> None:
        """Remove a device that has no block node."""
        qmp = self.monitor()
        at = time.monotonic()
        qmp.command("device_del", id=ident)
        qmp.wait_event("DEVICE_DELETED", timeout=timeout, since=at, device=ident)

    def send_keys(self, keys: list[str], usb: bool = False) -> None:
        """Press *keys* (QKeyCodes, together, as a chord) and release them: on the USB keyboard
        bound to the screen when *usb*, else on the machine's own PS/2 keyboard."""
        device = "video0" if usb else None
        down = [
            {"type": "key", "data": {"down": True, "key": {"type": "qcode", "data": k}}}
            for k in keys
        ]
        up = [
            {"type": "key", "data": {"down": False, "key": {"type": "qcode", "data": k}}}
            for k in reversed(keys)
        ]
        qmp = self.monitor()
        args: dict[str, Any] = {"events": down}
        if device:
            args["device"] = device
        qmp.command("input-send-event", **args)
        time.sleep(0.1)
        args["events"] = up
        qmp.command("input-send-event", **args)

    def screendump(self, path: Path) -> Path:
        """Save the screen as PNG (for people) at *path*."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.monitor().command("screendump", filename=str(path), format="png")
        return path

    def screen_pixels(self) -> tuple[int, int, bytes]:
        """The screen as raw RGB (QEMU's PPM screendump, parsed here)."""
        path = self.workdir / "screen.ppm"
        self.monitor().command("screendump", filename=str(path))
        return parse_ppm(path.read_bytes())

    def control(self, command: str, timeout: float = 60.0) -> str:
        """Ask the guest's test-control service (virtio port org.kiosk.control) for something
        QEMU cannot do from outside; return its one-line answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.workdir / "control.sock"))
            sock.sendall(command.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return answer.decode(errors="replace").strip()

    def reset(self) -> float:
        """Press the reset button (a power cut for everything not yet on disk)."""
        at = time.monotonic()
        self.monitor().command("system_reset")
        return at


def parse_ppm(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGB bytes of a binary PPM (P6, maxval 255)."""
    fields: list[bytes] = []
    offset = 0
    while len(fields) < 4:
        while data[offset : offset + 1].isspace():
            offset += 1
        if data[offset : offset + 1] == b"#":
            offset = data.index(b"\n", offset) + 1
            continue
        end = offset
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[offset:end])
        offset = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise ValueError("not a P6 PPM with maxval 255")
    width, height = int(fields[1]), int(fields[2])
    offset += 1
    return width, height, data[offset : offset + width * height * 3]


def colour_share(pixels: tuple[int, int, bytes], rgb: tuple[int, int, int], tol: int = 40) -> float:
    """Share of the screen (sampled) whose colour is within *tol* of *rgb*."""
    width, height, raw = pixels
    total = hits = 0
    step = 7  # sampling every 7th pixel is plenty for "is the screen mostly red"
    for i in range(0, width * height, step):
        r, g, b = raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]
        total += 1
        if abs(r - rgb[0]) <= tol and abs(g - rgb[1]) <= tol and abs(b - rgb[2]) <= tol:
            hits += 1
    return hits / total if total else 0.0


def make_data_image(path: Path, data_uuid: str, tree: Path, size_mib: int = 256) -> None:
    """The data partition of the test VM, from a tree (config, token, signatures)."""
    path.unlink(missing_ok=True)
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "kiosk-data",
            "-U",
            data_uuid,
            "-d",
            str(tree),
            "-E",
            "root_owner=0:0",
            str(path),
            f"{size_mib}M",
        ],
        check=True,
    )


def make_certificate(directory: Path, ip: str = GUEST_SERVER) -> tuple[Path, Path]:
    """A self-signed certificate for the server's address as the guest sees it."""
    cert, key = directory / "server-cert.pem", directory / "server-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=kiosk-test-server",
            "-addext",
            f"subjectAltName=IP:{ip}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def qemu_available() -> bool:
    """True where QEMU and the image tools are installed."""
    return all(shutil.which(t) for t in ("qemu-system-x86_64", "debootstrap", "mkfs.ext4"))

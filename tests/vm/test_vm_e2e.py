"""The kiosk image in QEMU, end to end: USB sticks in, verdicts on screen, reports on the server.

One VM for the module (booting under TCG costs ~45 s), driven through QMP like a person at the
kiosk: sticks are hot-plugged on a qemu-xhci bus, keyboards too, keys are typed, the screen is
photographed, the power is cut. What the guest does is read from its journal and the station's
event lines (virtio ports) and from the central server's database on the host. The tests run in
file order and share the VM; each asserts its own part. THREATS.md rows 15-17, 23, 25, 26.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import sticks
from tests.support.clamd import write_signatures
from tests.support.fuzzed import FUZZED, Fuzzed
from tests.support.vm import VM, TestImage, colour_share, make_certificate, make_data_image
from tests.vm.conftest import STATION_ID, CentralServer

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1500)]

BOOT_TIMEOUT = 300
SCAN_TIMEOUT = 240
DELIVERY_TIMEOUT = 120

# Colours of the Linux console (the kiosk's VGA text palette, as QEMU draws it) and what a
# truecolor theme would use: a verdict is recognised by its dominant colour on the screen.
VERDICT_COLOURS: dict[str, list[tuple[int, int, int]]] = {
    "clean": [(0, 170, 0), (11, 110, 47), (0, 128, 0)],
    "infected": [(170, 0, 0), (160, 16, 30), (128, 0, 0)],
    "other": [(170, 85, 0), (224, 122, 0), (170, 170, 0)],
}


@dataclass
class StickTiming:
    """What a person would wait for, per stick, from device_add (host clock, seconds)."""

    name: str
    first_progress: float | None = None
    verdict_event: float | None = None
    verdict_on_screen: float | None = None
    report_on_server: float | None = None


@dataclass
class Kiosk:
    """The booted VM with its server, sticks and bookkeeping."""

    vm: VM
    server: CentralServer
    artifacts: Path
    stick_dir: Path
    boot_seconds: float
    timings: list[StickTiming] = field(default_factory=list)
    # Other measures, printed with the timings (hardening levels, fuzzed sticks' verdicts).
    notes: list[str] = field(default_factory=list)
    shots: int = 0
    expected_reports: int = 0
    # Product strings of the USB devices refused (each must be reported once).
    refused_models: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        """A PNG of the screen, numbered in the order taken."""
        self.shots += 1
        return self.vm.screendump(self.artifacts / f"{self.shots:02d}-{name}.png")

    def session_of(self, serial: str) -> str | None:
        """The station's session id for the stick with this USB serial."""
        for event in self.vm.events:
            device = event.data.get("device") or {}
            if event.data.get("type") == "session" and device.get("serial") == serial:
                return str(event.data["session_id"])
        return None

    def pull(self, name: str, serial: str) -> None:
        """Take the stick out (if still in) and wait until the station ended its session, so
        that the next case starts from the waiting screen, not behind a session left over."""
        with contextlib.suppress(Exception):
            self.vm.unplug_stick(name)
        session = self.session_of(serial)
        if session is not None:
            self.wait(f"{name}: removed", lambda: self.event("removed", session), 60)

    def event(self, kind: str, session_id: str, since: float = 0.0) -> Any:
        """The first station event of *kind* for a session."""
        for event in self.vm.events:
            if (
                event.data.get("type") == kind
                and event.data.get("session_id") == session_id
                and event.host_time >= since
            ):
                return event
        return None

    def server_report(self, serial: str) -> dict[str, Any] | None:
        """The report the central server stored for this stick."""
        for report in self.server.reports():
            if report.get("device_serial") == serial:
                return report
        return None

    def delivered(
        self, what: str, serial: str, timeout: float = DELIVERY_TIMEOUT
    ) -> dict[str, Any]:
        """Wait for stick *serial*'s report on the server, and count it among those expected."""
        report: dict[str, Any] = self.wait(what, lambda: self.server_report(serial), timeout)
        self.expected_reports += 1
        return report

    def screen_colour(self) -> str | None:
        """'clean', 'infected' or 'other' when that verdict colour fills much of the screen."""
        pixels = self.vm.screen_pixels()
        for verdict, colours in VERDICT_COLOURS.items():
            if max(colour_share(pixels, c, tol=30) for c in colours) > 0.25:
                return verdict
        return None

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float) -> Any:
        """Poll the guest until *predicate* holds."""
        return self.vm.wait_for(what, predicate, timeout)


def same_screen(a: tuple[int, int, bytes], b: tuple[int, int, bytes]) -> bool:
    """The two screens are the same but for the bottom status line (it follows the server
    link and the station's health, which change on their own)."""
    width, height, _ = a
    keep = width * 3 * (height - 48)
    return a[:2] == b[:2] and a[2][:keep] == b[2][:keep]


def arrival(report: dict[str, Any], plugged: float) -> float:
    """Seconds from device_add (host monotonic clock) to the server storing the report (its
    received_at, UTC): measured by the server itself, not by when the test looked."""
    received = datetime.fromisoformat(str(report["received_at"])).replace(tzinfo=UTC)
    plugged_wall = time.time() - (time.monotonic() - plugged)
    return received.timestamp() - plugged_wall


def diff_box(a: tuple[int, int, bytes], b: tuple[int, int, bytes]) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the pixels that differ, for failure messages."""
    width = a[0]
    xs, ys = [], []
    for i in range(0, min(len(a[2]), len(b[2])), 3):
        if a[2][i : i + 3] != b[2][i : i + 3]:
            xs.append((i // 3) % width)
            ys.append((i // 3) // width)
    return (min(xs), min(ys), max(xs), max(ys)) if xs else (0, 0, 0, 0)


def refusal_reports(kiosk: Kiosk, model: str) -> list[dict[str, Any]]:
    """The server's reports of refused USB devices whose product string is *model*."""
    return [
        r
        for r in kiosk.server.reports()
        if r.get("reason") == "device_refused" and r.get("device_model") == model
    ]


def follow_refusal(kiosk: Kiosk, name: str, model: str, before: tuple[int, int, bytes]) -> None:
    """Row 25, reported: the refusal's notice comes on the screen and goes, its report reaches
    the server (verdict suspicious, reason device_refused, nothing read)."""
    vm = kiosk.vm
    kiosk.wait(
        f"{name}: the refusal notice on the screen",
        lambda: not same_screen(vm.screen_pixels(), before),
        30,
    )
    kiosk.shot(f"{name}-notice")
    report = kiosk.wait(
        f"{name}: the refusal reported to the server",
        lambda: refusal_reports(kiosk, model),
        DELIVERY_TIMEOUT,
    )[0]
    assert report["verdict"] == "suspicious", report
    assert report["files_total"] == 0, report
    kiosk.refused_models.append(model)
    # The notice is short: the screen comes back to what it was, and only then are keys sent,
    # so that whatever changes after them is theirs.
    kiosk.wait(
        f"{name}: the screen as before the notice",
        lambda: same_screen(vm.screen_pixels(), before),
        60,
    )


def stable_screen(kiosk: Kiosk) -> tuple[int, int, bytes]:
    """The screen once it stopped changing (the UI finished its last transition)."""
    previous = kiosk.vm.screen_pixels()

    def settled() -> tuple[int, int, bytes] | None:
        nonlocal previous
        time.sleep(1.5)
        current = kiosk.vm.screen_pixels()
        same = same_screen(current, previous)
        previous = current
        return current if same else None

    result: tuple[int, int, bytes] = kiosk.wait("a still screen", settled, 60)
    return result


def _data_tree(root: Path, token: str, ca: Path) -> Path:
    """The data partition: config, token and the custom signature set (nothing downloads)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    write_signatures(root / "signatures")
    (root / "kiosk.toml").write_text(
        "[station]\n"
        f'id = "{STATION_ID}"\n'
        "selftest_interval = 100000.0\n"
        "[signatures]\n"
        "max_age_days = 36500.0\n"
        "[shipper]\n"
        'server_url = "https://10.0.2.100:8000"\n'
        'ca_file = "/var/lib/kiosk/server-ca.pem"\n'
        "heartbeat_interval = 15.0\n"
        "backoff_max = 5.0\n"
        "timeout = 10.0\n"
    )
    shutil.copyfile(ca, root / "server-ca.pem")
    (root / "token").write_text(token + "\n")
    (root / "token").chmod(0o600)
    return root


@pytest.fixture(scope="module")
def kiosk(
    test_image: TestImage,
    central_server: CentralServer,
    artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Kiosk]:
    """Boot the test image with its data partition and wait for the kiosk screen."""
    work = tmp_path_factory.mktemp("vm")
    cert, key = make_certificate(work)
    tree = _data_tree(work / "data-tree", central_server.token, cert)
    make_data_image(work / "data.ext4", test_image.data_uuid, tree)
    vm = VM(
        image=test_image,
        workdir=work / "qemu",
        data_image=work / "data.ext4",
        server_port=central_server.port,
        tls=(cert, key),
    )
    stick_dir = work / "sticks"
    stick_dir.mkdir()
    started = time.monotonic()
    vm.start()
    kiosk = Kiosk(vm, central_server, artifacts, stick_dir, boot_seconds=0.0)
    try:
        vm.wait_for(
            "the station's hello on the event tap",
            lambda: any(e.data.get("type") == "hello" for e in vm.events),
            BOOT_TIMEOUT,
        )
        kiosk.boot_seconds = time.monotonic() - started
        yield kiosk
    finally:
        vm.poll()
        for name in ("console.log", "journal.jsonl", "events.log", "qemu.out"):
            if (vm.workdir / name).exists():
                shutil.copyfile(vm.workdir / name, artifacts / name)
        vm.stop()
        lines = [f"boot to the station's hello: {kiosk.boot_seconds:.1f} s"]
        lines.append(f"{'stick':<16}{'progress':>10}{'verdict':>10}{'screen':>10}{'server':>10}")
        for t in kiosk.timings:
            cells = [t.first_progress, t.verdict_event, t.verdict_on_screen, t.report_on_server]
            lines.append(
                f"{t.name:<16}"
                + "".join(f"{c:>9.1f}s" if c is not None else f"{'-':>10}" for c in cells)
            )
        lines.extend(kiosk.notes)
        text = "\n".join(lines)
        (artifacts / "timings.txt").write_text(text + "\n")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("\nVM timings (from device_add):\n" + text)


def test_boots_to_the_waiting_screen(kiosk: Kiosk) -> None:
    """The kiosk boots with nobody at the keyboard: the screen shows the UI, no login."""
    vm = kiosk.vm
    kiosk.wait(
        "kiosk-ui.service started",
        lambda: vm.find_journal("Started kiosk-ui.service"),
        60,
    )
    # Textual takes a while to start under TCG: wait for its first frame.
    kiosk.wait(
        "the UI's first frame (a screen that is not black)",
        lambda: colour_share(vm.screen_pixels(), (0, 0, 0), tol=8) < 0.9,
        120,
    )
    time.sleep(2)
    kiosk.shot("waiting")
    started = [m for m in vm.journal_lines() if m.startswith("Started") and "getty" in m]
    assert not started, f"a getty ran: {started}"
    # The station's identity came from kiosk.toml on the data partition: nothing was asked.
    hello = next(e for e in vm.events if e.data.get("type") == "hello")
    assert hello.data["station_id"] == STATION_ID


def test_units_are_hardened_and_the_shipper_unprivileged(kiosk: Kiosk) -> None:
    """`systemd-analyze security` of the running units, measured in the guest; the shipper
    delivers as kiosk-ship (never uid 0), reading the token and the outbox through its groups."""
    vm = kiosk.vm
    answer = vm.control("security", timeout=120)
    levels = dict(item.split("=", 1) for item in answer.split())
    kiosk.notes.append(f"systemd-analyze security in the guest: {answer}")
    (kiosk.artifacts / "security.txt").write_text(answer + "\n")
    assert float(levels["kiosk-ui.service"]) <= 2.0, answer
    assert float(levels["kiosk-shipper.service"]) <= 2.0, answer
    assert float(levels["kiosk-station.service"]) <= 3.0, answer

    def shipper_entries() -> list[dict[str, Any]]:
        return [e for e in vm.journal if e.get("_SYSTEMD_UNIT") == "kiosk-shipper.service"]

    kiosk.wait(
        "the shipper delivering (token and outbox opened)",
        lambda: any("delivering" in str(e.get("MESSAGE")) for e in shipper_entries()),
        120,
    )
    uids = {e.get("_UID") for e in shipper_entries()}
    assert uids and "0" not in uids, uids


@dataclass(frozen=True)
class StickCase:
    """One stick of the parade and what the server must receive for it."""

    name: str
    serial: str
    build: Callable[[Path], Path]
    verdicts: tuple[str, ...]
    colour: str | None


def _clean_fat(d: Path) -> Path:
    return sticks.fat_stick(d / "clean.img", sticks.clean_tree(d / "clean"), partitioned=True)


def _eicar_fat(d: Path) -> Path:
    return sticks.fat_stick(d / "eicar.img", sticks.eicar_tree(d / "eicar"), partitioned=False)


# exFAT and NTFS in an MBR partition, as Windows formats sticks. (A whole-disk exFAT, whose boot
# sector also reads as an MBR, is "no filesystem" for the station today: see the README.)
def _exfat(d: Path) -> Path:
    volume = sticks.exfat_stick(d / "exfat.vol", sticks.testfiles_tree(d / "exfat"))
    return sticks.in_partition(d / "exfat.img", volume)


def _ntfs(d: Path) -> Path:
    volume = sticks.ntfs_stick(d / "ntfs.vol", sticks.testfiles_tree(d / "ntfs"))
    return sticks.in_partition(d / "ntfs.img", volume)


def _ext4(d: Path) -> Path:
    return sticks.ext4_stick(d / "ext4.img", sticks.clean_tree(d / "ext4"))


def _blank(d: Path) -> Path:
    return sticks.blank_stick(d / "blank.img")


STICKS = [
    StickCase("fat32-clean", "CLEANFAT32", _clean_fat, ("clean",), "clean"),
    StickCase("fat-eicar", "EICARFAT", _eicar_fat, ("infected",), "infected"),
    StickCase("exfat-testfiles", "EXFATTEST", _exfat, ("infected",), "infected"),
    StickCase("ntfs-testfiles", "NTFSTEST", _ntfs, ("infected",), "infected"),
    StickCase("ext4-clean", "EXT4CLEAN", _ext4, ("clean",), "clean"),
    StickCase("no-filesystem", "BLANK", _blank, ("error", "incomplete"), "other"),
]


def scan_stick(kiosk: Kiosk, name: str, serial: str, image: Path) -> tuple[StickTiming, float, str]:
    """Plug a stick and follow it to its verdict event; return its timing, plug time, session."""
    timing = StickTiming(name)
    kiosk.timings.append(timing)
    plugged = kiosk.vm.plug_stick(name, image, serial)
    session = kiosk.wait(f"{name}: a session", lambda: kiosk.session_of(serial), 60)
    verdict = kiosk.wait(
        f"{name}: the verdict event", lambda: kiosk.event("verdict", session), SCAN_TIMEOUT
    )
    timing.verdict_event = verdict.host_time - plugged
    progress = kiosk.event("progress", session)
    if progress is not None:
        timing.first_progress = progress.host_time - plugged
    return timing, plugged, session


@pytest.mark.parametrize("case", STICKS, ids=[c.name for c in STICKS])
def test_stick_verdict_reaches_screen_and_server(kiosk: Kiosk, case: StickCase) -> None:
    """Each kind of stick gets its verdict on the screen and at the central server (rows 15, 16)."""
    image = case.build(kiosk.stick_dir)
    try:
        check_stick(kiosk, case, image)
    finally:
        kiosk.pull(case.name, case.serial)  # whatever happened


def check_stick(kiosk: Kiosk, case: StickCase, image: Path) -> None:
    """One stick, from device_add to its report on the server, and out again."""
    vm = kiosk.vm
    timing, plugged, session = scan_stick(kiosk, case.name, case.serial, image)
    verdict = kiosk.event("verdict", session)
    if verdict.data["verdict"] not in case.verdicts:
        # The server's copy of the report says why (its detail), so wait for it first.
        report = kiosk.wait(
            f"{case.name}: the report on the server",
            lambda: kiosk.server_report(case.serial),
            DELIVERY_TIMEOUT,
        )
        pytest.fail(f"{case.name}: {verdict.data['verdict']}, expected {case.verdicts}: {report}")
    if case.colour is not None:
        kiosk.wait(
            f"{case.name}: the {case.colour} screen",
            lambda: kiosk.screen_colour() == case.colour,
            30,
        )
        timing.verdict_on_screen = time.monotonic() - plugged
    kiosk.shot(case.name)
    report = kiosk.delivered(f"{case.name}: the report on the server", case.serial)
    timing.report_on_server = arrival(report, plugged)
    assert report["verdict"] == verdict.data["verdict"]
    assert report["report_id"] == verdict.data["report_id"]
    assert report["station_id"] == STATION_ID
    vm.unplug_stick(case.name)
    kiosk.wait(f"{case.name}: removed", lambda: kiosk.event("removed", session), 60)
    time.sleep(2)
    kiosk.shot(f"{case.name}-removed")


FUZZED_COLOURS = {"clean": "clean", "infected": "infected", "suspicious": "infected"}


@pytest.mark.parametrize("case", FUZZED, ids=[c.name for c in FUZZED])
def test_corrupted_stick_is_never_falsely_clean(kiosk: Kiosk, case: Fuzzed) -> None:
    """Row 16: a vfat, exFAT or NTFS stick with flipped metadata bytes gets a verdict, on the
    screen and at the server; `clean` only if every file it lists was read and found OK (each
    holds EICAR, so a stick read whole is never clean: usually it is 'cannot read')."""
    image = case.build(kiosk.stick_dir)
    try:
        timing, plugged, session = scan_stick(kiosk, case.name, case.serial, image)
        verdict = kiosk.event("verdict", session).data
        colour = FUZZED_COLOURS.get(verdict["verdict"], "other")
        kiosk.wait(f"{case.name}: the {colour} screen", lambda: kiosk.screen_colour() == colour, 30)
        timing.verdict_on_screen = time.monotonic() - plugged
        kiosk.shot(case.name)
        report = kiosk.delivered(f"{case.name}: the report on the server", case.serial)
        timing.report_on_server = arrival(report, plugged)
        kiosk.notes.append(
            f"{case.name}: {report['verdict']} ({report['reason']}), "
            f"{report['files_total']} files, {report['threats_total']} threats"
        )
        assert report["verdict"] == verdict["verdict"]
        assert report["report_id"] == verdict["report_id"]
        if report["verdict"] == "clean":
            document = json.loads(report["document"])
            counts = document["counts"]
            assert counts.get("clean", 0) == document["files_total"], counts
            assert not any(
                counts.get(v) for v in ("infected", "suspicious", "unverifiable", "error")
            )
    finally:
        kiosk.pull(case.name, case.serial)


def test_a_good_stick_after_the_corrupted_ones(kiosk: Kiosk) -> None:
    """Row 16: after the corrupted sticks the kiosk works as before (same station process)."""
    case = StickCase("after-fuzzed", "AFTERFUZZ", _clean_fat, ("clean",), "clean")
    try:
        check_stick(kiosk, case, case.build(kiosk.stick_dir / "after-fuzzed"))
    finally:
        kiosk.pull(case.name, case.serial)
    assert not kiosk.vm.find_journal("kiosk-station.service: Main process exited")


def test_stick_pulled_mid_scan_is_incomplete_and_the_next_one_works(kiosk: Kiosk) -> None:
    """Row 17: pulled mid-scan -> incomplete within seconds, delivered; the next stick works."""
    image = sticks.fat_stick(
        kiosk.stick_dir / "big.img", sticks.big_tree(kiosk.stick_dir / "big"), size_mib=400
    )
    timing = StickTiming("pulled")
    kiosk.timings.append(timing)
    plugged = kiosk.vm.plug_stick("big", image, "BIGPULL")
    session = kiosk.wait("big: a session", lambda: kiosk.session_of("BIGPULL"), 60)
    progress = kiosk.wait(
        "big: scanning progress", lambda: kiosk.event("progress", session), SCAN_TIMEOUT
    )
    timing.first_progress = progress.host_time - plugged
    assert kiosk.event("verdict", session) is None, "the scan ended before the stick was pulled"
    kiosk.shot("scanning")
    pulled = kiosk.vm.unplug_stick("big")
    verdict = kiosk.wait("big: verdict after the pull", lambda: kiosk.event("verdict", session), 60)
    assert verdict.data["verdict"] == "incomplete", verdict.data
    assert verdict.host_time - pulled < 20, "incomplete should come within seconds of the pull"
    timing.verdict_event = verdict.host_time - plugged
    kiosk.wait("big: the 'not verified' screen", lambda: kiosk.screen_colour() == "other", 30)
    timing.verdict_on_screen = time.monotonic() - plugged
    kiosk.shot("pulled")
    report = kiosk.delivered("big: incomplete report on the server", "BIGPULL")
    timing.report_on_server = arrival(report, plugged)
    assert report["verdict"] == "incomplete"
    # The next stick is scanned without any restart.
    image = sticks.fat_stick(
        kiosk.stick_dir / "next.img", sticks.eicar_tree(kiosk.stick_dir / "next")
    )
    _, _, next_session = scan_stick(kiosk, "after-pull", "AFTERPULL", image)
    assert kiosk.event("verdict", next_session).data["verdict"] == "infected"
    kiosk.delivered("after-pull: report", "AFTERPULL")
    kiosk.vm.unplug_stick("after-pull")
    assert not kiosk.vm.find_journal("kiosk-station.service: Main process exited")


def test_usb_keyboard_is_refused_and_types_nothing(kiosk: Kiosk) -> None:
    """Row 25: a USB keyboard plugged in is not authorised; what it types reaches nothing."""
    vm = kiosk.vm
    before = stable_screen(kiosk)
    vm.plug_keyboard("evil-kbd")
    refused = kiosk.wait(
        "the keyboard refused",
        lambda: vm.find_journal("USB device refused", identifier="kiosk-usb"),
        60,
    )
    assert "interfaces=03" in refused, refused
    follow_refusal(kiosk, "usb-keyboard", "QEMU USB Keyboard", before)
    for keys in (["ctrl", "c"], ["ctrl", "q"], ["alt", "f2"], ["ret"], ["esc"], ["a"]):
        vm.send_keys(keys, usb=True)
    time.sleep(3)
    vm.poll()
    kiosk.shot("usb-keyboard-refused")
    assert not any("QEMU USB Keyboard" in m and "input:" in m for m in vm.journal_lines()), (
        "the kernel made an input device of the refused keyboard"
    )
    after = vm.screen_pixels()
    assert same_screen(after, before), f"keys on a refused kbd changed {diff_box(before, after)}"
    vm.unplug("evil-kbd")


def test_kiosk_keys_do_nothing(kiosk: Kiosk) -> None:
    """Row 26: Ctrl+C, Ctrl+Q, Ctrl+Alt+F2, Alt+F2 on the kiosk's own keyboard: nothing."""
    vm = kiosk.vm
    before = vm.screen_pixels()
    restarts_before = sum("kiosk-ui.service: Main process exited" in m for m in vm.journal_lines())
    for keys in (
        ["ctrl", "c"],
        ["ctrl", "q"],
        ["ctrl", "alt", "f2"],
        ["alt", "f2"],
        ["ctrl", "alt", "delete"],
        ["alt", "sysrq", "b"],
    ):
        vm.send_keys(keys)  # the machine's own PS/2 keyboard, present at boot
        time.sleep(0.5)
    time.sleep(3)
    vm.poll()
    kiosk.shot("after-ctrl-alt-f2")
    restarts_after = sum("kiosk-ui.service: Main process exited" in m for m in vm.journal_lines())
    assert restarts_after == restarts_before, "the UI exited on a key"
    assert not vm.find_journal("SysRq"), "SysRq reached the kernel"
    assert not vm.find_journal("Reached target reboot.target")
    assert colour_share(vm.screen_pixels(), (0, 0, 0), tol=8) < 0.98, "the screen went black"
    del before


def test_storage_keyboard_composite_is_refused(kiosk: Kiosk) -> None:
    """Row 25: a 'stick' that is also a keyboard is refused whole, and its keys go nowhere.

    QEMU has no such device, so the guest's test-control service makes one with the kernel's
    USB gadget framework on dummy_hcd: it arrives on a USB bus like any device plugged in."""
    vm = kiosk.vm
    before = stable_screen(kiosk)
    answer = vm.control("composite")
    assert "bound" in answer, answer
    refused = kiosk.wait(
        "the composite refused",
        lambda: (
            vm.find_journal("interfaces=08,03", identifier="kiosk-usb")
            or vm.find_journal("interfaces=03,08", identifier="kiosk-usb")
        ),
        60,
    )
    assert "USB device refused" in refused and "mass storage combined" in refused, refused
    follow_refusal(kiosk, "composite", "Stick with keyboard", before)
    vm.control("type")
    time.sleep(3)
    vm.poll()
    kiosk.shot("composite-refused")
    # Its storage half never became a disk, so no session started for it.
    assert kiosk.session_of("COMPOSITE1") is None
    assert not any("Stick with keyboard" in m and "input:" in m for m in vm.journal_lines())
    after = vm.screen_pixels()
    assert same_screen(after, before), f"the composite's keys changed {diff_box(before, after)}"


def test_reset_mid_delivery_delivers_every_report_exactly_once(kiosk: Kiosk) -> None:
    """Row 23: power cut while a report is in flight (stored by the server, the ack lost) and
    while a stick is being scanned: after the reboot every report is on the server once, and
    the scan that never finished is reported as incomplete."""
    vm = kiosk.vm
    vm.hold_file.write_text("swallow the server's replies\n")
    try:
        image = sticks.fat_stick(
            kiosk.stick_dir / "inflight.img", sticks.eicar_tree(kiosk.stick_dir / "inflight")
        )
        _, _, session = scan_stick(kiosk, "in-flight", "INFLIGHT", image)
        report_id = kiosk.event("verdict", session).data["report_id"]
        kiosk.delivered("the in-flight report stored (its ack swallowed)", "INFLIGHT")
        vm.unplug_stick("in-flight")
        big = sticks.fat_stick(
            kiosk.stick_dir / "cut.img", sticks.big_tree(kiosk.stick_dir / "cut"), size_mib=400
        )
        vm.plug_stick("cut", big, "POWERCUT")
        cut_session = kiosk.wait("cut: a session", lambda: kiosk.session_of("POWERCUT"), 60)
        kiosk.wait("cut: progress", lambda: kiosk.event("progress", cut_session), SCAN_TIMEOUT)
        kiosk.shot("before-power-cut")
        events_before = len(vm.events)
        vm.reset()
        # The stick leaves during the power cut, so the next boot finds only the unfinished
        # session in the outbox.
        vm.unplug_stick("cut")
    finally:
        vm.hold_file.unlink(missing_ok=True)
    kiosk.wait(
        "the station's hello after the reset",
        lambda: any(e.data.get("type") == "hello" for e in vm.events[events_before:]),
        300,
    )
    kiosk.wait(
        "the UI back after the power cut",
        lambda: colour_share(vm.screen_pixels(), (0, 0, 0), tol=8) < 0.9,
        120,
    )
    kiosk.shot("after-power-cut")
    cut = kiosk.delivered("the interrupted scan reported", "POWERCUT", 180)
    assert cut["verdict"] == "incomplete", cut

    def settled() -> bool:
        station = kiosk.server.station()
        return bool(station and station.get("backlog") == 0 and station.get("heartbeat_at"))

    kiosk.wait("the kiosk's outbox empty (heartbeat backlog 0)", settled, 180)
    reports = kiosk.server.reports()
    ids = [r["report_id"] for r in reports]
    assert len(ids) == len(set(ids)), "a report was stored twice"
    assert ids.count(report_id) == 1
    # Every session the station ended (each verdict it showed) is on the server, and nothing
    # else but the session the power cut interrupted.
    shown = {e.data["report_id"] for e in vm.events if e.data.get("type") == "verdict"}
    assert shown <= set(ids), shown - set(ids)
    refusals = [r for r in reports if r["reason"] == "device_refused"]
    assert set(ids) - shown - {r["report_id"] for r in refusals} == {cut["report_id"]}, [
        (r["device_serial"], r["verdict"]) for r in reports if r["report_id"] not in shown
    ]
    # Row 25: each refused USB device reached the server once, as one report, and nothing else
    # did (the sticks were all authorised).
    assert sorted(r["device_model"] for r in refusals) == sorted(kiosk.refused_models), [
        (r["device_vendor"], r["device_model"], r["device_serial"]) for r in refusals
    ]

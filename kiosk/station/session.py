"""One stick session: its state, its events, the delete flow's file removal, its journal line.

A session groups every volume of one stick. Its life (`kiosk.protocol.State`): detected (settling,
perhaps queued) -> mounting -> preflight -> scanning -> verdict [-> deleting -> verdict] ->
waiting_removal -> ended. `kiosk.station.station.Station` drives it; this module holds the data
and the pure or blocking helpers the driver calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import os
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.models import Action as ReportAction
from kiosk.models import DeviceInfo, FileVerdict, Reason, Report, TreeVerdict, utcnow
from kiosk.names import display_name, unescape_name
from kiosk.protocol import MAX_FINDINGS, EventType, State, event
from kiosk.station.device import Kind, Volume, stick_info

journal = logging.getLogger("kiosk.station.journal")

PROGRESS_INTERVAL = 0.1  # seconds: at most ~10 progress lines a second per session
_JUDGED = (State.VERDICT, State.WAITING_REMOVAL, State.ENDED)  # the report is the current one


@dataclass(eq=False)
class Session:
    """The live state of one stick on the kiosk."""

    stick: str
    volumes: list[Volume]
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: State = State.DETECTED
    started_at: datetime = field(default_factory=utcnow)
    queued: int = 0
    device: DeviceInfo | None = None
    report: Report | None = None
    delete_policy: str = "never"
    cancel: threading.Event = field(default_factory=threading.Event)
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    dismissed: asyncio.Event = field(default_factory=asyncio.Event)
    delete_asked: asyncio.Event = field(default_factory=asyncio.Event)
    grew: asyncio.Event = field(default_factory=asyncio.Event)  # a volume joined while settling
    pending_actions: tuple[ReportAction, ...] = ()  # done to the stick, for the next report
    unclean_mount: tuple[str, ...] = ()  # what the drivers said of a stick that mounted badly
    damaged: bool = False  # the last scan saw a damaged filesystem (see stick_damaged)
    last_progress: bytes | None = None
    last_progress_at: float = 0.0
    first_progress_at: float | None = None  # monotonic clock, for the journal and the bench
    last_file_at: float | None = None  # when the scanner reported the last file done
    committed_at: float | None = None  # when the report was durable in the outbox
    detected_at: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None

    def settled(self) -> bool:
        """Tell whether every volume of the stick is known (no need to wait for partitions)."""
        disks = [v for v in self.volumes if v.kind is Kind.DISK]
        parts = [v for v in self.volumes if v.kind is Kind.PARTITION]
        if parts and not disks:
            return False  # a partition seen before its disk: wait for the rest
        for disk in disks:
            if disk.partition_table and (disk.partitions is None or len(parts) < disk.partitions):
                return False
        return True

    def info(self) -> DeviceInfo:
        """Return the device as the report and the screens see it."""
        return self.device or stick_info(self.volumes)

    def rescanning(self) -> bool:
        """Tell whether the stick is being scanned again after the delete flow."""
        return bool(self.pending_actions) and self.state not in _JUDGED

    def session_event(self) -> bytes:
        """Return the `session` line of the current state."""
        return event(
            EventType.SESSION,
            session_id=self.session_id,
            state=str(self.state),
            device=self.info().to_dict(),
            queued=self.queued,
            rescan=self.rescanning(),
        )

    def progress_event(self, progress: Any) -> bytes:
        """Return a `progress` line for the scanner's *progress*, and keep it for snapshots."""
        line = event(
            EventType.PROGRESS,
            session_id=self.session_id,
            files_done=progress.files_done,
            files_total=progress.files_total,
            bytes_done=progress.bytes_done,
            bytes_total=progress.bytes_total,
            current=progress.current,
            eta_s=None if progress.eta_s is None else round(progress.eta_s, 1),
        )
        self.last_progress = line
        return line

    def verdict_event(self) -> bytes | None:
        """Return the `verdict` line, once there is a report."""
        report = self.report
        if report is None:
            return None
        return event(
            EventType.VERDICT,
            session_id=self.session_id,
            report_id=report.report_id,
            scan_code=report.scan_code,
            verdict=str(report.verdict),
            reason=str(report.reason) if report.reason else None,
            files_total=report.files_total,
            counts=dict(report.counts),
            findings=[f.to_dict() for f in report.findings[:MAX_FINDINGS]],
            findings_total=len(report.findings),
            delete=self.delete_policy,
            damaged=self.damaged,
            actions=[a.to_dict() for a in report.actions],
        )

    def snapshot(self) -> list[bytes]:
        """Return the lines a screen that connects now needs to show this session."""
        lines = [self.session_event()]
        if self.last_progress is not None and self.state in (State.SCANNING, State.PREFLIGHT):
            lines.append(self.last_progress)
        # While deleting and scanning again, the last verdict is the one being replaced: a
        # screen connecting then must show the new scan, not the old result.
        verdict = self.verdict_event() if self.state in _JUDGED else None
        if verdict is not None:
            lines.append(verdict)
        return lines


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until *event* is set or *timeout* passes; return whether it is set.

    Not `asyncio.wait_for`: on Python 3.11 it loses a cancellation that arrives as the event is
    set, and a cancelled loop then never ends (seen here as a station that would not stop).
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter], timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


_WORST_FIRST = (
    TreeVerdict.INFECTED,
    TreeVerdict.SUSPICIOUS,
    TreeVerdict.INCOMPLETE,
    TreeVerdict.ERROR,
    TreeVerdict.CLEAN,
)


def merge_reports(parts: list[tuple[str, Report]]) -> Report:
    """Fold the reports of a stick's filesystems into one (paths prefixed with the volume's dir)."""
    if len(parts) == 1 and parts[0][0] == "":
        return parts[0][1]
    worst = min((r for _, r in parts), key=lambda r: _WORST_FIRST.index(r.verdict))
    counts: dict[str, int] = {}
    for _, part in parts:
        for key, value in part.counts.items():
            counts[key] = counts.get(key, 0) + value
    findings = [
        dataclasses.replace(f, path=f"{prefix}/{f.path}" if prefix else f.path)
        for prefix, part in parts
        for f in part.findings
    ]
    return dataclasses.replace(
        worst,
        started_at=min(r.started_at for _, r in parts),
        finished_at=max(r.finished_at for _, r in parts),
        files_total=sum(r.files_total for _, r in parts),
        bytes_total=sum(r.bytes_total for _, r in parts),
        counts=counts,
        findings=tuple(sorted(findings, key=lambda f: (f.rank, f.path))),
        engine=next((r.engine for _, r in parts if r.engine), None),
    )


def infected_paths(report: Report) -> list[str]:
    """Return the escaped paths the delete flow may remove: infected files, and only those."""
    return [f.path for f in report.findings if f.verdict is FileVerdict.INFECTED]


def stick_damaged(report: Report, unclean_mount: tuple[str, ...]) -> bool:
    """Tell whether the stick's filesystem looked damaged: then the kiosk never writes to it.

    Deleting means mounting read-write and changing the filesystem's metadata (directory entries,
    allocation tables): on damaged metadata the driver may free clusters another file still uses
    or spread the damage, and the rescan that should vouch for the result cannot read what it
    could not read before. So deletion is offered (or done, with "always") only when every volume
    mounted cleanly (the first driver, without a word) and the scan read every entry: no file or
    folder with a read error, the root listed. Otherwise the teacher is told to take the stick to
    IT, who can repair it with the right tools. Only `read_error` findings count: an engine
    timeout says nothing about the stick. Findings left out of a long report may hide read
    errors, so an `error` count larger than the listed errors counts as damage too.
    """
    if unclean_mount or report.reason == Reason.UNREADABLE:
        return True
    listed = [f for f in report.findings if f.verdict is FileVerdict.ERROR]
    if any(f.reason == Reason.READ_ERROR for f in listed):
        return True
    return report.counts.get(str(FileVerdict.ERROR), 0) > len(listed)


def delete_named(root: Path, escaped_paths: list[str]) -> tuple[list[str], list[str]]:
    """Delete exactly these files under *root*, never following a link; return (done, failed)."""
    done: list[str] = []
    failed: list[str] = []
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for escaped in escaped_paths:
            if _unlink_beneath(root_fd, unescape_name(escaped)):
                done.append(escaped)
            else:
                failed.append(escaped)
        os.fsync(root_fd)
        os.sync()
    finally:
        os.close(root_fd)
    return done, failed


def _unlink_beneath(root_fd: int, raw: bytes) -> bool:
    parts = [p for p in raw.split(b"/") if p]
    if not parts or any(p in (b".", b"..") for p in parts):
        return False
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            # O_NOFOLLOW on every component: a link planted on the stick leads nowhere.
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            return False
        os.unlink(parts[-1], dir_fd=fd)
        return True
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EROFS, errno.EACCES):
            journal.warning("cannot delete a file: %s", exc.strerror)
        return False
    finally:
        os.close(fd)


def journal_line(session: Session, report: Report, station_id: str) -> str:
    """Return the session's one structured journal line (JSON; every stick name made inert)."""
    device = report.device or session.info()

    def shown(value: str | None) -> str | None:
        return display_name(value, 80) if value else None

    record: dict[str, Any] = {
        "event": "session",
        "station_id": station_id,
        "session_id": session.session_id,
        "report_id": report.report_id,
        "scan_code": report.scan_code,
        "verdict": str(report.verdict),
        "reason": str(report.reason) if report.reason else None,
        "detail": display_name(report.detail, 300) if report.detail else None,  # for IT
        "files_total": report.files_total,
        "bytes_total": report.bytes_total,
        "counts": dict(report.counts),
        "seconds": round((report.finished_at - report.started_at).total_seconds(), 3),
        "device": {
            "vendor": shown(device.vendor),
            "model": shown(device.model),
            "serial": shown(device.serial),
            "size": device.size,
            "fs_type": shown(device.fs_type),
            "label": shown(device.label),
        },
        "threats": [
            {"path": display_name(f.path, 200), "verdict": str(f.verdict), "threat": f.threat}
            for f in report.findings[:20]
            if f.verdict in (FileVerdict.INFECTED, FileVerdict.SUSPICIOUS)
        ],
        "actions": [a.kind for a in report.actions],
        # Why no deletion was offered, for IT (stick_damaged): the drivers' own words, made inert.
        "damaged": session.damaged,
        "unclean_mount": [display_name(note, 300) for note in session.unclean_mount],
    }
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"))

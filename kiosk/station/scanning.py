"""The work of one session on its stick: mount, scan each filesystem, watch it stays; delete.

`StickScan.run` mounts the stick read-only, scans each of its filesystems with the scanning core
in a thread (the scanner never crosses into another filesystem), folds their reports into one,
and unmounts whatever happens. Meanwhile it checks twice a second that the stick is still there:
a stick that left makes the report `incomplete` / `device_removed`. `delete_infected` mounts the
stick read-write for that alone and removes only the files named. Both block only in threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.config import StationConfig
from kiosk.models import Action as ReportAction
from kiosk.models import Reason, Report, TreeVerdict, utcnow
from kiosk.names import display_name
from kiosk.station.device import stick_info
from kiosk.station.health import ScanEngine
from kiosk.station.mount import MountError, StickMount
from kiosk.station.session import PROGRESS_INTERVAL, Session, delete_named, merge_reports

log = logging.getLogger(__name__)

PRESENCE_INTERVAL = 0.5  # seconds between two checks that a stick being scanned is still there
STOP_WAIT = 15.0  # seconds a stopping station waits for a scan to let go of its stick


def failed_report(report_id: str, started: datetime, reason: Reason, detail: str | None) -> Report:
    """Return the `error` report of a session that could not scan at all."""
    return Report.failed(report_id, started, reason, detail)


class StickScan:
    """Mount, scan and release one stick for a session."""

    def __init__(
        self,
        settings: StationConfig,
        scanner: ScanEngine,
        *,
        present: Callable[[Session], bool],
        on_mounted: Callable[[Session], None],
        on_progress: Callable[[Session, Any], None],
    ) -> None:
        self.settings = settings
        self.scanner = scanner
        self.present = present  # blocking but cheap: called in a thread
        self.on_mounted = on_mounted  # in the loop, when the pre-flight starts
        self.on_progress = on_progress  # in the loop, at most every PROGRESS_INTERVAL

    async def run(self, session: Session, report_id: str, started: datetime) -> Report:
        """Return the stick's report (never raises for the stick's own trouble)."""
        mount = StickMount(
            session.volumes,
            Path(self.settings.mount_dir),
            session.session_id,
            allowed=self.settings.filesystems,
        )
        session.unclean_mount = ()
        try:
            await asyncio.to_thread(mount.open)
        except MountError as exc:
            await asyncio.to_thread(mount.close)
            reason = Reason.DEVICE_REMOVED if session.removed.is_set() else exc.reason
            log.warning("session %s: %s: %s", session.session_id, reason, display_name(str(exc)))
            return failed_report(report_id, started, reason, str(exc))
        except Exception as exc:  # e.g. blockdev or blkid failing: the stick is not read
            await asyncio.to_thread(mount.close)
            log.warning("session %s: cannot mount: %s", session.session_id, display_name(str(exc)))
            return failed_report(report_id, started, Reason.MOUNT_FAILED, str(exc))
        session.unclean_mount = tuple(mount.unclean)
        try:
            session.device = dataclasses.replace(
                stick_info(mount.mounted), size=session.info().size
            )
            self.on_mounted(session)
            parts = [
                (prefix, await self._scan(session, part_root, report_id))
                for prefix, part_root in mount.roots
            ]
            return merge_reports(parts)
        finally:
            await asyncio.to_thread(mount.close)

    async def _scan(self, session: Session, root: Path, report_id: str) -> Report:
        loop = asyncio.get_running_loop()

        def on_progress(progress: Any) -> None:
            # Called from the scanner's threads: throttle here, hop into the loop.
            now = time.monotonic()
            last = progress.files_done >= progress.files_total
            if last:
                session.last_file_at = now
            if now - session.last_progress_at < PROGRESS_INTERVAL and not last:
                return
            session.last_progress_at = now
            loop.call_soon_threadsafe(self.on_progress, session, progress)

        watcher = asyncio.create_task(self._watch_presence(session))
        scan = asyncio.ensure_future(
            asyncio.to_thread(
                self.scanner.scan,
                root,
                report_id=report_id,
                on_progress=on_progress,
                cancel=session.cancel,
            )
        )
        try:
            report = await asyncio.shield(scan)
        except asyncio.CancelledError:
            # The station is stopping: let the scan thread let go of the stick before the
            # unmount that follows (it stops at the next file once cancel is set).
            session.cancel.set()
            await asyncio.wait([scan], timeout=STOP_WAIT)
            raise
        finally:
            watcher.cancel()
        unfinished = report.verdict in (TreeVerdict.INCOMPLETE, TreeVerdict.ERROR)
        if (
            unfinished
            and not session.removed.is_set()
            and not await asyncio.to_thread(self.present, session)
        ):
            # Reads fail at once on a vanished medium: the scan may end before the watcher looks.
            session.removed.set()
        if unfinished and session.removed.is_set():
            report = dataclasses.replace(
                report, verdict=TreeVerdict.INCOMPLETE, reason=Reason.DEVICE_REMOVED
            )
        return report

    async def _watch_presence(self, session: Session) -> None:
        # udev may say nothing (a loop detached without udevd, a dead hub): look ourselves too.
        while not session.removed.is_set():
            await asyncio.sleep(PRESENCE_INTERVAL)
            if not await asyncio.to_thread(self.present, session):
                log.info("stick of session %s is gone", session.session_id)
                session.removed.set()
                session.cancel.set()


async def delete_infected(
    settings: StationConfig, session: Session, paths: list[str]
) -> ReportAction:
    """Mount the stick read-write, delete exactly *paths*, unmount; return the Action done."""
    writable = StickMount(
        session.volumes,
        Path(settings.mount_dir),
        f"{session.session_id}-rw",
        allowed=settings.filesystems,
        writable=True,
    )
    done: list[str] = []
    failed: list[str] = list(paths)
    detail = None
    try:
        root = await asyncio.to_thread(writable.open)
        done, failed = await asyncio.to_thread(delete_named, root, paths)
    except Exception as exc:  # whatever failed, the action is recorded as failed
        detail = str(exc)
        log.error("delete flow of session %s failed: %s", session.session_id, exc)
    finally:
        await asyncio.to_thread(writable.close)
    return ReportAction(
        kind="delete_infected",
        at=utcnow(),
        ok=not failed,
        files=tuple(done),
        detail=detail or (f"{len(failed)} file(s) not deleted" if failed else None),
    )

"""What `kiosk scan` shows a person: a progress bar on stderr and a short summary (fr or en).

Every name goes through `kiosk.names.display_name`: nothing from the tree reaches the terminal raw.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from kiosk.i18n import ntranslator, translator
from kiosk.models import Report, TreeVerdict
from kiosk.names import display_name
from kiosk.scan.scanner import Progress
from kiosk.wording import Wording

_BAR_EVERY = 0.1  # seconds between two redraws of the bar


def _size(n: int, language: str) -> str:
    value = float(n)
    for unit_fr, unit_en in (("o", "B"), ("Ko", "KB"), ("Mo", "MB"), ("Go", "GB")):
        if value < 1024 or unit_en == "GB":
            text = f"{value:.0f}" if unit_en == "B" else f"{value:.1f}"
            unit = unit_fr if language == "fr" else unit_en
            if language == "fr":
                text = text.replace(".", ",")
            return f"{text} {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


class ProgressBar:
    """A one-line progress bar redrawn on a terminal (stderr), at most ten times a second."""

    def __init__(self, language: str, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.language = language
        self._ = translator("kiosk", language)
        self.last = 0.0

    def __call__(self, progress: Progress) -> None:
        """Redraw the bar for *progress* (called from scanner threads; drawing is cheap)."""
        now = time.monotonic()
        done = progress.files_done >= progress.files_total
        if not done and now - self.last < _BAR_EVERY:
            return
        self.last = now
        width = shutil.get_terminal_size((80, 24)).columns
        total = progress.bytes_total or 1
        fraction = (
            min(1.0, progress.bytes_done / total)
            if progress.bytes_total
            else (progress.files_done / max(1, progress.files_total))
        )
        eta = "" if progress.eta_s is None else " ~" + _duration(progress.eta_s)
        counts = f" {progress.files_done}/{progress.files_total}{eta} "
        current = display_name(progress.current or "", max(10, width // 3))
        bar_width = max(10, width - len(counts) - len(current) - 10)
        filled = int(bar_width * fraction)
        line = (
            f"{fraction * 100:3.0f}% [{'#' * filled}{'.' * (bar_width - filled)}]{counts}{current}"
        )
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()

    def close(self) -> None:
        """Clear the bar's line."""
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + " " * (width - 1) + "\r")
        self.stream.flush()


def summary(report: Report, root: str, language: str) -> str:
    """Return the short readable summary of a report."""
    _ = translator("kiosk", language)
    ngettext = ntranslator("kiosk", language)
    words = Wording(language)
    lines = []
    head = {
        TreeVerdict.CLEAN: _("CLEAN"),
        TreeVerdict.INFECTED: _("VIRUS"),
        TreeVerdict.SUSPICIOUS: _("SUSPICIOUS"),
        TreeVerdict.INCOMPLETE: _("NOT VERIFIED"),
        TreeVerdict.ERROR: _("NOT VERIFIED"),
    }[report.verdict]
    lines.append(f"{head}: {display_name(root)}: {words.tree(report.verdict)}")
    if report.reason and report.verdict is not TreeVerdict.CLEAN:
        lines.append(f"  {words.reason(report.reason)}")
    if report.detail:
        lines.append(f"  ({display_name(report.detail)})")
    elapsed = (report.finished_at - report.started_at).total_seconds()
    files = ngettext("%(n)d file", "%(n)d files", report.files_total) % {"n": report.files_total}
    lines.append(
        "  "
        + _("%(files)s, %(size)s, in %(time)s")
        % {"files": files, "size": _size(report.bytes_total, language), "time": _duration(elapsed)}
    )
    if report.engine:
        engine = report.engine.version
        if report.engine.signatures_version is not None:
            label = _("signatures")
            engine += f", {label} {report.engine.signatures_version}"
        if report.engine.signatures_date is not None:
            engine += f" ({report.engine.signatures_date:%Y-%m-%d})"
        lines.append("  " + _("Engine: %(engine)s") % {"engine": engine})
    lines.append("  " + _("Scan code: %(code)s") % {"code": report.scan_code})
    problems = list(report.findings)
    if problems:
        lines.append(_("Files that are not clean:"))
        for finding in problems:
            why = finding.threat or words.reason(finding.reason)
            lines.append(
                f"  {words.file(finding.verdict).upper():<16} {display_name(finding.path)}: "
                f"{display_name(why)}"
            )
    return "\n".join(lines) + "\n"

"""The file-type policy: what the name claims against what libmagic says the content is.

The only module that imports python-magic. Disguises are always flagged (an executable named like
a document, `photo.jpg.exe`, bidi or zero-width characters in a name, `autorun.inf`); plain
executables, scripts and macro-carrying documents are flagged or allowed by the config. Archives
the engine cannot open (ZIP64, also inside another ZIP: `archive.py`) are 'unverifiable'.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiosk.config import PolicyConfig
from kiosk.models import FileVerdict, Reason
from kiosk.names import is_deceptive

if TYPE_CHECKING:
    import zipfile

    import magic

# python-magic (~18 ms) and zipfile (~5 ms) are imported when a file first needs them: at the
# top, they delayed `kiosk scan`'s first file to clamd while its cores waited.

HEAD_SIZE = 64 * 1024  # what libmagic is given
# What every file gets read of: enough for the executable, script and ZIP headers below. Most
# files never need libmagic; copying 64 KB of each into Python cost more than the checks.
PROBE_SIZE = 512
_OLE_SCAN_LIMIT = 16 * 1024 * 1024

DOCUMENT_EXTENSIONS = frozenset(
    "pdf doc docx xls xlsx ppt pptx odt ods odp odg rtf txt csv md html htm xml json "
    "jpg jpeg png gif bmp tif tiff svg webp heic ico mp3 mp4 avi mov mkv wav ogg flac "
    "zip rar 7z tar gz epub".split()
)
EXECUTABLE_EXTENSIONS = frozenset(
    "exe scr com pif dll msi msp cpl sys drv ocx lnk appimage".split()
)
SCRIPT_EXTENSIONS = frozenset(
    "bat cmd vbs vbe js jse wsf wsh ps1 psm1 psd1 hta sh bash py pl rb php jar reg inf scf".split()
)
MACRO_EXTENSIONS = frozenset("docm dotm xlsm xltm xlam pptm potm ppam ppsm sldm".split())

EXECUTABLE_MIMES = frozenset(
    {
        "application/x-dosexec",
        "application/x-msdownload",
        "application/vnd.microsoft.portable-executable",
        "application/x-executable",
        "application/x-pie-executable",
        "application/x-sharedlib",
        "application/x-mach-binary",
        "application/x-msi",
        "application/x-ms-shortcut",
        "application/x-elf",
        "application/x-object",
    }
)
EXECUTABLE_MAGICS = (
    b"MZ",  # DOS/PE
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",  # Mach-O 32/64, both byte orders, and fat binaries
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"L\x00\x00\x00\x01\x14\x02\x00",  # Windows shortcut (.lnk)
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # OLE, for MSI installers
)
SCRIPT_MIMES = frozenset(
    {
        "text/x-shellscript",
        "text/x-python",
        "text/x-script.python",
        "text/x-perl",
        "text/x-ruby",
        "text/x-php",
        "text/x-msdos-batch",
        "application/javascript",
        "text/javascript",
        "application/x-java-archive",
        "text/x-powershell",
    }
)
OLE_MIMES = frozenset(
    {
        "application/x-ole-storage",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/CDFV2",
        "application/vnd.ms-office",
    }
)
# Text formats where a script-looking content is plausible and harmless.
_TEXT_EXTENSIONS = frozenset("txt md csv xml json html htm svg".split())
_CONTENT_CHECKED = DOCUMENT_EXTENSIONS - _TEXT_EXTENSIONS
_VBA_OLE_MARKER = "_VBA_PROJECT".encode("utf-16-le")
# Formats libmagic names by their first bytes alone, whatever follows: a file that starts with
# the signature of the format its name claims gets that type without asking libmagic (~70 us a
# file; the tests check each against libmagic). Not ZIP (JAR, OOXML) nor PNG (its IHDR chunk):
# libmagic looks further.
_CLAIMED_SIGNATURES: dict[str, tuple[tuple[bytes, ...], str]] = {
    "pdf": ((b"%PDF-",), "application/pdf"),
    "jpg": ((b"\xff\xd8\xff",), "image/jpeg"),
    "jpeg": ((b"\xff\xd8\xff",), "image/jpeg"),
    "gif": ((b"GIF87a", b"GIF89a"), "image/gif"),
}


@dataclass(frozen=True, slots=True)
class PolicyFinding:
    """Why the policy does not let a file pass."""

    verdict: FileVerdict  # SUSPICIOUS or UNVERIFIABLE
    reason: Reason
    detail: str


def extensions(name: str) -> list[str]:
    """Return the lower-case extensions of a base name, outermost last (`a.JPG.exe` -> jpg, exe)."""
    parts = name.strip().split(".")
    return [p.strip().lower() for p in parts[1:] if p.strip()]


class FilePolicy:
    """Applies the configured file-type policy; one instance may be shared by threads."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self._local = threading.local()

    def _magic(self) -> magic.Magic:
        # libmagic handles are not thread-safe: one per worker thread.
        handle = getattr(self._local, "magic", None)
        if handle is None:
            import magic

            handle = magic.Magic(mime=True)
            self._local.magic = handle
        return handle

    def mime_of(self, head: bytes) -> str:
        """Return libmagic's MIME type for the first bytes of a file."""
        if not head:
            return "application/x-empty"
        import magic

        try:
            return str(self._magic().from_buffer(head))
        except magic.MagicException:
            return "application/octet-stream"

    def check(self, name: str, fd: int, size: int) -> PolicyFinding | None:
        """Judge one regular file by its base name (escaped form) and content; None if it passes."""
        head = os.pread(fd, PROBE_SIZE, 0)
        exts = extensions(name)
        last = exts[-1] if exts else ""
        if name.strip().lower() == "autorun.inf":
            return PolicyFinding(FileVerdict.SUSPICIOUS, Reason.AUTORUN, "autorun.inf")
        if is_deceptive(name):
            return PolicyFinding(FileVerdict.SUSPICIOUS, Reason.DECEPTIVE_NAME, "bidi/zero-width")
        if (
            len(exts) >= 2
            and exts[-2] in DOCUMENT_EXTENSIONS
            and (last in EXECUTABLE_EXTENSIONS or last in SCRIPT_EXTENSIONS)
        ):
            return PolicyFinding(
                FileVerdict.SUSPICIOUS, Reason.DOUBLE_EXTENSION, f".{exts[-2]}.{last}"
            )
        # libmagic costs ~0.4 ms a file, on the cores clamd needs: ask it only where its answer
        # can change the verdict (a real executable header, or content behind a document name).
        real_header = head.startswith(EXECUTABLE_MAGICS)
        mime = "unknown"
        claimed = _CLAIMED_SIGNATURES.get(last)
        if claimed is not None and head.startswith(claimed[0]):
            mime = claimed[1]
        elif real_header or last in _CONTENT_CHECKED:
            mime = self.mime_of(os.pread(fd, HEAD_SIZE, 0) if len(head) == PROBE_SIZE else head)
        # libmagic calls ~1.5% of random data "DOS executable (COM)": trust only real headers.
        is_exec = mime in EXECUTABLE_MIMES and real_header
        is_script = mime in SCRIPT_MIMES or head.startswith(b"#!")
        if last in DOCUMENT_EXTENSIONS and is_exec:
            return PolicyFinding(
                FileVerdict.SUSPICIOUS, Reason.EXEC_DISGUISED, f".{last} is {mime}"
            )
        if last in _CONTENT_CHECKED and is_script:
            return PolicyFinding(
                FileVerdict.SUSPICIOUS, Reason.SCRIPT_DISGUISED, f".{last} is {mime}"
            )
        if self.config.executables == "flag" and (is_exec or last in EXECUTABLE_EXTENSIONS):
            return PolicyFinding(FileVerdict.SUSPICIOUS, Reason.EXECUTABLE, mime)
        if self.config.scripts == "flag" and (is_script or last in SCRIPT_EXTENSIONS):
            return PolicyFinding(FileVerdict.SUSPICIOUS, Reason.SCRIPT, mime)
        members = None
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            from kiosk.scan import archive

            members = archive.zip_members(fd, size)
            problem = archive.unverifiable_zip(fd, size, members) if members is not None else None
            if problem is not None:
                return PolicyFinding(FileVerdict.UNVERIFIABLE, *problem)
        if self.config.macros == "flag" and self._has_macros(last, mime, fd, size, members):
            return PolicyFinding(FileVerdict.SUSPICIOUS, Reason.MACROS, mime)
        return None

    def _has_macros(
        self, last: str, mime: str, fd: int, size: int, members: list[zipfile.ZipInfo] | None
    ) -> bool:
        if last in MACRO_EXTENSIONS:
            return True
        if members is not None:
            return any(m.filename.lower().endswith("vbaproject.bin") for m in members)
        if mime in OLE_MIMES or last in {"doc", "xls", "ppt", "dot", "xlt", "pps"}:
            data = os.pread(fd, min(size, _OLE_SCAN_LIMIT), 0)
            return _VBA_OLE_MARKER in data
        return False

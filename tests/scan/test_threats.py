"""THREATS.md rows 1-14 against a real clamd with the test signature set."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from kiosk.models import FileVerdict, Reason, TreeVerdict
from kiosk.names import escape_name, unescape_name
from tests.scan.conftest import by_path
from tests.support import trees
from tests.support.clamd import EICAR, TESTFILES


def test_row1_clean_stick_every_file_counted_and_ok(tmp_path, scan):
    names = trees.clean_tree(tmp_path, 50)
    progress: list = []
    report = scan(tmp_path, progress)
    assert report.verdict is TreeVerdict.CLEAN
    assert report.files_total == 50
    assert report.counts == {"clean": 50}
    assert report.findings == ()
    assert report.bytes_total == sum((tmp_path / n).stat().st_size for n in names)
    assert progress[-1].files_done == progress[-1].files_total == 50
    assert report.verdict.exit_code == 0


def test_row2_eicar_past_path_max(tmp_path, scan):
    trees.deep_path(tmp_path, levels=450)
    report = scan(tmp_path)
    assert report.verdict is TreeVerdict.INFECTED
    (finding,) = report.findings
    assert finding.path.endswith("/eicar.com")
    assert finding.path.count("/") == 450
    assert len(finding.path.encode()) > os.pathconf("/", "PC_PATH_MAX")
    assert finding.threat and finding.threat.startswith("Eicar-Test-Signature")


def test_row2_too_deep_is_not_green(tmp_path, scan):
    trees.deep_path(tmp_path, levels=30)
    report = scan(tmp_path, max_depth=10)
    assert report.verdict is TreeVerdict.INCOMPLETE
    assert [f.reason for f in report.findings] == [Reason.TOO_DEEP]


def test_row3_eicar_in_zip_in_zip_in_targz_names_outer_file(tmp_path, scan):
    trees.nested_archive(tmp_path / "cours.tar.gz")
    trees.write(tmp_path / "propre.txt", b"ok")
    report = scan(tmp_path)
    assert report.verdict is TreeVerdict.INFECTED
    assert [f.path for f in report.findings] == ["cours.tar.gz"]
    assert report.findings[0].verdict is FileVerdict.INFECTED


def test_row4_parity_with_clamdscan(tmp_path, scan, clamd):
    trees.testfiles_tree(tmp_path)
    conf = tmp_path.parent / "clamdscan.conf"
    conf.write_text(f"LocalSocket {clamd.socket}\n")
    out = subprocess.run(
        [
            "clamdscan",
            f"--config-file={conf}",
            "--multiscan",
            "--fdpass",
            "--no-summary",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    flagged = set()
    for line in out.stdout.splitlines():
        match = re.match(r"^(.*): (\S+) FOUND$", line)
        if match:
            flagged.add(os.path.relpath(match.group(1), tmp_path))
    assert len(flagged) > 30, out.stdout  # the signature set really finds the test files
    report = scan(tmp_path)
    ours = {f.path for f in report.findings if f.verdict is not FileVerdict.SKIPPED}
    assert flagged <= ours, sorted(flagged - ours)
    assert report.verdict is TreeVerdict.INFECTED


def test_row5_file_over_max_file_size_is_unverifiable_unread(tmp_path, scan):
    trees.write(tmp_path / "gros.bin", os.urandom(2 * 1024 * 1024))
    report = scan(tmp_path, max_file_size=1024 * 1024)
    assert report.verdict is TreeVerdict.INCOMPLETE
    (finding,) = report.findings
    assert (finding.verdict, finding.reason) == (FileVerdict.UNVERIFIABLE, Reason.TOO_LARGE)
    assert finding.sha256 is None


@pytest.fixture
def small_limits_clamd(tmp_path):
    from tests.support.clamd import start_clamd

    server = start_clamd(
        tmp_path / "clamd-limits",
        {"MaxFileSize": "1M", "StreamMaxLength": "1M", "MaxScanSize": "2M"},
    )
    yield server
    server.stop()


def test_row5_engine_limits_are_unverifiable(tmp_path, config, small_limits_clamd):
    from kiosk.scan.scanner import Scanner

    tree = tmp_path / "cle"
    trees.write(tree / "gros.bin", trees.noise(seed=5, size=3 * 1024 * 1024))
    trees.distinct_member_bomb(tree / "bombe.zip", members=64, member_size=256 * 1024)
    cfg = config.with_overrides("clamd", socket=str(small_limits_clamd.socket))
    report = Scanner(cfg).scan(tree)
    found = by_path(report)
    assert report.verdict is TreeVerdict.INCOMPLETE
    for name in ("gros.bin", "bombe.zip"):
        assert found[name].verdict is FileVerdict.UNVERIFIABLE, found[name]
        assert found[name].reason is Reason.LIMITS_EXCEEDED
        assert found[name].detail.startswith("Heuristics.Limits.Exceeded")


def test_row6_encrypted_archives_are_unverifiable(tmp_path, scan):
    trees.encrypted_archives(tmp_path)
    report = scan(tmp_path)
    assert report.verdict is TreeVerdict.INCOMPLETE
    assert {f.path: (f.verdict, f.reason) for f in report.findings} == {
        "chiffré.zip": (FileVerdict.UNVERIFIABLE, Reason.ENCRYPTED),
        "chiffré.7z": (FileVerdict.UNVERIFIABLE, Reason.ENCRYPTED),
    }


def test_zip64_archive_is_not_clean(tmp_path, scan):
    import zipfile

    path = tmp_path / "archive.zip"
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z,
        z.open("eicar.com", "w", force_zip64=True) as member,
    ):
        member.write(EICAR)
    report = scan(tmp_path)
    assert report.verdict is not TreeVerdict.CLEAN
    (finding,) = report.findings
    assert finding.reason is Reason.ZIP64


def _zip(members: dict[str, bytes], *, zip64: bool = False, method: str = "deflated") -> bytes:
    import io
    import zipfile

    compression = {
        "stored": zipfile.ZIP_STORED,
        "deflated": zipfile.ZIP_DEFLATED,
        "bzip2": zipfile.ZIP_BZIP2,
        "lzma": zipfile.ZIP_LZMA,
    }[method]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in members.items():
            with z.open(name, "w", force_zip64=zip64) as member:
                member.write(data)
    return buf.getvalue()


@pytest.mark.parametrize("method", ["stored", "deflated", "deflated-slow-start", "bzip2", "lzma"])
def test_zip64_archive_inside_an_archive_is_not_clean(tmp_path, scan, monkeypatch, method):
    """clamd unpacks the outer ZIP and says OK for the ZIP64 one inside: the policy looks too.

    The outer ZIP stores its members every way zipfile writes: the policy reads stored and
    deflated ones itself and leaves the others, and a deflated start that takes longer than
    its first read to give four bytes, to zipfile.
    """
    from kiosk.scan import archive

    if method == "deflated-slow-start":
        monkeypatch.setattr(archive, "_INFLATE_READ", 1)
    outer = method.removesuffix("-slow-start")
    inner = _zip({"eicar.com": EICAR}, zip64=True)
    trees.write(
        tmp_path / "cours.zip",
        _zip({"lisez-moi.txt": b"bonjour\n", "td.zip": inner}, method=outer),
    )
    trees.write(tmp_path / "sain.zip", _zip({"td.zip": _zip({"a.txt": b"rien\n"})}, method=outer))
    report = scan(tmp_path)
    assert report.verdict is not TreeVerdict.CLEAN
    (finding,) = report.findings  # the plain ZIP inside a ZIP stays clean
    assert (finding.path, finding.verdict) == ("cours.zip", FileVerdict.UNVERIFIABLE)
    assert finding.reason is Reason.ZIP64
    assert finding.detail == "ZIP64 archive inside an archive: td.zip"


def test_nested_zip_checks_are_bounded(tmp_path, scan, monkeypatch):
    """Too deep, or too large to unpack in memory: unverifiable, never clean."""
    from kiosk.scan import archive

    deep = _zip({"a.txt": b"rien\n"})
    for level in range(archive.NESTED_DEPTH + 1):
        deep = _zip({f"niveau{level}.zip": deep})
    trees.write(tmp_path / "profond.zip", deep)
    monkeypatch.setattr(archive, "NESTED_MEMBER_BYTES", 1024)
    trees.write(tmp_path / "gros.zip", _zip({"td.zip": _zip({"a.bin": os.urandom(4096)})}))
    found = by_path(scan(tmp_path))
    assert found.keys() == {"profond.zip", "gros.zip"}
    for finding in found.values():
        assert (finding.verdict, finding.reason) == (  # type: ignore[attr-defined]
            FileVerdict.UNVERIFIABLE,
            Reason.LIMITS_EXCEEDED,
        )


@pytest.mark.parametrize("infected", ["decoy", "real"])
def test_row7_newline_in_name_scans_the_real_file(tmp_path, scan, infected):
    real = b"report\nx.exe"
    trees.write(tmp_path / os.fsdecode(real), EICAR if infected == "real" else b"clean text\n")
    trees.write(tmp_path / "report", EICAR if infected == "decoy" else b"clean text\n")
    report = scan(
        tmp_path,
    )
    infected_paths = {f.path for f in report.findings if f.verdict is FileVerdict.INFECTED}
    assert infected_paths == ({"report\nx.exe"} if infected == "real" else {"report"})
    assert report.files_total == 2


HOSTILE_NAMES = [
    "csi-\x1b[2J\x1b[31mrouge.txt",
    "osc-\x1b]0;pwned\x07titre.txt",
    "balise-[/red]-[@click=app.quit]-x.txt",
    "renverse-\u202etxt.exe",
    "largeur-nulle-\u200bfichier.txt",
    "tab\tulation.txt",
]


def test_row8_hostile_names_scanned_and_reported_reversibly(tmp_path, scan):
    for name in HOSTILE_NAMES:
        trees.write(tmp_path / name, EICAR)
    report = scan(tmp_path)
    assert {f.path for f in report.findings} == set(HOSTILE_NAMES)
    assert all(f.verdict is FileVerdict.INFECTED for f in report.findings)


def test_row9_names_not_utf8(tmp_path, scan):
    for raw in (b"caf\xe9.txt", b"\xff\xfe.bin"):
        trees.write(os.fsencode(tmp_path) + b"/" + raw, EICAR)
    report = scan(tmp_path)
    paths = sorted(f.path for f in report.findings)
    assert paths == ["\\xff\\xfe.bin", "caf\\xe9.txt"]
    assert sorted(unescape_name(p) for p in paths) == [b"caf\xe9.txt", b"\xff\xfe.bin"]


def test_row10_255_byte_names(tmp_path, scan):
    ascii_name = "a" * 251 + ".txt"
    utf8_name = "é" * 125 + "e.txt"
    assert len(ascii_name.encode()) == 255 and len(utf8_name.encode()) == 255
    trees.write(tmp_path / ascii_name, EICAR)
    trees.write(tmp_path / utf8_name, b"propre")
    report = scan(tmp_path)
    assert [f.path for f in report.findings] == [ascii_name]
    assert report.files_total == 2


@pytest.mark.root
def test_row11_row12_links_and_special_files_never_followed_nor_read(tmp_path, scan):
    stick, outside = tmp_path / "cle", tmp_path / "dehors"
    trees.special_files(stick, outside)
    report = scan(stick)
    found = by_path(report)
    assert report.files_total == 1  # normal.txt only
    skipped = {p for p, f in found.items() if f.verdict is FileVerdict.SKIPPED}
    assert skipped == {
        "boucle_a",
        "boucle_b",
        "racine",
        "passwd",
        "lien-eicar.com",
        "lien-dossier",
        "tube",
        "zero",
        "null",
        "prise.sock",
    }
    assert not any(f.verdict is FileVerdict.INFECTED for f in report.findings)
    assert found["lien-eicar.com"].reason is Reason.SYMLINK
    assert found["tube"].reason is Reason.SPECIAL_FILE
    # Links and special files are listed, but do not stand between a stick and green.
    assert report.verdict is TreeVerdict.CLEAN


@pytest.mark.parametrize("lie", ["FILE", "DIR", "OTHER"])
def test_row11_row12_a_listing_that_lies_about_types_changes_nothing(
    tmp_path, scan, monkeypatch, lie
):
    # The walk trusts the directory listing's types (d_type) to save a stat, and checks them
    # when it opens: a damaged filesystem that calls everything a file, a directory or unknown
    # must be walked exactly as one that tells the truth.
    from kiosk.scan import walker

    stick, outside = tmp_path / "cle", tmp_path / "dehors"
    trees.special_files(stick, outside)
    trees.write(stick / "classe" / "td" / "eicar.com", EICAR)
    trees.write(stick / "classe" / "cours.txt", b"cours\n")
    truthful = scan(stick)
    real_list = walker.Walker._list

    def lying_list(self, dir_fd):
        return [(name, walker._Hint[lie]) for name, _hint in real_list(self, dir_fd)]

    monkeypatch.setattr(walker.Walker, "_list", lying_list)
    lied_to = scan(stick)
    assert lied_to.files_total == truthful.files_total == 3
    assert lied_to.verdict is truthful.verdict is TreeVerdict.INFECTED
    assert by_path(lied_to) == by_path(truthful)
    assert by_path(lied_to)["classe/td/eicar.com"].verdict is FileVerdict.INFECTED


def test_row14_policy_disguises(tmp_path, scan):
    trees.write(tmp_path / "facture.pdf", Path("/bin/true").read_bytes())
    trees.write(tmp_path / "devis.pdf", trees.minimal_pe())
    trees.write(tmp_path / "photo.jpg.exe", trees.minimal_pe())
    trees.write(tmp_path / "AUTORUN.INF", b"[autorun]\nopen=photo.jpg.exe\n")
    trees.write(
        tmp_path / "vrai.pdf",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    )
    report = scan(tmp_path)
    assert report.verdict is TreeVerdict.SUSPICIOUS
    assert report.verdict.exit_code == 1
    assert {f.path: f.reason for f in report.findings} == {
        "facture.pdf": Reason.EXEC_DISGUISED,
        "devis.pdf": Reason.EXEC_DISGUISED,
        "photo.jpg.exe": Reason.DOUBLE_EXTENSION,
        "AUTORUN.INF": Reason.AUTORUN,
    }
    assert all(f.verdict is FileVerdict.SUSPICIOUS for f in report.findings)


@pytest.mark.parametrize("extension", ["pdf", "jpg", "jpeg", "gif"])
def test_claimed_signatures_are_what_libmagic_says(extension):
    """The policy skips libmagic for a file that starts with its own format's signature: only
    sound while libmagic names every such head the same, whatever follows."""
    from kiosk.config import PolicyConfig
    from kiosk.scan.policy import _CLAIMED_SIGNATURES, FilePolicy

    policy = FilePolicy(PolicyConfig())
    prefixes, mime = _CLAIMED_SIGNATURES[extension]
    bodies = [
        trees.noise(seed=3, size=65536, lead=b""),
        b" ".join([b"bonjour la classe"] * 4000),
        b"\n#!/bin/sh\nrm -rf ~\n" * 100,
        b'\nSet shell = CreateObject("WScript.Shell")\nshell.Run "cmd"\n' * 50,
        trees.minimal_pe(),
        EICAR,
    ]
    for prefix in prefixes:
        for body in bodies:
            assert policy.mime_of((prefix + body)[:65536]) == mime


def test_policy_is_configurable(tmp_path, config):
    from kiosk.scan.scanner import Scanner

    trees.write(tmp_path / "setup.exe", trees.minimal_pe())
    trees.write(tmp_path / "script.sh", b"#!/bin/sh\necho bonjour\n")
    strict = Scanner(config).scan(tmp_path)
    assert {f.path: f.reason for f in strict.findings} == {
        "setup.exe": Reason.EXECUTABLE,
        "script.sh": Reason.SCRIPT,
    }
    relaxed = config.with_overrides("policy", executables="allow", scripts="allow")
    assert Scanner(relaxed).scan(tmp_path).verdict is TreeVerdict.CLEAN


def test_macros_flagged_or_allowed(tmp_path, config):
    import zipfile

    from kiosk.scan.scanner import Scanner

    with zipfile.ZipFile(tmp_path / "notes.docx", "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    flagged = Scanner(config).scan(tmp_path)
    assert [f.reason for f in flagged.findings] == [Reason.MACROS]
    allowed = config.with_overrides("policy", macros="allow")
    assert Scanner(allowed).scan(tmp_path).verdict is TreeVerdict.CLEAN


def test_deceptive_name_is_suspicious_even_when_clean(tmp_path, scan):
    trees.write(tmp_path / "photo\u202egnp.exe", b"just text")
    trees.write(tmp_path / "note\u200b.txt", b"just text")
    report = scan(tmp_path)
    assert {f.reason for f in report.findings} == {Reason.DECEPTIVE_NAME}
    assert report.verdict is TreeVerdict.SUSPICIOUS


def test_empty_tree_is_clean_with_zero_files(tmp_path, scan):
    report = scan(tmp_path)
    assert (report.verdict, report.files_total, report.findings) == (TreeVerdict.CLEAN, 0, ())


def test_sha256_is_of_the_bytes_scanned(tmp_path, scan):
    import hashlib

    trees.write(tmp_path / "eicar.com", EICAR)
    (finding,) = scan(tmp_path).findings
    assert finding.sha256 == hashlib.sha256(EICAR).hexdigest()
    assert finding.size == len(EICAR)


def test_nothing_outside_the_root_is_read(tmp_path, scan):
    """A root given through a link is fine; links inside it never lead out."""
    trees.write(tmp_path / "dehors" / "eicar.com", EICAR)
    (tmp_path / "cle").mkdir()
    os.symlink("../dehors", tmp_path / "cle" / "sortie")
    os.symlink(tmp_path / "dehors" / "eicar.com", tmp_path / "cle" / "eicar.com")
    report = scan(tmp_path / "cle")
    assert report.files_total == 0
    assert report.verdict is TreeVerdict.CLEAN
    assert {f.verdict for f in report.findings} == {FileVerdict.SKIPPED}


def test_unreadable_root_is_an_error(tmp_path, scan):
    report = scan(tmp_path / "absent")
    assert (report.verdict, report.reason) == (TreeVerdict.ERROR, Reason.UNREADABLE)
    assert report.verdict.exit_code == 2


def test_testfiles_exist():
    assert (TESTFILES / "clam.exe").exists()
    assert escape_name(b"a\\b") == "a\\\\b"


def test_findings_are_capped_worst_first(tmp_path, scan):
    for i in range(10):
        os.symlink("/etc/passwd", tmp_path / f"lien{i}")
    trees.write(tmp_path / "zz-eicar.txt", EICAR)
    report = scan(tmp_path, max_findings=5)
    assert report.verdict is TreeVerdict.INFECTED
    assert len(report.findings) == 5
    assert report.findings[0].path == "zz-eicar.txt"
    assert report.extra == {"findings_omitted": 6}
    assert report.counts == {"infected": 1, "skipped": 10}
    assert report.to_dict()["extra"] == {"findings_omitted": 6}


def test_policy_finding_carries_the_sha256_of_the_scanned_file(tmp_path, scan):
    """Only files that are not clean are hashed, after clamd's reply, from the same descriptor."""
    import hashlib

    body = Path("/bin/true").read_bytes()
    trees.write(tmp_path / "facture.pdf", body)
    trees.write(tmp_path / "propre.txt", b"rien a signaler\n")
    (finding,) = scan(tmp_path).findings
    assert finding.verdict is FileVerdict.SUSPICIOUS
    assert (finding.sha256, finding.size) == (hashlib.sha256(body).hexdigest(), len(body))


def test_large_files_in_flight_are_bounded_by_bytes(tmp_path, scan, monkeypatch):
    """Past WINDOW_BYTES of large files in flight the next waits; one alone always goes."""
    from kiosk.scan import pipeline

    mb = 1024 * 1024
    monkeypatch.setattr(pipeline, "WINDOW_BYTES", 3 * mb)
    seen: list[tuple[int, int]] = []
    reserve = pipeline.Pipeline._reserve

    def spy(self: pipeline.Pipeline, job: object) -> None:
        reserve(self, job)  # type: ignore[arg-type]
        seen.append((self.large_in_flight, job.size))  # type: ignore[attr-defined]

    monkeypatch.setattr(pipeline.Pipeline, "_reserve", spy)
    block = bytes(range(256)) * 4096  # 1 MB, nothing any policy or signature would flag
    for i in range(6):
        trees.write(tmp_path / f"gros{i}.bin", block + block[: mb // 2])
    trees.write(tmp_path / "plus-gros.bin", block * 4)  # over the window on its own
    report = scan(tmp_path)
    assert (report.verdict, report.files_total) == (TreeVerdict.CLEAN, 7)
    assert len(seen) == 7
    for in_flight, size in seen:
        assert in_flight <= 3 * mb or in_flight == size, seen

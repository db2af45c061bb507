"""`kiosk scan` as IT runs it: JSON document, French/English summary, exit codes, progress bar."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
import unicodedata
from pathlib import Path

from kiosk.names import BIDI_CONTROLS, ZERO_WIDTH
from tests.scan.test_threats import HOSTILE_NAMES
from tests.support import trees
from tests.support.clamd import EICAR

KIOSK = [sys.executable, "-m", "kiosk"]


def run_scan(path, clamd, *args, env=None, **kw):
    return subprocess.run(
        [*KIOSK, "scan", str(path), "--clamd-socket", str(clamd.socket), *args],
        capture_output=True,
        env={**os.environ, **(env or {})},
        check=False,
        **kw,
    )


def test_json_report_document(tmp_path, clamd):
    trees.write(tmp_path / "eicar.txt", EICAR)
    trees.write(tmp_path / "sain.txt", b"bonjour")
    trees.write(tmp_path / b"caf\xe9.txt".decode("utf-8", "surrogateescape"), EICAR)
    out = run_scan(tmp_path, clamd, "--json")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    for key in (
        "report_id",
        "verdict",
        "files_total",
        "bytes_total",
        "findings",
        "engine",
        "started_at",
        "finished_at",
        "scan_code",
        "counts",
    ):
        assert key in doc
    assert doc["verdict"] == "infected"
    assert doc["files_total"] == 3
    assert doc["bytes_total"] == 2 * len(EICAR) + 7
    assert doc["engine"]["version"].startswith("ClamAV ")
    assert sorted(f["path"] for f in doc["findings"]) == ["caf\\xe9.txt", "eicar.txt"]
    for finding in doc["findings"]:
        assert set(finding) >= {"path", "verdict", "threat", "reason", "sha256", "size"}
    assert "sain.txt" not in out.stdout.decode()  # clean names never leave the kiosk


def _assert_inert(text: str) -> None:
    for ch in text:
        assert ch == "\n" or (ord(ch) >= 0x20 and not 0x7F <= ord(ch) <= 0x9F), repr(ch)
        assert ch not in BIDI_CONTROLS and ch not in ZERO_WIDTH, repr(ch)
        assert unicodedata.category(ch) not in {"Cf", "Cc"} or ch == "\n", repr(ch)


def test_row8_summary_never_prints_raw_escapes(tmp_path, clamd):
    for name in HOSTILE_NAMES:
        trees.write(tmp_path / name, EICAR)
    trees.write(os.fsencode(tmp_path) + b"/\xff\x1b[2J.txt", EICAR)
    for lang in ("fr_FR.UTF-8", "en_GB.UTF-8"):
        out = run_scan(tmp_path, clamd, env={"LANG": lang, "LC_ALL": ""})
        assert out.returncode == 1
        text = out.stdout.decode("utf-8")
        _assert_inert(text + out.stderr.decode("utf-8"))
        assert "\\x1b[2J" in text and "<U+202E>" in text and "\\xff" in text


def test_summary_in_french_and_english(tmp_path, clamd):
    trees.clean_tree(tmp_path, 5)
    fr = run_scan(tmp_path, clamd, env={"LANG": "fr_FR.UTF-8", "LC_ALL": ""})
    en = run_scan(tmp_path, clamd, env={"LANG": "en_US.UTF-8", "LC_ALL": ""})
    assert fr.returncode == en.returncode == 0
    assert "aucune menace détectée" in fr.stdout.decode() and "5 fichiers" in fr.stdout.decode()
    assert "no threat found" in en.stdout.decode() and "5 files" in en.stdout.decode()
    assert "Code d'analyse" in fr.stdout.decode()


def test_exit_code_2_when_not_verified(tmp_path):
    trees.write(tmp_path / "a.txt", b"x")
    out = subprocess.run(
        [*KIOSK, "scan", str(tmp_path), "--clamd-socket", str(tmp_path / "absent.sock"), "--json"],
        capture_output=True,
        check=False,
    )
    assert out.returncode == 2
    doc = json.loads(out.stdout)
    assert (doc["verdict"], doc["reason"]) == ("error", "engine_down")


def test_config_unknown_key_names_file_and_key(tmp_path):
    conf = tmp_path / "kiosk.toml"
    conf.write_text("[scan]\nworkers = 2\nwrokers = 3\n")
    out = subprocess.run(
        [*KIOSK, "scan", str(tmp_path), "--config", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert str(conf) in out.stderr and "wrokers" in out.stderr


def test_progress_bar_on_a_terminal(tmp_path, clamd):
    for i in range(30):
        trees.write(tmp_path / f"f{i}.txt", b"x" * 1000)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*KIOSK, "scan", str(tmp_path), "--clamd-socket", str(clamd.socket)],
            stdout=subprocess.PIPE,
            stderr=follower,
            stdin=subprocess.DEVNULL,
        )
        os.close(follower)
        stdout, _ = proc.communicate(timeout=60)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
    bar = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "100%" in bar and "30/30" in bar
    assert "%" not in stdout.decode()  # the bar goes to the terminal, never into the summary


def test_config_reference_is_in_the_readme():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "readme_config", Path(__file__).parents[2] / "tools" / "readme_config.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert module.render() in readme, "README's config reference is stale: tools/readme_config.py"


def test_files_lists_every_regular_file_with_the_hash_of_its_bytes(tmp_path, clamd):
    contents = {
        "sain.txt": b"bonjour",
        "vide.txt": b"",
        "dossier/grand.bin": trees.noise(seed=6, size=3 * 1024 * 1024 + 17),  # past a hash chunk
        "eicar.com": EICAR,
    }
    for name, data in contents.items():
        trees.write(tmp_path / name, data)
    (tmp_path / "lien").symlink_to("sain.txt")  # not a regular file: not listed
    out = run_scan(tmp_path, clamd, "--json", "--files")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    listed = {f["path"]: f for f in doc["files"]}
    assert set(listed) == set(contents)
    assert len(doc["files"]) == doc["files_total"]
    for name, data in contents.items():
        assert listed[name]["size"] == len(data)
        assert listed[name]["sha256"] == hashlib.sha256(data).hexdigest()
    assert listed["eicar.com"]["verdict"] == "infected"
    assert {listed[n]["verdict"] for n in contents if n != "eicar.com"} == {"clean"}
    (finding,) = [f for f in doc["findings"] if f["path"] == "eicar.com"]
    assert finding["sha256"] == hashlib.sha256(EICAR).hexdigest()


def test_without_files_no_clean_name_is_listed(tmp_path, clamd):
    trees.write(tmp_path / "sain.txt", b"bonjour")
    doc = json.loads(run_scan(tmp_path, clamd, "--json").stdout)
    assert "files" not in doc

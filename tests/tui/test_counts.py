"""Counts on a screen count one kind of finding: a file that could not be read is not a threat.

A corrupted FAT stick with one virus and three unreadable entries once read "4 MENACES
DÉTECTÉES": the caption counted every finding. Threats, dangerous files and files that could
not be read or checked are each counted apart, from the station's per-verdict `counts` (the
findings it sends are cut at MAX_FINDINGS).
"""

from __future__ import annotations

from typing import Any

from kiosk.protocol import MAX_FINDINGS
from kiosk.tui.model import StationModel
from kiosk.tui.view import Action, Context, Kind, build
from kiosk.tui.words import Words
from tests.tui.fake_station import finding, health, hello, session, verdict

SID = "c0ffee00"
VIRUS = finding("Jeux/setup_crack.exe", "infected", threat="Win.Trojan.Agent-1234")


def unread(n: int) -> list[dict[str, Any]]:
    return [finding(f"FOUND.000/FILE{i:04}.CHK", "error", reason="read_error") for i in range(n)]


def screen(*findings: dict[str, Any], tree: str = "infected", language: str = "fr", **kw: Any):
    model = StationModel()
    model.set_connected(True, 0.0)
    reason = {"infected": "threats_found", "suspicious": "policy"}[tree]
    for message in (
        hello(),
        health(),
        session(SID, "verdict"),
        verdict(SID, tree, reason, list(findings), delete="offer", **kw),
    ):
        model.apply(message, 0.0)
    return model, Context(words=Words(language), contact="IT", now=1.0)


def test_a_corrupted_stick_with_one_virus_counts_one_threat_and_says_the_rest_calmly():
    model, ctx = screen(VIRUS, *unread(3))
    spec = build(model, ctx)
    assert spec.kind is Kind.THREATS
    assert spec.caption == "1 MENACE DÉTECTÉE"
    assert "3 fichiers n'ont pas pu être lus." in spec.lines
    assert len(spec.findings) == 4  # the list still shows every file, each with its reason


def test_the_same_in_english_and_the_singulars():
    model, ctx = screen(VIRUS, *unread(3), language="en")
    spec = build(model, ctx)
    assert spec.caption == "1 THREAT FOUND"
    assert "3 files could not be read." in spec.lines
    model, ctx = screen(VIRUS, *unread(1))
    assert "1 fichier n'a pas pu être lu." in build(model, ctx).lines
    model, ctx = screen(VIRUS, VIRUS)
    spec = build(model, ctx)
    assert spec.caption == "2 MENACES DÉTECTÉES"
    assert not [line for line in spec.lines if "fichier" in line]  # nothing else to say


def test_a_dangerous_file_on_a_virus_screen_is_counted_apart():
    autorun = finding("autorun.inf", "suspicious", reason="autorun")
    model, ctx = screen(VIRUS, autorun, autorun)
    spec = build(model, ctx)
    assert spec.caption == "1 MENACE DÉTECTÉE"
    assert "2 autres fichiers sont dangereux." in spec.lines


def test_errors_that_are_not_read_errors_are_said_as_not_checked():
    crashed = finding("big.iso", "error", reason="engine_error")
    secret = finding("notes.zip", "unverifiable", reason="encrypted")
    model, ctx = screen(VIRUS, *unread(1), crashed, secret)
    spec = build(model, ctx)
    assert spec.caption == "1 MENACE DÉTECTÉE"
    assert "3 fichiers n'ont pas pu être vérifiés." in spec.lines
    assert not [line for line in spec.lines if "lu" in line.split()]


def test_a_danger_screen_counts_its_dangerous_files_only():
    exe = finding("rapport.pdf", "suspicious", reason="exec_disguised")
    model, ctx = screen(exe, *unread(2), tree="suspicious")
    spec = build(model, ctx)
    assert spec.kind is Kind.DANGEROUS
    assert spec.caption == "1 FICHIER DANGEREUX"
    assert "2 fichiers n'ont pas pu être lus." in spec.lines


def test_counts_come_from_the_whole_stick_not_the_findings_sent():
    """60 viruses and 10 unreadable files: only MAX_FINDINGS findings reach the screen."""
    findings = [finding(f"v{i}.exe", "infected", threat="T") for i in range(60)] + unread(10)
    model, ctx = screen(*findings, language="en")
    spec = build(model, ctx)
    assert len(model.current().verdict.findings) == MAX_FINDINGS  # type: ignore[union-attr]
    assert spec.caption == "60 THREATS FOUND"
    # Whether these 10 are all read errors is not known from the findings sent: said calmly.
    assert "10 files could not be checked." in spec.lines
    model.current().confirming_delete = True  # type: ignore[union-attr]
    confirm = build(model, ctx)
    assert confirm.kind is Kind.CONFIRM_DELETE
    assert confirm.caption == "DELETE 60 INFECTED FILES FROM THE STICK?"
    assert confirm.findings[-1] == ("... and 54 more files", "")


def test_the_delete_confirmation_counts_infected_files_only():
    model, ctx = screen(VIRUS, *unread(3), language="en")
    model.current().confirming_delete = True  # type: ignore[union-attr]
    spec = build(model, ctx)
    assert spec.caption == "DELETE 1 INFECTED FILE FROM THE STICK?"
    assert [name for name, _why in spec.findings] == ["Jeux/setup_crack.exe"]
    assert Action.CONFIRM_DELETE in [b.action for b in spec.buttons]

"""Every screen of the kiosk as a recorded state: used by the snapshot tests and the PNG script."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiosk.tui.app import KioskApp
from kiosk.tui.view import Action
from tests.tui.fake_station import finding, health, hello, progress, session, verdict

SID = "5e55a1on"
DELETED = {
    "kind": "delete_infected",
    "at": "2026-11-29T10:00:00.000+00:00",
    "ok": True,
    "files": ["Jeux/setup_crack.exe"],
    "rescan_verdict": "clean",
    "detail": None,
}
THREATS = [
    finding("Jeux/setup_crack.exe", "infected", threat="Win.Trojan.Agent-1234"),
    finding(
        "Documents/Facture[link=https://evil.example]ICI[/link].pdf.exe",
        "infected",
        threat="Win.Malware.Emotet",
    ),
    finding("autorun.inf", "suspicious", reason="autorun"),
]


@dataclass(frozen=True)
class Scene:
    """One screen: what the station said, and what the teacher did."""

    name: str
    events: list[dict[str, Any]] = field(default_factory=list)
    connected: bool = True
    actions: tuple[Action, ...] = ()
    booting: bool = False  # the station was never reached yet


def _result(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [hello(), health(), session(SID, "verdict"), *events]


SCENES = [
    Scene("starting", [], connected=False, booting=True),
    Scene("waiting", [hello(), health()]),
    Scene("preparing", [hello(), health(), session(SID, "mounting")]),
    Scene(
        "scanning",
        [
            hello(),
            health(),
            session(SID, "scanning"),
            progress(
                SID, 112, 1234, "Photos/Sortie scolaire 2024/IMG_0042\u202egpj.exe\x1b[2J", 24
            ),
        ],
    ),
    Scene("clean", _result(verdict(SID, "clean"))),
    Scene("threats", _result(verdict(SID, "infected", "threats_found", THREATS, delete="offer"))),
    Scene(
        "confirm_delete",
        _result(verdict(SID, "infected", "threats_found", THREATS, delete="offer")),
        actions=(Action.DELETE,),
    ),
    Scene(
        "deleting",
        _result(verdict(SID, "infected", "threats_found", THREATS, delete="offer")),
        actions=(Action.DELETE, Action.CONFIRM_DELETE),
    ),
    Scene("deleted_clean", _result(verdict(SID, "clean", actions=[DELETED]))),
    Scene(
        "dangerous",
        _result(
            verdict(
                SID,
                "suspicious",
                "policy",
                [finding("Devoirs/rapport de stage.pdf", "suspicious", reason="exec_disguised")],
            )
        ),
    ),
    Scene(
        "not_verifiable",
        _result(
            verdict(
                SID,
                "incomplete",
                "not_verifiable",
                [finding("Documents/Notes [personnel].zip", "unverifiable", reason="encrypted")],
            )
        ),
    ),
    Scene("interrupted", _result(verdict(SID, "incomplete", "device_removed", files=0))),
    Scene("unreadable", _result(verdict(SID, "error", "unsupported_fs", files=0))),
    Scene(
        "out_of_service",
        [hello(), health(ok=False, problems=["selftest_failed", "signatures_old"])],
    ),
    Scene("station_lost", [], connected=False),
    Scene("remove", _result(verdict(SID, "clean")), actions=(Action.DISMISS,)),
]


def play(app: KioskApp, scene: Scene) -> None:
    """Put *app* in the state of *scene* (no socket needed)."""
    if not scene.booting:
        app.set_link(True)  # connected once, so a lost link is "lost", not "starting"
        app.set_link(scene.connected)
    for message in scene.events:
        app.feed(message)
    for action in scene.actions:
        app.do(action)
    app.redraw()


SceneRunner = Callable[[KioskApp, Scene], None]

"""The real `kiosk ui` on a terminal with TERM=linux (tmux), fed names full of escape sequences.

The pane must show the names escaped, keep its title, not be cleared, and the app must survive
Ctrl+C, Ctrl+Q, Escape, Ctrl+P, Ctrl+Z and typed markup (THREATS.md rows 8 and 26).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui.fake_station import finding, health, hello, session, verdict

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "Docs/\x1b[2J\x1b]0;pwned\x07[@click=app.quit]x[/red]\u202egpj.exe"
THREAT = "Eicar\x1b]2;pwned-too\x07"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


# The Linux console has 8 background colours: SGR 40-47 (and 49, the default); no 48;5/48;2
# (256 colours, truecolor) and no bright 100-107.
CONSOLE_BACKGROUNDS = {str(n) for n in range(40, 48)} | {"49"}


# What the console fonts have (the kernel's VGA font and the Lat15 ones): ASCII, Latin-1 and
# Latin-9 letters, thin box lines and the full block (no half or eighth blocks).
LIGHT_BOX = set("─│┌┐└┘├┤┬┴┼")
FULL_BLOCK = "█"


def console_glyph(ch: str) -> bool:
    """Whether the Linux console's fonts draw *ch*."""
    code = ord(ch)
    return (
        0x20 <= code < 0x7F
        or 0xA0 <= code <= 0xFF
        or ch in "€ŠšŽžŒœŸ"
        or ch in LIGHT_BOX
        or ch == FULL_BLOCK
    )


def attributes(screen: str) -> set[str]:
    """Every SGR parameter on the captured screen (256-colour and RGB ones whole)."""
    found = set()
    for params in re.findall(r"\x1b\[([0-9;]*)m", screen):
        parts = params.split(";")
        index = 0
        while index < len(parts):
            width = 1
            if parts[index] in ("38", "48"):
                width = 3 if parts[index + 1 : index + 2] == ["5"] else 5
            found.add(";".join(parts[index : index + width]))
            index += width
    return found


def backgrounds(screen: str) -> set[str]:
    """The background parameters of every SGR sequence on the captured screen."""
    return {
        a
        for a in attributes(screen)
        if a.startswith("48;") or (a.isdigit() and (40 <= int(a) <= 49 or 100 <= int(a) <= 107))
    }


class Tmux:
    """A private tmux server (its own socket), so the test touches no other tmux."""

    def __init__(self, name: str, config: Path) -> None:
        self.name = name
        # Set before any pane exists: a pane whose program ends stays, so a test sees it end.
        config.write_text("set-option -g remain-on-exit on\n", encoding="utf-8")
        self.config = config

    def __call__(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.name, "-f", str(self.config), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, f"tmux {' '.join(args)}: {out.stderr}"
        return out.stdout

    def start(self, command: str) -> None:
        """Run *command* in the session "kiosk", 120x40, from the repository's root."""
        self(
            "new-session",
            "-d",
            "-s",
            "kiosk",
            "-x",
            "120",
            "-y",
            "40",
            "-c",
            str(ROOT),
            "sh",
            "-c",
            command,
        )

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "kiosk")

    def wait_for(self, text: str, steps: int = 300, absent: str | None = None) -> str:
        shown = ""
        for _ in range(steps):
            shown = self.screen()
            if text in shown and (absent is None or absent not in shown):
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never shown; screen:\n{shown}")


@pytest.fixture
def tmux(short_dir: Path):
    server = Tmux(f"kiosk-test-{os.getpid()}-{short_dir.name}", short_dir / "tmux.conf")
    yield server
    subprocess.run(["tmux", "-L", server.name, "kill-server"], capture_output=True, check=False)


def test_hostile_names_on_a_linux_console(tmux: Tmux, short_dir: Path):
    sid = "a1"
    script = [
        hello(),
        health(),
        session(sid, "verdict"),
        verdict(
            sid,
            "infected",
            "threats_found",
            [finding(HOSTILE, "infected", threat=THREAT)],
            delete="offer",
        ),
    ]
    (short_dir / "script.json").write_text(json.dumps(script), encoding="utf-8")
    (short_dir / "kiosk.toml").write_text('[ui]\ncontact = "Mme Martin [/red]"\n', encoding="utf-8")
    sock = short_dir / "events.sock"
    station = subprocess.Popen(
        [sys.executable, "-m", "tests.tui.fake_station", str(sock), str(short_dir / "script.json")],
        cwd=ROOT,
    )
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.05)
        command = (
            f"env TERM=linux {sys.executable} -m kiosk ui --socket {sock} "
            f"--config {short_dir / 'kiosk.toml'} --log {short_dir / 'ui.log'}"
        )
        tmux.start(command)
        tmux("rename-window", "-t", "kiosk", "kiosk")
        tmux("set-option", "-t", "kiosk", "allow-rename", "on")
        tmux("select-pane", "-t", "kiosk", "-T", "kiosk-pane")
        shown = tmux.wait_for("1 MENACE DÉTECTÉE")
        # The name is on screen, escaped; nothing in it cleared the screen or moved the cursor.
        assert "\\x1b[2J\\x1b]0;pwned\\x07[@click=app.quit]x[/red]<U+202E>gpj.exe" in shown
        assert "Eicar\\x1b]2;pwned-too\\x07" in shown
        assert "Prévenez Mme Martin [/red]." in shown
        assert "VIRUS" not in shown  # the big word is block letters, not text...
        assert "Code d'analyse : N4OC-6TUN" in shown  # ...and the rest of the screen is intact
        strange = {ch for ch in shown if ch != "\n" and not console_glyph(ch)}
        assert not strange, f"glyphs a console font lacks: {sorted(strange)}"
        colours = tmux("capture-pane", "-p", "-e", "-t", "kiosk")
        assert backgrounds(colours) <= CONSOLE_BACKGROUNDS, backgrounds(colours)
        # Nothing in the console's grey: no plain white text, and no reverse video, which on
        # the Linux console turns bright white into grey (the big word, the focused button).
        assert not attributes(colours) & {"7", "37", "47"}, attributes(colours)
        assert FULL_BLOCK in shown  # the big word, in bright glyphs
        # A small console: the compact layout's one-line buttons, not underlined either (the
        # colour console shows underline as cyan text).
        tmux("resize-window", "-t", "kiosk", "-x", "80", "-y", "24")
        tmux.wait_for("Terminé", absent="│  Terminé  │")
        small = tmux("capture-pane", "-p", "-e", "-t", "kiosk")
        assert not attributes(small) & {"4", "7", "37", "47"}, attributes(small)
        assert "pwned" not in tmux("display-message", "-p", "-t", "kiosk", "#{pane_title}")
        assert "pwned" not in tmux("display-message", "-p", "-t", "kiosk", "#{window_name}")
        for key in ("C-c", "C-q", "Escape", "C-p", "C-z", "C-d", "C-backslash"):
            tmux("send-keys", "-t", "kiosk", key)
        tmux("send-keys", "-t", "kiosk", "-l", "[@click=app.quit]exit")
        time.sleep(1.0)  # give a wrongly bound key the time to act; nothing is measured
        assert tmux("display-message", "-p", "-t", "kiosk", "#{pane_dead}").strip() == "0"
        tmux.wait_for("1 MENACE DÉTECTÉE")
    finally:
        station.terminate()
        station.wait(10)


def test_kiosk_demo_once_in_a_terminal(tmux: Tmux, short_dir: Path):
    """`kiosk demo --once`: every demo stick through the real station, then a clean exit."""
    done = short_dir / "done"
    command = (
        f"env TERM=linux TMPDIR={short_dir} {sys.executable} -m kiosk demo --once --hold 0.3 "
        f"--gap 0.1 > {short_dir / 'out.txt'}; echo $? > {done}"
    )
    tmux.start(command)
    for _ in range(1200):
        if done.exists() and done.read_text().strip():
            break
        time.sleep(0.1)
    assert done.read_text().strip() == "2"  # the highest exit code of kiosk scan: not verified
    said = (short_dir / "out.txt").read_text(encoding="utf-8")
    assert "kiosk demo: clean, infected, incomplete, suspicious" in said
    # The throw-away clamd and the demo's files went with it.
    assert not list(short_dir.glob("kiosk-demo-*"))


def test_an_unconfigured_kiosk_says_out_of_service(tmux: Tmux, short_dir: Path):
    """An image built without a usable kiosk.toml: the real station and the real screen, both on
    the same broken file, show the kiosk out of service (not "Starting, please wait..." while
    both restart in a loop)."""
    broken = short_dir / "kiosk.toml"
    broken.write_text("[station\nid = 'x'\n", encoding="utf-8")
    sock = short_dir / "events.sock"
    station = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "station", "--config", str(broken), "--socket", str(sock)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        command = (
            f"env TERM=linux {sys.executable} -m kiosk ui --socket {sock} "
            f"--config {broken} --log {short_dir / 'ui.log'}"
        )
        tmux.start(command)
        shown = tmux.wait_for("La station n'est pas configurée.")
        assert "Prévenez le référent informatique." in shown  # the default contact
        assert "Démarrage" not in shown
        assert tmux("display-message", "-p", "-t", "kiosk", "#{pane_dead}").strip() == "0"
        assert station.poll() is None
        assert "configuration error, defaults used" in (short_dir / "ui.log").read_text()
    finally:
        station.terminate()
        station.wait(10)

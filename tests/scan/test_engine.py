"""The engine's failures: a fake clamd for replies a real one won't give (row 19), a real clamd
killed, stopped or missing (rows 18, 20, 21), and the pre-flight."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from kiosk.config import Config
from kiosk.errors import EngineError
from kiosk.models import FileVerdict, Reason, TreeVerdict
from kiosk.scan.clamd import ReplyKind, parse_reply, parse_version
from kiosk.scan.engine import Engine
from kiosk.scan.pipeline import Pipeline
from kiosk.scan.scanner import Scanner
from kiosk.scan.session import ClamdSession
from tests.support import trees
from tests.support.clamd import EICAR, start_clamd
from tests.support.fake_clamd import FakeClamd


@pytest.fixture
def fake(tmp_path):
    servers = []

    def make(behaviour, **kw):
        server = FakeClamd(tmp_path / f"fake-{len(servers)}.sock", behaviour, **kw)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def _config(sock, **scan):
    cfg = Config().with_overrides("clamd", socket=str(sock), connect_timeout=2.0)
    return cfg.with_overrides("scan", **scan) if scan else cfg


@pytest.mark.parametrize(
    "behaviour",
    ["empty", "truncated", "ok_no_nul", "error_then_ok", "wrong_number", "error", "garbage"],
)
def test_row19_bad_replies_are_errors_never_clean(tmp_path, fake, behaviour):
    server = fake(behaviour)
    tree = tmp_path / "cle"
    trees.write(tree / "a.txt", b"hello")
    trees.write(tree / "b.txt", b"world")
    report = Scanner(_config(server.path)).scan(tree)
    assert report.verdict is TreeVerdict.INCOMPLETE
    assert {f.verdict for f in report.findings} == {FileVerdict.ERROR}
    assert {f.reason for f in report.findings} == {Reason.ENGINE_ERROR}
    assert server.received_fds >= 2  # the files really went to the engine


def test_row19_well_formed_replies_are_taken(tmp_path, fake):
    tree = tmp_path / "cle"
    trees.write(tree / "a.txt", b"hello")
    assert Scanner(_config(fake("ok").path)).scan(tree).verdict is TreeVerdict.CLEAN
    report = Scanner(_config(fake("found").path)).scan(tree)
    assert report.verdict is TreeVerdict.INFECTED
    assert report.findings[0].threat == "Fake.Virus"


def test_row19_no_answer_is_a_timeout(tmp_path, fake):
    server = fake("hang")
    tree = tmp_path / "cle"
    trees.write(tree / "a.txt", b"hello")
    report = Scanner(_config(server.path, file_timeout=1.0)).scan(tree)
    assert report.verdict is TreeVerdict.INCOMPLETE
    (finding,) = report.findings
    assert (finding.verdict, finding.reason) == (FileVerdict.ERROR, Reason.ENGINE_TIMEOUT)


def test_parse_reply_is_strict():
    assert parse_reply(b"fd[3]: OK\0").kind is ReplyKind.OK
    assert parse_reply(b"fd[3]: Win.Test FOUND\0").signature == "Win.Test"
    for raw in (
        b"",
        b"OK\0",
        b"fd[3]: OK",
        b"fd[3]: OK\0fd[3]: OK\0",
        b"fd[3]:  FOUND\0",
        b"fd[3]: a b FOUND\0",
        b": OK\0",
        b"fd[3]: ok\0",
        b"fd[3]: a: OK\0",  # the first ": " decides: the verdict is "a: OK", not OK
        b"fd[3]\0: OK\0",
        b"fd[3]: OK\0\0",
    ):
        assert parse_reply(raw).kind is ReplyKind.ERROR, raw


def test_parse_version_with_and_without_date():
    info = parse_version("ClamAV 1.4.6/27480/Thu Nov 28 08:34:09 2024")
    assert info.signatures_version == 27480
    assert info.signatures_date == datetime(2024, 11, 28, 8, 34, 9, tzinfo=UTC)
    bare = parse_version("ClamAV 1.4.6")
    assert (bare.signatures_version, bare.signatures_date) == (None, None)
    with pytest.raises(EngineError):
        parse_version("HTTP/1.1 200 OK")


def test_row20_canary_not_detected_means_no_scan(tmp_path, fake):
    server = fake("ok", canary_found=False)
    tree = tmp_path / "cle"
    trees.write(tree / "a.txt", b"hello")
    report = Scanner(_config(server.path)).scan(tree)
    assert (report.verdict, report.reason) == (TreeVerdict.ERROR, Reason.CANARY_MISSED)
    assert server.received_fds == 0
    assert report.verdict.exit_code == 2


def test_row20_canary_missed_with_a_real_clamd_without_eicar(tmp_path):
    server = start_clamd(tmp_path / "clamd-noeicar")
    try:
        (server.root / "db" / "kiosk-test.ndb").unlink()
        server.restart()
        with pytest.raises(EngineError) as info:
            Scanner(_config(server.socket)).preflight()
        assert info.value.reason == Reason.CANARY_MISSED
    finally:
        server.stop()


def test_row20_old_signatures_put_the_station_out_of_service(tmp_path, fake):
    old = datetime.now(UTC) - timedelta(days=30)
    server = fake("ok", version=f"ClamAV 1.4.6/27000/{old:%a %b %d %H:%M:%S %Y}")
    tree = tmp_path / "cle"
    trees.write(tree / "a.txt", b"hello")
    report = Scanner(_config(server.path)).scan(tree)
    assert (report.verdict, report.reason) == (TreeVerdict.ERROR, Reason.SIGNATURES_OLD)
    assert server.received_fds == 0


def test_fresh_dated_signatures_pass(tmp_path, fake):
    fresh = datetime.now(UTC) - timedelta(hours=5)
    server = fake("ok", version=f"ClamAV 1.4.6/27000/{fresh:%a %b %d %H:%M:%S %Y}")
    info = Scanner(_config(server.path)).preflight()
    assert info.signatures_version == 27000


def test_undated_signatures_refused_when_a_date_is_required(tmp_path, fake):
    server = fake("ok")
    cfg = _config(server.path).with_overrides("signatures", require_date=True)
    with pytest.raises(EngineError) as info:
        Engine(cfg.clamd, cfg.signatures, file_timeout=5).preflight()
    assert info.value.reason == Reason.SIGNATURES_OLD


def test_row21_socket_missing_then_engine_comes_up(tmp_path):
    sock_dir = tmp_path / "clamd-late"
    cfg = _config(sock_dir / "clamd.sock")
    tree = tmp_path / "cle"
    trees.write(tree / "a.txt", b"hello")
    report = Scanner(cfg).scan(tree)
    assert (report.verdict, report.reason) == (TreeVerdict.ERROR, Reason.ENGINE_DOWN)
    server = start_clamd(sock_dir)
    try:
        assert Scanner(cfg).scan(tree).verdict is TreeVerdict.CLEAN
    finally:
        server.stop()


def _many_files(root, count=400, size=256 * 1024):
    for i in range(count):
        trees.write(root / f"f{i:04d}.dat", trees.noise(i, size))
    trees.write(root / "zz-eicar.txt", EICAR)


@pytest.mark.slow
def test_row18_clamd_killed_mid_scan(tmp_path, own_clamd):
    tree = tmp_path / "cle"
    _many_files(tree)
    cfg = _config(own_clamd.socket)
    started = threading.Event()

    def on_progress(p):
        if p.files_done >= 20:
            started.set()

    result = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("r", Scanner(cfg).scan(tree, on_progress=on_progress))
    )
    worker.start()
    assert started.wait(120)
    own_clamd.kill()
    worker.join(120)
    report = result["r"]
    assert report.verdict is TreeVerdict.INCOMPLETE
    assert report.reason in (Reason.ENGINE_LOST, Reason.SCAN_ERRORS)
    assert report.counts.get("error", 0) > 0
    assert report.counts.get("clean", 0) + report.counts.get("error", 0) == report.files_total
    # The engine comes back: the next scan works without restarting anything of ours.
    own_clamd.restart()
    again = Scanner(cfg).scan(tree)
    assert again.verdict is TreeVerdict.INFECTED


@pytest.mark.slow
def test_row18_clamd_stopped_times_out(tmp_path, own_clamd):
    tree = tmp_path / "cle"
    _many_files(tree, count=200)
    cfg = _config(own_clamd.socket, file_timeout=2.0)
    started = threading.Event()
    result = {}

    def on_progress(p):
        if p.files_done >= 10:
            started.set()

    worker = threading.Thread(
        target=lambda: result.setdefault("r", Scanner(cfg).scan(tree, on_progress=on_progress))
    )
    worker.start()
    assert started.wait(120)
    os.kill(own_clamd.process.pid, signal.SIGSTOP)
    try:
        worker.join(120)
        assert not worker.is_alive()
    finally:
        os.kill(own_clamd.process.pid, signal.SIGCONT)
    report = result["r"]
    assert (report.verdict, report.reason) == (TreeVerdict.INCOMPLETE, Reason.ENGINE_LOST)
    reasons = {f.reason for f in report.findings}
    assert Reason.ENGINE_TIMEOUT in reasons
    time.sleep(0.5)
    assert Scanner(cfg).scan(tree).verdict is TreeVerdict.INFECTED


def test_cancel_makes_the_scan_incomplete(tmp_path, clamd):
    tree = tmp_path / "cle"
    _many_files(tree, count=300, size=64 * 1024)
    cfg = _config(clamd.socket, workers=1)
    cancel = threading.Event()

    def on_progress(p):
        if p.files_done >= 5:
            cancel.set()

    report = Scanner(cfg).scan(tree, on_progress=on_progress, cancel=cancel)
    assert (report.verdict, report.reason) == (TreeVerdict.INCOMPLETE, Reason.CANCELLED)
    assert report.files_total == 301


class _ReaderClosesFirst:
    """A session socket whose send fails just after the reader thread closed the session (the
    race seen in CI: a bad reply poisons the session while the walking thread is sending)."""

    def __init__(self, conn, real):
        self.conn, self.real = conn, real

    def sendmsg(self, *_args):
        self.conn.close(lost=True)  # what the reader does on a reply nobody asked for
        raise BrokenPipeError(32, "Broken pipe")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_request_lost_while_sending_is_answered_once(tmp_path, clamd):
    session = ClamdSession(str(clamd.socket), connect_timeout=5)
    conn = session._current()
    conn.sock = _ReaderClosesFirst(conn, conn.sock)
    answers = []
    trees.write(tmp_path / "a.txt", b"hello")
    fd = os.open(tmp_path / "a.txt", os.O_RDONLY)
    try:
        try:
            session.send(fd, lambda reply, lost: answers.append(lost))
            raised = False
        except OSError:
            raised = True
    finally:
        os.close(fd)
        session.close()
    # One outcome only: either the callback (lost: the caller resends) or the exception.
    assert answers == [True]
    assert not raised


def test_totals_counted_beside_the_scan_are_whole_and_never_shown_early(tmp_path, clamd):
    # The count walks the tree in a thread while the scan walks it too: both must see every
    # entry (one shared root descriptor would share its offset and each walk miss some), and no
    # progress may show a total still being counted.
    tree = tmp_path / "cle"
    for d in range(40):
        _many_files(tree / f"dossier{d:02d}", count=25, size=100)  # and one EICAR each
    progress: list = []
    report = Scanner(_config(clamd.socket)).scan(tree, on_progress=progress.append)
    assert report.verdict is TreeVerdict.INFECTED
    assert report.files_total == sum(1 for p in tree.rglob("*") if p.is_file())
    assert report.files_total == 40 * 26
    assert report.counts == {"clean": 40 * 25, "infected": 40}
    assert progress, "no progress at all"
    assert {p.files_total for p in progress} == {report.files_total}
    assert {p.bytes_total for p in progress} == {report.bytes_total}
    assert progress[-1].files_done == report.files_total


@pytest.mark.parametrize("workers", [1, 7, 60])
def test_the_window_is_filled_never_overfilled(tmp_path, clamd, monkeypatch, workers):
    # The walking thread waits for room for a batch of files when the window is full: the
    # window must still be reached, never exceeded, and every file answered.
    tree = tmp_path / "cle"
    _many_files(tree, count=300, size=2000)
    in_flight: list[int] = []  # files the pipeline holds, each time it takes one more
    at_clamd: list[int] = []  # requests clamd has not answered yet, after each send
    real_take, real_send = Pipeline._take_slot, ClamdSession.send

    def take(pipeline, job):
        real_take(pipeline, job)
        with pipeline.lock:
            in_flight.append(len(pipeline.jobs))

    def send(session, fd, callback):
        def slow(reply, lost):
            # The reader lags behind the walker, as clamd does on a stick of real files: the
            # window fills whatever else the machine is doing (clamd idle on 2 KB files could
            # answer about as fast as this process sends, and the window rarely filled).
            time.sleep(0.002)
            callback(reply, lost)

        request = real_send(session, fd, slow)
        with request.connection.lock:
            at_clamd.append(len(request.connection.pending))
        return request

    monkeypatch.setattr(Pipeline, "_take_slot", take)
    monkeypatch.setattr(ClamdSession, "send", send)
    report = Scanner(_config(clamd.socket, workers=workers)).scan(tree)
    assert report.verdict is TreeVerdict.INFECTED
    assert report.counts == {"clean": 300, "infected": 1}
    assert len(in_flight) == len(at_clamd) == 301
    assert max(in_flight) <= workers and max(at_clamd) <= workers
    assert in_flight.count(workers) > 1  # the window was full, and filled again


@pytest.mark.parametrize("where", ["walking", "replying"])
def test_a_bug_of_ours_mid_scan_is_an_error_verdict_not_a_crash(
    tmp_path, clamd, monkeypatch, where
):
    # Fail closed at the boundary: whatever breaks inside the scan (here a tally that raises,
    # in the walking thread or in the session's reader thread), scan() returns an `error`
    # report, closes every file it opened and leaves no thread behind.
    from kiosk.scan.tally import Tally

    tree = tmp_path / "cle"
    _many_files(tree, count=200, size=1000)
    method = "saw" if where == "walking" else "add"
    real = getattr(Tally, method)
    calls = []

    def breaks(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 50:
            raise RuntimeError("bug")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Tally, method, breaks)
    fds_before = len(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()
    cfg = _config(clamd.socket, file_timeout=3.0)
    report = Scanner(cfg).scan(tree)
    assert (report.verdict, report.reason) == (TreeVerdict.ERROR, Reason.SCAN_ERRORS)
    assert "RuntimeError('bug')" in (report.detail or "")
    deadline = time.monotonic() + 10
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == threads_before
    assert len(os.listdir("/proc/self/fd")) == fds_before

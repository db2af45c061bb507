"""Refused requests are kept for IT: per station a count and the last few, never the body."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from kiosk.models import utcnow
from kiosk.server import refusals, retention
from kiosk.server.tables import Refusal, RefusalCount
from tests.server.conftest import Server
from tests.server.support import XSS_NAMES, body, make_report

HOSTILE = XSS_NAMES[0]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def rows(server: Server, station: str | None) -> list[Refusal]:
    with server.db.read() as session:
        return list(reversed(refusals.latest(session, station)))


def total(server: Server, key: str) -> int:
    with server.db.read() as session:
        row = session.get(RefusalCount, key)
        return 0 if row is None else row.total


async def test_each_refusal_of_a_station_is_kept_with_its_reason_never_its_body(
    server: Server,
) -> None:
    token = server.add_station("st1")
    server.add_station("st2")
    good = make_report("st1").to_dict()
    foreign = make_report("st2")
    cases = [
        ("/api/v1/reports", b"{not json", 400),
        ("/api/v1/reports", json.dumps({**good, "files_total": HOSTILE}).encode(), 422),
        ("/api/v1/reports", json.dumps({**good, "extra": {HOSTILE: [1]}}).encode(), 422),
        ("/api/v1/reports", body(foreign), 403),
        ("/api/v1/reports", b"x" * (17 * 1024 * 1024), 413),
        ("/api/v1/heartbeats", json.dumps({"station_id": "st1"}).encode(), 422),
    ]
    for path, content, status in cases:
        answer = await server.client.post(path, content=content, headers=auth(token))
        assert answer.status_code == status, answer.text
    kept = rows(server, "st1")
    assert [(r.kind, r.status, r.reason) for r in kept] == [
        ("report", 400, "invalid_json"),
        ("report", 422, "invalid"),
        ("report", 422, "invalid"),
        ("report", 403, "wrong_station"),
        ("report", 413, "too_large"),
        ("heartbeat", 422, "invalid"),
    ]
    assert kept[1].detail == "files_total: int_type"
    assert (kept[2].detail or "").startswith("extra.?")  # a key from the station: not repeated
    assert kept[3].report_id == foreign.report_id
    assert kept[0].report_id is None  # nothing parsed, nothing named
    for row in kept:
        assert HOSTILE not in f"{row.detail}{row.reason}{row.report_id}"
    assert total(server, "st1") == 6
    assert rows(server, "st2") == []


async def test_a_wrong_station_and_a_conflict_name_the_report_id(server: Server) -> None:
    mine = server.add_station("st1")
    theirs = server.add_station("st2")
    other = make_report("st2")
    answer = await server.client.post("/api/v1/reports", content=body(other), headers=auth(mine))
    assert answer.status_code == 403
    stored = await server.client.post("/api/v1/reports", content=body(other), headers=auth(theirs))
    assert stored.status_code == 201
    hijack = make_report("st1", report_id=other.report_id)
    answer = await server.client.post("/api/v1/reports", content=body(hijack), headers=auth(mine))
    assert answer.status_code == 409
    kept = rows(server, "st1")
    assert [(r.reason, r.report_id) for r in kept] == [
        ("wrong_station", other.report_id),
        ("id_conflict", other.report_id),
    ]


async def test_requests_without_a_valid_token_are_counted_apart_and_rate_limited(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refusals, "ANONYMOUS_EVERY", 3600.0)  # "within the same second"
    report = body(make_report("st1"))
    plain = {"Content-Type": "application/json"}
    for _ in range(3):
        answer = await server.client.post("/api/v1/reports", content=report, headers=plain)
        assert answer.status_code == 401
    wrong = auth("sbk_" + "x" * 43)
    for _ in range(2):
        answer = await server.client.post("/api/v1/reports", content=report, headers=wrong)
        assert answer.status_code == 401
    assert [r.reason for r in rows(server, None)] == ["no_token"]  # the first only, so far
    assert total(server, refusals.ANONYMOUS) == 1
    server.app.state.server.refusals._anonymous_at = -1e9  # that second is over
    beat = json.dumps({"station_id": "st1", "sent_at": utcnow().isoformat()}).encode()
    answer = await server.client.post("/api/v1/heartbeats", content=beat, headers=wrong)
    assert answer.status_code == 401
    assert [(r.kind, r.reason) for r in rows(server, None)] == [
        ("report", "no_token"),
        ("heartbeat", "unknown_token"),
    ]
    assert total(server, refusals.ANONYMOUS) == 6  # the four held back are counted now


async def test_the_first_anonymous_refusal_is_kept_on_a_server_started_right_after_boot(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The monotonic clock counts from boot: a quarter of a second in, nothing came before.
    monkeypatch.setattr(refusals, "time", SimpleNamespace(monotonic=lambda: 0.25))
    answer = await server.client.post(
        "/api/v1/reports",
        content=body(make_report("st1")),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 401
    assert [r.reason for r in rows(server, None)] == ["no_token"]
    assert total(server, refusals.ANONYMOUS) == 1


async def test_only_the_last_refusals_are_kept_but_all_are_counted(server: Server) -> None:
    token = server.add_station("st1")
    for i in range(refusals.KEEP + 5):
        bad = json.dumps({"station_id": "st1", "sent_at": "x", "n": i}).encode()
        answer = await server.client.post("/api/v1/heartbeats", content=bad, headers=auth(token))
        assert answer.status_code == 422
    assert len(rows(server, "st1")) == refusals.KEEP
    assert total(server, "st1") == refusals.KEEP + 5


async def test_refusals_flag_the_station_and_show_on_its_page(server: Server) -> None:
    server.add_user()
    token = server.add_station("st1", name=XSS_NAMES[1])
    answer = await server.client.post("/api/v1/reports", content=b"{not json", headers=auth(token))
    assert answer.status_code == 400
    await server.login()
    stations = (await server.client.get("/stations")).text
    assert "Refusés : 1" in stations and "Rapports refusés" in stations
    assert 'href="/stations/st1#refused"' in stations
    page = (await server.client.get("/stations/st1")).text
    assert "JSON invalide" in page and "HTTP 400" in page
    assert "<svg onload" not in page and "&#34;&gt;&lt;svg onload=alert(1)&gt;" in page
    assert "Envois de cette station refusés par le serveur : 1" in page


async def test_retention_deletes_old_refusals_with_their_count(server: Server) -> None:
    server.add_station("st1")
    old = utcnow() - timedelta(days=400)
    with server.db.write() as session:
        refusals.store(session, "st1", refusals.Refused("report", 422, "invalid"), 1, old)
        refusals.store(session, None, refusals.Refused("report", 401, "no_token"), 1, old)
        refusals.store(session, "st1", refusals.Refused("report", 400, "invalid_json"), 1, utcnow())
    retention.purge(server.db, 365)
    with server.db.read() as session:
        kept = session.scalars(select(Refusal.reason)).all()
        counts = session.scalars(select(RefusalCount.key)).all()
        assert session.scalar(select(func.count()).select_from(Refusal)) == 1
    assert kept == ["invalid_json"]
    assert counts == ["st1"]  # the station's count moved recently; the anonymous one did not

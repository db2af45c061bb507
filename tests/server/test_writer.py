"""Group commit: a batch of reports stores each exactly once, and one bad batch fails nobody."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import HTTPException
from sqlalchemy import func, select

from kiosk.models import TreeVerdict
from kiosk.server import writer as writer_module
from kiosk.server.ingest import Outcome
from kiosk.server.schemas import ReportIn
from kiosk.server.tables import StoredFinding, StoredReport
from kiosk.server.writer import ReportWriter, _Job
from tests.server.conftest import Server
from tests.server.support import body, make_report


def parsed(station: str, **kwargs: Any) -> ReportIn:
    return ReportIn.model_validate_json(body(make_report(station, **kwargs)))


def count(server: Server, model: type) -> int:
    with server.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def write_batch(writer: ReportWriter, jobs: list[tuple[str, ReportIn]]) -> list[Any]:
    """Hand the writer one batch exactly as its thread would, and collect every answer."""
    loop = asyncio.get_running_loop()
    batch = [_Job(token, report, loop, loop.create_future()) for token, report in jobs]
    await loop.run_in_executor(None, writer._write, batch)
    answers: list[Any] = []
    for job in batch:
        try:
            answers.append(await job.future)
        except HTTPException as exc:
            answers.append(exc.status_code)
    return answers


async def test_one_batch_stores_each_report_once_and_refuses_the_rest(server: Server) -> None:
    a = server.add_station("a")
    b = server.add_station("b")
    writer: ReportWriter = server.app.state.server.writer
    infected = parsed("a", verdict=TreeVerdict.INFECTED)
    theirs = parsed("b")
    answers = await write_batch(
        writer,
        [
            (a, infected),
            (a, infected),  # the same report twice in one batch
            (b, theirs),
            (a, parsed("a", report_id=theirs.report_id)),  # b's report id, from a
            (a, parsed("b")),  # a writing as b
            ("sbk_" + "x" * 43, parsed("a")),  # no such token
            (b, parsed("b")),
        ],
    )
    assert answers == [
        Outcome(duplicate=False),
        Outcome(duplicate=True),
        Outcome(duplicate=False),
        409,
        403,
        401,
        Outcome(duplicate=False),
    ]
    assert count(server, StoredReport) == 3
    assert count(server, StoredFinding) == 1  # the infected report's finding, once
    again = await write_batch(writer, [(a, infected), (b, theirs)])
    assert again == [Outcome(duplicate=True), Outcome(duplicate=True)]
    assert count(server, StoredReport) == 3


async def test_a_failed_batch_is_stored_one_by_one(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = server.add_station("a")
    writer: ReportWriter = server.app.state.server.writer
    real = writer_module.store_reports

    def fails_in_batches(connection: Any, reports: list[Any], tz: Any) -> list[Outcome]:
        if len(reports) > 1:
            real(connection, reports, tz)  # written, then lost with the rollback
            raise RuntimeError("the database broke mid-batch")
        return real(connection, reports, tz)

    monkeypatch.setattr(writer_module, "store_reports", fails_in_batches)
    reports = [parsed("a") for _ in range(5)]
    answers = await write_batch(writer, [(token, r) for r in reports])
    assert answers == [Outcome(duplicate=False)] * 5
    assert count(server, StoredReport) == 5


async def test_reports_through_the_writer_thread(server: Server) -> None:
    token = server.add_station("a")
    writer: ReportWriter = server.app.state.server.writer
    reports = [parsed("a") for _ in range(40)]
    outcomes = await asyncio.gather(*(writer.store(token, r) for r in reports + reports))
    assert sorted(o.duplicate for o in outcomes) == [False] * 40 + [True] * 40
    assert count(server, StoredReport) == 40
    await asyncio.get_running_loop().run_in_executor(None, writer.close)

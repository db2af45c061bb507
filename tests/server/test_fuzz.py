"""Fuzz the OpenAPI document with schemathesis against the real server (THREATS row 29): no 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.delivery.conftest import prepare_database
from tests.server.support import Uvicorn, free_port, write_config

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").create_database()
    else:
        url = f"sqlite:///{root}/central.db"
    tokens = prepare_database(url, "fuzz")
    server = Uvicorn(write_config(root / "s.toml", url), free_port(), root / "log", env={})
    server.start()
    yield server.url, tokens["fuzz"]
    server.stop()
    assert "Traceback" not in (root / "log").read_text()  # nothing crashed, even quietly


@pytest.fixture(scope="module")
def api_schema(live: tuple[str, str]) -> object:
    return schemathesis.openapi.from_url(f"{live[0]}/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_makes_the_api_fail(case: object, live: tuple[str, str]) -> None:
    base, token = live
    for headers in ({"Authorization": f"Bearer {token}"}, {}):
        response = case.call(base_url=base, headers=headers)  # type: ignore[attr-defined]
        assert response.status_code < 500, (response.status_code, response.text[:500])
        if response.status_code >= 400:
            assert "error" in response.json()  # always our own problem shape, never a trace

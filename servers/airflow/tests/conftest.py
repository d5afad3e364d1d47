"""Fixtures: a real Airflow 3 (session-scoped, with finished baseline runs) and servers over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.principal import Principal
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_airflow.backend import RestAirflowBackend
from fleetdeck_airflow.server import build_server
from fleetdeck_airflow.settings import AirflowSettings
from fleetdeck_testkit.airflow import AirflowServer, launch_airflow
from fleetdeck_testkit.backends import BackendStartError, backend_unavailable

DAGS = Path(__file__).parent / "dags"
TEST_DAGS = ("fd_success", "fd_fails", "fd_retries", "fd_chain", "fd_slow")
BASELINE = "baseline"
"""The run id of the finished run each test DAG but fd_slow has when the session starts."""

DAG_ACCESS: dict[str, Any] = {
    "operate": [
        {"groups": ["ads"], "tags": ["ads"]},
        {"groups": ["finance"], "owners": ["finance-*"]},
        {"groups": ["data-infra"], "dag_ids": ["*"]},
    ]
}


@pytest.fixture(scope="session")
def airflow() -> Iterator[AirflowServer]:
    """A real Airflow for the session: test DAGs parsed and unpaused (not fd_slow), baseline runs done."""
    try:
        server = launch_airflow(DAGS)
    except BackendStartError as exc:
        backend_unavailable(str(exc))
    try:
        try:
            server.wait_for_dags(TEST_DAGS)
            for dag_id in TEST_DAGS[:4]:
                server.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
                server.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "dag_run_id": BASELINE})
            for dag_id in TEST_DAGS[:4]:
                server.wait_for_run(dag_id, BASELINE)
        except BackendStartError as exc:
            backend_unavailable(str(exc))
        yield server
    finally:
        server.close()


@pytest.fixture
def settings(tmp_path: Path) -> FleetdeckSettings:
    return FleetdeckSettings.load(data_dir=tmp_path, telemetry={"flush_interval_s": 0.01})


def airflow_settings(airflow: AirflowServer, **overrides: Any) -> AirflowSettings:
    """Settings pointing at the session's Airflow with its admin account (overridable)."""
    values: dict[str, Any] = {
        "url": airflow.url,
        "username": airflow.admin[0],
        "password": airflow.admin[1],
        "environment_name": "test-airflow",
        "dags": DAG_ACCESS,
        "read_timeout_s": 30.0,
    }
    values.update(overrides)
    return AirflowSettings.load(**values)


ServerFactory = Callable[..., AbstractAsyncContextManager[FleetServer]]


@pytest.fixture
def make_server(airflow: AirflowServer, settings: FleetdeckSettings) -> ServerFactory:
    """A running server over the session's Airflow, called by ``principal``, with settings overrides."""

    @asynccontextmanager
    async def factory(principal: Principal, **overrides: Any) -> AsyncIterator[FleetServer]:
        config = airflow_settings(airflow, **overrides)
        backend = RestAirflowBackend(config)
        built = build_server(settings, config, backend, identity=StaticIdentity(principal))
        try:
            async with built.running():
                yield built
        finally:
            backend.close()

    return factory

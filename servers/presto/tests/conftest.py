"""Fixtures: a real Trino for the session, the DuckDB warehouse file, telemetry settings per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.backends import launched
from fleetdeck_testkit.trino import TrinoServer, launch_trino


@pytest.fixture(scope="session")
def trino_server() -> Iterator[TrinoServer]:
    """A real Trino for the session (tpch + memory catalogs, file-based access control)."""
    with launched(launch_trino) as server:
        yield server


@pytest.fixture(scope="session")
def warehouse_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"


@pytest.fixture
def settings(tmp_path: Path) -> FleetdeckSettings:
    return FleetdeckSettings.load(data_dir=tmp_path, telemetry={"flush_interval_s": 0.01})

"""Fixtures of the Spark server's tests: synthetic event logs (unit) and real Spark (``-m spark``).

Helpers live in ``servers.spark.tests.spark_helpers``. Real Spark fixtures are session-scoped: the
event logs are generated once (and cached by the testkit), one History Server serves both forms of
every scenario. When they cannot start, the tests skip by hand and fail under ``CI=true``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.spark.tests.spark_helpers import application_events, encode, lz4_block_stream, write_folder

from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.backends import BackendStartError, backend_unavailable
from fleetdeck_testkit.spark import HistoryServer, SparkLogs, generate_event_logs


@pytest.fixture
def settings(tmp_path: Path) -> FleetdeckSettings:
    return FleetdeckSettings.load(data_dir=tmp_path / "data", telemetry={"flush_interval_s": 0.01})


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A folder with a failing app (folder form), a succeeding one (plain) and a slower rerun (lz4)."""
    root = tmp_path / "events"
    root.mkdir()
    write_folder(root, "app-20260101-0001", encode(application_events("app-20260101-0001", fail=True)))
    (root / "app-20260101-0002").write_bytes(encode(application_events("app-20260101-0002")))
    slow = application_events("app-20260101-0003", durations=(100, 110, 120, 4_000))
    (root / "app-20260101-0003.lz4").write_bytes(lz4_block_stream(encode(slow)))
    return root


# -- real Spark ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def spark_logs() -> SparkLogs:
    """Real event logs of every scenario in both forms (generated once, cached by the testkit)."""
    try:
        return generate_event_logs()
    except BackendStartError as exc:
        backend_unavailable(f"cannot generate Spark event logs: {exc}")


@pytest.fixture(scope="session")
def all_logs_dir(spark_logs: SparkLogs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both forms of every scenario in one folder (a History Server reads one folder)."""
    target = tmp_path_factory.mktemp("spark-events")
    for form in ("folder", "plain"):
        for entry in spark_logs.directory(form).iterdir():
            if entry.is_dir():
                shutil.copytree(entry, target / entry.name)
            else:
                shutil.copy2(entry, target / entry.name)
    return target


@pytest.fixture(scope="session")
def history_server(spark_logs: SparkLogs, all_logs_dir: Path) -> Iterator[HistoryServer]:
    """Spark's History Server over every generated log, for the session."""
    expected = sum(len(apps) for apps in spark_logs.apps.values())
    try:
        server = HistoryServer(all_logs_dir).start(expect_apps=expected)
    except BackendStartError as exc:
        backend_unavailable(f"cannot start the Spark History Server: {exc}")
    try:
        yield server
    finally:
        server.stop()

"""The `fleetdeck` command's contract: clear answers for good and bad setups."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetdeck.cli import app


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLEETDECK_DATA_DIR", str(tmp_path))
    return tmp_path


def test_doctor_passes_on_embedded_defaults() -> None:
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "server presto" in result.output
    assert "backend ready" in result.output


def test_doctor_fails_naming_an_unreachable_telemetry_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETDECK_TELEMETRY__URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "telemetry store" in result.output
    assert "fail" in result.output


def test_a_wrong_setting_stops_the_command_with_its_name(data_dir: Path) -> None:
    env = {"FLEETDECK_DATA_DIR": str(data_dir), "FLEETDECK_HTTP__MAX_ARGUMENT_BYTES": "tiny"}
    done = subprocess.run(
        [sys.executable, "-m", "fleetdeck", "serve", "presto"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "http.max_argument_bytes (env FLEETDECK_HTTP__MAX_ARGUMENT_BYTES)" in done.stderr


def test_serving_an_unknown_server_lists_the_installed_ones(data_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fleetdeck", "serve", "hive"],
        env={"FLEETDECK_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no server called 'hive' is installed; installed: " in done.stderr
    assert "presto" in done.stderr.split("installed: ")[-1]


def test_doctor_passes_on_a_data_dir_that_does_not_exist_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "first" / "run"
    monkeypatch.setenv("FLEETDECK_DATA_DIR", str(fresh))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert (fresh / "telemetry.db").exists()

"""Settings come from embedded defaults, a TOML file and FLEETDECK_* variables; bad ones are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetdeck.errors import ConfigError
from fleetdeck.settings import FleetdeckSettings


def test_embedded_defaults_run_a_local_fleet(tmp_path: Path) -> None:
    settings = FleetdeckSettings.load(data_dir=tmp_path)
    assert settings.telemetry_url() == f"sqlite:///{tmp_path / 'telemetry.db'}"
    assert settings.http.host == "127.0.0.1"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "fleetdeck.toml"
    config.write_text('log_level = "DEBUG"\n[telemetry]\nbatch_size = 50\nqueue_size = 7\n')
    monkeypatch.setenv("FLEETDECK_TELEMETRY__BATCH_SIZE", "99")
    settings = FleetdeckSettings.load(config)
    assert settings.log_level == "DEBUG"
    assert settings.telemetry.batch_size == 99
    assert settings.telemetry.queue_size == 7


def test_a_wrong_environment_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETDECK_TELEMETRY__BATCH_SIZE", "many")
    with pytest.raises(ConfigError, match=r"telemetry\.batch_size \(env FLEETDECK_TELEMETRY__BATCH_SIZE\)"):
        FleetdeckSettings.load()


def test_a_wrong_telemetry_url_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r"telemetry\.url"):
        FleetdeckSettings.load(telemetry={"url": "mysql://x"})


def test_a_broken_config_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[telemetry\n")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        FleetdeckSettings.load(config)


def test_production_requires_a_pseudonym_key(tmp_path: Path) -> None:
    settings = FleetdeckSettings.load(data_dir=tmp_path, environment="production")
    with pytest.raises(ConfigError, match="pseudonym_key"):
        settings.pseudonym_key()


def test_development_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = FleetdeckSettings.load(data_dir=tmp_path).pseudonym_key()
    again = FleetdeckSettings.load(data_dir=tmp_path).pseudonym_key()
    assert first == again
    assert len(first) == 64
    assert (tmp_path / "pseudonym.key").stat().st_mode & 0o077 == 0

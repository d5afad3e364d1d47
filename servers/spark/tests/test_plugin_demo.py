"""`fleetdeck up` on a fresh machine: the default folder holds real demo logs a newcomer can diagnose."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from fleetdeck.plugins import get
from fleetdeck_spark.demo import demo_logs
from fleetdeck_spark.plugin import available, build

DEMO_CATEGORIES = {"python_exception", "result_size_limit", "data_skew", "driver_oom"}


@pytest.fixture
def fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLEETDECK_DATA_DIR", str(tmp_path / "data"))
    for name in ("FLEETDECK_SPARK__SOURCE", "FLEETDECK_SPARK__EVENT_LOG_DIR", "FLEETDECK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def test_the_plugin_is_registered_under_its_name_and_port() -> None:
    plugin = get("spark")
    assert (plugin.name, plugin.default_port) == ("spark", 8102)


def test_the_bundled_demo_logs_are_small() -> None:
    sizes = [f.stat().st_size for d in Path(str(demo_logs())).iterdir() if d.is_dir() for f in d.iterdir()]
    assert 0 < sum(sizes) < 300_000


async def test_a_fresh_data_dir_is_seeded_and_every_demo_app_diagnoses(fresh_machine: Path) -> None:
    assert await available(None) is None
    assert len(list((fresh_machine / "spark-events").iterdir())) == 4
    server = build(None)
    async with server.running(), Client(server.mcp) as client:
        listed = await client.call_tool("list_applications", {})
        assert listed.structured_content is not None
        apps = [a["app_id"] for a in listed.structured_content["applications"]]
        categories = set()
        for app_id in apps:
            result = await client.call_tool("diagnose_application", {"app_id": app_id})
            assert result.structured_content is not None
            categories.add(result.structured_content["category"])
    assert categories == DEMO_CATEGORIES


async def test_a_folder_with_logs_is_never_overwritten(fresh_machine: Path) -> None:
    events = fresh_machine / "spark-events"
    events.mkdir(parents=True)
    (events / "local-1").write_text("", encoding="utf-8")
    assert await available(None) is None
    assert [p.name for p in events.iterdir()] == ["local-1"]


async def test_an_unreachable_history_server_is_reported_not_raised(
    fresh_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETDECK_SPARK__SOURCE", "history")
    monkeypatch.setenv("FLEETDECK_SPARK__HISTORY_URLS", '["http://127.0.0.1:9"]')
    monkeypatch.setenv("FLEETDECK_SPARK__RETRIES", "0")
    reason = await available(None)
    assert reason is not None
    assert "no History Server is reachable: http://127.0.0.1:9" in reason

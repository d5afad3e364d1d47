"""Every Spark tool through the in-memory MCP client, over synthetic event logs, on both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from servers.spark.tests.spark_helpers import application_events, encode, make_server

from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_spark.eventlog import EventLogSource

MODES = ["auto", "legacy"]
FAILED, PASSED, SLOW = "app-20260101-0001", "app-20260101-0002", "app-20260101-0003"


@pytest.fixture
async def server(settings: FleetdeckSettings, log_dir: Path) -> AsyncIterator[FleetServer]:
    built = make_server(settings, EventLogSource(str(log_dir)))
    async with built.running():
        yield built


async def call(
    server: FleetServer, tool: str, arguments: dict[str, Any], mode: str = "auto"
) -> dict[str, Any]:
    async with Client(server.mcp, mode=mode) as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    content: dict[str, Any] = result.structured_content
    return content


@pytest.mark.parametrize("mode", MODES)
async def test_list_applications_filters_and_orders(server: FleetServer, mode: str) -> None:
    listed = await call(server, "list_applications", {"name_contains": "nightly", "limit": 10}, mode)
    assert {a["app_id"] for a in listed["applications"]} == {FAILED, PASSED, SLOW}
    none = await call(server, "list_applications", {"started_after": "2030-01-01T00:00:00Z"}, mode)
    assert none["applications"] == []


@pytest.mark.parametrize("mode", MODES)
async def test_get_application_summarises_failures_and_redacts_settings(
    server: FleetServer, mode: str
) -> None:
    view = await call(server, "get_application", {"app_id": FAILED}, mode)
    assert view["counts"]["failed_jobs"] == 1
    assert view["failures"][0]["python_error"] == "ValueError: bad row 7"
    assert view["failed_stages"][0]["stage_id"] == 0
    assert view["notable_config"]["spark.executor.memory"] == "4g"
    assert "secret" not in str(view["notable_config"])


@pytest.mark.parametrize("mode", MODES)
async def test_diagnose_application_names_the_python_error_and_the_fix(
    server: FleetServer, mode: str
) -> None:
    diagnosis = await call(server, "diagnose_application", {"app_id": FAILED}, mode)
    assert diagnosis["category"] == "python_exception"
    assert diagnosis["evidence"]["python_error"] == "ValueError: bad row 7"
    assert "etl.py:12 in enrich" in diagnosis["evidence"]["frames"]
    assert diagnosis["remediation"]


async def test_get_stage_shows_quantiles_skew_and_the_slowest_tasks(server: FleetServer) -> None:
    stage = await call(server, "get_stage", {"app_id": SLOW, "stage_id": 0})
    assert stage["quantiles"]["duration_ms"] == [100.0, 110.0, 120.0, 4000.0, 4000.0]
    assert stage["slowest_tasks"][0]["duration_ms"] == 4000


async def test_compare_applications_shows_where_the_time_went(server: FleetServer) -> None:
    compared = await call(server, "compare_applications", {"before_app_id": PASSED, "after_app_id": SLOW})
    assert compared["stages"][0]["stage_name"] == "collect at etl.py:20"
    assert compared["config_changes"] == []


async def test_a_recorded_rca_is_found_and_linked_from_a_later_diagnosis(server: FleetServer) -> None:
    recorded = await call(
        server,
        "record_rca",
        {
            "app_id": FAILED,
            "title": "Bad rows in the enrich UDF",
            "root_cause": "Row 7 has no region; the UDF raised. Source DB password=hunter2 was fine.",
            "remediation": "Filter rows without a region before enrich().",
            "tags": ["etl", "udf"],
        },
    )
    assert recorded["category"] == "python_exception"
    assert recorded["recorded_by"] == "alice"
    assert "hunter2" not in recorded["root_cause"]
    found = await call(server, "find_rcas", {"text": "enrich region", "category": "python_exception"})
    assert [r["rca_id"] for r in found["rcas"]] == [recorded["rca_id"]]
    assert (await call(server, "find_rcas", {"text": "nothing-like-this"}))["rcas"] == []
    assert (await call(server, "find_rcas", {"text": "%"}))["rcas"] == []  # a wildcard is just a character


async def test_similar_past_rcas_of_other_runs_are_linked(
    settings: FleetdeckSettings, tmp_path: Path
) -> None:
    root = tmp_path / "two-failures"
    root.mkdir()
    for app_id in ("app-20260102-0001", "app-20260102-0002"):
        (root / app_id).write_bytes(encode(application_events(app_id, fail=True)))
    built = make_server(settings, EventLogSource(str(root)))
    async with built.running():
        rca = {"title": "Bad rows", "root_cause": "UDF raised", "remediation": "filter rows"}
        await call(built, "record_rca", {"app_id": "app-20260102-0001", **rca})
        diagnosis = await call(built, "diagnose_application", {"app_id": "app-20260102-0002"})
    assert [s["app_id"] for s in diagnosis["similar_rcas"]] == ["app-20260102-0001"]


async def test_unknown_application_is_a_clear_tool_error(server: FleetServer) -> None:
    async with Client(server.mcp) as client:
        result = await client.call_tool("diagnose_application", {"app_id": "app-20990101-9999"})
        traversal = await client.call_tool("get_application", {"app_id": "../../etc/passwd"})
    assert result.is_error
    assert "no event log for application app-20990101-9999" in result.content[0].text  # type: ignore[union-attr]
    assert traversal.is_error


async def test_tools_restricted_to_a_surface_are_hidden_and_denied_elsewhere(
    settings: FleetdeckSettings, log_dir: Path
) -> None:
    source = EventLogSource(str(log_dir))
    inside = make_server(settings, source, surfaces=("slack:#data-support",), surface="slack:#data-support")
    outside = make_server(settings, source, surfaces=("slack:#data-support",), surface="ide")
    async with inside.running(), Client(inside.mcp) as client:
        assert "diagnose_application" in {t.name for t in (await client.list_tools()).tools}
    async with outside.running(), Client(outside.mcp) as client:
        assert (await client.list_tools()).tools == []
        denied = await client.call_tool("diagnose_application", {"app_id": FAILED})
    assert denied.is_error


async def test_annotations_are_honest(server: FleetServer) -> None:
    specs = server.tool_specs
    assert {name for name, spec in specs.items() if spec.read_only} == {
        "list_applications", "get_application", "get_stage", "compare_applications", "diagnose_application",
        "find_rcas",
    }  # fmt: skip
    assert not specs["record_rca"].read_only
    assert not specs["record_rca"].destructive

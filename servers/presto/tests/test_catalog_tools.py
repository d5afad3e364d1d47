"""The browsing tools over the embedded DuckDB demo warehouse, on both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from fleetdeck.errors import Outcome
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.store import EventStore
from fleetdeck_presto.duckdb_backend import DuckDBBackend
from fleetdeck_presto.server import build_server
from fleetdeck_presto.settings import PrestoSettings

MODES = ["auto", "legacy"]


@pytest.fixture
async def server(settings: FleetdeckSettings, tmp_path: Path) -> AsyncIterator[FleetServer]:
    backend = DuckDBBackend(tmp_path / "warehouse.duckdb")
    built = build_server(settings, PrestoSettings.load(), backend)
    async with built.running():
        yield built
    backend.close()


@pytest.mark.parametrize("mode", MODES)
async def test_list_catalogs_shows_the_demo_warehouse(server: FleetServer, mode: str) -> None:
    async with Client(server.mcp, mode=mode) as client:
        result = await client.call_tool("list_catalogs", {})
    assert not result.is_error
    assert result.structured_content == {"catalogs": ["warehouse"]}


@pytest.mark.parametrize("mode", MODES)
async def test_list_schemas_lists_the_business_domains(server: FleetServer, mode: str) -> None:
    async with Client(server.mcp, mode=mode) as client:
        result = await client.call_tool("list_schemas", {"catalog": "warehouse"})
    assert result.structured_content is not None
    assert {"ads", "finance", "ops"} <= set(result.structured_content["schemas"])


async def test_unknown_catalog_is_a_clear_tool_error_naming_valid_ones(server: FleetServer) -> None:
    async with Client(server.mcp) as client:
        result = await client.call_tool("list_schemas", {"catalog": "nope"})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "'nope' does not exist" in text
    assert "warehouse" in text


async def test_identifier_injection_is_rejected_before_the_backend(server: FleetServer) -> None:
    async with Client(server.mcp) as client:
        result = await client.call_tool("list_schemas", {"catalog": "x'; DROP TABLE t; --"})
    assert result.is_error


async def test_every_call_is_recorded_with_its_outcome(
    server: FleetServer, settings: FleetdeckSettings
) -> None:
    async with Client(server.mcp) as client:
        await client.call_tool("list_catalogs", {})
        await client.call_tool("list_schemas", {"catalog": "nope"})
        await client.call_tool("list_schemas", {"catalog": 42})
    assert server._writer is not None
    assert server._writer.flush(timeout=10)
    events = sorted(EventStore(settings.telemetry_url()).events(), key=lambda e: e.ts)
    assert [(e.tool, e.outcome) for e in events] == [
        ("list_catalogs", Outcome.OK),
        ("list_schemas", Outcome.TOOL_ERROR),
        ("list_schemas", Outcome.INVALID_INPUT),
    ]
    assert events[0].minutes_saved == 1.0
    assert events[0].team == "data-infra"
    assert events[0].protocol_version == "2026-07-28"

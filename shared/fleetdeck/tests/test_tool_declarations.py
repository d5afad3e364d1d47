"""A tool must declare minutes saved and every hint; the kit refuses anything implicit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from fleetdeck.errors import ConfigError, NotFoundError
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.servers import DEMO_INFO, OPEN_ACCESS

HINTS: dict[str, Any] = {"read_only": True, "destructive": False, "idempotent": True}


@pytest.fixture
def server(tmp_path: Path) -> FleetServer:
    return FleetServer(DEMO_INFO, FleetdeckSettings.load(data_dir=tmp_path), access=OPEN_ACCESS)


def test_missing_minutes_saved_is_refused(server: FleetServer) -> None:
    with pytest.raises(TypeError, match="minutes_saved"):
        server.tool(**HINTS)


@pytest.mark.parametrize("hint", ["read_only", "destructive", "idempotent"])
def test_every_hint_must_be_stated(server: FleetServer, hint: str) -> None:
    partial = {k: v for k, v in HINTS.items() if k != hint}
    with pytest.raises(TypeError, match=hint):
        server.tool(minutes_saved=1, **partial)


def test_read_only_and_destructive_together_is_refused(server: FleetServer) -> None:
    def wipe() -> str:
        """Wipe everything."""
        return ""

    with pytest.raises(ConfigError, match="both read_only and destructive"):
        server.tool(minutes_saved=1, read_only=True, destructive=True, idempotent=False)(wipe)


def test_a_tool_without_docstring_is_refused(server: FleetServer) -> None:
    def nameless() -> str:
        return ""

    with pytest.raises(ConfigError, match="needs a docstring"):
        server.tool(minutes_saved=1, **HINTS)(nameless)


@pytest.mark.parametrize("name", ["ListThings", "list-things", "_hidden", "presto.list"])
def test_tool_names_must_be_snake_case(server: FleetServer, name: str) -> None:
    def fn() -> str:
        """Do it."""
        return ""

    with pytest.raises(ConfigError, match="snake_case"):
        server.tool(minutes_saved=1, name=name, **HINTS)(fn)


@pytest.mark.parametrize("minutes", [-1, 10_000, True, "5"])
def test_minutes_saved_must_be_a_plausible_number(server: FleetServer, minutes: Any) -> None:
    def fn() -> str:
        """Do it."""
        return ""

    with pytest.raises(ConfigError, match="minutes_saved"):
        server.tool(minutes_saved=minutes, **HINTS)(fn)


async def test_annotations_reach_the_client_exactly_as_declared(server: FleetServer) -> None:
    @server.tool(minutes_saved=4, read_only=False, destructive=True, idempotent=False, open_world=False)
    def restart_job(job: str) -> str:
        """Restart a job."""
        return job

    async with Client(server.mcp) as client:
        tools = (await client.list_tools()).tools
    annotations = tools[0].annotations
    assert annotations is not None
    assert (annotations.read_only_hint, annotations.destructive_hint, annotations.idempotent_hint) == (
        False,
        True,
        False,
    )
    assert server.tool_specs["restart_job"].requires_approval


async def test_domain_errors_become_tool_errors_with_their_message(server: FleetServer) -> None:
    @server.tool(minutes_saved=1, **HINTS)
    async def find(item: str) -> str:
        """Find an item."""
        raise NotFoundError(f"no item {item!r}")

    async with server.running(), Client(server.mcp) as client:
        result = await client.call_tool("find", {"item": "a"})
    assert result.is_error
    assert result.content[0].text.endswith("no item 'a'")  # type: ignore[union-attr]


async def test_unexpected_crashes_do_not_leak_their_message(server: FleetServer) -> None:
    @server.tool(minutes_saved=1, **HINTS)
    def leak() -> str:
        """Crash with a secret in the message."""
        raise RuntimeError("password=hunter2")

    async with server.running(), Client(server.mcp) as client:
        result = await client.call_tool("leak", {})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "hunter2" not in text
    assert "leak failed unexpectedly (RuntimeError)" in text

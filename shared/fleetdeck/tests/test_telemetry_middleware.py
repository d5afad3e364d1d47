"""Telemetry observes tool calls without changing them, and counts calls, not listings."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mcp import Client
from mcp.server import MCPServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import BaseModel

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.auth.principal import ANONYMOUS, Principal, User, Workload
from fleetdeck.errors import Outcome
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.events import EventRecipe, InvocationEvent, next_sequence, pseudonymise
from fleetdeck.telemetry.metrics import Metrics
from fleetdeck.telemetry.middleware import CallRecord, CallTelemetry, encode_arguments
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.servers import DEMO_INFO, OPEN_ACCESS

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("add", {"a": 2, "b": 3}),
    ("add", {"a": "two", "b": 3}),
    ("stats", {"values": [1.0, 2.0, 4.0]}),
    ("stats", {"values": []}),
    ("missing_tool", {}),
]

DELEGATED = AccessPolicy(business_groups=("ads",), delegating_workloads=("spiffe://corp.example/ns/chat/*",))


class Stats(BaseModel):
    count: int
    mean: float | None


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def stats(values: list[float]) -> Stats:
    """Summarise numbers."""
    return Stats(count=len(values), mean=sum(values) / len(values) if values else None)


def kit_server(tmp_path: Path, **telemetry: Any) -> FleetServer:
    settings = FleetdeckSettings.load(data_dir=tmp_path, telemetry={"flush_interval_s": 0.01, **telemetry})
    server = FleetServer(DEMO_INFO, settings, access=OPEN_ACCESS)
    for fn in (add, stats):
        server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)(fn)
    return server


def bare_server() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="demo")
    server.add_tool(add)
    server.add_tool(stats)
    return server


async def results(server: Any) -> list[tuple[Any, Any, Any]]:
    async with Client(server) as client:
        out = []
        for name, args in CALLS:
            result = await client.call_tool(name, args)
            out.append((result.is_error, result.structured_content, [c.model_dump() for c in result.content]))
        return out


async def test_the_kit_returns_exactly_what_the_bare_sdk_returns(tmp_path: Path) -> None:
    server = kit_server(tmp_path)
    async with server.running():
        assert await results(server.mcp) == await results(bare_server())


async def test_a_broken_store_changes_no_result_and_loses_no_event(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    server = kit_server(tmp_path, url=f"sqlite:///{blocker}/telemetry.db")
    async with server.running():
        assert await results(server.mcp) == await results(bare_server())
    assert server.metrics.events_spooled._value.get() == len(CALLS)


async def test_one_event_per_call_with_its_outcome_and_none_for_listing(tmp_path: Path) -> None:
    server = kit_server(tmp_path)
    async with server.running():
        async with Client(server.mcp) as client:
            await client.list_tools()
            for name, args in CALLS:
                await client.call_tool(name, args)
        assert server._writer is not None
        assert server._writer.flush(timeout=10)
    events = sorted(EventStore(server.settings.telemetry_url()).events(), key=lambda e: e.ts)
    assert [(e.tool, e.outcome) for e in events] == [
        ("add", Outcome.OK),
        ("add", Outcome.INVALID_INPUT),
        ("stats", Outcome.OK),
        ("stats", Outcome.OK),
        ("<unknown>", Outcome.INVALID_INPUT),
    ]
    assert {e.client_name for e in events} == {"mcp"}  # the SDK client's default name
    assert {e.server for e in events} == {"demo"}
    assert events[0].minutes_saved == 2.0
    assert events[-1].minutes_saved == 0.0


def test_user_ids_are_pseudonymised_with_a_key() -> None:
    alice = pseudonymise("alice", b"k1")
    assert alice == pseudonymise("alice", b"k1")
    assert alice != pseudonymise("alice", b"k2")
    assert alice is not None
    assert "alice" not in alice
    assert pseudonymise(None, b"k1") is None


@pytest.mark.parametrize("era", ["auto", "legacy"])
async def test_protocol_version_is_recorded_per_era(tmp_path: Path, era: str) -> None:
    server = kit_server(tmp_path)
    async with server.running():
        async with Client(server.mcp, mode=era) as client:
            await client.call_tool("add", {"a": 1, "b": 1})
        assert server._writer is not None
        assert server._writer.flush(timeout=10)
    (event,) = EventStore(server.settings.telemetry_url()).events()
    assert event.protocol_version == ("2026-07-28" if era == "auto" else "2025-11-25")


async def test_events_carry_the_pseudonymous_user_and_the_workload(tmp_path: Path) -> None:
    principal = Principal(
        user=User("alice", "https://idp.example", "bearer-jwt", groups=frozenset({"ads"})),
        workload=Workload("spiffe://corp.example/ns/chat/bot", "xfcc"),
    )
    settings = FleetdeckSettings.load(data_dir=tmp_path, telemetry={"flush_interval_s": 0.01})
    server = FleetServer(DEMO_INFO, settings, access=DELEGATED, identity=StaticIdentity(principal))
    server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)(add)
    async with server.running():
        async with Client(server.mcp) as client:
            await client.call_tool("add", {"a": 1, "b": 2})
        assert server._writer is not None
        assert server._writer.flush(timeout=10)
    (event,) = EventStore(settings.telemetry_url()).events()
    assert event.outcome == Outcome.OK
    assert event.user_hash == pseudonymise("alice", settings.pseudonym_key())
    assert event.workload == "spiffe://corp.example/ns/chat/bot"


def test_arguments_encode_to_the_same_bytes_whatever_their_order_and_lossless() -> None:
    assert encode_arguments({"b": [1, "é"], "a": {"y": 1, "x": 2}}) == encode_arguments(
        {"a": {"x": 2, "y": 1}, "b": [1, "é"]}
    )
    # the fast encoder writes NaN and infinities as null: they must not look like null (or each other)
    values = [None, float("nan"), float("inf"), float("-inf"), 2**70, "null"]
    encoded = [encode_arguments({"x": value}) for value in values]
    assert len(set(encoded)) == len(values)
    assert encode_arguments({"x": 2**70}) == b'{"x":1180591620717411303424}'


def test_opentelemetry_metrics_count_calls_when_a_meter_is_given() -> None:
    reader = InMemoryMetricReader()
    events: list[EventRecipe] = []
    telemetry = CallTelemetry(
        server="demo",
        team="data",
        metrics=Metrics(),
        sink=events.append,
        pseudonym_key=lambda: b"k",
        meter=MeterProvider(metric_readers=[reader]).get_meter("test"),
    )
    ctx: Any = SimpleNamespace(session=None, protocol_version="2026-07-28")
    for outcome in (Outcome.OK, Outcome.OK, Outcome.DENIED):
        telemetry.emit(ctx, None, CallRecord(next_sequence(), time.time(), None, ANONYMOUS), outcome, 0.01)

    data = reader.get_metrics_data()
    assert data is not None
    points = {
        (metric.name, point.attributes["fleetdeck.outcome"] if point.attributes else None): point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }
    assert getattr(points["fleetdeck.tool.calls", "ok"], "value", None) == 2
    assert getattr(points["fleetdeck.tool.calls", "denied"], "value", None) == 1
    assert getattr(points["fleetdeck.tool.duration", "ok"], "count", None) == 2
    built = [event if isinstance(event, InvocationEvent) else event() for event in events]
    assert [(e.tool, e.outcome) for e in built] == [("<unknown>", o) for o in ("ok", "ok", "denied")]

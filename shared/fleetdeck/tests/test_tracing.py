"""Each tool call is a span, and its invocation event carries that span's trace id."""

from __future__ import annotations

from pathlib import Path

from mcp import Client
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.servers import DEMO_INFO, OPEN_ACCESS

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)


async def test_the_event_carries_the_trace_id_of_the_tool_call_span(tmp_path: Path) -> None:
    settings = FleetdeckSettings.load(data_dir=tmp_path, telemetry={"flush_interval_s": 0.01})
    server = FleetServer(DEMO_INFO, settings, access=OPEN_ACCESS)

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def ping() -> str:
        """Answer pong."""
        return "pong"

    async with server.running():
        async with Client(server.mcp) as client:
            await client.call_tool("ping", {})
        assert server._writer is not None
        assert server._writer.flush(timeout=10)
    (event,) = EventStore(server.settings.telemetry_url()).events()
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == "tools/call ping"]
    assert len(spans) == 1
    assert event.trace_id == format(spans[0].context.trace_id, "032x")

"""Prometheus metrics of one server process: tool calls, durations and the telemetry pipeline."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The metric families a server exposes on ``/metrics`` (one registry per server object)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.tool_calls = Counter(
            "fleetdeck_tool_calls",
            "Tool calls by server, tool and outcome.",
            ["server", "tool", "outcome"],
            registry=self.registry,
        )
        self.tool_duration = Histogram(
            "fleetdeck_tool_duration_seconds",
            "Tool call duration in seconds.",
            ["server", "tool"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "fleetdeck_telemetry_queue_depth",
            "Invocation events waiting in memory for the writer.",
            registry=self.registry,
        )
        self.events_written = Counter(
            "fleetdeck_telemetry_events_written",
            "Invocation events committed to the store.",
            registry=self.registry,
        )
        self.events_spooled = Counter(
            "fleetdeck_telemetry_events_spooled",
            "Invocation events written to the disk spool because the store failed.",
            registry=self.registry,
        )
        self.events_replayed = Counter(
            "fleetdeck_telemetry_events_replayed",
            "Spooled invocation events later committed to the store.",
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "fleetdeck_telemetry_events_dropped",
            "Invocation events lost, by reason: queue_full, spool_failed, spool_corrupt, closed, "
            "not_running.",
            ["reason"],
            registry=self.registry,
        )

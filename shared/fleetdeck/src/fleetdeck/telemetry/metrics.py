"""Prometheus metrics of one server process: tool calls, durations and the telemetry pipeline."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BUCKET_LABELS = (*(str(float(bound)) for bound in DURATION_BUCKETS), "+Inf")  # le="1.0", as prometheus


class ToolCallMetrics(Collector):
    """``fleetdeck_tool_calls_total`` and ``fleetdeck_tool_duration_seconds``, tallied in plain dicts.

    A call costs two dict updates and a bisect, not the locked metric children of
    ``prometheus_client`` (~20 function calls per call). Update it from the event loop's thread
    only (the kit's gate does); ``/metrics`` reads it there too.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        """Calls by (server, tool, outcome)."""
        self._durations: dict[tuple[str, str], list[float]] = {}  # per bucket, then +Inf, then the sum

    def observe(self, server: str, tool: str, outcome: str, duration_s: float) -> None:
        """Count one finished call and its duration."""
        key = (server, tool, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        tally = self._durations.get((server, tool))
        if tally is None:
            tally = self._durations[(server, tool)] = [0.0] * (len(DURATION_BUCKETS) + 2)
        tally[bisect_left(DURATION_BUCKETS, duration_s)] += 1
        tally[-1] += duration_s

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "fleetdeck_tool_calls",
            "Tool calls by server, tool and outcome.",
            labels=["server", "tool", "outcome"],
        )
        for (server, tool, outcome), count in sorted(self.counts.items()):
            calls.add_metric([server, tool, outcome], count)
        yield calls
        durations = HistogramMetricFamily(
            "fleetdeck_tool_duration_seconds", "Tool call duration in seconds.", labels=["server", "tool"]
        )
        for (server, tool), tally in sorted(self._durations.items()):
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip(_BUCKET_LABELS, tally[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            durations.add_metric([server, tool], buckets, sum_value=tally[-1])
        yield durations


class Metrics:
    """The metric families a server exposes on ``/metrics`` (one registry per server object)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.tool_calls = ToolCallMetrics()
        self.registry.register(self.tool_calls)
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
            "not_running, build_failed.",
            ["reason"],
            registry=self.registry,
        )

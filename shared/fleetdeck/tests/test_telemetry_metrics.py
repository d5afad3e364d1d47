"""The tool-call metrics the kit tallies itself read exactly as prometheus_client's own would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from fleetdeck.telemetry.metrics import DURATION_BUCKETS, Metrics

DURATIONS = (0.0, 0.0005, 0.001, 0.0011, 0.003, 0.25, 1.0, 2.0, 119.9, 120.0, 121.0, 3600.0)


def _samples(registry: CollectorRegistry, prefix: str) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if line.startswith(prefix) and "_created" not in line]


def test_tool_metrics_expose_what_prometheus_client_would() -> None:
    reference = CollectorRegistry()
    calls = Counter("fleetdeck_tool_calls", "c", ["server", "tool", "outcome"], registry=reference)
    name = "fleetdeck_tool_duration_seconds"
    durations = Histogram(name, "d", ["server", "tool"], buckets=DURATION_BUCKETS, registry=reference)
    metrics = Metrics()
    for index, duration in enumerate(DURATIONS):
        tool, outcome = ("query", "ok") if index % 3 else ("list", "denied")
        calls.labels("presto", tool, outcome).inc()
        durations.labels("presto", tool).observe(duration)
        metrics.tool_calls.observe("presto", tool, outcome, duration)

    for family in ("fleetdeck_tool_calls_total{", "fleetdeck_tool_duration_seconds_"):
        assert _samples(metrics.registry, family) == _samples(reference, family)
    assert metrics.tool_calls.counts == {("presto", "list", "denied"): 4, ("presto", "query", "ok"): 8}


def test_tool_metrics_are_empty_before_any_call() -> None:
    body = generate_latest(Metrics().registry).decode()
    assert "# TYPE fleetdeck_tool_calls_total counter" in body
    assert "fleetdeck_tool_calls_total{" not in body
    assert "fleetdeck_tool_duration_seconds_bucket{" not in body

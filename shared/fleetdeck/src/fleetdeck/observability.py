"""Configure the OpenTelemetry SDK at an entry point (library code only uses the API)."""

from __future__ import annotations

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from fleetdeck.settings import FleetdeckSettings


def configure_observability(settings: FleetdeckSettings, service: str) -> None:
    """Install the tracer provider, and OTLP/HTTP export of spans and metrics when an endpoint is set.

    A tracer provider is always installed so every invocation event carries a real trace id. A meter
    provider only with an endpoint: without one its measurements would go nowhere (the kit's call
    counts are on ``/metrics``), and the kit feeds OpenTelemetry metrics only then.
    """
    resource = Resource.create({"service.name": f"fleetdeck-{service}", "service.namespace": "fleetdeck"})
    tracer_provider = TracerProvider(resource=resource)
    endpoint = settings.telemetry.otlp_endpoint
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = endpoint.rstrip("/")
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    trace.set_tracer_provider(tracer_provider)

"""Telemetry: invocation events, the store, the background writer, metrics and ROI."""

"""A demo server identity for tests and benchmarks of the shared library."""

from __future__ import annotations

from fleetdeck.tool import ServerInfo

DEMO_INFO = ServerInfo(
    name="demo",
    registry_name="io.fleetdeck/demo",
    title="Demo",
    description="A demonstration server.",
    version="1.0.0",
    owner_team="platform",
    support_channel="#platform",
    docs_url="https://docs.example.com/demo",
    data_classification="internal",
)

"""A demo server identity and access policies for tests and benchmarks of the shared library."""

from __future__ import annotations

from fleetdeck.auth.policy import AccessPolicy
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

OPEN_ACCESS = AccessPolicy(business_groups=("*",))
"""Every verified user may use the server (tests of things other than access)."""

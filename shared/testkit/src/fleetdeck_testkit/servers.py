"""A demo server identity and access policies for tests and benchmarks of the shared library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.auth.principal import current_principal
from fleetdeck.tool import ServerInfo

if TYPE_CHECKING:
    from fleetdeck.server import FleetServer

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


def add_whoami(server: FleetServer) -> None:
    """Give ``server`` a read-only ``whoami`` tool: which workload called, and how it was proven."""

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def whoami() -> str:
        """Say which workload called, and how it was proven."""
        workload = current_principal.get().workload
        return f"{workload.spiffe_id} by {workload.proven_by}" if workload else "no workload"

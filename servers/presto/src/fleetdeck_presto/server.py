"""Assemble the Presto/Trino server from its settings and backend (no I/O here)."""

from __future__ import annotations

from fleetdeck.auth.identity import IdentityResolver
from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.tool import ServerInfo
from fleetdeck_presto.backend import WarehouseBackend
from fleetdeck_presto.tools import catalogs

INFO = ServerInfo(
    name="presto",
    registry_name="io.fleetdeck/presto",
    title="Presto / Trino",
    description="Query the data warehouse read-only, as yourself: browse catalogs and schemas.",
    version="0.1.0",
    owner_team="data-infra",
    support_channel="#data-infra-help",
    docs_url="https://github.com/fleetdeck/fleetdeck/tree/main/servers/presto",
    data_classification="confidential",
    lifecycle="beta",
    instructions="Browse with list_catalogs then list_schemas before writing SQL.",
    tags=("sql", "warehouse", "trino", "presto"),
)


def build_server(
    settings: FleetdeckSettings,
    access: AccessPolicy,
    backend: WarehouseBackend,
    identity: IdentityResolver | None = None,
) -> FleetServer:
    """The Presto server over ``backend``, open to the business groups of ``access``."""
    server = FleetServer(INFO, settings, access=access, identity=identity, readiness=backend.check)
    catalogs.register(server, backend)
    return server

"""Assemble the Presto/Trino server from its settings and backend (no I/O here)."""

from __future__ import annotations

from fleetdeck.auth.identity import IdentityResolver
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.tool import ServerInfo
from fleetdeck_presto.backend import WarehouseBackend
from fleetdeck_presto.queries import QueryTracker
from fleetdeck_presto.settings import PrestoSettings
from fleetdeck_presto.tools import catalogs, queries
from fleetdeck_presto.tools.runtime import ToolRuntime

INFO = ServerInfo(
    name="presto",
    registry_name="io.fleetdeck/presto",
    title="Presto / Trino",
    description="Query the data warehouse read-only, as yourself: browse tables, run and explain SQL.",
    version="0.2.0",
    owner_team="data-infra",
    support_channel="#data-infra-help",
    docs_url="https://github.com/fleetdeck/fleetdeck/tree/main/servers/presto",
    data_classification="confidential",
    lifecycle="beta",
    instructions="Browse with list_catalogs, list_schemas, list_tables and describe_table before writing SQL;"
    " "
    "run_query accepts one read-only Trino statement and returns at most the row and byte caps.",
    tags=("sql", "warehouse", "trino", "presto"),
)


def build_server(
    settings: FleetdeckSettings,
    presto: PrestoSettings,
    backend: WarehouseBackend,
    identity: IdentityResolver | None = None,
) -> FleetServer:
    """The Presto server over ``backend``, open to the business groups of ``presto.access``."""
    server = FleetServer(INFO, settings, access=presto.access, identity=identity, readiness=backend.check)
    runtime = ToolRuntime(presto, backend, QueryTracker())
    catalogs.register(server, runtime)
    queries.register(server, runtime)
    return server

"""Assemble the Spark server from its settings, source and RCA store (no I/O here)."""

from __future__ import annotations

from fleetdeck.auth.identity import IdentityResolver
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.tool import ServerInfo
from fleetdeck_spark.rca_store import RcaStore
from fleetdeck_spark.settings import SparkSettings
from fleetdeck_spark.source import SparkSource
from fleetdeck_spark.tools import applications, diagnosis

INFO = ServerInfo(
    name="spark",
    registry_name="io.fleetdeck/spark",
    title="Spark",
    description="Diagnose failed and slow Spark applications and record structured root-cause analyses.",
    version="0.1.0",
    owner_team="data-infra",
    support_channel="#data-infra-help",
    docs_url="https://github.com/fleetdeck/fleetdeck/tree/main/servers/spark",
    data_classification="internal",
    lifecycle="beta",
    instructions="Find the application with list_applications, then diagnose_application; get_stage for "
    "skew details; record_rca once the cause is confirmed.",
    tags=("spark", "rca", "diagnosis", "history-server"),
)


def build_server(
    settings: FleetdeckSettings,
    spark: SparkSettings,
    source: SparkSource,
    store: RcaStore,
    identity: IdentityResolver | None = None,
) -> FleetServer:
    """The Spark server over ``source``, storing RCAs in ``store``."""
    server = FleetServer(INFO, settings, access=spark.access, identity=identity, readiness=source.check)
    applications.register(server, source, spark.surfaces)
    diagnosis.register(server, source, store, spark.surfaces)
    return server

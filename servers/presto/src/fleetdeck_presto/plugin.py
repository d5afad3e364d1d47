"""The ``fleetdeck.servers`` entry point of the Presto server."""

from __future__ import annotations

from pathlib import Path

from fleetdeck.plugins import ServerPlugin
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_presto.backend import DuckDBBackend
from fleetdeck_presto.server import build_server
from fleetdeck_presto.settings import PrestoSettings

DEFAULT_PORT = 8101


def build(config_file: Path | None = None, *, settings: FleetdeckSettings | None = None) -> FleetServer:
    """Build the server from configuration; the warehouse is opened on first use."""
    settings = settings or FleetdeckSettings.load(config_file)
    presto = PrestoSettings.load(config_file)
    path = presto.duckdb_path or settings.data_dir / "warehouse.duckdb"
    return build_server(settings, presto.access, DuckDBBackend(path))


async def available(config_file: Path | None = None) -> str | None:
    """The embedded DuckDB backend runs wherever the package is installed."""
    PrestoSettings.load(config_file)
    return None


plugin = ServerPlugin(name="presto", build=build, available=available, default_port=DEFAULT_PORT)

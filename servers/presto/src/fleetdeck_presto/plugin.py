"""The ``fleetdeck.servers`` entry point of the Presto server."""

from __future__ import annotations

from pathlib import Path

from fleetdeck.plugins import ServerPlugin
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_presto.backend import WarehouseBackend
from fleetdeck_presto.server import build_server
from fleetdeck_presto.settings import PrestoSettings

DEFAULT_PORT = 8101


def make_backend(settings: FleetdeckSettings, presto: PrestoSettings) -> WarehouseBackend:
    """The backend ``presto.backend`` names; nothing is opened or contacted here."""
    if presto.backend == "trino":
        from fleetdeck_presto.trino_backend import TrinoBackend

        return TrinoBackend(presto.trino)
    from fleetdeck_presto.duckdb_backend import DuckDBBackend

    return DuckDBBackend(presto.duckdb_path or settings.data_dir / "warehouse.duckdb")


def build(config_file: Path | None = None, *, settings: FleetdeckSettings | None = None) -> FleetServer:
    """Build the server from configuration; the warehouse is opened on first use."""
    settings = settings or FleetdeckSettings.load(config_file)
    presto = PrestoSettings.load(config_file)
    return build_server(settings, presto, make_backend(settings, presto))


async def available(config_file: Path | None = None) -> str | None:
    """DuckDB runs wherever the package is installed; Trino must answer its readiness check."""
    presto = PrestoSettings.load(config_file)
    if presto.backend == "duckdb":
        return None
    from fleetdeck.errors import FleetdeckError

    try:
        await make_backend(FleetdeckSettings.load(config_file), presto).check()
    except FleetdeckError as exc:
        return f"Trino at {presto.trino.host}:{presto.trino.port} is not available: {exc}"
    return None


plugin = ServerPlugin(name="presto", build=build, available=available, default_port=DEFAULT_PORT)

"""The ``fleetdeck.servers`` entry point of the registry (``fleetdeck serve registry``)."""

from __future__ import annotations

from pathlib import Path

from fleetdeck.plugins import ServerPlugin
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_registry.server import build_registry
from fleetdeck_registry.settings import RegistrySettings

DEFAULT_PORT = 8099


def build(config_file: Path | None = None, *, settings: FleetdeckSettings | None = None) -> FleetServer:
    """Build the registry from configuration; the manifest folder is read when it starts serving."""
    settings = settings or FleetdeckSettings.load(config_file)
    return build_registry(settings, RegistrySettings.load(config_file))


async def available(config_file: Path | None = None) -> str | None:
    """The registry needs nothing but its manifest folder, which it reports on when it is missing."""
    RegistrySettings.load(config_file)
    return None


plugin = ServerPlugin(name="registry", build=build, available=available, default_port=DEFAULT_PORT)

"""Server discovery: every installed distribution that declares a ``fleetdeck.servers`` entry point.

A server package declares, in its ``pyproject.toml``::

    [project.entry-points."fleetdeck.servers"]
    presto = "fleetdeck_presto.plugin:plugin"

and the entry point names a :class:`ServerPlugin`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fleetdeck.errors import ConfigError
from fleetdeck.settings import FleetdeckSettings

if TYPE_CHECKING:  # the CLI stays fast for commands that run no server
    from fleetdeck.server import FleetServer

GROUP = "fleetdeck.servers"


class ServerBuilder(Protocol):
    """Builds a server from a configuration file; ``settings`` overrides the shared settings."""

    def __call__(
        self, config_file: Path | None = None, *, settings: FleetdeckSettings | None = None
    ) -> FleetServer:
        """Build the server; must do no I/O (backends connect on first use)."""


@dataclass(frozen=True, slots=True)
class ServerPlugin:
    """How the CLI builds a server and learns whether its backend can run here."""

    name: str
    build: ServerBuilder
    available: Callable[[Path | None], Awaitable[str | None]]
    """``None`` when the configured backend can run, else the reason it cannot."""
    default_port: int


def discover() -> dict[str, ServerPlugin]:
    """Every installed server plugin, by name."""
    plugins: dict[str, ServerPlugin] = {}
    for entry in entry_points(group=GROUP):
        plugin = entry.load()
        if not isinstance(plugin, ServerPlugin) or plugin.name != entry.name:
            raise ConfigError(
                f"entry point {entry.name!r} in {GROUP} must name a ServerPlugin called {entry.name!r}"
            )
        plugins[entry.name] = plugin
    return dict(sorted(plugins.items()))


def get(name: str) -> ServerPlugin:
    """The plugin called ``name``, or a :class:`ConfigError` listing the installed ones."""
    plugins = discover()
    if name not in plugins:
        raise ConfigError(
            f"no server called {name!r} is installed; installed: {', '.join(plugins) or 'none'}"
        )
    return plugins[name]

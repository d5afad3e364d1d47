"""``fleetdeck up``: a development issuer and every installed server whose backend is available.

Everything runs as child processes of this one: first the local development issuer
(``fleetdeck dev issuer``, see :mod:`fleetdeck.auth.dev_issuer`), then each server with
``FLEETDECK_AUTH__ISSUER`` / ``FLEETDECK_AUTH__JWKS_URL`` pointing at it, so every server requires a
bearer token exactly as a deployment does, and last the registry (when installed): after the
servers, so its first probe finds them up, with a probe token of its own and the URLs the servers
really listen on. Once all are healthy it prints a loud banner, the URLs (the registry's web UI too),
a development token for one user (its audience lists every started server) and the MCP client
configuration carrying that token. Ctrl-C (or SIGTERM) stops every child, servers and issuer alike.
Refused in a production configuration.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

import anyio
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from fleetdeck import plugins
from fleetdeck.errors import ConfigError
from fleetdeck.settings import FleetdeckSettings

if TYPE_CHECKING:  # PyJWT and cryptography load only when the fleet starts
    from fleetdeck.auth.dev_issuer import DevIssuer

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
DEV_ISSUER_PORT: Final = 8100
"""Default port of the development issuer (``fleetdeck.auth.dev_issuer.DEFAULT_PORT``)."""
console = Console()
REGISTRY: Final = "registry"
"""The registry plugin: started after the servers, so it can probe them."""


@dataclass(frozen=True)
class DevIdentity:
    """Who the printed development token is for; ``None`` = the ``dev`` settings (or the OS user)."""

    user: str | None = None
    groups: list[str] | None = None
    roles: list[str] | None = None
    issuer_port: int = DEV_ISSUER_PORT


@dataclass
class Member:
    """One running child of the local fleet: a server (``url`` ends in ``/mcp``) or the issuer."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    health: str = ""

    def __post_init__(self) -> None:
        self.health = self.health or self.url.removesuffix("/mcp") + "/healthz"


def _wait_healthy(member: Member, deadline: float, accept: Callable[[bytes], bool] | None = None) -> bool:
    """Whether ``member`` answered its health URL (with a body ``accept`` approves) before ``deadline``."""
    while time.monotonic() < deadline:
        if member.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(member.health, timeout=1) as response:  # noqa: S310 - our own URL
                if response.status == 200 and (accept is None or accept(response.read())):
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def _stop(members: list[Member]) -> None:
    for member in members:
        if member.process.poll() is None:
            member.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for member in members:
        try:
            member.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            member.process.kill()
            member.process.wait()


def client_config(members: list[Member], token: str | None = None) -> dict[str, object]:
    """The MCP client configuration (``mcpServers``) for the running fleet, with the token if any."""
    servers: dict[str, object] = {}
    for m in members:
        entry: dict[str, object] = {"type": "http", "url": m.url}
        if token is not None:
            entry["headers"] = {"Authorization": f"Bearer {token}"}
        servers[m.name] = entry
    return {"mcpServers": servers}


def _fleetdeck(*args: str, config: Path | None) -> list[str]:
    command = [sys.executable, "-m", "fleetdeck", *args]
    return [*command, "--config", str(config)] if config is not None else command


def _issuer_is(kid: str) -> Callable[[bytes], bool]:
    """Accepts the issuer's health answer only if it serves our key (not another fleet's issuer)."""

    def accept(body: bytes) -> bool:
        try:
            return bool(json.loads(body).get("kid") == kid)
        except (ValueError, AttributeError):
            return False

    return accept


def _port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (probed as uvicorn binds: SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def run_fleet(config: Path | None, host: str, only: list[str], identity: DevIdentity | None = None) -> int:
    """Start the fleet, print where it is, and block until Ctrl-C or a member dies."""
    identity = identity or DevIdentity()
    settings = FleetdeckSettings.load(config)
    if settings.environment == "production":
        raise ConfigError(
            "`fleetdeck up` runs a development fleet with a development issuer and is refused in a "
            "production configuration (setting environment, env FLEETDECK_ENVIRONMENT, is 'production')"
        )
    from fleetdeck.auth.dev_issuer import DevIssuer

    issuer = DevIssuer(settings, port=identity.issuer_port)
    installed = plugins.discover()
    unknown = sorted(set(only) - set(installed))
    if unknown:
        console.print(f"[red]not installed:[/] {', '.join(unknown)}; installed: {', '.join(installed)}")
        return 2

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (nohup, &)
        signal.signal(signum, interrupted)
    children: list[Member] = []
    try:
        chosen = _available(installed, only, config)
        registry = next((plugin for plugin in chosen if plugin.name == REGISTRY), None)
        chosen = [plugin for plugin in chosen if plugin.name != REGISTRY]
        if not chosen and registry is None:
            console.print("[red]fleet did not start:[/] no server is available")
            return 1
        started = [*chosen, *([registry] if registry is not None else [])]
        ports = [("127.0.0.1", issuer.port), *((host, plugin.default_port) for plugin in started)]
        busy = [f"{where}:{port}" for where, port in ports if _port_in_use(where, port)]
        if busy:
            console.print(f"[red]fleet did not start:[/] already in use (another fleet?): {', '.join(busy)}")
            return 1
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        command = _fleetdeck("dev", "issuer", "--port", str(issuer.port), config=config)
        issuer_process = subprocess.Popen(command)  # noqa: S603 - our own interpreter and arguments
        children.append(Member("dev-issuer", issuer.issuer, issuer_process, f"{issuer.issuer}/healthz"))
        if not _wait_healthy(children[0], deadline, _issuer_is(issuer.kid)):
            console.print(f"[red]fleet did not start:[/] the development issuer on port {issuer.port}")
            return 1
        env = {
            **os.environ,
            "FLEETDECK_AUTH__ISSUER": issuer.issuer,
            "FLEETDECK_AUTH__JWKS_URL": issuer.jwks_url,
        }
        members: list[Member] = []
        for plugin in chosen:
            port = str(plugin.default_port)
            command = _fleetdeck("serve", plugin.name, "--host", host, "--port", port, config=config)
            process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and arguments
            members.append(Member(plugin.name, f"http://{host}:{port}/mcp", process))
            children.append(members[-1])
        failed = [m.name for m in members if not _wait_healthy(m, deadline)]
        if failed:
            console.print(f"[red]fleet did not start:[/] {', '.join(failed)}")
            return 1
        if registry is not None:  # after the servers, so its first probe finds them up
            member = _start_registry(registry, members, env, host, config, settings, issuer)
            children.append(member)
            if not _wait_healthy(member, time.monotonic() + STARTUP_TIMEOUT_S):  # its own start window
                console.print("[red]fleet did not start:[/] registry")
                return 1
            members.append(member)
        _announce(members, settings, issuer, identity)
        while all(m.process.poll() is None for m in children):
            time.sleep(0.5)
        dead = [m.name for m in children if m.process.poll() is not None]
        console.print(f"[red]stopped unexpectedly:[/] {', '.join(dead)}; stopping the fleet")
        return 1
    except KeyboardInterrupt:
        console.print("\nstopping the fleet …")
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a repeated Ctrl-C (uv forwards one) must not
            signal.signal(signum, signal.SIG_IGN)  # cut the clean stop short
        _stop(children)
        console.print("fleet stopped")


def _start_registry(
    plugin: plugins.ServerPlugin,
    servers: list[Member],
    env: dict[str, str],
    host: str,
    config: Path | None,
    settings: FleetdeckSettings,
    issuer: DevIssuer,
) -> Member:
    """Start the registry with a probe token of its own and the URLs the servers really listen on."""
    port = str(plugin.default_port)
    url = f"http://{host}:{port}/mcp"
    endpoints = {**{m.name: m.url for m in servers}, plugin.name: url}  # it lists (and probes) itself too
    groups, roles = list(settings.dev.groups), list(settings.dev.roles)
    probe_token = issuer.mint("fleetdeck-registry", groups, roles, list(endpoints.values()))
    registry_env = {
        **env,
        "FLEETDECK_REGISTRY__PROBE_TOKEN": probe_token,
        "FLEETDECK_REGISTRY__ENDPOINTS": json.dumps(endpoints),
    }
    command = _fleetdeck("serve", plugin.name, "--host", host, "--port", port, config=config)
    process = subprocess.Popen(command, env=registry_env)  # noqa: S603 - our own interpreter and arguments
    return Member(plugin.name, url, process)


def _available(
    installed: dict[str, plugins.ServerPlugin], only: list[str], config: Path | None
) -> list[plugins.ServerPlugin]:
    """The servers to start: the ``only`` ones (or all) whose backend can run here."""
    chosen: list[plugins.ServerPlugin] = []
    for name, plugin in installed.items():
        if only and name not in only:
            continue
        reason = anyio.run(plugin.available, config)
        if reason is not None:
            console.print(f"[yellow]skipping {name}:[/] {reason}")
            continue
        chosen.append(plugin)
    return chosen


def _announce(
    members: list[Member], settings: FleetdeckSettings, issuer: DevIssuer, who: DevIdentity
) -> None:
    user = who.user or settings.dev.user or getpass.getuser()
    groups = who.groups if who.groups is not None else list(settings.dev.groups)
    roles = who.roles if who.roles is not None else list(settings.dev.roles)
    token = issuer.mint(user, groups, roles, [m.url for m in members])
    console.print(
        Panel(
            f"Every server below requires a bearer token from the local development issuer "
            f"{issuer.issuer}.\nIts tokens prove nothing about anyone: development on this machine only, "
            "never a production configuration.",
            title="DEVELOPMENT IDENTITY — not for production",
            style="bold red",
        )
    )
    table = Table(title="Fleetdeck local fleet")
    for column in ("server", "MCP endpoint", "health", "metrics"):
        table.add_column(column, overflow="fold")
    for m in members:
        base = m.url.removesuffix("/mcp")
        table.add_row(m.name, m.url, f"{base}/healthz", f"{base}/metrics")
    # a terminal gets a table that fits; a log or pipe one where every URL stays whole
    (console if console.is_terminal else Console(width=max(console.width, 160))).print(table)
    for m in members:
        if m.name == REGISTRY:
            base = m.url.removesuffix("/mcp")
            console.print(f"registry UI: {base}/   API: {base}/v0.1/servers   OpenAPI: {base}/openapi.json",
                          soft_wrap=True)  # fmt: skip
    console.print(f"development issuer: {issuer.issuer}   JWKS: {issuer.jwks_url}", soft_wrap=True)
    console.print(f"telemetry: {settings.telemetry_url()}   report: fleetdeck report", soft_wrap=True)
    console.print(
        f"development token for {user} (groups: {', '.join(groups) or '-'}; "
        f"roles: {', '.join(roles) or '-'}), valid 8 h, for every server above "
        "— more with `fleetdeck dev token --user U --groups a,b`:",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    console.print(token, soft_wrap=True, markup=False, highlight=False)
    console.print("MCP client configuration to paste:")
    console.print(
        json.dumps(client_config(members, token), indent=2), soft_wrap=True, markup=False, highlight=False
    )
    console.print("Press Ctrl-C to stop.")

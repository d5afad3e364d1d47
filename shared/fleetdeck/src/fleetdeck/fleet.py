"""``fleetdeck up``: run every installed server whose backend is available, as child processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import anyio
from rich.console import Console
from rich.table import Table

from fleetdeck import plugins
from fleetdeck.settings import FleetdeckSettings

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
console = Console()


@dataclass
class Member:
    """One running server of the local fleet."""

    name: str
    url: str
    process: subprocess.Popen[bytes]


def _wait_healthy(member: Member, deadline: float) -> bool:
    health = member.url.removesuffix("/mcp") + "/healthz"
    while time.monotonic() < deadline:
        if member.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(health, timeout=1) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
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


def client_config(members: list[Member]) -> dict[str, object]:
    """The MCP client configuration (``mcpServers``) for the running fleet."""
    return {"mcpServers": {m.name: {"type": "http", "url": m.url} for m in members}}


def run_fleet(config: Path | None, host: str, only: list[str]) -> int:
    """Start the fleet, print where it is, and block until Ctrl-C or a member dies."""
    settings = FleetdeckSettings.load(config)
    installed = plugins.discover()
    unknown = sorted(set(only) - set(installed))
    if unknown:
        console.print(f"[red]not installed:[/] {', '.join(unknown)}; installed: {', '.join(installed)}")
        return 2
    members: list[Member] = []
    for name, plugin in installed.items():
        if only and name not in only:
            continue
        reason = anyio.run(plugin.available, config)
        if reason is not None:
            console.print(f"[yellow]skipping {name}:[/] {reason}")
            continue
        command = [
            sys.executable,
            "-m",
            "fleetdeck",
            "serve",
            name,
            "--host",
            host,
            "--port",
            str(plugin.default_port),
        ]
        if config is not None:
            command += ["--config", str(config)]
        process = subprocess.Popen(command)  # noqa: S603 - our own interpreter and arguments
        members.append(Member(name, f"http://{host}:{plugin.default_port}/mcp", process))

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (nohup, &)
        signal.signal(signum, interrupted)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        failed = [m.name for m in members if not _wait_healthy(m, deadline)]
        if failed or not members:
            console.print(f"[red]fleet did not start:[/] {', '.join(failed) or 'no server is available'}")
            return 1
        _announce(members, settings)
        while all(m.process.poll() is None for m in members):
            time.sleep(0.5)
        dead = [m.name for m in members if m.process.poll() is not None]
        console.print(f"[red]stopped unexpectedly:[/] {', '.join(dead)}; stopping the fleet")
        return 1
    except KeyboardInterrupt:
        console.print("\nstopping the fleet …")
        return 0
    finally:
        _stop(members)
        console.print("fleet stopped")


def _announce(members: list[Member], settings: FleetdeckSettings) -> None:
    table = Table(title="Fleetdeck local fleet")
    for column in ("server", "MCP endpoint", "health", "metrics"):
        table.add_column(column)
    for m in members:
        base = m.url.removesuffix("/mcp")
        table.add_row(m.name, m.url, f"{base}/healthz", f"{base}/metrics")
    console.print(table)
    console.print(f"telemetry: {settings.telemetry_url()}   report: fleetdeck report")
    console.print("MCP client configuration to paste:")
    console.print_json(json.dumps(client_config(members)))
    console.print("Press Ctrl-C to stop.")

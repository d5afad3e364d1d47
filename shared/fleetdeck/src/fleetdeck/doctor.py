"""``fleetdeck doctor``: check configuration, the telemetry store and every server's backend."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from rich.console import Console
from rich.table import Table

from fleetdeck import plugins
from fleetdeck.errors import FleetdeckError
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.store import EventStore

console = Console()


def _check_store(settings: FleetdeckSettings) -> str:
    store = EventStore(settings.telemetry_url())
    try:
        store.create()
        return f"{store.count()} events"
    finally:
        store.dispose()


def _check_spool(settings: FleetdeckSettings) -> str:
    spool = settings.spool_dir()
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool):
        pass
    return f"writable: {spool}"


async def run_doctor(config: Path | None) -> int:
    """Print one row per check; return 0 when everything passed, 1 otherwise."""
    table = Table(title="fleetdeck doctor")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    failures = 0

    def row(check: str, ok: bool | None, detail: str) -> None:
        """One check: ok, failed, or None = not available here (like ``fleetdeck up``, not a failure)."""
        nonlocal failures
        failures += 0 if ok is not False else 1
        result = {True: "[green]ok[/]", False: "[red]fail[/]", None: "[yellow]unavailable[/]"}[ok]
        table.add_row(check, result, detail)

    try:
        settings = FleetdeckSettings.load(config)
    except FleetdeckError as exc:
        row("configuration", False, str(exc))
        console.print(table)
        return 1
    row("configuration", True, str(config or "embedded defaults"))
    for name, check in (("telemetry store", _check_store), ("telemetry spool", _check_spool)):
        try:
            row(name, True, await anyio.to_thread.run_sync(check, settings))
        except (FleetdeckError, OSError) as exc:
            row(name, False, str(exc))
    for name, plugin in plugins.discover().items():
        try:
            reason = await plugin.available(config)
            if reason is not None:
                row(f"server {name}", None, reason)
                continue
            await plugin.build(config, settings=settings).check_ready()
            row(f"server {name}", True, "backend ready")
        except FleetdeckError as exc:
            row(f"server {name}", False, str(exc))
    console.print(table)
    return 1 if failures else 0

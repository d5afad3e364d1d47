"""The ``fleetdeck`` command: serve, up, manifests, reviews, report, doctor."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from fleetdeck import plugins
from fleetdeck.doctor import run_doctor
from fleetdeck.errors import FleetdeckError
from fleetdeck.fleet import run_fleet
from fleetdeck.manifest.commands import manifests_app, reviews_app
from fleetdeck.observability import configure_observability
from fleetdeck.report import report_command
from fleetdeck.settings import FleetdeckSettings

app = typer.Typer(
    help="Run and govern a fleet of MCP servers.", no_args_is_help=True, pretty_exceptions_enable=False
)
app.add_typer(manifests_app, name="manifests", help="Build or check the generated server manifests.")
app.add_typer(reviews_app, name="reviews", help="Record and show governance reviews.")
app.command("report", help="The ROI report: invocations, users and hours saved.")(report_command)
err = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.", exists=True)]


class Transport(StrEnum):
    """How ``serve`` talks to its client."""

    http = "http"
    stdio = "stdio"


@app.command()
def serve(
    server: Annotated[str, typer.Argument(help="Installed server to run (see `fleetdeck doctor`).")],
    transport: Annotated[Transport, typer.Option(help="Streamable HTTP or stdio.")] = Transport.http,
    host: Annotated[str | None, typer.Option(help="Interface to bind (HTTP).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (HTTP); default: the server's own.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run one server until Ctrl-C (HTTP) or until its client closes stdin (stdio)."""
    plugin = plugins.get(server)
    shared = FleetdeckSettings.load(config)
    http = shared.http.model_copy(
        update={"host": host or shared.http.host, "port": port if port is not None else plugin.default_port}
    )
    settings = shared.model_copy(update={"http": http})
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    configure_observability(settings, service=server)
    built = plugin.build(config, settings=settings)
    if transport is Transport.stdio:
        anyio.run(built.serve_stdio)
    else:
        err.print(f"[bold]{server}[/] serving on {built.canonical_url()}")
        anyio.run(built.serve_http)


@app.command()
def up(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Interface every server binds.")] = "127.0.0.1",
    only: Annotated[list[str] | None, typer.Option(help="Run only these servers (repeatable).")] = None,
) -> None:
    """Run the whole local fleet on embedded defaults; Ctrl-C stops everything cleanly."""
    raise typer.Exit(run_fleet(config, host, only or []))


@app.command()
def doctor(config: ConfigOption = None) -> None:
    """Check configuration, the telemetry store and every installed server's backend."""
    raise typer.Exit(anyio.run(run_doctor, config))


def main() -> None:
    """Entry point: configuration and Fleetdeck errors become one clear line and exit code 2."""
    try:
        app()
    except FleetdeckError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        sys.exit(2)

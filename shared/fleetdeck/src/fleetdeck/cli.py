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
from rich.panel import Panel

from fleetdeck import plugins
from fleetdeck.doctor import run_doctor
from fleetdeck.errors import FleetdeckError
from fleetdeck.fleet import DEV_ISSUER_PORT, DevIdentity, run_fleet
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
dev_app = typer.Typer(
    help="Development identity: tokens from the local development issuer (never in production).",
    no_args_is_help=True,
)
app.add_typer(dev_app, name="dev")
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
    from fleetdeck.server import settle_heap  # the SDK loads with the server, not with the CLI

    settle_heap()
    if transport is Transport.stdio:
        anyio.run(built.serve_stdio)
    else:
        err.print(f"[bold]{server}[/] serving on {built.canonical_url()}")
        anyio.run(built.serve_http)


def _names(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (``None`` when the option was not given)."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


@app.command()
def up(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Interface every server binds.")] = "127.0.0.1",
    only: Annotated[list[str] | None, typer.Option(help="Run only these servers (repeatable).")] = None,
    user: Annotated[
        str | None, typer.Option(help="User of the printed development token (default: dev.user or you).")
    ] = None,
    groups: Annotated[
        str | None, typer.Option(help="Comma-separated groups of the token (default: dev.groups).")
    ] = None,
    roles: Annotated[
        str | None, typer.Option(help="Comma-separated roles of the token (default: dev.roles).")
    ] = None,
    issuer_port: Annotated[
        int, typer.Option(help="Port of the local development issuer.", min=1, max=65535)
    ] = DEV_ISSUER_PORT,
) -> None:
    """Run the whole local fleet with a development issuer; Ctrl-C stops everything cleanly."""
    identity = DevIdentity(user=user, groups=_names(groups), roles=_names(roles), issuer_port=issuer_port)
    raise typer.Exit(run_fleet(config, host, only or [], identity))


@dev_app.command("token")
def dev_token(
    user: Annotated[str, typer.Option(help="Subject (and <user>@localhost email) of the token.")],
    groups: Annotated[str, typer.Option(help="Comma-separated business groups, e.g. data-infra,finance.")],
    roles: Annotated[str, typer.Option(help="Comma-separated roles.")] = "",
    audience: Annotated[
        list[str] | None,
        typer.Option(
            help="A server's /mcp URL the token is for (repeatable; default: every installed server's "
            "local URL http://127.0.0.1:<port>/mcp)."
        ),
    ] = None,
    issuer_port: Annotated[
        int, typer.Option(help="Port of the local development issuer.", min=1, max=65535)
    ] = DEV_ISSUER_PORT,
    config: ConfigOption = None,
) -> None:
    """Mint a development token; only the token goes to stdout: TOKEN=$(fleetdeck dev token …)."""
    from fleetdeck.auth.dev_issuer import BANNER, DevIssuer

    issuer = DevIssuer(FleetdeckSettings.load(config), port=issuer_port)
    audiences = audience or [f"http://127.0.0.1:{p.default_port}/mcp" for p in plugins.discover().values()]
    token = issuer.mint(user, _names(groups) or [], _names(roles) or [], audiences)
    err.print(
        Panel(
            f"issuer {issuer.issuer} (JWKS {issuer.jwks_url})\nuser {escape(user)}; audience "
            f"{escape(', '.join(audiences))}\nOnly servers that trust this local issuer accept it.",
            title=BANNER,
            style="bold red",
        ),
        highlight=False,
    )
    sys.stdout.write(token + "\n")


@dev_app.command("issuer", hidden=True)
def dev_issuer(
    port: Annotated[int, typer.Option(help="Loopback port to serve on.", min=1, max=65535)] = DEV_ISSUER_PORT,
    host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
    config: ConfigOption = None,
) -> None:
    """Serve the development issuer's JWKS and discovery document (what `fleetdeck up` runs)."""
    from fleetdeck.auth.dev_issuer import DevIssuer, serve

    issuer = DevIssuer(FleetdeckSettings.load(config), port=port)
    err.print(
        f"[bold red]development issuer[/] {issuer.issuer} — JWKS {issuer.jwks_url}",
        highlight=False,
        soft_wrap=True,
    )
    serve(issuer, host)


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

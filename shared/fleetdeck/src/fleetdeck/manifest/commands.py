"""``fleetdeck manifests build|check`` and ``fleetdeck reviews approve|status``.

Exit codes: 0 ok, 1 a check failed (stale, missing or broken manifest; not approved where an
approval needs a current manifest), 2 usage or configuration error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetdeck import plugins
from fleetdeck.errors import FleetdeckError, ManifestError
from fleetdeck.manifest.builder import build_manifest, describe_changes, render
from fleetdeck.manifest.digest import short
from fleetdeck.manifest.model import Manifest, load_manifest, manifest_json_schema, render_json
from fleetdeck.manifest.reviews import REVIEWS_FILE, TRACKS, Track, approve, load_reviews, review_state
from fleetdeck.manifest.strict_yaml import load_json, validate
from fleetdeck.settings import FleetdeckSettings

if TYPE_CHECKING:
    from fleetdeck.server import FleetServer

EXIT_FAILED = 1
EXIT_USAGE = 2
MANIFEST_FILE = "server.json"
SCHEMA_FILE = "manifest.schema.json"
SERVER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")

manifests_app = typer.Typer(
    help="Generate and verify registry-manifests/<server>/server.json.", no_args_is_help=True
)
reviews_app = typer.Typer(
    help="Record and show security, legal-privacy and genai reviews.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML configuration file.", dir_okay=False, exists=True)
]


class TrackName(StrEnum):
    """The review tracks, as the command line spells them."""

    security = "security"
    legal_privacy = "legal-privacy"
    genai = "genai"


_TRACK: dict[TrackName, Track] = {
    TrackName.security: "security",
    TrackName.legal_privacy: "legal-privacy",
    TrackName.genai: "genai",
}


def _out() -> Console:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # logs and CI: do not truncate table cells
    return console


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _today() -> dt.date:
    return dt.date.today()


@contextmanager
def _exit_on_error() -> Iterator[None]:
    """Report a Fleetdeck error on stderr and exit: 1 for manifest problems, 2 for the rest."""
    try:
        yield
    except ManifestError as exc:
        _err().print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    except FleetdeckError as exc:
        _err().print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None


def _server_dir(settings: FleetdeckSettings, name: str) -> Path:
    if not SERVER_NAME.match(name):
        raise FleetdeckError(f"server name {name!r} must be lowercase letters, digits and dashes")
    return settings.manifests_dir / name


def _installed(
    only: str | None, config: Path | None, settings: FleetdeckSettings
) -> list[tuple[str, FleetServer]]:
    """The installed servers (or just ``only``), built from configuration without I/O."""
    found = plugins.discover()
    if only is not None and only not in found:
        raise FleetdeckError(
            f"no server called {only!r} is installed; installed: {', '.join(found) or 'none'}"
        )
    servers = []
    for name, plugin in found.items():
        if only is not None and name != only:
            continue
        server = plugin.build(config, settings=settings)
        if server.info.name != name:
            raise FleetdeckError(f"plugin {name!r} built a server called {server.info.name!r}")
        servers.append((name, server))
    return servers


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds it; whether it was written."""
    if path.is_file() and not path.is_symlink() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)
    return True


def _staleness(path: Path, built: Manifest) -> list[str]:
    """Why the committed manifest at ``path`` is not what the code builds (empty when current)."""
    if not path.is_file() and not path.is_symlink():
        return [f"{path} is missing; run `fleetdeck manifests build`"]
    try:
        document = load_json(path)
    except ManifestError as exc:
        return [str(exc)]
    try:
        validate(document, Manifest)
    except ManifestError as exc:
        return [str(exc), *describe_changes(document.data if isinstance(document.data, dict) else {}, built)]
    if document.text == render(built):
        return []
    return describe_changes(document.data, built) or [f"{path} is not formatted as generated"]


@manifests_app.command("build")
def build_command(
    server: Annotated[str | None, typer.Option("--server", help="Only this server.")] = None,
    config: ConfigOption = None,
) -> None:
    """Write <manifests_dir>/<server>/server.json for every installed server, and the schema."""
    with _exit_on_error():
        settings = FleetdeckSettings.load(config)
        table = Table("server", "tools", "digest", "file", "")
        for name, instance in _installed(server, config, settings):
            manifest = asyncio.run(build_manifest(instance))
            path = _server_dir(settings, name) / MANIFEST_FILE
            written = _write_if_changed(path, render(manifest))
            table.add_row(name, str(len(manifest.tools)), short(manifest.digest), str(path), _state(written))
        schema_path = settings.manifests_dir / SCHEMA_FILE
        written = _write_if_changed(schema_path, render_json(manifest_json_schema()))
        table.add_row("(schema)", "", "", str(schema_path), _state(written))
        _out().print(table)


def _state(written: bool) -> str:
    return "[yellow]written[/yellow]" if written else "[green]unchanged[/green]"


@manifests_app.command("check")
def check_command(
    server: Annotated[str | None, typer.Option("--server", help="Only this server.")] = None,
    config: ConfigOption = None,
) -> None:
    """Fail, naming each server and what differs, when code and committed manifests disagree."""
    with _exit_on_error():
        settings = FleetdeckSettings.load(config)
        problems: dict[str, list[str]] = {}
        installed = _installed(server, config, settings)
        for name, instance in installed:
            built = asyncio.run(build_manifest(instance))
            stale = _staleness(_server_dir(settings, name) / MANIFEST_FILE, built)
            if stale:
                problems[name] = stale
        schema_path = settings.manifests_dir / SCHEMA_FILE
        if not schema_path.is_file() or schema_path.read_text(encoding="utf-8") != render_json(
            manifest_json_schema()
        ):
            problems["(schema)"] = [f"{schema_path} is missing or stale; run `fleetdeck manifests build`"]
    out = _out()
    if server is None and settings.manifests_dir.is_dir():
        names = {name for name, _ in installed}
        for folder in sorted(settings.manifests_dir.iterdir()):
            if (folder / MANIFEST_FILE).exists() and folder.name not in names:
                out.print(
                    f"[yellow]warning:[/yellow] {escape(str(folder))} has a manifest but no installed server"
                )
    if not problems:
        out.print(f"[green]ok:[/green] {len(installed)} manifest(s) match the code")
        return
    err = _err()
    for name, lines in problems.items():
        err.print(f"[red]{escape(name)}: manifest is stale[/red]")
        for line in lines:
            err.print(f"  - {escape(line)}")
    err.print("run `fleetdeck manifests build` and commit the result (reviews bind to the new digest)")
    raise typer.Exit(EXIT_FAILED)


def _parse_date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date written YYYY-MM-DD", param_hint="--expires"
        ) from None


@reviews_app.command("approve")
def approve_command(
    server: Annotated[str, typer.Argument(help="The server whose committed manifest is approved.")],
    track: Annotated[TrackName, typer.Option("--track", help="Review track.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Who approves (e-mail or handle).")],
    ticket: Annotated[str, typer.Option("--ticket", help="The review ticket.")],
    expires: Annotated[str | None, typer.Option("--expires", help="Expiry date, YYYY-MM-DD.")] = None,
    notes: Annotated[str, typer.Option("--notes", help="Free text kept with the record.")] = "",
    config: ConfigOption = None,
) -> None:
    """Approve the server's committed manifest digest on one track (refused when the manifest is stale)."""
    expiry = _parse_date(expires)
    with _exit_on_error():
        settings = FleetdeckSettings.load(config)
        folder = _server_dir(settings, server)
        ((_, instance),) = _installed(server, config, settings)
        built = asyncio.run(build_manifest(instance))
        stale = _staleness(folder / MANIFEST_FILE, built)
        if stale:
            raise ManifestError(
                f"refusing to approve {server}: the committed manifest does not match the code: "
                + "; ".join(stale)
            )
        today = _today()
        reviews = approve(
            folder / REVIEWS_FILE,
            _TRACK[track],
            reviewer,
            ticket,
            built.digest,
            expiry,
            today,
            server=server,
            notes=notes,
        )
        approved, reasons = review_state(reviews, built.digest, today)
    out = _out()
    who = f"{escape(reviewer)} ({escape(ticket)})"
    out.print(f"{escape(server)}: {track.value} approved {short(built.digest)} by {who}")
    if approved:
        out.print(f"[green]{escape(server)}: all tracks approve the current digest[/green]")
    for reason in reasons:
        out.print(f"  [yellow]pending[/yellow] {escape(reason)}")


@reviews_app.command("status")
def status_command(
    server: Annotated[str | None, typer.Argument(help="One server (default: every manifest folder).")] = None,
    config: ConfigOption = None,
) -> None:
    """Show each review track of each server against its committed manifest digest."""
    with _exit_on_error():
        settings = FleetdeckSettings.load(config)
        root = settings.manifests_dir
        if server is not None:
            names = [server]
        else:
            names = (
                sorted(f.name for f in root.iterdir() if (f / MANIFEST_FILE).exists())
                if root.is_dir()
                else []
            )
        today = _today()
        table = Table("server", "track", "status", "reviewer", "ticket", "date", "expires", "digest")
        verdicts = []
        for name in names:
            folder = _server_dir(settings, name)
            manifest = load_manifest(folder / MANIFEST_FILE)
            reviews_path = folder / REVIEWS_FILE
            reviews = load_reviews(reviews_path) if reviews_path.exists() else None
            for track in TRACKS:
                record = reviews.tracks.get(track) if reviews else None
                if record is None:
                    table.add_row(name, track, "[red]missing[/red]", "", "", "", "", "")
                    continue
                matches = "[green]current[/green]" if record.digest == manifest.digest else "[red]other[/red]"
                table.add_row(
                    name,
                    track,
                    record.status,
                    escape(record.reviewer),
                    escape(record.ticket),
                    record.date.isoformat(),
                    record.expires.isoformat() if record.expires else "",
                    matches if record.digest else "",
                )
            verdicts.append((name, *review_state(reviews, manifest.digest, today)))
    out = _out()
    out.print(table)
    for name, approved, reasons in verdicts:
        verdict = (
            "[green]in the catalog[/green]"
            if approved
            else "[red]not in the catalog[/red]: " + escape("; ".join(reasons))
        )
        out.print(f"{escape(name)}: {verdict}")

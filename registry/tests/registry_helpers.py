"""Test helpers: manifest folders built from real FleetServers, and registries over them."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import anyio
import httpx2
from pydantic import Field

from fleetdeck.auth.identity import IdentityResolver, StaticIdentity
from fleetdeck.auth.policy import AccessPolicy, authorize_tool
from fleetdeck.auth.principal import Principal, User
from fleetdeck.manifest.builder import build_manifest, render
from fleetdeck.manifest.reviews import TRACKS, approve
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.tool import ServerInfo
from fleetdeck_registry.server import RegistryServer, build_registry
from fleetdeck_registry.settings import RegistrySettings

TODAY = dt.date.today()
ServerFactory = Callable[..., FleetServer]


def user(
    subject: str = "alice", groups: tuple[str, ...] = ("ads",), roles: tuple[str, ...] = ()
) -> Principal:
    """A verified user principal."""
    return Principal(
        user=User(
            subject=subject,
            issuer="test",
            proven_by="bearer-jwt",
            groups=frozenset(groups),
            roles=frozenset(roles),
        )
    )


def info(name: str, **changes: object) -> ServerInfo:
    fields: dict[str, object] = {
        "name": name,
        "registry_name": f"io.fleetdeck/{name}",
        "title": f"{name.title()} server",
        "description": f"The {name} server for tests.",
        "version": "1.0.0",
        "owner_team": f"{name}-team",
        "support_channel": f"#{name}-help",
        "docs_url": f"https://docs.example/{name}",
        "data_classification": "internal",
        "tags": ("test", name),
    }
    fields.update(changes)
    return ServerInfo(**fields)  # type: ignore[arg-type]


def settings_for(tmp_path: Path, port: int = 8000) -> FleetdeckSettings:
    return FleetdeckSettings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "http": {"port": port},
            "telemetry": {"url": f"sqlite:///{tmp_path}/t.db"},
            "dev": {"user": "prober", "groups": ["ads", "finance"], "roles": ["admin"]},
        }
    )


def make_server(
    tmp_path: Path,
    name: str = "orders",
    *,
    groups: tuple[str, ...] = ("ads", "finance"),
    port: int = 8000,
    identity: IdentityResolver | None = None,
) -> FleetServer:
    """A small server: two read tools, one admin-only tool, one destructive tool."""
    server = FleetServer(
        info(name),
        settings_for(tmp_path, port),
        access=AccessPolicy(business_groups=groups),
        identity=identity or StaticIdentity(user("prober", ("ads", "finance"), ("admin",))),
    )

    @server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)
    def list_orders(limit: Annotated[int, Field(ge=1, le=100)] = 10) -> list[str]:
        """List recent orders.

        Returns at most ``limit`` order ids.
        """
        return [f"o{i}" for i in range(limit)]

    @server.tool(minutes_saved=3, read_only=True, destructive=False, idempotent=True)
    def get_order(order_id: str) -> str:
        """Get one order by id."""
        return order_id

    @server.tool(minutes_saved=5, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(roles=["admin"])
    def export_orders() -> str:
        """Export every order as CSV (admins only)."""
        return "id\n"

    @server.tool(minutes_saved=10, read_only=False, destructive=True, idempotent=False)
    @authorize_tool(groups=["finance"])
    def cancel_order(order_id: str) -> str:
        """Cancel one order; a human approves each call."""
        return order_id

    return server


async def publish(root: Path, server: FleetServer, *, approved: bool = True, key: str | None = None) -> str:
    """Write the server's manifest into ``root/<key>/`` (and approve every track); returns the digest."""
    manifest = await build_manifest(server)
    folder = root / (key or server.info.name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "server.json").write_text(render(manifest), encoding="utf-8")
    if approved:
        approve_all(folder, manifest.digest)
    return manifest.digest


def approve_all(folder: Path, digest: str, expires: dt.date | None = None, today: dt.date = TODAY) -> None:
    for track in TRACKS:
        approve(
            folder / "reviews.yaml",
            track,
            "rev@example.com",
            f"T-{track}",
            digest,
            expires or today + dt.timedelta(days=365),
            today,
        )


def registry_settings(root: Path, **changes: object) -> RegistrySettings:
    values: dict[str, object] = {"manifests_dir": root, "probe_interval_s": 3600, "reload_interval_s": 0.05}
    values.update(changes)
    return RegistrySettings.model_validate(values)


def make_registry(
    tmp_path: Path, root: Path, principal: Principal | None = None, **changes: object
) -> RegistryServer:
    return build_registry(
        settings_for(tmp_path, 8099),
        registry_settings(root, **changes),
        identity=StaticIdentity(principal or user()),
    )


@asynccontextmanager
async def http_client(server: RegistryServer, *, probe: bool = False) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client on the registry's real app (lifespan, routes, auth), without sockets."""
    app = server.http_app()
    server.probing = probe
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8099"
        ) as client,
    ):
        yield client


def good_folder(tmp_path: Path, root: Path, *, approved: bool = True, name: str = "orders") -> str:
    """Publish the test server's manifest (and approvals) into ``root``; returns the digest."""
    server = make_server(tmp_path, name)

    async def run() -> str:
        return await publish(root, server, approved=approved)

    return anyio.run(run)

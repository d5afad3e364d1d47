"""The registry as a FleetServer: MCP tools at ``/mcp`` plus the JSON API and the web UI.

:class:`RegistryServer` adds to the kit's server a catalog reloader (polling the folder, or on
SIGHUP) and the prober as background tasks of the HTTP app's lifespan, and its own routes. The
routes sit inside the kit's app, so the SDK's bearer authentication has run for them: each handler
asks :meth:`RegistryServer.principal_of` who is calling, through the same identity resolver the
MCP tools use.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import jwt
from mcp.server.context import ServerRequestContext
from starlette.applications import Starlette
from starlette.requests import Request

from fleetdeck.auth.identity import IdentityResolver, StaticIdentity, local_developer
from fleetdeck.auth.principal import ANONYMOUS, Principal, User
from fleetdeck.auth.workload import WorkloadAuthError
from fleetdeck.errors import FleetdeckError
from fleetdeck.server import FleetServer, default_identity
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.roi import RoiReport, build_report
from fleetdeck.tool import ServerInfo
from fleetdeck_registry.history import HistoryStore
from fleetdeck_registry.probe import ProbeIdentity, Prober
from fleetdeck_registry.settings import RegistrySettings
from fleetdeck_registry.state import Clock, RegistryState, utc_now

logger = logging.getLogger(__name__)

INFO = ServerInfo(
    name="registry",
    registry_name="io.fleetdeck/registry",
    title="Fleetdeck registry",
    description="Discover the approved MCP servers and tools of the fleet, and who may use them.",
    version="0.1.0",
    owner_team="platform",
    support_channel="#fleetdeck-help",
    docs_url="https://github.com/fleetdeck/fleetdeck/tree/main/registry",
    data_classification="internal",
    lifecycle="beta",
    instructions="Call find_tools with a few words of the task; then get_server for its URL and tools.",
    tags=("registry", "catalog", "discovery", "governance"),
)


class _RequestOnly:
    """The one part of a request context an identity resolver reads over HTTP: the request."""

    def __init__(self, request: Request) -> None:
        self.request = request


def probe_identity(settings: FleetdeckSettings, registry: RegistrySettings) -> ProbeIdentity:
    """The registry's fixed identity: its configured token (and workload proof), or the local developer."""
    headers: dict[str, str] = {}
    if registry.probe_workload_header and registry.probe_workload_token:
        headers[registry.probe_workload_header] = registry.probe_workload_token.get_secret_value()
    if registry.probe_token is None:
        developer = local_developer(settings.dev).principal
        return ProbeIdentity(headers, developer)
    token = registry.probe_token.get_secret_value()
    headers["Authorization"] = f"Bearer {token}"
    try:  # our own credential: read to know what the servers will let us see, never trusted here
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    groups, roles = claims.get("groups") or [], claims.get("roles") or []
    user = User(
        subject=str(claims.get("sub", "fleetdeck-registry")),
        issuer=str(claims.get("iss", "")),
        proven_by="bearer-jwt",
        groups=frozenset(str(group) for group in groups if isinstance(groups, list)),
        roles=frozenset(str(role) for role in roles if isinstance(roles, list)),
    )
    return ProbeIdentity(headers, Principal(user=user))


class RegistryServer(FleetServer):
    """The registry: a FleetServer whose HTTP app also serves the catalog API and web UI."""

    def __init__(
        self,
        settings: FleetdeckSettings,
        registry: RegistrySettings,
        *,
        identity: IdentityResolver | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(INFO, settings, access=registry.access, identity=identity, readiness=self._loaded)
        self.registry_settings = registry
        self.identity_resolver = identity or default_identity(settings, self.canonical_url())[0]
        root = registry.manifests_dir or settings.manifests_dir
        self.state = RegistryState(Path(root), max_servers=registry.max_servers, clock=clock)
        self.history = HistoryStore(settings.telemetry_url())
        self.prober = Prober(
            self.state,
            probe_identity(settings, registry),
            dict(registry.endpoints),
            interval_s=registry.probe_interval_s,
            timeout_s=registry.probe_timeout_s,
            concurrency=registry.probe_concurrency,
            history=self.history,
            keep=registry.history_per_server,
        )
        self._roi: tuple[float, RoiReport] | None = None
        self.probing = registry.probe_enabled
        """Whether the HTTP app probes servers in the background (tests drive rounds themselves)."""

    async def _loaded(self) -> None:
        """Ready once a catalog has loaded (``fleetdeck doctor`` checks before anything served: load now)."""
        if not self.state.loaded_once:
            await self.reload()
        if not self.state.loaded_once:
            raise FleetdeckError("no manifest catalog has loaded yet: " + "; ".join(self.state.problems[:3]))

    def principal_of(self, request: Request) -> Principal:
        """Who made ``request``: the same resolver the MCP tools use (ANONYMOUS if nothing proven)."""
        if isinstance(self.identity_resolver, StaticIdentity):
            return self.identity_resolver.principal
        try:
            return self.identity_resolver(cast(ServerRequestContext[Any, Any], _RequestOnly(request)))
        except (WorkloadAuthError, FleetdeckError):
            return ANONYMOUS

    async def reload(self) -> bool:
        """Reload the catalog off the event loop; wakes the prober when a new catalog came in."""
        changed = await anyio.to_thread.run_sync(self.state.reload)
        if changed:
            # A catalog is hundreds of thousands of long-lived objects: keep the cyclic collector from
            # walking them on every full collection (they are still freed by reference counting).
            gc.freeze()
            self.prober.wake()
        return changed

    async def roi_report(self) -> RoiReport:
        """The ROI report from the telemetry store, cached for ``roi_cache_s``."""
        now = time.monotonic()
        if self._roi is not None and now - self._roi[0] < self.registry_settings.roi_cache_s:
            return self._roi[1]
        report = await anyio.to_thread.run_sync(build_report, self.history.engine)
        self._roi = (now, report)
        return report

    async def _reload_forever(self) -> None:
        while True:
            await anyio.sleep(self.registry_settings.reload_interval_s)
            if await anyio.to_thread.run_sync(self.state.needs_reload):
                await self.reload()

    async def _reload_on_sighup(self) -> None:
        # not in the main thread (or no signals here): reload by polling only
        with (
            contextlib.suppress(ValueError, NotImplementedError, RuntimeError),
            anyio.open_signal_receiver(signal.SIGHUP) as received,
        ):
            async for _ in received:
                logger.info("SIGHUP: reloading the manifest catalog")
                await self.reload()

    @asynccontextmanager
    async def background(self) -> AsyncIterator[RegistryServer]:
        """Load the catalog, then keep reloading (and probing) until the block ends."""
        await self.reload()
        async with anyio.create_task_group() as group:
            group.start_soon(self._reload_forever)
            group.start_soon(self._reload_on_sighup)
            if self.probing:
                group.start_soon(self.prober.run_forever)
            try:
                yield self
            finally:
                group.cancel_scope.cancel()
        await anyio.to_thread.run_sync(self.history.dispose)

    def http_app(self) -> Starlette:
        """The kit's app (``/mcp``, health, metrics) plus the API, the OpenAPI document and the UI."""
        from fleetdeck_registry.api import api_routes
        from fleetdeck_registry.ui import ui_routes

        app = super().http_app()
        app.router.routes.extend([*api_routes(self), *ui_routes(self)])
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(application: Starlette) -> AsyncIterator[Any]:
            async with inner(application) as state, self.background():
                yield state

        app.router.lifespan_context = lifespan
        return app


def build_registry(
    settings: FleetdeckSettings,
    registry: RegistrySettings,
    identity: IdentityResolver | None = None,
    clock: Clock = utc_now,
) -> RegistryServer:
    """The registry server with its MCP tools (no I/O here)."""
    from fleetdeck_registry.tools import register

    server = RegistryServer(settings, registry, identity=identity, clock=clock)
    register(server)
    return server

"""Build a Fleetdeck domain server: the MCP SDK server plus declarations, limits, telemetry and health.

A domain team writes::

    server = FleetServer(info, settings, readiness=backend.check)

    @server.tool(minutes_saved=3, read_only=True, destructive=False, idempotent=True)
    async def list_catalogs() -> CatalogList:
        \"\"\"List the catalogs you can query.\"\"\"

and serves it with :meth:`FleetServer.serve_http` or :meth:`FleetServer.serve_stdio`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared._callable_inspection import is_async_callable
from mcp.shared.exceptions import MCPError
from mcp.types import Tool
from opentelemetry.metrics import get_meter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fleetdeck.auth import approvals
from fleetdeck.auth.audit import AuditLog
from fleetdeck.auth.enforcement import Authorizer
from fleetdeck.auth.identity import (
    HttpIdentity,
    IdentityResolver,
    IdentitySettings,
    local_developer,
)
from fleetdeck.auth.jwt import JwtVerifier
from fleetdeck.auth.policy import REGISTERED_ATTRIBUTE, AccessPolicy, policy_of
from fleetdeck.auth.sealing import request_state_security
from fleetdeck.auth.svid_keys import JwtSvidJwks
from fleetdeck.auth.workload import JwtSvidBundles
from fleetdeck.errors import BackendTimeoutError, ConfigError, FleetdeckError, Outcome
from fleetdeck.gate import CallGate
from fleetdeck.mtls import uvicorn_tls_options
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.events import EventRecipe
from fleetdeck.telemetry.metrics import Metrics
from fleetdeck.telemetry.middleware import CallTelemetry, current_call
from fleetdeck.telemetry.writer import EventWriter
from fleetdeck.tool import ServerInfo, ToolSpec, make_spec

logger = logging.getLogger(__name__)


class _ToolErrorTextFilter(logging.Filter):
    """Drops the text of tool errors from the SDK's INFO log: it can quote user data (SQL literals)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Tool %r failed: %r" and isinstance(record.args, tuple) and len(record.args) == 2:
            record.args = (record.args[0], "<error text withheld: see the audit trail and telemetry>")
        return True


def _quiet_session_ends(log_level: str) -> None:
    """Unless debugging, keep the SDK's one INFO line per stateless request out of the log.

    ``mcp.server.streamable_http`` logs "Terminating session: …" at the end of every stateless HTTP
    request (and of every session); it carries nothing (telemetry records every call), and even a
    filter that drops it lets ``logging`` build the record first (~20 Python frames per request).
    Its other lines are DEBUG, so that logger goes to WARNING.
    """
    if log_level != "DEBUG":
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)


logging.getLogger("mcp.server.mcpserver.server").addFilter(_ToolErrorTextFilter())

F = TypeVar("F", bound=Callable[..., Any])
Readiness = Callable[[], Awaitable[None]]
READINESS_TIMEOUT_S = 5.0


def settle_heap() -> None:
    """Keep what start-up left alive out of the garbage collector's full passes (``gc.freeze``).

    For the process's entry point, once the server is built. Full collections otherwise walk the
    hundreds of thousands of objects the imported libraries hold: ~150 ms each on this VM, landing on
    a random tool call (measured on the Airflow server: get_dag_run p99 163 ms -> 13 ms).
    """
    gc.collect()
    gc.freeze()


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _raise_tool_failure(spec: ToolSpec, exc: Exception) -> NoReturn:
    """Raise what the caller gets for an exception from a tool body (a safe tool error); notes the outcome."""
    record = current_call.get()
    failure: Exception | None = None  # None: the exception is already a tool error and goes as it is
    if isinstance(exc, FleetdeckError):
        outcome, failure = exc.outcome, ToolError(str(exc))
    elif isinstance(exc, ToolError | MCPError):
        outcome = Outcome.TOOL_ERROR
    else:  # the one place a tool crash becomes a safe message
        logger.error("tool %s failed unexpectedly", spec.name, exc_info=exc)
        outcome = Outcome.INTERNAL_ERROR
        failure = ToolError(f"{spec.name} failed unexpectedly ({type(exc).__name__}); the error was logged")
    if record is not None:
        record.outcome, record.error_class = outcome, type(exc).__name__
    if failure is None:
        raise exc
    raise failure from exc


def _instrument(fn: F, spec: ToolSpec) -> F:
    """Wrap a tool body so its errors are mapped once; keeps the signature the SDK inspects."""
    if is_async_callable(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - always re-raised, mapped
                _raise_tool_failure(spec, exc)

        return run_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - always re-raised, mapped
            _raise_tool_failure(spec, exc)

    return run_sync  # type: ignore[return-value]


def default_identity(
    settings: FleetdeckSettings, resource_url: str
) -> tuple[IdentityResolver, JwtVerifier | None]:
    """The identity resolver settings call for (and the token verifier the SDK must run, if any).

    With an issuer configured, every HTTP request needs a bearer JWT for ``resource_url`` and may
    carry a workload proof. Without one, only development on a loopback address works, as the
    local developer.
    """
    trust = IdentitySettings.load(settings.source_file())
    if trust.auth.issuer:
        verifier = JwtVerifier(trust.auth, resource_url=resource_url)
        workload = trust.workload
        files = (
            JwtSvidBundles.from_files(workload.jwt_svid_bundle_paths)
            if workload.jwt_svid_bundle_paths
            else None
        )
        keys = JwtSvidJwks(workload.jwt_svid_jwks_urls, files=files) if workload.jwt_svid_jwks_urls else files
        return HttpIdentity(verifier, trust, keys), verifier
    if settings.environment == "development" and settings.http.host in LOOPBACK:
        return local_developer(settings.dev), None
    raise ConfigError(
        "no identity provider is configured: set auth.issuer and auth.jwks_url "
        "(a local developer identity is only used in development on a loopback address)"
    )


class FleetServer:
    """One domain MCP server: tools with declarations, policy, telemetry, limits and health routes."""

    def __init__(
        self,
        info: ServerInfo,
        settings: FleetdeckSettings,
        *,
        access: AccessPolicy,
        identity: IdentityResolver | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self.info = info
        self.settings = settings
        _quiet_session_ends(settings.log_level)
        self.access_policy = access
        self.metrics = Metrics()
        self._readiness = readiness
        self._specs: dict[str, ToolSpec] = {}
        self._writer: EventWriter | None = None
        self._key: bytes | None = None
        self._warned_not_running = False
        verifier = None
        if identity is None:
            identity, verifier = default_identity(settings, self.canonical_url())
        self._identity = identity
        self.token_verifier = verifier
        """The bearer-token verifier the SDK runs on every HTTP request (None without an issuer)."""
        # approvals + audit hook: raw identities and decisions go to the audit trail (auth/audit.py);
        # destructive tools are guarded by a human approval (auth/approvals.py).
        self._telemetry = CallTelemetry(
            server=info.name,
            team=info.owner_team,
            metrics=self.metrics,
            sink=self._drop_event,
            pseudonym_key=self._pseudonym_key,
            meter=get_meter("fleetdeck") if settings.telemetry.otlp_endpoint else None,
        )
        self.audit = AuditLog(
            settings.telemetry_url(), server=info.name, flush_interval_s=settings.telemetry.flush_interval_s
        )
        self.approvals = approvals.ApprovalGuard(server=info.name, settings=settings, audit=self.audit)
        self.mcp: MCPServer[Any] = MCPServer(
            name=info.name,
            title=info.title,
            description=info.description,
            instructions=info.instructions or None,
            website_url=info.docs_url,
            version=info.version,
            log_level=settings.log_level,
            middleware=[
                CallGate(
                    identity=identity,
                    specs=self._specs,
                    authorizer=Authorizer(self._specs, access, self.audit),
                    telemetry=self._telemetry,
                    max_argument_bytes=settings.http.max_argument_bytes,
                )
            ],
            # approvals hook: sealing keys shared by every replica (after the identity check above)
            request_state_security=request_state_security(settings),
            token_verifier=verifier,
            auth=self._auth_settings(verifier),
        )
        self.mcp.custom_route("/healthz", methods=["GET"])(self._healthz)
        self.mcp.custom_route("/readyz", methods=["GET"])(self._readyz)
        self.mcp.custom_route("/metrics", methods=["GET"])(self._metrics)

    def _auth_settings(self, verifier: JwtVerifier | None) -> AuthSettings | None:
        """The SDK's resource-server settings: 401/403 with ``resource_metadata``, RFC 9728 document."""
        if verifier is None:
            return None
        return AuthSettings(
            issuer_url=AnyHttpUrl(verifier.issuer),
            resource_server_url=AnyHttpUrl(self.canonical_url()),
            validate_token_resource=False,  # JwtVerifier checks the audience itself
        )

    @property
    def tool_specs(self) -> Mapping[str, ToolSpec]:
        """Every registered tool's declaration, by name."""
        return self._specs

    def tool(
        self,
        *,
        minutes_saved: float,
        read_only: bool,
        destructive: bool,
        idempotent: bool,
        open_world: bool = False,
        name: str | None = None,
        title: str | None = None,
    ) -> Callable[[F], F]:
        """Register a tool. Its docstring is the description; every hint must be stated.

        Put ``@authorize_tool(...)`` below this decorator to restrict who may call the tool.
        """

        def register(fn: F) -> F:
            spec = make_spec(
                fn,
                name=name,
                title=title,
                minutes_saved=minutes_saved,
                read_only=read_only,
                destructive=destructive,
                idempotent=idempotent,
                open_world=open_world,
                policy=policy_of(fn),
            )
            if spec.name in self._specs:
                raise FleetdeckError(f"tool {spec.name!r} is registered twice on {self.info.name}")
            self._specs[spec.name] = spec
            setattr(fn, REGISTERED_ATTRIBUTE, True)
            # approvals hook: a destructive tool's body runs only after a human accepted (hidden params)
            body = self.approvals.wrap(fn, tool=spec.name) if spec.destructive else fn
            self.mcp.add_tool(
                _instrument(body, spec),
                name=spec.name,
                title=spec.title,
                description=spec.description,
                annotations=spec.annotations(),
            )
            return fn

        return register

    async def tool_definitions(self) -> list[Tool]:
        """Exactly what ``tools/list`` returns to a caller who may see every tool."""
        return await self.mcp.list_tools()

    def canonical_url(self) -> str:
        """The ``/mcp`` URL clients use and tokens are minted for (RFC 8707 audience)."""
        http = self.settings.http
        scheme = "https" if http.tls_certfile else "http"
        base = http.public_url or f"{scheme}://{http.host}:{http.port}"
        return base.rstrip("/") + "/mcp"

    # -- telemetry -------------------------------------------------------------------------------

    def _pseudonym_key(self) -> bytes:
        if self._key is None:
            self._key = self.settings.pseudonym_key()
        return self._key

    def _drop_event(self, event: EventRecipe) -> None:
        """The event sink outside :meth:`running`: count the drop, warn once."""
        self.metrics.events_dropped.labels("not_running").inc()
        if not self._warned_not_running:
            self._warned_not_running = True
            logger.warning("telemetry events dropped: %s is not running (see running())", self.info.name)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FleetServer]:
        """Start the telemetry writer for the lifetime of the block; flush it on the way out."""
        self._pseudonym_key()
        writer = EventWriter.from_settings(self.settings, self.metrics)
        writer.start()
        self._writer = writer
        self._telemetry.sink = writer.submit
        maintain = self._identity.maintain if isinstance(self._identity, HttpIdentity) else None
        upkeep = asyncio.get_running_loop().create_task(maintain()) if maintain else None
        try:
            yield self
        finally:
            if upkeep is not None:
                upkeep.cancel()
                await asyncio.gather(upkeep, return_exceptions=True)
            self._writer = None
            self._telemetry.sink = self._drop_event
            await anyio.to_thread.run_sync(
                functools.partial(writer.close, self.settings.http.shutdown_timeout_s)
            )
            self.audit.close()  # approvals + audit hook: release their store connections
            self.approvals.close()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "server": self.info.name, "version": self.info.version})

    async def check_ready(self) -> None:
        """Return when the backend answers; raise :class:`BackendError` (timeouts included) otherwise."""
        if self._readiness is None:
            return
        try:
            with anyio.fail_after(READINESS_TIMEOUT_S):
                await self._readiness()
        except TimeoutError as exc:
            raise BackendTimeoutError(f"backend check timed out after {READINESS_TIMEOUT_S:g} s") from exc

    async def _readyz(self, request: Request) -> Response:
        try:
            await self.check_ready()
        except FleetdeckError as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def _transport_security(self) -> TransportSecuritySettings:
        http = self.settings.http
        hosts = {f"{http.host}:{http.port}", http.host, *http.allowed_hosts}
        if http.host in LOOPBACK or http.host == "0.0.0.0":  # noqa: S104 - naming it, not binding
            hosts |= {"127.0.0.1:*", "localhost:*", "[::1]:*"}
        if http.public_url:
            hosts.add(urlsplit(http.public_url).netloc)
        origins = {f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")}
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=sorted(hosts),
            allowed_origins=sorted(origins | set(http.allowed_origins)),
        )

    def http_app(self) -> Starlette:
        """The Starlette app: ``/mcp`` plus ``/healthz``, ``/readyz`` and ``/metrics``."""
        http = self.settings.http
        app = self.mcp.streamable_http_app(
            streamable_http_path="/mcp",
            stateless_http=http.stateless,
            max_request_body_size=http.max_request_bytes,
            transport_security=self._transport_security(),
            host=http.host,
        )
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(application: Starlette) -> AsyncIterator[Any]:
            async with self.running(), inner(application) as state:
                yield state

        app.router.lifespan_context = lifespan
        return app

    def uvicorn_config(self) -> uvicorn.Config:
        """How uvicorn serves :meth:`http_app`: address, TLS / mTLS, graceful shutdown."""
        http = self.settings.http
        return uvicorn.Config(
            self.http_app(),
            host=http.host,
            port=http.port,
            log_level=self.settings.log_level.lower(),
            timeout_graceful_shutdown=int(http.shutdown_timeout_s),
            server_header=False,
            **uvicorn_tls_options(http),
        )

    async def serve_http(self) -> None:
        """Serve Streamable HTTP with uvicorn until SIGINT/SIGTERM, then shut down gracefully."""
        await uvicorn.Server(self.uvicorn_config()).serve()

    async def serve_stdio(self) -> None:
        """Serve one client over stdin/stdout."""
        async with self.running():
            await self.mcp.run_stdio_async()

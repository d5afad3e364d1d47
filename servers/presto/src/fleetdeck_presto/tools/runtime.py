"""What every Presto tool shares: the caller's engine user, their data scope, the guard and the limits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from pydantic import Field

from fleetdeck.auth.principal import Principal, current_principal
from fleetdeck.errors import AccessDeniedError
from fleetdeck.telemetry.middleware import current_trace_id
from fleetdeck_presto.backend import QueryContext, WarehouseBackend
from fleetdeck_presto.guard import GuardPolicy, ObjectRef, ReadOnlyGuard
from fleetdeck_presto.queries import QueryTracker
from fleetdeck_presto.settings import PrestoSettings, TrinoSettings

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def engine_user(principal: Principal, settings: TrinoSettings) -> str:
    """The name the query runs as: mapped from the verified user (never from a token sent to Trino)."""
    user = principal.user
    if user is None:
        if principal.workload is None:
            raise AccessDeniedError("no verified user or workload to run the query as")
        return principal.workload.spiffe_id
    if settings.user_from == "email" and user.email:
        return user.email
    if settings.user_from == "email_local_part" and user.email:
        return user.email.split("@", 1)[0]
    if settings.user_from == "claim" and settings.user_claim:
        token = get_access_token()
        value = (token.claims or {}).get(settings.user_claim) if token is not None else None
        if isinstance(value, str) and value:
            return value
        raise AccessDeniedError(
            f"the verified token has no {settings.user_claim!r} claim to run the query as"
        )
    return user.subject


def _owner(principal: Principal) -> str:
    if principal.user is not None:
        return f"{principal.user.issuer}|{principal.user.subject}"
    return principal.workload.spiffe_id if principal.workload else "anonymous"


class ToolRuntime:
    """Builds each call's :class:`QueryContext` and enforces the per-group catalog/schema scopes."""

    def __init__(self, settings: PrestoSettings, backend: WarehouseBackend, tracker: QueryTracker) -> None:
        self.settings = settings
        self.backend = backend
        self.tracker = tracker
        self.guard = ReadOnlyGuard(
            GuardPolicy(
                table_functions=frozenset(settings.table_functions),
                system_schemas=frozenset(settings.system_schemas),
            )
        )

    @property
    def browse_groups(self) -> tuple[str, ...]:
        """The groups of the server access policy, as a tool policy ('*' admits every user)."""
        return tuple(g for g in self.settings.access.business_groups if g != "*")

    def owner(self) -> str:
        return _owner(current_principal.get())

    def context(
        self, tool: str, mcp: Context[Any] | None = None, *, track: bool = False, max_rows: int | None = None
    ) -> QueryContext:
        """The calling user's context for ``tool``; ``track`` registers the query for status/cancel."""
        principal = current_principal.get()
        limits = self.settings.limits
        user = engine_user(principal, self.settings.trino)
        ctx = QueryContext(
            user=user,
            owner=_owner(principal),
            tool=tool,
            trace_id=current_trace_id() or (f"mcp-{mcp.request_id}" if mcp is not None else None),
            max_rows=min(max_rows or limits.max_rows, limits.max_rows),
            max_bytes=limits.max_bytes,
            timeout_s=limits.timeout_s,
            progress_interval_s=limits.progress_interval_s,
        )
        if mcp is not None:
            ctx.progress = mcp.report_progress
        if track:
            ctx.handle = self.tracker.start(ctx.owner, user, tool)
        return ctx

    def _scopes(self) -> list[Any] | None:
        user = current_principal.get().user
        return self.settings.scope_for(user.groups if user else frozenset())

    def allows(self, catalog: str, schema: str | None = None) -> bool:
        scopes = self._scopes()
        return scopes is None or any(s.allows(catalog, schema) for s in scopes)

    def require(self, refs: Iterable[ObjectRef]) -> None:
        """Refuse when a referenced catalog or schema is outside the caller's groups' scope."""
        scopes = self._scopes()
        if scopes is None:
            return
        default = self.settings.trino.catalog if self.settings.backend == "trino" else "warehouse"
        for ref in refs:
            catalog = ref.catalog or default
            if catalog is None or not any(s.allows(catalog, ref.schema) for s in scopes):
                where = ".".join(p for p in (catalog, ref.schema) if p) or "the session catalog"
                raise AccessDeniedError(f"your groups may not read {where} through this server")

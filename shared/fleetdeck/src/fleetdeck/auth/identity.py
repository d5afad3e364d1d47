"""Resolve the :class:`Principal` of each request (:class:`~fleetdeck.gate.CallGate` makes it current).

A resolver turns one inbound request into a principal. The kit picks one from settings: verified
tokens and workload identities over HTTP, or — only in development, on loopback or stdio — the
local developer, who already holds the machine. A deployment without an issuer refuses to start.
"""

from __future__ import annotations

import getpass
from typing import Any, Protocol

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import ServerRequestContext
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.requests import Request

from fleetdeck.auth.jwt import JwtVerifier, UserAuthSettings
from fleetdeck.auth.principal import ANONYMOUS, Principal, User
from fleetdeck.auth.svid_keys import JwtSvidJwks
from fleetdeck.auth.workload import (
    JwtSvidKeySource,
    WorkloadSettings,
    peer_certificate_from_scope,
    resolve_workload,
)
from fleetdeck.settings import DevelopmentIdentitySettings, PackageSettings


class IdentityResolver(Protocol):
    """Turns one inbound request into the principal that made it."""

    def __call__(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        """The caller of ``ctx``; :data:`ANONYMOUS` when nothing was proven."""


class StaticIdentity:
    """Every request is made by one principal (the local developer, or a test's caller)."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def __call__(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        return self.principal


def local_developer(settings: DevelopmentIdentitySettings) -> StaticIdentity:
    """The developer who started the process, as the only caller."""
    user = User(
        subject=settings.user or getpass.getuser(),
        issuer="local",
        proven_by="local-process",
        groups=frozenset(settings.groups),
        roles=frozenset(settings.roles),
    )
    return StaticIdentity(Principal(user=user))


class IdentitySettings(PackageSettings):
    """Whom a server trusts: users (``FLEETDECK_AUTH__*``) and workloads (``FLEETDECK_WORKLOAD__*``).

    Read only by servers, so that commands which serve nothing never load the verification stack.
    """

    model_config = SettingsConfigDict(env_prefix="FLEETDECK_", env_nested_delimiter="__", extra="ignore")

    auth: UserAuthSettings = Field(default_factory=UserAuthSettings)
    workload: WorkloadSettings = Field(default_factory=WorkloadSettings)
    surface_header: str = Field(
        default="x-fleetdeck-surface",
        description="Header naming the client surface; honoured only from a verified workload.",
    )


class HttpIdentity:
    """The principal of an HTTP request: the verified bearer token's user and the proven workload."""

    def __init__(
        self, verifier: JwtVerifier, settings: IdentitySettings, jwt_svid_keys: JwtSvidKeySource | None
    ) -> None:
        self._verifier = verifier
        self._settings = settings
        self._keys = jwt_svid_keys

    async def maintain(self) -> None:
        """Keep fetched JWT-SVID keys fresh for the server's lifetime (returns at once when static)."""
        if isinstance(self._keys, JwtSvidJwks):
            await self._keys.run()

    def __call__(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        token = get_access_token()  # set by the SDK's bearer middleware after JwtVerifier accepted it
        verified = self._verifier.verified_of(token) if token else None
        request = ctx.request
        if isinstance(request, Request):
            scope = request.scope
            client = scope.get("client")
            workload = resolve_workload(
                scope.get("headers", ()),
                client[0] if client else None,
                peer_certificate_from_scope(scope),
                self._settings.workload,
                self._keys,
            )
            if workload is not None:
                surface = request.headers.get(self._settings.surface_header)
                user = verified.to_user() if verified else None
                return Principal(user=user, workload=workload.as_principal_workload(), surface=surface)
        return verified.to_principal() if verified else ANONYMOUS  # shared by the calls of one token

"""Resolve the :class:`Principal` of each request, and the middleware that makes it current.

A resolver turns one inbound request into a principal. The kit picks one from settings: verified
tokens and workload identities over HTTP, or — only in development, on loopback or stdio — the
local developer, who already holds the machine. A deployment without an issuer refuses to start.
"""

from __future__ import annotations

import getpass
from typing import Any, Protocol

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from fleetdeck.auth.principal import Principal, User, current_principal
from fleetdeck.settings import DevelopmentIdentitySettings


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


class IdentityMiddleware:
    """Resolves the principal once per request and makes it current for everything inside."""

    def __init__(self, resolve: IdentityResolver) -> None:
        self._resolve = resolve

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        token = current_principal.set(self._resolve(ctx))
        try:
            return await call_next(ctx)
        finally:
            current_principal.reset(token)

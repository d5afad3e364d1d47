"""Enforce the decision function on every ``tools/call`` and filter ``tools/list`` per caller."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult, ListToolsResult, TextContent

from fleetdeck.auth.policy import AccessPolicy, Decision, ToolFacts, decide
from fleetdeck.auth.principal import Principal, current_principal
from fleetdeck.errors import Outcome
from fleetdeck.telemetry.middleware import current_call
from fleetdeck.tool import ToolSpec

logger = logging.getLogger(__name__)


def facts(spec: ToolSpec) -> ToolFacts:
    """The decision inputs of a registered tool."""
    return ToolFacts(name=spec.name, read_only=spec.read_only, policy=spec.policy)


def denied_result(decision: Decision) -> CallToolResult:
    """The tool result a denied caller gets: which rule decided, and why."""
    text = f"access denied ({decision.rule}): {decision.reason}"
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class AuthorizationMiddleware:
    """Denies calls the policy refuses (hidden tools included) and hides them from ``tools/list``."""

    def __init__(self, specs: Mapping[str, ToolSpec], access: AccessPolicy) -> None:
        self._specs = specs
        self._access = access

    def decide(self, principal: Principal, name: str) -> Decision | None:
        """The decision for ``name``, or None for a tool this server does not have."""
        spec = self._specs.get(name)
        return decide(principal, facts(spec), self._access) if spec else None

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call":
            return await self._call(ctx, call_next)
        if ctx.method == "tools/list":
            return self._filter(await call_next(ctx))
        return await call_next(ctx)

    async def _call(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        name = ctx.params.get("name") if ctx.params else None
        decision = self.decide(current_principal.get(), name) if isinstance(name, str) else None
        if decision is None or decision.allowed:
            return await call_next(ctx)  # unknown tools get the SDK's own answer
        record = current_call.get()
        if record is not None:
            record.outcome, record.error_class = Outcome.DENIED, decision.rule
        logger.info("denied %s: %s", name, decision.rule, extra={"reason": decision.reason})
        return denied_result(decision)

    def _filter(self, result: HandlerResult) -> HandlerResult:
        principal = current_principal.get()

        def visible(name: Any) -> bool:
            decision = self.decide(principal, name) if isinstance(name, str) else None
            return decision is not None and decision.allowed

        if isinstance(result, ListToolsResult):
            return result.model_copy(update={"tools": [t for t in result.tools if visible(t.name)]})
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            return {**result, "tools": [t for t in result["tools"] if visible(t.get("name"))]}
        return result

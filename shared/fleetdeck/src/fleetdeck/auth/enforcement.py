"""Enforce the decision function on every ``tools/call`` and filter ``tools/list`` per caller."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ListToolsResult, TextContent
from mcp_types.methods import is_input_required

from fleetdeck.auth.audit import AuditEvent, AuditLog, argument_digest
from fleetdeck.auth.policy import AccessPolicy, Decision, ToolFacts, decide
from fleetdeck.auth.principal import Principal, current_principal
from fleetdeck.errors import Outcome, TelemetryError
from fleetdeck.telemetry.middleware import arguments_json, current_call, is_error_result
from fleetdeck.tool import ToolSpec

logger = logging.getLogger(__name__)


def facts(spec: ToolSpec) -> ToolFacts:
    """The decision inputs of a registered tool."""
    return ToolFacts(name=spec.name, read_only=spec.read_only, policy=spec.policy)


def error_result(text: str) -> CallToolResult:
    """A tool error the caller reads (the kit's refusals: denied, too large, unaudited)."""
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def denied_result(decision: Decision) -> CallToolResult:
    """The tool result a denied caller gets: which rule decided, and why."""
    return error_result(f"access denied ({decision.rule}): {decision.reason}")


class AuthorizationMiddleware:
    """Denies calls the policy refuses (hidden tools included) and hides them from ``tools/list``.

    With an :class:`AuditLog`, every decision is audited; for a tool that changes state the
    ``decision_allowed`` record is written durably before the call proceeds (if it cannot be, the
    call fails closed) and the outcome is audited after it.
    """

    def __init__(
        self, specs: Mapping[str, ToolSpec], access: AccessPolicy, audit: AuditLog | None = None
    ) -> None:
        self._specs = specs
        self._access = access
        self._audit = audit

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
        principal = current_principal.get()
        decision = self.decide(principal, name) if isinstance(name, str) else None
        if decision is None or not isinstance(name, str):
            return await call_next(ctx)  # unknown tools get the SDK's own answer
        spec = self._specs[name]  # decide() answered, so the tool exists
        mutating = not spec.read_only
        fields = {
            "tool": spec.name,
            "principal": principal,
            "rule": decision.rule,
            "reason": decision.reason,
            "args_digest": argument_digest(arguments_json(ctx)),
        }
        record = current_call.get()
        if not decision.allowed:
            if self._audit is not None:
                self._audit.submit(AuditEvent.DECISION_DENIED, **fields)
            if record is not None:
                record.outcome, record.error_class = Outcome.DENIED, decision.rule
            logger.info("denied %s: %s", name, decision.rule, extra={"reason": decision.reason})
            return denied_result(decision)
        if self._audit is None:
            return await call_next(ctx)
        if not mutating:
            self._audit.submit(AuditEvent.DECISION_ALLOWED, **fields)
            return await call_next(ctx)
        try:
            await self._audit.arecord(AuditEvent.DECISION_ALLOWED, required=True, **fields)
        except TelemetryError:
            if record is not None:
                record.outcome, record.error_class = Outcome.INTERNAL_ERROR, "AuditUnavailable"
            return error_result(
                f"{spec.name} changes state and its audit record could not be written; nothing was changed"
            )
        return await self._audited(ctx, call_next, fields)

    async def _audited(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, fields: dict[str, Any]
    ) -> HandlerResult:
        """Run a state-changing call and audit how it ended (never changes the result)."""
        assert self._audit is not None
        fields = {key: value for key, value in fields.items() if key not in ("rule", "reason")}
        try:
            result = await call_next(ctx)
        except MCPError as exc:
            await self._audit.arecord(
                AuditEvent.OUTCOME,
                required=False,
                outcome="protocol_error",
                reason=exc.error.message,
                **fields,
            )
            raise
        if is_input_required(result):
            return result  # a question for the human, not an outcome (the approval steps are audited)
        record = current_call.get()
        outcome = (record.outcome if record is not None else None) or (
            Outcome.INVALID_INPUT if is_error_result(result) else Outcome.OK
        )
        error_class = record.error_class if record is not None else None
        await self._audit.arecord(
            AuditEvent.OUTCOME, required=False, outcome=outcome.value, reason=error_class, **fields
        )
        return result

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

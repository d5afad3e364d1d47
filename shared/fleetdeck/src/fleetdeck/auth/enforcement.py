"""Enforce the decision function on every ``tools/call``, audit it, and filter ``tools/list`` per caller."""

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
from fleetdeck.auth.principal import Principal
from fleetdeck.errors import Outcome, TelemetryError
from fleetdeck.telemetry.middleware import CallRecord, arguments_json, outcome_of
from fleetdeck.tool import ToolSpec

logger = logging.getLogger(__name__)
_DECISIONS_KEPT = 4_096


def facts(spec: ToolSpec) -> ToolFacts:
    """The decision inputs of a registered tool."""
    return ToolFacts(name=spec.name, read_only=spec.read_only, policy=spec.policy)


def error_result(text: str) -> CallToolResult:
    """A tool error the caller reads (the kit's refusals: denied, too large, unaudited)."""
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class Authorizer:
    """Applies the decision function to calls and to ``tools/list``, and audits every decision.

    For a tool that changes state the ``decision_allowed`` record is written durably before the call
    proceeds (if it cannot be, the call fails closed) and the outcome is audited after it. The kit's
    :class:`~fleetdeck.gate.CallGate` calls it; decisions are remembered per principal object and tool
    (principals are immutable; the access policy and the tools are fixed for the server's life).
    """

    def __init__(self, specs: Mapping[str, ToolSpec], access: AccessPolicy, audit: AuditLog) -> None:
        self._specs = specs
        self._access = access
        self._audit = audit
        self._decisions: dict[tuple[int, str], tuple[Principal, Decision]] = {}

    def decide(self, principal: Principal, spec: ToolSpec) -> Decision:
        """The decision for ``principal`` calling the registered tool ``spec``."""
        key = (id(principal), spec.name)
        known = self._decisions.get(key)
        if known is not None and known[0] is principal:  # the same object, not a recycled id
            return known[1]
        decision = decide(principal, facts(spec), self._access)
        if len(self._decisions) >= _DECISIONS_KEPT:
            self._decisions.clear()
        self._decisions[key] = (principal, decision)
        return decision

    def deny(
        self, ctx: ServerRequestContext[Any, Any], spec: ToolSpec, decision: Decision, call: CallRecord
    ) -> CallToolResult:
        """Audit a denial and answer it: which rule decided, and why."""
        arguments_json(ctx, call)  # serialised once per call; the record's digest is taken from it
        self._audit.submit(AuditEvent.DECISION_DENIED, call, spec.name, decision.rule, decision.reason)
        call.outcome, call.error_class = Outcome.DENIED, decision.rule
        logger.info("denied %s: %s", spec.name, decision.rule, extra={"reason": decision.reason})
        return error_result(f"access denied ({decision.rule}): {decision.reason}")

    def allow(
        self, ctx: ServerRequestContext[Any, Any], spec: ToolSpec, decision: Decision, call: CallRecord
    ) -> None:
        """Audit an allowed read-only call (queued: its record gates nothing)."""
        arguments_json(ctx, call)
        self._audit.submit(AuditEvent.DECISION_ALLOWED, call, spec.name, decision.rule, decision.reason)

    async def admit(
        self, ctx: ServerRequestContext[Any, Any], spec: ToolSpec, decision: Decision, call: CallRecord
    ) -> CallToolResult | None:
        """Audit an allowed call that changes state, durably: None to proceed, or the refusal.

        The ``decision_allowed`` record is committed before the call proceeds; if it cannot be, the
        call fails closed.
        """
        arguments_json(ctx, call)
        try:
            await self._audit.arecord(
                AuditEvent.DECISION_ALLOWED,
                required=True,
                tool=spec.name,
                principal=call.principal,
                call=call,
                rule=decision.rule,
                reason=decision.reason,
            )
        except TelemetryError:
            call.outcome, call.error_class = Outcome.INTERNAL_ERROR, "AuditUnavailable"
            return error_result(
                f"{spec.name} changes state and its audit record could not be written; nothing was changed"
            )
        return None

    async def audited(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, spec: ToolSpec, call: CallRecord
    ) -> HandlerResult:
        """Run a state-changing call and audit how it ended (never changes the result)."""
        digest = argument_digest(arguments_json(ctx, call))
        fields = {"tool": spec.name, "principal": call.principal, "args_digest": digest}
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
        outcome = outcome_of(call, result)
        await self._audit.arecord(
            AuditEvent.OUTCOME, required=False, outcome=outcome.value, reason=call.error_class, **fields
        )
        return result

    def visible_tools(self, principal: Principal, result: HandlerResult) -> HandlerResult:
        """A ``tools/list`` result holding only the tools ``principal`` may call."""

        def visible(name: Any) -> bool:
            spec = self._specs.get(name) if isinstance(name, str) else None
            return spec is not None and self.decide(principal, spec).allowed

        if isinstance(result, ListToolsResult):
            return result.model_copy(update={"tools": [t for t in result.tools if visible(t.name)]})
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            return {**result, "tools": [t for t in result["tools"] if visible(t.get("name"))]}
        return result

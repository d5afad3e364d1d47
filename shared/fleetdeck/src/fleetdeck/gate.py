"""The kit's one middleware: every request runs as its principal; every tool call is checked,
audited and recorded, in one pass.

The principal is resolved once per request and made current (a bad identity proof is refused, never
degraded to less). ``tools/list`` answers only the tools the caller may call. A ``tools/call`` of a
registered tool goes through, in order: the access decision and its audit record (a denial ends
there), the argument-size limit, the approval state of a destructive tool's 2026-07-28 rounds, the
tool, and the audited outcome of a call that changes state. Whatever happened, the call ends as one
invocation event. One pass rather than a chain of middlewares: each layer costs every request a few
function calls, and the per-call facts (principal, tool, event id, trace id, arguments JSON) are
worked out once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_REQUEST

from fleetdeck.auth.approvals import carry_state
from fleetdeck.auth.enforcement import Authorizer, error_result
from fleetdeck.auth.identity import IdentityResolver
from fleetdeck.auth.jwt import AuthenticationError
from fleetdeck.auth.principal import Principal, current_principal
from fleetdeck.auth.workload import WorkloadAuthError
from fleetdeck.errors import Outcome
from fleetdeck.telemetry.events import next_sequence
from fleetdeck.telemetry.middleware import (
    CallRecord,
    CallTelemetry,
    arguments_json,
    current_call,
    current_trace_id,
    outcome_of,
)
from fleetdeck.tool import ToolSpec


class CallGate:
    """Identity, access, audit, limits, approval state and telemetry for every request."""

    def __init__(
        self,
        *,
        identity: IdentityResolver,
        specs: Mapping[str, ToolSpec],
        authorizer: Authorizer,
        telemetry: CallTelemetry,
        max_argument_bytes: int,
    ) -> None:
        self._identity = identity
        self._specs = specs
        self._authorizer = authorizer
        self._telemetry = telemetry
        self._max_argument_bytes = max_argument_bytes

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            principal = self._identity(ctx)
        except (WorkloadAuthError, AuthenticationError) as exc:  # a bad proof never degrades to less
            raise MCPError(INVALID_REQUEST, f"identity refused: {exc}") from exc
        token = current_principal.set(principal)
        try:
            if ctx.method == "tools/call":
                return await self._call(ctx, call_next, principal)
            if ctx.method == "tools/list":
                return self._authorizer.visible_tools(principal, await call_next(ctx))
            return await call_next(ctx)
        finally:
            current_principal.reset(token)

    async def _call(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, principal: Principal
    ) -> HandlerResult:
        params = ctx.params
        name = params.get("name") if params else None
        spec = self._specs.get(name) if isinstance(name, str) else None
        call = CallRecord(next_sequence(), time.time(), current_trace_id(), principal)
        token = current_call.set(call)
        started = time.perf_counter()
        try:
            if spec is None:  # not a tool of this server: the SDK's own answer, recorded as unknown
                result = await call_next(ctx)
            else:
                result = await self._checked(ctx, call_next, spec, call)
        except anyio.get_cancelled_exc_class():
            self._telemetry.emit(ctx, spec, call, Outcome.CANCELLED, time.perf_counter() - started)
            raise
        except BaseException as exc:
            call.error_class = type(exc).__name__
            outcome = call.outcome or Outcome.INTERNAL_ERROR
            self._telemetry.emit(ctx, spec, call, outcome, time.perf_counter() - started)
            raise
        finally:
            current_call.reset(token)
        outcome = outcome_of(call, result)
        self._telemetry.emit(ctx, spec, call, outcome, time.perf_counter() - started)
        return result

    async def _checked(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, spec: ToolSpec, call: CallRecord
    ) -> HandlerResult:
        authorizer = self._authorizer
        size = len(arguments_json(ctx, call))  # serialised once: this limit and the audit digest
        decision = authorizer.decide(call.principal, spec)
        if not decision.allowed:
            return authorizer.deny(ctx, spec, decision, call)
        if spec.read_only:
            authorizer.allow(ctx, spec, decision, call)
        elif (refusal := await authorizer.admit(ctx, spec, decision, call)) is not None:
            return refusal
        if size > self._max_argument_bytes:
            call.outcome, call.error_class = Outcome.INVALID_INPUT, "ArgumentsTooLarge"
            return error_result(f"arguments are {size} bytes; the limit is {self._max_argument_bytes}")
        if spec.read_only:
            return await call_next(ctx)
        if spec.destructive:
            return await authorizer.audited(ctx, lambda c: carry_state(c, call_next), spec, call)
        return await authorizer.audited(ctx, call_next, spec, call)

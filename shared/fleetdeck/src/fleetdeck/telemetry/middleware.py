"""The middleware that records one invocation event per ``tools/call`` (never ``tools/list``).

It observes and never changes the result: the event is handed to a non-blocking sink and the
call returns exactly what the tool produced. Tool bodies report *why* they failed through the
:class:`CallRecord` the kit's tool wrapper fills in; an error result the wrapper never saw is an
argument-validation failure from the SDK.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace

from fleetdeck.auth.principal import current_principal
from fleetdeck.errors import Outcome
from fleetdeck.manifest.digest import canonical_json
from fleetdeck.telemetry.events import InvocationEvent, pseudonymise
from fleetdeck.telemetry.metrics import Metrics
from fleetdeck.tool import ToolSpec

UNKNOWN_TOOL = "<unknown>"


@dataclass(slots=True)
class CallRecord:
    """Filled in by the tool wrapper while a call runs (shared across the worker-thread hop)."""

    outcome: Outcome | None = None
    error_class: str | None = None
    arguments_json: str | None = None


current_call: ContextVar[CallRecord | None] = ContextVar("fleetdeck_current_call", default=None)


def arguments_json(ctx: ServerRequestContext[Any, Any]) -> str:
    """The canonical JSON of the call's arguments, serialised once per call (limit and audit digest)."""
    record = current_call.get()
    if record is not None and record.arguments_json is not None:
        return record.arguments_json
    arguments = (ctx.params.get("arguments") if ctx.params else None) or {}
    try:
        text = canonical_json(dict(arguments))
    except (TypeError, ValueError):  # not JSON (NaN, odd objects): its repr, still stable
        text = repr(sorted(dict(arguments).items()))
    if record is not None:
        record.arguments_json = text
    return text


def _client_name(ctx: ServerRequestContext[Any, Any]) -> str | None:
    params = ctx.session.client_params if ctx.session is not None else None
    return params.client_info.name[:256] if params is not None else None


def is_error_result(result: HandlerResult) -> bool:
    """Whether a tool result is an error (the SDK hands back a model or its wire dict)."""
    if isinstance(result, CallToolResult):
        return result.is_error is True
    return isinstance(result, dict) and result.get("isError") is True


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


class TelemetryMiddleware:
    """Times every tool call and emits an :class:`InvocationEvent` to ``sink``."""

    def __init__(
        self,
        *,
        server: str,
        team: str,
        specs: Mapping[str, ToolSpec],
        metrics: Metrics,
        sink: Callable[[InvocationEvent], None],
        pseudonym_key: Callable[[], bytes],
    ) -> None:
        self._server = server
        self._team = team
        self._specs = specs
        self._metrics = metrics
        self._sink = sink
        self._key = pseudonym_key
        self._labelled: dict[tuple[str, Outcome], tuple[Any, Any]] = {}
        self._user_hashes: dict[str, str] = {}
        meter = otel_metrics.get_meter("fleetdeck")
        self._otel_calls = meter.create_counter("fleetdeck.tool.calls", description="Tool calls by outcome.")
        self._otel_duration = meter.create_histogram(
            "fleetdeck.tool.duration", unit="s", description="Tool time."
        )

    def _children(self, tool: str, outcome: Outcome) -> tuple[Any, Any]:
        """The labelled metric children for (tool, outcome), cached: tool names are known."""
        key = (tool, outcome)
        children = self._labelled.get(key)
        if children is None:
            children = (
                self._metrics.tool_calls.labels(self._server, tool, outcome.value),
                self._metrics.tool_duration.labels(self._server, tool),
            )
            self._labelled[key] = children
        return children

    def _user_hash(self, subject: str) -> str | None:
        """The pseudonym of ``subject``, remembered (one HMAC per user, not per call)."""
        known = self._user_hashes.get(subject)
        if known is None:
            known = pseudonymise(subject, self._key())
            if known is None:
                return None
            if len(self._user_hashes) >= 4096:
                self._user_hashes.clear()
            self._user_hashes[subject] = known
        return known

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        record = CallRecord()
        token = current_call.set(record)
        started = time.perf_counter()
        try:
            result = await call_next(ctx)
        except anyio.get_cancelled_exc_class():
            self._emit(ctx, record, Outcome.CANCELLED, started)
            raise
        except BaseException as exc:
            self._emit(ctx, record, record.outcome or Outcome.INTERNAL_ERROR, started, type(exc).__name__)
            raise
        finally:
            current_call.reset(token)
        if is_error_result(result):
            outcome = record.outcome or Outcome.INVALID_INPUT
        else:
            outcome = record.outcome or Outcome.OK
        self._emit(ctx, record, outcome, started, record.error_class)
        return result

    def _emit(
        self,
        ctx: ServerRequestContext[Any, Any],
        record: CallRecord,
        outcome: Outcome,
        started: float,
        error_class: str | None = None,
    ) -> None:
        duration = time.perf_counter() - started
        requested = ctx.params.get("name") if ctx.params else None
        spec = self._specs.get(requested) if isinstance(requested, str) else None
        tool = spec.name if spec else UNKNOWN_TOOL  # caller-supplied names never become labels
        principal = current_principal.get()
        event = InvocationEvent(
            server=self._server,
            tool=tool,
            team=self._team,
            outcome=outcome,
            error_class=error_class or record.error_class,
            duration_ms=duration * 1000.0,
            minutes_saved=spec.minutes_saved if spec else 0.0,
            user_hash=self._user_hash(principal.user.subject) if principal.user else None,
            workload=principal.workload.spiffe_id if principal.workload else None,
            client_name=_client_name(ctx),
            protocol_version=ctx.protocol_version,
            trace_id=current_trace_id(),
        )
        calls, durations = self._children(tool, outcome)
        calls.inc()
        durations.observe(duration)
        attributes = {
            "mcp.server": self._server,
            "gen_ai.tool.name": tool,
            "fleetdeck.outcome": outcome.value,
        }
        self._otel_calls.add(1, attributes)
        self._otel_duration.record(duration, attributes)
        self._sink(event)

"""The telemetry step of the kit's middleware: one invocation event per ``tools/call`` (never ``tools/list``).

:class:`~fleetdeck.gate.CallGate` opens a :class:`CallRecord` for every call and hands it to
:meth:`CallTelemetry.emit` when the call ends. Telemetry observes and never changes the result: the
event goes to a non-blocking sink. Tool bodies report *why* they failed through the record the
kit's tool wrapper fills in; an error result the wrapper never saw is an argument-validation failure
from the SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.types import CallToolResult
from opentelemetry import trace
from opentelemetry.metrics import Counter, Histogram, Meter

from fleetdeck.auth.principal import Principal
from fleetdeck.errors import Outcome
from fleetdeck.manifest.digest import canonical_json
from fleetdeck.telemetry.events import EventRecipe, InvocationEvent, event_id_of, pseudonymise
from fleetdeck.telemetry.metrics import Metrics
from fleetdeck.tool import ToolSpec

UNKNOWN_TOOL = "<unknown>"


@dataclass(slots=True)
class CallRecord:
    """One call's facts, filled in while it runs (shared across the worker-thread hop).

    ``sequence`` (from :func:`~fleetdeck.telemetry.events.next_sequence`) and ``started`` (wall clock)
    make the call's event id; the audit record of its access decision carries the same id, so the
    two tables join.
    """

    sequence: int
    started: float
    trace_id: str | None
    principal: Principal
    outcome: Outcome | None = None
    error_class: str | None = None
    arguments_json: bytes | None = None

    @property
    def event_id(self) -> str:
        """The id of the call's invocation event (the same whichever thread asks)."""
        return event_id_of(self.started, self.sequence)


current_call: ContextVar[CallRecord | None] = ContextVar("fleetdeck_current_call", default=None)


def arguments_json(ctx: ServerRequestContext[Any, Any], call: CallRecord) -> bytes:
    """The call's arguments as JSON, serialised once per call (the size limit and the audit digest)."""
    if call.arguments_json is not None:
        return call.arguments_json
    arguments = (ctx.params.get("arguments") if ctx.params else None) or {}
    call.arguments_json = text = encode_arguments(arguments)
    return text


def encode_arguments(arguments: Mapping[str, Any]) -> bytes:
    """Arguments as UTF-8 JSON with sorted keys: the same arguments always give the same bytes.

    ``orjson`` (one C call) unless its output may be lossy: it writes NaN and ±Infinity as ``null``
    and refuses integers beyond 64 bits, so those (and any text holding ``null``) take the strict
    canonical encoder, and what that refuses (NaN, odd objects) is encoded by its ``repr``.
    """
    try:
        text = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
        if b"null" not in text:
            return text
    except orjson.JSONEncodeError:
        pass
    try:
        return canonical_json(dict(arguments)).encode()
    except (TypeError, ValueError):
        return repr(sorted(dict(arguments).items())).encode()


def _client_name(ctx: ServerRequestContext[Any, Any]) -> str | None:
    params = ctx.session.client_params if ctx.session is not None else None
    return params.client_info.name[:256] if params is not None else None


def outcome_of(call: CallRecord, result: HandlerResult) -> Outcome:
    """How a call that returned ``result`` ended: what the tool wrapper noted, else from the result.

    An error result the wrapper never saw is the SDK's argument validation (``invalid_input``). The
    SDK hands back the result as a model or as its wire dict.
    """
    if call.outcome is not None:
        return call.outcome
    if isinstance(result, CallToolResult):
        failed = result.is_error is True
    else:
        failed = isinstance(result, dict) and result.get("isError") is True
    return Outcome.INVALID_INPUT if failed else Outcome.OK


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or None outside a recorded trace."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


class CallTelemetry:
    """Turns each finished call into metric updates and an :class:`InvocationEvent` for ``sink``.

    On the event loop a call costs only the metric tallies and one queued recipe; the event itself
    (event id, pseudonym) is built from it on the writer thread.

    ``meter``: where the OpenTelemetry call counter and duration histogram go; the server passes one
    only when an OTLP endpoint takes them (otherwise they would go nowhere — ``/metrics`` has the same
    counts — and cost every call a few frames).
    """

    def __init__(
        self,
        *,
        server: str,
        team: str,
        metrics: Metrics,
        sink: Callable[[EventRecipe], None],
        pseudonym_key: Callable[[], bytes],
        meter: Meter | None,
    ) -> None:
        self._server = server
        self._team = team
        self._metrics = metrics
        self.sink = sink
        """Where events go (the server points it at its writer while it runs)."""
        self._key = pseudonym_key
        self._user_hashes: dict[str, str] = {}
        self._otel: tuple[Counter, Histogram] | None = None
        if meter is not None:
            self._otel = (
                meter.create_counter("fleetdeck.tool.calls", description="Tool calls by outcome."),
                meter.create_histogram("fleetdeck.tool.duration", unit="s", description="Tool time."),
            )

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

    def emit(
        self,
        ctx: ServerRequestContext[Any, Any],
        spec: ToolSpec | None,
        call: CallRecord,
        outcome: Outcome,
        duration: float,
    ) -> None:
        """Record one finished call; ``spec`` is None for a tool this server does not have."""
        tool = spec.name if spec else UNKNOWN_TOOL  # caller-supplied names never become labels
        label = outcome._value_  # the plain string (Enum's ``value`` descriptor costs a call per call)
        self._metrics.tool_calls.observe(self._server, tool, label, duration)
        if self._otel is not None:
            attributes = {"mcp.server": self._server, "gen_ai.tool.name": tool, "fleetdeck.outcome": label}
            self._otel[0].add(1, attributes)
            self._otel[1].record(duration, attributes)
        client, protocol = _client_name(ctx), ctx.protocol_version  # not the session: it would stay alive
        self.sink(partial(self._event, tool, spec, call, outcome, duration, client, protocol))

    def _event(
        self,
        tool: str,
        spec: ToolSpec | None,
        call: CallRecord,
        outcome: Outcome,
        duration: float,
        client_name: str | None,
        protocol_version: str | None,
    ) -> InvocationEvent:
        """The invocation event of a finished call (on the writer thread)."""
        user, workload = call.principal.user, call.principal.workload
        return InvocationEvent(
            server=self._server,
            tool=tool,
            team=self._team,
            outcome=outcome,
            error_class=call.error_class,
            duration_ms=duration * 1000.0,
            minutes_saved=spec.minutes_saved if spec else 0.0,
            user_hash=self._user_hash(user.subject) if user else None,
            workload=workload.spiffe_id if workload else None,
            client_name=client_name,
            protocol_version=protocol_version,
            trace_id=call.trace_id,
            ts=call.started,
            event_id=call.event_id,
        )

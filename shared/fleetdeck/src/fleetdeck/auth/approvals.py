"""Human approval for destructive tools: asked through the SDK's resolvers, bound, single use, audited.

A tool registered with ``destructive=True`` gets two hidden parameters the SDK fills *before* the body
runs (resolver parameters never appear in the tool's input schema):

- a **ticket** (a pure resolver): who is asking (a human is required), the canonical JSON of the
  validated arguments, the *binding digest* ``sha256(server, tool, user issuer + subject, workload,
  arguments)``, and a pending row in the shared ``approvals`` table (random id, digest, expiry),
  written — and audited as ``approval_requested`` — before the human is asked;
- the **answer**: ``Annotated[ElicitationResult[Approval], Resolve(ask)]`` where ``ask`` returns
  ``Elicit(message, Approval)``; the message states the server, environment, tool, exact arguments,
  on-behalf-of user and workload, the approval id and its expiry.

The wrapper then settles it: anything but *accept with approve=true* closes the row and refuses;
an acceptance is consumed atomically in the shared store (``UPDATE approvals SET consumed_at=now
WHERE id=? AND consumed_at IS NULL AND expires > now AND digest=?``, exactly one row), audited
durably as ``approval_accepted`` (failing closed), and only then does the body run. A replay, other
arguments, another caller, or an expired approval changes no row, so it is refused.

**Both protocol eras.** On 2025-11-25 the SDK sends ``elicitation/create`` mid-call: one round, one
row. On 2026-07-28 the server answers *input required* and the client retries with the answer and
the echoed ``requestState``; every resolver re-runs on the retry, and the SDK accepts the answer
only if the question renders byte-for-byte as it did when it was asked. So the retry must find the
*same* pending row: :func:`carry_state` (inside the SDK's sealing boundary) wraps the
SDK's request state as ``{"fleetdeck.approval": <id>, "s": <sdk state>}`` on the way out and unwraps
it on the way in; the boundary seals it with AES-GCM under the shared sealing keys and binds it to
the tool, its arguments and an expiry. The ticket resolver loads the row by that id, checks it is
still pending, unexpired and bound to the same digest, and re-renders the identical question from
it. Any replica with the same keys and the same store completes the call; a second completion
finds the row consumed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

import anyio
from pydantic import BaseModel, Field

from fleetdeck.auth.approval_store import (
    ApprovalStore,
    PendingApproval,
    binding_digest,
    jsonable_arguments,
    principal_key,
)
from fleetdeck.auth.audit import AuditEvent, AuditLog
from fleetdeck.auth.principal import Principal, current_principal
from fleetdeck.errors import AccessDeniedError, ConfigError, FleetdeckError, Outcome
from fleetdeck.manifest.digest import canonical_json

if TYPE_CHECKING:  # the SDK is imported only when a server is built (keeps the CLI fast)
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from mcp.server.mcpserver import Context

    from fleetdeck.settings import FleetdeckSettings

logger = logging.getLogger(__name__)

TICKET_PARAM: Final = "fleetdeck_approval_ticket_"
ANSWER_PARAM: Final = "fleetdeck_approval_"
CONTEXT_PARAM: Final = "fleetdeck_context_"
STATE_KEY: Final = "fleetdeck.approval"
INPUT_REQUIRED_VERSION: Final = "2026-07-28"


class Approval(BaseModel):
    """What the human fills in: nothing runs unless ``approve`` is true."""

    approve: bool = Field(
        title="Approve", description="Run exactly the change described above, once, on my behalf."
    )


# -- the shared store --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the ticket resolver hands the question and the wrapper: the row and this round's binding."""

    approval: PendingApproval
    digest: str
    args_digest: str
    message: str


# -- carrying the approval id between 2026-07-28 rounds -------------------------------------------------


@dataclass(slots=True)
class _Carrier:
    incoming: str | None = None
    outgoing: str | None = None


_carrier: ContextVar[_Carrier | None] = ContextVar("fleetdeck_approval_carrier", default=None)


def split_state(state: str) -> tuple[str | None, str]:
    """(approval id, the SDK's own state) from a request state this middleware wrapped."""
    try:
        document = json.loads(state)
    except ValueError:
        return None, state
    if (
        isinstance(document, dict)
        and set(document) == {STATE_KEY, "s"}
        and isinstance(document[STATE_KEY], str)
        and isinstance(document["s"], str)
    ):
        return document[STATE_KEY], document["s"]
    return None, state


def join_state(approval_id: str, state: str) -> str:
    """The SDK's state wrapped with the approval id (the boundary then seals the whole)."""
    return json.dumps({STATE_KEY: approval_id, "s": state}, separators=(",", ":"))


async def carry_state(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Run a destructive tool's call carrying its pending approval id inside the sealed ``requestState``.

    The kit's :class:`~fleetdeck.gate.CallGate` runs it inside the SDK's request-state boundary (as
    every middleware), so it sees and produces the plaintext the boundary verifies and seals.
    """
    params = ctx.params
    carrier = _Carrier()
    state = params.get("requestState") if params else None
    if params is not None and isinstance(state, str):
        carrier.incoming, inner = split_state(state)
        ctx = replace(ctx, params={**params, "requestState": inner})
    token = _carrier.set(carrier)
    try:
        result = await call_next(ctx)
    finally:
        _carrier.reset(token)
    return _attach(result, carrier.outgoing)


def _attach(result: HandlerResult, approval_id: str | None) -> HandlerResult:
    from mcp_types.methods import is_input_required

    if approval_id is None or not is_input_required(result):
        return result
    if isinstance(result, Mapping):
        state = result.get("requestState")
        if not isinstance(state, str):
            return result
        return {**result, "requestState": join_state(approval_id, state)}
    if not isinstance(result.request_state, str):
        return result
    return result.model_copy(update={"request_state": join_state(approval_id, result.request_state)})


# -- the guard ---------------------------------------------------------------------------------------


def _input_required_era(protocol_version: str | None) -> bool:
    from mcp_types.version import is_version_at_least

    return protocol_version is not None and is_version_at_least(protocol_version, INPUT_REQUIRED_VERSION)


def _can_elicit(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared form elicitation (the SDK's own test: bare or form, not url-only)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _shown(value: str) -> str:
    """A caller-controlled string as quoted ASCII JSON: no control, invisible or bidi characters."""
    return canonical_json(value[:512])


def _note_outcome(outcome: Outcome, error_class: str) -> None:
    from fleetdeck.telemetry.middleware import current_call

    record = current_call.get()
    if record is not None:
        record.outcome, record.error_class = outcome, error_class


class ApprovalGuard:
    """Builds approval-guarded tool functions for one server and settles their approvals."""

    def __init__(
        self,
        *,
        server: str,
        settings: FleetdeckSettings,
        audit: AuditLog,
        store: ApprovalStore | None = None,
    ) -> None:
        self.server = server
        self.settings = settings.approvals
        self.environment = settings.approvals.environment_label or settings.environment
        self.audit = audit
        self.store = store or ApprovalStore(settings.approvals.store_url or settings.telemetry_url())

    # -- the question --------------------------------------------------------------------------------

    def message(self, row: PendingApproval, principal: Principal, arguments: Mapping[str, Any]) -> str:
        """The question: server, environment, tool, exact arguments, who, approval id and expiry."""
        shown = canonical_json(dict(arguments))
        limit = self.settings.max_shown_argument_chars
        if len(shown) > limit:
            digest = hashlib.sha256(shown.encode()).hexdigest()
            shown = (
                f"{shown[:limit]} ... [TRUNCATED: {len(shown) - limit} more characters not shown; "
                f"sha256 of the full arguments {digest}]"
            )
        user, workload = principal.user, principal.workload
        who = f"{_shown(user.subject)} (issuer {_shown(user.issuer)})" if user else "nobody"
        via = f" via workload {_shown(workload.spiffe_id)}" if workload else " (direct, no workload)"
        expires = datetime.fromtimestamp(row.expires, UTC).isoformat(timespec="seconds")
        return (
            f"Approve a destructive action on server {_shown(self.server)} "
            f"in environment {_shown(self.environment)}?\n"
            f"Tool: {_shown(row.tool)}\n"
            f"Arguments: {shown}\n"
            f"On behalf of: {who}{via}\n"
            f"Approval {row.id}, single use, valid until {expires}.\n"
            "It runs exactly once with exactly these arguments only if you accept with approve = true; "
            "anything else changes nothing."
        )

    # -- resolvers -----------------------------------------------------------------------------------

    async def ticket(self, ctx: Context[Any, Any], tool: str, arguments: Mapping[str, Any]) -> Ticket:
        """The ticket resolver's body: refuse early, or find/create the pending row of this call."""
        from mcp.server.mcpserver.exceptions import ToolError

        try:
            return await self._ticket(ctx, tool, arguments)
        except FleetdeckError as exc:
            _note_outcome(exc.outcome, type(exc).__name__)
            raise ToolError(str(exc)) from exc

    async def _ticket(self, ctx: Context[Any, Any], tool: str, arguments: Mapping[str, Any]) -> Ticket:
        principal = current_principal.get()
        shown = jsonable_arguments(arguments)
        args_digest = hashlib.sha256(canonical_json(shown).encode()).hexdigest()
        carrier = _carrier.get()
        multi_round = _input_required_era(ctx.protocol_version)
        if multi_round and carrier is None:
            raise ConfigError("approvals need carry_state around the call (2026-07-28 rounds)")
        fields: dict[str, Any] = {"tool": tool, "principal": principal, "args_digest": args_digest}
        if principal.user is None:
            await self._refuse(
                fields, None, "no-human", f"{tool} needs a human to approve it; this call has no user"
            )
        digest = binding_digest(self.server, tool, principal, shown)
        carried = carrier.incoming if multi_round and carrier is not None else None
        if carried is not None:
            row = await anyio.to_thread.run_sync(self.store.get, carried)
            rule, problem = self._problem(row, digest, tool)
            if problem:
                await self._refuse(fields, carried, rule, problem)
            assert row is not None
        else:
            if not _can_elicit(ctx):
                await self._refuse(
                    fields,
                    None,
                    "no-elicitation",
                    f"{tool} needs your approval, but this client cannot ask you (no elicitation capability)",
                )
            row = await anyio.to_thread.run_sync(
                functools.partial(
                    self.store.create,
                    digest=digest,
                    principal=principal_key(principal),
                    server=self.server,
                    tool=tool,
                    ttl_s=self.settings.ttl_s,
                )
            )
            expires = datetime.fromtimestamp(row.expires, UTC).isoformat(timespec="seconds")
            await self.audit.arecord(
                AuditEvent.APPROVAL_REQUESTED,
                required=True,
                approval_id=row.id,
                reason=f"expires {expires}",
                **fields,
            )
        if carrier is not None:
            carrier.outgoing = row.id
        return Ticket(
            approval=row, digest=digest, args_digest=args_digest, message=self.message(row, principal, shown)
        )

    def _problem(self, row: PendingApproval | None, digest: str, tool: str) -> tuple[str, str | None]:
        if row is None or row.server != self.server or row.tool != tool:
            return "approval-unknown", "the approval is unknown here"
        if not hmac.compare_digest(row.digest, digest):
            return "approval-mismatch", "the approval was given for other arguments or another caller"
        if row.consumed_at is not None:
            return "approval-used", f"the approval was already {row.decision or 'used'}; call the tool again"
        if row.expires <= self.store.clock():
            return "approval-expired", "the approval expired; call the tool again"
        return "", None

    async def _refuse(self, fields: dict[str, Any], approval_id: str | None, rule: str, reason: str) -> None:
        await self.audit.arecord(
            AuditEvent.APPROVAL_REFUSED,
            required=False,
            approval_id=approval_id,
            rule=rule,
            reason=reason,
            **fields,
        )
        raise AccessDeniedError(f"refused ({rule}): {reason}; nothing was changed")

    async def settle(self, tool: str, ticket: Ticket, answer: Any) -> None:
        """Consume an accepted approval (once, durably audited) or refuse; raises unless the body may run."""
        from mcp.server.elicitation import AcceptedElicitation

        principal = current_principal.get()
        approval_id = ticket.approval.id
        fields: dict[str, Any] = {"tool": tool, "principal": principal, "args_digest": ticket.args_digest}
        accepted = isinstance(answer, AcceptedElicitation) and isinstance(answer.data, Approval)
        if not (accepted and answer.data.approve is True):
            action = "accept without approve" if accepted else str(getattr(answer, "action", "nothing"))
            await anyio.to_thread.run_sync(self.store.close_unused, approval_id, "declined")
            await self.audit.arecord(
                AuditEvent.APPROVAL_DECLINED,
                required=False,
                approval_id=approval_id,
                rule="approval-declined",
                reason=f"the user answered: {action}",
                **fields,
            )
            raise AccessDeniedError(
                f"{tool} was not approved (the user answered: {action}); nothing was changed"
            )
        consumed = await anyio.to_thread.run_sync(self.store.consume, approval_id, ticket.digest)
        if not consumed:
            row = await anyio.to_thread.run_sync(self.store.get, approval_id)
            rule, problem = self._problem(row, ticket.digest, tool)
            await self._refuse(
                fields, approval_id, rule or "approval-used", problem or "the approval was already used"
            )
        await self.audit.arecord(
            AuditEvent.APPROVAL_ACCEPTED, required=True, approval_id=approval_id, **fields
        )

    # -- the wrapper ---------------------------------------------------------------------------------

    def wrap(self, fn: Callable[..., Any], *, tool: str) -> Callable[..., Any]:
        """``fn`` with the hidden ticket and answer parameters; the body runs only after :meth:`settle`."""
        from mcp.server.elicitation import ElicitationResult
        from mcp.server.mcpserver import Context
        from mcp.server.mcpserver.resolve import Elicit, Resolve, find_resolved_parameters
        from mcp.server.mcpserver.utilities.context_injection import find_context_parameter
        from mcp.shared._callable_inspection import is_async_callable

        signature = inspect.signature(fn, eval_str=True)
        for parameter in signature.parameters.values():
            if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise ConfigError(f"destructive tool {tool} may not take *args or **kwargs")
            if parameter.name in (TICKET_PARAM, ANSWER_PARAM, CONTEXT_PARAM):
                raise ConfigError(f"destructive tool {tool} may not name a parameter {parameter.name}")
        skipped = {find_context_parameter(fn), *find_resolved_parameters(fn)}
        argument_names = [name for name in signature.parameters if name not in skipped]
        guard = self
        keyword = inspect.Parameter.KEYWORD_ONLY

        async def ticket(**kwargs: Any) -> Ticket:
            ctx = kwargs.pop(CONTEXT_PARAM)
            return await guard.ticket(ctx, tool, kwargs)

        ticket.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(CONTEXT_PARAM, keyword, annotation=Context),
                *(inspect.Parameter(name, keyword) for name in argument_names),
            ],
            return_annotation=Ticket,
        )
        ticket.__annotations__ = {CONTEXT_PARAM: Context, "return": Ticket}
        ticket.__qualname__ = f"approval_ticket[{tool}]"  # the SDK's wire key: same on every replica
        ticket_type = Annotated[Ticket, Resolve(ticket)]

        async def ask(pending: Ticket) -> Elicit[Approval]:
            return Elicit(pending.message, Approval)

        ask.__annotations__ = {"pending": ticket_type, "return": Elicit[Approval]}
        ask.__qualname__ = f"approval[{tool}]"
        answer_type = Annotated[ElicitationResult[Approval], Resolve(ask)]

        @functools.wraps(fn)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            ticket_value = kwargs.pop(TICKET_PARAM)
            answer = kwargs.pop(ANSWER_PARAM)
            await guard.settle(tool, ticket_value, answer)
            if is_async_callable(fn):
                return await fn(*args, **kwargs)
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

        parameters = [
            *signature.parameters.values(),
            inspect.Parameter(TICKET_PARAM, keyword, annotation=ticket_type),
            inspect.Parameter(ANSWER_PARAM, keyword, annotation=answer_type),
        ]
        guarded.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        annotations = {
            p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty
        }
        if signature.return_annotation is not inspect.Signature.empty:
            annotations["return"] = signature.return_annotation
        guarded.__annotations__ = annotations
        return guarded

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()


def require_approval(fn: Callable[..., Any], *, tool: str, guard: ApprovalGuard) -> Callable[..., Any]:
    """``fn`` guarded by a human approval (see the module docstring)."""
    return guard.wrap(fn, tool=tool)

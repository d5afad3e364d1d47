"""Who may use what: the governance gate, drift, then the shared decision function.

The answer for a tool is exactly :func:`fleetdeck.auth.policy.decide` over the facts the manifest
declares, so it matches what the server itself enforces for the same principal — once the server
is in the agent catalog (all reviews approve its current digest, none expired, no drift).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetdeck.auth.policy import Decision, ToolFacts, decide
from fleetdeck.auth.principal import Principal, User, Workload
from fleetdeck.errors import InvalidInputError
from fleetdeck_registry.catalog import ServerEntry

_ANY_TOOL = ToolFacts(name="(any tool)", read_only=True, policy=None)


@dataclass(frozen=True, slots=True)
class AccessAnswer:
    """Allow or deny, the deciding rule, and why."""

    allowed: bool
    rule: str
    reason: str
    server: str
    tool: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "decision": "allow" if self.allowed else "deny",
            "rule": self.rule,
            "reason": self.reason,
            "server": self.server,
            "tool": self.tool,
        }


def principal_key(principal: Principal) -> tuple[Any, ...]:
    """What a decision depends on (the subject only names the caller in reasons)."""
    user, workload = principal.user, principal.workload
    return (
        None if user is None else (tuple(sorted(user.groups)), tuple(sorted(user.roles))),
        None if workload is None else workload.spiffe_id,
        principal.surface,
    )


def server_decision(principal: Principal, entry: ServerEntry) -> Decision:
    """Whether ``principal`` may use at least one tool of ``entry`` (the first denial otherwise)."""
    facts: Iterable[ToolFacts] = entry.tool_facts.values() or (_ANY_TOOL,)
    first: Decision | None = None
    for tool in facts:
        decision = decide(principal, tool, entry.access)
        if decision.allowed:
            return decision
        first = first or decision
    assert first is not None  # facts is never empty
    return first


def check_access(
    principal: Principal, entry: ServerEntry | None, name: str, tool: str | None, drift: str | None
) -> AccessAnswer:
    """The registry's answer to "may ``principal`` use server ``name`` (tool ``tool``)?"."""
    if entry is None:
        return AccessAnswer(False, "unknown-server", f"no server called {name!r} is registered", name, tool)
    server = entry.name
    if not entry.approved:
        reason = "not approved for agents: " + "; ".join(entry.reasons)
        return AccessAnswer(False, "review", reason, server, tool)
    if drift is not None:
        return AccessAnswer(
            False, "drift", f"the live tool surface differs from the approved one: {drift}", server, tool
        )
    if tool is None:
        decision = server_decision(principal, entry)
        reason = decision.reason
        if decision.allowed:
            reason = f"{principal.describe()} may use {server}"
        return AccessAnswer(decision.allowed, decision.rule, reason, server, None)
    facts = entry.tool_facts.get(tool)
    if facts is None:
        return AccessAnswer(False, "unknown-tool", f"{server} has no tool called {tool!r}", server, tool)
    decision = decide(principal, facts, entry.access)
    return AccessAnswer(decision.allowed, decision.rule, decision.reason, server, tool)


def _strings(value: Any, field: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value) or len(value) > 200:
        raise InvalidInputError(f"{field} must be a list of at most 200 strings")
    return frozenset(value)


def subject_principal(body: dict[str, Any], caller: Principal) -> Principal:
    """The principal a check asks about: ``user``/``workload``/``surface`` in ``body``, else the caller."""
    if not any(key in body for key in ("user", "workload", "surface")):
        return caller
    user_data, workload = body.get("user"), body.get("workload")
    user = None
    if user_data is not None:
        if not isinstance(user_data, dict) or not isinstance(user_data.get("subject"), str):
            raise InvalidInputError("user must be an object with a subject (and groups, roles)")
        user = User(
            subject=user_data["subject"][:200],
            issuer="asserted",
            proven_by="bearer-jwt",
            groups=_strings(user_data.get("groups"), "user.groups"),
            roles=_strings(user_data.get("roles"), "user.roles"),
        )
    if workload is not None and (not isinstance(workload, str) or not workload.startswith("spiffe://")):
        raise InvalidInputError("workload must be a SPIFFE ID (spiffe://…)")
    surface = body.get("surface")
    if surface is not None and not isinstance(surface, str):
        raise InvalidInputError("surface must be a string")
    return Principal(
        user=user,
        workload=Workload(spiffe_id=workload, proven_by="jwt-svid") if workload else None,
        surface=surface,
    )

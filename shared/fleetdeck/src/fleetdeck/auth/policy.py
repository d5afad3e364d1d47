"""Access policy and the one decision function: may this principal call this tool, and why.

:func:`decide` is pure and explainable — it returns which rule decided and a reason a person can
read — so the server enforces it at call time, filters ``tools/list`` with it, and the registry
answers "may user X use tool Y?" from the manifest with the very same function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from fleetdeck.auth.principal import Principal
from fleetdeck.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
POLICY_ATTRIBUTE = "__fleetdeck_policy__"
REGISTERED_ATTRIBUTE = "__fleetdeck_tool__"
ANY = "*"


class ToolPolicy(BaseModel):
    """Who may call one tool. Each non-empty list must be satisfied (any one entry of it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: tuple[str, ...] = Field(default=(), description="The user must be in one of these groups.")
    roles: tuple[str, ...] = Field(default=(), description="The user must hold one of these roles.")
    workloads: tuple[str, ...] = Field(
        default=(), description="The calling workload must match one (SPIFFE ID, or a prefix ending in /*)."
    )
    surfaces: tuple[str, ...] = Field(default=(), description="The call must come from one of these.")


class AccessPolicy(BaseModel):
    """Who may use a server at all (in settings, exported to the manifest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    business_groups: tuple[str, ...] = Field(
        default=(), description="Users must be in one of these groups; '*' admits every verified user."
    )
    delegating_workloads: tuple[str, ...] = Field(
        default=(), description="Workloads allowed to call on behalf of a user ('*' = any verified workload)."
    )
    service_workloads: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Workload pattern -> tools it may call with no user; '*' grants every read-only tool, "
        "a tool that changes state must be named.",
    )


@dataclass(frozen=True, slots=True)
class ToolFacts:
    """What a decision needs to know about a tool (from the live server or from its manifest)."""

    name: str
    read_only: bool
    policy: ToolPolicy | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer, the rule that gave it, and why."""

    allowed: bool
    rule: str
    reason: str


def matches(spiffe_id: str, patterns: Iterable[str]) -> bool:
    """Whether ``spiffe_id`` equals a pattern or falls under a ``…/*`` prefix pattern (or ``*``)."""
    for pattern in patterns:
        if pattern in (ANY, spiffe_id):
            return True
        if pattern.endswith("/*") and spiffe_id.startswith(pattern[:-1]):
            return True
    return False


def _list(names: Iterable[str]) -> str:
    return ", ".join(names)


def _deny(rule: str, reason: str) -> Decision:
    return Decision(False, rule, reason)


def _server_rules(principal: Principal, tool: ToolFacts, access: AccessPolicy) -> Decision | None:
    user, workload = principal.user, principal.workload
    if user is None:
        if workload is None:
            return _deny("authentication", "no verified user or workload")
        return _service_rules(workload.spiffe_id, tool, access)
    if ANY not in access.business_groups and not user.groups & set(access.business_groups):
        allowed = ", ".join(access.business_groups) or "none configured"
        return _deny("business-groups", f"{user.subject} is in none of the server's groups ({allowed})")
    if workload is not None and not matches(workload.spiffe_id, access.delegating_workloads):
        return _deny("delegation", f"{workload.spiffe_id} may not act on behalf of users")
    return None


def _service_rules(spiffe_id: str, tool: ToolFacts, access: AccessPolicy) -> Decision | None:
    """A workload calling with no user: only what ``service_workloads`` grants it."""
    granted = next((tools for p, tools in access.service_workloads.items() if matches(spiffe_id, [p])), None)
    if granted is None:
        return _deny("service-access", f"{spiffe_id} may not call without a user")
    if tool.name in granted or (ANY in granted and tool.read_only):
        return None
    if ANY in granted:
        return _deny("service-access", f"{tool.name} changes state: without a user, grant it by name")
    return _deny("service-access", f"{spiffe_id} is not granted {tool.name} without a user")


def _tool_rules(principal: Principal, tool: ToolFacts) -> Decision | None:
    policy = tool.policy
    if policy is None:
        return None
    user, workload = principal.user, principal.workload
    if policy.groups and not (user and user.groups & set(policy.groups)):
        return _deny("tool-groups", f"{tool.name} needs a user in one of: {_list(policy.groups)}")
    if policy.roles and not (user and user.roles & set(policy.roles)):
        return _deny("tool-roles", f"{tool.name} needs a user with one of the roles: {_list(policy.roles)}")
    if policy.workloads and not (workload and matches(workload.spiffe_id, policy.workloads)):
        return _deny("tool-workloads", f"{tool.name} may only be called through: {_list(policy.workloads)}")
    if policy.surfaces and principal.surface not in policy.surfaces:
        surface = principal.surface or "no surface"
        return _deny("tool-surfaces", f"{tool.name} is offered in {_list(policy.surfaces)}, not {surface}")
    return None


def decide(principal: Principal, tool: ToolFacts, access: AccessPolicy) -> Decision:
    """Allow or deny ``principal`` calling ``tool`` on a server with ``access``; first failing rule wins."""
    denial = _server_rules(principal, tool, access) or _tool_rules(principal, tool)
    if denial is not None:
        return denial
    return Decision(True, "allowed", f"{principal.describe()} may call {tool.name}")


def authorize_tool(
    *,
    groups: Iterable[str] = (),
    roles: Iterable[str] = (),
    workloads: Iterable[str] = (),
    surfaces: Iterable[str] = (),
) -> Callable[[F], F]:
    """Attach a :class:`ToolPolicy` to a tool function; place it *below* ``@server.tool(...)``."""
    policy = ToolPolicy(
        groups=tuple(groups), roles=tuple(roles), workloads=tuple(workloads), surfaces=tuple(surfaces)
    )

    def attach(fn: F) -> F:
        if getattr(fn, REGISTERED_ATTRIBUTE, False):
            raise ConfigError(f"@authorize_tool on {fn.__name__} must sit below @server.tool(...), not above")
        setattr(fn, POLICY_ATTRIBUTE, policy)
        return fn

    return attach


def policy_of(fn: Callable[..., Any]) -> ToolPolicy | None:
    """The policy ``@authorize_tool`` attached to ``fn``, if any."""
    policy = getattr(fn, POLICY_ATTRIBUTE, None)
    return policy if isinstance(policy, ToolPolicy) else None

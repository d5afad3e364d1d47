"""Per-DAG authorization: which business groups may read, and which may operate, which DAGs.

The rules (:class:`DagRules`) are pure and explainable: a decision names the grant that allowed it
or the reason it did not. :class:`DagGuard` applies them to the caller of the current request
(``current_principal()``), looking a DAG's tags and owners up through the backend with a short cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from fleetdeck.auth.principal import Principal, current_principal
from fleetdeck.errors import AccessDeniedError, NotFoundError
from fleetdeck_airflow.backend import AirflowBackend
from fleetdeck_airflow.models import DagSummary
from fleetdeck_airflow.settings import DagAccess, DagGrant

Action = Literal["read", "operate"]
ANY = "*"
FACTS_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class DagDecision:
    """Allowed or not, and why (the reason is shown to the caller when refused)."""

    allowed: bool
    reason: str


def _grant_matches(grant: DagGrant, dag: DagSummary) -> bool:
    return (
        any(fnmatchcase(dag.dag_id, p) for p in grant.dag_ids)
        or any(fnmatchcase(tag, p) for tag in dag.tags for p in grant.tags)
        or any(fnmatchcase(owner, p) for owner in dag.owners for p in grant.owners)
    )


def _grant_applies(grant: DagGrant, principal: Principal) -> bool:
    if ANY in grant.groups:
        return True
    user = principal.user
    return user is not None and bool(user.groups & set(grant.groups))


class DagRules:
    """Decides ``read`` / ``operate`` on one DAG for one principal; operating implies reading."""

    def __init__(self, access: DagAccess) -> None:
        self.access = access

    def decide(self, principal: Principal, dag: DagSummary, action: Action) -> DagDecision:
        """Whether ``principal`` may ``action`` the DAG ``dag``."""
        who = principal.describe()
        if action == "operate" and principal.user is None:
            return DagDecision(False, f"operating DAGs needs a human user; {who} has none")
        grants = self.access.operate if action == "operate" else (*self.access.operate, *self.access.read)
        if principal.user is None:  # an automated caller: only grants open to everyone
            grants = tuple(g for g in grants if ANY in g.groups)
        for grant in grants:
            if _grant_applies(grant, principal) and _grant_matches(grant, dag):
                return DagDecision(
                    True, f"{who} may {action} {dag.dag_id} (groups {', '.join(grant.groups)})"
                )
        if action == "operate" and self.decide(principal, dag, "read").allowed:
            return DagDecision(
                False, f"{who} may only read {dag.dag_id}: no operate grant of their groups matches it"
            )
        return DagDecision(False, f"{who} may not {action} {dag.dag_id}: no grant of their groups matches it")

    def may(self, principal: Principal, dag: DagSummary, action: Action) -> bool:
        """Shortcut for filtering lists."""
        return self.decide(principal, dag, action).allowed


class DagGuard:
    """Enforces :class:`DagRules` for the current caller; caches DAG facts for ``FACTS_TTL_S``."""

    def __init__(self, backend: AirflowBackend, rules: DagRules, ttl_s: float = FACTS_TTL_S) -> None:
        self.backend = backend
        self.rules = rules
        self._ttl = ttl_s
        self._facts: dict[str, tuple[float, DagSummary]] = {}

    def remember(self, dags: list[DagSummary]) -> None:
        """Refresh the cache with DAGs the backend just returned."""
        now = time.monotonic()
        for dag in dags:
            self._facts[dag.dag_id] = (now, dag)
        if len(self._facts) > 10_000:
            self._facts.clear()

    async def facts(self, dag_id: str) -> DagSummary:
        """The DAG's tags and owners (cached); NotFoundError when it does not exist."""
        cached = self._facts.get(dag_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        dag = await self.backend.get_dag(dag_id)
        self.remember([dag])
        return dag

    async def require(self, dag_id: str, action: Action) -> DagSummary:
        """The DAG when the current caller may ``action`` it; AccessDeniedError with the reason otherwise.

        A DAG the caller may not read is reported as not readable, whether it exists or not.
        """
        principal = current_principal.get()
        try:
            dag = await self.facts(dag_id)
        except NotFoundError:
            if not self._may_read_unknown(principal, dag_id):
                raise AccessDeniedError(
                    f"{principal.describe()} may not read {dag_id}: no grant of their groups matches it"
                ) from None
            raise
        decision = self.rules.decide(principal, dag, action)
        if not decision.allowed:
            raise AccessDeniedError(decision.reason)
        return dag

    def _may_read_unknown(self, principal: Principal, dag_id: str) -> bool:
        """Whether errors about ``dag_id`` (not found, Airflow down) may be shown: an id grant matches."""
        probe = DagSummary(dag_id=dag_id)
        return self.rules.may(principal, probe, "read")

    def readable(self, dags: list[DagSummary]) -> list[DagSummary]:
        """The DAGs of ``dags`` the current caller may read."""
        principal = current_principal.get()
        return [d for d in dags if self.rules.may(principal, d, "read")]

"""Per-DAG authorization rules with fakes: teams operate their DAGs, read the others'."""

from __future__ import annotations

from typing import Any

import pytest

from fleetdeck.auth.principal import Principal, User, Workload
from fleetdeck.errors import AccessDeniedError, NotFoundError
from fleetdeck_airflow.models import DagSummary
from fleetdeck_airflow.permissions import DagGuard, DagRules
from fleetdeck_airflow.settings import DagAccess, DagGrant

ADS_DAG = DagSummary(dag_id="ads_daily", tags=["ads"], owners=["ads-team"])
FINANCE_DAG = DagSummary(dag_id="fin_close", tags=["finance", "sox"], owners=["finance-team"])
SHARED_DAG = DagSummary(dag_id="shared_dim_dates", tags=["shared"], owners=["platform"])

ACCESS = DagAccess(
    read=(
        DagGrant(groups=("ads",), tags=("ads", "shared")),
        DagGrant(groups=("finance",), owners=("finance-*",)),
        DagGrant(groups=("*",), dag_ids=("shared_*",)),
    ),
    operate=(
        DagGrant(groups=("ads",), tags=("ads",)),
        DagGrant(groups=("finance",), owners=("finance-*",)),
        DagGrant(groups=("data-infra",), dag_ids=("*",)),
    ),
)


def person(*groups: str) -> Principal:
    return Principal(user=User(subject="u", issuer="t", proven_by="bearer-jwt", groups=frozenset(groups)))


RULES = DagRules(ACCESS)


@pytest.mark.parametrize(
    ("groups", "dag", "read", "operate"),
    [
        (("ads",), ADS_DAG, True, True),
        (("ads",), FINANCE_DAG, False, False),
        (("ads",), SHARED_DAG, True, False),
        (("finance",), FINANCE_DAG, True, True),
        (("finance",), ADS_DAG, False, False),
        (("data-infra",), FINANCE_DAG, True, True),
        (("marketing",), SHARED_DAG, True, False),
        (("marketing",), ADS_DAG, False, False),
    ],
)
def test_groups_read_and_operate_the_dags_their_grants_match(
    groups: tuple[str, ...], dag: DagSummary, read: bool, operate: bool
) -> None:
    assert RULES.may(person(*groups), dag, "read") is read
    assert RULES.may(person(*groups), dag, "operate") is operate


def test_a_refusal_says_whether_the_caller_may_at_least_read() -> None:
    reading = RULES.decide(person("ads"), SHARED_DAG, "operate")
    nothing = RULES.decide(person("ads"), FINANCE_DAG, "operate")
    assert "may only read shared_dim_dates" in reading.reason
    assert "may not operate fin_close" in nothing.reason


def test_an_automated_caller_reads_only_what_everyone_reads_and_never_operates() -> None:
    robot = Principal(workload=Workload(spiffe_id="spiffe://corp/etl", proven_by="mtls"))
    everything = DagRules(DagAccess(operate=(DagGrant(groups=("*",), dag_ids=("*",)),)))
    assert RULES.may(robot, SHARED_DAG, "read")
    assert not RULES.may(robot, ADS_DAG, "read")
    assert not everything.may(robot, ADS_DAG, "operate")


def test_the_default_lets_every_user_read_and_nobody_operate() -> None:
    rules = DagRules(DagAccess())
    assert rules.may(person("anyone"), FINANCE_DAG, "read")
    assert not rules.may(person("data-infra"), FINANCE_DAG, "operate")


def test_a_grant_must_name_groups_and_patterns() -> None:
    with pytest.raises(ValueError, match="at least one dag_ids"):
        DagGrant(groups=("ads",))


class FakeBackend:
    """Only what DagGuard uses: get_dag, counting calls."""

    def __init__(self, dags: list[DagSummary]) -> None:
        self.dags = {d.dag_id: d for d in dags}
        self.calls = 0

    async def get_dag(self, dag_id: str) -> DagSummary:
        self.calls += 1
        if dag_id not in self.dags:
            raise NotFoundError(f"no DAG {dag_id}")
        return self.dags[dag_id]


def guard(backend: FakeBackend) -> DagGuard:
    fake: Any = backend
    return DagGuard(fake, RULES)


async def test_the_guard_refuses_with_the_reason_and_caches_dag_facts() -> None:
    from fleetdeck.auth.principal import current_principal

    backend = FakeBackend([ADS_DAG, FINANCE_DAG])
    checker = guard(backend)
    token = current_principal.set(person("ads"))
    try:
        assert await checker.require("ads_daily", "operate") == ADS_DAG
        assert await checker.require("ads_daily", "read") == ADS_DAG
        with pytest.raises(AccessDeniedError, match="may not read fin_close"):
            await checker.require("fin_close", "read")
        with pytest.raises(AccessDeniedError, match="may not read nope"):
            await checker.require("nope", "read")  # not revealed: the caller could not read it anyway
    finally:
        current_principal.reset(token)
    assert backend.calls == 3


async def test_a_missing_dag_is_reported_to_someone_who_could_read_it() -> None:
    from fleetdeck.auth.principal import current_principal

    checker = guard(FakeBackend([]))
    token = current_principal.set(person("data-infra"))
    try:
        with pytest.raises(NotFoundError):
            await checker.require("shared_new", "read")
    finally:
        current_principal.reset(token)

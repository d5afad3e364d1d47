"""Units behind the tools: engine user mapping, query ownership, JSON values, caps, scopes, backend choice."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from ipaddress import ip_address
from pathlib import Path

import pytest

from fleetdeck.auth.principal import Principal, User, Workload
from fleetdeck.errors import AccessDeniedError, ConfigError, NotFoundError
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_presto.duckdb_backend import DuckDBBackend
from fleetdeck_presto.plugin import make_backend
from fleetdeck_presto.queries import QueryTracker
from fleetdeck_presto.results import Collector, to_json_value
from fleetdeck_presto.settings import GroupScope, PrestoSettings, TrinoAuth, TrinoSettings
from fleetdeck_presto.tools.runtime import engine_user
from fleetdeck_presto.trino_backend import TrinoBackend
from fleetdeck_testkit.trino import Distribution, jvm_options, required_java

ALICE = Principal(
    user=User(
        subject="u-123", issuer="idp", proven_by="bearer-jwt", email="alice@example.com", groups=frozenset()
    )
)


@pytest.mark.parametrize(
    ("user_from", "expected"),
    [("subject", "u-123"), ("email", "alice@example.com"), ("email_local_part", "alice")],
)
def test_the_engine_user_comes_from_the_verified_identity(user_from: str, expected: str) -> None:
    assert engine_user(ALICE, TrinoSettings.model_validate({"user_from": user_from})) == expected


def test_a_claim_mapping_without_a_token_is_refused() -> None:
    with pytest.raises(AccessDeniedError, match="employee_id"):
        engine_user(ALICE, TrinoSettings(user_from="claim", user_claim="employee_id"))


def test_a_workload_without_a_user_runs_as_its_spiffe_id_and_nobody_runs_as_no_one() -> None:
    workload = Principal(workload=Workload(spiffe_id="spiffe://corp/ns/etl/sa/loader", proven_by="mtls"))
    assert engine_user(workload, TrinoSettings()) == "spiffe://corp/ns/etl/sa/loader"
    with pytest.raises(AccessDeniedError):
        engine_user(Principal(), TrinoSettings())


def test_only_the_owner_sees_and_cancels_a_query() -> None:
    tracker = QueryTracker()
    handle = tracker.start("idp|alice", "alice", "run_query")
    handle.update({"queryId": "20261130_000000_00001_abcde", "state": "RUNNING"})
    stopped: list[bool] = []
    handle.canceller = lambda: stopped.append(True)
    with pytest.raises(NotFoundError):
        tracker.find("idp|mallory", "20261130_000000_00001_abcde")
    with pytest.raises(NotFoundError):
        tracker.cancel("idp|mallory", handle.local_id)
    assert not stopped
    assert tracker.cancel("idp|alice", "20261130_000000_00001_abcde") is handle
    assert stopped == [True]
    assert handle.cancel_requested


def test_finished_queries_are_forgotten_beyond_the_bound() -> None:
    tracker = QueryTracker(keep=3)
    first = tracker.start("o", "u", "run_query")
    for _ in range(3):
        tracker.start("o", "u", "run_query")
    with pytest.raises(NotFoundError):
        tracker.find("o", first.local_id)


def test_driver_values_become_exact_json() -> None:
    assert to_json_value(Decimal("12345678901234567890.12")) == "12345678901234567890.12"
    assert to_json_value(dt.datetime(2026, 11, 30, 1, 2, 3, tzinfo=dt.UTC)) == "2026-11-30T01:02:03+00:00"
    assert to_json_value(dt.timedelta(days=1, seconds=2)) == "P1DT2S"
    assert to_json_value(b"\xca\xfe") == "yv4="
    assert to_json_value(float("inf")) == "inf"
    assert to_json_value(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert to_json_value(ip_address("::1")) == "::1"
    assert to_json_value({1: [Decimal("1.5"), None]}) == {"1": ["1.5", None]}


def test_the_collector_stops_at_whichever_cap_comes_first() -> None:
    rows = Collector(max_rows=3, max_bytes=10_000)
    assert all(rows.add([i]) for i in range(3))
    assert not rows.add([4])
    assert rows.truncated_by == "row_cap"
    small = Collector(max_rows=100, max_bytes=40)
    while small.add(["0123456789"]):
        pass
    assert small.truncated_by == "byte_cap"
    assert len(small.rows) == 2


def test_group_scopes_union_over_the_users_groups() -> None:
    presto = PrestoSettings.load(
        scopes={
            "ads": GroupScope(catalogs=("hive",), schemas=("hive.ads*",)),
            "finance": GroupScope(catalogs=("pg",)),
        }
    )
    scopes = presto.scope_for(frozenset({"ads", "finance"}))
    assert scopes is not None
    assert any(s.allows("hive", "ads_daily") for s in scopes)
    assert not any(s.allows("hive", "finance") for s in scopes)
    assert any(s.allows("pg", "anything") for s in scopes)
    assert presto.scope_for(frozenset({"ops"})) == []
    assert PrestoSettings.load().scope_for(frozenset()) is None


def test_the_backend_setting_picks_the_implementation(tmp_path: Path) -> None:
    settings = FleetdeckSettings.load(data_dir=tmp_path)
    assert isinstance(make_backend(settings, PrestoSettings.load()), DuckDBBackend)
    trino = make_backend(settings, PrestoSettings.load(backend="trino"))
    assert isinstance(trino, TrinoBackend)


def test_server_credentials_need_tls_and_their_parts() -> None:
    with pytest.raises(ConfigError, match="https"):
        TrinoBackend(TrinoSettings(auth=TrinoAuth(method="basic", user="svc", password="pw")))
    with pytest.raises(ConfigError, match="token"):
        TrinoBackend(TrinoSettings(http_scheme="https", auth=TrinoAuth(method="jwt")))
    backend = TrinoBackend(
        TrinoSettings(http_scheme="https", auth=TrinoAuth(method="basic", user="svc", password="pw"))
    )
    assert backend.settings.auth.user == "svc"


def test_the_backend_is_chosen_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETDECK_PRESTO__BACKEND", "trino")
    monkeypatch.setenv("FLEETDECK_PRESTO__TRINO__HOST", "trino.internal")
    monkeypatch.setenv("FLEETDECK_PRESTO__LIMITS__MAX_ROWS", "50")
    presto = PrestoSettings.load()
    assert (presto.backend, presto.trino.host, presto.limits.max_rows) == ("trino", "trino.internal", 50)


def test_the_trino_launcher_matches_releases_to_jdks() -> None:
    assert (required_java(476), required_java(435)) == (24, 17)
    old = jvm_options(Distribution(435, Path("/usr/bin/java"), core=False, java_major=17))
    new = jvm_options(Distribution(476, Path("/opt/jdk/bin/java"), core=True, java_major=25))
    assert "-XX:+EnableDynamicAgentLoading" not in old
    assert "--add-modules=jdk.incubator.vector" not in old
    assert {"-XX:+EnableDynamicAgentLoading", "--add-modules=jdk.incubator.vector"} <= set(new)

"""Human approval of destructive tools: asked in both protocol eras, bound, single use, across replicas."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ElicitResult, InputRequiredResult

from fleetdeck.auth.approval_store import (
    ApprovalStore,
    approvals_metadata,
    approvals_table,
    binding_digest,
    principal_key,
)
from fleetdeck.auth.audit import AuditRecord, make_durable_engine
from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.auth.principal import Principal, User, Workload
from fleetdeck.auth.sealing import sealing_keys
from fleetdeck.errors import ConfigError
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.servers import DEMO_INFO, OPEN_ACCESS

KEY = "k" * 16 + "0123456789abcdef0123456789abcdef"
OTHER_KEY = "z" * 48
ALICE = User("alice", "https://idp.example", "bearer-jwt", groups=frozenset({"ops"}))
BOT = Workload("spiffe://corp.example/ns/batch/cleaner", "mtls")
MODES = ["auto", "legacy"]
Callback = Callable[[Any, Any], Awaitable[ElicitResult]]


class Human:
    """The person behind the client: answers each question the same way and remembers it."""

    def __init__(self, action: str = "accept", approve: bool = True) -> None:
        self.action = action
        self.approve = approve
        self.messages: list[str] = []
        self.before_answer: Callable[[], None] | None = None

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.messages.append(params.message)
        if self.before_answer is not None:
            self.before_answer()
        content = {"approve": self.approve} if self.action == "accept" else None
        return ElicitResult(action=self.action, content=content)


class Fleet:
    """One replica: a server with a destructive and a mutating tool, counting what their bodies did."""

    def __init__(
        self,
        data_dir: Path,
        *,
        principal: Principal | None = None,
        access: AccessPolicy = OPEN_ACCESS,
        store: str | None = None,
        key: str = KEY,
        **settings: Any,
    ) -> None:
        url = store or f"sqlite:///{data_dir / 'shared.db'}"
        settings.setdefault("telemetry", {"flush_interval_s": 0.01, "url": url})
        self.settings = FleetdeckSettings.load(
            data_dir=data_dir, approvals={"sealing_keys": [key], **settings.pop("approvals", {})}, **settings
        )
        self.identity = StaticIdentity(principal or Principal(user=ALICE))
        self.server = FleetServer(DEMO_INFO, self.settings, access=access, identity=self.identity)
        self.dropped: list[tuple[str, bool]] = []
        self.restarted: list[str] = []

        @self.server.tool(minutes_saved=1, read_only=False, destructive=True, idempotent=False)
        async def drop_table(table: str, cascade: bool = False) -> str:
            """Drop a table."""
            self.dropped.append((table, cascade))
            return f"dropped {table}"

        @self.server.tool(minutes_saved=1, read_only=False, destructive=False, idempotent=True)
        def restart_job(job: str) -> str:
            """Restart a job."""
            self.restarted.append(job)
            return f"restarted {job}"

        @self.server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
        def list_tables() -> list[str]:
            """List tables."""
            return ["t"]

    def audit(self, tool: str = "drop_table") -> list[AuditRecord]:
        return self.server.audit.events(tool=tool)

    def rows(self) -> list[dict[str, Any]]:
        engine = make_durable_engine(self.server.approvals.store.url)
        approvals_metadata.create_all(engine)
        with engine.connect() as conn:
            found = [dict(r) for r in conn.execute(sa.select(approvals_table)).mappings()]
        engine.dispose()
        return found

    def expire_all(self) -> None:
        engine = make_durable_engine(self.server.approvals.store.url)
        with engine.begin() as conn:
            conn.execute(approvals_table.update().values(expires=time.time() - 1))
        engine.dispose()


def text(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def events(fleet: Fleet) -> list[str]:
    return [e.event for e in fleet.audit() if e.event != "decision_allowed"]


async def call(fleet: Fleet, mode: str, human: Callback | None, **arguments: Any) -> CallToolResult:
    async with Client(fleet.server.mcp, mode=mode, elicitation_callback=human) as client:  # type: ignore[arg-type]
        return await client.call_tool("drop_table", arguments or {"table": "orders"})


async def first_round(client: Client, arguments: dict[str, Any]) -> InputRequiredResult:
    result = await client.session.call_tool("drop_table", arguments, allow_input_required=True)
    assert isinstance(result, InputRequiredResult)
    return result


def accept_all(asked: InputRequiredResult) -> dict[str, Any]:
    return {
        key: ElicitResult(action="accept", content={"approve": True}) for key in asked.input_requests or {}
    }


async def test_the_approval_parameters_are_not_in_the_input_schema(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    (tool,) = [t for t in await fleet.server.tool_definitions() if t.name == "drop_table"]
    assert set(tool.input_schema["properties"]) == {"table", "cascade"}
    assert tool.input_schema["required"] == ["table"]


@pytest.mark.parametrize("mode", MODES)
async def test_an_accepted_approval_runs_the_body_once_and_is_audited(tmp_path: Path, mode: str) -> None:
    fleet = Fleet(tmp_path, principal=Principal(user=ALICE, workload=BOT), access=_delegating())
    human = Human()
    async with fleet.server.running():
        result = await call(fleet, mode, human, table="orders", cascade=True)
    assert not result.is_error, text(result)
    assert fleet.dropped == [("orders", True)]
    (message,) = human.messages
    for shown in (
        '"drop_table"',
        '{"cascade":true,"table":"orders"}',
        'server "demo"',
        'environment "development"',
        '"alice" (issuer "https://idp.example")',
        'via workload "spiffe://corp.example/ns/batch/cleaner"',
        "valid until",
    ):
        assert shown in message
    assert events(fleet) == ["approval_requested", "approval_accepted", "outcome"]
    requested, accepted, outcome = (e for e in fleet.audit() if e.event != "decision_allowed")
    assert requested.approval_id == accepted.approval_id is not None
    assert requested.approval_id is not None
    assert requested.approval_id in message
    assert (outcome.outcome, outcome.user_subject, outcome.workload) == ("ok", "alice", BOT.spiffe_id)
    (row,) = fleet.rows()
    assert (row["decision"], row["consumed_at"] is not None) == ("accepted", True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("action", "approve"), [("decline", True), ("cancel", True), ("accept", False)])
async def test_declined_cancelled_or_unticked_changes_nothing(
    tmp_path: Path, mode: str, action: str, approve: bool
) -> None:
    fleet = Fleet(tmp_path)
    async with fleet.server.running():
        result = await call(fleet, mode, Human(action, approve))
    assert result.is_error
    assert "was not approved" in text(result)
    assert "nothing was changed" in text(result)
    assert fleet.dropped == []
    assert events(fleet) == ["approval_requested", "approval_declined", "outcome"]
    assert fleet.audit()[-1].outcome == "denied"
    (row,) = fleet.rows()
    assert row["decision"] == "declined"


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_cannot_ask_its_user_is_refused(tmp_path: Path, mode: str) -> None:
    fleet = Fleet(tmp_path)
    async with fleet.server.running():
        result = await call(fleet, mode, None)
    assert result.is_error
    assert "no elicitation capability" in text(result)
    assert fleet.dropped == []
    assert fleet.rows() == []  # refused before anything was recorded as pending
    refused = next(e for e in fleet.audit() if e.event == "approval_refused")
    assert refused.rule == "no-elicitation"


def _delegating(**service: tuple[str, ...]) -> AccessPolicy:
    return AccessPolicy(business_groups=("*",), delegating_workloads=("*",), service_workloads=service)


@pytest.mark.parametrize("mode", MODES)
async def test_a_workload_alone_never_gets_a_destructive_tool(tmp_path: Path, mode: str) -> None:
    bot_only = Principal(workload=BOT)
    ungranted = Fleet(tmp_path / "a", principal=bot_only, access=_delegating(**{BOT.spiffe_id: ("*",)}))
    granted = Fleet(
        tmp_path / "b",
        principal=bot_only,
        access=_delegating(**{BOT.spiffe_id: ("drop_table", "restart_job")}),
    )
    async with ungranted.server.running(), granted.server.running():
        denied = await call(ungranted, mode, Human())
        no_human = await call(granted, mode, Human())
        async with Client(ungranted.server.mcp, mode=mode) as client:
            mutating_denied = await client.call_tool("restart_job", {"job": "j"})
        async with Client(granted.server.mcp, mode=mode) as client:
            mutating_granted = await client.call_tool("restart_job", {"job": "j"})
    assert "access denied (service-access)" in text(denied)
    assert [e.event for e in ungranted.audit()] == ["decision_denied"]
    assert "refused (no-human)" in text(no_human)
    assert events(granted) == ["approval_refused", "outcome"]
    assert granted.dropped == ungranted.dropped == []
    assert mutating_denied.is_error
    assert ungranted.restarted == []
    assert not mutating_granted.is_error
    assert granted.restarted == ["j"]


async def test_a_replayed_round_is_refused(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    arguments = {"table": "orders"}
    async with fleet.server.running(), Client(fleet.server.mcp, elicitation_callback=Human()) as client:
        asked = await first_round(client, arguments)
        answers = accept_all(asked)
        done = await client.session.call_tool(
            "drop_table", arguments, input_responses=answers, request_state=asked.request_state
        )
        replay = await client.session.call_tool(
            "drop_table", arguments, input_responses=answers, request_state=asked.request_state
        )
    assert not done.is_error, text(done)
    assert replay.is_error
    assert "refused (approval-used)" in text(replay)
    assert fleet.dropped == [("orders", False)]


@pytest.mark.parametrize("mode", MODES)
async def test_an_approval_is_consumed_once_even_under_a_race(tmp_path: Path, mode: str) -> None:
    fleet = Fleet(tmp_path)
    async with fleet.server.running():
        await call(fleet, mode, Human())
    (row,) = fleet.rows()
    store = ApprovalStore(fleet.server.approvals.store.url)
    assert not store.consume(row["id"], row["digest"])  # already consumed by the call

    fresh = store.create(digest="d" * 64, principal="p", server="demo", tool="drop_table", ttl_s=60)
    wins: list[bool] = []
    threads = [
        threading.Thread(target=lambda: wins.append(store.consume(fresh.id, "d" * 64))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert sorted(wins) == [False] * 7 + [True]


async def test_tampered_state_and_other_arguments_are_refused(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    async with fleet.server.running(), Client(fleet.server.mcp, elicitation_callback=Human()) as client:
        asked = await first_round(client, {"table": "orders"})
        answers = accept_all(asked)
        state = asked.request_state
        assert state is not None
        tampered = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
        with pytest.raises(MCPError, match="Invalid or expired requestState"):
            await client.session.call_tool(
                "drop_table", {"table": "orders"}, input_responses=answers, request_state=tampered
            )
        with pytest.raises(MCPError, match="Invalid or expired requestState"):
            await client.session.call_tool(
                "drop_table", {"table": "customers"}, input_responses=answers, request_state=state
            )
    assert fleet.dropped == []


def test_the_binding_refuses_other_arguments_callers_and_digests(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    alice, mallory = (
        Principal(user=ALICE),
        Principal(user=User("mallory", "https://idp.example", "bearer-jwt")),
    )
    digest = binding_digest("demo", "drop_table", alice, {"table": "orders", "cascade": False})
    store = fleet.server.approvals.store
    row = store.create(
        digest=digest, principal=principal_key(alice), server="demo", tool="drop_table", ttl_s=60
    )
    for other in (
        binding_digest("demo", "drop_table", alice, {"table": "customers", "cascade": False}),
        binding_digest("demo", "drop_table", mallory, {"table": "orders", "cascade": False}),
        binding_digest("demo", "truncate_table", alice, {"table": "orders", "cascade": False}),
        binding_digest("other", "drop_table", alice, {"table": "orders", "cascade": False}),
        "0" * 64,
    ):
        assert other != digest
        assert not store.consume(row.id, other)
    assert store.consume(row.id, digest)
    assert not store.consume(row.id, digest)
    store.close()


async def test_an_approval_asked_on_one_replica_completes_on_another(tmp_path: Path) -> None:
    await approve_across_replicas(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.postgres
async def test_replicas_sharing_a_postgresql_store_complete_an_approval_exactly_once(
    tmp_path: Path, postgres_database: str
) -> None:
    await approve_across_replicas(tmp_path, postgres_database)


async def approve_across_replicas(tmp_path: Path, shared: str) -> None:
    """Asked on one replica, refused by a replica with other keys, completed on a second, replayed."""
    first = Fleet(tmp_path / "a", store=shared)
    second = Fleet(tmp_path / "b", store=shared)
    stranger = Fleet(tmp_path / "c", store=shared, key=OTHER_KEY)
    arguments = {"table": "orders"}
    human = Human()
    async with first.server.running(), second.server.running(), stranger.server.running():
        async with Client(first.server.mcp, elicitation_callback=human) as to_first:
            asked = await first_round(to_first, arguments)
        async with Client(stranger.server.mcp, elicitation_callback=human) as to_stranger:
            with pytest.raises(MCPError, match="Invalid or expired requestState"):
                await to_stranger.session.call_tool(
                    "drop_table",
                    arguments,
                    input_responses=accept_all(asked),
                    request_state=asked.request_state,
                )
        async with Client(second.server.mcp, elicitation_callback=human) as to_second:
            done = await to_second.session.call_tool(
                "drop_table", arguments, input_responses=accept_all(asked), request_state=asked.request_state
            )
        async with Client(first.server.mcp, elicitation_callback=human) as back_to_first:
            replay = await back_to_first.session.call_tool(
                "drop_table", arguments, input_responses=accept_all(asked), request_state=asked.request_state
            )
    assert not done.is_error, text(done)
    assert (first.dropped, second.dropped, stranger.dropped) == ([], [("orders", False)], [])
    assert "refused (approval-used)" in text(replay)
    assert [e.event for e in first.audit() if e.server == "demo" and e.event.startswith("approval")] == [
        "approval_requested",
        "approval_accepted",
        "approval_refused",
    ]


async def test_an_expired_approval_is_refused_on_the_retry(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    arguments = {"table": "orders"}
    async with fleet.server.running(), Client(fleet.server.mcp, elicitation_callback=Human()) as client:
        asked = await first_round(client, arguments)
        fleet.expire_all()
        late = await client.session.call_tool(
            "drop_table", arguments, input_responses=accept_all(asked), request_state=asked.request_state
        )
    assert "refused (approval-expired)" in text(late)
    assert fleet.dropped == []


async def test_an_approval_that_expires_while_the_human_reads_is_refused(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    human = Human()
    human.before_answer = fleet.expire_all
    async with fleet.server.running():
        result = await call(fleet, "legacy", human)
    assert "refused (approval-expired)" in text(result)
    assert fleet.dropped == []


@pytest.mark.parametrize("mode", MODES)
async def test_when_the_audit_cannot_be_written_a_mutating_call_fails_closed(
    tmp_path: Path, mode: str
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    fleet = Fleet(
        tmp_path,
        telemetry={"flush_interval_s": 0.01, "url": f"sqlite:///{blocker}/telemetry.db"},
        approvals={"store_url": f"sqlite:///{tmp_path / 'approvals.db'}"},
    )
    human = Human()
    async with fleet.server.running():
        dropped = await call(fleet, mode, human)
        async with Client(fleet.server.mcp, mode=mode, elicitation_callback=human) as client:
            restarted = await client.call_tool("restart_job", {"job": "j"})
            listed = await client.call_tool("list_tables", {})
    assert dropped.is_error
    assert "audit record could not be written" in text(dropped)
    assert restarted.is_error
    assert (fleet.dropped, fleet.restarted, human.messages) == ([], [], [])
    assert not listed.is_error  # a read-only call is not blocked by the audit trail (it is logged)


@pytest.mark.parametrize("mode", MODES)
async def test_a_failed_acceptance_record_keeps_the_body_from_running(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = Fleet(tmp_path)
    audit = fleet.server.audit
    real_write = audit.write

    def write(record: AuditRecord) -> None:
        if record.event == "approval_accepted":
            from fleetdeck.errors import TelemetryError

            raise TelemetryError("the audit record could not be written (disk full)")
        real_write(record)

    monkeypatch.setattr(audit, "write", write)
    async with fleet.server.running():
        result = await call(fleet, mode, Human())
    assert result.is_error
    assert "audit record could not be written" in text(result)
    assert fleet.dropped == []


def test_production_needs_shared_sealing_keys(tmp_path: Path) -> None:
    production = FleetdeckSettings.load(data_dir=tmp_path, environment="production")
    with pytest.raises(ConfigError, match=r"approvals\.sealing_keys"):
        sealing_keys(production)
    short = FleetdeckSettings.load(data_dir=tmp_path, approvals={"sealing_keys": ["short"]})
    with pytest.raises(ConfigError, match=r"sealing_keys\[0\]"):
        sealing_keys(short)
    rotated = FleetdeckSettings.load(data_dir=tmp_path, approvals={"sealing_keys": [KEY, OTHER_KEY]})
    assert sealing_keys(rotated) == [KEY.encode(), OTHER_KEY.encode()]
    development = FleetdeckSettings.load(data_dir=tmp_path)
    assert sealing_keys(development) == sealing_keys(development)
    assert len(sealing_keys(development)[0]) >= 32


async def test_the_development_key_is_created_on_first_use_and_shared_by_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Fleet(data, telemetry={"flush_interval_s": 0.01}, key=KEY)
    settings = FleetdeckSettings.load(data_dir=data, telemetry={"flush_interval_s": 0.01})
    replicas = [
        FleetServer(DEMO_INFO, settings, access=OPEN_ACCESS, identity=first.identity) for _ in range(2)
    ]
    assert not (data / "request-state.key").exists()  # building a server does no IO
    calls: list[str] = []
    for replica in replicas:

        @replica.tool(minutes_saved=1, read_only=False, destructive=True, idempotent=False)
        async def drop_table(table: str) -> str:
            """Drop a table."""
            calls.append(table)
            return "dropped"

    async with replicas[0].running(), replicas[1].running():
        async with Client(replicas[0].mcp, elicitation_callback=Human()) as one:
            asked = await one.session.call_tool("drop_table", {"table": "t"}, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult)
        async with Client(replicas[1].mcp, elicitation_callback=Human()) as other:
            done = await other.session.call_tool(
                "drop_table",
                {"table": "t"},
                input_responses=accept_all(asked),
                request_state=asked.request_state,
            )
    assert not done.is_error, text(done)
    assert calls == ["t"]
    assert (data / "request-state.key").exists()


def test_approvals_expired_for_a_day_are_purged_and_stay_refused(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = ApprovalStore(f"sqlite:///{tmp_path / 'approvals.db'}", clock=lambda: now[0])
    old = store.create(digest="a" * 64, principal="p", server="demo", tool="drop_table", ttl_s=60)
    recent = store.create(digest="b" * 64, principal="p", server="demo", tool="drop_table", ttl_s=60)
    now[0] += 2 * 86_400  # both expired; the next create (an hour after the last purge) purges them
    fresh = store.create(digest="c" * 64, principal="p", server="demo", tool="drop_table", ttl_s=60)
    assert store.get(old.id) is None
    assert store.get(recent.id) is None
    assert not store.consume(old.id, "a" * 64)  # a purged approval is refused, like an expired one
    assert store.consume(fresh.id, "c" * 64)
    store.close()


def test_an_approval_expired_less_than_a_day_ago_is_kept_for_investigations(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = ApprovalStore(f"sqlite:///{tmp_path / 'approvals.db'}", clock=lambda: now[0])
    first = store.create(digest="a" * 64, principal="p", server="demo", tool="drop_table", ttl_s=60)
    now[0] += 3_700  # past the purge interval, but expired only an hour ago
    store.create(digest="b" * 64, principal="p", server="demo", tool="drop_table", ttl_s=60)
    kept = store.get(first.id)
    assert kept is not None
    assert kept.consumed_at is None
    assert not store.consume(first.id, "a" * 64)  # still refused: it expired
    store.close()

"""The audit trail: every decision and mutating outcome, with raw user and workload, written or refused."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from fleetdeck.auth.audit import AuditEvent, AuditLog, argument_digest
from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.policy import AccessPolicy, authorize_tool
from fleetdeck.auth.principal import Principal, User, Workload
from fleetdeck.errors import InvalidInputError, TelemetryError
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.middleware import encode_arguments
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.servers import DEMO_INFO

ALICE = User("alice", "https://idp.example", "bearer-jwt", groups=frozenset({"ads"}))
CHAT = Workload("spiffe://corp.example/ns/chat/slackbot", "xfcc")
ACCESS = AccessPolicy(business_groups=("ads",), delegating_workloads=("spiffe://corp.example/ns/chat/*",))


def make_server(tmp_path: Path, principal: Principal, **telemetry: Any) -> FleetServer:
    settings = FleetdeckSettings.load(data_dir=tmp_path, telemetry={"flush_interval_s": 0.01, **telemetry})
    server = FleetServer(DEMO_INFO, settings, access=ACCESS, identity=StaticIdentity(principal))

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def list_jobs() -> list[str]:
        """List jobs."""
        return ["a"]

    @server.tool(minutes_saved=5, read_only=False, destructive=False, idempotent=True)
    def restart_job(job: str) -> str:
        """Restart a job."""
        if job == "missing":
            raise InvalidInputError("no such job")
        return f"restarted {job}"

    @server.tool(minutes_saved=5, read_only=False, destructive=False, idempotent=True)
    @authorize_tool(roles=["operator"])
    def close_books() -> str:
        """Close the books."""
        return "closed"

    return server


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_decisions_and_mutating_outcomes_carry_the_user_and_the_workload(
    tmp_path: Path, mode: Any
) -> None:
    await audit_a_session(make_server(tmp_path, Principal(user=ALICE, workload=CHAT)), mode)


@pytest.mark.postgres
async def test_the_audit_trail_is_written_to_postgresql(tmp_path: Path, postgres_database: str) -> None:
    await audit_a_session(
        make_server(tmp_path, Principal(user=ALICE, workload=CHAT), url=postgres_database), "auto"
    )


async def audit_a_session(server: FleetServer, mode: Any) -> None:
    """Four calls: every decision and mutating outcome is audited with the user and the workload."""
    async with server.running(), Client(server.mcp, mode=mode) as client:
        await client.call_tool("list_jobs", {})
        await client.call_tool("restart_job", {"job": "nightly"})
        await client.call_tool("restart_job", {"job": "missing"})
        await client.call_tool("close_books", {})
    records = server.audit.events()
    assert [(r.tool, r.event, r.outcome) for r in records] == [
        ("list_jobs", "decision_allowed", None),
        ("restart_job", "decision_allowed", None),
        ("restart_job", "outcome", "ok"),
        ("restart_job", "decision_allowed", None),
        ("restart_job", "outcome", "invalid_input"),
        ("close_books", "decision_denied", None),
    ]
    for record in records:
        assert (record.user_subject, record.user_issuer, record.workload) == (
            "alice",
            "https://idp.example",
            CHAT.spiffe_id,
        )
        assert record.server == "demo"
    denied = records[-1]
    assert (denied.rule, denied.reason) == (
        "tool-roles",
        "close_books needs a user with one of the roles: operator",
    )
    assert records[1].args_digest == argument_digest(encode_arguments({"job": "nightly"}))
    # queued records (a read's decision, a denial) get their digest on the writer thread, the same
    assert records[0].args_digest == records[-1].args_digest == argument_digest(encode_arguments({}))
    assert records[4].reason == "InvalidInputError"


async def test_each_decision_record_joins_its_invocation_event_by_id(tmp_path: Path) -> None:
    server = make_server(tmp_path, Principal(user=ALICE, workload=CHAT))
    async with server.running(), Client(server.mcp) as client:
        await client.call_tool("list_jobs", {})
        await client.call_tool("restart_job", {"job": "nightly"})
        await client.call_tool("close_books", {})
    events = {event.event_id: event for event in EventStore(server.settings.telemetry_url()).events()}
    decisions = [r for r in server.audit.events() if r.event != "outcome"]
    assert [(events[r.id].tool, events[r.id].outcome.value, r.event) for r in decisions] == [
        ("list_jobs", "ok", "decision_allowed"),
        ("restart_job", "ok", "decision_allowed"),
        ("close_books", "denied", "decision_denied"),
    ]
    (outcome,) = [r for r in server.audit.events() if r.event == "outcome"]
    assert outcome.id not in events  # the outcome record has its own id


async def test_a_broken_audit_store_fails_mutating_calls_closed_and_lets_reads_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    server = make_server(tmp_path, Principal(user=ALICE), url=f"sqlite:///{blocker}/telemetry.db")
    with caplog.at_level(logging.ERROR, logger="fleetdeck.auth.audit"):
        async with server.running(), Client(server.mcp) as client:
            read = await client.call_tool("list_jobs", {})
            write = await client.call_tool("restart_job", {"job": "nightly"})
    assert not read.is_error
    assert write.is_error
    assert "audit record could not be written; nothing was changed" in write.content[0].text  # type: ignore[union-attr]
    logged = [r.getMessage() for r in caplog.records]
    assert any("audit record not stored" in m and "list_jobs" in m for m in logged)
    assert any("refusing the call" in m and "restart_job" in m for m in logged)


def test_record_raises_when_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    audit = AuditLog(f"sqlite:///{blocker}/audit.db", server="demo")
    with pytest.raises(TelemetryError, match="audit record could not be written"):
        audit.record(AuditEvent.DECISION_ALLOWED, tool="t", principal=Principal(user=ALICE))


async def test_records_are_committed_before_record_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    writer = AuditLog(url, server="demo")
    written = await writer.arecord(
        AuditEvent.APPROVAL_REQUESTED,
        required=True,
        tool="drop",
        principal=Principal(user=ALICE),
        approval_id="x",
    )
    reader = AuditLog(url, server="demo")  # another connection, as another replica would read it
    assert reader.events() == [written]
    writer.close()
    reader.close()

"""Every Airflow tool through an MCP client against a real Airflow 3, on both protocol eras."""

from __future__ import annotations

import json
import urllib.error
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult

from fleetdeck.auth.principal import Principal, User
from fleetdeck.server import FleetServer
from fleetdeck_testkit.airflow import AirflowServer
from fleetdeck_testkit.backends import backend_unavailable

pytestmark = pytest.mark.airflow
MODES = ["auto", "legacy"]
BASELINE = "baseline"  # the finished run of each test DAG the session fixture made
ServerFactory = Callable[..., AbstractAsyncContextManager[FleetServer]]


def user(subject: str, *groups: str) -> Principal:
    """A human in ``groups``, as a verified token would present them."""
    return Principal(
        user=User(
            subject=subject,
            issuer="test",
            proven_by="bearer-jwt",
            email=f"{subject}@example.com",
            groups=frozenset(groups),
        )
    )


ADS = user("ana", "ads")
FINANCE = user("fin", "finance")
PLATFORM = user("pat", "data-infra")


class Human:
    """An elicitation callback that answers approvals as told and remembers what it was asked."""

    def __init__(self, action: str = "accept", approve: bool = True) -> None:
        self.action = action
        self.approve = approve
        self.questions: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.questions.append(str(getattr(params, "message", "")))
        if self.action == "accept":
            return ElicitResult(action="accept", content={"approve": self.approve})
        return ElicitResult(action="decline" if self.action == "decline" else "cancel")


def text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def new_run_id() -> str:
    return f"fleetdeck_{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("mode", MODES)
async def test_read_tools_describe_dags_runs_and_health(make_server: ServerFactory, mode: str) -> None:
    async with make_server(PLATFORM) as server, Client(server.mcp, mode=mode) as client:
        health = data(await client.call_tool("get_health", {}))
        everything = data(await client.call_tool("list_dags", {}))
        ads = data(await client.call_tool("list_dags", {"tag": "ads"}))
        finance_owned = data(await client.call_tool("list_dags", {"owner": "finance-team", "name": "fd_"}))
        paused = data(await client.call_tool("list_dags", {"paused": True, "name": "fd_"}))
        dag = data(await client.call_tool("get_dag", {"dag_id": "fd_chain"}))
        runs = data(await client.call_tool("list_dag_runs", {"dag_id": "fd_fails", "state": ["failed"]}))
        run = data(await client.call_tool("get_dag_run", {"dag_id": "fd_chain", "run_id": BASELINE}))
        imports = data(await client.call_tool("list_import_errors", {}))
    assert health["healthy"] is True
    assert health["environment"] == "test-airflow"
    assert {"fd_success", "fd_fails", "fd_retries", "fd_chain", "fd_slow"} <= {
        d["dag_id"] for d in everything["dags"]
    }
    assert {d["dag_id"] for d in ads["dags"]} == {"fd_success", "fd_retries", "fd_slow"}
    assert {d["dag_id"] for d in finance_owned["dags"]} == {"fd_fails", "fd_chain"}
    assert "fd_slow" in {d["dag_id"] for d in paused["dags"]}
    assert "fd_success" not in {d["dag_id"] for d in paused["dags"]}
    assert dag["task_count"] == 3
    assert [(k["operator"], k["task_ids"]) for k in dag["tasks"]] == [("@task", "extract, load, transform")]
    assert dag["dependencies"] == ["extract >> transform >> load"]
    assert dag["dag"]["owners"] == ["finance-team"]
    assert dag["recent_runs"][0]["run_id"] == BASELINE
    assert BASELINE in {r["run_id"] for r in runs["runs"]}
    assert run["state_counts"] == {"failed": 1, "upstream_failed": 2}
    assert [(t["task_id"], t["try_number"]) for t in run["task_instances"]] == [("extract", 1)]
    assert run["task_ids_by_state"] == {"upstream_failed": "load, transform"}
    assert run["run"]["state"] == "failed"
    assert imports["errors"] == []


@pytest.mark.parametrize("mode", MODES)
async def test_task_logs_are_a_bounded_redacted_tail_with_the_error(
    make_server: ServerFactory, mode: str
) -> None:
    args = {"dag_id": "fd_fails", "run_id": BASELINE, "task_id": "load_customers"}
    async with make_server(PLATFORM) as server, Client(server.mcp, mode=mode) as client:
        short = data(await client.call_tool("get_task_logs", {**args, "tail_lines": 2}))
        full = data(await client.call_tool("get_task_logs", {**args, "try_number": 1}))
        missing = await client.call_tool("get_task_logs", {**args, "task_id": "no_such_task"})
    assert len(short["log"]["lines"]) == 2
    assert short["log"]["truncated"] is True
    assert short["try_number"] == 1
    assert full["log"]["error"]["error_type"] == "ValueError"
    assert "duplicate keys" in full["log"]["error"]["message"]
    shown = json.dumps(full)
    assert "connecting with password=***" in shown
    assert "hunter2" not in shown
    assert missing.is_error
    assert "no task 'no_such_task'" in text(missing)


@pytest.mark.parametrize("mode", MODES)
async def test_diagnosis_finds_the_root_error_and_the_tasks_it_blocked(
    make_server: ServerFactory, mode: str
) -> None:
    async with make_server(PLATFORM) as server, Client(server.mcp, mode=mode) as client:
        chain = data(await client.call_tool("diagnose_dag_run", {"dag_id": "fd_chain", "run_id": BASELINE}))
        retried = data(
            await client.call_tool("diagnose_dag_run", {"dag_id": "fd_retries", "run_id": BASELINE})
        )
        fine = data(await client.call_tool("diagnose_dag_run", {"dag_id": "fd_success", "run_id": BASELINE}))
    assert chain["root_task"] == "extract"
    assert chain["root_error"]["error_type"] == "FileNotFoundError"
    assert "orders/2026-01-01.csv" in chain["root_error"]["message"]
    assert chain["upstream_failed"] == [
        {"failed_task": "extract", "blocked": ["transform", "load"], "more": 0}
    ]
    assert "input is missing" in chain["suggested_next_step"]
    [flaky] = retried["failed_tasks"]
    assert (flaky["try_number"], flaky["max_tries"], flaky["retries_exhausted"]) == (2, 1, True)
    assert retried["root_error"]["error_type"] == "ConnectionError"
    assert "transient" in retried["suggested_next_step"]
    assert any("ConnectionError" in line for line in flaky["log_tail"])
    assert fine["failed_tasks"] == []
    assert fine["suggested_next_step"].startswith("Nothing to do")


@pytest.mark.parametrize("mode", MODES)
async def test_an_approved_trigger_starts_one_run_and_a_retry_returns_it(
    make_server: ServerFactory, airflow: AirflowServer, mode: str
) -> None:
    human = Human()
    run_id = new_run_id()
    args = {"dag_id": "fd_success", "run_id": run_id, "conf": {"day": "2026-01-02"}}
    async with (
        make_server(ADS) as server,
        Client(server.mcp, mode=mode, elicitation_callback=human) as client,
    ):
        first = data(await client.call_tool("trigger_dag_run", args))
        again = data(await client.call_tool("trigger_dag_run", args))
    assert first["created"] is True
    assert again["created"] is False
    assert again["run"]["run_id"] == run_id
    assert again["conf_differs"] is False
    assert "on behalf of ana <ana@example.com>" in (first["run"]["note"] or "")
    runs = airflow.api("GET", f"/dags/fd_success/dagRuns?run_id_pattern={run_id}")
    assert [r["dag_run_id"] for r in runs["dag_runs"]] == [run_id]
    assert runs["dag_runs"][0]["conf"] == {"day": "2026-01-02"}
    question = human.questions[0]
    assert '"trigger_dag_run"' in question
    assert '"dag_id":"fd_success"' in question
    assert f'"run_id":"{run_id}"' in question
    assert "development" in question
    events = [e.event for e in server.audit.events(tool="trigger_dag_run")]
    assert events.count("approval_accepted") == 2
    assert airflow.wait_for_run("fd_success", run_id) == "success"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", [("decline", True), ("cancel", True), ("accept", False)])
async def test_a_declined_approval_changes_nothing(
    make_server: ServerFactory, airflow: AirflowServer, mode: str, answer: tuple[str, bool]
) -> None:
    run_id = new_run_id()
    human = Human(*answer)
    async with (
        make_server(ADS) as server,
        Client(server.mcp, mode=mode, elicitation_callback=human) as client,
    ):
        refused = await client.call_tool("trigger_dag_run", {"dag_id": "fd_success", "run_id": run_id})
        unpause = await client.call_tool("unpause_dag", {"dag_id": "fd_slow"})
    assert refused.is_error
    assert "was not approved" in text(refused)
    assert "nothing was changed" in text(refused)
    assert unpause.is_error
    with pytest.raises(urllib.error.HTTPError) as missing:
        airflow.api("GET", f"/dags/fd_success/dagRuns/{run_id}")
    assert missing.value.code == 404
    assert airflow.api("GET", "/dags/fd_slow")["is_paused"] is True
    assert "approval_declined" in [e.event for e in server.audit.events(tool="trigger_dag_run")]


@pytest.mark.parametrize("mode", MODES)
async def test_a_team_operates_its_own_dags_and_only_reads_the_others(
    make_server: ServerFactory, airflow: AirflowServer, mode: str
) -> None:
    human = Human()
    async with (
        make_server(ADS) as server,
        Client(server.mcp, mode=mode, elicitation_callback=human) as client,
    ):
        foreign = await client.call_tool("trigger_dag_run", {"dag_id": "fd_fails", "run_id": new_run_id()})
        readable = data(await client.call_tool("get_dag", {"dag_id": "fd_fails"}))
        own = data(await client.call_tool("get_dag", {"dag_id": "fd_slow"}))
        paused = data(await client.call_tool("pause_dag", {"dag_id": "fd_slow"}))
        unpaused = data(await client.call_tool("unpause_dag", {"dag_id": "fd_slow"}))
        back = data(await client.call_tool("pause_dag", {"dag_id": "fd_slow"}))
    assert foreign.is_error
    assert "ana may only read fd_fails" in text(foreign)
    assert "nothing was changed" in text(foreign)
    assert len(human.questions) == 3  # never asked about the refused trigger
    assert readable["you_may_operate"] is False
    assert own["you_may_operate"] is True
    assert (paused["is_paused"], unpaused["is_paused"], back["is_paused"]) == (True, False, True)
    denied = [e for e in server.audit.events(tool="trigger_dag_run") if e.event == "decision_denied"]
    assert denied
    assert denied[0].rule == "dag-operate"
    assert denied[0].user_subject == "ana"


async def test_reads_are_limited_to_the_dags_a_group_may_read(make_server: ServerFactory) -> None:
    ads_only = {"read": [{"groups": ["ads"], "tags": ["ads"]}], "operate": []}
    async with make_server(ADS, dags=ads_only) as server, Client(server.mcp) as client:
        listed = data(await client.call_tool("list_dags", {"name": "fd_"}))
        hidden = await client.call_tool("get_dag", {"dag_id": "fd_fails"})
        unknown = await client.call_tool("get_dag", {"dag_id": "no_such_dag"})
        logs = await client.call_tool(
            "get_task_logs", {"dag_id": "fd_fails", "run_id": BASELINE, "task_id": "load_customers"}
        )
    assert {d["dag_id"] for d in listed["dags"]} == {"fd_success", "fd_retries", "fd_slow"}
    assert listed["hidden"] == 2
    assert hidden.is_error
    assert "may not read fd_fails" in text(hidden)
    assert unknown.is_error
    assert "may not read no_such_dag" in text(unknown)
    assert logs.is_error
    assert "may not read" in text(logs)


@pytest.mark.parametrize("mode", MODES)
async def test_clearing_and_marking_a_failed_run_after_approval(
    make_server: ServerFactory, airflow: AirflowServer, mode: str
) -> None:
    run_id = new_run_id()
    human = Human()
    async with (
        make_server(FINANCE) as server,
        Client(server.mcp, mode=mode, elicitation_callback=human) as client,
    ):
        data(await client.call_tool("trigger_dag_run", {"dag_id": "fd_fails", "run_id": run_id}))
        assert airflow.wait_for_run("fd_fails", run_id) == "failed"
        tasks = data(
            await client.call_tool(
                "clear_task_instances",
                {"dag_id": "fd_fails", "run_id": run_id, "task_ids": ["load_customers"]},
            )
        )
        assert airflow.wait_for_run("fd_fails", run_id) == "failed"
        whole = data(await client.call_tool("clear_dag_run", {"dag_id": "fd_fails", "run_id": run_id}))
        assert airflow.wait_for_run("fd_fails", run_id) == "failed"
        marked = data(
            await client.call_tool(
                "mark_dag_run", {"dag_id": "fd_fails", "run_id": run_id, "state": "success"}
            )
        )
        detail = data(
            await client.call_tool(
                "get_dag_run", {"dag_id": "fd_fails", "run_id": run_id, "state": ["success", "failed"]}
            )
        )
    assert tasks["cleared"] == ["load_customers"]
    assert whole["cleared"] == ["load_customers"]
    assert marked["state"] == "success"
    assert "Marked success via Fleetdeck on behalf of fin" in (marked["note"] or "")
    [ti] = detail["task_instances"]
    assert ti["try_number"] == 3  # the first try, then one per clear
    assert [q.split("\n")[1] for q in human.questions] == [
        'Tool: "trigger_dag_run"',
        'Tool: "clear_task_instances"',
        'Tool: "clear_dag_run"',
        'Tool: "mark_dag_run"',
    ]


async def test_a_server_with_read_only_airflow_credentials_explains_the_403(
    make_server: ServerFactory, airflow: AirflowServer
) -> None:
    viewer = {"username": airflow.viewer[0], "password": airflow.viewer[1]}
    async with (
        make_server(PLATFORM, **viewer) as server,
        Client(server.mcp, elicitation_callback=Human()) as client,
    ):
        listed = data(await client.call_tool("list_dags", {"name": "fd_"}))
        refused = await client.call_tool("trigger_dag_run", {"dag_id": "fd_success", "run_id": new_run_id()})
    assert listed["dags"]
    assert refused.is_error
    assert "the server's Airflow account may not trigger" in text(refused)


async def test_wrong_airflow_credentials_are_a_clear_error(make_server: ServerFactory) -> None:
    async with make_server(PLATFORM, password="wrong") as server, Client(server.mcp) as client:
        result = await client.call_tool("list_dags", {})
    assert result.is_error
    assert "refused the server's own credentials" in text(result)


async def test_when_airflow_stops_tools_fail_clearly_and_the_server_keeps_serving(
    make_server: ServerFactory, airflow: AirflowServer
) -> None:
    if not airflow.restartable:
        backend_unavailable("the Airflow under test was not started by the testkit; it cannot be stopped")
    async with (
        make_server(PLATFORM, read_retries=1, connect_timeout_s=1.0) as server,
        Client(server.mcp) as client,
    ):
        before = data(await client.call_tool("get_health", {}))
        airflow.stop(["api-server"])
        try:
            down = await client.call_tool("list_dags", {})
            logs = await client.call_tool(
                "get_task_logs", {"dag_id": "fd_fails", "run_id": BASELINE, "task_id": "load_customers"}
            )
            with pytest.raises(Exception, match="unreachable"):
                await server.check_ready()
        finally:
            airflow.start()
        after = data(await client.call_tool("get_dag", {"dag_id": "fd_success"}))
    assert before["healthy"] is True
    assert down.is_error
    assert f"Airflow at {airflow.url} is unreachable" in text(down)
    assert logs.is_error
    assert "unreachable" in text(logs)
    assert after["dag"]["dag_id"] == "fd_success"

"""The tools over an in-memory fake Airflow: declarations, approvals on both eras, per-DAG rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.principal import Principal, User, Workload
from fleetdeck.errors import NotFoundError
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_airflow.backend import LineSink
from fleetdeck_airflow.models import (
    ComponentHealth,
    DagRunSummary,
    DagSummary,
    ImportProblem,
    TaskInstanceSummary,
    TaskSummary,
)
from fleetdeck_airflow.server import build_server
from fleetdeck_airflow.settings import AirflowSettings

MODES = ["auto", "legacy"]
DAGS = [
    DagSummary(dag_id="ads_daily", tags=["ads"], owners=["ads-team"], is_paused=False, file="ads.py"),
    DagSummary(dag_id="fin_close", tags=["finance"], owners=["finance-team"], is_paused=False, file="fin.py"),
]
WRITES = {
    "trigger_dag_run",
    "clear_task_instances",
    "clear_dag_run",
    "pause_dag",
    "unpause_dag",
    "mark_dag_run",
}


class FakeAirflow:
    """An in-memory Airflow holding DAGs and runs; records every change."""

    environment = "fake"

    def __init__(self) -> None:
        self.dags = {d.dag_id: d.model_copy() for d in DAGS}
        self.runs: dict[tuple[str, str], DagRunSummary] = {}
        self.changes: list[tuple[str, ...]] = []

    async def check(self) -> None:
        return None

    async def health(self) -> list[ComponentHealth]:
        return [
            ComponentHealth(name="metadatabase", status="healthy"),
            ComponentHealth(name="scheduler", status="healthy"),
        ]

    async def list_dags(
        self,
        *,
        limit: int,
        offset: int,
        tags: list[str],
        owners: list[str],
        paused: bool | None,
        name: str | None,
    ) -> tuple[list[DagSummary], int]:
        found = [d for d in self.dags.values() if not tags or set(tags) & set(d.tags)]
        return found[offset : offset + limit], len(found)

    async def get_dag(self, dag_id: str) -> DagSummary:
        if dag_id not in self.dags:
            raise NotFoundError(f"no DAG {dag_id}")
        return self.dags[dag_id]

    async def list_tasks(self, dag_id: str) -> list[TaskSummary]:
        return [
            TaskSummary(task_id="first", operator="BashOperator", downstream_task_ids=["only"]),
            TaskSummary(task_id="only", operator="@task", downstream_task_ids=["after"]),
            TaskSummary(task_id="after", operator="@task"),
        ]

    async def list_dag_runs(self, dag_id: str, *, limit: int, states: list[str]) -> list[DagRunSummary]:
        return [r for (d, _), r in self.runs.items() if d == dag_id][:limit]

    async def get_dag_run(self, dag_id: str, run_id: str) -> DagRunSummary:
        if (dag_id, run_id) not in self.runs:
            raise NotFoundError(f"no run {run_id}")
        return self.runs[(dag_id, run_id)]

    async def list_task_instances(
        self, dag_id: str, run_id: str, *, limit: int, task_id: str | None = None
    ) -> list[TaskInstanceSummary]:
        return [
            TaskInstanceSummary(task_id="after", state="upstream_failed"),
            TaskInstanceSummary(task_id="first", state="success", try_number=1),
            TaskInstanceSummary(task_id="only", state="failed", try_number=1),
        ]

    async def get_dag_detail(
        self, dag_id: str, *, recent_runs: int
    ) -> tuple[DagSummary, list[TaskSummary], list[DagRunSummary]]:
        dag = await self.get_dag(dag_id)
        runs = await self.list_dag_runs(dag_id, limit=recent_runs, states=[])
        return dag, await self.list_tasks(dag_id), runs

    async def get_dag_run_with_task_instances(
        self, dag_id: str, run_id: str, *, limit: int
    ) -> tuple[DagRunSummary, list[TaskInstanceSummary]]:
        run = await self.get_dag_run(dag_id, run_id)
        return run, await self.list_task_instances(dag_id, run_id, limit=limit)

    async def stream_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int, sink: LineSink
    ) -> None:
        sink("password=hunter2")
        sink("ValueError: bad")

    async def list_import_errors(self, *, limit: int) -> list[ImportProblem]:
        return [
            ImportProblem(filename="/dags/fin.py", error="SyntaxError"),
            ImportProblem(filename="/x.py", error="E"),
        ]

    async def trigger_dag_run(
        self, dag_id: str, run_id: str, conf: dict[str, Any], note: str
    ) -> tuple[DagRunSummary, bool]:
        if (dag_id, run_id) in self.runs:
            return self.runs[(dag_id, run_id)], False
        self.changes.append(("trigger", dag_id, run_id, note))
        run = DagRunSummary(dag_id=dag_id, run_id=run_id, state="queued", conf=conf, note=note)
        self.runs[(dag_id, run_id)] = run
        return run, True

    async def clear_task_instances(
        self, dag_id: str, run_id: str, task_ids: list[str], *, only_failed: bool, downstream: bool, note: str
    ) -> list[TaskInstanceSummary]:
        self.changes.append(("clear_tasks", dag_id, run_id, note))
        return [TaskInstanceSummary(task_id=t) for t in task_ids]

    async def clear_dag_run(self, dag_id: str, run_id: str, *, only_failed: bool, note: str) -> list[str]:
        self.changes.append(("clear_run", dag_id, run_id, note))
        return ["only"]

    async def set_paused(self, dag_id: str, paused: bool) -> DagSummary:
        self.changes.append(("pause" if paused else "unpause", dag_id))
        self.dags[dag_id] = self.dags[dag_id].model_copy(update={"is_paused": paused})
        return self.dags[dag_id]

    async def mark_dag_run(self, dag_id: str, run_id: str, state: str, note: str) -> DagRunSummary:
        self.changes.append(("mark", dag_id, run_id, state, note))
        return DagRunSummary(dag_id=dag_id, run_id=run_id, state=state, note=note)


def person(subject: str, *groups: str) -> Principal:
    return Principal(user=User(subject=subject, issuer="t", proven_by="bearer-jwt", groups=frozenset(groups)))


ANA = person("ana", "ads")
GRANTS: dict[str, Any] = {
    "read": [{"groups": ["ads"], "tags": ["ads"]}, {"groups": ["finance"], "tags": ["finance"]}],
    "operate": [{"groups": ["ads"], "tags": ["ads"]}],
}

Factory = Callable[..., AbstractAsyncContextManager[tuple[FleetServer, FakeAirflow]]]


@pytest.fixture
def make_server(tmp_path: Path) -> Factory:
    @asynccontextmanager
    async def factory(principal: Principal = ANA) -> AsyncIterator[tuple[FleetServer, FakeAirflow]]:
        settings = FleetdeckSettings.load(data_dir=tmp_path, telemetry={"flush_interval_s": 0.01})
        fake = FakeAirflow()
        config = AirflowSettings.load(url="http://fake", token="t", dags=GRANTS)
        server = build_server(settings, config, fake, identity=StaticIdentity(principal))
        async with server.running():
            yield server, fake

    return factory


class Human:
    def __init__(self, action: str = "accept") -> None:
        self.action = action
        self.asked = 0

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.asked += 1
        if self.action == "accept":
            return ElicitResult(action="accept", content={"approve": True})
        return ElicitResult(action="decline")


def text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_tools_declare_honest_annotations_and_minutes(make_server: Factory) -> None:
    async with make_server() as (server, _):
        tools = {t.name: t for t in await server.tool_definitions()}
    assert set(tools) == WRITES | {
        "list_dags",
        "get_dag",
        "list_dag_runs",
        "get_dag_run",
        "get_task_logs",
        "diagnose_dag_run",
        "list_import_errors",
        "get_health",
    }
    for name, tool in tools.items():
        assert tool.annotations is not None
        assert tool.annotations.destructive_hint is (name in WRITES)
        assert tool.annotations.read_only_hint is (name not in WRITES)
        assert "dag" not in (tool.input_schema.get("properties") or {}) or name not in WRITES
    specs = server.tool_specs
    assert specs["diagnose_dag_run"].minutes_saved > specs["get_health"].minutes_saved
    assert all(specs[w].requires_approval for w in WRITES)


@pytest.mark.parametrize("mode", MODES)
async def test_every_write_runs_only_after_approval(make_server: Factory, mode: str) -> None:
    human = Human()
    async with (
        make_server() as (server, fake),
        Client(server.mcp, mode=mode, elicitation_callback=human) as c,
    ):
        calls: list[tuple[str, dict[str, Any]]] = [
            ("trigger_dag_run", {"dag_id": "ads_daily", "run_id": "r1", "conf": {"x": 1}}),
            ("trigger_dag_run", {"dag_id": "ads_daily", "run_id": "r1", "conf": {"x": 1}}),
            ("clear_task_instances", {"dag_id": "ads_daily", "run_id": "r1", "task_ids": ["only"]}),
            ("clear_dag_run", {"dag_id": "ads_daily", "run_id": "r1"}),
            ("pause_dag", {"dag_id": "ads_daily"}),
            ("unpause_dag", {"dag_id": "ads_daily"}),
            ("mark_dag_run", {"dag_id": "ads_daily", "run_id": "r1", "state": "failed"}),
        ]
        results = [await c.call_tool(name, args) for name, args in calls]
    assert [text(r) for r in results if r.is_error] == []
    assert human.asked == len(calls)
    assert [change[0] for change in fake.changes] == [
        "trigger",
        "clear_tasks",
        "clear_run",
        "pause",
        "unpause",
        "mark",
    ]
    assert all(
        "on behalf of ana" in change[-1] for change in fake.changes if change[0] not in ("pause", "unpause")
    )


@pytest.mark.parametrize("mode", MODES)
async def test_a_decline_or_a_foreign_dag_changes_nothing(make_server: Factory, mode: str) -> None:
    declining = Human("decline")
    async with (
        make_server() as (server, fake),
        Client(server.mcp, mode=mode, elicitation_callback=declining) as c,
    ):
        declined = await c.call_tool("pause_dag", {"dag_id": "ads_daily"})
        foreign = await c.call_tool("pause_dag", {"dag_id": "fin_close"})
        unknown = await c.call_tool("pause_dag", {"dag_id": "nope"})
    assert declined.is_error
    assert "not approved" in text(declined)
    assert "ana may not operate fin_close" in text(foreign)
    assert "may not read nope" in text(unknown)
    assert declining.asked == 1
    assert fake.changes == []


async def test_an_automated_caller_cannot_operate(make_server: Factory) -> None:
    robot = Principal(workload=Workload(spiffe_id="spiffe://corp/bot", proven_by="mtls"))
    async with make_server(robot) as (server, fake), Client(server.mcp, elicitation_callback=Human()) as c:
        result = await c.call_tool("pause_dag", {"dag_id": "ads_daily"})
    assert result.is_error
    assert fake.changes == []


async def test_lists_show_only_readable_dags_and_import_errors(make_server: Factory) -> None:
    async with make_server() as (server, _), Client(server.mcp) as c:
        dags = await c.call_tool("list_dags", {})
        errors = await c.call_tool("list_import_errors", {})
        logs = await c.call_tool("get_task_logs", {"dag_id": "ads_daily", "run_id": "r", "task_id": "only"})
    assert dags.structured_content is not None
    assert [d["dag_id"] for d in dags.structured_content["dags"]] == ["ads_daily"]
    assert dags.structured_content["hidden"] == 1
    assert errors.structured_content == {"errors": [], "hidden": 2}
    assert logs.structured_content is not None
    assert "hunter2" not in str(logs.structured_content)
    assert logs.structured_content["log"]["error"]["error_type"] == "ValueError"


def schema_keys(schema: Any) -> set[str]:
    """Every key used anywhere in a JSON schema."""
    if isinstance(schema, dict):
        return set(schema) | {k for v in schema.values() for k in schema_keys(v)}
    if isinstance(schema, list):
        return {k for v in schema for k in schema_keys(v)}
    return set()


async def test_list_and_detail_tools_publish_flat_output_schemas(make_server: Factory) -> None:
    async with make_server() as (server, _):
        tools = {t.name: t for t in await server.tool_definitions()}
    for name in ("list_dags", "get_dag", "list_dag_runs", "get_dag_run", "list_import_errors", "get_health"):
        keys = schema_keys(tools[name].output_schema)
        assert not keys & {"$ref", "$defs", "anyOf"}, name


@pytest.mark.parametrize("mode", MODES)
async def test_get_dag_shows_tasks_grouped_and_the_graph_in_airflow_notation(
    make_server: Factory, mode: str
) -> None:
    async with make_server() as (server, _), Client(server.mcp, mode=mode) as c:
        result = await c.call_tool("get_dag", {"dag_id": "ads_daily"})
    dag = result.structured_content
    assert dag is not None, text(result)
    assert dag["task_count"] == 3
    assert [(k["operator"], k["task_ids"]) for k in dag["tasks"]] == [
        ("@task", "after, only"),
        ("BashOperator", "first"),
    ]
    assert dag["dependencies"] == ["first >> only >> after"]
    assert dag["you_may_operate"] is True


@pytest.mark.parametrize("mode", MODES)
async def test_get_dag_run_details_what_needs_attention_and_lists_the_rest_by_state(
    make_server: Factory, mode: str
) -> None:
    async with make_server() as (server, fake), Client(server.mcp, mode=mode) as c:
        await fake.trigger_dag_run("ads_daily", "r1", {}, "n")
        default = await c.call_tool("get_dag_run", {"dag_id": "ads_daily", "run_id": "r1"})
        chosen = await c.call_tool(
            "get_dag_run", {"dag_id": "ads_daily", "run_id": "r1", "state": ["success", "upstream_failed"]}
        )
    run, picked = default.structured_content, chosen.structured_content
    assert run is not None, text(default)
    assert picked is not None, text(chosen)
    assert run["state_counts"] == {"failed": 1, "success": 1, "upstream_failed": 1}
    assert [(t["task_id"], t["try_number"]) for t in run["task_instances"]] == [("only", 1)]
    assert run["task_ids_by_state"] == {"success": "first", "upstream_failed": "after"}
    assert [t["task_id"] for t in picked["task_instances"]] == ["after", "first"]
    assert picked["task_ids_by_state"] == {"failed": "only"}

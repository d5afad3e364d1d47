"""Root failure, blocked chains and next steps from task states and errors (no Airflow needed)."""

from __future__ import annotations

import pytest

from fleetdeck_airflow.diagnosis import FailedTask, blocked_by, root_failure, state_counts, suggest
from fleetdeck_airflow.models import DagRunSummary, ErrorReport, TaskInstanceSummary, TaskSummary

GRAPH = [
    TaskSummary(task_id="extract", downstream_task_ids=["clean"]),
    TaskSummary(task_id="clean", downstream_task_ids=["load", "report"]),
    TaskSummary(task_id="load", downstream_task_ids=["publish"]),
    TaskSummary(task_id="report", downstream_task_ids=[]),
    TaskSummary(task_id="publish", downstream_task_ids=[]),
    TaskSummary(task_id="audit", downstream_task_ids=[]),
]
FAILED_RUN = DagRunSummary(dag_id="etl", run_id="r1", state="failed")


def failed(task_id: str, error: ErrorReport | None = None, tries: tuple[int, int] = (1, 0)) -> FailedTask:
    return FailedTask(
        task_id=task_id,
        try_number=tries[0],
        max_tries=tries[1],
        retries_exhausted=tries[0] > tries[1],
        error=error,
    )


def error(kind: str, message: str) -> ErrorReport:
    return ErrorReport(error_type=kind, message=message)


def test_the_blocked_chain_follows_upstream_failed_tasks_only() -> None:
    states = {"extract": "failed", "clean": "upstream_failed", "load": "upstream_failed", "report": "success"}
    states["publish"] = "upstream_failed"
    [chain] = blocked_by(["extract"], GRAPH, states)
    assert chain.failed_task == "extract"
    assert chain.blocked == ["clean", "load", "publish"]


def test_a_long_blocked_chain_is_listed_up_to_a_limit_and_counted() -> None:
    graph = [TaskSummary(task_id=f"t{i}", downstream_task_ids=[f"t{i + 1}"]) for i in range(100)]
    states = {f"t{i}": "upstream_failed" for i in range(1, 101)}
    [chain] = blocked_by(["t0"], graph, states)
    assert len(chain.blocked) == 20
    assert chain.more == 80


def test_the_root_is_the_failure_no_other_failure_explains() -> None:
    downstream = failed("load", error("KeyError", "x"))
    upstream = failed("extract", error("FileNotFoundError", "missing"))
    unrelated = failed("audit", error("ValueError", "y"))
    assert root_failure([downstream, upstream], GRAPH) == upstream
    assert root_failure([downstream, unrelated, upstream], GRAPH) in (upstream, unrelated)
    assert root_failure([], GRAPH) is None


@pytest.mark.parametrize(
    ("kind", "message", "advice"),
    [
        ("ConnectionError", "partner API refused the connection", "transient"),
        ("FileNotFoundError", "s3://x/y.csv does not exist", "input is missing"),
        ("ModuleNotFoundError", "No module named 'pandas'", "Fix the code"),
        ("MemoryError", "", "more memory"),
        ("ValueError", "3 duplicate keys", "fix the data or the code"),
    ],
)
def test_the_next_step_follows_from_the_root_error(kind: str, message: str, advice: str) -> None:
    root = failed("extract", error(kind, message))
    assert advice in suggest(FAILED_RUN, {"failed": 1}, root)


def test_the_next_step_for_runs_without_failures() -> None:
    running = DagRunSummary(dag_id="etl", run_id="r1", state="running")
    done = DagRunSummary(dag_id="etl", run_id="r1", state="success")
    assert suggest(running, {"running": 2, "success": 1}, None).startswith("Wait")
    assert suggest(done, {"success": 3}, None).startswith("Nothing to do")
    assert "get_task_logs" in suggest(FAILED_RUN, {"failed": 1}, failed("extract"))


def test_state_counts_name_unscheduled_tasks_none() -> None:
    tis = [TaskInstanceSummary(task_id="a", state="failed"), TaskInstanceSummary(task_id="b", state=None)]
    assert state_counts(tis) == {"failed": 1, "none": 1}

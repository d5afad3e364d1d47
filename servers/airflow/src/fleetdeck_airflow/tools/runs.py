"""Run tools: list runs, one run's task states, a task's log, and why a run failed."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from pydantic import Field

from fleetdeck.errors import FleetdeckError, NotFoundError
from fleetdeck.server import FleetServer
from fleetdeck_airflow.diagnosis import (
    FAILED_STATES,
    Diagnosis,
    FailedTask,
    blocked_by,
    root_failure,
    state_counts,
    suggest,
)
from fleetdeck_airflow.logs import LogScanner
from fleetdeck_airflow.models import (
    DagRunSummary,
    FlatModel,
    LogTail,
    TaskInstanceSummary,
    inline_list,
    inline_one,
)
from fleetdeck_airflow.overview import QUIET_STATES, split_by_state
from fleetdeck_airflow.tools.context import DagId, RunId, TaskId, ToolContext, permitted

MAX_TASK_INSTANCES = 2000
MAX_IDS_PER_STATE = 300
DIAGNOSE_TAIL_LINES = 15
PARALLEL_LOGS = 4
DIAGNOSE_TAIL_BYTES = 4000
RunState = Literal["queued", "running", "success", "failed"]
TaskState = Literal[
    "failed",
    "upstream_failed",
    "up_for_retry",
    "up_for_reschedule",
    "running",
    "queued",
    "scheduled",
    "deferred",
    "restarting",
    "success",
    "skipped",
    "removed",
    "none",
]


class DagRunList(FlatModel):
    """The most recent runs of one DAG, newest first."""

    dag_id: str
    runs: Annotated[list[DagRunSummary], inline_list(DagRunSummary)]


class DagRunDetail(FlatModel):
    """One run: its task instances counted by state, in detail where they need attention, else by id."""

    run: Annotated[DagRunSummary, inline_one(DagRunSummary)]
    state_counts: dict[str, int] = Field(description="Task instances per state ('none': not scheduled yet).")
    task_instances: Annotated[list[TaskInstanceSummary], inline_list(TaskInstanceSummary)] = Field(
        description="Task instances in the requested states (by default all but quiet ones), by task id."
    )
    task_ids_by_state: dict[str, str] = Field(
        description=(
            "Every other task instance by state: task ids, comma-separated ('task[2]' for map index 2), "
            f"at most {MAX_IDS_PER_STATE} per state."
        )
    )
    task_ids_not_shown: int = Field(description="Task ids left out of task_ids_by_state by its limit.")
    truncated: bool = Field(
        description=f"True when the run has over {MAX_TASK_INSTANCES} task instances (not all counted)."
    )


class TaskLogs(FlatModel):
    """The end of one task try's log."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    log: LogTail


def register(server: FleetServer, ctx: ToolContext) -> None:
    """Add the run tools to ``server``."""
    backend, settings = ctx.backend, ctx.settings

    @server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)
    async def list_dag_runs(
        dag_id: DagId,
        state: Annotated[
            list[RunState] | None, Field(max_length=4, description="Only runs in these states.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> DagRunList:
        """List the most recent runs of a DAG, newest first, optionally only in some states."""
        await permitted(ctx, "list_dag_runs", dag_id, "read")
        runs = await backend.list_dag_runs(dag_id, limit=limit, states=list(state or []))
        return DagRunList(dag_id=dag_id, runs=runs)

    @server.tool(minutes_saved=3, read_only=True, destructive=False, idempotent=True)
    async def get_dag_run(
        dag_id: DagId,
        run_id: RunId,
        state: Annotated[
            list[TaskState] | None,
            Field(
                max_length=13,
                description=(
                    "Show task instances in these states in detail. Default: all but the quiet ones "
                    "(success, skipped, upstream_failed, removed, none = not scheduled yet)."
                ),
            ),
        ] = None,
        limit: Annotated[
            int, Field(ge=1, le=MAX_TASK_INSTANCES, description="At most this many in detail.")
        ] = 100,
    ) -> DagRunDetail:
        """Show one DAG run: state, conf, note, task instance counts by state, the ones needing attention.

        Task instances that failed, run, wait or retry come in detail (state, tries, times), at most
        `limit` by task id; the others only by task id per state (at most 300 per state). Pass `state`
        to see other states in detail. Reads at most 2000 task instances.
        """
        await permitted(ctx, "get_dag_run", dag_id, "read")
        run, tis = await backend.get_dag_run_with_task_instances(dag_id, run_id, limit=MAX_TASK_INSTANCES + 1)
        wanted = frozenset(state or ())
        shown, ids, left_out = split_by_state(
            tis[:MAX_TASK_INSTANCES],
            (lambda s: s in wanted) if wanted else (lambda s: s not in QUIET_STATES),
            limit,
            MAX_IDS_PER_STATE,
        )
        return DagRunDetail(
            run=run,
            state_counts=state_counts(tis[:MAX_TASK_INSTANCES]),
            task_instances=shown,
            task_ids_by_state=ids,
            task_ids_not_shown=left_out,
            truncated=len(tis) > MAX_TASK_INSTANCES,
        )

    @server.tool(minutes_saved=5, read_only=True, destructive=False, idempotent=True)
    async def get_task_logs(
        dag_id: DagId,
        run_id: RunId,
        task_id: TaskId,
        try_number: Annotated[
            int | None, Field(ge=1, le=1000, description="Default: the latest try.")
        ] = None,
        tail_lines: Annotated[int | None, Field(ge=1, le=5000, description="How many last lines.")] = None,
        map_index: Annotated[int, Field(ge=-1)] = -1,
    ) -> TaskLogs:
        """Read the end of one task's log, with secrets redacted and the error it failed with, if any.

        Returns at most `tail_lines` lines and a bounded number of bytes; the whole log is scanned
        for the error but never returned whole.
        """
        await permitted(ctx, "get_task_logs", dag_id, "read")
        if try_number is None:
            tis = await backend.list_task_instances(dag_id, run_id, limit=MAX_TASK_INSTANCES, task_id=task_id)
            match = [ti for ti in tis if ti.task_id == task_id and ti.map_index == map_index]
            if not match:
                raise NotFoundError(f"run {run_id!r} of {dag_id!r} has no task {task_id!r}")
            try_number = max(1, match[0].try_number)
        scanner = LogScanner(tail_lines or settings.log_tail_lines, settings.max_log_bytes)
        await backend.stream_log(dag_id, run_id, task_id, try_number, map_index, scanner.feed)
        return TaskLogs(
            dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number, log=scanner.result()
        )

    @server.tool(minutes_saved=20, read_only=True, destructive=False, idempotent=True)
    async def diagnose_dag_run(dag_id: DagId, run_id: RunId) -> Diagnosis:
        """Explain why a DAG run failed: the failed tasks, the root error from their logs, what it blocked.

        Also reports retries and a suggested next step. Reads the logs of at most a configured number
        of failed tasks (streamed, never held whole); the result stays small whatever the log size.
        """
        await permitted(ctx, "diagnose_dag_run", dag_id, "read")
        run, tis = await backend.get_dag_run_with_task_instances(dag_id, run_id, limit=MAX_TASK_INSTANCES)
        counts = state_counts(tis)
        failed_tis = [ti for ti in tis if ti.state in FAILED_STATES]
        failed_tis.sort(
            key=lambda ti: (ti.end_date is None, ti.end_date.timestamp() if ti.end_date else 0.0, ti.task_id)
        )
        examined = failed_tis[: settings.diagnose_max_failed_tasks]
        failed = await _examine_all(dag_id, run_id, examined)
        tasks = await backend.list_tasks(dag_id) if failed_tis else []
        root = root_failure(failed, tasks)
        states = {ti.task_id: ti.state or "none" for ti in tis}
        return Diagnosis(
            run=run,
            state_counts=counts,
            task_instances_seen=len(tis),
            failed_tasks=failed,
            failed_not_examined=[ti.task_id for ti in failed_tis[len(examined) :]][:50],
            root_task=root.task_id if root else None,
            root_error=root.error if root else None,
            upstream_failed=blocked_by([ti.task_id for ti in failed_tis], tasks, states)[:20],
            suggested_next_step=suggest(run, counts, root),
        )

    async def _examine_all(dag_id: str, run_id: str, tis: list[TaskInstanceSummary]) -> list[FailedTask]:
        """Read the failed tasks' logs, ``PARALLEL_LOGS`` at a time (each streamed, never held whole)."""
        results: list[FailedTask | None] = [None] * len(tis)
        limiter = anyio.CapacityLimiter(PARALLEL_LOGS)

        async def one(index: int) -> None:
            async with limiter:
                results[index] = await _examine(dag_id, run_id, tis[index])

        async with anyio.create_task_group() as group:
            for index in range(len(tis)):
                group.start_soon(one, index)
        return [r for r in results if r is not None]

    async def _examine(dag_id: str, run_id: str, ti: TaskInstanceSummary) -> FailedTask:
        scanner = LogScanner(DIAGNOSE_TAIL_LINES, DIAGNOSE_TAIL_BYTES)
        problem = None
        try:
            await backend.stream_log(
                dag_id, run_id, ti.task_id, max(1, ti.try_number), ti.map_index, scanner.feed
            )
        except FleetdeckError as exc:
            problem = str(exc)[:300]
        tail = scanner.result()
        return FailedTask(
            task_id=ti.task_id,
            map_index=ti.map_index,
            try_number=ti.try_number,
            max_tries=ti.max_tries,
            retries_exhausted=ti.try_number > ti.max_tries,
            error=tail.error,
            log_tail=scanner.context or tail.lines,
            log_bytes_scanned=tail.total_bytes,
            log_problem=problem,
        )

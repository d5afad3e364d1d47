"""Write tools: trigger, clear, pause/unpause and mark runs. Each one needs a human's approval.

They are registered ``destructive=True``, so the shared approval flow asks the human (showing the
server, environment, tool, exact arguments and on-behalf-of user) before the body runs. Per-DAG
authorization runs *before* that question (a resolver listed ahead of the approval's), so nobody is
asked to approve an action the caller may not take; the body checks it again.
"""

# No ``from __future__ import annotations`` here: the resolver annotations below must be evaluated
# where they are defined (they name a closure), as the SDK reads them at registration.

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve
from pydantic import Field

from fleetdeck.errors import FleetdeckError, InvalidInputError
from fleetdeck.server import FleetServer
from fleetdeck.telemetry.middleware import current_call
from fleetdeck_airflow.models import DagRunSummary, DagSummary, FlatModel, inline_one
from fleetdeck_airflow.tools.context import DagId, RunId, TaskId, ToolContext, on_behalf_note, permitted

MAX_CONF_BYTES = 65_536


class TriggerResult(FlatModel):
    """The run a trigger started, or the run that already had this id."""

    run: Annotated[DagRunSummary, inline_one(DagRunSummary)]
    created: bool = Field(description="False when a run with this id existed: nothing new was started.")
    conf_differs: bool = Field(default=False, description="The existing run has a different conf.")
    message: str


class ClearResult(FlatModel):
    """Which task instances were cleared (they will run again)."""

    dag_id: str
    run_id: str
    cleared: list[str]


class PauseResult(FlatModel):
    """A DAG's paused state after the change."""

    dag_id: str
    is_paused: bool | None


def register(server: FleetServer, ctx: ToolContext) -> None:
    """Add the write tools to ``server``."""
    backend = ctx.backend

    def gate(tool: str) -> Callable[[str], Awaitable[DagSummary]]:
        """A resolver refusing before the approval question when the caller may not operate the DAG."""

        async def may_operate(dag_id: str) -> DagSummary:
            try:
                return await permitted(ctx, tool, dag_id, "operate")
            except FleetdeckError as exc:
                record = current_call.get()
                if record is not None:
                    record.outcome, record.error_class = exc.outcome, type(exc).__name__
                raise ToolError(f"{exc}; nothing was changed") from exc

        may_operate.__qualname__ = f"may_operate[{tool}]"  # the SDK's key: the same on every replica
        return may_operate

    TriggerGate = Annotated[DagSummary, Resolve(gate("trigger_dag_run"))]
    ClearTasksGate = Annotated[DagSummary, Resolve(gate("clear_task_instances"))]
    ClearRunGate = Annotated[DagSummary, Resolve(gate("clear_dag_run"))]
    PauseGate = Annotated[DagSummary, Resolve(gate("pause_dag"))]
    UnpauseGate = Annotated[DagSummary, Resolve(gate("unpause_dag"))]
    MarkGate = Annotated[DagSummary, Resolve(gate("mark_dag_run"))]

    @server.tool(minutes_saved=3, read_only=False, destructive=True, idempotent=True)
    async def trigger_dag_run(
        dag_id: DagId,
        run_id: Annotated[
            RunId,
            Field(
                description="Your unique id for this run; repeating a call with it never starts a second run."
            ),
        ],
        dag: TriggerGate,
        conf: Annotated[dict[str, Any] | None, Field(description="The run's conf (JSON object).")] = None,
    ) -> TriggerResult:
        """Start a DAG run with an optional conf, after your approval; idempotent through run_id.

        If a run with this run_id already exists it is returned and nothing new starts. A paused
        DAG's run stays queued until the DAG is unpaused. The note records on whose behalf.
        """
        await permitted(ctx, "trigger_dag_run", dag_id, "operate")
        conf = conf or {}
        if len(json.dumps(conf)) > MAX_CONF_BYTES:
            raise InvalidInputError(f"conf is larger than {MAX_CONF_BYTES} bytes")
        run, created = await backend.trigger_dag_run(dag_id, run_id, conf, on_behalf_note("Triggered"))
        differs = not created and run.conf != conf
        if created:
            message = f"started run {run_id} of {dag_id}"
        else:
            message = f"run {run_id} of {dag_id} already existed; no new run was started"
        if dag.is_paused:
            message += " (the DAG is paused: the run waits until it is unpaused)"
        return TriggerResult(run=run, created=created, conf_differs=differs, message=message)

    @server.tool(minutes_saved=4, read_only=False, destructive=True, idempotent=False)
    async def clear_task_instances(
        dag_id: DagId,
        run_id: RunId,
        task_ids: Annotated[list[TaskId], Field(min_length=1, max_length=200)],
        dag: ClearTasksGate,
        only_failed: bool = True,
        include_downstream: bool = True,
    ) -> ClearResult:
        """Clear task instances of a run so Airflow runs them again, after your approval.

        By default only failed ones are cleared, with their downstream tasks. Records a note on the run.
        """
        await permitted(ctx, "clear_task_instances", dag_id, "operate")
        cleared = await backend.clear_task_instances(
            dag_id,
            run_id,
            list(task_ids),
            only_failed=only_failed,
            downstream=include_downstream,
            note=on_behalf_note("Cleared tasks " + ", ".join(task_ids)),
        )
        return ClearResult(dag_id=dag_id, run_id=run_id, cleared=sorted({ti.task_id for ti in cleared}))

    @server.tool(minutes_saved=4, read_only=False, destructive=True, idempotent=False)
    async def clear_dag_run(
        dag_id: DagId, run_id: RunId, dag: ClearRunGate, only_failed: bool = True
    ) -> ClearResult:
        """Clear a whole DAG run (by default only its failed tasks) so it runs again, after your approval."""
        await permitted(ctx, "clear_dag_run", dag_id, "operate")
        note = on_behalf_note("Cleared the failed tasks" if only_failed else "Cleared the run")
        cleared = await backend.clear_dag_run(dag_id, run_id, only_failed=only_failed, note=note)
        return ClearResult(dag_id=dag_id, run_id=run_id, cleared=sorted(set(cleared)))

    @server.tool(minutes_saved=1, read_only=False, destructive=True, idempotent=True)
    async def pause_dag(dag_id: DagId, dag: PauseGate) -> PauseResult:
        """Pause a DAG so the scheduler starts no new runs, after your approval (running ones continue)."""
        await permitted(ctx, "pause_dag", dag_id, "operate")
        changed = await backend.set_paused(dag_id, True)
        ctx.guard.remember([changed])
        return PauseResult(dag_id=dag_id, is_paused=changed.is_paused)

    @server.tool(minutes_saved=1, read_only=False, destructive=True, idempotent=True)
    async def unpause_dag(dag_id: DagId, dag: UnpauseGate) -> PauseResult:
        """Unpause a DAG so the scheduler runs it again on its schedule, after your approval."""
        await permitted(ctx, "unpause_dag", dag_id, "operate")
        changed = await backend.set_paused(dag_id, False)
        ctx.guard.remember([changed])
        return PauseResult(dag_id=dag_id, is_paused=changed.is_paused)

    @server.tool(minutes_saved=2, read_only=False, destructive=True, idempotent=True)
    async def mark_dag_run(
        dag_id: DagId, run_id: RunId, state: Literal["success", "failed"], dag: MarkGate
    ) -> DagRunSummary:
        """Set a DAG run's state to success or failed, after your approval; the note records on whose behalf.

        Marking failed stops its running tasks; marking success does not run the remaining tasks.
        """
        await permitted(ctx, "mark_dag_run", dag_id, "operate")
        return await backend.mark_dag_run(dag_id, run_id, state, on_behalf_note(f"Marked {state}"))

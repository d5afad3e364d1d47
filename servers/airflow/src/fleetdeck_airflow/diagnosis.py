"""Why a DAG run failed: the failed tasks, the root error, what the failure blocked, and what to do next.

Pure functions over task instances, the DAG's task graph and per-task log scans, so they are
tested without Airflow; :func:`diagnose` in the tools layer feeds them from the backend.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Annotated

from pydantic import Field

from fleetdeck_airflow.models import (
    DagRunSummary,
    ErrorReport,
    FlatModel,
    TaskInstanceSummary,
    TaskSummary,
    inline_list,
    inline_one,
)

MAX_LISTED = 20
FAILED_STATES = frozenset({"failed"})
BLOCKED_STATES = frozenset({"upstream_failed"})
ACTIVE_STATES = frozenset({"queued", "running", "scheduled", "up_for_retry", "up_for_reschedule", "deferred"})

_TRANSIENT = re.compile(
    r"(?i)connection|timeout|timed out|refused|unreachable|temporar|throttl|rate limit|503|502|504|"
    r"broken pipe|reset by peer|dns|name resolution"
)
_MISSING_INPUT = re.compile(r"(?i)not ?found|does not exist|no such file|missing|nosuchkey|404")
_CODE = re.compile(r"(?i)^(ImportError|ModuleNotFoundError|SyntaxError|NameError|AttributeError|TypeError)$")
_RESOURCES = re.compile(r"(?i)memoryerror|out of memory|oom|killed|sigkill|-9|zombie|heartbeat")


class FailedTask(FlatModel):
    """One failed task instance and what its log says."""

    task_id: str
    map_index: int = -1
    try_number: int
    max_tries: int
    retries_exhausted: bool = Field(description="True when it failed on its last allowed try.")
    error: ErrorReport | None = None
    log_tail: list[str] = Field(default_factory=list, description="The last log lines (redacted).")
    log_bytes_scanned: int = 0
    log_problem: str | None = Field(default=None, description="Why the log could not be read, if so.")


class BlockedTasks(FlatModel):
    """Tasks that did not run (upstream_failed) because of one failed task."""

    failed_task: str
    blocked: list[str]
    more: int = Field(default=0, description="How many more blocked tasks are not listed.")


class Diagnosis(FlatModel):
    """Why the run ended as it did and what to do next."""

    run: Annotated[DagRunSummary, inline_one(DagRunSummary)]
    state_counts: dict[str, int]
    task_instances_seen: int
    failed_tasks: list[FailedTask]
    failed_not_examined: list[str] = Field(
        default_factory=list, description="Failed tasks beyond the examined limit (their logs were not read)."
    )
    root_task: str | None = Field(default=None, description="The failed task no other failure explains.")
    root_error: ErrorReport | None = None
    upstream_failed: Annotated[list[BlockedTasks], inline_list(BlockedTasks)] = Field(default_factory=list)
    suggested_next_step: str


def state_counts(tis: Iterable[TaskInstanceSummary]) -> dict[str, int]:
    """How many task instances are in each state (``none`` for not yet scheduled)."""
    return dict(sorted(Counter(ti.state or "none" for ti in tis).items()))


def blocked_by(
    failed: Iterable[str], tasks: Iterable[TaskSummary], states: Mapping[str, str]
) -> list[BlockedTasks]:
    """For each failed task, the upstream_failed tasks downstream of it (breadth first, bounded)."""
    downstream = {t.task_id: t.downstream_task_ids for t in tasks}
    found = []
    for task_id in failed:
        seen: list[str] = []
        queue = deque(downstream.get(task_id, []))
        visited: set[str] = set()
        while queue:
            child = queue.popleft()
            if child in visited:
                continue
            visited.add(child)
            if states.get(child) in BLOCKED_STATES:
                seen.append(child)
                queue.extend(downstream.get(child, []))
        if seen:
            found.append(
                BlockedTasks(
                    failed_task=task_id, blocked=seen[:MAX_LISTED], more=max(0, len(seen) - MAX_LISTED)
                )
            )
    return found


def root_failure(failed: list[FailedTask], tasks: Iterable[TaskSummary]) -> FailedTask | None:
    """The failed task with no failed ancestor (the earliest such in the graph order), else the first."""
    if not failed:
        return None
    downstream = {t.task_id: set(t.downstream_task_ids) for t in tasks}
    failed_ids = {f.task_id for f in failed}
    explained: set[str] = set()
    for task_id in failed_ids:
        queue, visited = deque(downstream.get(task_id, ())), set()
        while queue:
            child = queue.popleft()
            if child not in visited:
                visited.add(child)
                queue.extend(downstream.get(child, ()))
        explained |= visited & failed_ids
    roots = [f for f in failed if f.task_id not in explained]
    with_error = [f for f in roots if f.error is not None]
    return (with_error or roots or failed)[0]


def suggest(run: DagRunSummary, counts: Mapping[str, int], root: FailedTask | None) -> str:
    """One next step a person would take, from the run state and the root error."""
    active = sum(n for s, n in counts.items() if s in ACTIVE_STATES)
    if root is None:
        if run.state == "success":
            return "Nothing to do: the run succeeded."
        if active or run.state in ("queued", "running"):
            return f"Wait: the run is {run.state} with {active} task(s) active; diagnose again when it ends."
        return "No failed task was found; read the run's task states with get_dag_run."
    error = root.error
    text = f"{error.error_type} {error.message}" if error else ""
    retry_hint = f"clear_task_instances on {root.task_id!r} with only_failed=true (downstream included)"
    if error is None:
        return f"No error was found in the log of {root.task_id!r}; read it with get_task_logs, then decide."
    if _CODE.match(error.error_type):
        return (
            f"Fix the code of {root.task_id!r} ({error.error_type}) and check list_import_errors; "
            "clearing before the fix will fail the same way."
        )
    if _RESOURCES.search(text):
        return f"Give {root.task_id!r} more memory or time (it looks killed or starved), then {retry_hint}."
    if _TRANSIENT.search(text):
        tries = "after its retries were exhausted" if root.retries_exhausted else "on a transient error"
        return (
            f"Likely transient ({error.error_type}) {tries}: check the dependency is back, then {retry_hint}."
        )
    if _MISSING_INPUT.search(text):
        return f"An input is missing ({error.error_type}): check the upstream data landed, then {retry_hint}."
    return (
        f"{root.task_id!r} raised {error.error_type}: fix the data or the code it points to"
        f"{' (' + error.location + ')' if error.location else ''}; clearing alone would fail again."
    )

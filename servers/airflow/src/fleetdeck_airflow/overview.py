"""Compact views for results an agent reads whole: a DAG's tasks and graph, a run's task instances.

A 200-task DAG as 200 task objects is ~30 KiB an agent has to read (and its MCP client has to
validate, object by object). These views say the same in far less: tasks grouped by what they
share, the graph as chains in Airflow's own ``a >> b >> [c, d]`` notation, and task instances in
detail only where something needs attention, the rest by id.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence

from fleetdeck_airflow.models import TaskInstanceSummary, TaskKind, TaskSummary

QUIET_STATES = frozenset({"success", "skipped", "upstream_failed", "removed", "none"})
"""Task instance states whose details say nothing more than the state (or that never ran)."""


def task_kinds(tasks: Iterable[TaskSummary]) -> list[TaskKind]:
    """The tasks grouped by operator, retries and trigger rule; the largest group first."""
    groups: dict[tuple[str | None, float | None, str | None], list[str]] = {}
    for task in tasks:
        groups.setdefault((task.operator, task.retries, task.trigger_rule), []).append(task.task_id)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), str(item[0])))
    return [
        TaskKind(operator=operator, retries=retries, trigger_rule=rule, task_ids=", ".join(sorted(ids)))
        for (operator, retries, rule), ids in ordered
    ]


def run_order(downstream: dict[str, list[str]]) -> list[str]:
    """Task ids in a topological order (ties by id); tasks on a cycle, if any, come last.

    Downstream ids that are not keys of ``downstream`` are ignored.
    """
    upstream_count = dict.fromkeys(downstream, 0)
    for children in downstream.values():
        for child in children:
            if child in upstream_count:
                upstream_count[child] += 1
    ready = [task for task, count in upstream_count.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        task = heapq.heappop(ready)
        order.append(task)
        for child in downstream[task]:
            if child in upstream_count:
                upstream_count[child] -= 1
                if upstream_count[child] == 0:
                    heapq.heappush(ready, child)
    if len(order) < len(downstream):
        placed = set(order)
        order += sorted(task for task in downstream if task not in placed)
    return order


def dependency_lines(tasks: Sequence[TaskSummary]) -> list[str]:
    """The graph in Airflow's notation, one line per chain, in run order.

    Every task appears exactly once as a member of a chain (``a >> b >> c``); a chain ends where a
    task fans out or in, and its last task's downstream tasks follow it (``>> d`` or ``>> [d, e]``),
    each of which starts a line of its own. A task without dependencies is a line by itself.
    """
    downstream = {task.task_id: task.downstream_task_ids for task in tasks}
    downstream = {task: [c for c in children if c in downstream] for task, children in downstream.items()}
    parents: dict[str, list[str]] = {}
    for parent, children in downstream.items():
        for child in children:
            parents.setdefault(child, []).append(parent)
    # a task continues its only parent's chain when it is that parent's only child
    inside = {task for task, ups in parents.items() if len(ups) == 1 and len(downstream[ups[0]]) == 1}
    order = run_order(downstream)
    written: set[str] = set()

    def chain_from(start: str) -> str:
        chain = [start]
        written.add(start)
        tail = downstream[start]
        while len(tail) == 1 and tail[0] in inside and tail[0] not in written:
            chain.append(tail[0])
            written.add(tail[0])
            tail = downstream[tail[0]]
        line = " >> ".join(chain)
        if len(tail) == 1:
            return f"{line} >> {tail[0]}"
        return f"{line} >> [{', '.join(sorted(tail))}]" if tail else line

    lines = [chain_from(start) for start in order if start not in inside]
    # only a cycle (not a DAG, but never loop on bad data) leaves tasks unwritten
    lines += [chain_from(start) for start in order if start not in written]
    return lines


def label(ti: TaskInstanceSummary) -> str:
    """A task instance's id as listed: ``task`` or, for a mapped one, ``task[map_index]``."""
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"


def split_by_state(
    tis: Iterable[TaskInstanceSummary], detailed: Callable[[str], bool], limit: int, per_state: int
) -> tuple[list[TaskInstanceSummary], dict[str, str], int]:
    """Task instances in detail (the first ``limit`` whose state is ``detailed``), the others' ids by state.

    Returns (the detailed ones, comma-separated ids by state, at most ``per_state`` each, ids left out).
    """
    shown: list[TaskInstanceSummary] = []
    ids: dict[str, list[str]] = {}
    left_out = 0
    for ti in tis:
        state = ti.state or "none"
        if detailed(state) and len(shown) < limit:
            shown.append(ti)
            continue
        listed = ids.setdefault(state, [])
        if len(listed) < per_state:
            listed.append(label(ti))
        else:
            left_out += 1
    return shown, {state: ", ".join(listed) for state, listed in sorted(ids.items())}, left_out

"""Compact views: the graph in Airflow notation, tasks grouped, task instances split by state."""

from __future__ import annotations

from fleetdeck_airflow.models import TaskInstanceSummary, TaskSummary
from fleetdeck_airflow.overview import QUIET_STATES, dependency_lines, run_order, split_by_state, task_kinds


def graph(edges: dict[str, list[str]]) -> list[TaskSummary]:
    return [TaskSummary(task_id=task, downstream_task_ids=children) for task, children in edges.items()]


def test_a_linear_dag_is_one_chain() -> None:
    tasks = graph({"load": [], "extract": ["transform"], "transform": ["load"]})
    assert dependency_lines(tasks) == ["extract >> transform >> load"]


def test_fan_out_and_fan_in_start_new_lines_and_every_edge_is_written_once() -> None:
    tasks = graph({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": ["e"], "e": ["f"], "f": [], "alone": []})
    lines = dependency_lines(tasks)
    assert lines == ["a >> [b, c]", "alone", "b >> d", "c >> d", "d >> e >> f"]
    written = {
        (parent, child)
        for line in lines
        for parent, child in zip(line.split(" >> "), line.split(" >> ")[1:], strict=False)
        if not child.startswith("[")
    }
    written |= {("a", "b"), ("a", "c")}
    assert written == {(t.task_id, c) for t in tasks for c in t.downstream_task_ids}


def test_a_graph_with_a_cycle_or_unknown_tasks_still_lists_every_task_once() -> None:
    tasks = graph({"x": ["y"], "y": ["x"], "z": ["missing"]})
    assert run_order({t.task_id: t.downstream_task_ids for t in tasks}) == ["z", "x", "y"]
    assert dependency_lines(tasks) == ["z", "x >> y >> x"]


def test_tasks_are_grouped_by_operator_retries_and_trigger_rule_largest_first() -> None:
    tasks = [
        TaskSummary(task_id="b", operator="BashOperator", retries=2, trigger_rule="all_success"),
        TaskSummary(task_id="p2", operator="@task", retries=0, trigger_rule="all_success"),
        TaskSummary(task_id="p1", operator="@task", retries=0, trigger_rule="all_success"),
        TaskSummary(task_id="cleanup", operator="@task", retries=0, trigger_rule="all_done"),
    ]
    kinds = task_kinds(tasks)
    assert [(k.operator, k.trigger_rule, k.task_ids) for k in kinds] == [
        ("@task", "all_success", "p1, p2"),
        ("@task", "all_done", "cleanup"),
        ("BashOperator", "all_success", "b"),
    ]


def ti(task_id: str, state: str | None, map_index: int = -1) -> TaskInstanceSummary:
    return TaskInstanceSummary(task_id=task_id, state=state, map_index=map_index, try_number=1)


RUN = [
    ti("a_failed", "failed"),
    ti("b_mapped", "success", 0),
    ti("b_mapped", "running", 1),
    ti("c_blocked", "upstream_failed"),
    ti("d_new", None),
    ti("e_retry", "up_for_retry"),
]


def test_by_default_only_task_instances_needing_attention_come_in_detail() -> None:
    shown, ids, left_out = split_by_state(RUN, lambda s: s not in QUIET_STATES, limit=10, per_state=10)
    assert [(t.task_id, t.state) for t in shown] == [
        ("a_failed", "failed"),
        ("b_mapped", "running"),
        ("e_retry", "up_for_retry"),
    ]
    assert ids == {"none": "d_new", "success": "b_mapped[0]", "upstream_failed": "c_blocked"}
    assert left_out == 0


def test_beyond_the_limit_task_instances_are_listed_by_id_and_ids_are_capped_per_state() -> None:
    many = [ti(f"t{i:02d}", "failed") for i in range(5)]
    shown, ids, left_out = split_by_state(many, lambda s: s == "failed", limit=2, per_state=2)
    assert [t.task_id for t in shown] == ["t00", "t01"]
    assert ids == {"failed": "t02, t03"}
    assert left_out == 1

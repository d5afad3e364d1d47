"""Airflow's JSON read straight into the result models: renamed fields, nulls, unknown fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from fleetdeck_airflow import convert
from fleetdeck_airflow.models import DagRunSummary, TaskInstanceSummary

TI: dict[str, Any] = {
    "id": "01a2",
    "task_id": "load",
    "dag_id": "d",
    "map_index": None,
    "state": "failed",
    "try_number": None,
    "max_tries": 2,
    "operator": "_PythonDecoratedOperator",
    "operator_name": "@task",
    "start_date": "2026-01-01T00:00:00Z",
    "end_date": None,
    "duration": 1.5,
    "rendered_fields": {"op_args": []},
}


def test_task_instance_pages_are_read_with_airflow_names_and_nulls_as_defaults() -> None:
    body = json.dumps({"task_instances": [TI], "total_entries": 7}).encode()
    [ti], total = convert.task_instances(body)
    assert total == 7
    assert (ti.task_id, ti.map_index, ti.try_number, ti.max_tries) == ("load", -1, 0, 2)
    assert (ti.operator, ti.duration_s) == ("@task", 1.5)
    assert ti.start_date == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_parsed_item_serializes_exactly_as_the_result_model() -> None:
    class Holder(BaseModel):
        ti: TaskInstanceSummary
        run: DagRunSummary

    [ti], _ = convert.task_instances(json.dumps({"task_instances": [TI]}).encode())
    [run] = convert.dag_runs(
        json.dumps(
            {"dag_runs": [{"dag_id": "d", "dag_run_id": "r", "conf": None, "triggering_user_name": "ana"}]}
        ).encode()
    )
    dumped = Holder(ti=ti, run=run).model_dump(mode="json")
    assert set(dumped["ti"]) == set(TaskInstanceSummary.model_fields)
    assert dumped["run"]["run_id"] == "r"
    assert dumped["run"]["triggering_user"] == "ana"
    assert dumped["run"]["conf"] == {}


def test_tasks_without_downstream_ids_have_an_empty_list() -> None:
    body = b'{"tasks": [{"task_id": "a", "operator_name": "BashOperator", "downstream_task_ids": null}]}'
    [task] = convert.tasks(body)
    assert (task.operator, task.downstream_task_ids) == ("BashOperator", [])


def test_malformed_pages_raise_a_value_error() -> None:
    with pytest.raises(ValidationError):
        convert.task_instances(b'{"task_instances": [{"state": "failed"}]}')
    with pytest.raises(ValidationError, match="Invalid JSON"):
        convert.tasks(b"{not json")

"""Airflow's REST JSON to this server's models (never through the client's typed models: slow to build).

Lists (tasks, task instances, runs) are validated straight from the response bytes by pydantic-core
into subclasses of the result models that read Airflow's field names: no Python dict is built for
the many fields these tools do not use. A subclass instance serializes exactly as its base model.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, Field

from fleetdeck.redaction import redact_text
from fleetdeck_airflow.models import (
    ComponentHealth,
    DagRunSummary,
    DagSummary,
    ImportProblem,
    TaskInstanceSummary,
    TaskSummary,
)

STACK_TRACE_CHARS = 1500


def _default(value: Any) -> Any:
    """A ``BeforeValidator`` turning Airflow's null into the field's default (as if it were absent)."""

    def check(given: Any) -> Any:
        return value() if given is None and callable(value) else value if given is None else given

    return BeforeValidator(check)


class _Task(TaskSummary):
    """Airflow's ``TaskResponse``."""

    operator: str | None = Field(default=None, validation_alias="operator_name")
    downstream_task_ids: Annotated[list[str], _default(list)] = Field(default_factory=list)


class _TaskInstance(TaskInstanceSummary):
    """Airflow's ``TaskInstanceResponse``."""

    map_index: Annotated[int, _default(-1)] = -1
    try_number: Annotated[int, _default(0)] = 0
    max_tries: Annotated[int, _default(0)] = 0
    operator: str | None = Field(default=None, validation_alias=AliasChoices("operator_name", "operator"))
    duration_s: float | None = Field(default=None, validation_alias="duration")


class _DagRun(DagRunSummary):
    """Airflow's ``DAGRunResponse``."""

    run_id: str = Field(validation_alias="dag_run_id")
    duration_s: float | None = Field(default=None, validation_alias="duration")
    triggering_user: str | None = Field(default=None, validation_alias="triggering_user_name")
    conf: Annotated[dict[str, Any], _default(dict)] = Field(default_factory=dict)


class _TaskPage(BaseModel):
    tasks: list[_Task]


class _TaskInstancePage(BaseModel):
    task_instances: list[_TaskInstance]
    total_entries: int | None = None


class _DagRunPage(BaseModel):
    dag_runs: list[_DagRun]


def tasks(body: bytes) -> list[TaskSummary]:
    """A ``TaskCollectionResponse``'s tasks."""
    return list(_TaskPage.model_validate_json(body).tasks)


def task_instances(body: bytes) -> tuple[list[TaskInstanceSummary], int | None]:
    """A ``TaskInstanceCollectionResponse``: its task instances and ``total_entries``."""
    page = _TaskInstancePage.model_validate_json(body)
    return list(page.task_instances), page.total_entries


def dag_runs(body: bytes) -> list[DagRunSummary]:
    """A ``DAGRunCollectionResponse``'s runs."""
    return list(_DagRunPage.model_validate_json(body).dag_runs)


def dag(d: dict[str, Any]) -> DagSummary:
    """A DAG (``DAGResponse`` or details) as a :class:`DagSummary`."""
    return DagSummary(
        dag_id=d["dag_id"],
        description=d.get("description"),
        owners=list(d.get("owners") or []),
        tags=sorted(t["name"] for t in (d.get("tags") or [])),
        is_paused=d.get("is_paused"),
        schedule=d.get("timetable_summary"),
        next_run_after=d.get("next_dagrun_run_after"),
        has_import_errors=bool(d.get("has_import_errors")),
        file=d.get("relative_fileloc"),
    )


def dag_run(r: dict[str, Any]) -> DagRunSummary:
    """A ``DAGRunResponse`` as a :class:`DagRunSummary`."""
    return _DagRun.model_validate(r)


def dag_run_json(body: bytes) -> DagRunSummary:
    """:func:`dag_run` straight from the response bytes."""
    return _DagRun.model_validate_json(body)


def task_instance(ti: dict[str, Any]) -> TaskInstanceSummary:
    """A ``TaskInstanceResponse`` as a :class:`TaskInstanceSummary`."""
    return _TaskInstance.model_validate(ti)


def import_error(e: dict[str, Any]) -> ImportProblem:
    """An ``ImportErrorResponse``: the end of its stack trace, redacted."""
    trace = str(e.get("stack_trace") or "")
    return ImportProblem(
        filename=e.get("filename"),
        timestamp=e.get("timestamp"),
        error=redact_text(trace[-STACK_TRACE_CHARS:]).strip(),
    )


def health(h: dict[str, Any]) -> list[ComponentHealth]:
    """A ``HealthInfoResponse`` as one entry per component."""
    found = []
    for name in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
        part = h.get(name)
        if part is None:
            continue
        beat = next((v for k, v in part.items() if k.startswith("latest_") and v), None)
        found.append(ComponentHealth(name=name, status=part.get("status"), latest_heartbeat=beat))
    return found

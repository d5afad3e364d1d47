"""Airflow's REST JSON to this server's models (raw dicts: the typed client models are slow to build)."""

from __future__ import annotations

from typing import Any

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


def task(t: dict[str, Any]) -> TaskSummary:
    """A ``TaskResponse`` as a :class:`TaskSummary`."""
    return TaskSummary(
        task_id=str(t["task_id"]),
        operator=t.get("operator_name"),
        retries=t.get("retries"),
        trigger_rule=t.get("trigger_rule"),
        downstream_task_ids=list(t.get("downstream_task_ids") or []),
    )


def dag_run(r: dict[str, Any]) -> DagRunSummary:
    """A ``DAGRunResponse`` as a :class:`DagRunSummary`."""
    return DagRunSummary(
        dag_id=r["dag_id"],
        run_id=r["dag_run_id"],
        state=r.get("state"),
        run_type=r.get("run_type"),
        logical_date=r.get("logical_date"),
        queued_at=r.get("queued_at"),
        start_date=r.get("start_date"),
        end_date=r.get("end_date"),
        duration_s=r.get("duration"),
        triggered_by=r.get("triggered_by"),
        triggering_user=r.get("triggering_user_name"),
        note=r.get("note"),
        conf=dict(r.get("conf") or {}),
    )


def task_instance(ti: dict[str, Any]) -> TaskInstanceSummary:
    """A ``TaskInstanceResponse`` as a :class:`TaskInstanceSummary`."""
    map_index = ti.get("map_index")
    return TaskInstanceSummary(
        task_id=ti["task_id"],
        map_index=-1 if map_index is None else map_index,
        state=ti.get("state"),
        try_number=ti.get("try_number") or 0,
        max_tries=ti.get("max_tries") or 0,
        operator=ti.get("operator_name") or ti.get("operator"),
        start_date=ti.get("start_date"),
        end_date=ti.get("end_date"),
        duration_s=ti.get("duration"),
    )


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

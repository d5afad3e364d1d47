"""What the Airflow server's tools return: small, stable shapes independent of the client library."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class DagSummary(BaseModel):
    """One DAG as a list shows it; ``tags`` and ``owners`` also drive per-DAG authorization."""

    dag_id: str
    description: str | None = None
    owners: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    is_paused: bool | None = None
    schedule: str | None = Field(default=None, description="The timetable, e.g. '@daily' or 'None'.")
    next_run_after: datetime | None = None
    has_import_errors: bool = False
    file: str | None = Field(default=None, description="DAG file relative to its bundle.")


class TaskSummary(BaseModel):
    """One task of a DAG."""

    task_id: str
    operator: str | None = None
    retries: float | None = None
    trigger_rule: str | None = None
    downstream_task_ids: list[str] = Field(default_factory=list)


class DagRunSummary(BaseModel):
    """One DAG run."""

    dag_id: str
    run_id: str
    state: str | None = None
    run_type: str | None = None
    logical_date: datetime | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration_s: float | None = None
    triggered_by: str | None = None
    triggering_user: str | None = None
    note: str | None = None
    conf: dict[str, Any] = Field(default_factory=dict)


class TaskInstanceSummary(BaseModel):
    """One task instance of a run: its state and its tries."""

    task_id: str
    map_index: int = -1
    state: str | None = None
    try_number: int = 0
    max_tries: int = 0
    operator: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration_s: float | None = None


class ImportProblem(BaseModel):
    """A DAG file Airflow could not import."""

    filename: str | None = None
    timestamp: datetime | None = None
    error: str = Field(description="The last lines of the stack trace (secrets redacted).")


class ComponentHealth(BaseModel):
    """One Airflow component's status as the API server reports it."""

    name: str
    status: str | None = None
    latest_heartbeat: str | None = None


class LogLine(BaseModel):
    """One rendered log line (secrets redacted, long lines cut)."""

    text: str


class ErrorReport(BaseModel):
    """The error a task failed with, as its log tells it."""

    error_type: str
    message: str
    location: str | None = Field(default=None, description="file:line of the innermost user frame.")
    raised: str | None = Field(default=None, description="The outermost exception when the root differs.")


class LogTail(BaseModel):
    """The end of one task try's log plus what the scan found."""

    lines: list[str] = Field(description="The last lines, oldest first (secrets redacted).")
    total_lines: int
    total_bytes: int
    truncated: bool = Field(description="True when earlier lines were left out.")
    error: ErrorReport | None = None

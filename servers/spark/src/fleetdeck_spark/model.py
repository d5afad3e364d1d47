"""The application model both sources produce: what an agent needs to know about one Spark application.

Every text in it has already been redacted and truncated by the source (see :mod:`redaction`), so
tools can return it as is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
AppStatus = Literal["running", "completed"]
FailureKind = Literal[
    "exception", "killed", "executor_lost", "fetch_failed", "result_lost", "commit_denied", "other"
]


class AppSummary(BaseModel):
    """One application as a listing shows it."""

    app_id: str
    attempt_id: str | None = None
    name: str
    user: str | None = None
    status: AppStatus
    start_ms: int | None = None
    end_ms: int | None = None
    duration_ms: int | None = None
    spark_version: str | None = None
    source: str = Field(default="", description="Where the application was found (log folder or server).")


class Quantiles(BaseModel):
    """Task metric distribution over successful tasks, at :data:`QUANTILES` (min, p25, median, p75, max)."""

    duration_ms: list[float]
    run_time_ms: list[float]
    gc_time_ms: list[float]
    input_bytes: list[float]
    shuffle_read_bytes: list[float]
    shuffle_write_bytes: list[float]
    memory_spilled_bytes: list[float]
    disk_spilled_bytes: list[float]
    peak_execution_memory_bytes: list[float]


class SlowTask(BaseModel):
    """One of the slowest successful tasks of a stage."""

    task_id: int
    index: int
    executor_id: str
    duration_ms: int
    shuffle_read_bytes: int = 0
    spilled_bytes: int = 0


class Stage(BaseModel):
    """One stage attempt with its totals and task distribution."""

    stage_id: int
    attempt: int = 0
    name: str = ""
    status: str = Field(description="COMPLETE, FAILED, ACTIVE, PENDING or SKIPPED.")
    num_tasks: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0
    killed_tasks: int = 0
    submission_ms: int | None = None
    completion_ms: int | None = None
    duration_ms: int | None = None
    failure_reason: str | None = None
    input_bytes: int = 0
    output_bytes: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    memory_spilled_bytes: int = 0
    disk_spilled_bytes: int = 0
    run_time_ms: int = 0
    gc_time_ms: int = 0
    quantiles: Quantiles | None = None
    slowest_tasks: list[SlowTask] = Field(default_factory=list)

    @property
    def skew_ratio(self) -> float | None:
        """Max task duration over the median, when the stage has a meaningful distribution."""
        if self.quantiles is None:
            return None
        median, top = self.quantiles.duration_ms[2], self.quantiles.duration_ms[4]
        return round(top / median, 1) if median > 0 else None


class FailureGroup(BaseModel):
    """Task failures with the same cause, deduplicated."""

    kind: FailureKind
    exception: str | None = Field(default=None, description="Exception class, when the failure has one.")
    message: str = Field(description="The first line of the error, redacted and truncated.")
    python_error: str | None = Field(default=None, description="Last line of a Python traceback.")
    frames: list[str] = Field(default_factory=list, description="Top stack frames, deduplicated.")
    count: int = 0
    stage_ids: list[int] = Field(default_factory=list)
    task_ids: list[int] = Field(default_factory=list, description="The first few failed task ids.")
    executor_ids: list[str] = Field(default_factory=list)


class Job(BaseModel):
    """One job: which stages it ran and whether it succeeded."""

    job_id: int
    status: str = Field(description="SUCCEEDED, FAILED, RUNNING or UNKNOWN.")
    name: str = ""
    stage_ids: list[int] = Field(default_factory=list)
    submission_ms: int | None = None
    completion_ms: int | None = None
    duration_ms: int | None = None
    sql_execution_id: int | None = None


class Executor(BaseModel):
    """One executor (``driver`` in local mode)."""

    executor_id: str
    host: str | None = None
    cores: int | None = None
    max_memory_bytes: int | None = None
    added_ms: int | None = None
    removed_ms: int | None = None
    removed_reason: str | None = None
    completed_tasks: int = 0
    failed_tasks: int = 0


class SqlExecution(BaseModel):
    """One SQL / DataFrame execution."""

    execution_id: int
    description: str = ""
    status: str = Field(description="COMPLETED, FAILED or RUNNING.")
    start_ms: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    job_ids: list[int] = Field(default_factory=list)


class Application(BaseModel):
    """Everything the tools know about one application attempt."""

    summary: AppSummary
    jobs: list[Job] = Field(default_factory=list)
    stages: list[Stage] = Field(default_factory=list)
    failures: list[FailureGroup] = Field(default_factory=list)
    executors: list[Executor] = Field(default_factory=list)
    sql: list[SqlExecution] = Field(default_factory=list)
    config: dict[str, str] = Field(default_factory=dict, description="Spark properties, secrets redacted.")
    notes: list[str] = Field(default_factory=list, description="What the source could not read.")

    def stage(self, stage_id: int, attempt: int | None = None) -> Stage | None:
        """The given attempt of a stage, or its latest attempt."""
        matching = [s for s in self.stages if s.stage_id == stage_id]
        if attempt is not None:
            matching = [s for s in matching if s.attempt == attempt]
        return max(matching, key=lambda s: s.attempt, default=None)

"""What the tools return: the application model cut down to an agent-sized view."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fleetdeck_spark.model import Application, AppSummary, Executor, FailureGroup, SqlExecution, Stage
from fleetdeck_spark.redaction import clip

NOTABLE_PREFIXES = (
    "spark.driver.memory", "spark.driver.maxResultSize", "spark.driver.cores", "spark.executor.memory",
    "spark.executor.cores", "spark.executor.instances", "spark.executor.memoryOverhead",
    "spark.executor.pyspark.memory", "spark.sql.shuffle.partitions", "spark.sql.adaptive.",
    "spark.sql.autoBroadcastJoinThreshold", "spark.default.parallelism", "spark.dynamicAllocation.",
    "spark.memory.", "spark.master", "spark.submit.deployMode", "spark.task.maxFailures", "spark.speculation",
    "spark.shuffle.", "spark.sql.files.", "spark.serializer",
)  # fmt: skip
MAX_FAILURES = 5
MAX_STAGES = 10
MAX_EXECUTORS = 10
MAX_SQL = 5
REASON_LIMIT = 600


class StageBrief(BaseModel):
    """A stage in a summary."""

    stage_id: int
    attempt: int
    name: str
    status: str
    num_tasks: int
    failed_tasks: int
    duration_ms: int | None
    skew_ratio: float | None = Field(description="Slowest task / median task duration.")
    shuffle_read_bytes: int
    disk_spilled_bytes: int
    failure_reason: str | None = None


class Counts(BaseModel):
    """How much the application ran and how much of it failed."""

    jobs: int
    failed_jobs: int
    stages: int
    failed_stages: int
    skipped_stages: int
    tasks: int
    failed_tasks: int
    killed_tasks: int


class ApplicationView(BaseModel):
    """An application summary sized for a model's context."""

    summary: AppSummary
    counts: Counts
    failures: list[FailureGroup] = Field(description="Task failures grouped by cause, most frequent first.")
    failed_stages: list[StageBrief]
    slowest_stages: list[StageBrief]
    executors: list[Executor]
    executors_omitted: int = 0
    sql: list[SqlExecution] = Field(description="Failed SQL executions, then the slowest ones.")
    notable_config: dict[str, str] = Field(description="Memory, parallelism, shuffle and AQE settings.")
    notes: list[str] = Field(default_factory=list)


def brief(stage: Stage) -> StageBrief:
    """The summary line of a stage."""
    return StageBrief(
        stage_id=stage.stage_id,
        attempt=stage.attempt,
        name=stage.name[:160],
        status=stage.status,
        num_tasks=stage.num_tasks,
        failed_tasks=stage.failed_tasks,
        duration_ms=stage.duration_ms,
        skew_ratio=stage.skew_ratio,
        shuffle_read_bytes=stage.shuffle_read_bytes,
        disk_spilled_bytes=stage.disk_spilled_bytes,
        failure_reason=clip(stage.failure_reason, REASON_LIMIT),
    )


def application_view(app: Application) -> ApplicationView:
    """Cut ``app`` down to what a model needs to reason about it."""
    ran = [s for s in app.stages if s.status != "SKIPPED"]
    failed_sql = [q for q in app.sql if q.status == "FAILED"]
    slow_sql = sorted((q for q in app.sql if q.status != "FAILED"), key=lambda q: -(q.duration_ms or 0))
    sql = [q.model_copy(update={"error": clip(q.error, REASON_LIMIT)}) for q in failed_sql + slow_sql][
        :MAX_SQL
    ]
    failures = [g.model_copy(update={"frames": g.frames[:5]}) for g in app.failures[:MAX_FAILURES]]
    return ApplicationView(
        summary=app.summary,
        counts=Counts(
            jobs=len(app.jobs),
            failed_jobs=sum(1 for j in app.jobs if j.status == "FAILED"),
            stages=len(app.stages),
            failed_stages=sum(1 for s in app.stages if s.status == "FAILED"),
            skipped_stages=sum(1 for s in app.stages if s.status == "SKIPPED"),
            tasks=sum(s.num_tasks for s in ran),
            failed_tasks=sum(s.failed_tasks for s in app.stages),
            killed_tasks=sum(s.killed_tasks for s in app.stages),
        ),
        failures=failures,
        failed_stages=[brief(s) for s in app.stages if s.status == "FAILED"][:MAX_STAGES],
        slowest_stages=[brief(s) for s in sorted(ran, key=lambda s: -(s.duration_ms or 0))[:5]],
        executors=app.executors[:MAX_EXECUTORS],
        executors_omitted=max(0, len(app.executors) - MAX_EXECUTORS),
        sql=sql,
        notable_config={k: v for k, v in app.config.items() if k.startswith(NOTABLE_PREFIXES)},
        notes=app.notes,
    )

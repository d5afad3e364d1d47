"""Root-cause analysis of one application: the category, the evidence and what to change.

Rules look only at the application model, so the event-log source and the History Server give the
same diagnosis. Failure rules run first (most specific first); a succeeded application is checked
for slowdown patterns (skew, spill).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from fleetdeck_spark.memory import double_memory, format_bytes
from fleetdeck_spark.model import Application, FailureGroup, Stage

Category = Literal[
    "python_exception",
    "executor_oom",
    "driver_oom",
    "result_size_limit",
    "shuffle_fetch_failure",
    "executor_lost",
    "data_skew",
    "heavy_spill",
    "analysis_error",
    "missing_input",
    "cancelled",
    "unknown",
]
SKEW_RATIO = 5.0
SKEW_MIN_MS = 1_000
SPILL_BYTES = 512 * 1024 * 1024
EXCERPT = 300


class Evidence(BaseModel):
    """What the diagnosis rests on."""

    exception: str | None = None
    message: str | None = None
    python_error: str | None = None
    frames: list[str] = Field(default_factory=list)
    stages: list[int] = Field(default_factory=list)
    tasks: list[int] = Field(default_factory=list)
    executors: list[str] = Field(default_factory=list)
    metrics: dict[str, float | int | str] = Field(default_factory=dict)
    excerpts: list[str] = Field(default_factory=list, description="Short failure texts, redacted.")


class Remediation(BaseModel):
    """One concrete change: configuration to set and/or code to change."""

    action: str
    config: dict[str, str] = Field(default_factory=dict)


class SimilarRca(BaseModel):
    """A recorded RCA with the same category and signature."""

    rca_id: int
    app_id: str
    title: str
    recorded_at: str


class Diagnosis(BaseModel):
    """A structured RCA of one application."""

    app_id: str
    app_name: str
    outcome: Literal["failed", "succeeded", "running"]
    category: Category
    confidence: float
    headline: str
    evidence: Evidence
    remediation: list[Remediation]
    other_findings: list[str] = Field(default_factory=list)
    signature: str = Field(description="Stable key of the cause, used to link similar RCAs.")
    similar_rcas: list[SimilarRca] = Field(default_factory=list)


def _texts(app: Application) -> list[str]:
    texts = [" ".join([g.exception or "", g.message, g.python_error or "", *g.frames]) for g in app.failures]
    texts += [s.failure_reason for s in app.stages if s.failure_reason]
    texts += [q.error for q in app.sql if q.error]
    return texts


def _has(app: Application, *needles: str) -> bool:
    return any(needle in text for text in _texts(app) for needle in needles)


def _real_failures(app: Application) -> list[FailureGroup]:
    return [g for g in app.failures if g.kind != "killed"]


def _group_with(app: Application, *needles: str) -> FailureGroup | None:
    for group in app.failures:
        blob = " ".join([group.exception or "", group.message, group.python_error or "", *group.frames])
        if any(needle in blob for needle in needles):
            return group
    return None


def _excerpts(app: Application) -> list[str]:
    found = [s.failure_reason[:EXCERPT] for s in app.stages if s.failure_reason]
    found += [q.error[:EXCERPT] for q in app.sql if q.error]
    return list(dict.fromkeys(found))[:3]


def _evidence(app: Application, group: FailureGroup | None, **metrics: float | int | str) -> Evidence:
    failed_stages = sorted({s.stage_id for s in app.stages if s.status == "FAILED"})
    return Evidence(
        exception=group.exception if group else None,
        message=group.message if group else None,
        python_error=group.python_error if group else None,
        frames=group.frames[:8] if group else [],
        stages=(group.stage_ids if group and group.stage_ids else failed_stages)[:10],
        tasks=group.task_ids if group else [],
        executors=group.executor_ids if group else [],
        metrics=dict(metrics),
        excerpts=_excerpts(app),
    )


def _conf(app: Application, key: str, default: str) -> str:
    return app.config.get(key, default)


Finding = tuple[Category, float, str, Evidence, list[Remediation]]
Rule = Callable[[Application], Finding | None]


def _result_size(app: Application) -> Finding | None:
    if not _has(app, "spark.driver.maxResultSize", "exceeded maxResultSize"):
        return None
    current = _conf(app, "spark.driver.maxResultSize", "1g")
    size = re.search(r"serialized results of \d+ tasks \(([^)]+)\)", " ".join(_texts(app)))
    evidence = _evidence(
        app, None, max_result_size=current, **({"results_size": size.group(1)} if size else {})
    )
    return (
        "result_size_limit",
        0.95,
        f"The driver refused task results larger than spark.driver.maxResultSize={current}.",
        evidence,
        [
            Remediation(
                action="Do not collect() large results: write them out or use limit()/toLocalIterator()."
            ),
            Remediation(
                action="Or raise the limit (the driver must have the memory for it).",
                config={"spark.driver.maxResultSize": double_memory(current, minimum="2g")},
            ),
        ],
    )


def _jvm_oom(app: Application) -> Finding | None:
    group = _group_with(app, "java.lang.OutOfMemoryError", "OutOfMemoryError")
    if group is None:
        return None
    on_driver = "driver" in group.executor_ids or not group.executor_ids
    if on_driver:
        memory = _conf(app, "spark.driver.memory", "1g")
        return (
            "driver_oom",
            0.9,
            f"The driver JVM ran out of heap (spark.driver.memory={memory}) while running a task.",
            _evidence(app, group, driver_memory=memory),
            [
                Remediation(
                    action="Give the driver more heap (or run tasks on executors, not in local mode).",
                    config={"spark.driver.memory": double_memory(memory, minimum="2g")},
                ),
                Remediation(
                    action="Avoid building huge single groups (collect_list/collect_set over one key); "
                    "aggregate before collecting, or spread the key.",
                    config={"spark.sql.shuffle.partitions": str(max(200, 2 * _partitions(app)))},
                ),
            ],
        )
    memory = _conf(app, "spark.executor.memory", "1g")
    return (
        "executor_oom",
        0.9,
        f"Executors ran out of JVM heap (spark.executor.memory={memory}).",
        _evidence(app, group, executor_memory=memory),
        _executor_memory_fixes(app),
    )


def _partitions(app: Application) -> int:
    value = _conf(app, "spark.sql.shuffle.partitions", "200")
    return int(value) if value.isdigit() else 200


def _executor_memory_fixes(app: Application) -> list[Remediation]:
    memory = _conf(app, "spark.executor.memory", "1g")
    return [
        Remediation(
            action="Give executors more memory and overhead.",
            config={
                "spark.executor.memory": double_memory(memory, minimum="2g"),
                "spark.executor.memoryOverhead": double_memory(
                    _conf(app, "spark.executor.memoryOverhead", "384m")
                ),
            },
        ),
        Remediation(
            action="Make each task smaller: more shuffle partitions, fewer concurrent tasks per executor.",
            config={"spark.sql.shuffle.partitions": str(2 * _partitions(app))},
        ),
    ]


def _python_memory(app: Application) -> Finding | None:
    group = _group_with(app, "MemoryError")
    if group is None or not (group.python_error or "").startswith("MemoryError"):
        return None
    limit = _conf(app, "spark.executor.pyspark.memory", "unlimited")
    return (
        "executor_oom",
        0.85,
        f"A Python worker ran out of memory (MemoryError; spark.executor.pyspark.memory={limit}).",
        _evidence(app, group, pyspark_memory=limit),
        [
            Remediation(
                action="Raise the Python worker memory limit (and executor overhead to match).",
                config={
                    "spark.executor.pyspark.memory": double_memory(
                        limit if limit != "unlimited" else "512m", "1g"
                    ),
                    "spark.executor.memoryOverhead": double_memory(
                        _conf(app, "spark.executor.memoryOverhead", "384m")
                    ),
                },
            ),
            Remediation(action="Process rows in smaller pieces in the UDF (no whole-partition buffers)."),
        ],
    )


def _python_exception(app: Application) -> Finding | None:
    group = _group_with(app, "PythonException", "PYTHON_EXCEPTION", "Traceback (most recent call last)")
    if group is None:
        return None
    where = next((f for f in group.frames if " in " in f and ":" in f), None)
    return (
        "python_exception",
        0.9,
        f"Python code raised {group.python_error or group.message}" + (f" at {where}." if where else "."),
        _evidence(app, group),
        [
            Remediation(
                action=f"Fix the Python function{' at ' + where if where else ''}: handle the input that "
                "raised (nulls, missing keys, unexpected values) or filter such rows before the UDF."
            ),
            Remediation(
                action="Keep tracebacks short and focused on your code while debugging.",
                config={"spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled": "true"},
            ),
        ],
    )


MISSING = ("FILE_NOT_EXIST", "PATH_NOT_FOUND", "Path does not exist", "FileNotFoundException", "NoSuchKey")


def _missing_input(app: Application) -> Finding | None:
    if not _has(app, *MISSING):
        return None
    group = _group_with(app, *MISSING)
    return (
        "missing_input",
        0.9,
        "Input files were missing when Spark read them (deleted, moved or not yet written).",
        _evidence(app, group),
        [
            Remediation(
                action="Check the path and the upstream job that writes it; if the table changed under the "
                "job, refresh it (REFRESH TABLE / spark.catalog.refreshByPath) and rerun."
            ),
            Remediation(
                action="Only if skipping vanished files is acceptable for this data:",
                config={"spark.sql.files.ignoreMissingFiles": "true"},
            ),
        ],
    )


ANALYSIS = ("AnalysisException", "UNRESOLVED_COLUMN", "TABLE_OR_VIEW_NOT_FOUND", "DATATYPE_MISMATCH",
            "cannot be converted", "INCOMPATIBLE_DATA", "SCHEMA_MISMATCH", "cannot resolve")  # fmt: skip


def _analysis(app: Application) -> Finding | None:
    if not _has(app, *ANALYSIS):
        return None
    return (
        "analysis_error",
        0.85,
        "The query does not match the data: unknown column/table or incompatible schema.",
        _evidence(app, _group_with(app, *ANALYSIS)),
        [
            Remediation(
                action="Fix the column/table names or the schema (cast, or align the writer and the reader)."
            )
        ],
    )


def _fetch_failure(app: Application) -> Finding | None:
    group = next((g for g in app.failures if g.kind == "fetch_failed"), None) or _group_with(
        app, "FetchFailedException", "MetadataFetchFailedException"
    )
    if group is None:
        return None
    return (
        "shuffle_fetch_failure",
        0.85,
        "Reducers could not fetch shuffle blocks (the executor holding them died or was overloaded).",
        _evidence(app, group),
        [
            Remediation(
                action="Retry fetches longer and keep shuffle files when executors go away.",
                config={
                    "spark.shuffle.io.maxRetries": "10",
                    "spark.shuffle.io.retryWait": "30s",
                    "spark.shuffle.service.enabled": "true",
                },
            ),
            *_executor_memory_fixes(app),
        ],
    )


def _executor_lost(app: Application) -> Finding | None:
    group = next((g for g in app.failures if g.kind == "executor_lost"), None)
    if group is None:
        return None
    blob = group.message + " ".join(group.frames)
    if re.search(r"exit code:? ?(137|143)|exceeding memory limits|OOMKilled", blob):
        return ("executor_oom", 0.8, "Executors were killed for exceeding their container memory.",
                _evidence(app, group), _executor_memory_fixes(app))  # fmt: skip
    return (
        "executor_lost",
        0.7,
        "Executors were lost while running tasks.",
        _evidence(app, group),
        [
            Remediation(
                action="Check the executor/node logs for the exit reason (preemption, node loss, OOM kill)."
            ),
            Remediation(action="Tolerate losses.", config={"spark.task.maxFailures": "8"}),
        ],
    )


def _cancelled(app: Application) -> Finding | None:
    if not _has(
        app, "SPARK_JOB_CANCELLED", "cancelled as part of cancellation", "cancelled part of cancelled"
    ):
        return None
    return (
        "cancelled",
        0.9,
        "The job was cancelled (by a user, a job group or the application), not failed by an error.",
        _evidence(app, next((g for g in app.failures if g.kind == "killed"), None)),
        [Remediation(action="Find who cancelled it (job group, notebook interrupt, orchestrator timeout).")],
    )


def _driver_died(app: Application) -> Finding | None:
    if not _has(app, "SparkContext was shut down"):
        return None
    return (
        "driver_oom",
        0.35,
        "The SparkContext stopped in the middle of a job; the log holds no exception. The usual cause is the "
        "driver dying (most often out of memory): check the driver's stderr.",
        _evidence(app, None, driver_memory=_conf(app, "spark.driver.memory", "1g")),
        [Remediation(action="Give the driver more memory.", config={"spark.driver.memory": "4g"})],
    )


def _skew(app: Application) -> Finding | None:
    worst: tuple[float, Stage] | None = None
    for stage in app.stages:
        ratio = stage.skew_ratio
        slow = stage.quantiles is not None and stage.quantiles.duration_ms[4] >= SKEW_MIN_MS
        if ratio and slow and ratio >= SKEW_RATIO and (worst is None or ratio > worst[0]):
            worst = (ratio, stage)
    if worst is None:
        return None
    ratio, stage = worst
    quantiles = stage.quantiles
    metrics: dict[str, float | int | str] = {"skew_ratio": ratio, "stage_id": stage.stage_id}
    if quantiles is not None:
        metrics |= {
            "median_task_ms": quantiles.duration_ms[2],
            "max_task_ms": quantiles.duration_ms[4],
            "median_shuffle_read": format_bytes(quantiles.shuffle_read_bytes[2]),
            "max_shuffle_read": format_bytes(quantiles.shuffle_read_bytes[4]),
        }
    evidence = Evidence(stages=[stage.stage_id], metrics=metrics)
    return (
        "data_skew",
        0.8,
        f"Stage {stage.stage_id}: the slowest task took {ratio}x the median; a few keys hold most of the "
        "data (get_stage shows the slowest tasks).",
        evidence,
        [
            Remediation(
                action="Let adaptive execution split skewed partitions.",
                config={
                    "spark.sql.adaptive.enabled": "true",
                    "spark.sql.adaptive.skewJoin.enabled": "true",
                    "spark.sql.adaptive.skewJoin.skewedPartitionFactor": "5",
                },
            ),
            Remediation(
                action="Broadcast the small side of the join, or salt the hot key.",
                config={"spark.sql.autoBroadcastJoinThreshold": "64m"},
            ),
        ],
    )


def _spill(app: Application) -> Finding | None:
    spilled = [s for s in app.stages if s.disk_spilled_bytes + s.memory_spilled_bytes >= SPILL_BYTES]
    if not spilled:
        return None
    worst = max(spilled, key=lambda s: s.disk_spilled_bytes)
    return (
        "heavy_spill",
        0.7,
        f"Stage {worst.stage_id} spilled {format_bytes(worst.disk_spilled_bytes)} to disk.",
        Evidence(
            stages=[s.stage_id for s in spilled][:10],
            metrics={
                "disk_spilled": format_bytes(sum(s.disk_spilled_bytes for s in spilled)),
                "memory_spilled": format_bytes(sum(s.memory_spilled_bytes for s in spilled)),
            },
        ),
        [
            Remediation(
                action="Use more, smaller partitions and give execution more memory.",
                config={
                    "spark.sql.shuffle.partitions": str(2 * _partitions(app)),
                    "spark.executor.memory": double_memory(_conf(app, "spark.executor.memory", "1g"), "2g"),
                },
            )
        ],
    )


FAILURE_RULES: tuple[Rule, ...] = (
    _result_size, _python_memory, _jvm_oom, _fetch_failure, _executor_lost, _missing_input, _analysis,
    _python_exception, _cancelled, _driver_died,
)  # fmt: skip
SLOW_RULES: tuple[Rule, ...] = (_skew, _spill)


def _outcome(app: Application) -> Literal["failed", "succeeded", "running"]:
    failed = any(j.status == "FAILED" for j in app.jobs) or any(q.status == "FAILED" for q in app.sql)
    if failed or any(s.status == "FAILED" for s in app.stages):
        return "failed"
    return "running" if app.summary.status == "running" else "succeeded"


def diagnose(app: Application) -> Diagnosis:
    """The most specific finding first; other findings listed by category."""
    outcome = _outcome(app)
    rules = (FAILURE_RULES + SLOW_RULES) if outcome == "failed" or _real_failures(app) else SLOW_RULES
    findings = [finding for rule in rules if (finding := rule(app)) is not None]
    if findings:
        category, confidence, headline, evidence, remediation = findings[0]
    else:
        category, confidence, evidence, remediation = "unknown", 0.3, _evidence(app, None), []
        if outcome == "failed":
            first = _real_failures(app)[:1]
            evidence = _evidence(app, first[0] if first else None)
            headline = "The application failed, but no known failure pattern matched; see the evidence."
        else:
            confidence = 0.6
            headline = f"The application {outcome} without failures, skew or heavy spill."
    signature = (
        f"{category}|{evidence.exception or ''}|{(evidence.python_error or evidence.message or '')[:80]}"
    )
    return Diagnosis(
        app_id=app.summary.app_id,
        app_name=app.summary.name,
        outcome=outcome,
        category=category,
        confidence=confidence,
        headline=headline,
        evidence=evidence,
        remediation=remediation,
        other_findings=list(dict.fromkeys(f"{f[0]}: {f[2]}" for f in findings[1:] if f[0] != category))[:3],
        signature=re.sub(r"\d+", "#", signature),
    )

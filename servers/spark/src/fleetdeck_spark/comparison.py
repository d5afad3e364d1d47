"""Compare two runs of the same job: where the time went and what configuration changed."""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, Field

from fleetdeck_spark.model import Application

NOISY_KEYS = (
    "spark.app.id", "spark.app.startTime", "spark.app.submitTime", "spark.driver.port", "spark.driver.host",
    "spark.sql.execution.root.id", "spark.sql.execution.id", "spark.app.initial.", "spark.repl.",
    "spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions", "spark.eventLog.dir",
)  # fmt: skip
MAX_STAGES = 8
MAX_CONFIG = 30


class StageDelta(BaseModel):
    """Time spent in stages of one name in each run."""

    stage_name: str
    before_ms: int
    after_ms: int
    delta_ms: int
    before_shuffle_read_bytes: int
    after_shuffle_read_bytes: int


class ConfigChange(BaseModel):
    """One configuration key that differs between the runs."""

    key: str
    before: str | None
    after: str | None


class Comparison(BaseModel):
    """Two runs side by side, biggest differences first."""

    before_app_id: str
    after_app_id: str
    before_duration_ms: int | None
    after_duration_ms: int | None
    duration_delta_ms: int | None
    before_tasks: int
    after_tasks: int
    before_failed_tasks: int
    after_failed_tasks: int
    before_spill_bytes: int
    after_spill_bytes: int
    stages: list[StageDelta] = Field(description="Stage names with the biggest time change.")
    config_changes: list[ConfigChange]
    config_changes_omitted: int = 0


def _stage_times(app: Application) -> dict[str, tuple[int, int]]:
    times: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for stage in app.stages:
        name = stage.name
        times[name][0] += stage.duration_ms or 0
        times[name][1] += stage.shuffle_read_bytes
    return {k: (v[0], v[1]) for k, v in times.items()}


def _duration(app: Application) -> int | None:
    if app.summary.duration_ms is not None:
        return app.summary.duration_ms
    ends = [j.completion_ms for j in app.jobs if j.completion_ms]
    return max(ends) - app.summary.start_ms if ends and app.summary.start_ms else None


def compare(before: Application, after: Application) -> Comparison:
    """What differs between ``before`` and ``after``."""
    left, right = _stage_times(before), _stage_times(after)
    deltas = [
        StageDelta(
            stage_name=name[:160],
            before_ms=left.get(name, (0, 0))[0],
            after_ms=right.get(name, (0, 0))[0],
            delta_ms=right.get(name, (0, 0))[0] - left.get(name, (0, 0))[0],
            before_shuffle_read_bytes=left.get(name, (0, 0))[1],
            after_shuffle_read_bytes=right.get(name, (0, 0))[1],
        )
        for name in set(left) | set(right)
    ]
    deltas.sort(key=lambda d: abs(d.delta_ms), reverse=True)
    changes = [
        ConfigChange(key=key, before=before.config.get(key), after=after.config.get(key))
        for key in sorted(set(before.config) | set(after.config))
        if before.config.get(key) != after.config.get(key) and not key.startswith(NOISY_KEYS)
    ]
    start, end = _duration(before), _duration(after)
    return Comparison(
        before_app_id=before.summary.app_id,
        after_app_id=after.summary.app_id,
        before_duration_ms=start,
        after_duration_ms=end,
        duration_delta_ms=end - start if start is not None and end is not None else None,
        before_tasks=sum(s.num_tasks for s in before.stages if s.status != "SKIPPED"),
        after_tasks=sum(s.num_tasks for s in after.stages if s.status != "SKIPPED"),
        before_failed_tasks=sum(s.failed_tasks for s in before.stages),
        after_failed_tasks=sum(s.failed_tasks for s in after.stages),
        before_spill_bytes=sum(s.disk_spilled_bytes for s in before.stages),
        after_spill_bytes=sum(s.disk_spilled_bytes for s in after.stages),
        stages=deltas[:MAX_STAGES],
        config_changes=changes[:MAX_CONFIG],
        config_changes_omitted=max(0, len(changes) - MAX_CONFIG),
    )

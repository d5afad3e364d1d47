"""Replay event-log lines into the application model, one line at a time, in bounded memory.

Lines whose event the model does not need are skipped by their prefix without JSON decoding; a line
that does not decode (the last, half-written line of an in-progress log) is counted, not fatal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fleetdeck_spark.failures import FailureCollector, kind_of, reason_text
from fleetdeck_spark.model import Application, AppStatus, AppSummary, Executor, Job, SqlExecution, Stage
from fleetdeck_spark.redaction import clip, redact_config
from fleetdeck_spark.stagestats import StageStats
from fleetdeck_spark.taskline import TaskNumbers, read_success

PREFIX = b'{"Event":"'
TASK_END = b"SparkListenerTaskEnd"
TOTALS = (
    "input_bytes", "output_bytes", "shuffle_read_bytes", "shuffle_write_bytes", "memory_spilled_bytes",
    "disk_spilled_bytes", "run_time_ms", "gc_time_ms", "completed_tasks", "failed_tasks", "killed_tasks",
)  # fmt: skip
SQL_PREFIX = "org.apache.spark.sql.execution.ui."
REASON_LIMIT = 1500
TEXT_LIMIT = 200
Handler = Callable[["ApplicationBuilder", dict[str, Any]], None]


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


class ApplicationBuilder:
    """Feeds on raw event-log lines; :meth:`build` returns the :class:`Application`."""

    def __init__(self, app_id: str, source: str = "") -> None:
        self.app_id = app_id
        self.source = source
        self.name = app_id
        self.user: str | None = None
        self.attempt_id: str | None = None
        self.spark_version: str | None = None
        self.start_ms: int | None = None
        self.end_ms: int | None = None
        self.last_ms: int | None = None
        self.config: dict[str, str] = {}
        self.jobs: dict[int, Job] = {}
        self.stages: dict[tuple[int, int], Stage] = {}
        self.stage_names: dict[int, str] = {}
        self.stats: dict[tuple[int, int], StageStats] = {}
        self.totals: dict[tuple[int, int], list[int]] = {}
        self.task_counts: dict[str, list[int]] = {}
        self.executors: dict[str, Executor] = {}
        self.sql: dict[int, SqlExecution] = {}
        self.failures = FailureCollector()
        self.bad_lines = 0
        self.lines = 0

    def feed(self, line: bytes) -> None:
        """Consume one line (with or without its newline)."""
        self.lines += 1
        if not line.startswith(PREFIX):
            if line.strip():
                self.bad_lines += 1
            return
        end = line.find(b'"', 10)
        name = line[10:end]
        if name == TASK_END:
            fast = read_success(line)
            if fast is not None:
                self._task(fast, None)
                return
        handler = HANDLERS.get(name)
        if handler is None:
            return
        try:
            event = json.loads(line)
        except ValueError:
            self.bad_lines += 1
            return
        handler(self, event)

    # -- handlers ----------------------------------------------------------------------------------

    def _log_start(self, event: dict[str, Any]) -> None:
        self.spark_version = event.get("Spark Version")

    def _app_start(self, event: dict[str, Any]) -> None:
        self.name = str(event.get("App Name") or self.app_id)
        self.user = event.get("User")
        self.attempt_id = event.get("App Attempt ID")
        self.start_ms = event.get("Timestamp")

    def _app_end(self, event: dict[str, Any]) -> None:
        self.end_ms = event.get("Timestamp")

    def _environment(self, event: dict[str, Any]) -> None:
        props = event.get("Spark Properties") or {}
        if isinstance(props, list):  # older logs: [[key, value], ...]
            props = {str(pair[0]): pair[1] for pair in props if len(pair) == 2}
        self.config = redact_config(props)

    def _job_start(self, event: dict[str, Any]) -> None:
        job_id = _int(event.get("Job ID"))
        infos = event.get("Stage Infos") or []
        for info in infos:
            sid, attempt = _int(info.get("Stage ID")), _int(info.get("Stage Attempt ID"))
            self.stage_names[sid] = str(info.get("Stage Name", ""))
            if (sid, attempt) not in self.stages:
                self.stages[(sid, attempt)] = Stage(
                    stage_id=sid,
                    attempt=attempt,
                    name=self.stage_names[sid],
                    status="PENDING",
                    num_tasks=_int(info.get("Number of Tasks")),
                )
        last: dict[str, Any] = max(infos, key=lambda i: _int(i.get("Stage ID")), default={})
        props = event.get("Properties") or {}
        sql_text = str(props.get("spark.sql.execution.id", ""))
        sql_id = int(sql_text) if sql_text.isdigit() else None
        self.jobs[job_id] = Job(
            job_id=job_id,
            status="RUNNING",
            name=clip(str(last.get("Stage Name", "")), TEXT_LIMIT) or "",
            stage_ids=sorted(_int(s) for s in event.get("Stage IDs") or []),
            submission_ms=event.get("Submission Time"),
            sql_execution_id=sql_id,
        )
        if sql_id is not None and sql_id in self.sql:
            self.sql[sql_id].job_ids.append(job_id)

    def _job_end(self, event: dict[str, Any]) -> None:
        job = self.jobs.get(_int(event.get("Job ID")))
        if job is None:
            return
        result = (event.get("Job Result") or {}).get("Result")
        job.status = "SUCCEEDED" if result == "JobSucceeded" else "FAILED"
        job.completion_ms = event.get("Completion Time")
        if job.completion_ms is not None and job.submission_ms is not None:
            job.duration_ms = job.completion_ms - job.submission_ms
        for sid in job.stage_ids:  # stages a finished job never ran were skipped
            for stage in (s for (i, _), s in self.stages.items() if i == sid):
                if stage.status == "PENDING":
                    stage.status = "SKIPPED"

    def _stage(self, info: dict[str, Any]) -> Stage:
        key = (_int(info.get("Stage ID")), _int(info.get("Stage Attempt ID")))
        stage = self.stages.get(key)
        if stage is None:
            stage = self.stages[key] = Stage(stage_id=key[0], attempt=key[1], status="PENDING")
        stage.name = str(info.get("Stage Name", stage.name))
        stage.num_tasks = _int(info.get("Number of Tasks")) or stage.num_tasks
        return stage

    def _stage_submitted(self, event: dict[str, Any]) -> None:
        stage = self._stage(event.get("Stage Info") or {})
        stage.status = "ACTIVE"
        stage.submission_ms = (event.get("Stage Info") or {}).get("Submission Time")
        self.stats[(stage.stage_id, stage.attempt)] = StageStats(seed=stage.stage_id * 1000 + stage.attempt)

    def _stage_completed(self, event: dict[str, Any]) -> None:
        info = event.get("Stage Info") or {}
        stage = self._stage(info)
        reason = info.get("Failure Reason")
        stage.status = "FAILED" if reason else "COMPLETE"
        stage.failure_reason = clip(reason, REASON_LIMIT)
        stage.submission_ms = info.get("Submission Time", stage.submission_ms)
        stage.completion_ms = info.get("Completion Time")
        if stage.completion_ms is not None and stage.submission_ms is not None:
            stage.duration_ms = stage.completion_ms - stage.submission_ms
        stats = self.stats.pop((stage.stage_id, stage.attempt), None)
        if stats is not None:
            stage.quantiles = stats.quantiles()
            stage.slowest_tasks = stats.slowest()

    def _task_end(self, event: dict[str, Any]) -> None:
        info = event.get("Task Info") or {}
        metrics = event.get("Task Metrics") or {}
        shuffle_read = metrics.get("Shuffle Read Metrics") or {}
        numbers = TaskNumbers(
            stage_id=_int(event.get("Stage ID")),
            attempt=_int(event.get("Stage Attempt ID")),
            task_id=_int(info.get("Task ID")),
            task_index=_int(info.get("Index")),
            executor_id=str(info.get("Executor ID", "")),
            launch=_int(info.get("Launch Time")),
            getting_result=_int(info.get("Getting Result Time")),
            finish=_int(info.get("Finish Time")),
            run_time=_int(metrics.get("Executor Run Time")),
            gc_time=_int(metrics.get("JVM GC Time")),
            peak_memory=_int(metrics.get("Peak Execution Memory")),
            memory_spilled=_int(metrics.get("Memory Bytes Spilled")),
            disk_spilled=_int(metrics.get("Disk Bytes Spilled")),
            shuffle_read=_int(shuffle_read.get("Remote Bytes Read"))
            + _int(shuffle_read.get("Local Bytes Read")),
            shuffle_written=_int((metrics.get("Shuffle Write Metrics") or {}).get("Shuffle Bytes Written")),
            input_bytes=_int((metrics.get("Input Metrics") or {}).get("Bytes Read")),
            output_bytes=_int((metrics.get("Output Metrics") or {}).get("Bytes Written")),
        )
        reason = event.get("Task End Reason") or {}
        self._task(numbers, None if reason.get("Reason") == "Success" else reason)

    def _task(self, task: TaskNumbers, failure: dict[str, Any] | None) -> None:
        key = (task.stage_id, task.attempt)
        totals = self.totals.get(key)
        if totals is None:
            totals = self.totals[key] = [0] * len(TOTALS)
            if key not in self.stages:
                self.stages[key] = Stage(stage_id=key[0], attempt=key[1], status="ACTIVE")
        counts = self.task_counts.get(task.executor_id)
        if counts is None:
            counts = self.task_counts[task.executor_id] = [0, 0]
        if self.last_ms is None or task.finish > self.last_ms:
            self.last_ms = task.finish
        totals[0] += task.input_bytes
        totals[1] += task.output_bytes
        totals[2] += task.shuffle_read
        totals[3] += task.shuffle_written
        totals[4] += task.memory_spilled
        totals[5] += task.disk_spilled
        totals[6] += task.run_time
        totals[7] += task.gc_time
        if failure is None:
            totals[8] += 1
            counts[0] += 1
            stats = self.stats.get(key)
            if stats is not None:
                end = task.getting_result or task.finish  # the History Server's task duration
                values = (
                    end - task.launch, task.run_time, task.gc_time, task.input_bytes, task.shuffle_read,
                    task.shuffle_written, task.memory_spilled, task.disk_spilled, task.peak_memory,
                )  # fmt: skip
                stats.add(values, task.task_id, task.task_index, task.executor_id)
            return
        killed = failure.get("Reason") == "TaskKilled"
        if killed:
            totals[10] += 1
        else:
            totals[9] += 1
            counts[1] += 1
        text = reason_text(failure)
        self.failures.add(
            "killed" if killed else kind_of(text),
            text,
            stage_id=task.stage_id,
            task_id=task.task_id,
            executor_id=task.executor_id,
        )

    def _executor_added(self, event: dict[str, Any]) -> None:
        executor_id = str(event.get("Executor ID"))
        info = event.get("Executor Info") or {}
        executor = self.executors.setdefault(executor_id, Executor(executor_id=executor_id))
        executor.host = executor.host or info.get("Host")
        executor.cores = info.get("Total Cores")
        executor.added_ms = event.get("Timestamp")

    def _executor_removed(self, event: dict[str, Any]) -> None:
        executor_id = str(event.get("Executor ID"))
        executor = self.executors.setdefault(executor_id, Executor(executor_id=executor_id))
        executor.removed_ms = event.get("Timestamp")
        executor.removed_reason = clip(event.get("Removed Reason"), REASON_LIMIT)

    def _block_manager(self, event: dict[str, Any]) -> None:
        manager = event.get("Block Manager ID") or {}
        executor_id = str(manager.get("Executor ID"))
        executor = self.executors.setdefault(executor_id, Executor(executor_id=executor_id))
        executor.host = manager.get("Host") or executor.host
        executor.max_memory_bytes = event.get("Maximum Memory")

    def _sql_start(self, event: dict[str, Any]) -> None:
        execution_id = _int(event.get("executionId"))
        self.sql[execution_id] = SqlExecution(
            execution_id=execution_id,
            description=clip(str(event.get("description", "")), TEXT_LIMIT) or "",
            status="RUNNING",
            start_ms=event.get("time"),
            job_ids=sorted(j.job_id for j in self.jobs.values() if j.sql_execution_id == execution_id),
        )

    def _sql_end(self, event: dict[str, Any]) -> None:
        execution = self.sql.get(_int(event.get("executionId")))
        if execution is None:
            return
        error = event.get("errorMessage")
        execution.status = "FAILED" if error else "COMPLETED"
        execution.error = clip(error, REASON_LIMIT)
        if execution.start_ms is not None and event.get("time") is not None:
            execution.duration_ms = _int(event.get("time")) - execution.start_ms

    # -- result ------------------------------------------------------------------------------------

    def build(self, status: AppStatus) -> Application:
        """The application as replayed so far."""
        for key, totals in self.totals.items():
            stage = self.stages[key]
            for name, value in zip(TOTALS, totals, strict=True):
                setattr(stage, name, value)
        for executor_id, (completed, failed) in self.task_counts.items():
            executor = self.executors.setdefault(executor_id, Executor(executor_id=executor_id))
            executor.completed_tasks, executor.failed_tasks = completed, failed
        for key, stats in self.stats.items():  # stages still running keep their partial view
            running = self.stages.get(key)
            if running is not None:
                running.quantiles, running.slowest_tasks = stats.quantiles(), stats.slowest()
        end = self.end_ms if status == "completed" else None
        notes = [f"{self.bad_lines} unreadable line(s) skipped"] if self.bad_lines else []
        if self.failures.dropped:
            notes.append(f"{self.failures.dropped} task failure(s) with other causes not grouped")
        return Application(
            summary=AppSummary(
                app_id=self.app_id,
                attempt_id=self.attempt_id,
                name=clip(self.name, TEXT_LIMIT) or self.app_id,
                user=self.user,
                status=status,
                start_ms=self.start_ms,
                end_ms=end,
                duration_ms=(end - self.start_ms) if end is not None and self.start_ms is not None else None,
                spark_version=self.spark_version,
                source=self.source,
            ),
            jobs=sorted(self.jobs.values(), key=lambda j: j.job_id),
            stages=sorted(self.stages.values(), key=lambda s: (s.stage_id, s.attempt)),
            failures=self.failures.groups(),
            executors=sorted(self.executors.values(), key=lambda e: e.executor_id),
            sql=sorted(self.sql.values(), key=lambda s: s.execution_id),
            config=self.config,
            notes=notes,
        )


HANDLERS: dict[bytes, Handler] = {
    b"SparkListenerLogStart": ApplicationBuilder._log_start,
    b"SparkListenerApplicationStart": ApplicationBuilder._app_start,
    b"SparkListenerApplicationEnd": ApplicationBuilder._app_end,
    b"SparkListenerEnvironmentUpdate": ApplicationBuilder._environment,
    b"SparkListenerJobStart": ApplicationBuilder._job_start,
    b"SparkListenerJobEnd": ApplicationBuilder._job_end,
    b"SparkListenerStageSubmitted": ApplicationBuilder._stage_submitted,
    b"SparkListenerStageCompleted": ApplicationBuilder._stage_completed,
    b"SparkListenerTaskEnd": ApplicationBuilder._task_end,
    b"SparkListenerExecutorAdded": ApplicationBuilder._executor_added,
    b"SparkListenerExecutorRemoved": ApplicationBuilder._executor_removed,
    b"SparkListenerBlockManagerAdded": ApplicationBuilder._block_manager,
    (SQL_PREFIX + "SparkListenerSQLExecutionStart").encode(): ApplicationBuilder._sql_start,
    (SQL_PREFIX + "SparkListenerSQLExecutionEnd").encode(): ApplicationBuilder._sql_end,
}
HEAD_EVENTS = (b"SparkListenerLogStart", b"SparkListenerApplicationStart")

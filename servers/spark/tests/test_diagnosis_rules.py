"""Diagnosis rules, error-text parsing and redaction on small hand-made models."""

from __future__ import annotations

import pytest

from fleetdeck_spark.diagnosis import diagnose
from fleetdeck_spark.errortext import parse_error
from fleetdeck_spark.failures import FailureCollector, kind_of, reason_text
from fleetdeck_spark.memory import double_memory, parse_memory
from fleetdeck_spark.model import QUANTILES, Application, AppSummary, FailureKind, Job, Quantiles, Stage
from fleetdeck_spark.redaction import REDACTED, redact_config, redact_text


def app_with(
    errors: list[tuple[FailureKind, str, str]] = (),  # type: ignore[assignment]
    *,
    stage_reason: str | None = None,
    config: dict[str, str] | None = None,
    stages: list[Stage] | None = None,
) -> Application:
    collector = FailureCollector()
    for task, (kind, error, executor) in enumerate(errors):
        collector.add(kind, error, stage_id=3, task_id=task, executor_id=executor)
    failed = bool(errors) or stage_reason is not None
    return Application(
        summary=AppSummary(app_id="app-1", name="job", status="completed"),
        jobs=[Job(job_id=0, status="FAILED" if failed else "SUCCEEDED", stage_ids=[3])],
        stages=stages
        or [Stage(stage_id=3, status="FAILED" if failed else "COMPLETE", failure_reason=stage_reason)],
        failures=collector.groups(),
        config=config or {},
    )


def flat(value: float) -> list[float]:
    return [value] * len(QUANTILES)


def quantiles(durations: list[float], read: list[float] | None = None) -> Quantiles:
    return Quantiles(
        duration_ms=durations,
        run_time_ms=durations,
        gc_time_ms=flat(0),
        input_bytes=flat(0),
        shuffle_read_bytes=read or flat(0),
        shuffle_write_bytes=flat(0),
        memory_spilled_bytes=flat(0),
        disk_spilled_bytes=flat(0),
        peak_execution_memory_bytes=flat(0),
    )


FETCH = (
    "FetchFailed(BlockManagerId(4, 10.0.0.7), shuffleId=2, mapIndex=5, reduceId=9, message=\n"
    "org.apache.spark.shuffle.FetchFailedException: Connection reset by peer\n)"
)
LOST_137 = (
    "ExecutorLostFailure (executor 7 exited caused by one of the running tasks) Reason: Container killed by "
    "YARN for exceeding memory limits. 5.5 GB of 5.5 GB physical memory used. exit code: 137"
)
LOST = "ExecutorLostFailure (executor 7 exited unrelated) Reason: Node decommissioned"
ANALYSIS = (
    "org.apache.spark.sql.AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column "
    "`custmer_id` cannot be resolved."
)


@pytest.mark.parametrize(
    ("errors", "category"),
    [
        ([("fetch_failed", FETCH, "9")], "shuffle_fetch_failure"),
        ([("executor_lost", LOST_137, "7")], "executor_oom"),
        ([("executor_lost", LOST, "7")], "executor_lost"),
        (
            [("exception", "java.lang.OutOfMemoryError: Java heap space\n\tat x.y(Z.java:1)", "7")],
            "executor_oom",
        ),
        ([("exception", "java.lang.OutOfMemoryError: Java heap space", "driver")], "driver_oom"),
        ([("exception", ANALYSIS, "1")], "analysis_error"),
        (
            [("exception", "java.io.FileNotFoundException: s3://bucket/x.parquet (No such file)", "1")],
            "missing_input",
        ),
    ],
)
def test_each_failure_pattern_gets_its_category(
    errors: list[tuple[FailureKind, str, str]], category: str
) -> None:
    result = diagnose(app_with(errors, config={"spark.executor.memory": "4g"}))
    assert result.outcome == "failed"
    assert result.category == category
    assert result.evidence.stages == [3]
    assert result.remediation


def test_executor_oom_remediation_names_concrete_settings() -> None:
    result = diagnose(app_with([("executor_lost", LOST_137, "7")], config={"spark.executor.memory": "4g"}))
    keys = {key: value for fix in result.remediation for key, value in fix.config.items()}
    assert keys["spark.executor.memory"] == "8g"
    assert "spark.executor.memoryOverhead" in keys


def test_a_skewed_stage_of_a_successful_run_is_data_skew() -> None:
    stage = Stage(
        stage_id=2,
        status="COMPLETE",
        quantiles=quantiles([100, 120, 150, 160, 9_000], read=[1e3, 1e3, 1e3, 1e3, 1e8]),
    )
    result = diagnose(app_with(stages=[stage]))
    assert (result.outcome, result.category) == ("succeeded", "data_skew")
    assert result.evidence.metrics["skew_ratio"] == 60.0
    assert any("spark.sql.adaptive.skewJoin.enabled" in fix.config for fix in result.remediation)


def test_a_fast_uneven_stage_is_not_called_skewed() -> None:
    stage = Stage(stage_id=2, status="COMPLETE", quantiles=quantiles([1, 1, 2, 2, 90]))
    assert diagnose(app_with(stages=[stage])).category == "unknown"


def test_heavy_spill_is_found_in_a_successful_run() -> None:
    stage = Stage(stage_id=1, status="COMPLETE", disk_spilled_bytes=3 << 30, memory_spilled_bytes=6 << 30)
    result = diagnose(app_with(stages=[stage], config={"spark.sql.shuffle.partitions": "200"}))
    assert result.category == "heavy_spill"
    assert result.remediation[0].config["spark.sql.shuffle.partitions"] == "400"


def test_a_failure_nothing_explains_is_unknown_with_its_evidence() -> None:
    result = diagnose(app_with([("exception", "com.acme.WeirdException: boom", "1")]))
    assert result.category == "unknown"
    assert result.evidence.exception == "com.acme.WeirdException"


def test_the_same_cause_in_many_tasks_is_one_group_with_the_earliest_task_speaking() -> None:
    collector = FailureCollector()
    for task in (9, 4, 7):
        collector.add(
            "exception", f"java.io.IOException: disk {task} full", stage_id=1, task_id=task, executor_id="2"
        )
    (group,) = collector.groups()
    assert (group.count, group.task_ids, group.message) == (3, [4, 7, 9], "disk 4 full")


def test_error_text_yields_the_python_error_user_frames_and_deduplicated_java_frames() -> None:
    text = (
        "Job aborted due to stage failure: Task 0 in stage 0.0 failed 1 times, most recent failure: "
        "Lost task "
        "0.0 in stage 0.0 (TID 0) (10.0.0.1 executor 1): org.apache.spark.api.python.PythonException: "
        "Traceback (most recent call last):\n"
        '  File "/opt/spark/python/pyspark/worker.py", line 1, in main\n'
        '  File "/jobs/etl.py", line 12, in enrich\n'
        "KeyError: 'region'\n\n"
        "\tat a.B.c(B.java:1)\n\tat a.B.c(B.java:1)\n\tat d.E.f(E.java:2)\n"
        "Caused by: java.lang.RuntimeException: inner\n"
    )
    parsed = parse_error(text)
    assert parsed.exception == "org.apache.spark.api.python.PythonException"
    assert parsed.python_error == "KeyError: 'region'"
    assert parsed.frames == ["etl.py:12 in enrich", "a.B.c(B.java:1)", "d.E.f(E.java:2)"]
    assert parsed.causes == ["java.lang.RuntimeException: inner"]


def test_task_end_reasons_read_like_the_history_server_shows_them() -> None:
    lost = {
        "Reason": "ExecutorLostFailure",
        "Executor ID": "3",
        "Exit Caused By App": True,
        "Loss Reason": "gone",
    }
    assert kind_of(reason_text(lost)) == "executor_lost"
    fetch = {"Reason": "FetchFailed", "Block Manager Address": {"Executor ID": "1"}, "Message": "reset"}
    assert kind_of(reason_text(fetch)) == "fetch_failed"
    assert reason_text({"Reason": "TaskKilled", "Kill Reason": "Stage cancelled"}) == "Stage cancelled"


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("jdbc:postgresql://etl:hunter2@db:5432/dw", "hunter2"),
        ("s3a://AKIAABCDEFGHIJKLMNOP:wJalrXUtnFEMI@bucket/x", "wJalrXUtnFEMI"),
        ("password=hunter2 user=etl", "hunter2"),
        ('{"api_key": "sk-live-123456"}', "sk-live-123456"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("key id AKIAABCDEFGHIJKLMNOP in use", "AKIAABCDEFGHIJKLMNOP"),
    ],
)
def test_secrets_in_free_text_are_masked(text: str, leak: str) -> None:
    masked = redact_text(text)
    assert leak not in masked
    assert REDACTED in masked


def test_secret_configuration_keys_are_masked_and_others_kept() -> None:
    config = redact_config(
        {
            "spark.hadoop.fs.s3a.access.key": "AKIA...",
            "spark.ssl.keyStorePassword": "x",
            "spark.executorEnv.DB_TOKEN": "t",
            "spark.executor.memory": "4g",
        }
    )
    assert config == {
        "spark.executor.memory": "4g",
        "spark.executorEnv.DB_TOKEN": REDACTED,
        "spark.hadoop.fs.s3a.access.key": REDACTED,
        "spark.ssl.keyStorePassword": REDACTED,
    }


def test_memory_settings_are_read_and_doubled_in_spark_syntax() -> None:
    assert parse_memory("512m") == 512 << 20
    assert parse_memory("4g") == 4 << 30
    assert double_memory("512m") == "1g"
    assert double_memory("768m", minimum="2g") == "2g"
    assert double_memory("3g") == "6g"


def test_a_driver_that_died_mid_job_is_a_low_confidence_driver_oom_not_a_cancel() -> None:
    result = diagnose(app_with(stage_reason="Stage cancelled because SparkContext was shut down"))
    assert result.category == "driver_oom"
    assert result.confidence < 0.5
    assert "stderr" in result.headline


def test_a_user_cancel_is_cancelled() -> None:
    reason = "[SPARK_JOB_CANCELLED] Job 0 cancelled as part of cancellation of all jobs SQLSTATE: XXKDA"
    assert diagnose(app_with(stage_reason=reason)).category == "cancelled"

"""Test helpers: synthetic event logs in every form Spark writes, and servers over them."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import cramjam
import lz4.block
import zstandard

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.principal import Principal, User
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_spark.rca_store import RcaStore
from fleetdeck_spark.server import build_server
from fleetdeck_spark.settings import SparkSettings
from fleetdeck_spark.source import SparkSource

Event = dict[str, Any]
START_MS = 1_790_000_000_000


# -- synthetic event logs -----------------------------------------------------------------------------


def task_end(stage: int, task: int, duration: int, *, reason: Event | None = None, read: int = 0) -> Event:
    """A ``SparkListenerTaskEnd`` event (success unless ``reason`` is given)."""
    launch = START_MS + 1_000 + task
    return {
        "Event": "SparkListenerTaskEnd",
        "Stage ID": stage,
        "Stage Attempt ID": 0,
        "Task Type": "ResultTask",
        "Task End Reason": reason or {"Reason": "Success"},
        "Task Info": {
            "Task ID": task,
            "Index": task,
            "Attempt": 0,
            "Launch Time": launch,
            "Executor ID": "1",
            "Host": "worker-1",
            "Getting Result Time": 0,
            "Finish Time": launch + duration,
            "Failed": reason is not None,
            "Killed": False,
        },
        "Task Metrics": {
            "Executor Run Time": duration - 5,
            "JVM GC Time": 3,
            "Peak Execution Memory": 1024,
            "Memory Bytes Spilled": 0,
            "Disk Bytes Spilled": 0,
            "Input Metrics": {"Bytes Read": 100, "Records Read": 10},
            "Output Metrics": {"Bytes Written": 0, "Records Written": 0},
            "Shuffle Read Metrics": {"Remote Bytes Read": read, "Local Bytes Read": 0},
            "Shuffle Write Metrics": {"Shuffle Bytes Written": 50},
        },
    }


def python_failure(message: str) -> Event:
    """The ``Task End Reason`` of a Python UDF raising ``ValueError(message)``."""
    trace = (
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "/jobs/etl.py", line 12, in enrich\n    raise ValueError(msg)\n'
        f"ValueError: {message}\n\n"
        "\tat org.apache.spark.api.python.PythonRunner.handlePythonException(PythonRunner.scala:1)\n"
        "\tat org.apache.spark.api.python.PythonRunner.handlePythonException(PythonRunner.scala:1)\n"
        "\tat org.apache.spark.scheduler.Task.run(Task.scala:147)\n"
    )
    return {
        "Reason": "ExceptionFailure",
        "Class Name": "org.apache.spark.api.python.PythonException",
        "Description": "Traceback ...",
        "Stack Trace": [],
        "Full Stack Trace": trace,
    }


def application_events(
    app_id: str,
    *,
    name: str = "nightly-etl",
    fail: bool = False,
    durations: tuple[int, ...] = (100, 110, 120, 130),
) -> list[Event]:
    """A whole small application: one job, one stage, ``len(durations)`` tasks; optionally failing."""
    events: list[Event] = [
        {"Event": "SparkListenerLogStart", "Spark Version": "4.3.0"},
        {"Event": "SparkListenerApplicationStart", "App Name": name, "App ID": app_id, "Timestamp": START_MS,
         "User": "etl"},
        {"Event": "SparkListenerEnvironmentUpdate", "Spark Properties": {
            "spark.executor.memory": "4g", "spark.sql.shuffle.partitions": "200",
            "spark.hadoop.fs.s3a.secret.key": "AKIAEXAMPLESECRET", "spark.app.name": name,
            "spark.sink.url": "jdbc:postgresql://etl:hunter2@db.internal:5432/dw"}},
        {"Event": "SparkListenerExecutorAdded", "Timestamp": START_MS + 10, "Executor ID": "1",
         "Executor Info": {"Host": "worker-1", "Total Cores": 4}},
        {"Event": "SparkListenerJobStart", "Job ID": 0, "Submission Time": START_MS + 500,
         "Stage Infos": [{"Stage ID": 0, "Stage Attempt ID": 0, "Stage Name": "collect at etl.py:20",
                          "Number of Tasks": len(durations)}],
         "Stage IDs": [0], "Properties": {"spark.sql.execution.id": "0"}},
        {"Event": "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart", "executionId": 0,
         "description": "collect at etl.py:20", "time": START_MS + 400},
        {"Event": "SparkListenerStageSubmitted", "Stage Info": {"Stage ID": 0, "Stage Attempt ID": 0,
         "Stage Name": "collect at etl.py:20", "Number of Tasks": len(durations),
         "Submission Time": START_MS + 600}},
        {"Event": "SparkListenerTaskStart", "Stage ID": 0, "Task Info": {"Task ID": 0}},
        {"Event": "SparkListenerBlockUpdated", "Block Updated Info": {}},
    ]  # fmt: skip
    for task, duration in enumerate(durations):
        failing = fail and task == len(durations) - 1
        events.append(task_end(0, task, duration, reason=python_failure("bad row 7") if failing else None))
    reason = "Job aborted due to stage failure: PythonException: ValueError: bad row 7" if fail else None
    stage_info: Event = {"Stage ID": 0, "Stage Attempt ID": 0, "Stage Name": "collect at etl.py:20",
                         "Number of Tasks": len(durations), "Submission Time": START_MS + 600,
                         "Completion Time": START_MS + 5_000}  # fmt: skip
    if reason:
        stage_info["Failure Reason"] = reason
    result = {"Result": "JobFailed", "Exception": {"Message": reason}} if fail else {"Result": "JobSucceeded"}
    events += [
        {"Event": "SparkListenerStageCompleted", "Stage Info": stage_info},
        {"Event": "SparkListenerJobEnd", "Job ID": 0, "Completion Time": START_MS + 5_100,
         "Job Result": result},
        {"Event": "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd", "executionId": 0,
         "time": START_MS + 5_200, **({"errorMessage": reason} if reason else {})},
        {"Event": "SparkListenerApplicationEnd", "Timestamp": START_MS + 6_000},
    ]  # fmt: skip
    return events


def encode(events: list[Event]) -> bytes:
    """Event-log bytes: one JSON document per line."""
    return b"".join(json.dumps(event, separators=(",", ":")).encode() + b"\n" for event in events)


def lz4_block_stream(data: bytes, block: int = 4096) -> bytes:
    """``data`` as lz4-java's ``LZ4BlockOutputStream`` writes it (checksums left zero)."""
    out = bytearray()
    for start in range(0, len(data), block):
        chunk = data[start : start + block]
        packed = lz4.block.compress(chunk, store_size=False)
        out += b"LZ4Block" + struct.pack("<BiiI", 0x20 | 5, len(packed), len(chunk), 0) + packed
    return bytes(out + b"LZ4Block" + struct.pack("<BiiI", 0x10, 0, 0, 0))


def snappy_stream(data: bytes, block: int = 4096) -> bytes:
    """``data`` as xerial's ``SnappyOutputStream`` writes it."""
    out = bytearray(b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1))
    for start in range(0, len(data), block):
        packed = bytes(cramjam.snappy.compress_raw(data[start : start + block]))
        out += struct.pack(">i", len(packed)) + packed
    return bytes(out)


def write_folder(root: Path, app_id: str, data: bytes, *, parts: int = 2, in_progress: bool = False) -> Path:
    """A Spark 4 ``eventlog_v2_<app>/`` folder: ``parts`` rolled zstd files and the status marker."""
    folder = root / f"eventlog_v2_{app_id}"
    folder.mkdir(parents=True)
    lines = data.splitlines(keepends=True)
    size = -(-len(lines) // parts)
    for index in range(parts):
        chunk = b"".join(lines[index * size : (index + 1) * size])
        (folder / f"events_{index + 1}_{app_id}.zstd").write_bytes(zstandard.ZstdCompressor().compress(chunk))
    (folder / f"appstatus_{app_id}{'.inprogress' if in_progress else ''}").write_bytes(b"")
    return folder


def developer(surface: str | None = None, groups: tuple[str, ...] = ("data-infra",)) -> StaticIdentity:
    """A fixed caller for in-memory tests."""
    user = User(subject="alice", issuer="test", proven_by="local-process", groups=frozenset(groups))
    return StaticIdentity(Principal(user=user, surface=surface))


def make_server(
    settings: FleetdeckSettings,
    source: SparkSource,
    *,
    surfaces: tuple[str, ...] = (),
    surface: str | None = None,
) -> FleetServer:
    """The Spark server over ``source`` with RCAs in the settings' telemetry store."""
    spark = SparkSettings.load(surfaces=surfaces)
    store = RcaStore(spark.rca_store_url(settings))
    return build_server(settings, spark, source, store, identity=developer(surface))

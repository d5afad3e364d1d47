"""Read a successful task's numbers straight from its ``SparkListenerTaskEnd`` line, without JSON decoding.

Task-end lines are most of a log (several KB each, mostly accumulators and executor metrics). Spark's
``JsonProtocol`` writes their keys in a fixed order, so the few numbers the model needs are found by
searching for ``"Key":`` within the right section. Anything unexpected returns None and the caller
decodes the line as JSON instead.
"""

from __future__ import annotations

import re
from typing import NamedTuple

SUCCESS = b'"Task End Reason":{"Reason":"Success"}'
TASK_INFO = b'"Task Info":{'
ACCUMULABLES = b'"Accumulables":'
TASK_METRICS = b'"Task Metrics":{'
DIGITS = re.compile(rb"-?\d+")


class TaskNumbers(NamedTuple):
    """The numbers of one successful task."""

    stage_id: int
    attempt: int
    task_id: int
    task_index: int
    executor_id: str
    launch: int
    getting_result: int
    finish: int
    run_time: int
    gc_time: int
    peak_memory: int
    memory_spilled: int
    disk_spilled: int
    shuffle_read: int
    shuffle_written: int
    input_bytes: int
    output_bytes: int


def _number(line: bytes, key: bytes, section: tuple[int, int], pos: int) -> tuple[int, int]:
    """The integer after ``key`` (searched from ``pos``, then from the section start) and where it ended."""
    start, end = section
    at = line.find(key, pos, end)
    if at < 0:
        at = line.find(key, start, end)
        if at < 0:
            return 0, pos
    at += len(key)
    digits = DIGITS.match(line, at, end)
    return (int(digits.group()), digits.end()) if digits else (0, at)


def _string(line: bytes, key: bytes, start: int, end: int) -> str | None:
    at = line.find(key, start, end)
    if at < 0:
        return None
    at += len(key) + 1  # the opening quote
    stop = line.find(b'"', at, end)
    return line[at:stop].decode() if stop > at else None


def read_success(line: bytes) -> TaskNumbers | None:
    """The numbers of a successful task-end line, or None when the line is not one (or looks unusual)."""
    if line.find(SUCCESS, 0, 300) < 0:
        return None
    info = line.find(TASK_INFO)
    if info < 0:
        return None
    accumulables = line.find(ACCUMULABLES, info)
    metrics = line.find(TASK_METRICS, info)
    if metrics < 0 or accumulables < 0 or b"\\" in line[info:accumulables]:
        return None
    executor = _string(line, b'"Executor ID":', info, accumulables)
    if executor is None:
        return None
    head, task, numbers = (0, info), (info, accumulables), (metrics, len(line))
    stage_id, pos = _number(line, b'"Stage ID":', head, 0)
    attempt, pos = _number(line, b'"Stage Attempt ID":', head, pos)
    task_id, pos = _number(line, b'"Task ID":', task, info)
    index, pos = _number(line, b'"Index":', task, pos)
    launch, pos = _number(line, b'"Launch Time":', task, pos)
    getting_result, pos = _number(line, b'"Getting Result Time":', task, pos)
    finish, pos = _number(line, b'"Finish Time":', task, pos)
    run_time, pos = _number(line, b'"Executor Run Time":', numbers, metrics)
    peak_memory, pos = _number(line, b'"Peak Execution Memory":', numbers, pos)
    gc_time, pos = _number(line, b'"JVM GC Time":', numbers, pos)
    memory_spilled, pos = _number(line, b'"Memory Bytes Spilled":', numbers, pos)
    disk_spilled, pos = _number(line, b'"Disk Bytes Spilled":', numbers, pos)
    remote_read, pos = _number(line, b'"Remote Bytes Read":', numbers, pos)
    local_read, pos = _number(line, b'"Local Bytes Read":', numbers, pos)
    shuffle_written, pos = _number(line, b'"Shuffle Bytes Written":', numbers, pos)
    input_bytes, pos = _number(line, b'"Bytes Read":', numbers, pos)
    output_bytes, pos = _number(line, b'"Bytes Written":', numbers, pos)
    return TaskNumbers(
        stage_id, attempt, task_id, index, executor, launch, getting_result, finish, run_time, gc_time,
        peak_memory, memory_spilled, disk_spilled, remote_read + local_read, shuffle_written, input_bytes,
        output_bytes,
    )  # fmt: skip

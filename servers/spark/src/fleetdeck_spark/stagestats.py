"""Per-stage task statistics in bounded memory: totals, a reservoir for quantiles, the slowest tasks.

A stage's reservoir is dropped once the stage completes and its quantiles are computed, so memory
depends on the number of *running* stages, never on the length of the log.
"""

from __future__ import annotations

import heapq
import random
from array import array

from fleetdeck_spark.model import QUANTILES, Quantiles, SlowTask

RESERVOIR = 4096
SLOWEST = 5
METRICS = (
    "duration_ms",
    "run_time_ms",
    "gc_time_ms",
    "input_bytes",
    "shuffle_read_bytes",
    "shuffle_write_bytes",
    "memory_spilled_bytes",
    "disk_spilled_bytes",
    "peak_execution_memory_bytes",
)


def quantiles_of(values: list[float] | array[float]) -> list[float]:
    """Spark's task-summary quantiles (index ``min(q * n, n - 1)`` of the sorted values)."""
    ordered = sorted(values)
    count = len(ordered)
    return [float(ordered[min(int(q * count), count - 1)]) for q in QUANTILES]


class StageStats:
    """Successful-task samples and the slowest tasks of one stage attempt."""

    __slots__ = ("_random", "_samples", "_seen", "_slowest")

    def __init__(self, seed: int) -> None:
        self._samples = [array("d") for _ in METRICS]
        self._seen = 0
        self._random = random.Random(seed)  # noqa: S311 - sampling, not security
        self._slowest: list[tuple[int, int, int, str, int, int]] = []

    def add(self, values: tuple[int, ...], task_id: int, index: int, executor_id: str) -> None:
        """Record one successful task (``values`` in :data:`METRICS` order)."""
        self._seen += 1
        if self._seen <= RESERVOIR:
            for column, value in zip(self._samples, values, strict=True):
                column.append(value)
        else:
            slot = self._random.randrange(self._seen)
            if slot < RESERVOIR:
                for column, value in zip(self._samples, values, strict=True):
                    column[slot] = value
        duration = values[0]
        if len(self._slowest) < SLOWEST:
            heapq.heappush(
                self._slowest, (duration, task_id, index, executor_id, values[4], values[6] + values[7])
            )
        elif duration > self._slowest[0][0]:
            entry = (duration, task_id, index, executor_id, values[4], values[6] + values[7])
            heapq.heapreplace(self._slowest, entry)

    def quantiles(self) -> Quantiles | None:
        """The distribution (exact up to :data:`RESERVOIR` tasks, sampled beyond)."""
        if not self._seen:
            return None
        return Quantiles(
            **{name: quantiles_of(column) for name, column in zip(METRICS, self._samples, strict=True)}
        )

    def slowest(self) -> list[SlowTask]:
        """The slowest successful tasks, slowest first."""
        return [
            SlowTask(
                task_id=task_id,
                index=index,
                executor_id=executor,
                duration_ms=duration,
                shuffle_read_bytes=read,
                spilled_bytes=spilled,
            )
            for duration, task_id, index, executor, read, spilled in sorted(self._slowest, reverse=True)
        ]

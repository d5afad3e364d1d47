"""Group task failures by cause, bounded, the same way for both sources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetdeck_spark.errortext import parse_error
from fleetdeck_spark.model import FailureGroup, FailureKind

MAX_GROUPS = 20
MAX_IDS = 5

_PREFIX_KINDS: tuple[tuple[str, FailureKind], ...] = (
    ("TaskKilled", "killed"),
    ("ExecutorLostFailure", "executor_lost"),
    ("FetchFailed", "fetch_failed"),
    ("TaskResultLost", "result_lost"),
    ("TaskCommitDenied", "commit_denied"),
    ("Resubmitted", "other"),
    ("UnknownReason", "other"),
)


def kind_of(error: str) -> FailureKind:
    """The failure kind an error string (Spark's ``TaskEndReason.toErrorString``) names."""
    for prefix, kind in _PREFIX_KINDS:
        if error.startswith(prefix):
            return kind
    return "exception"


def reason_text(reason: Mapping[str, Any]) -> str:
    """Spark's ``toErrorString`` of an event-log ``Task End Reason`` (what the History Server shows)."""
    name = str(reason.get("Reason", ""))
    if name == "ExceptionFailure":
        full = reason.get("Full Stack Trace")
        if full:
            return str(full)
        frames = "\n".join(
            f"\tat {f.get('Declaring Class')}.{f.get('Method Name')}"
            f"({f.get('File Name')}:{f.get('Line Number')})"
            for f in reason.get("Stack Trace") or []
        )
        return f"{reason.get('Class Name')}: {reason.get('Description')}\n{frames}"
    if name == "TaskKilled":
        return str(reason.get("Kill Reason", "unknown reason"))
    if name == "ExecutorLostFailure":
        cause = (
            "caused by one of the running tasks" if reason.get("Exit Caused By App", True) else "unrelated"
        )
        return (
            f"ExecutorLostFailure (executor {reason.get('Executor ID')} exited {cause})"
            f" Reason: {reason.get('Loss Reason')}"
        )
    if name == "FetchFailed":
        address = reason.get("Block Manager Address") or {}
        return (
            f"FetchFailed(BlockManagerId({address.get('Executor ID')}, {address.get('Host')}), "
            f"shuffleId={reason.get('Shuffle ID')}, mapIndex={reason.get('Map Index')}, "
            f"reduceId={reason.get('Reduce ID')}, message=\n{reason.get('Message')}\n)"
        )
    if name == "TaskResultLost":
        return "TaskResultLost (result lost from block manager)"
    if name == "TaskCommitDenied":
        return "TaskCommitDenied (Driver denied task commit)"
    return name or "UnknownReason"


class FailureCollector:
    """Accumulates task failures into at most :data:`MAX_GROUPS` groups of the same cause."""

    def __init__(self) -> None:
        self._groups: dict[str, FailureGroup] = {}
        self.dropped = 0

    def add(
        self, kind: FailureKind, error: str, *, stage_id: int, task_id: int, executor_id: str | None
    ) -> None:
        """Record one failed or killed task."""
        parsed = parse_error(error)
        key = f"{kind}|{parsed.signature}"
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= MAX_GROUPS:
                self.dropped += 1
                return
            group = self._groups[key] = FailureGroup(kind=kind, message="")
        if not group.task_ids or task_id < group.task_ids[0]:  # the earliest task speaks for the group
            group.exception, group.message, group.python_error = (
                parsed.exception,
                parsed.message,
                parsed.python_error,
            )
            group.frames = parsed.frames + [f"Caused by: {cause}" for cause in parsed.causes]
        group.count += 1
        if stage_id not in group.stage_ids and len(group.stage_ids) < MAX_IDS * 4:
            group.stage_ids = sorted([*group.stage_ids, stage_id])
        group.task_ids = sorted({*group.task_ids, task_id})[:MAX_IDS]
        if executor_id and executor_id not in group.executor_ids and len(group.executor_ids) < MAX_IDS:
            group.executor_ids = sorted([*group.executor_ids, executor_id])

    def groups(self) -> list[FailureGroup]:
        """The groups, most frequent first; killed tasks after real failures."""
        return sorted(self._groups.values(), key=lambda g: (g.kind == "killed", -g.count))

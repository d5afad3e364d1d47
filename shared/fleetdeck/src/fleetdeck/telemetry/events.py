"""The invocation event: one record per ``tools/call``, and the keyed hash that pseudonymises users."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from fleetdeck.errors import Outcome


def pseudonymise(user_id: str | None, key: bytes) -> str | None:
    """A stable keyed hash of a user id: countable per month, not reversible without the key."""
    if not user_id:
        return None
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:32]


def month_of(ts: float) -> str:
    """The ``YYYY-MM`` (UTC) a timestamp falls in; reports group by it."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class InvocationEvent:
    """What telemetry records about one tool call. Holds no raw identity and no arguments."""

    server: str
    tool: str
    outcome: Outcome
    duration_ms: float
    team: str = ""
    minutes_saved: float = 0.0
    error_class: str | None = None
    user_hash: str | None = None
    workload: str | None = None
    client_name: str | None = None
    protocol_version: str | None = None
    trace_id: str | None = None
    ts: float = field(default_factory=time.time)
    event_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def to_row(self) -> dict[str, Any]:
        """The store row for this event (adds the ``month`` the reports group by)."""
        row = {name: getattr(self, name) for name in _FIELDS}
        row["outcome"] = self.outcome.value
        row["month"] = month_of(self.ts)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> InvocationEvent:
        """Rebuild an event from a store row or a spooled record."""
        values = {k: v for k, v in row.items() if k != "month"}
        values["outcome"] = Outcome(values["outcome"])
        return cls(**values)


_FIELDS = tuple(f.name for f in fields(InvocationEvent))

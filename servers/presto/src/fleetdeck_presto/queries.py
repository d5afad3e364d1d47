"""The queries this server started: who owns each, how far it got, and how to cancel it.

Only the owner (the verified principal who asked) can see or cancel a query; another user's query
id answers "not found", so ids of other people's queries are not confirmed. Finished queries are
kept for a while (bounded) so their status can still be asked for.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetdeck.errors import NotFoundError

QueryState = Literal["queued", "running", "finished", "failed", "cancelled", "timed_out"]
KEEP_FINISHED = 1000


@dataclass
class QueryHandle:
    """One query: its ids, owner, state and latest engine statistics (updated from the worker thread)."""

    local_id: str
    owner: str
    user: str
    tool: str
    started: float = field(default_factory=time.time)
    engine_id: str | None = None
    state: QueryState = "queued"
    ended: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    canceller: Callable[[], None] | None = field(default=None, repr=False)
    cancel_requested: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def query_id(self) -> str:
        return self.engine_id or self.local_id

    def update(self, stats: Mapping[str, Any]) -> None:
        """Record the engine's latest statistics (called by the driver on every response)."""
        with self._lock:
            self.stats = dict(stats)
            if self.engine_id is None and isinstance(stats.get("queryId"), str):
                self.engine_id = stats["queryId"]
            if self.state == "queued" and stats.get("state") not in (None, "QUEUED", "WAITING_FOR_RESOURCES"):
                self.state = "running"

    def finish(self, state: QueryState) -> None:
        with self._lock:
            if self.ended is None:
                self.state, self.ended = state, time.time()

    @property
    def progress_percent(self) -> float | None:
        value = self.stats.get("progressPercentage")
        return float(value) if isinstance(value, int | float) else None

    def describe(self) -> str:
        """A one-line progress message (no query text)."""
        rows = self.stats.get("processedRows")
        done = f", {rows} rows processed" if isinstance(rows, int) else ""
        pct = self.progress_percent
        share = f", {pct:.0f}%" if pct is not None else ""
        return f"query {self.query_id}: {self.stats.get('state', self.state)}{share}{done}"


class QueryTracker:
    """Every query of this process, by id (engine id and local id)."""

    def __init__(self, keep: int = KEEP_FINISHED) -> None:
        self._keep = keep
        self._queries: OrderedDict[str, QueryHandle] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, owner: str, user: str, tool: str) -> QueryHandle:
        handle = QueryHandle(local_id=f"fd_{uuid.uuid4().hex[:16]}", owner=owner, user=user, tool=tool)
        with self._lock:
            self._queries[handle.local_id] = handle
            while len(self._queries) > self._keep:
                self._queries.popitem(last=False)
        return handle

    def find(self, owner: str, query_id: str) -> QueryHandle:
        """The caller's query with ``query_id`` (engine or local id); NotFoundError for anyone else's."""
        with self._lock:
            handles = list(self._queries.values())
        for handle in handles:
            if query_id in (handle.local_id, handle.engine_id) and handle.owner == owner:
                return handle
        raise NotFoundError(f"no query {query_id} of yours is known to this server")

    def cancel(self, owner: str, query_id: str) -> QueryHandle:
        """Cancel the caller's running query on the engine; returns its handle."""
        handle = self.find(owner, query_id)
        if handle.ended is None:
            handle.cancel_requested = True
            if handle.canceller is not None:
                handle.canceller()
        return handle

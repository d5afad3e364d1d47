"""Status history and user feedback, on SQLAlchemy Core in the telemetry database.

- ``registry_probes``: one row per probe of a server (reachable, latency, live digest, drift diff).
- ``registry_feedback``: "this tool saved me N minutes" from people, to calibrate minutes saved.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fleetdeck.errors import TelemetryError
from fleetdeck.telemetry.store import make_engine

metadata = sa.MetaData()

probes = sa.Table(
    "registry_probes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("server", sa.String(128), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("reachable", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float),
    sa.Column("live_tools", sa.Integer),
    sa.Column("live_digest", sa.String(80)),
    sa.Column("approved_digest", sa.String(80)),
    sa.Column("drift", sa.Text, nullable=False, server_default="[]"),
    sa.Column("error", sa.String(500)),
    sa.Index("ix_registry_probes_server_ts", "server", "ts"),
)

feedback = sa.Table(
    "registry_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("server", sa.String(128), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("minutes", sa.Float, nullable=False),
    sa.Column("user_hash", sa.String(64)),
    sa.Column("comment", sa.String(500), nullable=False, server_default=""),
    sa.Index("ix_registry_feedback_tool", "server", "tool"),
)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one server."""

    server: str
    ts: float
    reachable: bool
    latency_ms: float | None = None
    live_tools: int | None = None
    live_digest: str | None = None
    approved_digest: str | None = None
    drift: tuple[str, ...] = ()
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.ts)),
            "latency_ms": self.latency_ms,
            "live_tools": self.live_tools,
            "live_digest": self.live_digest,
            "drift": list(self.drift),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    """What people reported a tool saved them, next to what it declares."""

    server: str
    tool: str
    reports: int
    mean_minutes: float


class HistoryStore:
    """Writes and reads probe history and feedback (blocking: call from a worker thread)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        self._created = False
        self._lock = threading.Lock()

    def create(self) -> None:
        with self._lock:
            if self._created:
                return
            for attempt in range(2):  # another process may create the tables between check and create
                try:
                    metadata.create_all(self.engine)
                    break
                except SQLAlchemyError as exc:
                    if attempt:
                        raise TelemetryError(
                            f"cannot create the registry tables: {type(exc).__name__}"
                        ) from exc
            self._created = True

    def record(self, results: list[ProbeResult], keep: int) -> None:
        """Append probe results and keep the newest ``keep`` per server."""
        if not results:
            return
        self.create()
        rows = [
            {
                "server": r.server,
                "ts": r.ts,
                "reachable": r.reachable,
                "latency_ms": r.latency_ms,
                "live_tools": r.live_tools,
                "live_digest": r.live_digest,
                "approved_digest": r.approved_digest,
                "drift": json.dumps(list(r.drift)),
                "error": (r.error or None) and r.error[:500],
            }
            for r in results
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(probes.insert(), rows)
                for server in {r.server for r in results}:
                    cutoff = (
                        sa.select(probes.c.id)
                        .where(probes.c.server == server)
                        .order_by(probes.c.id.desc())
                        .offset(keep)
                        .limit(1)
                        .scalar_subquery()
                    )
                    conn.execute(probes.delete().where(probes.c.server == server, probes.c.id <= cutoff))
        except SQLAlchemyError as exc:
            raise TelemetryError(f"cannot record probe results: {type(exc).__name__}") from exc

    def history(self, server: str, limit: int = 50) -> list[ProbeResult]:
        """The newest ``limit`` probes of ``server``, newest first."""
        self.create()
        query = sa.select(probes).where(probes.c.server == server).order_by(probes.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            ProbeResult(
                server=row["server"],
                ts=row["ts"],
                reachable=bool(row["reachable"]),
                latency_ms=row["latency_ms"],
                live_tools=row["live_tools"],
                live_digest=row["live_digest"],
                approved_digest=row["approved_digest"],
                drift=tuple(json.loads(row["drift"] or "[]")),
                error=row["error"],
            )
            for row in rows
        ]

    def add_feedback(
        self, server: str, tool: str, minutes: float, user_hash: str | None, comment: str
    ) -> None:
        """Store one "this tool saved me N minutes" report."""
        self.create()
        row = {
            "ts": time.time(),
            "server": server,
            "tool": tool,
            "minutes": minutes,
            "user_hash": user_hash,
            "comment": comment[:500],
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(feedback.insert(), [row])
        except SQLAlchemyError as exc:
            raise TelemetryError(f"cannot store feedback: {type(exc).__name__}") from exc

    def calibration(self, server: str | None = None) -> list[Calibration]:
        """Reports and mean reported minutes per tool (of ``server``, or all)."""
        self.create()
        query = sa.select(
            feedback.c.server, feedback.c.tool, sa.func.count(), sa.func.avg(feedback.c.minutes)
        ).group_by(feedback.c.server, feedback.c.tool)
        if server is not None:
            query = query.where(feedback.c.server == server)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(feedback.c.server, feedback.c.tool)).all()
        return [Calibration(row[0], row[1], int(row[2]), round(float(row[3]), 2)) for row in rows]

    def dispose(self) -> None:
        self.engine.dispose()

"""The invocation store on SQLAlchemy Core: SQLite by default, PostgreSQL by URL.

Inserts are idempotent on ``event_id``, so replaying a spooled batch that was partly written
never double-counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fleetdeck.errors import TelemetryError
from fleetdeck.telemetry.events import InvocationEvent

metadata = sa.MetaData()

invocations = sa.Table(
    "invocations",
    metadata,
    sa.Column("event_id", sa.String(32), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("server", sa.String(128), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("error_class", sa.String(128)),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("minutes_saved", sa.Float, nullable=False, server_default="0"),
    sa.Column("user_hash", sa.String(64)),
    sa.Column("workload", sa.String(512)),
    sa.Column("client_name", sa.String(256)),
    sa.Column("protocol_version", sa.String(32)),
    sa.Column("trace_id", sa.String(64)),
    sa.Index(
        "ix_invocations_report", "month", "server", "tool", "team", "user_hash", "outcome", "minutes_saved"
    ),
)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so a whole local fleet can share it."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


class EventStore:
    """Writes and reads invocation events."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._created = False

    def create(self) -> None:
        """Create the table and index if missing (idempotent)."""
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise TelemetryError(f"cannot create the telemetry schema: {type(exc).__name__}") from exc
        self._created = True

    def insert(self, events: Sequence[InvocationEvent]) -> None:
        """Insert events in one transaction; rows already present are skipped."""
        if not events:
            return
        if not self._created:
            self.create()
        rows = [event.to_row() for event in events]
        dialect = self.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(invocations).on_conflict_do_nothing(index_elements=["event_id"])
        try:
            with self.engine.begin() as conn:
                conn.execute(statement, rows)
        except SQLAlchemyError as exc:
            raise TelemetryError(f"telemetry store write failed: {type(exc).__name__}") from exc

    def count(self) -> int:
        """How many events the store holds."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(invocations)).scalar_one())

    def events(self) -> Iterable[InvocationEvent]:
        """Every stored event (tests and exports; reports aggregate in SQL instead)."""
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(invocations)).mappings():
                yield InvocationEvent.from_row(dict(row))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

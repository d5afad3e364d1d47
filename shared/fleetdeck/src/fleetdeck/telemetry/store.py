"""The invocation store on SQLAlchemy Core: SQLite by default, PostgreSQL by URL.

Two tables:

- ``invocations``: one row per event. Inserts are idempotent on ``event_id``, so replaying a
  spooled batch that was partly written never double-counts.
- ``invocation_rollup``: one row per (month, server, tool, team, user_key) with the invocations,
  successes and minutes saved (of the successes) of that key; ``user_key`` is the ``user_hash``, or
  ``''`` for anonymous calls (NULLs are distinct in unique keys, so the key never holds one). The
  ROI report (:mod:`fleetdeck.telemetry.roi`) reads only this table, so its cost depends on the
  number of (tool, user) pairs per month, not on the number of events.

:meth:`EventStore.insert` keeps the rollup exact in the same transaction as the raw insert: the
events go in with ``ON CONFLICT (event_id) DO NOTHING RETURNING`` the key fields of the rows
actually inserted, those are summed per key in Python, and the sums are upserted into the rollup
(``ON CONFLICT (key) DO UPDATE SET invocations = invocation_rollup.invocations +
excluded.invocations, ...``). A replayed batch inserts nothing, so it adds nothing. Keys are
upserted in sorted order, so concurrent PostgreSQL writers lock rollup rows in the same order and
cannot deadlock each other.

:meth:`EventStore.create` also migrates databases written before the rollup existed: when the
rollup is empty but ``invocations`` is not, it fills the rollup once from ``invocations`` with one
``INSERT ... SELECT ... GROUP BY`` (see :func:`rollup_rebuild`), and it drops the former report
index ``ix_invocations_report``, which nothing reads any more and which only slowed inserts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fleetdeck.errors import Outcome, TelemetryError
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
)

#: The index older versions kept for the report; :meth:`EventStore.create` drops it.
FORMER_REPORT_INDEX: Final = "ix_invocations_report"

invocation_rollup = sa.Table(
    "invocation_rollup",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("server", sa.String(128), primary_key=True),
    sa.Column("tool", sa.String(128), primary_key=True),
    sa.Column("team", sa.String(128), primary_key=True),
    sa.Column("user_key", sa.String(64), primary_key=True),  # user_hash, or '' when anonymous
    sa.Column("invocations", sa.BigInteger, nullable=False),
    sa.Column("successes", sa.BigInteger, nullable=False),
    sa.Column("minutes_saved", sa.Float, nullable=False),  # of the successful invocations
    sqlite_with_rowid=False,
)

ROLLUP_KEY: Final = ("month", "server", "tool", "team", "user_key")
_OK: Final = str(Outcome.OK)
_RETURNED = (
    invocations.c.month,
    invocations.c.server,
    invocations.c.tool,
    invocations.c.team,
    invocations.c.user_hash,
    invocations.c.outcome,
    invocations.c.minutes_saved,
)


def rollup_rebuild(*, only_if_empty: bool = False) -> sa.Insert:
    """``INSERT INTO invocation_rollup SELECT ... FROM invocations GROUP BY <key>``: the whole rollup.

    For an empty rollup (the backfill of :meth:`EventStore.create`, bulk loads); ``only_if_empty``
    makes the statement itself insert nothing when the rollup already has rows.
    """
    c = invocations.c
    ok = c.outcome == sa.literal_column(f"'{_OK}'")
    user_key = sa.func.coalesce(c.user_hash, sa.literal_column("''"))
    key = (c.month, c.server, c.tool, c.team, user_key)
    select = sa.select(
        *key,
        sa.func.count(),
        sa.func.sum(sa.case((ok, 1), else_=0)),
        sa.func.sum(sa.case((ok, c.minutes_saved), else_=0.0)),
    ).group_by(*key)
    if only_if_empty:
        select = select.where(~sa.exists(sa.select(sa.literal_column("1")).select_from(invocation_rollup)))
    return invocation_rollup.insert().from_select([col.name for col in invocation_rollup.columns], select)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so a whole local fleet can share it.

    A plain ``postgresql://`` (or ``postgres://``) URL uses the psycopg 3 driver, the one installed.
    """
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            url = "postgresql+psycopg://" + url.removeprefix(plain)
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
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        self._insert = (
            dialect.insert(invocations)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(*_RETURNED)
        )
        upsert = dialect.insert(invocation_rollup)
        current, new = invocation_rollup.c, upsert.excluded
        self._upsert = upsert.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY),
            set_={
                "invocations": current.invocations + new.invocations,
                "successes": current.successes + new.successes,
                "minutes_saved": current.minutes_saved + new.minutes_saved,
            },
        )

    def create(self) -> None:
        """Create the tables if missing and migrate older databases (idempotent, cheap when current)."""
        ensure_schema(self.engine)
        self._created = True

    def insert(self, events: Sequence[InvocationEvent]) -> None:
        """Insert events and add the new ones to the rollup, in one transaction.

        Events already stored (same ``event_id``) are skipped and add nothing to the rollup.
        """
        if not events:
            return
        if not self._created:
            self.create()
        rows = [event.to_row() for event in events]
        try:
            with self.engine.begin() as conn:
                inserted = conn.execute(self._insert, rows)
                sums: dict[tuple[str, str, str, str, str], list[Any]] = {}
                for month, server, tool, team, user_hash, outcome, minutes in inserted:
                    key = (month, server, tool, team, user_hash or "")
                    entry = sums.get(key)
                    if entry is None:
                        entry = sums[key] = [0, 0, 0.0]
                    entry[0] += 1
                    if outcome == _OK:
                        entry[1] += 1
                        entry[2] += minutes
                if sums:
                    conn.execute(
                        self._upsert,
                        [
                            {
                                "month": key[0],
                                "server": key[1],
                                "tool": key[2],
                                "team": key[3],
                                "user_key": key[4],
                                "invocations": count,
                                "successes": successes,
                                "minutes_saved": minutes,
                            }
                            for key, (count, successes, minutes) in sorted(sums.items())
                        ],
                    )
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


def ensure_schema(engine: Engine) -> None:
    """Create the tables if missing and migrate a database written by an older version.

    Raises :class:`TelemetryError` when the database cannot be reached or changed.
    """
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            _migrate(conn)
    except SQLAlchemyError as exc:
        raise TelemetryError(f"cannot create the telemetry schema: {type(exc).__name__}") from exc


def rollup_is_stale(conn: sa.Connection) -> bool:
    """True when :func:`ensure_schema` has a rollup to build: the table is missing, or it is empty
    while ``invocations`` holds rows (a database written before the rollup existed)."""
    if not sa.inspect(conn).has_table(invocation_rollup.name):
        return True
    return _has_rows(conn, invocations) and not _has_rows(conn, invocation_rollup)


def _migrate(conn: sa.Connection) -> None:
    """Bring a database written by an older version up to date, in the caller's transaction.

    Drops the former report index and, when the rollup is empty but ``invocations`` is not, fills the
    rollup from ``invocations`` once. On PostgreSQL the rollup is locked against concurrent writers
    (and concurrent migrations) first, so every event is counted exactly once; on SQLite the
    guarded ``INSERT ... SELECT`` is one write statement and the database lock does the same.
    """
    if FORMER_REPORT_INDEX in {index["name"] for index in sa.inspect(conn).get_indexes(invocations.name)}:
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {FORMER_REPORT_INDEX}"))
    if not _has_rows(conn, invocations) or _has_rows(conn, invocation_rollup):
        return
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"LOCK TABLE {invocation_rollup.name} IN SHARE ROW EXCLUSIVE MODE"))
    conn.execute(rollup_rebuild(only_if_empty=True))


def _has_rows(conn: sa.Connection, table: sa.Table) -> bool:
    return bool(
        conn.execute(sa.select(sa.exists(sa.select(sa.literal_column("1")).select_from(table)))).scalar()
    )

"""The invocation store on SQLAlchemy Core: SQLite by default, PostgreSQL by URL.

Two tables:

- ``invocations``: one row per event. Inserts are idempotent on ``event_id``, so replaying a
  spooled batch that was partly written never double-counts.
- ``invocation_rollup``: one row per (month, server, tool, team, user_key) with the invocations,
  successes and minutes saved (of the successes) of that key; ``user_key`` is the ``user_hash``, or
  ``''`` for anonymous calls (NULLs are distinct in unique keys, so the key never holds one). The
  ROI report (:mod:`fleetdeck.telemetry.roi`) reads only this table, so its cost depends on the
  number of (tool, user) pairs per month, not on the number of events.

:meth:`EventStore.insert` keeps the rollup exact in the same transaction as the raw insert, with a
fixed set of short statements per batch (written once, so the drivers can cache them), and only the
rows actually inserted are added: a replayed batch inserts nothing, so it adds nothing.

- PostgreSQL: one statement. The batch is sent as one array per column and inserted from
  ``unnest(...)`` with ``ON CONFLICT (event_id) DO NOTHING RETURNING`` the key fields, in a CTE whose
  rows are summed per key by ``GROUP BY`` and upserted into the rollup (``ON CONFLICT (key) DO
  UPDATE SET invocations = invocation_rollup.invocations + excluded.invocations, ...``). The keys
  are upserted sorted (``COLLATE "C"``: code-point order, as Python sorts them), and the events are
  sent sorted by ``event_id``, so concurrent writers lock rollup rows and ``event_id`` index
  entries in the same order and cannot deadlock each other (batches overlap when spooled events
  are replayed).
- SQLite: four statements. ``BEGIN IMMEDIATE`` takes the write lock first (waiting on the busy
  timeout while another process holds it), the largest ``rowid`` of ``invocations`` is read, the
  batch is inserted with ``executemany`` (``ON CONFLICT (event_id) DO NOTHING``), and the rows
  after that ``rowid`` -- exactly the ones this transaction inserted, as SQLite gives a new row
  the largest ``rowid`` plus one -- are summed per key by one ``INSERT ... SELECT ... GROUP BY ...
  ON CONFLICT DO UPDATE`` into the rollup. Everything runs in SQLite, none of it per row in Python.

:meth:`EventStore.create` also migrates databases written before the rollup existed: when the
rollup is empty but ``invocations`` is not, it fills the rollup once from ``invocations`` with one
``INSERT ... SELECT ... GROUP BY`` (see :func:`rollup_rebuild`), and it drops the former report
index ``ix_invocations_report``, which nothing reads any more and which only slowed inserts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fleetdeck.errors import Outcome, TelemetryError
from fleetdeck.telemetry.events import InvocationEvent, month_of

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
#: The columns of ``invocations`` in table order: the order of :func:`_rows`' tuples.
_COLUMNS: Final = tuple(column.name for column in invocations.columns)
_event_id: Final = itemgetter(0)
_FLOAT_COLUMNS: Final = frozenset(c.name for c in invocations.columns if isinstance(c.type, sa.Float))
_ROLLUP_COLUMNS: Final = ", ".join(column.name for column in invocation_rollup.columns)
_ADD_TO_ROLLUP: Final = ", ".join(
    f"{name} = {invocation_rollup.name}.{name} + excluded.{name}"
    for name in ("invocations", "successes", "minutes_saved")
)


def _rows(events: Sequence[InvocationEvent]) -> list[tuple[Any, ...]]:
    """The batch as ``invocations`` rows, tuples in :data:`_COLUMNS` order."""
    month = month_of
    return [
        (
            e.event_id,
            e.ts,
            month(e.ts),
            e.server,
            e.tool,
            e.team,
            e.outcome.value,
            e.error_class,
            e.duration_ms,
            e.minutes_saved,
            e.user_hash,
            e.workload,
            e.client_name,
            e.protocol_version,
            e.trace_id,
        )
        for e in events
    ]


def _array_type(column: sa.Column[Any]) -> str:
    return "double precision[]" if isinstance(column.type, sa.Float) else "text[]"


#: PostgreSQL: the whole batch in one statement (see the module docstring). Parameters: one list per
#: column of ``invocations``, named after it, sent as binary arrays (``%(name)b``: psycopg dumps a
#: text array element by element in Python, a binary one about four times faster).
_PG_INSERT: Final = f"""\
WITH inserted AS (
    INSERT INTO {invocations.name} ({", ".join(_COLUMNS)})
    SELECT * FROM unnest({", ".join(f"%({c.name})b::{_array_type(c)}" for c in invocations.columns)})
    ON CONFLICT (event_id) DO NOTHING
    RETURNING month, server, tool, team, coalesce(user_hash, '') AS user_key, outcome, minutes_saved
)
INSERT INTO {invocation_rollup.name} ({_ROLLUP_COLUMNS})
SELECT month, server, tool, team, user_key, count(*), count(*) FILTER (WHERE outcome = '{_OK}'),
    coalesce(sum(minutes_saved) FILTER (WHERE outcome = '{_OK}'), 0)
FROM inserted
GROUP BY month, server, tool, team, user_key
ORDER BY {", ".join(f'{name} COLLATE "C"' for name in ROLLUP_KEY)}
ON CONFLICT ({", ".join(ROLLUP_KEY)}) DO UPDATE SET {_ADD_TO_ROLLUP}"""  # noqa: S608 - fixed names

#: SQLite (see the module docstring): the rowid of the last row before the batch, the batch, then
#: the rollup of the rows after that rowid (the ones this transaction inserted).
_SQLITE_LAST_ROWID: Final = f"SELECT coalesce(max(rowid), 0) FROM {invocations.name}"  # noqa: S608
_SQLITE_INSERT: Final = (
    f"INSERT INTO {invocations.name} ({', '.join(_COLUMNS)})"  # noqa: S608 - fixed names
    f" VALUES ({', '.join('?' for _ in _COLUMNS)}) ON CONFLICT (event_id) DO NOTHING"
)
_SQLITE_ROLL_UP: Final = f"""\
INSERT INTO {invocation_rollup.name} ({_ROLLUP_COLUMNS})
SELECT month, server, tool, team, coalesce(user_hash, ''), count(*), sum(outcome = '{_OK}'),
    total(CASE WHEN outcome = '{_OK}' THEN minutes_saved ELSE 0.0 END)
FROM {invocations.name}
WHERE rowid > ?
GROUP BY month, server, tool, team, coalesce(user_hash, '')
ON CONFLICT ({", ".join(ROLLUP_KEY)}) DO UPDATE SET {_ADD_TO_ROLLUP}"""  # noqa: S608 - fixed names


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


def make_engine(url: str, *, durable: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so a whole local fleet can share it.

    A plain ``postgresql://`` (or ``postgres://``) URL uses the psycopg 3 driver, the one installed.
    ``durable``: SQLite commits survive a power loss too (``synchronous=FULL``) and every transaction
    takes the write lock up front, for the audit trail and approvals; the batched, replayable
    invocation path keeps ``NORMAL``.
    """
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            url = "postgresql+psycopg://" + url.removeprefix(plain)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        database = engine.url.database

        @sa.event.listens_for(engine, "do_connect")
        def _folder(*_args: Any) -> None:
            if database and database != ":memory:":
                with contextlib.suppress(OSError):  # if it cannot be made, connecting reports why
                    Path(database).parent.mkdir(parents=True, exist_ok=True)  # a fresh data dir

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache per connection
            cursor.execute("PRAGMA wal_autocheckpoint=10000")  # pages (~40 MiB): fewer, larger checkpoints
            cursor.close()
            if durable:
                dbapi_conn.isolation_level = None  # transactions begin below, not in the sqlite3 module

        if durable:

            @sa.event.listens_for(engine, "begin")
            def _immediate(conn: sa.Connection) -> None:
                # Take the write lock when the transaction starts, waiting on the busy timeout: a
                # deferred transaction upgrading to a writer fails at once if another one holds it.
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


class EventStore:
    """Writes and reads invocation events."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._created = False
        self._postgresql = self.engine.dialect.name == "postgresql"

    def create(self) -> None:
        """Create the tables if missing and migrate older databases (idempotent, cheap when current)."""
        ensure_schema(self.engine)
        self._created = True

    def insert(self, events: Sequence[InvocationEvent]) -> None:
        """Insert events and add the new ones to the rollup, in one transaction.

        Events already stored (same ``event_id``) are skipped and add nothing to the rollup; of
        events repeated within the batch, the first is kept.
        """
        if not events:
            return
        if not self._created:
            self.create()
        rows = _rows(events)
        # In event_id order (stable: a repeated id keeps its first row), so that concurrent
        # PostgreSQL writers of overlapping batches (replays) take the locks of the unique index in
        # the same order and cannot deadlock; time-ordered ids make this nearly free.
        try:
            rows.sort(key=_event_id)
        except TypeError as exc:
            raise TelemetryError("telemetry store write failed: an event_id is not a string") from exc
        try:
            with self.engine.begin() as conn:
                if self._postgresql:
                    _insert_postgresql(conn, rows)
                else:
                    _insert_sqlite(conn, rows)
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


def _insert_postgresql(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
    params: dict[str, list[Any]] = {}
    for name, column in zip(_COLUMNS, zip(*rows, strict=True), strict=True):
        if name in _FLOAT_COLUMNS:  # an int among the floats would make psycopg dump an int array
            try:
                params[name] = [None if value is None else float(value) for value in column]
            except (TypeError, ValueError) as exc:
                raise TelemetryError(f"telemetry store write failed: {name} is not a number") from exc
        else:
            params[name] = list(column)
    conn.exec_driver_sql(_PG_INSERT, params)


def _insert_sqlite(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
    # The largest rowid must be read in the writing transaction: the sqlite3 module would run the
    # SELECT outside one and BEGIN only at the INSERT, letting another writer's rows slip in between.
    # BEGIN IMMEDIATE also takes the write lock first, waiting on the busy timeout.
    dbapi = conn.connection.driver_connection
    if dbapi is None or not dbapi.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    last = conn.exec_driver_sql(_SQLITE_LAST_ROWID).scalar_one()
    conn.exec_driver_sql(_SQLITE_INSERT, rows)
    conn.exec_driver_sql(_SQLITE_ROLL_UP, (last,))


def ensure_schema(engine: Engine) -> None:
    """Create the tables if missing and migrate a database written by an older version.

    Raises :class:`TelemetryError` when the database cannot be reached or changed.
    """
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            _migrate(conn)
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise TelemetryError(f"cannot create the telemetry schema at {where}: {type(exc).__name__}") from exc


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

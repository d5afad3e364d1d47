"""Synthetic invocation events for tests and benchmarks, and a fast bulk loader.

The generator is deterministic for a given ``seed``: the same arguments always give the same rows, so a
test can compute its expected report independently from :func:`generate_events` and compare exactly.
Minutes saved are multiples of 0.5, which binary floats hold exactly, so sums never drift.

Shape of the data (meant to look like a real fleet, not a uniform cube):

- tools are picked by popularity weight; each event carries its tool's declared ``minutes_saved``,
  whatever the outcome (reports must ignore failed calls themselves);
- about 90% of calls succeed, the rest spread over the other outcomes with a matching error class;
- users follow a Zipf-like activity curve, and the active population grows month by month
  (adoption), so monthly active users differ per month, server and team;
- a share of calls are automated (no user, a workload identity instead);
- later months carry more traffic than earlier ones.

:func:`bulk_load` writes millions of rows into SQLite with raw ``executemany`` in large
transactions, dropping the secondary indexes while loading and rebuilding them afterwards, then
rebuilds the report rollup with one ``INSERT ... SELECT ... GROUP BY``;
:func:`ensure_bench_database` keeps a cached 10M-row benchmark file outside the repository.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import sqlite3
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from fleetdeck.errors import Outcome
from fleetdeck.telemetry.events import InvocationEvent
from fleetdeck.telemetry.store import EventStore, invocation_rollup, invocations, metadata, rollup_rebuild

#: Bump when the generated data changes shape, so cached benchmark files are rebuilt.
GENERATOR_VERSION = 1

#: Column order of the tuples :func:`iter_rows` yields (names of ``invocations`` columns).
ROW_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "month",
    "server",
    "tool",
    "team",
    "outcome",
    "error_class",
    "duration_ms",
    "minutes_saved",
    "user_hash",
    "workload",
    "client_name",
    "protocol_version",
    "trace_id",
)

Row = tuple[Any, ...]
LoadProgress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool of the synthetic fleet: where it lives, who owns it, what it saves, how popular it is."""

    server: str
    tool: str
    team: str
    minutes_saved: float
    weight: float = 1.0
    base_ms: float = 200.0


DEFAULT_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("presto", "run_query", "data-platform", 5.0, 30.0, 1500.0),
    ToolSpec("presto", "explain_query", "data-platform", 3.0, 8.0, 300.0),
    ToolSpec("presto", "describe_table", "data-platform", 2.0, 12.0, 120.0),
    ToolSpec("presto", "list_catalogs", "data-platform", 0.5, 6.0, 50.0),
    ToolSpec("presto", "sample_table", "data-platform", 2.5, 5.0, 800.0),
    ToolSpec("spark", "list_applications", "compute-platform", 1.0, 7.0, 150.0),
    ToolSpec("spark", "get_application", "compute-platform", 2.0, 6.0, 200.0),
    ToolSpec("spark", "diagnose_failed_job", "compute-platform", 15.0, 3.0, 2500.0),
    ToolSpec("spark", "compare_runs", "compute-platform", 10.0, 1.5, 1800.0),
    ToolSpec("spark", "get_executor_metrics", "compute-platform", 4.0, 2.5, 400.0),
    ToolSpec("airflow", "list_dags", "orchestration", 1.0, 6.0, 100.0),
    ToolSpec("airflow", "get_dag_run", "orchestration", 2.0, 7.0, 150.0),
    ToolSpec("airflow", "diagnose_task_failure", "orchestration", 15.0, 2.5, 2000.0),
    ToolSpec("airflow", "clear_task_instances", "orchestration", 7.5, 1.0, 600.0),
    ToolSpec("airflow", "trigger_dag_run", "orchestration", 5.0, 1.5, 300.0),
)

_OUTCOMES: tuple[tuple[Outcome, str | None, float], ...] = (
    (Outcome.OK, None, 90.0),
    (Outcome.TOOL_ERROR, "NotFoundError", 3.0),
    (Outcome.INVALID_INPUT, "InvalidInputError", 2.0),
    (Outcome.DENIED, "AccessDeniedError", 2.0),
    (Outcome.BACKEND_ERROR, "BackendError", 1.5),
    (Outcome.TIMEOUT, "BackendTimeoutError", 1.0),
    (Outcome.CANCELLED, "CancelledError", 0.3),
    (Outcome.INTERNAL_ERROR, "RuntimeError", 0.2),
)
_CLIENTS = ("claude-code", "cursor", "vscode-copilot", "internal-agent")
_PROTOCOL = "2025-06-18"
_BATCH_WORKLOAD = "spiffe://corp.example/ns/batch/sa/etl-runner"


def month_sequence(count: int, start: str = "2025-01") -> list[str]:
    """``count`` consecutive ``YYYY-MM`` months starting at ``start``."""
    year, month = (int(part) for part in start.split("-"))
    months = []
    for offset in range(count):
        index = year * 12 + month - 1 + offset
        months.append(f"{index // 12:04d}-{index % 12 + 1:02d}")
    return months


def user_hash_of(index: int) -> str:
    """The pseudonymous hash of synthetic user ``index`` (32 hex chars, like the real keyed hash)."""
    return hashlib.sha256(f"synthetic-user-{index}".encode()).hexdigest()[:32]


def _month_bounds(month: str) -> tuple[float, float]:
    year, mon = (int(part) for part in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp() - start.timestamp()


def _months_of(months: Sequence[str] | int) -> list[str]:
    return month_sequence(months) if isinstance(months, int) else list(months)


def iter_rows(
    n: int,
    *,
    months: Sequence[str] | int = 3,
    tools: Sequence[ToolSpec] = DEFAULT_TOOLS,
    users: int = 200,
    seed: int = 0,
    anonymous_share: float = 0.05,
    batch_size: int = 50_000,
) -> Iterator[list[Row]]:
    """Batches of raw store rows (tuples in :data:`ROW_COLUMNS` order); the fast path for bulk loads."""
    month_list = _months_of(months)
    if n < 0 or not month_list or not tools or users < 1:
        raise ValueError("need n >= 0, at least one month, one tool and one user")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
    hashes = [user_hash_of(i) for i in range(users)]
    user_cum = list(itertools.accumulate(1.0 / (i + 1) ** 0.9 for i in range(users)))
    tool_cum = list(itertools.accumulate(spec.weight for spec in tools))
    outcome_cum = list(itertools.accumulate(weight for _, _, weight in _OUTCOMES))
    outcome_values = [(str(outcome), error) for outcome, error, _ in _OUTCOMES]
    # Traffic grows month over month; the per-month counts are exact and sum to n.
    month_weights = [1.0 + 0.15 * k for k in range(len(month_list))]
    total_weight = sum(month_weights)
    counts = [int(n * w / total_weight) for w in month_weights]
    counts[-1] += n - sum(counts)
    prefix = f"{seed & 0xFFFFFFFF:08x}"
    serial = 0
    for k, (month, count) in enumerate(zip(month_list, counts, strict=True)):
        start, length = _month_bounds(month)
        pool = max(1, round(users * (0.5 + 0.5 * (k + 1) / len(month_list))))
        pool_range = range(pool)
        pool_cum = user_cum[:pool]
        remaining = count
        while remaining > 0:
            size = min(batch_size, remaining)
            remaining -= size
            picked_tools = rng.choices(tools, cum_weights=tool_cum, k=size)
            picked_outcomes = rng.choices(outcome_values, cum_weights=outcome_cum, k=size)
            picked_users = rng.choices(pool_range, cum_weights=pool_cum, k=size)
            rand = rng.random
            batch: list[Row] = []
            append = batch.append
            for spec, (outcome, error), user in zip(picked_tools, picked_outcomes, picked_users, strict=True):
                anonymous = rand() < anonymous_share
                append(
                    (
                        f"{prefix}{serial:024x}",
                        start + rand() * length,
                        month,
                        spec.server,
                        spec.tool,
                        spec.team,
                        outcome,
                        error,
                        round(spec.base_ms * (0.25 + 1.5 * rand()), 3),
                        spec.minutes_saved,
                        None if anonymous else hashes[user],
                        _BATCH_WORKLOAD if anonymous else None,
                        None if anonymous else _CLIENTS[user % len(_CLIENTS)],
                        _PROTOCOL,
                        None,
                    )
                )
                serial += 1
            yield batch


def generate_events(
    n: int,
    *,
    months: Sequence[str] | int = 3,
    tools: Sequence[ToolSpec] = DEFAULT_TOOLS,
    users: int = 200,
    seed: int = 0,
    anonymous_share: float = 0.05,
) -> list[InvocationEvent]:
    """``n`` deterministic, realistic invocation events spread over ``months`` (a count or a list)."""
    events: list[InvocationEvent] = []
    fields = [name for name in ROW_COLUMNS if name != "month"]
    for batch in iter_rows(
        n, months=months, tools=tools, users=users, seed=seed, anonymous_share=anonymous_share
    ):
        for row in batch:
            values = dict(zip(ROW_COLUMNS, row, strict=True))
            del values["month"]
            values["outcome"] = Outcome(values["outcome"])
            events.append(InvocationEvent(**{name: values[name] for name in fields}))
    return events


def _sqlite_path(url: str) -> Path | None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _insert_sql() -> str:
    names = ", ".join(ROW_COLUMNS)
    marks = ", ".join("?" for _ in ROW_COLUMNS)
    return f"INSERT OR IGNORE INTO invocations ({names}) VALUES ({marks})"  # noqa: S608 - fixed names


def _index_ddl() -> list[tuple[str, str]]:
    dialect = sqlite_dialect.dialect()
    return [
        (str(index.name), str(CreateIndex(index).compile(dialect=dialect))) for index in invocations.indexes
    ]


def _rollup_sql() -> str:
    """The store's rollup rebuild as SQLite text (bound constants inlined), for the raw connection."""
    statement = rollup_rebuild().compile(
        dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(statement)


def schema_fingerprint() -> int:
    """A 31-bit fingerprint of the SQLite schema (every table and index) and the generator."""
    dialect = sqlite_dialect.dialect()
    tables = "".join(str(CreateTable(table).compile(dialect=dialect)) for table in metadata.sorted_tables)
    ddl = tables + "".join(sql for _, sql in _index_ddl())
    return zlib.crc32(f"{ddl}|{GENERATOR_VERSION}".encode()) & 0x7FFFFFFF


def _load_sqlite(
    path: Path, batches: Iterator[list[Row]], n: int, progress: LoadProgress | None, fast: bool
) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if fast:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-524288")
        conn.execute("PRAGMA temp_store=MEMORY")
        indexes = _index_ddl()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        done = 0
        sql = _insert_sql()
        for batch in batches:
            conn.executemany(sql, batch)
            done += len(batch)
            if progress is not None:
                progress(done, n)
        for _, ddl in indexes:
            conn.execute(ddl)
        conn.execute(f"DELETE FROM {invocation_rollup.name}")  # noqa: S608 - a fixed name
        conn.execute(_rollup_sql())
        conn.execute("COMMIT")
        return done
    finally:
        conn.close()


def bulk_load(
    store: EventStore,
    n: int,
    *,
    months: Sequence[str] | int = 3,
    tools: Sequence[ToolSpec] = DEFAULT_TOOLS,
    users: int = 200,
    seed: int = 0,
    progress: LoadProgress | None = None,
    fast: bool = False,
) -> int:
    """Load ``n`` generated events into ``store``; returns the rows written (duplicates are skipped).

    SQLite files take the fast path: raw ``executemany`` in one transaction with the secondary indexes
    dropped and rebuilt afterwards (``fast=True`` also turns journaling off: only for throwaway files).
    Other backends go through SQLAlchemy Core in batches. Either way the rows bypass
    :meth:`EventStore.insert`, so the rollup is rebuilt from ``invocations`` in the same transaction.
    """
    store.create()
    batches = iter_rows(n, months=months, tools=tools, users=users, seed=seed)
    path = _sqlite_path(store.url)
    if path is not None:
        store.dispose()
        return _load_sqlite(path, batches, n, progress, fast)
    done = 0
    statement: Any = invocations.insert()
    if store.engine.dialect.name == "postgresql":
        statement = postgresql.insert(invocations).on_conflict_do_nothing(index_elements=["event_id"])
    with store.engine.begin() as conn:
        for batch in batches:
            conn.execute(statement, [dict(zip(ROW_COLUMNS, row, strict=True)) for row in batch])
            done += len(batch)
            if progress is not None:
                progress(done, n)
        conn.execute(invocation_rollup.delete())
        conn.execute(rollup_rebuild())
    return done


def bench_cache_dir() -> Path:
    """Where benchmark databases are cached (``$XDG_CACHE_HOME/fleetdeck/bench``), outside the repo."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleetdeck" / "bench"


def _cached_version(path: Path) -> int | None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def ensure_bench_database(
    n: int = 10_000_000,
    *,
    path: Path | None = None,
    months: int = 12,
    users: int = 5_000,
    seed: int = 20_250_101,
    rebuild: bool = False,
    progress: LoadProgress | None = None,
) -> Path:
    """A SQLite file holding ``n`` generated events, built once and reused while its schema matches.

    The file carries :func:`schema_fingerprint` mixed with the generation parameters in
    ``PRAGMA user_version``; a mismatch (schema, index or generator changed) rebuilds it.
    """
    target = path or bench_cache_dir() / f"report-{_short_count(n)}.db"
    version = zlib.crc32(f"{schema_fingerprint()}|{n}|{months}|{users}|{seed}".encode()) & 0x7FFFFFFF
    if not rebuild and target.exists() and _cached_version(target) == version:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.building")
    scratch.unlink(missing_ok=True)
    try:
        store = EventStore(f"sqlite:///{scratch}")
        metadata.create_all(store.engine)
        store.dispose()
        for suffix in ("-wal", "-shm"):
            Path(f"{scratch}{suffix}").unlink(missing_ok=True)
        bulk_load(store, n, months=months, users=users, seed=seed, progress=progress, fast=True)
        conn = sqlite3.connect(scratch, isolation_level=None)
        try:
            conn.execute(f"PRAGMA user_version={version}")
        finally:
            conn.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        scratch.replace(target)
    finally:
        scratch.unlink(missing_ok=True)
    return target


def _short_count(n: int) -> str:
    for unit, size in (("m", 1_000_000), ("k", 1_000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)

"""The embedded backend: the DuckDB demo warehouse, running Trino SQL translated by sqlglot.

DuckDB has no users: the server's group scopes are the only access control here, so this backend
is for local development and demos. Statements DuckDB cannot express (most of the SHOW family,
EXPLAIN types other than logical/distributed) fail with a clear error instead of a wrong answer.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from fleetdeck.errors import BackendError, BackendUnavailableError, InvalidInputError, NotFoundError
from fleetdeck_presto.backend import (
    ColumnInfo,
    PlanType,
    QueryCancelledError,
    QueryContext,
    TableDescription,
    TableInfo,
    run_bounded,
)
from fleetdeck_presto.demo_warehouse import ensure_demo_warehouse
from fleetdeck_presto.guard import CheckedStatement
from fleetdeck_presto.results import Collector, Column, QueryResult

HIDDEN_SCHEMAS = ("pg_catalog", "main", "information_schema")
FETCH_BATCH = 500
_LIKE = re.compile(r"\bLIKE\s+('(?:[^']|'')*')", re.IGNORECASE)


def _literal(value: str) -> str:
    return exp.Literal.string(value).sql(dialect="duckdb")


class DuckDBBackend:
    """The embedded demo warehouse: one DuckDB file, opened read-only, created on first use."""

    name = "duckdb"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._conn is None:
                try:
                    ensure_demo_warehouse(self._path)
                    self._conn = duckdb.connect(str(self._path), read_only=True)
                except (duckdb.Error, OSError) as exc:
                    raise BackendUnavailableError(
                        f"the demo warehouse cannot be opened: {type(exc).__name__}"
                    ) from exc
            return self._conn.cursor()

    def _rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        cursor = self._cursor()
        try:
            return cursor.execute(sql, list(params)).fetchall()
        except duckdb.Error as exc:
            raise BackendError(f"the demo warehouse failed: {type(exc).__name__}") from exc
        finally:
            cursor.close()

    async def check(self) -> None:
        await anyio.to_thread.run_sync(self._rows, "SELECT 1")

    async def list_catalogs(self, ctx: QueryContext) -> list[str]:
        rows = await anyio.to_thread.run_sync(
            self._rows, "SELECT database_name FROM duckdb_databases() WHERE NOT internal ORDER BY 1"
        )
        return [str(row[0]) for row in rows]

    async def _require_catalog(self, ctx: QueryContext, catalog: str) -> None:
        catalogs = await self.list_catalogs(ctx)
        if catalog not in catalogs:
            raise NotFoundError(f"catalog {catalog!r} does not exist; catalogs: {', '.join(catalogs)}")

    async def list_schemas(self, ctx: QueryContext, catalog: str) -> list[str]:
        await self._require_catalog(ctx, catalog)
        rows = await anyio.to_thread.run_sync(
            self._rows,
            "SELECT DISTINCT schema_name FROM information_schema.schemata"
            " WHERE catalog_name = ? AND schema_name NOT IN (?, ?, ?) ORDER BY 1",
            catalog,
            *HIDDEN_SCHEMAS,
        )
        return [str(row[0]) for row in rows]

    async def list_tables(
        self, ctx: QueryContext, catalog: str, schema: str, pattern: str | None
    ) -> list[TableInfo]:
        await self._require_catalog(ctx, catalog)
        rows = await anyio.to_thread.run_sync(
            self._rows,
            "SELECT t.table_name, t.table_type, d.comment FROM information_schema.tables t"
            " LEFT JOIN duckdb_tables() d ON d.database_name = t.table_catalog"
            " AND d.schema_name = t.table_schema AND d.table_name = t.table_name"
            " WHERE t.table_catalog = ? AND t.table_schema = ? AND t.table_name LIKE ? ORDER BY 1",
            catalog,
            schema,
            pattern or "%",
        )
        return [TableInfo(name=str(r[0]), kind=str(r[1]), comment=r[2]) for r in rows]

    async def describe_table(
        self, ctx: QueryContext, catalog: str, schema: str, table: str
    ) -> TableDescription:
        rows = await anyio.to_thread.run_sync(
            self._rows,
            "SELECT column_name, data_type, is_nullable, comment FROM duckdb_columns()"
            " WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
            catalog,
            schema,
            table,
        )
        if not rows:
            raise NotFoundError(f"table {catalog}.{schema}.{table} does not exist (or you cannot see it)")
        comment = await anyio.to_thread.run_sync(
            self._rows,
            "SELECT comment FROM duckdb_tables()"
            " WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            catalog,
            schema,
            table,
        )
        columns = [
            ColumnInfo(name=r[0], type=str(r[1]).lower(), nullable=bool(r[2]), comment=r[3]) for r in rows
        ]
        return TableDescription(
            catalog=catalog,
            schema_name=schema,
            table=table,
            comment=comment[0][0] if comment else None,
            columns=columns,
        )

    def translate(self, statement: CheckedStatement) -> str:
        """The DuckDB text for a guarded Trino statement; InvalidInputError when DuckDB cannot express it."""
        if statement.kind == "show":
            return self._show(statement)
        if statement.tree is None:
            raise InvalidInputError("DuckDB cannot run this statement")
        try:
            if statement.kind == "describe":
                target = statement.tree.this
                return f"DESCRIBE {target.sql(dialect='duckdb')}"
            return statement.tree.sql(dialect="duckdb", unsupported_level=sqlglot.ErrorLevel.RAISE)
        except SqlglotError as exc:
            raise InvalidInputError(
                f"the embedded DuckDB backend cannot express this Trino SQL: {exc.__class__.__name__}"
            ) from exc

    @staticmethod
    def _show(statement: CheckedStatement) -> str:
        form = statement.show.split()[0].upper()
        like = _LIKE.search(statement.show)
        ref = statement.refs[0] if statement.refs else None
        if form == "CATALOGS":
            where = f" AND database_name LIKE {like.group(1)}" if like else ""
            sql = 'SELECT database_name AS "Catalog" FROM duckdb_databases() WHERE NOT internal'
            return f"{sql}{where} ORDER BY 1"
        if form == "SCHEMAS":
            catalog = f" AND catalog_name = {_literal(ref.catalog)}" if ref and ref.catalog else ""
            where = f" AND schema_name LIKE {like.group(1)}" if like else ""
            return (
                'SELECT DISTINCT schema_name AS "Schema" FROM information_schema.schemata'  # noqa: S608
                " WHERE schema_name NOT IN ('pg_catalog', 'main', 'information_schema')"
                f"{catalog}{where} ORDER BY 1"
            )
        if form == "TABLES":
            conds = [f"table_schema = {_literal(ref.schema)}"] if ref and ref.schema else []
            conds += [f"table_catalog = {_literal(ref.catalog)}"] if ref and ref.catalog else []
            conds += [f"table_name LIKE {like.group(1)}"] if like else []
            where = " WHERE " + " AND ".join(conds) if conds else ""
            return f'SELECT table_name AS "Table" FROM information_schema.tables{where} ORDER BY 1'  # noqa: S608
        if form == "COLUMNS" and ref and ref.table:
            name = ".".join(p for p in (ref.catalog, ref.schema, ref.table) if p)
            return f"DESCRIBE {name}"
        raise InvalidInputError(
            f"the embedded DuckDB backend cannot run SHOW {form}; it supports SHOW CATALOGS, SCHEMAS, "
            "TABLES and COLUMNS (query information_schema for the rest)"
        )

    def _execute(self, sql: str, ctx: QueryContext, abort: threading.Event, cursor: Any) -> QueryResult:
        started = time.perf_counter()
        collector = Collector(ctx.max_rows, ctx.max_bytes)
        try:
            if abort.is_set():
                raise duckdb.InterruptException("cancelled before it started")
            cursor.execute(sql)
            columns = [Column(name=d[0], type=str(d[1]).lower()) for d in cursor.description or []]
            while not abort.is_set():
                batch = cursor.fetchmany(FETCH_BATCH)
                if not batch or not all(collector.add(row) for row in batch):
                    break
        except duckdb.InterruptException as exc:
            raise QueryCancelledError("the query was cancelled") from exc
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
            raise InvalidInputError(f"DuckDB refused the query: {str(exc).splitlines()[0][:300]}") from exc
        except duckdb.Error as exc:
            raise BackendError(
                f"DuckDB failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            ) from exc
        finally:
            cursor.close()
        if ctx.handle is not None:
            ctx.handle.update({"state": "FINISHED", "processedRows": len(collector.rows)})
        query_id = ctx.handle.query_id if ctx.handle else None
        return collector.result(query_id, columns, (time.perf_counter() - started) * 1000)

    async def run(self, statement: CheckedStatement, ctx: QueryContext) -> QueryResult:
        sql = self.translate(statement)
        if statement.kind == "explain":
            sql = f"EXPLAIN {sql}"
        cursor = await anyio.to_thread.run_sync(self._cursor)
        if ctx.handle is not None:
            ctx.handle.update({"state": "RUNNING"})

        def interrupt() -> None:
            with contextlib.suppress(duckdb.Error):  # already closed: nothing left to stop
                cursor.interrupt()

        return await run_bounded(lambda abort: self._execute(sql, ctx, abort, cursor), ctx, interrupt)

    async def explain(self, statement: CheckedStatement, ctx: QueryContext, plan_type: PlanType) -> str:
        if plan_type not in ("logical", "distributed"):
            raise InvalidInputError(f"the embedded DuckDB backend has no {plan_type} plan; use logical")
        sql = "EXPLAIN " + self.translate(statement)
        rows = await anyio.to_thread.run_sync(self._rows, sql)
        return "\n".join(str(r[-1]) for r in rows)

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the connection (tests and shutdown), waiting for interrupted queries to unwind."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._conn is not None:
                try:
                    self._conn.close()
                    self._conn = None
                except duckdb.Error:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # a cancelled query's thread is still unwinding

"""The warehouse backend: a Protocol and its implementations (the only module importing a driver)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import anyio
import duckdb

from fleetdeck.errors import BackendUnavailableError, NotFoundError
from fleetdeck_presto.demo_warehouse import ensure_demo_warehouse

HIDDEN_SCHEMAS = ("pg_catalog", "main")


class WarehouseBackend(Protocol):
    """What the tools need from a SQL engine."""

    async def check(self) -> None:
        """Return when the engine answers; raise a BackendError otherwise."""

    async def list_catalogs(self) -> list[str]:
        """Catalog names, sorted."""

    async def list_schemas(self, catalog: str) -> list[str]:
        """Schema names of ``catalog``, sorted; NotFoundError when the catalog does not exist."""


class DuckDBBackend:
    """The embedded demo warehouse: one DuckDB file, opened read-only, created on first use."""

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

    def _rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        cursor = self._cursor()
        try:
            return cursor.execute(sql, list(params)).fetchall()
        except duckdb.Error as exc:
            raise BackendUnavailableError(f"the demo warehouse failed: {type(exc).__name__}") from exc
        finally:
            cursor.close()

    async def check(self) -> None:
        await anyio.to_thread.run_sync(self._rows, "SELECT 1")

    async def list_catalogs(self) -> list[str]:
        rows = await anyio.to_thread.run_sync(
            self._rows, "SELECT database_name FROM duckdb_databases() WHERE NOT internal ORDER BY 1"
        )
        return [str(row[0]) for row in rows]

    async def list_schemas(self, catalog: str) -> list[str]:
        catalogs = await self.list_catalogs()
        if catalog not in catalogs:
            raise NotFoundError(f"catalog {catalog!r} does not exist; catalogs: {', '.join(catalogs)}")
        rows = await anyio.to_thread.run_sync(
            self._rows,
            "SELECT DISTINCT schema_name FROM information_schema.schemata"
            " WHERE catalog_name = ? AND schema_name NOT IN (?, ?) ORDER BY 1",
            catalog,
            *HIDDEN_SCHEMAS,
        )
        return [str(row[0]) for row in rows]

    def close(self) -> None:
        """Close the connection (tests and shutdown)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

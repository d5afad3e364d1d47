"""The production backend: Trino through the ``trino`` client, every query run AS the end user.

The server authenticates with its own credentials (none, basic, JWT or a client certificate from
settings) and sends the end user's mapped name as the Trino user, so Trino's access control decides
what that person may read and Trino's query list shows who asked. The end user's token is never
forwarded. Each query gets a fresh client session and HTTP session (the client keeps session state
on the connection, which must never be shared between users), ``X-Trino-Source`` and client tags
(server, tool, trace id). Rows are streamed: fetching stops at the caps and the engine query is
cancelled, so memory stays bounded however many rows the query would return.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from typing import Any

import requests
import trino
from sqlglot import exp
from trino.auth import Authentication, BasicAuthentication, CertificateAuthentication, JWTAuthentication
from trino.client import ClientSession, TrinoQuery, TrinoRequest

from fleetdeck.errors import (
    AccessDeniedError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
)
from fleetdeck_presto.backend import (
    ColumnInfo,
    PlanType,
    QueryCancelledError,
    QueryContext,
    TableDescription,
    TableInfo,
    run_bounded,
)
from fleetdeck_presto.guard import CheckedStatement
from fleetdeck_presto.results import Collector, Column, QueryResult
from fleetdeck_presto.settings import TrinoSettings

METADATA_LIMIT = 10_000
_PARTITIONS = re.compile(r"\b(?:partitioned_by|partitioning)\s*=\s*ARRAY\[([^\]]*)\]", re.IGNORECASE)
_TAG = re.compile(r"[^A-Za-z0-9_.:=-]")


def _string(value: str) -> str:
    return exp.Literal.string(value).sql(dialect="trino")


def _ident(*parts: str) -> str:
    return ".".join(exp.to_identifier(p, quoted=True).sql(dialect="trino") for p in parts)


def _map_error(exc: Exception) -> Exception:
    """A driver error as a Fleetdeck error (the caller raises it ``from exc``)."""
    if isinstance(exc, trino.exceptions.TrinoQueryError):
        name, message = exc.error_name or "", (exc.message or "")[:500]
        if name == "PERMISSION_DENIED":
            return AccessDeniedError(f"Trino refused: {message}")
        if name == "USER_CANCELED":
            return QueryCancelledError(f"the query was cancelled on the engine ({exc.query_id})")
        if name in {"EXCEEDED_TIME_LIMIT", "EXCEEDED_CPU_LIMIT"}:
            return BackendTimeoutError(f"Trino stopped the query: {message}")
        if name in {"NO_NODES_AVAILABLE", "SERVER_STARTING_UP", "SERVER_SHUTTING_DOWN"}:
            return BackendUnavailableError(f"Trino cannot run queries right now ({name})")
        if name in {"TABLE_NOT_FOUND", "SCHEMA_NOT_FOUND", "CATALOG_NOT_FOUND"}:
            return NotFoundError(f"{name}: {message}")
        if exc.error_type == "USER_ERROR":
            return InvalidInputError(f"Trino rejected the query ({name}): {message}")
        return BackendError(f"Trino failed ({exc.error_type} {name}): {message}")
    if isinstance(exc, trino.exceptions.TrinoAuthError):
        return BackendUnavailableError("Trino refused the server's credentials")
    return BackendUnavailableError(f"Trino is unreachable: {type(exc).__name__}")


DRIVER_ERRORS = (trino.exceptions.Error, trino.exceptions.HttpError, requests.RequestException, OSError)


class TrinoBackend:
    """Trino over HTTP, as the end user, with a fresh session per query."""

    name = "trino"

    def __init__(self, settings: TrinoSettings) -> None:
        self.settings = settings
        self._auth = self._authentication()

    def _authentication(self) -> Authentication | None:
        auth = self.settings.auth
        if auth.method == "none":
            return None
        if self.settings.http_scheme != "https":
            raise ConfigError("setting presto.trino.http_scheme must be https when presto.trino.auth is used")
        if auth.method == "basic":
            if not auth.user or auth.password is None:
                raise ConfigError("setting presto.trino.auth: basic needs user and password")
            return BasicAuthentication(auth.user, auth.password.get_secret_value())
        if auth.method == "jwt":
            if auth.token is None:
                raise ConfigError("setting presto.trino.auth.token is required for jwt")
            return JWTAuthentication(auth.token.get_secret_value())
        if auth.client_cert is None or auth.client_key is None:
            raise ConfigError("setting presto.trino.auth: certificate needs client_cert and client_key")
        return CertificateAuthentication(str(auth.client_cert), str(auth.client_key))

    def _request(self, ctx: QueryContext) -> TrinoRequest:
        tags = ["server=presto", f"tool={ctx.tool}"] + ([f"trace={ctx.trace_id}"] if ctx.trace_id else [])
        properties = {}
        if self.settings.engine_timeout:
            properties["query_max_run_time"] = f"{max(1, math.ceil(ctx.timeout_s))}s"
        session = ClientSession(
            user=ctx.user,
            catalog=ctx.default_catalog or self.settings.catalog,
            schema=self.settings.default_schema,
            source=self.settings.source,
            client_tags=[_TAG.sub("_", t) for t in tags],
            properties=properties,
            timezone="UTC",
        )
        verify = self.settings.verify
        return TrinoRequest(
            host=self.settings.host,
            port=self.settings.port,
            client_session=session,
            http_session=requests.Session(),
            http_scheme=self.settings.http_scheme,
            auth=self._auth,
            max_attempts=1,
            request_timeout=self.settings.request_timeout_s,
            verify=str(verify) if not isinstance(verify, bool) else verify,  # type: ignore[arg-type]
        )

    def _execute(self, sql: str, ctx: QueryContext, abort: threading.Event, query: TrinoQuery) -> QueryResult:
        started = time.perf_counter()
        collector = Collector(ctx.max_rows, ctx.max_bytes)
        try:
            result = query.execute()
            for row in result:
                if abort.is_set() or not collector.add(row):
                    break
            columns = [Column(name=c["name"], type=c["type"]) for c in (query.columns or [])]
            if not query.finished:
                query.cancel()  # stop the engine work at the cap
        except DRIVER_ERRORS as exc:
            if abort.is_set():
                raise QueryCancelledError("the query was cancelled on the engine") from exc
            raise _map_error(exc) from exc
        return collector.result(query.query_id, columns, (time.perf_counter() - started) * 1000)

    def _query(self, sql: str, ctx: QueryContext) -> TrinoQuery:
        callback = ctx.handle.update if ctx.handle is not None else None
        return TrinoQuery(self._request(ctx), query=sql, stats_callback=callback)

    async def _run_sql(self, sql: str, ctx: QueryContext) -> QueryResult:
        query = self._query(sql, ctx)

        def cancel() -> None:
            with contextlib.suppress(*DRIVER_ERRORS):  # finished or unreachable: query_max_run_time bounds it
                query.cancel()

        return await run_bounded(lambda abort: self._execute(sql, ctx, abort, query), ctx, cancel)

    async def _metadata(self, sql: str, ctx: QueryContext) -> list[list[Any]]:
        meta = QueryContext(
            user=ctx.user,
            owner=ctx.owner,
            tool=ctx.tool,
            trace_id=ctx.trace_id,
            max_rows=METADATA_LIMIT,
            max_bytes=8 * 1024 * 1024,
            timeout_s=ctx.timeout_s,
            default_catalog=ctx.default_catalog,
        )
        return (await self._run_sql(sql, meta)).rows

    async def check(self) -> None:
        ctx = QueryContext(user=self.settings.auth.user or "fleetdeck", owner="readiness", tool="readyz")
        ctx.timeout_s = 5.0
        await self._metadata("SELECT 1", ctx)

    async def list_catalogs(self, ctx: QueryContext) -> list[str]:
        return sorted(str(r[0]) for r in await self._metadata("SHOW CATALOGS", ctx))

    async def list_schemas(self, ctx: QueryContext, catalog: str) -> list[str]:
        catalogs = await self.list_catalogs(ctx)
        if catalog not in catalogs:
            raise NotFoundError(f"catalog {catalog!r} does not exist; catalogs: {', '.join(catalogs)}")
        rows = await self._metadata(f"SHOW SCHEMAS FROM {_ident(catalog)}", ctx)
        return sorted(str(r[0]) for r in rows if r[0] != "information_schema")

    async def list_tables(
        self, ctx: QueryContext, catalog: str, schema: str, pattern: str | None
    ) -> list[TableInfo]:
        sql = (
            "SELECT t.table_name, t.table_type, c.comment"  # noqa: S608 - identifiers quoted, literals escaped
            f" FROM {_ident(catalog, 'information_schema', 'tables')} t"
            " LEFT JOIN system.metadata.table_comments c ON c.catalog_name = t.table_catalog"
            " AND c.schema_name = t.table_schema AND c.table_name = t.table_name"
            f" WHERE t.table_schema = {_string(schema)} AND t.table_name LIKE {_string(pattern or '%')}"
            " ORDER BY 1"
        )
        rows = await self._metadata(sql, ctx)
        return [TableInfo(name=str(r[0]), kind=str(r[1]), comment=r[2]) for r in rows]

    async def describe_table(
        self, ctx: QueryContext, catalog: str, schema: str, table: str
    ) -> TableDescription:
        rows = await self._metadata(f"SHOW COLUMNS FROM {_ident(catalog, schema, table)}", ctx)
        columns = [ColumnInfo(name=r[0], type=r[1], comment=r[3] or None) for r in rows]
        comment = await self._metadata(
            "SELECT comment FROM system.metadata.table_comments WHERE catalog_name = "  # noqa: S608
            f"{_string(catalog)} AND schema_name = {_string(schema)} AND table_name = {_string(table)}",
            ctx,
        )
        partitions: list[str] = []
        try:
            create = await self._metadata(f"SHOW CREATE TABLE {_ident(catalog, schema, table)}", ctx)
            match = _PARTITIONS.search(str(create[0][0])) if create else None
            if match:
                partitions = [p.strip().strip("'") for p in match.group(1).split(",") if p.strip()]
        except (InvalidInputError, AccessDeniedError):
            pass  # not every connector or user can see the DDL; partitioning is then unknown
        return TableDescription(
            catalog=catalog,
            schema_name=schema,
            table=table,
            comment=comment[0][0] if comment and comment[0][0] else None,
            columns=columns,
            partitioned_by=partitions,
        )

    async def run(self, statement: CheckedStatement, ctx: QueryContext) -> QueryResult:
        return await self._run_sql(statement.sql, ctx)

    async def explain(self, statement: CheckedStatement, ctx: QueryContext, plan_type: PlanType) -> str:
        rows = await self._metadata(f"EXPLAIN (TYPE {plan_type.upper()}) {statement.sql}", ctx)
        return "\n".join(str(r[0]) for r in rows)

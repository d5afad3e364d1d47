"""Browsing tools: which catalogs, schemas and tables exist, what a table holds, a few of its rows."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from fleetdeck.auth.policy import authorize_tool
from fleetdeck.errors import NotFoundError
from fleetdeck.server import FleetServer
from fleetdeck_presto.backend import TableDescription, TableInfo
from fleetdeck_presto.guard import ObjectRef
from fleetdeck_presto.results import QueryResult
from fleetdeck_presto.tools.runtime import Identifier, ToolRuntime


class CatalogList(BaseModel):
    """The catalogs the caller can browse."""

    catalogs: list[str]


class SchemaList(BaseModel):
    """The schemas of one catalog."""

    catalog: str
    schemas: list[str]


class TableList(BaseModel):
    """The tables of one schema (filtered by name when asked)."""

    catalog: str
    schema_name: str
    tables: list[TableInfo]


def register(server: FleetServer, runtime: ToolRuntime) -> None:
    """Add the browsing tools to ``server``."""
    backend = runtime.backend
    groups = runtime.browse_groups

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(groups=groups)
    async def list_catalogs() -> CatalogList:
        """List the catalogs of the warehouse you can query.

        Start here to find where data lives; then call list_schemas on a catalog. Shows only catalogs
        the engine lets you see and your groups may use through this server.
        """
        catalogs = await backend.list_catalogs(runtime.context("list_catalogs"))
        return CatalogList(catalogs=[c for c in catalogs if runtime.allows(c)])

    @server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(groups=groups)
    async def list_schemas(catalog: Identifier) -> SchemaList:
        """List the schemas in one catalog.

        Fails with the list of valid catalogs when the catalog does not exist.
        """
        runtime.require([ObjectRef(catalog)])
        schemas = await backend.list_schemas(runtime.context("list_schemas"), catalog)
        return SchemaList(catalog=catalog, schemas=[s for s in schemas if runtime.allows(catalog, s)])

    @server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(groups=groups)
    async def list_tables(
        catalog: Identifier,
        schema: Identifier,
        name_filter: Annotated[
            str | None,
            Field(max_length=128, description="SQL LIKE pattern on the table name, e.g. '%order%'."),
        ] = None,
    ) -> TableList:
        """List the tables and views in one schema, with their comments.

        Narrow long lists with name_filter (a LIKE pattern: % any text, _ one character).
        """
        runtime.require([ObjectRef(catalog, schema)])
        tables = await backend.list_tables(runtime.context("list_tables"), catalog, schema, name_filter)
        return TableList(catalog=catalog, schema_name=schema, tables=tables)

    @server.tool(minutes_saved=3, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(groups=groups)
    async def describe_table(catalog: Identifier, schema: Identifier, table: Identifier) -> TableDescription:
        """Describe one table: its columns with types and comments, its comment and its partitioning.

        Partition columns are listed only where the engine exposes them. Call this before writing SQL.
        """
        runtime.require([ObjectRef(catalog, schema, table)])
        return await backend.describe_table(runtime.context("describe_table"), catalog, schema, table)

    @server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(groups=groups)
    async def sample_table(
        catalog: Identifier,
        schema: Identifier,
        table: Identifier,
        rows: Annotated[int, Field(ge=1, le=100, description="How many rows (capped by the server).")] = 10,
        ctx: Context[Any] | None = None,
    ) -> QueryResult:
        """Return a few rows of one table to see what its values look like.

        Rows are not random (the first ones the engine returns); the row and byte caps apply.
        Runs as you: tables you may not read are refused by the engine.
        """
        name = ".".join(f'"{p}"' for p in (catalog, schema, table))
        limit = min(rows, runtime.settings.limits.sample_rows)
        statement = runtime.guard.check(f"SELECT * FROM {name} LIMIT {limit}")  # noqa: S608
        runtime.require(statement.refs)
        query_ctx = runtime.context("sample_table", ctx, track=True, max_rows=limit)
        try:
            return await backend.run(statement, query_ctx)
        except NotFoundError as exc:
            raise NotFoundError(
                f"table {catalog}.{schema}.{table} does not exist (or you cannot see it)"
            ) from exc

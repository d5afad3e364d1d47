"""Query tools: run a read-only query, explain it, follow it, cancel it."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from fleetdeck.auth.policy import authorize_tool
from fleetdeck.errors import InvalidInputError
from fleetdeck.server import FleetServer
from fleetdeck_presto.backend import PlanType
from fleetdeck_presto.queries import QueryHandle, QueryState
from fleetdeck_presto.results import QueryResult
from fleetdeck_presto.tools.runtime import ToolRuntime

Sql = Annotated[str, Field(min_length=1, max_length=100_000, description="One Trino SQL statement.")]
QueryId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_]+$")]


class QueryPlan(BaseModel):
    """The engine's plan for a query (the query itself is not run)."""

    plan_type: PlanType
    plan: str


class QueryStatus(BaseModel):
    """Where one of your queries stands."""

    query_id: str
    state: QueryState
    tool: str
    engine_state: str | None = None
    progress_percent: float | None = None
    processed_rows: int | None = None
    elapsed_s: float


def _status(handle: QueryHandle) -> QueryStatus:
    stats = handle.stats
    rows = stats.get("processedRows")
    return QueryStatus(
        query_id=handle.query_id,
        state=handle.state,
        tool=handle.tool,
        engine_state=str(stats["state"]) if "state" in stats else None,
        progress_percent=handle.progress_percent,
        processed_rows=rows if isinstance(rows, int) else None,
        elapsed_s=round((handle.ended or time.time()) - handle.started, 3),
    )


def register(server: FleetServer, runtime: ToolRuntime) -> None:
    """Add the query tools to ``server``; run_query and explain_query only for ``query_groups``."""
    backend = runtime.backend
    groups = runtime.settings.query_groups

    @server.tool(minutes_saved=10, read_only=True, destructive=False, idempotent=False)
    @authorize_tool(groups=groups)
    async def run_query(
        sql: Sql,
        max_rows: Annotated[int | None, Field(ge=1, description="Fewer rows than the server cap.")] = None,
        ctx: Context[Any] | None = None,
    ) -> QueryResult:
        """Run one read-only Trino SQL query as you and return typed columns and rows.

        Allowed: SELECT/WITH/VALUES, SHOW, DESCRIBE, EXPLAIN (not ANALYZE); anything else is refused
        with the reason. Results stop at the row cap and byte cap (truncated=true; add LIMIT or
        aggregate); queries past the timeout are cancelled on the engine. Long queries report
        progress with their query id, which cancel_query accepts. The engine's access control
        applies to you.
        """
        statement = runtime.guard.check(sql)
        runtime.require(statement.refs)
        return await backend.run(statement, runtime.context("run_query", ctx, track=True, max_rows=max_rows))

    @server.tool(minutes_saved=5, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(groups=groups)
    async def explain_query(
        sql: Sql,
        plan_type: Literal["logical", "distributed", "io", "validate"] = "logical",
    ) -> QueryPlan:
        """Show the engine's plan for one read-only query without running it (never EXPLAIN ANALYZE).

        Use it to check joins, partition pruning and cost before running a large query. The same
        read-only guard and access control as run_query apply.
        """
        statement = runtime.guard.check(sql)
        if statement.kind != "query":
            raise InvalidInputError(
                "explain_query takes a query (SELECT/WITH/VALUES); send it without EXPLAIN"
            )
        runtime.require(statement.refs)
        plan = await backend.explain(statement, runtime.context("explain_query"), plan_type)
        return QueryPlan(plan_type=plan_type, plan=plan)

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(groups=runtime.browse_groups)
    async def get_query_status(query_id: QueryId) -> QueryStatus:
        """Report the state and progress of one of your queries started through this server.

        Only your own queries are visible; other ids answer not found.
        """
        return _status(runtime.tracker.find(runtime.owner(), query_id))

    @server.tool(minutes_saved=1, read_only=False, destructive=False, idempotent=True)
    @authorize_tool(groups=runtime.browse_groups)
    async def cancel_query(query_id: QueryId) -> QueryStatus:
        """Cancel one of your running queries on the engine; a finished query is left as it is.

        Only your own queries can be cancelled; other ids answer not found. The run_query call
        waiting for it ends with a cancelled error.
        """
        handle = runtime.tracker.cancel(runtime.owner(), query_id)
        return _status(handle)

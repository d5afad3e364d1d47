"""The warehouse backend Protocol, what tools hand it, and the one loop that runs a blocking query.

Implementations: :mod:`fleetdeck_presto.duckdb_backend` (embedded demo) and
:mod:`fleetdeck_presto.trino_backend` (production); each is the only module importing its driver.
:func:`run_bounded` gives both the same behaviour: a timeout that cancels the engine query, client
cancellation that cancels it too, progress reports while it runs, and one record per query in the
:class:`~fleetdeck_presto.queries.QueryTracker`.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import anyio
import anyio.abc
from pydantic import BaseModel, Field

from fleetdeck.errors import BackendError, BackendTimeoutError, Outcome
from fleetdeck_presto.guard import CheckedStatement
from fleetdeck_presto.queries import QueryHandle
from fleetdeck_presto.results import QueryResult

T = TypeVar("T")
ProgressSink = Callable[[float, float | None, str], Awaitable[None]]
PlanType = Literal["logical", "distributed", "io", "validate"]


class QueryCancelledError(BackendError):
    """The query was cancelled (by the caller, cancel_query or a disconnect) and stopped on the engine."""

    outcome = Outcome.CANCELLED
    http_status = 499


@dataclass
class QueryContext:
    """Who runs a query, for which tool, within which bounds."""

    user: str
    """The engine user (the end user's mapped name); never a token."""
    owner: str
    """The verified principal's subject: whose query this is for get_query_status / cancel_query."""
    tool: str
    trace_id: str | None = None
    max_rows: int = 1000
    max_bytes: int = 262_144
    timeout_s: float = 60.0
    progress: ProgressSink | None = None
    progress_interval_s: float = 1.0
    default_catalog: str | None = None
    handle: QueryHandle | None = field(default=None, repr=False)


class TableInfo(BaseModel):
    """One table or view of a schema."""

    name: str
    kind: str = Field(description="BASE TABLE, VIEW, …")
    comment: str | None = None


class ColumnInfo(BaseModel):
    """One column of a table."""

    name: str
    type: str
    nullable: bool | None = None
    comment: str | None = None


class TableDescription(BaseModel):
    """A table's columns, comment and partitioning (when the engine knows it)."""

    catalog: str
    schema_name: str
    table: str
    comment: str | None = None
    columns: list[ColumnInfo]
    partitioned_by: list[str] = Field(default_factory=list)


class WarehouseBackend(Protocol):
    """What the tools need from a SQL engine. Every call runs as ``ctx.user``."""

    name: str

    async def check(self) -> None:
        """Return when the engine answers; raise a BackendError otherwise."""

    async def list_catalogs(self, ctx: QueryContext) -> list[str]:
        """Catalog names the user can see, sorted."""

    async def list_schemas(self, ctx: QueryContext, catalog: str) -> list[str]:
        """Schema names of ``catalog``, sorted; NotFoundError when the catalog does not exist."""

    async def list_tables(
        self, ctx: QueryContext, catalog: str, schema: str, pattern: str | None
    ) -> list[TableInfo]:
        """Tables of ``catalog.schema`` whose name matches the SQL LIKE ``pattern`` (all when None)."""

    async def describe_table(
        self, ctx: QueryContext, catalog: str, schema: str, table: str
    ) -> TableDescription:
        """Columns, types and comments of one table; NotFoundError when it does not exist."""

    async def run(self, statement: CheckedStatement, ctx: QueryContext) -> QueryResult:
        """Run a guarded statement, stopping at the caps (``truncated``) and the timeout."""

    async def explain(self, statement: CheckedStatement, ctx: QueryContext, plan_type: PlanType) -> str:
        """The plan of a guarded query, as text (never EXPLAIN ANALYZE)."""


async def run_bounded(
    work: Callable[[threading.Event], T],
    ctx: QueryContext,
    cancel_engine: Callable[[], None],
) -> T:
    """Run blocking ``work`` in a thread under ``ctx``'s timeout; cancel the engine query when it ends early.

    ``work`` must return soon after its ``threading.Event`` is set or the engine query is cancelled.
    ``cancel_engine`` must be safe to call from any thread and more than once.
    """
    abort = threading.Event()
    handle = ctx.handle

    def stop() -> None:
        abort.set()
        cancel_engine()

    if handle is not None:
        handle.canceller = stop

    async def report() -> None:
        if ctx.progress is None or handle is None:
            return
        last = ""
        while True:
            await anyio.sleep(ctx.progress_interval_s)
            message = handle.describe()
            if message != last:
                last = message
                await ctx.progress(handle.progress_percent or 0.0, 100.0, message)

    outcome: list[T] = []
    failure: list[Exception] = []

    async def execute(tasks: anyio.abc.TaskGroup) -> None:
        try:
            outcome.append(await anyio.to_thread.run_sync(work, abort, abandon_on_cancel=True))
        except Exception as exc:  # handed to the caller unwrapped (no exception group)  # noqa: BLE001 - re-raised to the caller unwrapped
            failure.append(exc)
        tasks.cancel_scope.cancel()

    try:
        with anyio.fail_after(ctx.timeout_s):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(report)
                await execute(tasks)
        if failure:
            raise failure[0]
    except TimeoutError as exc:
        await anyio.to_thread.run_sync(stop)
        if handle is not None:
            handle.finish("timed_out")
        raise BackendTimeoutError(
            f"the query ran past the {ctx.timeout_s:g} s timeout and was cancelled on the engine"
        ) from exc
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stop)
        if handle is not None:
            handle.finish("cancelled")
        raise
    except BaseException:
        if handle is not None:
            handle.finish("cancelled" if handle.cancel_requested else "failed")
        raise
    if handle is not None:
        if handle.cancel_requested:
            handle.finish("cancelled")
            raise QueryCancelledError("the query was cancelled with cancel_query")
        handle.finish("finished")
    return outcome[0]

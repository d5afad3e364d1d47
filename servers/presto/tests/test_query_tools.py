"""The tools' behaviour, the same on the embedded DuckDB warehouse and on a real Trino (``-m trino``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.principal import Principal, User
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_presto.backend import WarehouseBackend
from fleetdeck_presto.duckdb_backend import DuckDBBackend
from fleetdeck_presto.server import build_server
from fleetdeck_presto.settings import GroupScope, Limits, PrestoSettings, TrinoSettings
from fleetdeck_presto.trino_backend import TrinoBackend
from fleetdeck_testkit.trino import ANALYST, TrinoServer

MODES = ["auto", "legacy"]


@dataclass(frozen=True)
class Case:
    """One backend and the SQL that exercises the same behaviour on it."""

    name: str
    catalog: str
    schema: str
    table: str
    huge_query: str
    """A query that would return about 10 million rows."""
    slow_query: str
    """A query that runs for minutes."""


DUCKDB = Case(
    name="duckdb",
    catalog="warehouse",
    schema="ads",
    table="campaigns",
    huge_query="SELECT a.x * 10000 + b.x AS n, 'row' AS label FROM UNNEST(sequence(1, 10000)) AS a(x)"
    " CROSS JOIN UNNEST(sequence(1, 1000)) AS b(x)",
    slow_query="SELECT count(*) FROM UNNEST(sequence(1, 10000)) AS a(x) CROSS JOIN UNNEST(sequence(1, 10000))"
    " AS b(x) CROSS JOIN UNNEST(sequence(1, 10000)) AS c(x) WHERE a.x * b.x + c.x = -1",
)
TRINO = Case(
    name="trino",
    catalog="tpch",
    schema="tiny",
    table="nation",
    huge_query="SELECT l.orderkey AS n, l.comment AS label FROM tpch.sf10.lineitem l",
    slow_query="SELECT count(*) FROM tpch.sf1000.lineitem WHERE comment LIKE '%fleetdeck%'",
)


def user(subject: str, groups: tuple[str, ...] = ("data-infra",)) -> Principal:
    return Principal(
        user=User(subject=subject, issuer="test", proven_by="bearer-jwt", groups=frozenset(groups))
    )


ServerFactory = Callable[..., AbstractAsyncContextManager[FleetServer]]


def text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture(
    params=[pytest.param(DUCKDB, id="duckdb"), pytest.param(TRINO, id="trino", marks=pytest.mark.trino)]
)
def case(request: pytest.FixtureRequest) -> Case:
    value: Case = request.param
    return value


@pytest.fixture
def make_server(
    case: Case, settings: FleetdeckSettings, warehouse_file: Path, request: pytest.FixtureRequest
) -> ServerFactory:
    """Build a running server over the case's backend, as ``principal``, with settings overrides."""

    @asynccontextmanager
    async def factory(principal: Principal | None = None, **overrides: Any) -> AsyncIterator[FleetServer]:
        backend: WarehouseBackend
        if case.name == "trino":
            trino: TrinoServer = request.getfixturevalue("trino_server")
            overrides.setdefault("backend", "trino")
            overrides["trino"] = TrinoSettings(host=trino.host, port=trino.port)
            presto = PrestoSettings.load(**overrides)
            backend = TrinoBackend(presto.trino)
        else:
            presto = PrestoSettings.load(**overrides)
            backend = DuckDBBackend(warehouse_file)
        built = build_server(settings, presto, backend, identity=StaticIdentity(principal or user(ANALYST)))
        async with built.running():
            yield built
        if isinstance(backend, DuckDBBackend):
            backend.close()

    return factory


@pytest.mark.parametrize("mode", MODES)
async def test_run_query_returns_typed_columns_and_rows(
    case: Case, make_server: ServerFactory, mode: str
) -> None:
    sql = f"SELECT count(*) AS n FROM {case.catalog}.{case.schema}.{case.table}"
    async with make_server() as server, Client(server.mcp, mode=mode) as client:
        result = await client.call_tool("run_query", {"sql": sql})
    assert not result.is_error, text_of(result)
    data = result.structured_content or {}
    assert data["columns"][0]["name"] == "n"
    assert data["columns"][0]["type"] == "bigint"
    assert isinstance(data["rows"][0][0], int)
    assert data["rows"][0][0] > 0
    assert data["truncated"] is False
    assert data["query_id"]


async def test_browsing_walks_from_catalog_to_table(case: Case, make_server: ServerFactory) -> None:
    async with make_server() as server, Client(server.mcp) as client:
        catalogs = await client.call_tool("list_catalogs", {})
        schemas = await client.call_tool("list_schemas", {"catalog": case.catalog})
        tables = await client.call_tool(
            "list_tables",
            {"catalog": case.catalog, "schema": case.schema, "name_filter": case.table[:3] + "%"},
        )
        described = await client.call_tool(
            "describe_table", {"catalog": case.catalog, "schema": case.schema, "table": case.table}
        )
        sample = await client.call_tool(
            "sample_table", {"catalog": case.catalog, "schema": case.schema, "table": case.table, "rows": 3}
        )
    assert case.catalog in (catalogs.structured_content or {})["catalogs"]
    assert case.schema in (schemas.structured_content or {})["schemas"]
    assert case.table in [t["name"] for t in (tables.structured_content or {})["tables"]]
    columns = (described.structured_content or {})["columns"]
    assert columns
    assert all(c["type"] for c in columns)
    assert (sample.structured_content or {})["row_count"] == 3


async def test_the_row_cap_truncates_and_says_so(case: Case, make_server: ServerFactory) -> None:
    async with make_server(limits=Limits(max_rows=50)) as server, Client(server.mcp) as client:
        capped = await client.call_tool("run_query", {"sql": case.huge_query})
        asked = await client.call_tool("run_query", {"sql": case.huge_query, "max_rows": 7})
    data = capped.structured_content or {}
    assert (data["row_count"], data["truncated"], data["truncated_by"]) == (50, True, "row_cap")
    assert (asked.structured_content or {})["row_count"] == 7


async def test_the_byte_cap_truncates_before_the_row_cap(case: Case, make_server: ServerFactory) -> None:
    async with (
        make_server(limits=Limits(max_rows=10_000, max_bytes=2048)) as server,
        Client(server.mcp) as client,
    ):
        result = await client.call_tool("run_query", {"sql": case.huge_query})
    data = result.structured_content or {}
    assert data["truncated_by"] == "byte_cap"
    assert 0 < data["row_count"] < 10_000
    assert len(str(data["rows"])) < 4096


async def test_a_write_is_refused_with_the_reason(case: Case, make_server: ServerFactory) -> None:
    async with make_server() as server, Client(server.mcp) as client:
        result = await client.call_tool(
            "run_query", {"sql": f"DELETE FROM {case.catalog}.{case.schema}.{case.table}"}
        )
        analyze = await client.call_tool("explain_query", {"sql": "EXPLAIN ANALYZE SELECT 1"})
    assert result.is_error
    assert "(not-read-only)" in text_of(result)
    assert analyze.is_error
    assert "(explain-analyze)" in text_of(analyze)


async def test_explain_query_shows_a_plan_without_running(case: Case, make_server: ServerFactory) -> None:
    async with make_server() as server, Client(server.mcp) as client:
        result = await client.call_tool(
            "explain_query", {"sql": f"SELECT * FROM {case.catalog}.{case.schema}.{case.table}"}
        )
    assert not result.is_error, text_of(result)
    assert case.table in (result.structured_content or {})["plan"].lower()


async def test_a_query_past_the_timeout_is_cancelled(case: Case, make_server: ServerFactory) -> None:
    async with make_server(limits=Limits(timeout_s=2)) as server, Client(server.mcp) as client:
        with anyio.fail_after(60):
            result = await client.call_tool("run_query", {"sql": case.slow_query})
    assert result.is_error
    assert "timeout" in text_of(result) or "EXCEEDED_TIME_LIMIT" in text_of(result)


async def test_cancel_query_stops_your_running_query(case: Case, make_server: ServerFactory) -> None:
    ids: list[str] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        match = re.search(r"query (\S+):", message or "")
        if match and match.group(1) not in ids:
            ids.append(match.group(1))

    outcome: dict[str, Any] = {}
    limits = Limits(timeout_s=120, progress_interval_s=0.2)
    async with make_server(limits=limits) as server, Client(server.mcp) as client:

        async def run() -> None:
            outcome["result"] = await client.call_tool(
                "run_query", {"sql": case.slow_query}, progress_callback=progress
            )

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run)
                while not ids:
                    await anyio.sleep(0.05)
                async with make_server(principal=user("mallory")) as other, Client(other.mcp) as stranger:
                    denied = await stranger.call_tool("cancel_query", {"query_id": ids[-1]})
                cancelled = await client.call_tool("cancel_query", {"query_id": ids[-1]})
        status = await client.call_tool("get_query_status", {"query_id": ids[-1]})
    assert denied.is_error
    assert "no query" in text_of(denied)
    assert not cancelled.is_error, text_of(cancelled)
    assert outcome["result"].is_error
    assert "cancel" in text_of(outcome["result"]).lower()
    assert (status.structured_content or {})["state"] == "cancelled"


async def test_run_query_is_narrower_than_browsing(case: Case, make_server: ServerFactory) -> None:
    viewer = user("victor", groups=("ads",))
    async with (
        make_server(principal=viewer, query_groups=("data-infra",)) as server,
        Client(server.mcp) as client,
    ):
        listed = await client.call_tool("list_catalogs", {})
        denied = await client.call_tool("run_query", {"sql": "SELECT 1"})
        names = [t.name for t in (await client.list_tools()).tools]
    assert not listed.is_error
    assert denied.is_error
    assert "run_query" not in names
    assert "list_tables" in names


async def test_group_scopes_limit_catalogs(case: Case, make_server: ServerFactory) -> None:
    scoped = {"ads": GroupScope(catalogs=("nothing_here",))}
    ann = user("ann", groups=("ads",))
    async with make_server(principal=ann, scopes=scoped) as server, Client(server.mcp) as client:
        catalogs = await client.call_tool("list_catalogs", {})
        result = await client.call_tool(
            "run_query", {"sql": f"SELECT * FROM {case.catalog}.{case.schema}.{case.table}"}
        )
    assert (catalogs.structured_content or {})["catalogs"] == []
    assert result.is_error
    assert "may not read" in text_of(result)

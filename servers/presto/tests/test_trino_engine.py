"""Against a real Trino: the query runs as the end user, the engine enforces access, types map to JSON."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import trino
from mcp import Client
from mcp.types import CallToolResult, TextContent

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.principal import Principal, User
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_presto.server import build_server
from fleetdeck_presto.settings import Limits, PrestoSettings, TrinoSettings
from fleetdeck_presto.trino_backend import TrinoBackend
from fleetdeck_testkit.trino import ADMIN, ANALYST, RESTRICTED, TrinoServer

pytestmark = pytest.mark.trino


def text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def engine_rows(server: TrinoServer, sql: str) -> list[list[Any]]:
    """What the engine itself says, asked as the admin with the bare client."""
    with trino.dbapi.connect(host=server.host, port=server.port, user=ADMIN) as conn:  # type: ignore[no-untyped-call]
        cursor = conn.cursor()
        cursor.execute(sql)
        rows: list[list[Any]] = cursor.fetchall()
        return rows


def as_user(subject: str) -> StaticIdentity:
    groups = frozenset({"data-infra"})
    return StaticIdentity(
        Principal(user=User(subject=subject, issuer="test", proven_by="bearer-jwt", groups=groups))
    )


async def serve(
    settings: FleetdeckSettings, trino_server: TrinoServer, subject: str, **overrides: Any
) -> AsyncIterator[FleetServer]:
    presto = PrestoSettings.load(
        backend="trino", trino=TrinoSettings(host=trino_server.host, port=trino_server.port), **overrides
    )
    server = build_server(settings, presto, TrinoBackend(presto.trino), identity=as_user(subject))
    async with server.running():
        yield server


@pytest.fixture
async def alice(settings: FleetdeckSettings, trino_server: TrinoServer) -> AsyncIterator[FleetServer]:
    async for server in serve(settings, trino_server, ANALYST, limits=Limits(timeout_s=60)):
        yield server


@pytest.fixture
async def bob(settings: FleetdeckSettings, trino_server: TrinoServer) -> AsyncIterator[FleetServer]:
    async for server in serve(settings, trino_server, RESTRICTED):
        yield server


async def test_the_query_runs_as_the_end_user_with_source_and_tags(
    alice: FleetServer, trino_server: TrinoServer
) -> None:
    async with Client(alice.mcp) as client:
        result = await client.call_tool("run_query", {"sql": "SELECT count(*) FROM tpch.tiny.customer"})
    assert not result.is_error, text_of(result)
    query_id = (result.structured_content or {})["query_id"]
    rows = engine_rows(
        trino_server, f"SELECT user, source FROM system.runtime.queries WHERE query_id = '{query_id}'"
    )
    assert rows == [[ANALYST, "fleetdeck-presto"]]
    request = urllib.request.Request(
        f"{trino_server.url}/v1/query/{query_id}", headers={"X-Trino-User": ADMIN}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        session = json.loads(response.read())["session"]
    assert {"server=presto", "tool=run_query"} <= set(session["clientTags"])


async def test_the_engine_refuses_a_table_the_user_may_not_read_even_though_the_guard_allows_it(
    bob: FleetServer,
) -> None:
    async with Client(bob.mcp) as client:
        allowed = await client.call_tool("run_query", {"sql": "SELECT count(*) FROM tpch.tiny.nation"})
        refused = await client.call_tool("run_query", {"sql": "SELECT count(*) FROM tpch.tiny.customer"})
    assert not allowed.is_error, text_of(allowed)
    assert refused.is_error
    assert "Access Denied" in text_of(refused)
    assert "customer" in text_of(refused)


async def test_the_users_token_is_never_sent_to_the_engine(
    alice: FleetServer, trino_server: TrinoServer
) -> None:
    async with Client(alice.mcp) as client:
        result = await client.call_tool("run_query", {"sql": "SELECT current_user"})
    assert (result.structured_content or {})["rows"] == [[ANALYST]]


async def test_a_timed_out_query_is_killed_on_the_engine(
    settings: FleetdeckSettings, trino_server: TrinoServer
) -> None:
    sql = "SELECT count(*) FROM tpch.sf1000.lineitem WHERE comment LIKE '%timeout-probe%'"
    async for server in serve(settings, trino_server, ANALYST, limits=Limits(timeout_s=2)):
        async with Client(server.mcp) as client:
            result = await client.call_tool("run_query", {"sql": sql})
    assert result.is_error
    with anyio.fail_after(30):
        while True:
            states = engine_rows(
                trino_server,
                "SELECT state FROM system.runtime.queries WHERE query LIKE '%timeout-probe%'"
                " AND query NOT LIKE '%system.runtime%'",
            )
            if states and all(s[0] in ("FAILED", "FINISHED") for s in states):
                break
            await anyio.sleep(0.2)
    assert states[0][0] == "FAILED"


async def test_a_client_that_cancels_cancels_the_engine_query(
    alice: FleetServer, trino_server: TrinoServer
) -> None:
    sql = "SELECT count(*) FROM tpch.sf1000.lineitem WHERE comment LIKE '%disconnect-probe%'"
    probe = (
        "SELECT state FROM system.runtime.queries"
        " WHERE query LIKE '%disconnect-probe%' AND query NOT LIKE '%runtime%'"
    )
    async with Client(alice.mcp) as client:
        with anyio.move_on_after(60) as scope:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(client.call_tool, "run_query", {"sql": sql})
                while not engine_rows(trino_server, probe):
                    await anyio.sleep(0.2)
                tasks.cancel_scope.cancel()
        assert not scope.cancelled_caught
    with anyio.fail_after(30):
        while engine_rows(trino_server, probe)[0][0] not in ("FAILED", "FINISHED"):
            await anyio.sleep(0.2)
    assert engine_rows(trino_server, probe)[0][0] == "FAILED"


TYPES = {
    "boolean": ("true", True),
    "tinyint": ("TINYINT '7'", 7),
    "smallint": ("SMALLINT '300'", 300),
    "integer": ("42", 42),
    "bigint": ("BIGINT '9007199254740993'", 9007199254740993),
    "real": ("REAL '1.5'", 1.5),
    "double": ("DOUBLE 'NaN'", "nan"),
    "decimal(12,2)": ("DECIMAL '1234567890.12'", "1234567890.12"),
    "decimal(38,0)": (
        "DECIMAL '12345678901234567890123456789012345678'",
        "12345678901234567890123456789012345678",
    ),
    "varchar(5)": ("'héllo'", "héllo"),
    "char(3)": ("CAST('ab' AS CHAR(3))", "ab "),
    "varbinary": ("X'CAFE'", "yv4="),
    "json": ("JSON '{\"a\":1}'", '{"a":1}'),
    "date": ("DATE '2026-11-30'", "2026-11-30"),
    "time(3)": ("TIME '12:34:56.789'", "12:34:56.789000"),
    "timestamp(6)": ("TIMESTAMP '2026-11-30 12:34:56.123456'", "2026-11-30T12:34:56.123456"),
    "timestamp(3) with time zone": (
        "TIMESTAMP '2026-11-30 12:34:56.789 UTC'",
        "2026-11-30T12:34:56.789000+00:00",
    ),
    "interval day to second": ("INTERVAL '2' DAY + INTERVAL '1.5' SECOND", "P2DT1.5S"),
    "interval year to month": ("INTERVAL '3' MONTH", "P0Y3M"),
    "array(integer)": ("ARRAY[1, NULL, 3]", [1, None, 3]),
    "map(varchar(1), integer)": ("MAP(ARRAY['a'], ARRAY[1])", {"a": 1}),
    "row(x integer, y varchar(2))": ("CAST(ROW(1, 'yo') AS ROW(x integer, y varchar(2)))", [1, "yo"]),
    "uuid": ("UUID '12151fd2-7586-11e9-8f9e-2a86e4085a59'", "12151fd2-7586-11e9-8f9e-2a86e4085a59"),
    "ipaddress": ("IPADDRESS '10.0.0.1'", "10.0.0.1"),
    "null": ("NULL", None),
}


async def test_every_type_the_client_returns_maps_to_json(alice: FleetServer) -> None:
    select = ", ".join(f'{expr} AS "c{i}"' for i, (expr, _) in enumerate(TYPES.values()))
    async with Client(alice.mcp) as client:
        result = await client.call_tool("run_query", {"sql": f"SELECT {select}"})
    assert not result.is_error, text_of(result)
    data = result.structured_content or {}
    got = dict(zip(TYPES, data["rows"][0], strict=True))
    expected = {name: value for name, (_, value) in TYPES.items()}
    mismatched = {k: (got[k], expected[k]) for k in TYPES if got[k] != expected[k]}
    assert not mismatched
    types = [c["type"].replace(" ", "").lower() for c in data["columns"]]
    assert types[:-1] == [t.replace(" ", "") for t in TYPES][:-1]


async def test_get_query_status_reports_your_finished_query(alice: FleetServer, tmp_path: Path) -> None:
    async with Client(alice.mcp) as client:
        ran = await client.call_tool("run_query", {"sql": "SELECT 1"})
        status = await client.call_tool(
            "get_query_status", {"query_id": (ran.structured_content or {})["query_id"]}
        )
    assert (status.structured_content or {})["state"] == "finished"

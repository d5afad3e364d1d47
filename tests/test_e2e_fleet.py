"""End to end: real `fleetdeck` processes, real MCP clients over HTTP and stdio, the report after."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from fleetdeck.auth.dev_issuer import DevIssuer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.http import free_port

pytestmark = pytest.mark.e2e
START_TIMEOUT_S = 60.0


def fleetdeck(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleetdeck", *args]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLEETDECK_DATA_DIR": str(tmp_path),
        "FLEETDECK_TELEMETRY__FLUSH_INTERVAL_S": "0.05",
    }


def wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited during start-up"
        try:
            if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    pytest.fail(f"{base} did not become healthy in {START_TIMEOUT_S} s")


@pytest.fixture
def presto_http(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(fleetdeck("serve", "presto", "--port", str(port)), env=env, stderr=sink)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert "Application shutdown complete" in log.read_text(), "SIGTERM must shut down gracefully"


def report(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(fleetdeck("report", "--format", "json"), env=env, capture_output=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def test_serve_over_http_then_the_report_counts_the_call(
    presto_http: str, env: dict[str, str], tmp_path: Path
) -> None:
    async with Client(f"{presto_http}/mcp") as client:
        result = await client.call_tool("list_schemas", {"catalog": "warehouse"})
    assert result.structured_content is not None
    assert "finance" in result.structured_content["schemas"]
    ready = httpx2.get(f"{presto_http}/readyz", timeout=10)
    assert ready.json() == {"status": "ready"}

    month = wait_for_report(env)
    assert month["totals"]["invocations"] == 1
    (tool,) = month["by_tool"]
    assert (tool["server"], tool["tool"], tool["team"]) == ("presto", "list_schemas", "data-infra")
    assert tool["hours_saved"] == pytest.approx(2 / 60)
    (event,) = EventStore(f"sqlite:///{tmp_path / 'telemetry.db'}").events()
    assert event.trace_id is not None
    assert len(event.trace_id) == 32
    assert (event.client_name, event.protocol_version) == ("mcp", "2026-07-28")


def wait_for_report(env: dict[str, str]) -> dict[str, Any]:
    """The single month of the report, once the server's writer has committed the event."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        months = report(env)["months"]
        if months:
            (month,) = months
            return month  # type: ignore[no-any-return]
        time.sleep(0.1)
    pytest.fail("the call never reached the report")


async def test_serve_over_stdio(env: dict[str, str]) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "fleetdeck", "serve", "presto", "--transport", "stdio"], env=env
    )
    async with Client(params) as client:
        result = await client.call_tool("list_catalogs", {})
    assert result.structured_content == {"catalogs": ["warehouse"]}


TOKEN_LINE = re.compile(r"^eyJ[\w-]+\.[\w-]+\.[\w-]+$", re.MULTILINE)


async def test_fleet_up_prints_where_everything_is_and_stops_on_ctrl_c(
    env: dict[str, str], tmp_path: Path
) -> None:
    process = subprocess.Popen(
        fleetdeck("up", "--user", "carol", "--groups", "data-infra,finance"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    for line in process.stdout:
        seen.append(line)
        if "Press Ctrl-C" in line or time.monotonic() > deadline:
            break
    output = "".join(seen)
    try:
        assert "DEVELOPMENT IDENTITY" in output
        assert "http://127.0.0.1:8101/mcp" in output
        assert "http://127.0.0.1:8100/.well-known/jwks.json" in output
        assert '"mcpServers"' in output
        tokens = TOKEN_LINE.findall(output)
        assert tokens, f"no development token printed:\n{output}"
        token = tokens[0]
        assert f'"Authorization": "Bearer {token}"' in output
        assert httpx2.get("http://127.0.0.1:8101/healthz", timeout=5).status_code == 200
        await check_the_token_is_required("http://127.0.0.1:8101/mcp", token, tmp_path)
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "fleet stopped" in rest
    for port in (8100, 8101):  # the issuer stops with the servers
        with pytest.raises(httpx2.TransportError):
            httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


async def check_the_token_is_required(url: str, token: str, data_dir: Path) -> None:
    """The printed token works over MCP; no token, or one for another server, gets HTTP 401."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.call_tool("list_catalogs", {})
    assert result.structured_content == {"catalogs": ["warehouse"]}

    issuer = DevIssuer(FleetdeckSettings(data_dir=data_dir))  # the key `fleetdeck up` created
    elsewhere = issuer.mint("carol", ["data-infra"], audience=["http://127.0.0.1:9999/mcp"])
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=10) as http:
        for authorization in ({}, {"Authorization": f"Bearer {elsewhere}"}):
            refused = await http.post(url, json=request, headers={**headers, **authorization})
            assert refused.status_code == 401, refused.text
            assert "resource_metadata=" in refused.headers["www-authenticate"]

"""The kit over real Streamable HTTP: health routes, Host/Origin checks, size limits, both eras."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from fleetdeck.errors import BackendUnavailableError, InvalidInputError
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.http import free_port, serving
from fleetdeck_testkit.servers import DEMO_INFO, OPEN_ACCESS


class Backend:
    def __init__(self) -> None:
        self.up = True

    async def check(self) -> None:
        if not self.up:
            raise BackendUnavailableError("demo backend is down")


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
async def base_url(tmp_path: Path, backend: Backend) -> AsyncIterator[str]:
    port = free_port()
    settings = FleetdeckSettings.load(
        data_dir=tmp_path, http={"port": port, "max_argument_bytes": 1024, "max_request_bytes": 8192}
    )
    server = FleetServer(DEMO_INFO, settings, access=OPEN_ACCESS, readiness=backend.check)

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    async with serving(server.http_app(), port) as url:
        yield url


async def test_healthz_answers_without_touching_the_backend(base_url: str, backend: Backend) -> None:
    backend.up = False
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{base_url}/healthz")
    assert response.status_code == 200
    assert response.json()["server"] == "demo"


async def test_readyz_reports_the_backend_state(base_url: str, backend: Backend) -> None:
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{base_url}/readyz")).status_code == 200
        backend.up = False
        down = await http.get(f"{base_url}/readyz")
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable", "reason": "demo backend is down"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_work_over_http_on_both_protocol_eras(base_url: str, mode: str) -> None:
    async with Client(f"{base_url}/mcp", mode=mode) as client:
        result = await client.call_tool("echo", {"text": "hello"})
    assert result.structured_content == {"result": "hello"}


async def test_metrics_count_calls_by_tool_and_outcome(base_url: str) -> None:
    async with Client(f"{base_url}/mcp") as client:
        await client.call_tool("echo", {"text": "a"})
        await client.call_tool("echo", {"text": "b"})
    async with httpx2.AsyncClient() as http:
        body = (await http.get(f"{base_url}/metrics")).text
    assert 'fleetdeck_tool_calls_total{outcome="ok",server="demo",tool="echo"} 2.0' in body


async def test_foreign_host_header_is_refused(base_url: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{base_url}/mcp",
            headers={"Host": "evil.example", "Content-Type": "application/json"},
            content="{}",
        )
    assert response.status_code == 421


async def test_foreign_origin_is_refused(base_url: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{base_url}/mcp",
            headers={"Origin": "https://evil.example", "Content-Type": "application/json"},
            content="{}",
        )
    assert response.status_code == 403


async def test_oversized_request_body_is_refused(base_url: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{base_url}/mcp",
            headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
            content="x" * 20_000,
        )
    assert response.status_code == 413


async def test_oversized_arguments_get_a_tool_error_and_the_server_keeps_serving(base_url: str) -> None:
    async with Client(f"{base_url}/mcp") as client:
        refused = await client.call_tool("echo", {"text": "x" * 2000})
        fine = await client.call_tool("echo", {"text": "ok"})
    assert refused.is_error
    assert "the limit is 1024" in refused.content[0].text  # type: ignore[union-attr]
    assert fine.structured_content == {"result": "ok"}


async def test_tool_error_text_never_reaches_the_sdks_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = FleetdeckSettings.load(data_dir=tmp_path)
    server = FleetServer(DEMO_INFO, settings, access=OPEN_ACCESS)

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def lookup(customer: str) -> str:
        """Look a customer up."""
        raise InvalidInputError(f"no customer named {customer!r}")

    caplog.set_level(logging.INFO)
    async with server.running(), Client(server.mcp) as client:
        result = await client.call_tool("lookup", {"customer": "Jane Secret-Doe"})
    assert result.is_error
    assert "Jane Secret-Doe" in result.content[0].text  # type: ignore[union-attr]
    assert "Jane Secret-Doe" not in caplog.text
    assert "lookup" in caplog.text


async def test_a_stateless_server_logs_no_line_per_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    settings = FleetdeckSettings.load(data_dir=tmp_path, http={"port": port, "stateless": True})
    server = FleetServer(DEMO_INFO, settings, access=OPEN_ACCESS)

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    caplog.set_level(logging.INFO)
    async with serving(server.http_app(), port) as url, Client(f"{url}/mcp", mode="legacy") as client:
        for i in range(3):
            assert (await client.call_tool("echo", {"text": f"hi {i}"})).structured_content == {
                "result": f"hi {i}"
            }
    per_request = [r for r in caplog.records if r.name.startswith("mcp.server.streamable_http")]
    assert not [r for r in per_request if r.getMessage() == "Terminating session: None"]
    assert "StreamableHTTP session manager started" in caplog.text  # the SDK's other INFO lines stay

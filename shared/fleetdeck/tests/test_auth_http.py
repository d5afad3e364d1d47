"""The kit over real HTTP with a real issuer: tokens verified, users mapped, policy enforced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fleetdeck.auth.policy import AccessPolicy, authorize_tool
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.events import pseudonymise
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.http import free_port, serving
from fleetdeck_testkit.identity import TestIssuer
from fleetdeck_testkit.servers import DEMO_INFO


@pytest.fixture
async def served(
    tmp_path: Path, test_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, FleetServer]]:
    monkeypatch.setenv("FLEETDECK_AUTH__ISSUER", test_issuer.issuer)
    monkeypatch.setenv("FLEETDECK_AUTH__JWKS_URL", test_issuer.jwks_url)
    port = free_port()
    settings = FleetdeckSettings.load(
        data_dir=tmp_path, http={"port": port}, telemetry={"flush_interval_s": 0.01}
    )
    server = FleetServer(DEMO_INFO, settings, access=AccessPolicy(business_groups=("ads", "finance")))

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def whoami() -> str:
        """Say hello."""
        return "hello"

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(groups=["finance"])
    def revenue() -> int:
        """Total revenue."""
        return 42

    async with serving(server.http_app(), port) as base:
        yield f"{base}/mcp", server


def client(url: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http))


async def test_no_token_is_401_with_the_resource_metadata(served: tuple[str, FleetServer]) -> None:
    url, _ = served
    async with httpx2.AsyncClient() as http:
        response = await http.post(url, json={}, headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 401
    assert "resource_metadata=" in response.headers["www-authenticate"]


@pytest.mark.parametrize("bad", ["sibling", "alg_none", "duplicate_sub", "expired"])
async def test_bad_tokens_are_401_and_nothing_runs(
    served: tuple[str, FleetServer], test_issuer: TestIssuer, bad: str
) -> None:
    url, server = served
    token = {
        "sibling": lambda: test_issuer.mint("alice", ["ads"], audience="http://127.0.0.1:1/mcp"),
        "alg_none": lambda: test_issuer.mint_alg_none("alice", aud=url, groups=["ads"]),
        "duplicate_sub": lambda: test_issuer.mint_duplicate_claim("sub", "alice", "admin", aud=url),
        "expired": lambda: test_issuer.mint("alice", ["ads"], audience=url, lifetime_s=-120),
    }[bad]()
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert server.metrics.tool_calls.counts == {}


async def test_a_valid_token_maps_the_user_and_their_groups(
    served: tuple[str, FleetServer], test_issuer: TestIssuer
) -> None:
    url, server = served
    async with client(url, test_issuer.mint("alice", ["ads"], audience=url)) as alice:
        names = {t.name for t in (await alice.list_tools()).tools}
        hello = await alice.call_tool("whoami", {})
        hidden = await alice.call_tool("revenue", {})
    assert names == {"whoami"}
    assert hello.structured_content == {"result": "hello"}
    assert hidden.is_error
    assert server._writer is not None
    assert server._writer.flush(timeout=10)
    users = {e.user_hash for e in EventStore(server.settings.telemetry_url()).events()}
    assert users == {pseudonymise("alice", server.settings.pseudonym_key())}


async def test_a_user_outside_the_business_groups_is_denied(
    served: tuple[str, FleetServer], test_issuer: TestIssuer
) -> None:
    url, _ = served
    async with client(url, test_issuer.mint("mallory", ["ops"], audience=url)) as mallory:
        tools = (await mallory.list_tools()).tools
        result = await mallory.call_tool("whoami", {})
    assert tools == []
    assert result.content[0].text == (  # type: ignore[union-attr]
        "access denied (business-groups): mallory is in none of the server's groups (ads, finance)"
    )

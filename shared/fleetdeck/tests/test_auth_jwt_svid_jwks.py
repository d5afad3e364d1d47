"""JWT-SVIDs verified with keys the server fetches from each trust domain's JWKS URL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.http import free_port, serving
from fleetdeck_testkit.identity import JwksMode, TestIssuer
from fleetdeck_testkit.servers import DEMO_INFO, add_whoami

PLANNER = "spiffe://example.org/ns/agents/sa/planner"
AUDIENCE = "fleetdeck-demo"

Serve = Callable[[], AbstractAsyncContextManager[str]]


@pytest.fixture
def serve(
    tmp_path: Path, test_issuer: TestIssuer, rogue_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> Serve:
    """Serve a server trusting example.org JWT-SVIDs whose keys live at ``rogue_issuer``'s JWKS URL."""
    monkeypatch.setenv("FLEETDECK_AUTH__ISSUER", test_issuer.issuer)
    monkeypatch.setenv("FLEETDECK_AUTH__JWKS_URL", test_issuer.jwks_url)
    monkeypatch.setenv("FLEETDECK_WORKLOAD__TRUST_DOMAINS", '["example.org"]')
    monkeypatch.setenv("FLEETDECK_WORKLOAD__JWT_SVID_AUDIENCE", AUDIENCE)
    monkeypatch.setenv(
        "FLEETDECK_WORKLOAD__JWT_SVID_JWKS_URLS", json.dumps({"example.org": rogue_issuer.jwks_url})
    )

    @asynccontextmanager
    async def served() -> AsyncIterator[str]:
        port = free_port()
        settings = FleetdeckSettings.load(data_dir=tmp_path, http={"port": port})
        server = FleetServer(
            DEMO_INFO, settings, access=AccessPolicy(business_groups=("*",), delegating_workloads=(PLANNER,))
        )

        add_whoami(server)

        async with serving(server.http_app(), port) as base:
            yield f"{base}/mcp"

    return served


def caller(url: str, user: TestIssuer, spire: TestIssuer) -> Client:
    headers = {
        "Authorization": f"Bearer {user.mint('alice', ['ads'], audience=url)}",
        "x-spiffe-jwt-svid": spire.mint(PLANNER, audience=AUDIENCE),
    }
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers)))


async def wait_for_keys(client: Client) -> str:
    """Call ``whoami`` until the server's first background fetch of the SVID keys has landed."""
    for _ in range(200):
        try:
            result = await client.call_tool("whoami", {})
        except MCPError:  # refused while no key is known yet: closed, as it must be
            await anyio.sleep(0.05)
            continue
        return str((result.structured_content or {}).get("result"))
    raise AssertionError("the JWT-SVID keys were never fetched")


async def test_a_jwt_svid_is_verified_with_keys_fetched_from_its_trust_domains_jwks_url(
    serve: Serve, test_issuer: TestIssuer, rogue_issuer: TestIssuer
) -> None:
    async with serve() as url, caller(url, test_issuer, rogue_issuer) as client:
        assert await wait_for_keys(client) == f"{PLANNER} by jwt-svid"
    assert rogue_issuer.server is not None
    assert rogue_issuer.server.fetches >= 1


async def test_jwt_svids_are_refused_while_the_trust_domains_jwks_cannot_be_fetched(
    serve: Serve, test_issuer: TestIssuer, rogue_issuer: TestIssuer
) -> None:
    assert rogue_issuer.server is not None
    rogue_issuer.server.mode = JwksMode.DOWN
    async with serve() as url:
        refused = ""
        try:
            async with caller(url, test_issuer, rogue_issuer) as client:
                await client.call_tool("whoami", {})
        except* MCPError as group:
            refused = repr(group)  # the MCPError, possibly inside nested task-group errors
    assert refused, "the call went through without a verifiable JWT-SVID"
    assert "identity refused" in refused
    assert "no usable RS256 key for trust domain example.org" in refused

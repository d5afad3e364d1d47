"""The user layer against a real Keycloak: its tokens, groups, roles, audiences and key rotation.

A FleetServer is served over Streamable HTTP on the port whose ``/mcp`` URL the realm's client puts
in ``aud`` (see ``conftest.py``); its JWKS URL is discovered from Keycloak's OpenID configuration.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fleetdeck.auth.jwt import AuthenticationError, AuthFailure, JwtVerifier
from fleetdeck.auth.policy import AccessPolicy, authorize_tool
from fleetdeck.auth.principal import current_principal
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.http import serving
from fleetdeck_testkit.keycloak import KeycloakServer
from fleetdeck_testkit.servers import DEMO_INFO

pytestmark = pytest.mark.keycloak

CLIENT = "fleetdeck-cli"  # its tokens carry aud = the FleetServer's canonical URL (conftest.py)
FOREIGN_CLIENT = "sibling-app"  # its tokens carry a sibling server's audience
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture
async def fleet(
    tmp_path: Path, keycloak: KeycloakServer, keycloak_fleet_port: int, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, FleetServer]]:
    """A FleetServer trusting the Keycloak realm, open to the finance business group only."""
    monkeypatch.setenv("FLEETDECK_AUTH__ISSUER", keycloak.issuer)
    monkeypatch.setenv("FLEETDECK_AUTH__JWKS_URL", keycloak.discovery()["jwks_uri"])
    monkeypatch.setenv("FLEETDECK_AUTH__ROLES_CLAIM", "realm_access.roles")
    monkeypatch.setenv("FLEETDECK_AUTH__JWKS_COOLDOWN_S", "0")  # a rotation is picked up at once
    settings = FleetdeckSettings.load(
        data_dir=tmp_path, http={"port": keycloak_fleet_port}, telemetry={"flush_interval_s": 0.01}
    )
    server = FleetServer(DEMO_INFO, settings, access=AccessPolicy(business_groups=("finance",)))

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def whoami() -> dict[str, Any]:
        """Describe the caller."""
        user = current_principal.get().user
        assert user is not None
        return {
            "subject": user.subject,
            "issuer": user.issuer,
            "email": user.email,
            "proven_by": user.proven_by,
            "groups": sorted(user.groups),
            "roles": sorted(user.roles),
        }

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(roles=["analyst"])
    def analyst_report() -> str:
        """The analysts' report."""
        return "report"

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(roles=["operator"])
    def operator_console() -> str:
        """The operators' console."""
        return "console"

    async with serving(server.http_app(), keycloak_fleet_port) as base:
        yield f"{base}/mcp", server


def client(url: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http))


def verifier_of(server: FleetServer) -> JwtVerifier:
    verifier = server.token_verifier
    assert isinstance(verifier, JwtVerifier)
    return verifier


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def user_id(keycloak: KeycloakServer, username: str) -> str:
    users = keycloak.admin("GET", f"/users?username={username}&exact=true").json()
    return str(users[0]["id"])


async def post_tools_list(url: str, token: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as http:
        return await http.post(
            url, json=TOOLS_LIST, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )


async def test_a_keycloak_token_brings_the_users_groups_and_realm_roles_to_the_tools(
    fleet: tuple[str, FleetServer], keycloak: KeycloakServer
) -> None:
    url, _ = fleet
    async with client(url, keycloak.password_token(CLIENT, "alice")) as alice:
        names = {t.name for t in (await alice.list_tools()).tools}
        me = await alice.call_tool("whoami", {})
        report = await alice.call_tool("analyst_report", {})
        console = await alice.call_tool("operator_console", {})
    assert names == {"whoami", "analyst_report"}
    assert me.structured_content == {
        "subject": user_id(keycloak, "alice"),
        "issuer": keycloak.issuer,
        "email": "alice@example.test",
        "proven_by": "bearer-jwt",
        "groups": ["finance"],
        "roles": ["analyst"],
    }
    assert report.structured_content == {"result": "report"}
    assert console.is_error


async def test_a_keycloak_user_outside_the_business_groups_is_denied(
    fleet: tuple[str, FleetServer], keycloak: KeycloakServer
) -> None:
    url, _ = fleet
    async with client(url, keycloak.password_token(CLIENT, "bob")) as bob:
        tools = (await bob.list_tools()).tools
        result = await bob.call_tool("whoami", {})
    assert tools == []
    bob_id = user_id(keycloak, "bob")  # the token's `sub`: Keycloak's user id, not the username
    assert result.content[0].text == (  # type: ignore[union-attr]
        f"access denied (business-groups): {bob_id} is in none of the server's groups (finance)"
    )


async def test_a_keycloak_token_for_another_audience_is_401_and_nothing_runs(
    fleet: tuple[str, FleetServer], keycloak: KeycloakServer
) -> None:
    url, server = fleet
    token = keycloak.password_token(FOREIGN_CLIENT, "alice")
    response = await post_tools_list(url, token)
    assert segment(token, 1)["aud"] == "http://127.0.0.1:1/mcp"
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "resource_metadata=" in response.headers["www-authenticate"]
    with pytest.raises(AuthenticationError) as refused:
        await verifier_of(server).verify(token)
    assert refused.value.reason is AuthFailure.WRONG_AUDIENCE
    assert server.metrics.tool_calls.counts == {}


async def test_a_tampered_keycloak_token_is_401(
    fleet: tuple[str, FleetServer], keycloak: KeycloakServer
) -> None:
    url, server = fleet
    token = keycloak.password_token(CLIENT, "bob")
    header, _, signature = token.split(".")
    claims = segment(token, 1) | {"groups": ["finance"]}  # bob claims to be in finance
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{header}.{forged_payload}.{signature}"
    response = await post_tools_list(url, forged)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    with pytest.raises(AuthenticationError) as refused:
        await verifier_of(server).verify(forged)
    assert refused.value.reason is AuthFailure.BAD_SIGNATURE


async def test_a_key_rotation_in_keycloak_is_picked_up_through_the_unknown_kid_refetch(
    fleet: tuple[str, FleetServer], keycloak: KeycloakServer
) -> None:
    url, server = fleet
    jwks = verifier_of(server).jwks
    assert jwks.url == f"{keycloak.issuer}/protocol/openid-connect/certs"  # discovered
    before = keycloak.password_token(CLIENT, "alice")
    async with client(url, before) as alice:
        assert not (await alice.call_tool("whoami", {})).is_error
    assert jwks.fetch_attempts == 1
    assert segment(before, 0)["kid"] in jwks.kids()

    new_kid = keycloak.add_rsa_key()
    assert new_kid not in jwks.kids()
    after = keycloak.password_token(CLIENT, "alice")
    assert segment(after, 0)["kid"] == new_kid
    async with client(url, after) as alice_rotated:
        rotated = await alice_rotated.call_tool("whoami", {})
    async with client(url, before) as alice_old_key:
        old_key = await alice_old_key.call_tool("whoami", {})
    assert not rotated.is_error
    assert not old_key.is_error  # the previous key stays published, so earlier tokens stay valid
    assert jwks.fetch_attempts == 2
    assert new_kid in jwks.kids()

"""The agents' API: official registry shapes, search, access checks matching the servers, auth."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from registry.tests.registry_helpers import (
    http_client,
    make_registry,
    make_server,
    publish,
    registry_settings,
    user,
)

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.principal import Principal, Workload
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_registry.server import build_registry
from fleetdeck_testkit.identity import TestIssuer

ANALYST = user("alice", ("ads",))
ADMIN = user("root", ("finance",), ("admin",))
OUTSIDER = user("eve", ("marketing",))


async def fleet(tmp_path: Path, root: Path, count: int = 3) -> None:
    for index in range(count):
        await publish(root, make_server(tmp_path, f"orders{index}"))
    await publish(root, make_server(tmp_path, "pending"), approved=False)


async def test_servers_list_has_the_official_shape_and_pages_with_cursors(tmp_path: Path, root: Path) -> None:
    await fleet(tmp_path, root)
    async with http_client(make_registry(tmp_path, root, ANALYST)) as client:
        first = (await client.get("/v0.1/servers", params={"limit": 2})).json()
        second = (
            await client.get("/v0.1/servers", params={"limit": 2, "cursor": first["metadata"]["nextCursor"]})
        ).json()
    names = [item["server"]["name"] for item in first["servers"] + second["servers"]]
    assert names == ["io.fleetdeck/orders0", "io.fleetdeck/orders1", "io.fleetdeck/orders2"]
    assert "nextCursor" not in second["metadata"]
    assert second["metadata"]["count"] == 1
    item = first["servers"][0]
    assert item["server"]["$schema"].endswith("server.schema.json")
    assert item["server"]["_meta"]["io.fleetdeck/governance"]["owner_team"] == "orders0-team"
    assert item["_meta"]["io.fleetdeck/registry"]["tools"] == [
        "cancel_order",
        "export_orders",
        "get_order",
        "list_orders",
    ]
    assert item["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"] is True
    assert item["_meta"]["io.fleetdeck/registry"]["agent_catalog"] is True


async def test_versions_endpoints_and_search_by_name(tmp_path: Path, root: Path) -> None:
    await fleet(tmp_path, root)
    async with http_client(make_registry(tmp_path, root, ANALYST)) as client:
        versions = (await client.get("/v0.1/servers/io.fleetdeck%2Forders1/versions")).json()
        latest = await client.get("/v0.1/servers/io.fleetdeck/orders1/versions/latest")
        exact = await client.get("/v0.1/servers/io.fleetdeck/orders1/versions/1.0.0")
        missing = await client.get("/v0.1/servers/io.fleetdeck/orders1/versions/9.9.9")
        pending = await client.get("/v0.1/servers/io.fleetdeck/pending/versions/latest")
        found = (await client.get("/v0.1/servers", params={"search": "ORDERS2"})).json()
    assert [v["server"]["version"] for v in versions["servers"]] == ["1.0.0"]
    assert latest.json()["server"]["name"] == exact.json()["server"]["name"] == "io.fleetdeck/orders1"
    full = latest.json()["server"]["_meta"]["io.fleetdeck/governance"]["tools"]
    assert [tool["name"] for tool in full] == ["cancel_order", "export_orders", "get_order", "list_orders"]
    assert missing.status_code == pending.status_code == 404
    assert [s["server"]["name"] for s in found["servers"]] == ["io.fleetdeck/orders2"]


async def test_each_caller_sees_only_servers_its_groups_may_use(tmp_path: Path, root: Path) -> None:
    await publish(root, make_server(tmp_path, "ads", groups=("ads",)))
    await publish(root, make_server(tmp_path, "money", groups=("finance",)))
    for principal, expected in (
        (ANALYST, ["io.fleetdeck/ads"]),
        (ADMIN, ["io.fleetdeck/money"]),
        (OUTSIDER, []),
    ):
        async with http_client(make_registry(tmp_path, root, principal)) as client:
            listed = [s["server"]["name"] for s in (await client.get("/v0.1/servers")).json()["servers"]]
            catalog = [
                s["name"] for s in (await client.get("/.well-known/mcp/catalog.json")).json()["servers"]
            ]
        assert listed == catalog == expected


async def test_search_ranks_tools_and_hides_what_the_caller_cannot_call(tmp_path: Path, root: Path) -> None:
    await fleet(tmp_path, root, 1)
    async with http_client(make_registry(tmp_path, root, ANALYST)) as client:
        hits = (await client.get("/api/search", params={"q": "export orders csv", "kind": "tool"})).json()
        admin_hits = None
    async with http_client(make_registry(tmp_path, root, ADMIN)) as client:
        admin_hits = (
            await client.get("/api/search", params={"q": "export orders csv", "kind": "tool"})
        ).json()
        card = (await client.get("/.well-known/mcp/servers/orders0.json")).json()
    assert "export_orders" not in [hit["tool"] for hit in hits["results"]]
    assert admin_hits["results"][0]["tool"] == "export_orders"
    assert "export_orders" in [tool["name"] for tool in card["tools"]]


async def test_access_answers_match_what_the_server_decides(tmp_path: Path, root: Path) -> None:
    await publish(root, make_server(tmp_path, "orders"))
    service = Principal(workload=Workload("spiffe://corp/bot", "jwt-svid"))
    principals = {"analyst": ANALYST, "admin": ADMIN, "outsider": OUTSIDER, "service": service}
    async with http_client(make_registry(tmp_path, root, ADMIN)) as client:
        for label, principal in principals.items():
            served = make_server(tmp_path, "orders", identity=StaticIdentity(principal))
            async with Client(served.mcp) as mcp:
                visible = {tool.name for tool in (await mcp.list_tools()).tools}
            for tool in ("list_orders", "get_order", "export_orders", "cancel_order"):
                body: dict[str, object] = {"server": "io.fleetdeck/orders", "tool": tool}
                if principal.user:
                    body["user"] = {
                        "subject": principal.user.subject,
                        "groups": sorted(principal.user.groups),
                        "roles": sorted(principal.user.roles),
                    }
                else:
                    body["workload"] = "spiffe://corp/bot"
                answer = (await client.post("/api/access/check", json=body)).json()
                assert answer["allowed"] == (tool in visible), (label, tool, answer)
                if not answer["allowed"]:
                    assert answer["rule"]
                    assert answer["reason"]


async def test_access_check_names_the_review_rule_for_a_queued_server(tmp_path: Path, root: Path) -> None:
    await fleet(tmp_path, root, 0)
    async with http_client(make_registry(tmp_path, root, ANALYST)) as client:
        answer = (await client.post("/api/access/check", json={"server": "pending"})).json()
        bad = await client.post("/api/access/check", json={"tool": 3})
    assert answer["decision"] == "deny"
    assert answer["rule"] == "review"
    assert "security: missing" in answer["reason"] or "reviews are missing" in answer["reason"]
    assert bad.status_code == 400


async def test_the_api_needs_a_valid_bearer_token(
    tmp_path: Path, root: Path, test_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fleet(tmp_path, root, 1)
    monkeypatch.setenv("FLEETDECK_AUTH__ISSUER", test_issuer.issuer)
    monkeypatch.setenv("FLEETDECK_AUTH__JWKS_URL", test_issuer.jwks_url)
    settings = FleetdeckSettings.model_validate(
        {
            "data_dir": tmp_path / "d",
            "http": {"port": 8099},
            "telemetry": {"url": f"sqlite:///{tmp_path}/t.db"},
        }
    )
    registry = build_registry(settings, registry_settings(root))
    token = test_issuer.mint("alice", ["ads"], audience="http://127.0.0.1:8099/mcp")
    sibling = test_issuer.mint("alice", ["ads"], audience="http://127.0.0.1:8101/mcp")
    async with http_client(registry) as client:
        anonymous = await client.get("/v0.1/servers")
        wrong = await client.get("/v0.1/servers", headers={"Authorization": f"Bearer {sibling}"})
        good = await client.get("/v0.1/servers", headers={"Authorization": f"Bearer {token}"})
        openapi = await client.get("/openapi.json")
    assert anonymous.status_code == wrong.status_code == 401
    assert "resource_metadata=" in anonymous.headers["www-authenticate"]
    assert [s["server"]["name"] for s in good.json()["servers"]] == ["io.fleetdeck/orders0"]
    assert "/v0.1/servers" in openapi.json()["paths"]


async def test_the_registry_answers_through_mcp(tmp_path: Path, root: Path) -> None:
    await fleet(tmp_path, root, 2)
    registry = make_registry(tmp_path, root, ANALYST)
    async with http_client(registry):
        for mode in ("auto", "legacy"):
            async with Client(registry.mcp, mode=mode) as mcp:
                found = await mcp.call_tool("find_tools", {"query": "get one order by id"})
                card = await mcp.call_tool("get_server", {"name": "orders1"})
                check = await mcp.call_tool(
                    "check_access", {"server_name": "orders1", "tool": "cancel_order"}
                )
                hidden = await mcp.call_tool("get_server", {"name": "pending"})
            assert found.structured_content is not None
            assert found.structured_content["results"][0]["tool"] == "get_order"
            assert card.structured_content is not None
            assert card.structured_content["owner_team"] == "orders1-team"
            assert check.structured_content == {
                "allowed": False,
                "decision": "deny",
                "rule": "tool-groups",
                "reason": "cancel_order needs a user in one of: finance",
                "server": "io.fleetdeck/orders1",
                "tool": "cancel_order",
            }
            assert hidden.is_error


async def test_roi_and_health_answer(tmp_path: Path, root: Path) -> None:
    await fleet(tmp_path, root, 1)
    async with http_client(make_registry(tmp_path, root, ANALYST)) as client:
        roi = await client.get("/api/roi")
        health = (await client.get("/api/health")).json()
    assert roi.status_code == 200
    assert roi.json() == {"months": []}
    assert health["status"] == "ok"
    assert health["catalog"]["servers"] == 2


@pytest.mark.parametrize(("ui_access", "status"), [(None, 401), ("token", 401), ("open", 200)])
async def test_the_ui_needs_a_token_unless_opened_or_on_the_loopback_development_fleet(
    tmp_path: Path,
    root: Path,
    test_issuer: TestIssuer,
    monkeypatch: pytest.MonkeyPatch,
    ui_access: str | None,
    status: int,
) -> None:
    await fleet(tmp_path, root, 1)
    monkeypatch.setenv("FLEETDECK_AUTH__ISSUER", test_issuer.issuer)
    monkeypatch.setenv("FLEETDECK_AUTH__JWKS_URL", test_issuer.jwks_url)
    settings = FleetdeckSettings.model_validate(
        {
            "data_dir": tmp_path / "d",
            "http": {"host": "0.0.0.0", "port": 8099},
            "telemetry": {"url": f"sqlite:///{tmp_path}/t.db"},
        }
    )
    registry = build_registry(settings, registry_settings(root, ui_access=ui_access))
    async with http_client(registry) as client:
        page = await client.get("/")
    assert page.status_code == status
    assert ("orders0" in page.text) == (status == 200)


async def test_the_local_development_fleets_ui_reads_without_a_token(tmp_path: Path, root: Path) -> None:
    await fleet(tmp_path, root, 1)
    registry = make_registry(tmp_path, root, principal=Principal())
    async with http_client(registry) as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert "orders0" in page.text

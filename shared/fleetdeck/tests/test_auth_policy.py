"""The decision function and its enforcement: explainable, fail-closed, the same for list and call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.policy import AccessPolicy, ToolFacts, ToolPolicy, authorize_tool, decide
from fleetdeck.auth.principal import Principal, User, Workload
from fleetdeck.errors import ConfigError, Outcome
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.servers import DEMO_INFO

ACCESS = AccessPolicy(
    business_groups=("ads", "finance"),
    delegating_workloads=("spiffe://corp.example/ns/chat/*",),
    service_workloads={
        "spiffe://corp.example/ns/batch/reporter": ("*",),
        "spiffe://corp.example/ns/batch/healer": ("restart_job",),
    },
)
READ = ToolFacts(name="list_jobs", read_only=True, policy=None)
WRITE = ToolFacts(name="restart_job", read_only=False, policy=None)
CHAT = Workload("spiffe://corp.example/ns/chat/slackbot", "xfcc")


def user(*groups: str, roles: tuple[str, ...] = ()) -> User:
    return User(
        "alice", "https://idp.example", "bearer-jwt", groups=frozenset(groups), roles=frozenset(roles)
    )


@pytest.mark.parametrize(
    ("principal", "tool", "rule", "reason"),
    [
        (Principal(), READ, "authentication", "no verified user or workload"),
        (
            Principal(user("ops")),
            READ,
            "business-groups",
            "alice is in none of the server's groups (ads, finance)",
        ),
        (
            Principal(user("ads"), Workload("spiffe://corp.example/ns/other/bot", "mtls")),
            READ,
            "delegation",
            "spiffe://corp.example/ns/other/bot may not act on behalf of users",
        ),
        (
            Principal(workload=Workload("spiffe://corp.example/ns/batch/unknown", "mtls")),
            READ,
            "service-access",
            "spiffe://corp.example/ns/batch/unknown may not call without a user",
        ),
        (
            Principal(workload=Workload("spiffe://corp.example/ns/batch/reporter", "mtls")),
            WRITE,
            "service-access",
            "restart_job changes state: without a user, grant it by name",
        ),
    ],
)
def test_denials_name_the_rule_and_the_reason(
    principal: Principal, tool: ToolFacts, rule: str, reason: str
) -> None:
    decision = decide(principal, tool, ACCESS)
    assert (decision.allowed, decision.rule, decision.reason) == (False, rule, reason)


@pytest.mark.parametrize(
    ("principal", "tool"),
    [
        (Principal(user("ads")), READ),
        (Principal(user("finance"), CHAT), WRITE),
        (Principal(workload=Workload("spiffe://corp.example/ns/batch/reporter", "jwt-svid")), READ),
        (Principal(workload=Workload("spiffe://corp.example/ns/batch/healer", "mtls")), WRITE),
    ],
)
def test_allowed_calls(principal: Principal, tool: ToolFacts) -> None:
    decision = decide(principal, tool, ACCESS)
    assert decision.allowed
    assert decision.rule == "allowed"


def test_tool_policy_checks_groups_roles_workloads_and_surfaces() -> None:
    policy = ToolPolicy(
        groups=("ads",), roles=("operator",), workloads=(CHAT.spiffe_id,), surfaces=("#ads-help",)
    )
    tool = ToolFacts(name="pause_campaign", read_only=False, policy=policy)
    cases = [
        (Principal(user("finance", roles=("operator",)), CHAT, "#ads-help"), "tool-groups"),
        (Principal(user("ads"), CHAT, "#ads-help"), "tool-roles"),
        (Principal(user("ads", roles=("operator",)), None, "#ads-help"), "tool-workloads"),
        (Principal(user("ads", roles=("operator",)), CHAT, "#random"), "tool-surfaces"),
        (Principal(user("ads", roles=("operator",)), CHAT, "#ads-help"), "allowed"),
    ]
    assert [decide(p, tool, ACCESS).rule for p, _ in cases] == [rule for _, rule in cases]


def test_authorize_tool_above_the_registration_is_refused(tmp_path: Path) -> None:
    server = FleetServer(DEMO_INFO, FleetdeckSettings.load(data_dir=tmp_path), access=ACCESS)

    def fn() -> str:
        """Do it."""
        return ""

    registered = server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)(fn)
    with pytest.raises(ConfigError, match="must sit below"):
        authorize_tool(groups=["ads"])(registered)


class SwitchableIdentity(StaticIdentity):
    """The test's caller; a test may change who that is between calls."""


def make_server(tmp_path: Path, identity: StaticIdentity) -> FleetServer:
    settings = FleetdeckSettings.load(data_dir=tmp_path, telemetry={"flush_interval_s": 0.01})
    server = FleetServer(DEMO_INFO, settings, access=ACCESS, identity=identity)

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    def list_jobs() -> list[str]:
        """List jobs."""
        return ["a"]

    @server.tool(minutes_saved=5, read_only=False, destructive=False, idempotent=True)
    @authorize_tool(groups=["finance"])
    def close_books() -> str:
        """Close the books."""
        return "closed"

    return server


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_list_shows_each_caller_only_what_it_may_call(tmp_path: Path, mode: Any) -> None:
    identity = SwitchableIdentity(Principal(user("ads")))
    server = make_server(tmp_path, identity)
    async with server.running(), Client(server.mcp, mode=mode) as client:
        ads_view = {t.name for t in (await client.list_tools()).tools}
        identity.principal = Principal(user("finance"))
        finance_view = {t.name for t in (await client.list_tools()).tools}
    assert ads_view == {"list_jobs"}
    assert finance_view == {"list_jobs", "close_books"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_hidden_tool_called_directly_is_denied_and_recorded(tmp_path: Path, mode: Any) -> None:
    server = make_server(tmp_path, SwitchableIdentity(Principal(user("ads"))))
    async with server.running():
        async with Client(server.mcp, mode=mode) as client:
            result = await client.call_tool("close_books", {})
        assert server._writer is not None
        assert server._writer.flush(timeout=10)
    assert result.is_error
    assert result.content[0].text == (  # type: ignore[union-attr]
        "access denied (tool-groups): close_books needs a user in one of: finance"
    )
    (event,) = EventStore(server.settings.telemetry_url()).events()
    assert (event.tool, event.outcome, event.error_class) == ("close_books", Outcome.DENIED, "tool-groups")


async def test_a_group_removed_between_two_calls_takes_effect_at_once(tmp_path: Path) -> None:
    identity = SwitchableIdentity(Principal(user("finance")))
    server = make_server(tmp_path, identity)
    async with server.running(), Client(server.mcp) as client:
        first = await client.call_tool("close_books", {})
        identity.principal = Principal(user("ads"))
        second = await client.call_tool("close_books", {})
    assert first.structured_content == {"result": "closed"}
    assert second.is_error


def test_production_without_an_issuer_refuses_to_start(tmp_path: Path) -> None:
    settings = FleetdeckSettings.load(data_dir=tmp_path, environment="production")
    with pytest.raises(ConfigError, match="no identity provider is configured"):
        FleetServer(DEMO_INFO, settings, access=ACCESS)


def test_development_on_a_public_address_refuses_the_local_identity(tmp_path: Path) -> None:
    settings = FleetdeckSettings.load(data_dir=tmp_path, http={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="loopback"):
        FleetServer(DEMO_INFO, settings, access=ACCESS)

"""Fixtures for the shared library's tests that talk to real backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetdeck_testkit.backends import free_port, launched
from fleetdeck_testkit.keycloak import KeycloakServer, RealmUser, build_realm, launch_keycloak

KEYCLOAK_REALM = "fleetdeck"
KEYCLOAK_CLIENT = "fleetdeck-cli"
KEYCLOAK_FOREIGN_CLIENT = "sibling-app"
KEYCLOAK_USERS = (
    RealmUser("alice", groups=("finance",), roles=("analyst",)),
    RealmUser("bob", groups=("ads",), roles=("operator",)),
)


@pytest.fixture(scope="session")
def keycloak_fleet_port() -> int:
    """The port the FleetServers of the Keycloak tests listen on: their canonical URL is the audience."""
    return free_port()


@pytest.fixture(scope="session")
def keycloak(keycloak_fleet_port: int) -> Iterator[KeycloakServer]:
    """A real Keycloak for the session, with a realm whose ``fleetdeck-cli`` tokens are for our server.

    Users: alice (group finance, realm role analyst) and bob (group ads, role operator). Tokens of
    ``sibling-app`` carry another server's audience.
    """
    realm = build_realm(
        KEYCLOAK_REALM,
        users=KEYCLOAK_USERS,
        client_id=KEYCLOAK_CLIENT,
        audience=f"http://127.0.0.1:{keycloak_fleet_port}/mcp",
        foreign_client_id=KEYCLOAK_FOREIGN_CLIENT,
        foreign_audience="http://127.0.0.1:1/mcp",
    )
    with launched(lambda: launch_keycloak(realm)) as server:
        yield server

"""The pytest plugin (entry point ``pytest11``): Fleetdeck's shared fixtures.

Backend fixtures start real software once per session and skip with the reason when they cannot
(fail under ``CI=true``); see :mod:`fleetdeck_testkit.backends`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from fleetdeck_testkit.backends import launched
from fleetdeck_testkit.postgres import PostgresServer, launch_postgres

if TYPE_CHECKING:  # imported lazily: keys, uvicorn and PyJWT only for tests that mint tokens
    from fleetdeck_testkit.identity import JwksServer, TestIssuer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session; ``restartable`` when the testkit started it."""
    with launched(launch_postgres) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session server's ``postgresql+psycopg://`` URL (its ``postgres`` database)."""
    return postgres_server.url


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of an empty database created for this test and dropped after it."""
    postgres_server.ensure_running()
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.ensure_running()
        postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def issuer_session() -> Iterator[TestIssuer]:
    """The session's test issuer and its loopback JWKS server (keys generated once)."""
    from fleetdeck_testkit.identity import JwksServer, TestIssuer

    with JwksServer() as server:
        yield TestIssuer(server)


@pytest.fixture
def test_issuer(issuer_session: TestIssuer) -> TestIssuer:
    """The test issuer, reset: initial keys, JWKS server listening normally, counters at zero."""
    issuer_session.reset()
    return issuer_session


@pytest.fixture
def jwks_server(test_issuer: TestIssuer) -> JwksServer:
    """The test issuer's JWKS server (reset with it): switch its ``mode``, read its counters."""
    if test_issuer.server is None:
        raise RuntimeError("the session issuer has no JWKS server")
    return test_issuer.server


@pytest.fixture(scope="session")
def rogue_issuer_session() -> Iterator[TestIssuer]:
    """An unrelated issuer (an attacker's keys) with its own JWKS server, for the session."""
    from fleetdeck_testkit.identity import JwksServer, TestIssuer

    with JwksServer() as server:
        yield TestIssuer(server)


@pytest.fixture
def rogue_issuer(rogue_issuer_session: TestIssuer) -> TestIssuer:
    """An attacker's issuer, reset; its server counts every request on any path (``jku`` targets)."""
    rogue_issuer_session.reset()
    return rogue_issuer_session

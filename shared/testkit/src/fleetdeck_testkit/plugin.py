"""The pytest plugin (entry point ``pytest11``): Fleetdeck's shared fixtures.

Backend fixtures start real software once per session and skip with the reason when they cannot
(fail under ``CI=true``); see :mod:`fleetdeck_testkit.backends`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetdeck_testkit.backends import BackendStartError, backend_unavailable
from fleetdeck_testkit.postgres import PostgresServer, launch_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session; ``restartable`` when the testkit started it."""
    try:
        server = launch_postgres()
    except BackendStartError as exc:
        backend_unavailable(str(exc))
    try:
        yield server
    finally:
        server.close()


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

"""PostgreSQL for tests: an explicit URL, a testcontainers container, or a throwaway local cluster.

:func:`launch_postgres` returns a :class:`PostgresServer`. Only a local cluster the fixture started
itself can be stopped and started again (:attr:`PostgresServer.restartable`), which outage tests
need. The local cluster uses Debian's binaries (``/usr/lib/postgresql/<version>/bin``; ``.ci/postgres.sh``
installs them), lives in a temporary directory, listens on a free port of 127.0.0.1 only with
trust authentication, and runs as the ``postgres`` user when we are root.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from fleetdeck_testkit.backends import (
    BackendStartError,
    backend_settings,
    docker_available,
    free_port,
    run_as,
)

logger = logging.getLogger(__name__)

SERVICE_USER = "postgres"
SUPERUSER = "fleetdeck"
DOCKER_IMAGE = "postgres:16-alpine"
COMMAND_TIMEOUT_S = 120.0
START_ATTEMPTS = 3
SERVER_SETTINGS = """
# fleetdeck testkit: a throwaway cluster, durability traded for speed
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
"""


def psycopg_url(url: str) -> str:
    """``url`` with the ``postgresql+psycopg`` driver SQLAlchemy needs."""
    parsed = sa.engine.make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _libpq_url(url: str) -> str:
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresServer:
    """A reachable PostgreSQL server: its URL, fresh databases, and (when owned) stop/start."""

    restartable = False

    def __init__(self, url: str) -> None:
        self.url = psycopg_url(url)

    def stop(self) -> None:
        """Stop the server (only when :attr:`restartable`)."""
        raise BackendStartError(f"{type(self).__name__} is not owned by the testkit; it cannot be stopped")

    def start(self) -> None:
        """Start the server again after :meth:`stop` (only when :attr:`restartable`)."""
        raise BackendStartError(f"{type(self).__name__} is not owned by the testkit; it cannot be started")

    def ensure_running(self) -> None:
        """Start the server if a test left it stopped."""

    def close(self) -> None:
        """Release what the launcher started."""

    def check(self) -> None:
        """Raise :class:`BackendStartError` unless the server answers a query."""
        try:
            with psycopg.connect(_libpq_url(self.url), connect_timeout=10) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise BackendStartError(f"PostgreSQL at {self.safe_url} does not answer: {exc}") from exc

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def create_database(self) -> str:
        """Create an empty database with a unique name and return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_libpq_url(self.url), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return sa.engine.make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, closing its connections."""
        name = sa.engine.make_url(url).database
        with psycopg.connect(_libpq_url(self.url), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ExternalPostgres(PostgresServer):
    """A server named by ``FLEETDECK_TEST_POSTGRES_URL``; never stopped by tests."""


class DockerPostgres(PostgresServer):
    """A testcontainers container; removed at :meth:`close` (restarting could move its port)."""

    def __init__(self, container: Any) -> None:
        self._container = container
        super().__init__(str(container.get_connection_url()))

    def close(self) -> None:
        self._container.stop()


class LocalPostgres(PostgresServer):
    """A throwaway cluster in a temporary directory, run with ``pg_ctl``."""

    restartable = True

    def __init__(self, bindir: Path, base: Path, port: int, prefix: Sequence[str]) -> None:
        super().__init__(f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres")
        self.bindir = bindir
        self.base = base
        self.port = port
        self._prefix = list(prefix)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"

    @classmethod
    def launch(cls, bindir: Path) -> LocalPostgres:
        """``initdb`` a cluster in a new temporary directory and start it on a free port."""
        prefix = run_as(SERVICE_USER)
        base = Path(tempfile.mkdtemp(prefix="fleetdeck-pg-"))
        try:
            if prefix:
                account = pwd.getpwnam(SERVICE_USER)
                os.chown(base, account.pw_uid, account.pw_gid)
            server = cls(bindir, base, free_port(), prefix)
            server._run(
                "initdb",
                [
                    "-D",
                    str(server.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            )
            with (server.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(SERVER_SETTINGS + f"unix_socket_directories = '{base}'\n")
            for attempt in range(START_ATTEMPTS):
                try:
                    server.start()
                    break
                except BackendStartError:
                    if attempt == START_ATTEMPTS - 1:
                        raise
                    server.port = free_port()  # someone took the port meanwhile
                    server.url = psycopg_url(f"postgresql://{SUPERUSER}@127.0.0.1:{server.port}/postgres")
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return server

    def _run(self, program: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        command = [*self._prefix, str(self.bindir / program), *args]
        try:
            result = subprocess.run(  # noqa: S603 - our own arguments, resolved executables
                command, cwd=self.base, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendStartError(f"{program} failed: {exc}") from exc
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise BackendStartError(f"{program} exited {result.returncode}: {result.stderr.strip()}\n{log}")
        return result

    def start(self) -> None:
        self._run(
            "pg_ctl",
            [
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port}",
                "start",
            ],
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", ["-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"])

    def is_running(self) -> bool:
        command = [*self._prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status"]
        result = subprocess.run(  # noqa: S603 - our own arguments, resolved executables
            command, cwd=self.base, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
        return result.returncode == 0

    def ensure_running(self) -> None:
        if not self.is_running():
            self.start()

    def close(self) -> None:
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` directory, or the one holding ``initdb`` on PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _launch_docker() -> PostgresServer:
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError as exc:
        raise BackendStartError("Docker answers but testcontainers[postgres] is not installed") from exc
    container = PostgresContainer(DOCKER_IMAGE, driver="psycopg")
    try:
        container.start()
    except Exception as exc:  # docker-py raises many unrelated types
        raise BackendStartError(f"cannot start {DOCKER_IMAGE} in Docker: {exc}") from exc
    return DockerPostgres(container)


def launch_postgres() -> PostgresServer:
    """An explicit URL, else Docker, else a local cluster; :class:`BackendStartError` if none."""
    url = backend_settings().postgres_url
    if url:
        server: PostgresServer = ExternalPostgres(url)
        server.check()
        return server
    reasons: list[str] = []
    if docker_available():
        try:
            return _launch_docker()
        except BackendStartError as exc:
            reasons.append(str(exc))
    else:
        reasons.append("no Docker engine answers")
    bindir = find_bindir()
    if bindir is None:
        reasons.append("no PostgreSQL binaries in /usr/lib/postgresql/*/bin (run .ci/postgres.sh)")
        raise BackendStartError("cannot start PostgreSQL: " + "; ".join(reasons))
    try:
        return LocalPostgres.launch(bindir)
    except BackendStartError as exc:
        reasons.append(str(exc))
    raise BackendStartError("cannot start PostgreSQL: " + "; ".join(reasons))

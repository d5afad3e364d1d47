"""Backend launchers: the rules every fixture that starts real software follows (DESIGN §8).

A launcher tries, in order: an explicit URL from the environment, a Docker engine through
testcontainers (imported lazily; optional), then a local process. When none starts it raises
:class:`BackendStartError`; the fixture turns that into :func:`backend_unavailable`, which skips
with the reason when run by hand and fails when ``CI=true``, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, Protocol, TypeVar

import pytest
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DOCKER_INFO_TIMEOUT_S = 10.0


class BackendStartError(RuntimeError):
    """A backend could not be started; the message says what was tried and why it failed."""


class BackendSettings(BaseSettings):
    """The testkit's environment: ``CI`` and ``FLEETDECK_TEST_<BACKEND>_URL`` overrides."""

    model_config = SettingsConfigDict(env_prefix="FLEETDECK_TEST_", extra="ignore")

    ci: str = Field(default="", validation_alias=AliasChoices("CI"))
    postgres_url: str | None = Field(default=None, description="Use this server instead of starting one.")


def backend_settings() -> BackendSettings:
    """The current environment, read afresh (tests may change it)."""
    return BackendSettings()


def ci_required() -> bool:
    """Whether backends must start (``CI=true``): a fixture that cannot start one then fails."""
    return backend_settings().ci.strip().lower() in {"true", "1", "yes"}


def backend_unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason`` by hand; fail it under ``CI=true``."""
    if ci_required():
        pytest.fail(f"{reason} (CI=true: integration backends must start, not skip)", pytrace=False)
    pytest.skip(reason)


class Closable(Protocol):
    def close(self) -> None: ...


B = TypeVar("B", bound=Closable)


@contextmanager
def launched(launch: Callable[[], B]) -> Iterator[B]:
    """A backend for a fixture: started by ``launch``, unavailable as :func:`backend_unavailable` says
    (skip by hand, fail under ``CI=true``), and closed afterwards."""
    try:
        backend = launch()
    except BackendStartError as exc:
        backend_unavailable(str(exc))
    try:
        yield backend
    finally:
        backend.close()


def docker_available() -> bool:
    """Whether a Docker engine answers ``docker info``."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments, resolved executable
            [docker, "info"], capture_output=True, timeout=DOCKER_INFO_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def run_as(user: str) -> list[str]:
    """A command prefix that runs a program as ``user`` when we are root (empty otherwise).

    Database servers refuse to run as root; Debian ships their service users (``postgres``).
    """
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(user)
    except KeyError as exc:
        raise BackendStartError(
            f"running as root and there is no {user!r} user to run the backend as"
        ) from exc
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", user, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
    raise BackendStartError(f"running as root and neither runuser nor setpriv can switch to {user!r}")

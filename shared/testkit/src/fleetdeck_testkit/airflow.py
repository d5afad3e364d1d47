"""Airflow 3 for tests: an explicit URL, or a throwaway local deployment in its own virtual environment.

:func:`launch_airflow` returns an :class:`AirflowServer`. The local deployment (see
``shared/reference/backends.md``) installs ``apache-airflow`` into a cached virtual environment
with uv, keeps ``AIRFLOW_HOME`` (SQLite database, logs) in a temporary directory, and runs
``api-server`` on 127.0.0.1, ``scheduler --skip-serve-logs`` and ``dag-processor`` as child
processes, each in its own process group so :meth:`LocalAirflow.close` stops everything it started.
The simple auth manager gets fixed users: ``admin`` (role admin) and ``viewer`` (role viewer).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetdeck_testkit.backends import BackendStartError, free_port

logger = logging.getLogger(__name__)

AIRFLOW_VERSION = "3.3.2"
ADMIN = ("admin", "admin-password")
VIEWER = ("viewer", "viewer-password")
INSTALL_TIMEOUT_S = 900.0
MIGRATE_TIMEOUT_S = 300.0
START_DEADLINE_S = 180.0
STOP_GRACE_S = 20.0
PROCESSES = ("api-server", "scheduler", "dag-processor")


class AirflowTestSettings(BaseSettings):
    """``FLEETDECK_TEST_AIRFLOW_URL`` (+ user/password) points the tests at an existing Airflow."""

    model_config = SettingsConfigDict(env_prefix="FLEETDECK_TEST_AIRFLOW_", extra="ignore")

    url: str | None = Field(default=None, description="Use this Airflow instead of starting one.")
    username: str = ADMIN[0]
    password: str = ADMIN[1]
    viewer_username: str = VIEWER[0]
    viewer_password: str = VIEWER[1]


def http_json(
    method: str,
    url: str,
    body: Mapping[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 30.0,
) -> Any:
    """One JSON request over plain HTTP (the testkit's own calls; raises urllib errors)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) URLs we build
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        raw = response.read()
    return json.loads(raw) if raw else None


class AirflowServer:
    """A reachable Airflow API server: its URL, credentials, and (when owned) stop/start."""

    restartable = False

    def __init__(self, url: str, admin: tuple[str, str], viewer: tuple[str, str]) -> None:
        self.url = url.rstrip("/")
        self.admin = admin
        self.viewer = viewer

    def token(self, credentials: tuple[str, str] | None = None) -> str:
        """A JWT from the simple auth manager's ``POST /auth/token``."""
        user, password = credentials or self.admin
        answer = http_json("POST", f"{self.url}/auth/token", {"username": user, "password": password})
        return str(answer["access_token"])

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call ``/api/v2`` + ``path`` as the admin (fixtures only: unpausing, triggering, waiting)."""
        return http_json(method, f"{self.url}/api/v2{path}", body, token=self.token())

    def healthy(self) -> bool:
        """Whether the metadatabase, scheduler and DAG processor all report healthy."""
        try:
            health = http_json("GET", f"{self.url}/api/v2/monitor/health", timeout=5.0)
        except (OSError, ValueError):
            return False
        parts = ("metadatabase", "scheduler", "dag_processor")
        return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

    def wait_healthy(self, deadline_s: float = START_DEADLINE_S) -> None:
        """Return once healthy, or raise :class:`BackendStartError` after ``deadline_s``."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.healthy():
                return
            self._check_alive()
            time.sleep(0.5)
        raise BackendStartError(f"Airflow at {self.url} was not healthy after {deadline_s:g} s")

    def wait_for_dags(self, dag_ids: Iterable[str], deadline_s: float = START_DEADLINE_S) -> None:
        """Return once every DAG in ``dag_ids`` is parsed, or raise :class:`BackendStartError`."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + deadline_s
        seen: set[str] = set()
        while time.monotonic() < deadline:
            try:
                answer = self.api("GET", "/dags?limit=1000")
                seen = {dag["dag_id"] for dag in answer["dags"]}
            except (OSError, ValueError, KeyError):
                seen = set()
            if wanted <= seen:
                return
            self._check_alive()
            time.sleep(1.0)
        raise BackendStartError(f"Airflow did not parse the DAGs {sorted(wanted - seen)} in {deadline_s:g} s")

    def wait_for_run(self, dag_id: str, run_id: str, deadline_s: float = 180.0) -> str:
        """Wait until a DAG run finishes; its final state (``success`` / ``failed``)."""
        deadline = time.monotonic() + deadline_s
        state = "unknown"
        while time.monotonic() < deadline:
            try:
                state = str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])
            except OSError:  # a busy API server on a loaded machine: ask again
                state = "unknown"
            if state in ("success", "failed"):
                return state
            self._check_alive()
            time.sleep(1.0)
        raise BackendStartError(f"run {dag_id}/{run_id} still {state} after {deadline_s:g} s")

    def _check_alive(self) -> None:
        """Raise when an owned process died (nothing to check for an external server)."""

    def stop(self, names: Iterable[str] = PROCESSES) -> None:
        """Stop Airflow's processes ``names`` (only when :attr:`restartable`)."""
        raise BackendStartError(f"{type(self).__name__} is not owned by the testkit; it cannot be stopped")

    def start(self) -> None:
        """Start Airflow again after :meth:`stop` (only when :attr:`restartable`)."""
        raise BackendStartError(f"{type(self).__name__} is not owned by the testkit; it cannot be started")

    def close(self) -> None:
        """Release what the launcher started."""


def _uv() -> list[str]:
    uv = shutil.which("uv")
    return [uv] if uv else [sys.executable, "-m", "uv"]


def _run(command: list[str], *, env: Mapping[str, str] | None = None, timeout: float, what: str) -> None:
    try:
        result = subprocess.run(  # noqa: S603 - our own arguments, resolved executables
            command,
            env=dict(env) if env else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendStartError(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        raise BackendStartError(f"{what} exited {result.returncode}: {result.stderr.strip()[-2000:]}")


def cache_dir() -> Path:
    """Where the Airflow virtual environment is cached (``~/.cache/fleetdeck/airflow``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleetdeck" / "airflow"


def ensure_venv(version: str = AIRFLOW_VERSION) -> Path:
    """The ``bin`` directory of a virtual environment with ``apache-airflow==version``, made once.

    A marker written after a complete install makes later sessions reuse it; an interrupted
    install is redone. A lock file keeps two sessions from installing at the same time.
    """
    venv = cache_dir() / f"venv-{version}"
    marker = venv / ".fleetdeck-complete"
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / f".venv-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and (venv / "bin" / "airflow").exists():
            return venv / "bin"
        shutil.rmtree(venv, ignore_errors=True)
        _run([*_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], timeout=120, what="uv venv")
        _run(
            [
                *_uv(),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(venv / "bin" / "python"),
                f"apache-airflow=={version}",
            ],
            timeout=INSTALL_TIMEOUT_S,
            what=f"uv pip install apache-airflow=={version}",
        )
        marker.write_text(version + "\n", encoding="utf-8")
    return venv / "bin"


class LocalAirflow(AirflowServer):
    """api-server, scheduler and dag-processor from the cached venv, home in a temporary directory."""

    restartable = True

    def __init__(self, bindir: Path, home: Path, port: int, dags_folder: Path) -> None:
        super().__init__(f"http://127.0.0.1:{port}", ADMIN, VIEWER)
        self.bindir = bindir
        self.home = home
        self.port = port
        self.dags_folder = dags_folder
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []

    def environment(self) -> dict[str, str]:
        """The environment every Airflow command of this deployment runs with."""
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "TZ")
        env = {name: os.environ[name] for name in keep if name in os.environ}
        users = f"{ADMIN[0]}:admin,{VIEWER[0]}:viewer"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
                "AIRFLOW__API__SECRET_KEY": self._secret("api"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        return env

    def _secret(self, name: str) -> str:
        path = self.home / f".{name}-secret"
        if not path.exists():
            path.write_text(secrets.token_hex(32), encoding="utf-8")
        return path.read_text(encoding="utf-8")

    @classmethod
    def launch(cls, bindir: Path, dags_folder: Path) -> LocalAirflow:
        """Migrate a fresh SQLite database and start the three processes on a free port."""
        home = Path(tempfile.mkdtemp(prefix="fleetdeck-airflow-"))
        server = cls(bindir, home, free_port(), dags_folder)
        try:
            passwords = {ADMIN[0]: ADMIN[1], VIEWER[0]: VIEWER[1]}
            (home / "passwords.json").write_text(json.dumps(passwords), encoding="utf-8")
            _run(
                [str(bindir / "airflow"), "db", "migrate"],
                env=server.environment(),
                timeout=MIGRATE_TIMEOUT_S,
                what="airflow db migrate",
            )
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    def start(self) -> None:
        """Start any stopped process and wait until Airflow reports healthy."""
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
        }
        for name in PROCESSES:
            process = self._processes.get(name)
            if process is not None and process.poll() is None:
                continue
            log = (self.home / f"{name}.log").open("ab")
            self._logs.append(log)
            self._processes[name] = subprocess.Popen(  # noqa: S603 - our own arguments
                [str(self.bindir / "airflow"), *commands[name]],
                env=self.environment(),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_healthy()

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                tail = (self.home / f"{name}.log").read_text(errors="replace")[-3000:]
                raise BackendStartError(f"airflow {name} exited {process.returncode}:\n{tail}")

    def stop(self, names: Iterable[str] = PROCESSES) -> None:
        """SIGTERM each process group, then SIGKILL what is left after a grace period."""
        chosen = [n for n in names if n in self._processes]
        for name in chosen:
            _signal_group(self._processes[name], signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name in chosen:
            process = self._processes.pop(name)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("airflow %s ignored SIGTERM; killing its process group", name)
            _signal_group(process, signal.SIGKILL)  # children (task runners) may outlive the leader
            process.wait(timeout=STOP_GRACE_S)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            for log in self._logs:
                log.close()
            shutil.rmtree(self.home, ignore_errors=True)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def launch_airflow(dags_folder: Path) -> AirflowServer:
    """``FLEETDECK_TEST_AIRFLOW_URL``, else a local deployment; :class:`BackendStartError` if neither."""
    settings = AirflowTestSettings()
    if settings.url:
        server = AirflowServer(
            settings.url,
            (settings.username, settings.password),
            (settings.viewer_username, settings.viewer_password),
        )
        server.wait_healthy(deadline_s=30.0)
        return server
    try:
        bindir = ensure_venv()
    except BackendStartError as exc:
        raise BackendStartError(f"cannot install Airflow {AIRFLOW_VERSION}: {exc}") from exc
    return LocalAirflow.launch(bindir, dags_folder)

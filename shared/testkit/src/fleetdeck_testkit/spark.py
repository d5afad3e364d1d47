"""Spark for tests: a pyspark venv, real event logs for every diagnosis scenario, a History Server.

- :func:`ensure_pyspark` creates ``~/.cache/fleetdeck/spark/venv`` with pyspark (uv; never in the repo).
- :func:`generate_event_logs` runs :mod:`fleetdeck_testkit.spark_scenarios` in that venv on Java 17 and
  caches the logs under ``~/.cache/fleetdeck/spark/logs/<hash of the script>``; both event-log forms
  (Spark 4 folders, plain files) of every scenario. A changed script regenerates them.
- :class:`HistoryServer` runs Spark's History Server class from the pyspark package on 127.0.0.1 and
  a free port, and stops it cleanly.

Every failure raises :class:`BackendStartError` (fixtures turn it into ``backend_unavailable``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from fleetdeck_testkit.backends import BackendStartError, free_port

SPARK_VERSION = "4.3.0"
SCRIPT = Path(__file__).with_name("spark_scenarios.py")
FORMS = ("folder", "plain")
MAIN_SCENARIOS = (
    "success",
    "udf_error",
    "result_size",
    "python_memory",
    "skewed_join",
    "missing_input",
    "cancelled",
)
OOM_SCENARIOS = ("driver_oom",)
SCENARIOS = MAIN_SCENARIOS + OOM_SCENARIOS
INSTALL_TIMEOUT_S = 900.0
GENERATE_TIMEOUT_S = 900.0
HISTORY_START_S = 120.0
JAVA17_CANDIDATES = ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/java-17-openjdk-arm64")


def cache_dir() -> Path:
    """Where the venv and the generated logs live (outside the repository)."""
    return Path.home() / ".cache" / "fleetdeck" / "spark"


@contextmanager
def _locked(name: str) -> Iterator[None]:
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _run(command: list[str], *, timeout: float, env: dict[str, str] | None = None, what: str) -> None:
    """Run ``command`` in its own process group; on timeout the whole group (JVMs included) is killed."""
    try:
        process = subprocess.Popen(  # noqa: S603 - our own arguments, resolved executables
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise BackendStartError(f"{what} failed: {exc}") from exc
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise BackendStartError(f"{what} did not finish in {timeout:g} s") from exc
    if process.returncode != 0:
        raise BackendStartError(f"{what} exited {process.returncode}: {stderr.strip()[-2000:]}")


def ensure_pyspark() -> Path:
    """The python of a venv holding pyspark ``SPARK_VERSION``, created on first use."""
    venv = cache_dir() / "venv"
    python = venv / "bin" / "python"
    marker = venv / f".fleetdeck-pyspark-{SPARK_VERSION}"
    with _locked("venv"):
        if marker.exists() and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        _run([*_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], timeout=120, what="uv venv")
        _run(
            [*_uv(), "pip", "install", "--quiet", "--python", str(python), f"pyspark=={SPARK_VERSION}"],
            timeout=INSTALL_TIMEOUT_S,
            what=f"installing pyspark {SPARK_VERSION}",
        )
        marker.touch()
    return python


def spark_home(python: Path) -> Path:
    """The pyspark package folder of the venv (it holds ``jars/`` and ``sbin/``)."""
    found = sorted(python.parent.parent.glob("lib/python*/site-packages/pyspark"))
    if not found:
        raise BackendStartError(f"no pyspark package in {python.parent.parent}")
    return found[0]


def java_home() -> Path:
    """A Java 17 (Spark 4 needs ``jdk.incubator.vector``): $JAVA_HOME, Debian's, or ``java`` on PATH."""
    candidates = [os.environ.get("JAVA_HOME", ""), *JAVA17_CANDIDATES]
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "java").exists():
            return Path(candidate)
    java = shutil.which("java")
    if java is None:
        raise BackendStartError("no Java found: install OpenJDK 17 (apt-get install openjdk-17-jre-headless)")
    return Path(java).resolve().parent.parent


def spark_env() -> dict[str, str]:
    """The environment Spark processes run with: loopback only, Java 17."""
    env = dict(os.environ)
    env |= {"SPARK_LOCAL_IP": "127.0.0.1", "JAVA_HOME": str(java_home()), "PYSPARK_PYTHON": ""}
    env.pop("PYSPARK_PYTHON")
    env.pop("SPARK_HOME", None)
    return env


@dataclass(frozen=True, slots=True)
class SparkLogs:
    """Generated event logs: ``folders/`` (Spark 4 default) and ``plain/``, and which app is which."""

    root: Path
    apps: dict[str, dict[str, str]]
    """form -> scenario -> application id."""

    def directory(self, form: str) -> Path:
        return self.root / ("folders" if form == "folder" else "plain")


def _load(root: Path) -> SparkLogs:
    apps: dict[str, dict[str, str]] = {form: {} for form in FORMS}
    for line in (root / "apps.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        apps[record["form"]][record["scenario"]] = record["app_id"]
    missing = [f"{f}/{s}" for f in FORMS for s in SCENARIOS if s not in apps[f]]
    if missing:
        raise BackendStartError(f"event-log generation left out: {', '.join(missing)}")
    return SparkLogs(root, apps)


def generate_event_logs() -> SparkLogs:
    """Real event logs of every scenario in both forms, cached by the generator script's hash."""
    key = hashlib.sha256(SCRIPT.read_bytes() + SPARK_VERSION.encode()).hexdigest()[:16]
    target = cache_dir() / "logs" / key
    if (target / "complete").exists():
        return _load(target)
    python = ensure_pyspark()
    with _locked("logs"):
        if (target / "complete").exists():
            return _load(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
        try:
            env = spark_env()
            for group in ("main", "oom"):  # one JVM each: the OOM scenario needs a small driver heap
                _run(
                    [str(python), str(SCRIPT), str(scratch), group, *FORMS],
                    timeout=GENERATE_TIMEOUT_S,
                    env=env,
                    what=f"generating the {group} Spark event logs",
                )
            _load(scratch)
            (scratch / "complete").touch()
            shutil.rmtree(target, ignore_errors=True)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _load(target)


class HistoryServer:
    """Spark's History Server over one log directory, on 127.0.0.1 and a free port."""

    def __init__(self, log_dir: Path, python: Path | None = None, *, heap: str = "384m") -> None:
        self.log_dir = log_dir
        self.heap = heap
        self.python = python or ensure_pyspark()
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="fleetdeck-shs-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, expect_apps: int = 1) -> HistoryServer:
        """Start and wait until it lists at least ``expect_apps`` applications."""
        home = spark_home(self.python)
        properties = self.base / "history.properties"
        properties.write_text(
            f"spark.history.fs.logDirectory={self.log_dir.resolve().as_uri()}\n"
            f"spark.history.ui.port={self.port}\n"
            "spark.history.fs.update.interval=1s\n"
            "spark.history.fs.cleaner.enabled=false\n",
            encoding="utf-8",
        )
        java = java_home() / "bin" / "java"
        command = [
            str(java), f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-cp", f"{home / 'conf'}:{home / 'jars'}/*",
            "org.apache.spark.deploy.history.HistoryServer", "--properties-file", str(properties),
        ]  # fmt: skip
        log = (self.base / "history.log").open("wb")
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own arguments
                command, stdout=log, stderr=subprocess.STDOUT, env=spark_env(), cwd=self.base
            )
        except OSError as exc:
            raise BackendStartError(f"cannot start the History Server: {exc}") from exc
        finally:
            log.close()
        try:
            self._wait(expect_apps)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, expect_apps: int) -> None:
        deadline = time.monotonic() + HISTORY_START_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BackendStartError(
                    f"the History Server exited {self.process.returncode}: {self.log_tail()}"
                )
            try:
                answer = httpx2.get(f"{self.url}/api/v1/applications", timeout=2.0)
                if answer.status_code == 200 and len(answer.json()) >= expect_apps:
                    return
            except (httpx2.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise BackendStartError(
            f"the History Server did not list {expect_apps} apps in time: {self.log_tail()}"
        )

    def log_tail(self) -> str:
        path = self.base / "history.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its scratch folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> HistoryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

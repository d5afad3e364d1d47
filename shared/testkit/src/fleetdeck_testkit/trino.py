"""Trino for tests: an explicit URL, or a Trino distribution from Maven Central run as a local process.

:func:`launch_trino` returns a :class:`TrinoServer`. The local server is ``trino-server-core`` plus the
``tpch`` and ``memory`` plugin zips (Trino >= 472), downloaded once into ``~/.cache/fleetdeck/trino/``
(checked against Maven Central's SHA-1), run with the newest JDK on the machine that the release
supports, bound to 127.0.0.1 on a free port with a small heap, and configured with file-based access
control that gives the test users different rights (:data:`RULES`). Without a suitable JDK it falls
back to the full ``trino-server`` 435 tarball on Java 17. No Docker engine is assumed; where one
answers, set ``FLEETDECK_TEST_TRINO_URL`` to a container instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetdeck_testkit.backends import BackendStartError, free_port

logger = logging.getLogger(__name__)

MAVEN = "https://repo1.maven.org/maven2/io/trino"
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 30.0
DOWNLOAD_TIMEOUT_S = 600.0

ADMIN = "admin"
"""May read everything and see every query."""
ANALYST = "alice"
"""May read the whole ``tpch`` catalog and the ``memory`` catalog."""
RESTRICTED = "bob"
"""May read ``tpch.tiny.nation`` and ``tpch.tiny.region`` only (not ``tpch.tiny.customer``)."""

RULES: dict[str, object] = {
    "catalogs": [
        {"user": ADMIN, "catalog": ".*", "allow": "all"},
        {"user": ANALYST, "catalog": "(tpch|memory|system)", "allow": "read-only"},
        {"user": RESTRICTED, "catalog": "(tpch|system)", "allow": "read-only"},
    ],
    "schemas": [
        {"user": ADMIN, "owner": True},
        {"user": ANALYST, "owner": False},
        {"user": RESTRICTED, "catalog": "(tpch|system)", "owner": False},
    ],
    "tables": [
        {"user": ADMIN, "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"]},
        {"user": ANALYST, "catalog": "(tpch|memory)", "privileges": ["SELECT"]},
        {
            "user": RESTRICTED,
            "catalog": "tpch",
            "schema": "tiny",
            "table": "(nation|region)",
            "privileges": ["SELECT"],
        },
        {
            "catalog": "system",
            "schema": "(runtime|information_schema|metadata|jdbc)",
            "privileges": ["SELECT"],
        },
    ],
    "queries": [
        {"user": ADMIN, "allow": ["execute", "kill", "view"]},
        {"allow": ["execute"]},
    ],
    "system_session_properties": [{"allow": True}],
    "catalog_session_properties": [{"allow": True}],
}


class TrinoTestSettings(BaseSettings):
    """``FLEETDECK_TEST_TRINO_URL`` (use that server) and ``FLEETDECK_TEST_TRINO_VERSION`` (pin a release)."""

    model_config = SettingsConfigDict(env_prefix="FLEETDECK_TEST_TRINO_", extra="ignore")

    url: str | None = Field(default=None, description="http://host:port of a running Trino to use.")
    version: int | None = Field(default=None, description="Pin a Trino release instead of the newest.")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "fleetdeck" / "trino")
    heap: str = Field(default="1G", description="The JVM's -Xmx.")


@dataclass(frozen=True, slots=True)
class Distribution:
    """A Trino release the machine can run: which release, which artifacts, which ``java``."""

    version: int
    java: Path
    core: bool
    java_major: int = 17
    """True: trino-server-core plus plugin zips; False: the full trino-server tarball."""


def java_major(java: Path) -> int | None:
    """The feature release of ``java`` (17, 25, ...), or None when it does not run."""
    try:
        result = subprocess.run(  # noqa: S603 - a resolved java binary, fixed argument
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', result.stderr)
    return int(match.group(1)) if match else None


def candidate_jdks() -> list[Path]:
    """Every ``java`` on the machine: JVMs under /usr/lib/jvm, ``JAVA_HOME`` and PATH."""
    found = [
        p / "bin" / "java" for p in sorted(Path("/usr/lib/jvm").glob("*")) if (p / "bin" / "java").exists()
    ]
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        found.append(Path(home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(on_path).resolve())
    return list(dict.fromkeys(p.resolve() for p in found))


def _has_vector_module(java: Path) -> bool:
    try:
        result = subprocess.run(  # noqa: S603 - a resolved java binary, fixed arguments
            [str(java), "--list-modules"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "jdk.incubator.vector" in result.stdout


def required_java(version: int) -> int:
    """The oldest Java a Trino release runs on (from its release notes)."""
    if version >= 476:
        return 24
    if version >= 447:
        return 22
    if version >= 436:
        return 21
    return 17


def latest_release(timeout: float = 30.0) -> int:
    """The newest ``trino-server-core`` release on Maven Central."""
    with urllib.request.urlopen(f"{MAVEN}/trino-server-core/maven-metadata.xml", timeout=timeout) as r:  # noqa: S310
        text = r.read().decode()
    match = re.search(r"<release>(\d+)</release>", text)
    if match is None:
        raise BackendStartError("Maven Central's trino-server-core metadata names no release")
    return int(match.group(1))


def choose_distribution(settings: TrinoTestSettings) -> Distribution:
    """The newest release a JDK here can run; 435 (full tarball) on Java 17 as the fallback."""
    jdks = [(java_major(j), j) for j in candidate_jdks()]
    usable = sorted(((m, j) for m, j in jdks if m is not None), reverse=True)
    if not usable:
        raise BackendStartError("no Java runtime found (looked in /usr/lib/jvm, JAVA_HOME and PATH)")
    cached = sorted(int(p.name) for p in settings.cache_dir.glob("[0-9]*") if p.name.isdigit())
    wanted = settings.version
    if wanted is None:
        try:
            wanted = latest_release()
        except (OSError, BackendStartError) as exc:
            if not cached:
                raise BackendStartError(f"cannot ask Maven Central for Trino releases: {exc}") from exc
            wanted = cached[-1]
    for major, java in usable:
        if major >= required_java(wanted) and (wanted < 436 or _has_vector_module(java)):
            return Distribution(wanted, java, core=wanted >= 472, java_major=major)
    for major, java in usable:
        if major >= 17:
            return Distribution(435, java, core=False, java_major=major)
    raise BackendStartError(f"Trino needs Java 17 or newer; found {', '.join(str(m) for m, _ in usable)}")


def _download(url: str, target: Path) -> None:
    """Fetch ``url`` into ``target`` (atomically) and check it against the published SHA-1."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url + ".sha1", timeout=60) as r:  # noqa: S310 - Maven Central
            expected = r.read().decode().split()[0].strip()
        digest = hashlib.sha1()  # noqa: S324 - Maven Central publishes SHA-1
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r,  # noqa: S310
            tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as part,
        ):
            for chunk in iter(lambda: r.read(1 << 20), b""):
                digest.update(chunk)
                part.write(chunk)
    except OSError as exc:
        raise BackendStartError(f"cannot download {url}: {exc}") from exc
    if digest.hexdigest() != expected:
        Path(part.name).unlink(missing_ok=True)
        raise BackendStartError(f"{url} does not match its published SHA-1")
    os.replace(part.name, target)


def _extract(tar: tarfile.TarFile, target: Path) -> None:
    """Unpack ``tar`` into ``target``, refusing members that would land outside it.

    Pythons with the tarfile ``data`` filter (3.11.4+) use it; older ones (Debian 12's 3.11.2) get
    the same refusal of absolute paths, ``..``, links out of the folder and device files here.
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, filter="data")
        return
    root = target.resolve()
    for member in tar.getmembers():
        destination = (root / member.name).resolve()
        link = root
        if member.issym():
            link = (destination.parent / member.linkname).resolve()
        elif member.islnk():
            link = (root / member.linkname).resolve()
        unsafe = member.isdev() or not destination.is_relative_to(root) or not link.is_relative_to(root)
        if unsafe or Path(member.name).is_absolute():
            raise BackendStartError(f"the Trino archive holds an unsafe member: {member.name!r}")
    tar.extractall(target)  # noqa: S202 - every member was checked above


def install(dist: Distribution, cache_dir: Path) -> Path:
    """The unpacked server directory for ``dist`` (downloaded and unpacked once, then reused)."""
    home = cache_dir / str(dist.version) / "server"
    if (home / ".complete").exists():
        return home
    downloads = cache_dir / "downloads"
    artifact = "trino-server-core" if dist.core else "trino-server"
    tarball = downloads / f"{artifact}-{dist.version}.tar.gz"
    _download(f"{MAVEN}/{artifact}/{dist.version}/{tarball.name}", tarball)
    plugins: list[tuple[str, Path]] = []
    if dist.core:
        for name in ("tpch", "memory"):
            path = downloads / f"trino-{name}-{dist.version}.zip"
            _download(f"{MAVEN}/trino-{name}/{dist.version}/{path.name}", path)
            plugins.append((name, path))
    scratch = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".unpack-"))
    try:
        with tarfile.open(tarball) as tar:
            _extract(tar, scratch)
        root = scratch / f"{artifact}-{dist.version}"
        for name, path in plugins:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(scratch / "plugins")  # noqa: S202 - zipfile drops '..' and absolute paths
            shutil.move(scratch / "plugins" / f"trino-{name}-{dist.version}", root / "plugin" / name)
        (root / ".complete").touch()
        home.parent.mkdir(parents=True, exist_ok=True)
        if home.exists():
            shutil.rmtree(home)
        os.replace(root, home)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return home


JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:ReservedCodeCacheSize=256M",
    "-XX:TieredStopAtLevel=1",
    "-Djdk.attach.allowAttachSelf=true",
    "-Dfile.encoding=UTF-8",
)


def jvm_options(dist: Distribution) -> list[str]:
    """JVM flags for ``dist``: recent Trino needs the vector module; old JDKs lack newer flags."""
    options = list(JVM_OPTIONS)
    if dist.java_major >= 21:
        options.append("-XX:+EnableDynamicAgentLoading")
    if dist.version >= 436:
        options += ["--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector"]
    return options


def _write_config(etc: Path, data: Path, port: int) -> None:
    (etc / "catalog").mkdir(parents=True, exist_ok=True)
    (etc / "config.properties").write_text(
        "node.environment=test\n"
        "node.id=fleetdeck-test\n"
        "node.bind-ip=127.0.0.1\n"
        "node.internal-address=127.0.0.1\n"
        "coordinator=true\n"
        "node-scheduler.include-coordinator=true\n"
        f"http-server.http.port={port}\n"
        f"discovery.uri=http://127.0.0.1:{port}\n"
        "query.max-memory=256MB\n"
        "query.max-memory-per-node=256MB\n"
        "task.concurrency=2\n"
        "task.max-worker-threads=8\n"
        "query.client.timeout=30s\n"
        "catalog.management=static\n"
        f"catalog.config-dir={etc / 'catalog'}\n"
        f"access-control.config-files={etc / 'access-control.properties'}\n",
        encoding="utf-8",
    )
    (etc / "log.properties").write_text("io.trino=WARN\n", encoding="utf-8")
    (etc / "catalog" / "tpch.properties").write_text("connector.name=tpch\n", encoding="utf-8")
    (etc / "catalog" / "memory.properties").write_text("connector.name=memory\n", encoding="utf-8")
    (etc / "rules.json").write_text(json.dumps(RULES, indent=2), encoding="utf-8")
    (etc / "access-control.properties").write_text(
        f"access-control.name=file\nsecurity.config-file={etc / 'rules.json'}\n", encoding="utf-8"
    )


class TrinoServer:
    """A reachable Trino: its host, port and URL; :meth:`close` stops what the launcher started."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def info(self, timeout: float = 5.0) -> dict[str, object]:
        """``/v1/info``; raises OSError or ValueError when Trino does not answer properly."""
        with urllib.request.urlopen(f"{self.url}/v1/info", timeout=timeout) as r:  # noqa: S310 - loopback
            body = json.loads(r.read())
        if not isinstance(body, dict):
            raise ValueError("/v1/info is not an object")
        return body

    def wait_ready(self, deadline: float, process: subprocess.Popen[bytes] | None = None) -> None:
        """Return once ``/v1/info`` says ``starting: false``; BackendStartError at ``deadline``."""
        last = "no answer yet"
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BackendStartError(f"Trino exited with {process.returncode} while starting")
            try:
                if self.info().get("starting") is False:
                    if self._runs_queries():
                        return
                    last = "started, but no worker node is active yet"
                else:
                    last = "still starting"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.5)  # polling a condition with a deadline, not a fixed wait
        raise BackendStartError(f"Trino at {self.url} not ready in time: {last}")

    def _runs_queries(self) -> bool:
        """Whether a connector query runs (the coordinator registers itself as a worker after start)."""
        import trino  # deferred: only tests that start Trino need the client

        try:
            connect = trino.dbapi.connect
            with connect(host=self.host, port=self.port, user=ADMIN, request_timeout=10) as conn:  # type: ignore[no-untyped-call]
                cursor = conn.cursor()
                cursor.execute(
                    "SELECT count(*) FROM tpch.tiny.region"
                )  # needs a scheduled worker, unlike system
                return bool(cursor.fetchall()[0][0])
        except (OSError, trino.exceptions.Error):
            return False

    def close(self) -> None:
        """Release what the launcher started (nothing for an external server)."""


class LocalTrino(TrinoServer):
    """A Trino process the testkit started; stopped with SIGTERM (then SIGKILL) at :meth:`close`."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], base: Path, log: IO[bytes]) -> None:
        super().__init__("127.0.0.1", port)
        self.process = process
        self.base = base
        self._log = log

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    def log_tail(self, size: int = 3000) -> str:
        """The end of the server's output, for failure messages."""
        return self.log_file.read_bytes()[-size:].decode(errors="replace") if self.log_file.exists() else ""

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(STOP_TIMEOUT_S)
        finally:
            self._log.close()
            shutil.rmtree(self.base, ignore_errors=True)


def start_local(dist: Distribution, home: Path, heap: str) -> LocalTrino:
    """Configure a throwaway ``etc`` for ``home`` and start Trino on a free loopback port."""
    base = Path(tempfile.mkdtemp(prefix="fleetdeck-trino-"))
    port = free_port()
    _write_config(base / "etc", base / "data", port)
    command = [
        str(dist.java),
        "-server",
        f"-Xmx{heap}",
        *jvm_options(dist),
        f"-Dnode.data-dir={base / 'data'}",
        f"-Dconfig={base / 'etc' / 'config.properties'}",
        f"-Dlog.levels-file={base / 'etc' / 'log.properties'}",
        "-cp",
        str(home / "lib" / "*"),
        "io.trino.server.TrinoServer",
    ]
    log = (base / "server.log").open("wb")
    try:
        process = subprocess.Popen(  # noqa: S603 - our own arguments, resolved java
            command,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        shutil.rmtree(base, ignore_errors=True)
        raise BackendStartError(f"cannot run {dist.java}: {exc}") from exc
    server = LocalTrino(port, process, base, log)
    try:
        server.wait_ready(time.monotonic() + START_TIMEOUT_S, process)
    except BackendStartError as exc:
        tail = server.log_tail()
        server.close()
        raise BackendStartError(f"{exc}\n{tail}") from exc
    return server


def launch_trino() -> TrinoServer:
    """``FLEETDECK_TEST_TRINO_URL`` if set, else a local Trino from Maven Central (BackendStartError)."""
    settings = TrinoTestSettings()
    if settings.url:
        host, _, port = settings.url.removeprefix("http://").rstrip("/").partition(":")
        server = TrinoServer(host, int(port or 8080))
        server.wait_ready(time.monotonic() + 30)
        return server
    dist = choose_distribution(settings)
    home = install(dist, settings.cache_dir)
    logger.info("starting Trino %s on %s", dist.version, dist.java)
    return start_local(dist, home, settings.heap)

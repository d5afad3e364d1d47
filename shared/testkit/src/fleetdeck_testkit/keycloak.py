"""Keycloak for tests: the Quarkus distribution from Maven Central, run locally in ``start-dev`` mode.

:func:`launch_keycloak` fetches ``org.keycloak:keycloak-quarkus-dist`` once with Maven (checksums
enforced; extracted under ``~/.cache/fleetdeck/keycloak/``), finds a JDK of at least
:data:`MIN_JAVA` (``JAVA_HOME`` or ``/usr/lib/jvm``), and starts Keycloak on a free port of
127.0.0.1 with a realm made by :func:`build_realm` imported at startup. Each launch runs in its own
temporary home: the large, read-only jars are linked from the cache, while what ``start-dev``
rewrites (``lib/quarkus``, the H2 database in ``data/``) is private; the first ``start-dev`` build
is cached for later starts (some 25 s less). Heap ``-Xmx512m`` (about 400 MB resident). The server
is ready when the realm's discovery document answers; :meth:`KeycloakServer.close` stops its whole
process group and deletes the home.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetdeck_testkit.backends import BackendStartError, free_port

__all__ = ["KeycloakServer", "RealmUser", "build_realm", "find_java", "launch_keycloak"]

logger = logging.getLogger(__name__)

MIN_JAVA = 21
DOWNLOAD_TIMEOUT_S = 600.0
START_TIMEOUT_S = 600.0  # a first start took 173 s on 2 cores under a load of 12
STOP_TIMEOUT_S = 30.0
START_ATTEMPTS = 2
ADMIN_USER = "fleetdeck-admin"
PRIVATE_PARTS = ("bin", "conf", "lib/app", "lib/quarkus", "lib/quarkus-run.jar", "version.txt")
SHARED_PARTS = ("lib/lib", "themes")
REBUILD_MARKER = "Updating the configuration"  # kc.sh prints it when start-dev re-augments


class KeycloakSettings(BaseSettings):
    """The launcher's environment (``FLEETDECK_TEST_KEYCLOAK_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLEETDECK_TEST_KEYCLOAK_", extra="ignore")

    version: str = Field(default="26.5.6", description="keycloak-quarkus-dist version on Maven Central.")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "fleetdeck" / "keycloak")
    heap: str = Field(default="-Xms64m -Xmx512m", description="JAVA_OPTS_KC_HEAP for the server.")
    start_timeout_s: float = Field(default=START_TIMEOUT_S, gt=0, description="Deadline of one start.")


@dataclass(frozen=True, slots=True)
class RealmUser:
    """A realm user: password login, flat group names and realm roles."""

    username: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)

    @property
    def email(self) -> str:
        return f"{self.username}@example.test"


def build_realm(
    name: str,
    *,
    users: Sequence[RealmUser],
    client_id: str,
    audience: str,
    foreign_client_id: str,
    foreign_audience: str,
) -> dict[str, Any]:
    """A realm: ``client_id``'s tokens carry ``aud`` = ``audience``, ``foreign_client_id``'s another one.

    Both are public clients with direct access grants (password grant) and a group membership
    mapper that emits flat group names in ``groups``; realm roles arrive in ``realm_access.roles``.
    """
    groups_mapper = {
        "name": "groups",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-group-membership-mapper",
        "config": {"claim.name": "groups", "full.path": "false", "access.token.claim": "true"},
    }

    def audience_mapper(aud: str) -> dict[str, Any]:
        return {
            "name": "audience",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {"included.custom.audience": aud, "access.token.claim": "true"},
        }

    def client(cid: str, mappers: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "clientId": cid,
            "enabled": True,
            "publicClient": True,
            "directAccessGrantsEnabled": True,
            "standardFlowEnabled": False,
            "protocolMappers": mappers,
        }

    return {
        "realm": name,
        "enabled": True,
        "accessTokenLifespan": 600,
        "roles": {"realm": [{"name": r} for r in sorted({r for u in users for r in u.roles})]},
        "groups": [{"name": g} for g in sorted({g for u in users for g in u.groups})],
        "clients": [
            client(client_id, [groups_mapper, audience_mapper(audience)]),
            client(foreign_client_id, [groups_mapper, audience_mapper(foreign_audience)]),
        ],
        "users": [
            {
                "username": u.username,
                "enabled": True,
                "email": u.email,
                "emailVerified": True,
                "firstName": u.username.title(),
                "lastName": "Test",
                "credentials": [{"type": "password", "value": u.password, "temporary": False}],
                "groups": [f"/{g}" for g in u.groups],
                "realmRoles": list(u.roles),
            }
            for u in users
        ],
    }


def java_major(home: Path) -> int | None:
    """The major version a JDK's ``release`` file declares, or None."""
    try:
        text = (home / "release").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None


def find_java(minimum: int = MIN_JAVA) -> Path:
    """A JDK home of at least ``minimum``: ``JAVA_HOME`` first, else the newest under /usr/lib/jvm."""
    candidates = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    jvms = [p for p in Path("/usr/lib/jvm").glob("*") if p.is_dir() and not p.is_symlink()]
    candidates += sorted(jvms, key=lambda p: java_major(p) or 0, reverse=True)
    for home in candidates:
        major = java_major(home)
        if major is not None and major >= minimum and (home / "bin" / "java").exists():
            return home
    raise BackendStartError(f"Keycloak needs Java {minimum}+; none in JAVA_HOME or /usr/lib/jvm")


def _fetch_archive(version: str, cache: Path) -> Path:
    """The distribution zip, fetched from Maven Central by Maven itself (checksums enforced)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BackendStartError("Maven (mvn) is needed to fetch org.keycloak:keycloak-quarkus-dist")
    repository = cache / "m2"
    command = [
        mvn,
        "-B",
        "-q",
        "--strict-checksums",
        f"-Dmaven.repo.local={repository}",
        "dependency:get",
        f"-Dartifact=org.keycloak:keycloak-quarkus-dist:{version}:zip",
        "-Dtransitive=false",
    ]
    try:
        result = subprocess.run(  # noqa: S603 - our own arguments, resolved executable
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendStartError(f"mvn dependency:get failed: {exc}") from exc
    archive = (
        repository / "org/keycloak/keycloak-quarkus-dist" / version / f"keycloak-quarkus-dist-{version}.zip"
    )
    if result.returncode != 0 or not archive.is_file():
        output = (result.stdout + result.stderr).strip()[-2000:]
        raise BackendStartError(f"mvn could not fetch keycloak-quarkus-dist {version}: {output}")
    return archive


def _extract(archive: Path, destination: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=destination.parent))
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                path = Path(zipped.extract(member, staging))
                mode = member.external_attr >> 16 & 0o777
                if mode and not member.is_dir():
                    path.chmod(mode)
        (top,) = staging.iterdir()
        top.rename(destination)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        archive.unlink(missing_ok=True)  # a corrupt archive is downloaded again next time
        raise BackendStartError(f"cannot extract {archive}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_distribution(settings: KeycloakSettings) -> Path:
    """The extracted distribution in the cache, downloaded and extracted once (under a file lock)."""
    cache = settings.cache_dir
    home = cache / f"keycloak-{settings.version}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "bin" / "kc.sh").exists():
            _extract(_fetch_archive(settings.version, cache), home)
    return home


def _dev_build(distribution: Path) -> Path:
    """Where the ``start-dev`` build (``lib/quarkus`` after re-augmentation) is kept for reuse."""
    return distribution.with_name(distribution.name + ".dev-build")


def _private_home(distribution: Path, base: Path, realm: dict[str, Any]) -> Path:
    """A home of our own: copies of what ``start-dev`` rewrites, links to the big read-only parts."""
    home = base / "home"
    with (distribution.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # _keep_dev_build may be replacing the cached build
        for part in PRIVATE_PARTS:
            source, target = distribution / part, home / part
            if part == "lib/quarkus" and _dev_build(distribution).is_dir():
                source = _dev_build(distribution)  # skips the ~25 s re-augmentation of start-dev
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copy2(source, target)
    for part in SHARED_PARTS:
        (home / part).symlink_to(distribution / part)
    (home / "providers").mkdir()
    imports = home / "data" / "import"
    imports.mkdir(parents=True)
    (imports / f"{realm['realm']}-realm.json").write_text(json.dumps(realm), encoding="utf-8")
    return home


def _keep_dev_build(server: KeycloakServer, distribution: Path) -> bool:
    """Cache the build a start just made, so later starts skip it (Keycloak rebuilds if it is stale).

    Whether the start made one.
    """
    if REBUILD_MARKER not in server.log_tail(1 << 20):
        return False
    target = _dev_build(distribution)
    with (distribution.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        staging = Path(tempfile.mkdtemp(prefix=".dev-build-", dir=distribution.parent))
        try:
            shutil.copytree(server.base / "home" / "lib" / "quarkus", staging / "quarkus")
            shutil.rmtree(target, ignore_errors=True)
            (staging / "quarkus").rename(target)
        except OSError:
            logger.warning("could not cache the Keycloak dev build", exc_info=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return True


class KeycloakServer:
    """A running Keycloak with one imported realm: tokens, admin REST calls, and a clean stop."""

    def __init__(
        self, process: subprocess.Popen[bytes], base: Path, port: int, realm: dict[str, Any]
    ) -> None:
        self.process = process
        self.base = base
        self.port = port
        self.realm = str(realm["realm"])
        self.users = {u["username"]: u["credentials"][0]["value"] for u in realm["users"]}
        self.admin_password = ""
        self.startup_s = 0.0
        self._http = httpx2.Client(timeout=30.0, trust_env=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{self.realm}"

    @property
    def log_file(self) -> Path:
        return self.base / "keycloak.log"

    def discovery(self) -> dict[str, Any]:
        """The realm's OpenID discovery document."""
        response = self._http.get(f"{self.issuer}/.well-known/openid-configuration")
        document: dict[str, Any] = response.raise_for_status().json()
        return document

    def password_token(self, client_id: str, username: str, *, realm: str | None = None) -> str:
        """An access token from the token endpoint (password grant) for a realm user."""
        password = self.admin_password if realm == "master" else self.users[username]
        response = self._http.post(
            f"{self.base_url}/realms/{realm or self.realm}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": client_id,
                "username": username,
                "password": password,
            },
        )
        token: str = response.raise_for_status().json()["access_token"]
        return token

    def admin(self, method: str, path: str, body: Any = None) -> httpx2.Response:
        """One admin REST call (``/admin/realms/<realm>`` + ``path``) as the bootstrap admin."""
        token = self.password_token("admin-cli", ADMIN_USER, realm="master")
        response = self._http.request(
            method,
            f"{self.base_url}/admin/realms/{self.realm}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        return response.raise_for_status()

    def add_rsa_key(self) -> str:
        """Add a generated RS256 key provider above every other key; return the new signing ``kid``."""
        realm_id = self.admin("GET", "").json()["id"]
        priority = max(int(k.get("providerPriority", 0)) for k in self.admin("GET", "/keys").json()["keys"])
        config = {"priority": [str(priority + 100)], "algorithm": ["RS256"], "active": ["true"]}
        provider = {
            "name": f"rotated-{secrets.token_hex(4)}",
            "providerId": "rsa-generated",
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": config,
        }
        component = self.admin("POST", "/components", provider).headers["location"].rsplit("/", 1)[1]
        keys = self.admin("GET", "/keys").json()["keys"]
        return next(str(k["kid"]) for k in keys if k.get("providerId") == component and k.get("use") == "SIG")

    def rss_bytes(self) -> int:
        """Resident memory of the server's process group (for reports)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.process.pid:  # pgrp
                    total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # rss pages
        return total

    def wait_ready(self, deadline_s: float = START_TIMEOUT_S) -> None:
        """Wait until the realm's discovery document answers; :class:`BackendStartError` otherwise."""
        started = time.monotonic()
        while time.monotonic() - started < deadline_s:
            if self.process.poll() is not None:
                raise BackendStartError(f"Keycloak exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx2.HTTPError, ValueError):
                if self.discovery().get("issuer") == self.issuer:
                    self.startup_s = time.monotonic() - started
                    return
            time.sleep(0.5)
        raise BackendStartError(f"Keycloak not ready within {deadline_s:g} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Stop the process group (TERM, then KILL) and delete the temporary home."""
        self._http.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.base, ignore_errors=True)


def _start(
    distribution: Path, java: Path, realm: dict[str, Any], settings: KeycloakSettings
) -> KeycloakServer:
    base = Path(tempfile.mkdtemp(prefix="fleetdeck-keycloak-"))
    try:
        home = _private_home(distribution, base, realm)
        port, management_port = free_port(), free_port()
        admin_password = secrets.token_urlsafe(18)
        env = {
            **os.environ,
            "JAVA_HOME": str(java),
            "JAVA_OPTS_KC_HEAP": settings.heap,
            "JAVA_OPTS_APPEND": "-XX:TieredStopAtLevel=1",  # C1 only: faster start on few shared cores
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": admin_password,
        }
        env.pop("JAVA_OPTS", None)
        command = [
            str(home / "bin" / "kc.sh"),
            "start-dev",
            "--http-host=127.0.0.1",
            f"--http-port={port}",
            f"--http-management-port={management_port}",
            "--import-realm",
        ]
        with (base / "keycloak.log").open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own arguments
                command, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    server = KeycloakServer(process, base, port, realm)
    server.admin_password = admin_password
    return server


def launch_keycloak(realm: dict[str, Any]) -> KeycloakServer:
    """Start Keycloak with ``realm`` imported and wait for it; :class:`BackendStartError` if it cannot."""
    settings = KeycloakSettings()
    java = find_java()
    distribution = ensure_distribution(settings)
    for attempt in range(START_ATTEMPTS):
        server = _start(distribution, java, realm, settings)
        try:
            server.wait_ready(settings.start_timeout_s)
        except BackendStartError:
            retry = "Address already in use" in server.log_tail(20_000) and attempt < START_ATTEMPTS - 1
            server.close()
            if retry:
                continue
            raise
        except BaseException:
            server.close()
            raise
        rebuilt = _keep_dev_build(server, distribution)
        logger.info(
            "Keycloak ready in %.1f s (%s), %d MiB resident",
            server.startup_s,
            "with a start-dev build" if rebuilt else "cached build",
            server.rss_bytes() >> 20,
        )
        return server
    raise BackendStartError("Keycloak could not bind a free port")

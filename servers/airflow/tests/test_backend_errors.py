"""The REST backend against a fake Airflow: credentials, retries, timeouts and clear errors."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fleetdeck import plugins
from fleetdeck.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
)
from fleetdeck_airflow.backend import RestAirflowBackend
from fleetdeck_airflow.plugin import plugin
from fleetdeck_airflow.settings import AirflowSettings
from fleetdeck_testkit.backends import free_port

HEALTHY = {
    "metadatabase": {"status": "healthy"},
    "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-01-01T00:00:00+00:00"},
    "triggerer": {"status": None, "latest_triggerer_heartbeat": None},
    "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": None},
}
RUN = {
    "dag_id": "d",
    "dag_run_id": "r1",
    "state": "queued",
    "run_type": "manual",
    "run_after": "2026-01-01T00:00:00Z",
    "dag_versions": [],
    "conf": {},
    "dag_display_name": "d",
}


def jwt(exp: float) -> str:
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': 'svc', 'exp': int(exp)})}.c2ln"


class FakeAirflow:
    """Answers token, health and trigger requests as the test sets ``mode``; counts requests."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.token_lifetime_s = 3600.0
        self.calls: Counter[str] = Counter()
        self.authorizations: list[str] = []
        self.reject_next_token = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up
                    self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.calls[self.command + " " + self.path] += 1
                if self.path == "/auth/token":
                    if body.get("password") != "right":
                        self._answer(401, {"detail": "Invalid credentials"})
                    else:
                        self._answer(201, {"access_token": jwt(time.time() + fake.token_lifetime_s)})
                    return
                fake.authorizations.append(self.headers.get("Authorization") or "")
                if fake.mode == "500":
                    self._answer(500, {"detail": "boom"})
                elif fake.mode == "409":
                    self._answer(409, {"detail": "exists"})
                else:
                    self._answer(200, RUN)

            def do_GET(self) -> None:
                fake.calls[self.command + " " + self.path.split("?")[0]] += 1
                fake.authorizations.append(self.headers.get("Authorization") or "")
                if fake.reject_next_token:
                    fake.reject_next_token = False
                    self._answer(401, {"detail": "token expired"})
                elif fake.mode in ("ok", "409") and "/dagRuns/" in self.path:
                    self._answer(200, RUN)
                elif fake.mode == "ok":
                    self._answer(200, HEALTHY)
                elif fake.mode == "garbage":
                    self._answer(200, None, raw=b"{not json")
                elif fake.mode == "wrong-shape":
                    self._answer(200, {"scheduler": "yes"})
                elif fake.mode == "slow":
                    time.sleep(1.5)
                    self._answer(200, HEALTHY)
                else:
                    self._answer(int(fake.mode), {"detail": "no"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeAirflow]:
    server = FakeAirflow()
    yield server
    server.close()


def backend(url: str, **overrides: Any) -> RestAirflowBackend:
    values: dict[str, Any] = {"url": url, "username": "svc", "password": "right", "read_timeout_s": 0.5}
    values.update(overrides)
    return RestAirflowBackend(AirflowSettings.load(**values))


async def test_the_server_authenticates_with_its_own_token_and_reuses_it(fake: FakeAirflow) -> None:
    client = backend(fake.url)
    await client.get_dag_run("d", "r1")
    await client.get_dag_run("d", "r1")
    assert fake.calls["POST /auth/token"] == 1
    assert fake.authorizations[0].startswith("Bearer ey")
    assert len(set(fake.authorizations)) == 1


async def test_a_token_close_to_expiry_is_replaced_before_use(fake: FakeAirflow) -> None:
    fake.token_lifetime_s = 30  # inside the 60 s refresh margin
    client = backend(fake.url)
    await client.get_dag_run("d", "r1")
    await client.get_dag_run("d", "r1")
    assert fake.calls["POST /auth/token"] == 2


async def test_a_rejected_token_is_fetched_again_once(fake: FakeAirflow) -> None:
    client = backend(fake.url)
    await client.get_dag_run("d", "r1")
    fake.reject_next_token = True
    run = await client.get_dag_run("d", "r1")
    assert run.run_id == "r1"
    assert fake.calls["POST /auth/token"] == 2


async def test_a_configured_bearer_token_is_used_as_is(fake: FakeAirflow) -> None:
    client = backend(fake.url, username=None, password=None, token="configured-token")
    await client.get_dag_run("d", "r1")
    assert fake.calls["POST /auth/token"] == 0
    assert fake.authorizations == ["Bearer configured-token"]


async def test_wrong_credentials_are_named(fake: FakeAirflow) -> None:
    with pytest.raises(BackendError, match="refused the server's own credentials"):
        await backend(fake.url, password="wrong").get_dag_run("d", "r1")


async def test_missing_url_or_credentials_fail_calls_not_the_build() -> None:
    unconfigured = RestAirflowBackend(AirflowSettings.load(url=None))
    anonymous = RestAirflowBackend(AirflowSettings.load(url="http://x", username=None, password=None))
    with pytest.raises(ConfigError, match=r"airflow\.url"):
        await unconfigured.health()
    with pytest.raises(ConfigError, match=r"airflow\.token"):
        await anonymous.list_dags(limit=1, offset=0, tags=[], owners=[], paused=None, name=None)


async def test_the_plugin_is_skipped_with_a_reason_when_airflow_is_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLEETDECK_AIRFLOW__URL", raising=False)
    monkeypatch.delenv("FLEETDECK_CONFIG", raising=False)
    assert "no Airflow is configured" in (await plugin.available(None) or "")
    monkeypatch.setenv("FLEETDECK_AIRFLOW__URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FLEETDECK_AIRFLOW__TOKEN", "t")
    assert "unreachable" in (await plugin.available(None) or "")
    assert plugins.get("airflow") is plugin
    assert plugin.default_port == 8103


async def test_server_errors_are_retried_for_reads_only(fake: FakeAirflow) -> None:
    fake.mode = "500"
    client = backend(fake.url, read_retries=2)
    with pytest.raises(BackendUnavailableError, match=r"failed to report its health \(HTTP 500\)"):
        await client.health()
    with pytest.raises(BackendUnavailableError, match="HTTP 500"):
        await client.clear_task_instances("d", "r1", ["t"], only_failed=True, downstream=False, note="n")
    assert fake.calls["GET /api/v2/monitor/health"] == 3
    assert fake.calls["POST /api/v2/dags/d/clearTaskInstances"] == 1


async def test_a_repeated_trigger_returns_the_existing_run(fake: FakeAirflow) -> None:
    fake.mode = "409"
    run, created = await backend(fake.url).trigger_dag_run("d", "r1", {}, "note")
    assert created is False
    assert run.run_id == "r1"


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("garbage", BackendError, "malformed data to report its health"),
        ("wrong-shape", BackendError, "malformed data"),
        ("403", BackendError, "the server's Airflow account may not report its health"),
        ("404", NotFoundError, "not found in Airflow"),
        ("422", InvalidInputError, "Airflow refused to report its health: no"),
        ("slow", BackendTimeoutError, r"did not answer in time \(0.5 s\)"),
    ],
)
async def test_backend_failures_become_clear_errors(
    fake: FakeAirflow, mode: str, error: type[Exception], text: str
) -> None:
    fake.mode = mode
    with pytest.raises(error, match=text):
        await backend(fake.url, read_retries=0).health()


async def test_an_airflow_that_is_down_is_unreachable_not_slow() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailableError, match="is unreachable"):
        await backend(url, read_retries=1).health()


async def test_a_missing_run_is_not_found_before_its_task_instances_are_listed(fake: FakeAirflow) -> None:
    fake.mode = "404"
    with pytest.raises(NotFoundError, match="run 'r9' of 'd'"):
        await backend(fake.url).get_dag_run_with_task_instances("d", "r9", limit=10)
    assert fake.calls["GET /api/v2/dags/d/dagRuns/r9"] == 1
    assert fake.calls["GET /api/v2/dags/d/dagRuns/r9/taskInstances"] == 0

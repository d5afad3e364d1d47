"""The History Server source against fake servers: many servers, retries, outages, bounded answers."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from fleetdeck.errors import BackendError, BackendUnavailableError, NotFoundError
from fleetdeck_spark.history import HistoryServerSource, epoch_ms
from fleetdeck_spark.source import AppQuery

APP = "app-20260101-0001"
ONE, TWO = "http://shs-1:18080", "http://shs-2:18080"


def application(app_id: str = APP, start: int = 1_790_000_000_000) -> dict[str, Any]:
    return {
        "id": app_id,
        "name": "nightly-etl",
        "attempts": [
            {"startTimeEpoch": start, "endTimeEpoch": start + 6_000, "completed": True, "sparkUser": "etl",
             "appSparkVersion": "4.3.0"}
        ],
    }  # fmt: skip


def stage(failed: int = 1) -> dict[str, Any]:
    return {
        "stageId": 0, "attemptId": 0, "name": "collect at etl.py:20", "status": "FAILED", "numTasks": 4,
        "numCompleteTasks": 3, "numFailedTasks": failed, "numKilledTasks": 0,
        "submissionTime": "2026-01-01T00:00:00.000GMT", "completionTime": "2026-01-01T00:00:04.500GMT",
        "failureReason": "Job aborted due to stage failure: PythonException: ValueError: bad row 7",
        "taskMetricsDistributions": {"quantiles": [0.0, 0.25, 0.5, 0.75, 1.0], "duration": [1, 2, 3, 4, 5]},
    }  # fmt: skip


FAILED_TASK = {
    "taskId": 3,
    "executorId": "1",
    "status": "FAILED",
    "errorMessage": "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
    '  File "/jobs/etl.py", line 12, in enrich\nValueError: bad row 7\n',
}


class FakeServers:
    """Routes requests to per-host handlers and counts them."""

    def __init__(self, apps: dict[str, list[str]], *, flaky: int = 0, down: tuple[str, ...] = ()) -> None:
        self.apps = apps
        self.flaky = flaky
        self.down = down
        self.calls: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        host = f"http://{request.url.host}:{request.url.port}"
        self.calls.append(f"{host}{request.url.path}")
        if host in self.down:
            raise httpx2.ConnectError("connection refused", request=request)
        if self.flaky:
            self.flaky -= 1
            return httpx2.Response(503)
        path = request.url.path.removeprefix("/api/v1/applications")
        held = self.apps.get(host, [])
        if path == "":
            return httpx2.Response(200, json=[application(a) for a in held])
        app_id, _, rest = path.strip("/").partition("/")
        if app_id not in held:
            return httpx2.Response(404, text="no such app")
        answers: dict[str, Any] = {
            "": application(app_id),
            "jobs": [{"jobId": 0, "status": "FAILED", "stageIds": [0], "name": "collect at etl.py:20"}],
            "stages": [stage()],
            "allexecutors": [{"id": "1", "hostPort": "worker-1:4040", "totalCores": 4}],
            "sql": [
                {"id": 0, "status": "FAILED", "errorMessage": "ValueError: bad row 7", "failedJobIds": [0]}
            ],
            "environment": {"sparkProperties": [["spark.executor.memory", "4g"], ["spark.db.password", "x"]]},
            "stages/0/0/taskList": [FAILED_TASK],
        }
        return httpx2.Response(200, content=json.dumps(answers[rest]).encode())


def source(fake: FakeServers, urls: list[str], **options: Any) -> HistoryServerSource:
    return HistoryServerSource(urls, transport=httpx2.MockTransport(fake), **options)


async def test_an_application_is_read_from_whichever_server_holds_it() -> None:
    fake = FakeServers({ONE: ["app-other"], TWO: [APP]})
    app = await source(fake, [ONE, TWO]).get_application(APP)
    assert app.summary.source == TWO
    assert app.failures[0].python_error == "ValueError: bad row 7"
    assert app.jobs[0].sql_execution_id == 0
    assert app.config["spark.db.password"] == "*********(redacted)"
    assert app.stages[0].quantiles is not None
    assert app.stages[0].quantiles.duration_ms == [1, 2, 3, 4, 5]


async def test_listing_merges_servers_and_names_the_one_that_is_down() -> None:
    fake = FakeServers({ONE: ["app-a"], TWO: ["app-b"]}, down=(TWO,))
    listing = await source(fake, [ONE, TWO], retries=1).list_applications(AppQuery())
    assert [a.app_id for a in listing.applications] == ["app-a"]
    assert listing.unreachable == [TWO]


async def test_idempotent_reads_are_retried_through_a_brief_outage() -> None:
    fake = FakeServers({ONE: [APP]}, flaky=2)
    listing = await source(fake, [ONE], retries=2).list_applications(AppQuery())
    assert [a.app_id for a in listing.applications] == [APP]
    assert len(fake.calls) == 3


async def test_every_server_down_is_a_clear_unavailable_error() -> None:
    fake = FakeServers({}, down=(ONE, TWO))
    with pytest.raises(BackendUnavailableError, match="shs-1"):
        await source(fake, [ONE, TWO], retries=0).get_application(APP)


async def test_an_application_no_server_holds_is_not_found() -> None:
    with pytest.raises(NotFoundError, match=APP):
        await source(FakeServers({ONE: [], TWO: []}), [ONE, TWO]).get_application(APP)


async def test_an_oversized_answer_is_refused() -> None:
    fake = FakeServers({ONE: [f"app-{i:06d}" for i in range(2000)]})
    with pytest.raises(BackendUnavailableError):
        await source(fake, [ONE], max_response_bytes=10_000).list_applications(AppQuery())


async def test_an_oversized_answer_from_one_server_is_reported_as_a_backend_error() -> None:
    fake = FakeServers({ONE: [APP]})
    fake.apps[ONE] = [APP]
    with pytest.raises(BackendError):
        await source(fake, [ONE], max_response_bytes=100).get_application(APP)


def test_history_server_times_read_as_epoch_milliseconds() -> None:
    assert epoch_ms("2026-11-30T03:49:40.427GMT") == 1796010580427
    assert epoch_ms("garbage") is None


async def test_credentials_in_a_server_url_never_reach_messages_or_results() -> None:
    secret_url = "http://admin:s3cr3t@shs-1:18080"
    fake = FakeServers({}, down=(ONE,))
    history = source(fake, [secret_url], retries=0)
    assert "s3cr3t" not in history.description
    with pytest.raises(BackendUnavailableError) as failure:
        await history.list_applications(AppQuery())
    assert "s3cr3t" not in str(failure.value)

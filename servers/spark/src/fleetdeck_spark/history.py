"""The History Server source: Spark's REST API (``/api/v1``) on one or many History Servers.

An application is looked up on every server at once and read from the one that holds it. Every
request has a timeout and a response-size cap; idempotent reads are retried on connection errors
and 502/503/504 with a short backoff. A server that is down is named in the error.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx2

from fleetdeck.errors import BackendError, BackendTimeoutError, BackendUnavailableError, NotFoundError
from fleetdeck_spark.failures import FailureCollector, kind_of
from fleetdeck_spark.model import (
    QUANTILES,
    Application,
    AppSummary,
    Executor,
    Job,
    Quantiles,
    SlowTask,
    SqlExecution,
    Stage,
)
from fleetdeck_spark.redaction import clip, redact_config, redact_text
from fleetdeck_spark.replay import REASON_LIMIT, TEXT_LIMIT
from fleetdeck_spark.source import AppListing, AppQuery, check_app_id

logger = logging.getLogger(__name__)

RETRY_STATUS = {502, 503, 504}
MAX_FAILED_STAGES = 20
TASKS_PER_STAGE = 50
QUANTILE_PARAM = ",".join(str(q) for q in QUANTILES)


class NotThere(Exception):
    """The server answered 404."""


def epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds of a History Server time (``2026-11-30T03:49:40.427GMT``)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.strptime(value.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(parsed.timestamp() * 1000)


def _date_param(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}GMT"


def _series(values: Any) -> list[float]:
    return [float(v) for v in values] if isinstance(values, list) and len(values) == len(QUANTILES) else []


def _quantiles(dist: dict[str, Any] | None) -> Quantiles | None:
    if not dist:
        return None
    series = {
        "duration_ms": _series(dist.get("duration")),
        "run_time_ms": _series(dist.get("executorRunTime")),
        "gc_time_ms": _series(dist.get("jvmGcTime")),
        "input_bytes": _series((dist.get("inputMetrics") or {}).get("bytesRead")),
        "shuffle_read_bytes": _series((dist.get("shuffleReadMetrics") or {}).get("readBytes")),
        "shuffle_write_bytes": _series((dist.get("shuffleWriteMetrics") or {}).get("writeBytes")),
        "memory_spilled_bytes": _series(dist.get("memoryBytesSpilled")),
        "disk_spilled_bytes": _series(dist.get("diskBytesSpilled")),
        "peak_execution_memory_bytes": _series(dist.get("peakExecutionMemory")),
    }
    if not series["duration_ms"]:
        return None
    return Quantiles(**{k: v or [0.0] * len(QUANTILES) for k, v in series.items()})


def _stage(data: dict[str, Any]) -> Stage:
    submitted, completed = epoch_ms(data.get("submissionTime")), epoch_ms(data.get("completionTime"))
    return Stage(
        stage_id=int(data["stageId"]),
        attempt=int(data.get("attemptId", 0)),
        name=str(data.get("name", "")),
        status=str(data.get("status", "UNKNOWN")),
        num_tasks=int(data.get("numTasks", 0)),
        completed_tasks=int(data.get("numCompleteTasks", 0)),
        failed_tasks=int(data.get("numFailedTasks", 0)),
        killed_tasks=int(data.get("numKilledTasks", 0)),
        submission_ms=submitted,
        completion_ms=completed,
        duration_ms=completed - submitted if completed is not None and submitted is not None else None,
        failure_reason=clip(data.get("failureReason"), REASON_LIMIT),
        input_bytes=int(data.get("inputBytes", 0)),
        output_bytes=int(data.get("outputBytes", 0)),
        shuffle_read_bytes=int(data.get("shuffleReadBytes", 0)),
        shuffle_write_bytes=int(data.get("shuffleWriteBytes", 0)),
        memory_spilled_bytes=int(data.get("memoryBytesSpilled", 0)),
        disk_spilled_bytes=int(data.get("diskBytesSpilled", 0)),
        run_time_ms=int(data.get("executorRunTime", 0)),
        gc_time_ms=int(data.get("jvmGcTime", 0)),
        quantiles=_quantiles(data.get("taskMetricsDistributions")),
    )


def _summary(data: dict[str, Any], server: str) -> AppSummary:
    attempt = (data.get("attempts") or [{}])[0]
    completed = bool(attempt.get("completed"))
    start, end = attempt.get("startTimeEpoch"), attempt.get("endTimeEpoch")
    end = end if completed and isinstance(end, int) and end > 0 else None
    return AppSummary(
        app_id=str(data["id"]),
        attempt_id=attempt.get("attemptId"),
        name=clip(str(data.get("name", data["id"])), TEXT_LIMIT) or str(data["id"]),
        user=attempt.get("sparkUser"),
        status="completed" if completed else "running",
        start_ms=start,
        end_ms=end,
        duration_ms=end - start if end is not None and isinstance(start, int) else None,
        spark_version=attempt.get("appSparkVersion"),
        source=redact_text(server),
    )


class HistoryServerSource:
    """Spark applications from one or many History Servers."""

    def __init__(
        self,
        urls: list[str],
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        max_response_bytes: int = 64 * 1024 * 1024,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        if not urls:
            raise BackendUnavailableError("no History Server URL is configured")
        self.urls = [url.rstrip("/") for url in urls]
        self.description = redact_text(f"History Server(s) {', '.join(self.urls)}")
        self._timeout = timeout_s
        self._retries = retries
        self._max_bytes = max_response_bytes
        self._transport = transport
        self._homes: OrderedDict[str, str] = OrderedDict()

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx2.AsyncClient]:
        limits = httpx2.Limits(max_connections=8, max_keepalive_connections=8)
        async with httpx2.AsyncClient(
            timeout=self._timeout, limits=limits, transport=self._transport, follow_redirects=False
        ) as client:
            yield client

    async def _get(self, client: httpx2.AsyncClient, url: str, params: dict[str, Any] | None = None) -> Any:
        shown = redact_text(url)
        for attempt in range(self._retries + 1):
            try:
                async with client.stream("GET", url, params=params) as response:
                    if response.status_code == 404:
                        raise NotThere(shown)
                    if response.status_code in RETRY_STATUS and attempt < self._retries:
                        await anyio.sleep(0.2 * (attempt + 1))
                        continue
                    if response.status_code != 200:
                        raise BackendError(f"the History Server answered {response.status_code} for {shown}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self._max_bytes:
                            raise BackendError(
                                f"the History Server's answer for {shown} exceeds {self._max_bytes} bytes"
                            )
                    return httpx2.Response(200, content=bytes(body)).json()
            except httpx2.TimeoutException as exc:
                if attempt >= self._retries:
                    raise BackendTimeoutError(
                        f"the History Server at {shown} did not answer in {self._timeout:g} s"
                    ) from exc
            except httpx2.TransportError as exc:
                if attempt >= self._retries:
                    raise BackendUnavailableError(
                        f"the History Server for {shown} is unreachable ({type(exc).__name__})"
                    ) from exc
            except ValueError as exc:
                raise BackendError(f"the History Server sent invalid JSON for {shown}") from exc
            await anyio.sleep(0.2 * (attempt + 1))
        raise BackendUnavailableError(f"the History Server for {shown} keeps failing")

    # -- discovery -----------------------------------------------------------------------------------

    async def check(self) -> None:
        """Return when at least one History Server answers."""
        failures: list[str] = []

        async def probe(client: httpx2.AsyncClient, url: str) -> None:
            try:
                await self._get(client, f"{url}/api/v1/version")
            except (BackendError, NotThere) as exc:
                failures.append(f"{redact_text(url)} ({type(exc).__name__})")

        async with self._client() as client, anyio.create_task_group() as group:
            for url in self.urls:
                group.start_soon(probe, client, url)
        if len(failures) == len(self.urls):
            raise BackendUnavailableError(f"no History Server is reachable: {', '.join(sorted(failures))}")

    async def list_applications(self, query: AppQuery) -> AppListing:
        params: dict[str, Any] = {"limit": max(query.limit * 4, 100)}
        if query.status:
            params["status"] = query.status
        if query.started_after_ms is not None:
            params["minDate"] = _date_param(query.started_after_ms)
        if query.started_before_ms is not None:
            params["maxDate"] = _date_param(query.started_before_ms)
        found: list[AppSummary] = []
        unreachable: list[str] = []

        async def one(client: httpx2.AsyncClient, server: str) -> None:
            try:
                data = await self._get(client, f"{server}/api/v1/applications", params)
            except (BackendError, NotThere) as exc:
                logger.warning("History Server %s failed: %s", server, type(exc).__name__)
                unreachable.append(redact_text(server))
                return
            found.extend(_summary(item, server) for item in data if isinstance(item, dict))

        async with self._client() as client, anyio.create_task_group() as group:
            for server in self.urls:
                group.start_soon(one, client, server)
        if len(unreachable) == len(self.urls):
            raise BackendUnavailableError(f"no History Server answered: {', '.join(sorted(unreachable))}")
        apps = sorted((a for a in found if query.accepts(a)), key=lambda a: a.start_ms or 0, reverse=True)
        return AppListing(applications=apps[: query.limit], unreachable=sorted(unreachable))

    async def _locate(self, client: httpx2.AsyncClient, app_id: str) -> tuple[str, AppSummary]:
        check_app_id(app_id)
        servers = list(self.urls)
        home = self._homes.get(app_id)
        if home in servers:
            servers.remove(home)
            servers.insert(0, home)
        hits: list[tuple[int, str, AppSummary]] = []
        errors: list[str] = []

        async def probe(rank: int, server: str) -> None:
            try:
                data = await self._get(client, f"{server}/api/v1/applications/{app_id}")
            except NotThere:
                return
            except BackendError as exc:
                errors.append(f"{redact_text(server)} ({type(exc).__name__})")
                return
            hits.append((rank, server, _summary(data, server)))

        async with anyio.create_task_group() as group:
            for rank, server in enumerate(servers):
                group.start_soon(probe, rank, server)
        if not hits:
            down = f"; unreachable: {', '.join(sorted(errors))}" if errors else ""
            if errors and len(errors) == len(servers):
                raise BackendUnavailableError(f"no History Server answered for {app_id}{down}")
            raise NotFoundError(f"no History Server knows application {app_id}{down}")
        _, server, summary = min(hits, key=lambda hit: hit[0])
        self._homes[app_id] = server
        while len(self._homes) > 1024:
            self._homes.popitem(last=False)
        return server, summary

    @staticmethod
    def _base(server: str, summary: AppSummary) -> str:
        attempt = f"/{summary.attempt_id}" if summary.attempt_id else ""
        return f"{server}/api/v1/applications/{summary.app_id}{attempt}"

    # -- reading -------------------------------------------------------------------------------------

    async def get_application(self, app_id: str) -> Application:
        async with self._client() as client:
            server, summary = await self._locate(client, app_id)
            base = self._base(server, summary)
            parts: dict[str, Any] = {}

            async def fetch(name: str, path: str, params: dict[str, Any] | None = None) -> None:
                try:
                    parts[name] = await self._get(client, base + path, params)
                except NotThere:
                    parts[name] = None

            async with anyio.create_task_group() as group:
                group.start_soon(fetch, "jobs", "/jobs")
                group.start_soon(
                    fetch, "stages", "/stages", {"withSummaries": "true", "quantiles": QUANTILE_PARAM}
                )
                group.start_soon(fetch, "executors", "/allexecutors")
                group.start_soon(fetch, "sql", "/sql", {"details": "false", "length": 1000})
                group.start_soon(fetch, "environment", "/environment")
            stages = [_stage(s) for s in parts["stages"] or []]
            failures = await self._failures(client, base, stages)
        return self._application(summary, parts, stages, failures)

    async def _failures(self, client: httpx2.AsyncClient, base: str, stages: list[Stage]) -> FailureCollector:
        collector = FailureCollector()
        troubled = [s for s in stages if s.failed_tasks or s.killed_tasks][:MAX_FAILED_STAGES]
        for stage in sorted(troubled, key=lambda s: (s.stage_id, s.attempt)):
            for status in ("FAILED", "KILLED"):
                if not (stage.failed_tasks if status == "FAILED" else stage.killed_tasks):
                    continue
                path = f"{base}/stages/{stage.stage_id}/{stage.attempt}/taskList"
                tasks = await self._get(client, path, {"status": status, "length": TASKS_PER_STAGE})
                for task in sorted(tasks, key=lambda t: int(t.get("taskId", 0))):
                    error = str(task.get("errorMessage") or "")
                    collector.add(
                        "killed" if status == "KILLED" else kind_of(error),
                        error,
                        stage_id=stage.stage_id,
                        task_id=int(task.get("taskId", 0)),
                        executor_id=task.get("executorId"),
                    )
        return collector

    @staticmethod
    def _application(
        summary: AppSummary, parts: dict[str, Any], stages: list[Stage], failures: FailureCollector
    ) -> Application:
        sql = []
        job_sql: dict[int, int] = {}
        for item in parts.get("sql") or []:
            job_ids = sorted(
                {
                    *item.get("runningJobIds", []),
                    *item.get("successJobIds", []),
                    *item.get("failedJobIds", []),
                }
            )
            for job_id in job_ids:
                job_sql[int(job_id)] = int(item["id"])
            sql.append(
                SqlExecution(
                    execution_id=int(item["id"]),
                    description=clip(str(item.get("description", "")), TEXT_LIMIT) or "",
                    status=str(item.get("status", "UNKNOWN")),
                    start_ms=epoch_ms(item.get("submissionTime")),
                    duration_ms=item.get("duration"),
                    error=clip(item.get("errorMessage"), REASON_LIMIT),
                    job_ids=job_ids,
                )
            )
        jobs = []
        for item in parts.get("jobs") or []:
            submitted, completed = epoch_ms(item.get("submissionTime")), epoch_ms(item.get("completionTime"))
            jobs.append(
                Job(
                    job_id=int(item["jobId"]),
                    status=str(item.get("status", "UNKNOWN")),
                    name=clip(str(item.get("name", "")), TEXT_LIMIT) or "",
                    stage_ids=sorted(int(s) for s in item.get("stageIds", [])),
                    submission_ms=submitted,
                    completion_ms=completed,
                    duration_ms=completed - submitted
                    if completed is not None and submitted is not None
                    else None,
                    sql_execution_id=job_sql.get(int(item["jobId"])),
                )
            )
        executors = [
            Executor(
                executor_id=str(item["id"]),
                host=str(item.get("hostPort", "")).rsplit(":", 1)[0] or None,
                cores=item.get("totalCores"),
                max_memory_bytes=item.get("maxMemory"),
                added_ms=epoch_ms(item.get("addTime")),
                removed_ms=epoch_ms(item.get("removeTime")),
                removed_reason=clip(item.get("removeReason"), REASON_LIMIT),
                completed_tasks=int(item.get("completedTasks", 0)),
                failed_tasks=int(item.get("failedTasks", 0)),
            )
            for item in parts.get("executors") or []
        ]
        environment = parts.get("environment") or {}
        props = {str(p[0]): p[1] for p in environment.get("sparkProperties", []) if len(p) == 2}
        notes = (
            [f"{failures.dropped} task failure(s) with other causes not grouped"] if failures.dropped else []
        )
        return Application(
            summary=summary,
            jobs=sorted(jobs, key=lambda j: j.job_id),
            stages=sorted(stages, key=lambda s: (s.stage_id, s.attempt)),
            failures=failures.groups(),
            executors=sorted(executors, key=lambda e: e.executor_id),
            sql=sorted(sql, key=lambda s: s.execution_id),
            config=redact_config(props),
            notes=notes,
        )

    async def get_stage(self, app_id: str, stage_id: int, attempt: int | None) -> Stage:
        async with self._client() as client:
            server, summary = await self._locate(client, app_id)
            base = self._base(server, summary)
            params = {"withSummaries": "true", "quantiles": QUANTILE_PARAM}
            try:
                data = await self._get(client, f"{base}/stages/{stage_id}", params)
            except NotThere as exc:
                raise NotFoundError(f"application {app_id} has no stage {stage_id}") from exc
            attempts = [d for d in data if attempt is None or int(d.get("attemptId", 0)) == attempt]
            if not attempts:
                raise NotFoundError(f"application {app_id} has no attempt {attempt} of stage {stage_id}")
            stage = _stage(max(attempts, key=lambda d: int(d.get("attemptId", 0))))
            path = f"{base}/stages/{stage.stage_id}/{stage.attempt}/taskList"
            tasks = await self._get(client, path, {"status": "SUCCESS", "sortBy": "-runtime", "length": 5})
        stage.slowest_tasks = sorted(
            (
                SlowTask(
                    task_id=int(t["taskId"]),
                    index=int(t.get("index", 0)),
                    executor_id=str(t.get("executorId", "")),
                    duration_ms=int(t.get("duration", 0)),
                    shuffle_read_bytes=int(
                        ((t.get("taskMetrics") or {}).get("shuffleReadMetrics") or {}).get(
                            "remoteBytesRead", 0
                        )
                    )
                    + int(
                        ((t.get("taskMetrics") or {}).get("shuffleReadMetrics") or {}).get(
                            "localBytesRead", 0
                        )
                    ),
                    spilled_bytes=int((t.get("taskMetrics") or {}).get("memoryBytesSpilled", 0))
                    + int((t.get("taskMetrics") or {}).get("diskBytesSpilled", 0)),
                )
                for t in tasks
            ),
            key=lambda t: -t.duration_ms,
        )
        return stage

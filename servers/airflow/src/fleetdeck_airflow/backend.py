"""The Airflow backend: a Protocol and its REST implementation (with :mod:`.responses`, the only
modules importing the client).

:class:`RestAirflowBackend` talks to Airflow 3's ``/api/v2`` through ``apache-airflow-client`` with
the server's *own* credentials (a token from the simple auth manager's ``POST /auth/token``,
refreshed before it expires, or a configured bearer token); the end user's token never reaches
Airflow. Every request has connect/read timeouts; only idempotent requests are retried; every
failure becomes an error of :mod:`fleetdeck.errors` naming what failed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import anyio
import urllib3
from airflow_client.client import ApiClient, Configuration
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.import_error_api import ImportErrorApi
from airflow_client.client.api.monitor_api import MonitorApi
from airflow_client.client.api.task_api import TaskApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.exceptions import ApiException, OpenApiException
from airflow_client.client.models.clear_task_instances_body import ClearTaskInstancesBody
from airflow_client.client.models.clear_task_instances_body_task_ids_inner import (
    ClearTaskInstancesBodyTaskIdsInner,
)
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.dag_run_clear_body import DAGRunClearBody
from airflow_client.client.models.dag_run_patch_body import DAGRunPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

from fleetdeck.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
)
from fleetdeck_airflow import convert
from fleetdeck_airflow.logs import split_lines
from fleetdeck_airflow.models import (
    ComponentHealth,
    DagRunSummary,
    DagSummary,
    ImportProblem,
    TaskInstanceSummary,
    TaskSummary,
)
from fleetdeck_airflow.responses import error_detail, jwt_expiry, raw_body
from fleetdeck_airflow.settings import AirflowSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
LineSink = Callable[[str], None]
PAGE = 100
NDJSON = "application/x-ndjson"
DEFAULT_TOKEN_LIFETIME_S = 600.0


class RunExistsError(InvalidInputError):
    """A DAG run with this id exists already (Airflow answered 409)."""


class AirflowBackend(Protocol):
    """What the tools need from Airflow."""

    environment: str

    async def check(self) -> None:
        """Return when Airflow's API answers; raise a BackendError otherwise."""

    async def health(self) -> list[ComponentHealth]:
        """Status of the metadatabase, scheduler, DAG processor and triggerer."""

    async def list_dags(
        self,
        *,
        limit: int,
        offset: int,
        tags: list[str],
        owners: list[str],
        paused: bool | None,
        name: str | None,
    ) -> tuple[list[DagSummary], int]:
        """One page of DAGs and the total number matching the filters."""

    async def get_dag(self, dag_id: str) -> DagSummary:
        """One DAG; NotFoundError when it does not exist."""

    async def list_tasks(self, dag_id: str) -> list[TaskSummary]:
        """The tasks of a DAG."""

    async def get_dag_detail(
        self, dag_id: str, *, recent_runs: int
    ) -> tuple[DagSummary, list[TaskSummary], list[DagRunSummary]]:
        """:meth:`get_dag`, :meth:`list_tasks` and its ``recent_runs`` latest runs, in one go."""

    async def list_dag_runs(self, dag_id: str, *, limit: int, states: list[str]) -> list[DagRunSummary]:
        """The most recent runs of a DAG, newest first."""

    async def get_dag_run(self, dag_id: str, run_id: str) -> DagRunSummary:
        """One run; NotFoundError when it does not exist."""

    async def list_task_instances(
        self, dag_id: str, run_id: str, *, limit: int, task_id: str | None = None
    ) -> list[TaskInstanceSummary]:
        """Up to ``limit`` task instances of a run (of one task when ``task_id``), by task id."""

    async def get_dag_run_with_task_instances(
        self, dag_id: str, run_id: str, *, limit: int
    ) -> tuple[DagRunSummary, list[TaskInstanceSummary]]:
        """:meth:`get_dag_run` and :meth:`list_task_instances` of that run, in one go."""

    async def stream_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int, sink: LineSink
    ) -> None:
        """Feed the task try's log to ``sink`` one raw line at a time (never held whole in memory)."""

    async def list_import_errors(self, *, limit: int) -> list[ImportProblem]:
        """DAG files that failed to import, newest first."""

    async def trigger_dag_run(
        self, dag_id: str, run_id: str, conf: dict[str, Any], note: str
    ) -> tuple[DagRunSummary, bool]:
        """Start a run with a client-chosen id; (the run, True) or (the existing run, False)."""

    async def clear_task_instances(
        self, dag_id: str, run_id: str, task_ids: list[str], *, only_failed: bool, downstream: bool, note: str
    ) -> list[TaskInstanceSummary]:
        """Clear task instances of a run so they run again; the cleared ones."""

    async def clear_dag_run(self, dag_id: str, run_id: str, *, only_failed: bool, note: str) -> list[str]:
        """Clear a whole run (or its failed tasks); the task ids cleared."""

    async def set_paused(self, dag_id: str, paused: bool) -> DagSummary:
        """Pause or unpause a DAG."""

    async def mark_dag_run(self, dag_id: str, run_id: str, state: str, note: str) -> DagRunSummary:
        """Set a run's state to success or failed, with a note."""


class RestAirflowBackend:
    """Airflow 3 over its REST API, with the server's own credentials."""

    def __init__(self, settings: AirflowSettings) -> None:
        """No I/O here; a missing URL or credentials fail every call (not the build) with a ConfigError."""
        self._problem: str | None = None
        if not settings.url:
            self._problem = "setting airflow.url (env FLEETDECK_AIRFLOW__URL) is required"
        elif settings.token is None and not (settings.username and settings.password):
            self._problem = "set airflow.token, or airflow.username and airflow.password"
        self.environment = settings.environment_name
        self._settings = settings
        self._base = (settings.url or "http://airflow.invalid").rstrip("/")
        config = Configuration(host=self._base)
        config.retries = False  # we retry idempotent reads ourselves
        self._config = config
        self._client = ApiClient(config)
        self._dags = DAGApi(self._client)
        self._runs = DagRunApi(self._client)
        self._tis = TaskInstanceApi(self._client)
        self._tasks = TaskApi(self._client)
        self._imports = ImportErrorApi(self._client)
        self._monitor = MonitorApi(self._client)
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._token_lock = threading.Lock()
        self._token_expires = 0.0
        if settings.token is not None:
            config.access_token = settings.token.get_secret_value()
            self._token_expires = float("inf")

    # -- credentials ---------------------------------------------------------------------------------

    def _ensure_token(self, force: bool = False) -> None:
        if self._problem is not None:
            raise ConfigError(self._problem)
        if self._settings.token is not None:
            return
        with self._token_lock:
            if not force and time.time() < self._token_expires - self._settings.token_refresh_margin_s:
                return
            self._config.access_token = self._fetch_token()

    def _fetch_token(self) -> str:
        password = self._settings.password.get_secret_value() if self._settings.password else ""
        body = json.dumps({"username": self._settings.username, "password": password})
        try:
            response = self._client.rest_client.pool_manager.request(
                "POST",
                f"{self._base}/auth/token",
                body=body,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=urllib3.Timeout(connect=self._timeout[0], read=self._timeout[1]),
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._transport_error("get a token", exc, True) from exc
        if response.status in (401, 403):
            raise BackendError(
                "Airflow refused the server's own credentials (check airflow.username/password)"
            )
        if response.status >= 300:
            raise BackendUnavailableError(f"Airflow's token endpoint answered HTTP {response.status}")
        try:
            token = json.loads(response.data)["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError("Airflow's token endpoint answered malformed JSON") from exc
        if not isinstance(token, str) or not token:
            raise BackendError("Airflow's token endpoint answered no access_token")
        self._token_expires = jwt_expiry(token) or time.time() + DEFAULT_TOKEN_LIFETIME_S
        return token

    # -- one call ------------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., T], *args: Any, retry: bool, **kwargs: Any) -> T:
        """Run one client call with timeouts, token refresh, retries (``retry`` only) and error mapping."""
        attempts = 1 + (self._settings.read_retries if retry else 0)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            self._ensure_token()
            try:
                return fn(*args, _request_timeout=self._timeout, **kwargs)
            except ApiException as exc:
                status = exc.status or 0
                if status == 401 and not refreshed and self._settings.token is None:
                    refreshed = True  # nothing happened on Airflow's side: safe to repeat once
                    self._ensure_token(force=True)
                    attempt -= 1
                    continue
                if status >= 500 and attempt < attempts:
                    time.sleep(0.2 * attempt)
                    continue
                raise self._api_error(what, exc) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if attempt < attempts:
                    time.sleep(0.2 * attempt)
                    continue
                raise self._transport_error(what, exc, retry) from exc
            except (OpenApiException, ValueError, TypeError) as exc:  # pydantic and JSON errors
                raise BackendError(f"Airflow answered malformed data to {what}") from exc

    def _transport_error(self, what: str, exc: Exception, idempotent: bool) -> Exception:
        """A connection or timeout failure as the error a caller can act on."""
        if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError):
            return BackendUnavailableError(
                f"Airflow at {self._base} is unreachable (connection refused or unknown host)"
                f" while trying to {what}"
            )
        if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
            return BackendUnavailableError(
                f"Airflow at {self._base} is unreachable (no connection within {self._timeout[0]:g} s)"
                f" while trying to {what}"
            )
        if isinstance(exc, urllib3.exceptions.TimeoutError):
            unknown = "" if idempotent else "; it may or may not have happened: check before repeating it"
            return BackendTimeoutError(
                f"Airflow did not answer in time ({self._timeout[1]:g} s) to {what}{unknown}"
            )
        return BackendUnavailableError(
            f"Airflow at {self._base} is unreachable ({type(exc).__name__}) while trying to {what}"
        )

    def _api_error(self, what: str, exc: ApiException) -> Exception:
        status = exc.status or 0
        detail = error_detail(exc)
        if status == 401:
            return BackendError(f"Airflow rejected the server's credentials (401) to {what}")
        if status == 403:
            return BackendError(f"the server's Airflow account may not {what} (403): ask the Airflow admins")
        if status == 404:
            return NotFoundError(f"not found in Airflow: {what} ({detail})")
        if status == 409:
            return RunExistsError(f"conflict in Airflow to {what}: {detail}")
        if status in (400, 422):
            return InvalidInputError(f"Airflow refused to {what}: {detail}")
        if status >= 500:
            return BackendUnavailableError(f"Airflow failed to {what} (HTTP {status})")
        return BackendError(f"Airflow answered HTTP {status} to {what}")

    async def _json(
        self,
        what: str,
        fn: Callable[..., urllib3.BaseHTTPResponse],
        *args: Any,
        retry: bool,
        shape: Callable[[Any], T],
        **kwargs: Any,
    ) -> T:
        """:meth:`_body` for a ``shape`` of the parsed JSON (small answers; lists use :mod:`.convert`)."""
        return await self._body(
            what, fn, *args, retry=retry, shape=lambda body: shape(json.loads(body)), **kwargs
        )

    async def _body(
        self,
        what: str,
        fn: Callable[..., urllib3.BaseHTTPResponse],
        *args: Any,
        retry: bool,
        shape: Callable[[bytes], T],
        **kwargs: Any,
    ) -> T:
        """:meth:`_fetch` in a worker thread (one hop off the event loop)."""
        return await anyio.to_thread.run_sync(
            lambda: self._fetch(what, fn, *args, retry=retry, shape=shape, **kwargs)
        )

    def _fetch(
        self,
        what: str,
        fn: Callable[..., urllib3.BaseHTTPResponse],
        *args: Any,
        retry: bool,
        shape: Callable[[bytes], T],
        **kwargs: Any,
    ) -> T:
        """Call a client method's raw variant (blocking) and ``shape`` the response bytes (never the
        client's typed models: ~0.2 ms per object to build, 47 ms for a 200-task DAG)."""
        body = self._call(what, raw_body(fn), *args, retry=retry, **kwargs)
        try:
            return shape(body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendError(f"Airflow answered malformed data to {what}") from exc

    # -- reads ---------------------------------------------------------------------------------------

    async def check(self) -> None:
        await self.health()

    async def health(self) -> list[ComponentHealth]:
        return await self._json(
            "report its health",
            self._monitor.get_health_without_preload_content,
            retry=True,
            shape=convert.health,
        )

    async def list_dags(
        self,
        *,
        limit: int,
        offset: int,
        tags: list[str],
        owners: list[str],
        paused: bool | None,
        name: str | None,
    ) -> tuple[list[DagSummary], int]:
        def shape(data: Any) -> tuple[list[DagSummary], int]:
            return [convert.dag(d) for d in data["dags"]], int(data["total_entries"])

        return await self._json(
            "list DAGs",
            self._dags.get_dags_without_preload_content,
            retry=True,
            shape=shape,
            limit=limit,
            offset=offset,
            tags=tags or None,
            owners=owners or None,
            paused=paused,
            dag_id_pattern=name or None,
            exclude_stale=True,
            order_by=["dag_id"],
        )

    async def get_dag(self, dag_id: str) -> DagSummary:
        return await anyio.to_thread.run_sync(self._dag, dag_id)

    async def list_tasks(self, dag_id: str) -> list[TaskSummary]:
        return await anyio.to_thread.run_sync(self._tasks_of, dag_id)

    async def list_dag_runs(self, dag_id: str, *, limit: int, states: list[str]) -> list[DagRunSummary]:
        return await anyio.to_thread.run_sync(self._dag_runs, dag_id, limit, states)

    async def get_dag_detail(
        self, dag_id: str, *, recent_runs: int
    ) -> tuple[DagSummary, list[TaskSummary], list[DagRunSummary]]:
        return await anyio.to_thread.run_sync(
            lambda: (self._dag(dag_id), self._tasks_of(dag_id), self._dag_runs(dag_id, recent_runs, []))
        )

    def _dag(self, dag_id: str) -> DagSummary:
        return self._fetch(
            f"get DAG {dag_id!r}",
            self._dags.get_dag_without_preload_content,
            dag_id,
            retry=True,
            shape=lambda body: convert.dag(json.loads(body)),
        )

    def _tasks_of(self, dag_id: str) -> list[TaskSummary]:
        return self._fetch(
            f"list the tasks of {dag_id!r}",
            self._tasks.get_tasks_without_preload_content,
            dag_id,
            retry=True,
            shape=convert.tasks,
        )

    def _dag_runs(self, dag_id: str, limit: int, states: list[str]) -> list[DagRunSummary]:
        return self._fetch(
            f"list the runs of {dag_id!r}",
            self._runs.get_dag_runs_without_preload_content,
            dag_id,
            retry=True,
            shape=convert.dag_runs,
            limit=limit,
            state=states or None,
            order_by=["-run_after"],
        )

    async def get_dag_run(self, dag_id: str, run_id: str) -> DagRunSummary:
        return await anyio.to_thread.run_sync(self._dag_run, dag_id, run_id)

    async def list_task_instances(
        self, dag_id: str, run_id: str, *, limit: int, task_id: str | None = None
    ) -> list[TaskInstanceSummary]:
        return await anyio.to_thread.run_sync(self._task_instances, dag_id, run_id, limit, task_id)

    async def get_dag_run_with_task_instances(
        self, dag_id: str, run_id: str, *, limit: int
    ) -> tuple[DagRunSummary, list[TaskInstanceSummary]]:
        return await anyio.to_thread.run_sync(
            lambda: (self._dag_run(dag_id, run_id), self._task_instances(dag_id, run_id, limit, None))
        )

    def _dag_run(self, dag_id: str, run_id: str) -> DagRunSummary:
        return self._fetch(
            f"get run {run_id!r} of {dag_id!r}",
            self._runs.get_dag_run_without_preload_content,
            dag_id,
            run_id,
            retry=True,
            shape=convert.dag_run_json,
        )

    def _task_instances(
        self, dag_id: str, run_id: str, limit: int, task_id: str | None
    ) -> list[TaskInstanceSummary]:
        """Every page in the calling thread: one hop off the event loop per list, not per page."""
        found: list[TaskInstanceSummary] = []
        while len(found) < limit:
            page, total = self._fetch(
                f"list the task instances of run {run_id!r} of {dag_id!r}",
                self._tis.get_task_instances_without_preload_content,
                dag_id,
                run_id,
                retry=True,
                shape=convert.task_instances,
                task_id=task_id,
                limit=min(PAGE, limit - len(found)),
                offset=len(found),
                order_by=["id"],  # stable paging
            )
            found.extend(page)
            if len(page) < PAGE or (total is not None and len(found) >= total):
                break
        return sorted(found, key=lambda ti: (ti.task_id, ti.map_index))

    async def stream_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int, sink: LineSink
    ) -> None:
        what = f"read the log of {dag_id}/{run_id}/{task_id} try {try_number}"

        def open_stream() -> urllib3.BaseHTTPResponse:
            response: urllib3.BaseHTTPResponse = self._tis.get_log_without_preload_content(
                dag_id,
                run_id,
                task_id,
                try_number,
                full_content=True,
                map_index=map_index,
                accept=NDJSON,
                _request_timeout=self._timeout,
            )
            if response.status >= 300:
                body = response.read(4096)
                response.release_conn()
                raise ApiException(
                    status=response.status, reason=response.reason, body=body.decode(errors="replace")
                )
            return response

        def pump() -> None:
            response = self._call(what, lambda _request_timeout: open_stream(), retry=True)
            try:
                split_lines(response.stream(65_536), sink)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise self._transport_error(what, exc, True) from exc
            finally:
                response.close()
                response.release_conn()

        await anyio.to_thread.run_sync(pump)

    async def list_import_errors(self, *, limit: int) -> list[ImportProblem]:
        return await self._json(
            "list import errors",
            self._imports.get_import_errors_without_preload_content,
            retry=True,
            shape=lambda data: [convert.import_error(e) for e in data["import_errors"]],
            limit=limit,
            order_by=["-timestamp"],
        )

    # -- writes --------------------------------------------------------------------------------------

    async def trigger_dag_run(
        self, dag_id: str, run_id: str, conf: dict[str, Any], note: str
    ) -> tuple[DagRunSummary, bool]:
        body = TriggerDAGRunPostBody(dag_run_id=run_id, conf=conf, note=note, logical_date=None)
        try:
            # idempotent through the client-chosen run id: a repeat answers 409, never a second run
            run = await self._json(
                f"trigger {dag_id!r} as run {run_id!r}",
                self._runs.trigger_dag_run_without_preload_content,
                dag_id,
                body,
                retry=True,
                shape=convert.dag_run,
            )
        except RunExistsError:
            return await self.get_dag_run(dag_id, run_id), False
        return run, True

    async def clear_task_instances(
        self, dag_id: str, run_id: str, task_ids: list[str], *, only_failed: bool, downstream: bool, note: str
    ) -> list[TaskInstanceSummary]:
        body = ClearTaskInstancesBody(
            dag_run_id=run_id,
            task_ids=[ClearTaskInstancesBodyTaskIdsInner(t) for t in task_ids] or None,
            only_failed=only_failed,
            include_downstream=downstream,
            dry_run=False,
            reset_dag_runs=True,
            note=note,
        )
        return await self._json(
            f"clear task instances of run {run_id!r} of {dag_id!r}",
            self._tis.post_clear_task_instances_without_preload_content,
            dag_id,
            body,
            retry=False,
            shape=lambda data: [convert.task_instance(ti) for ti in data["task_instances"]],
        )

    async def clear_dag_run(self, dag_id: str, run_id: str, *, only_failed: bool, note: str) -> list[str]:
        what = f"clear run {run_id!r} of {dag_id!r}"
        clear = self._runs.clear_dag_run_without_preload_content
        # a real clear answers the run, a dry run the task instances: preview, then clear
        preview = DAGRunClearBody(dry_run=True, only_failed=only_failed)
        cleared = await self._json(
            what,
            clear,
            dag_id,
            run_id,
            preview,
            retry=True,
            shape=lambda data: [str(ti["task_id"]) for ti in data["task_instances"]],
        )
        body = DAGRunClearBody(dry_run=False, only_failed=only_failed, note=note)
        await self._json(what, clear, dag_id, run_id, body, retry=False, shape=lambda data: data)
        return cleared

    async def set_paused(self, dag_id: str, paused: bool) -> DagSummary:
        return await self._json(
            f"{'pause' if paused else 'unpause'} {dag_id!r}",
            self._dags.patch_dag_without_preload_content,
            dag_id,
            DAGPatchBody(is_paused=paused),
            retry=True,  # setting a flag to a value is idempotent
            shape=convert.dag,
            update_mask=["is_paused"],
        )

    async def mark_dag_run(self, dag_id: str, run_id: str, state: str, note: str) -> DagRunSummary:
        return await self._json(
            f"mark run {run_id!r} of {dag_id!r} {state}",
            self._runs.patch_dag_run_without_preload_content,
            dag_id,
            run_id,
            DAGRunPatchBody(state=state, note=note),
            retry=True,  # setting a state and a note to values is idempotent
            shape=convert.dag_run,
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._client.rest_client.pool_manager.clear()

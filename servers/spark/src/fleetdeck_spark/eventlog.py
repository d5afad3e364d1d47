"""The event-log source: Spark event logs read straight from a folder on any fsspec filesystem.

Understands Spark 4's ``eventlog_v2_<appId>/`` folders (rolling ``events_<n>_<appId>[.codec]`` files
and an ``appstatus_<appId>[.inprogress]`` marker) and single files ``<appId>[.codec][.inprogress]``.
Logs are streamed line by line; parsed applications are cached by (path, size, mtime).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import anyio
import fsspec

from fleetdeck.errors import BackendUnavailableError, NotFoundError
from fleetdeck_spark.compression import CODECS, open_stream
from fleetdeck_spark.model import Application, AppStatus, AppSummary, Stage
from fleetdeck_spark.redaction import redact_text
from fleetdeck_spark.replay import HEAD_EVENTS, ApplicationBuilder
from fleetdeck_spark.source import AppListing, AppQuery, check_app_id

logger = logging.getLogger(__name__)

FOLDER_PREFIX = "eventlog_v2_"
INPROGRESS = ".inprogress"
EVENT_FILE = re.compile(r"^events_(\d+)_(.+?)(?:\.(zstd|lz4|snappy|lzf))?(?:\.inprogress)?$")
SINGLE_FILE = re.compile(
    r"^(?P<app>[A-Za-z0-9][A-Za-z0-9_.:\-]*?)(?:_(?P<attempt>\d+))?(?:\.(?P<codec>zstd|lz4|snappy|lzf))?(?:\.inprogress)?$"
)
HEAD_LINES = 50
TAIL_BYTES = 16_384
BLOCK_SIZE = 1 << 22
CACHE_APPS = 8


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One application's event log: its files in order, and whether it is still being written."""

    app_id: str
    path: str
    files: tuple[tuple[str, str | None], ...]
    in_progress: bool
    size: int
    mtime: float

    @property
    def key(self) -> tuple[str, int, float]:
        return (self.path, self.size, self.mtime)

    @property
    def status(self) -> AppStatus:
        return "running" if self.in_progress else "completed"


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("updated") or 0
    return value if isinstance(value, int | float) else hash(str(value)) % 10**9


def _base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class EventLogSource:
    """Spark applications from an event-log directory (local path or any fsspec URL)."""

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        prepare: Callable[[], object] | None = None,
    ) -> None:
        """``prepare`` runs once before the folder is first read (the demo seeds an empty folder)."""
        self.url = url
        self._prepare = prepare
        self.description = redact_text(f"event logs in {url}")
        self._fs, self._root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self._apps: OrderedDict[tuple[str, int, float], Application] = OrderedDict()
        self._summaries: dict[tuple[str, int, float], AppSummary] = {}
        self._lock = threading.Lock()

    # -- discovery -----------------------------------------------------------------------------------

    def entries(self) -> list[LogEntry]:
        """Every application log in the directory."""
        if self._prepare is not None:
            with self._lock:
                prepare, self._prepare = self._prepare, None
                if prepare is not None:
                    prepare()
        try:
            listing = self._fs.ls(self._root, detail=True)
        except (OSError, ValueError) as exc:
            raise BackendUnavailableError(
                f"the event-log directory {redact_text(self.url)} cannot be listed ({type(exc).__name__})"
            ) from exc
        entries = []
        for info in listing:
            name = _base(info["name"])
            if name.startswith("."):
                continue
            if info.get("type") == "directory" and name.startswith(FOLDER_PREFIX):
                entry = self._folder_entry(info["name"], name[len(FOLDER_PREFIX) :])
            elif info.get("type") == "file":
                entry = self._file_entry(info, name)
            else:
                entry = None
            if entry is not None:
                entries.append(entry)
        return entries

    def _file_entry(self, info: dict[str, Any], name: str) -> LogEntry | None:
        match = SINGLE_FILE.match(name)
        if match is None or not match.group("app").startswith(("app-", "local-", "application_", "spark-")):
            return None
        return LogEntry(
            app_id=match.group("app"),
            path=info["name"],
            files=((info["name"], match.group("codec")),),
            in_progress=name.endswith(INPROGRESS),
            size=int(info.get("size") or 0),
            mtime=_mtime(info),
        )

    def _folder_entry(self, path: str, app_id: str) -> LogEntry | None:
        try:
            listing = self._fs.ls(path, detail=True)
        except (OSError, ValueError):
            return None
        events: list[tuple[int, str, str | None]] = []
        in_progress, size, mtime = False, 0, 0.0
        for info in listing:
            name = _base(info["name"])
            if name.startswith("appstatus_"):
                in_progress = name.endswith(INPROGRESS)
            match = EVENT_FILE.match(name)
            if match:
                events.append((int(match.group(1)), info["name"], match.group(3)))
                size += int(info.get("size") or 0)
                mtime = max(mtime, _mtime(info))
        if not events:
            return None
        files = tuple((name, codec) for _, name, codec in sorted(events))
        return LogEntry(app_id, path, files, in_progress, size, mtime)

    def find(self, app_id: str) -> LogEntry:
        """The log of ``app_id``; NotFoundError when the directory has none."""
        check_app_id(app_id)
        for entry in self.entries():
            if entry.app_id == app_id:
                return entry
        raise NotFoundError(f"no event log for application {app_id} in {redact_text(self.url)}")

    # -- reading -------------------------------------------------------------------------------------

    def _open(self, path: str, codec: str | None) -> BinaryIO:
        if codec not in (None, *CODECS):
            raise BackendUnavailableError(f"event-log codec {codec!r} of {_base(path)} is not supported")
        raw: BinaryIO = self._fs.open(path, "rb", block_size=BLOCK_SIZE)
        return open_stream(raw, codec)

    def lines(self, entry: LogEntry) -> Iterator[bytes]:
        """Every line of the log, across rolled files, in order."""
        for path, codec in entry.files:
            stream = self._open(path, codec)
            try:
                yield from stream
            finally:
                stream.close()

    def parse(self, entry: LogEntry) -> Application:
        """Replay the whole log into an application model (cached by path, size and mtime)."""
        with self._lock:
            cached = self._apps.get(entry.key)
            if cached is not None:
                self._apps.move_to_end(entry.key)
                return cached
        builder = ApplicationBuilder(entry.app_id, source=redact_text(self.url))
        try:
            for line in self.lines(entry):
                builder.feed(line)
        except OSError as exc:
            raise BackendUnavailableError(f"the event log of {entry.app_id} cannot be read: {exc}") from exc
        app = builder.build(entry.status)
        with self._lock:
            self._apps[entry.key] = app
            while len(self._apps) > CACHE_APPS:
                self._apps.popitem(last=False)
        return app

    def summary(self, entry: LogEntry) -> AppSummary:
        """Name, user and times of an application from the head and tail of its log only."""
        cached = self._summaries.get(entry.key)
        if cached is not None:
            return cached
        builder = ApplicationBuilder(entry.app_id, source=redact_text(self.url))
        head = self.lines(entry)
        try:
            for number, line in enumerate(head):
                if number >= HEAD_LINES:
                    break
                if any(line.startswith(b'{"Event":"' + event) for event in HEAD_EVENTS):
                    builder.feed(line)
                    if builder.start_ms is not None:
                        break
        finally:
            head.close()  # type: ignore[attr-defined]
        last = self._last_line(entry)
        if last is not None:
            builder.feed(last)
        summary = builder.build(entry.status).summary
        self._summaries[entry.key] = summary
        return summary

    def _last_line(self, entry: LogEntry) -> bytes | None:
        path, codec = entry.files[-1]
        if codec is None:
            with self._fs.open(path, "rb") as raw:
                size = self._fs.size(path) or 0
                raw.seek(max(0, size - TAIL_BYTES))
                tail = raw.read()
            lines = [line for line in tail.splitlines() if line.strip()]
            return lines[-1] if lines else None
        last = None
        for line in self.lines(LogEntry(entry.app_id, path, ((path, codec),), False, 0, 0)):
            if line.strip():
                last = line
        return last

    # -- the SparkSource protocol --------------------------------------------------------------------

    async def check(self) -> None:
        await anyio.to_thread.run_sync(self.entries)

    def _list(self, query: AppQuery) -> list[AppSummary]:
        found = []
        for entry in self.entries():
            try:
                summary = self.summary(entry)
            except (OSError, ValueError) as exc:
                logger.warning("event log %s unreadable: %s", entry.path, type(exc).__name__)
                continue
            if query.accepts(summary):
                found.append(summary)
        found.sort(key=lambda s: s.start_ms or 0, reverse=True)
        return found[: query.limit]

    async def list_applications(self, query: AppQuery) -> AppListing:
        return AppListing(applications=await anyio.to_thread.run_sync(self._list, query))

    def _get(self, app_id: str) -> Application:
        return self.parse(self.find(app_id))

    async def get_application(self, app_id: str) -> Application:
        return await anyio.to_thread.run_sync(self._get, app_id)

    async def get_stage(self, app_id: str, stage_id: int, attempt: int | None) -> Stage:
        app = await self.get_application(app_id)
        stage = app.stage(stage_id, attempt)
        if stage is None:
            raise NotFoundError(f"application {app_id} has no stage {stage_id}")
        return stage

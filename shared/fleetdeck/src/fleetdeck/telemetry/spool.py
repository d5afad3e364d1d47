"""The disk spool: where invocation events wait while the telemetry store is unreachable.

Files live in one directory that several processes on the same host may share. Each :class:`Spool`
appends JSON lines to its own *segment* (``<host>_<pid>_<token>_<seq>.open``), writing a whole
batch then ``fsync``-ing it before :meth:`Spool.append` returns: an accepted batch is on disk.
A segment is *sealed* (renamed to ``.jsonl``) when it grows large, on :meth:`Spool.seal` and before
this spool replays.

:meth:`Spool.replay` claims each sealed file by an atomic rename to
``<name>~<host>_<pid>_<token>.claimed``; only one process wins a rename, so no file is replayed
twice at the same time. It inserts the events, and deletes the file only after they committed; if
the store fails, the file is renamed back for a later attempt. A crash mid-replay leaves a claimed
file behind, which a later replay adopts once its claimer is dead; store inserts are idempotent on
``event_id``, so re-inserting never double-counts. Open segments and claims of dead processes on
this host are adopted the same way. Lines that cannot be read back (a write torn by a crash) are
counted in ``events_dropped{reason="spool_corrupt"}`` and logged, never skipped silently.

The directory must be local to the host: liveness of another writer is judged by its pid.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetdeck.errors import TelemetryError
from fleetdeck.telemetry.events import InvocationEvent
from fleetdeck.telemetry.metrics import Metrics
from fleetdeck.telemetry.store import EventStore

logger = logging.getLogger(__name__)

OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".jsonl"
CLAIMED_SUFFIX = ".claimed"
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass(frozen=True, slots=True)
class _Owner:
    host: str
    pid: int

    @classmethod
    def parse(cls, text: str) -> _Owner | None:
        """``<host>_<pid>_<token>`` (a segment name adds ``_<seq>``, stripped by the caller)."""
        parts = text.rsplit("_", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]))

    def is_dead_here(self, host: str) -> bool:
        return self.host == host and not _pid_alive(self.pid)


@dataclass(frozen=True, slots=True)
class _ReadBack:
    events: list[InvocationEvent]
    corrupt: int


class Spool:
    """Batches of events on disk, appended durably and replayed into an :class:`EventStore`."""

    def __init__(
        self, directory: Path, metrics: Metrics, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> None:
        self.directory = Path(directory)
        self._metrics = metrics
        self._segment_bytes = segment_bytes
        self._host = _host()
        self._owner = f"{self._host}_{os.getpid()}_{secrets.token_hex(6)}"
        self._lock = threading.Lock()
        self._segment: Path | None = None
        self._sequence = 0

    def append(self, events: Sequence[InvocationEvent]) -> None:
        """Write ``events`` durably (written and fsynced) or raise :class:`TelemetryError`."""
        if not events:
            return
        payload = "".join(json.dumps(event.to_row(), separators=(",", ":")) + "\n" for event in events)
        with self._lock:
            try:
                self._append_locked(payload.encode())
            except OSError as exc:
                self._abandon_segment_locked()
                reason = exc.strerror or type(exc).__name__
                raise TelemetryError(f"cannot spool {len(events)} telemetry events: {reason}") from exc

    def seal(self) -> None:
        """Publish this spool's open segment so any process may replay it."""
        with self._lock:
            self._seal_locked()

    def pending(self) -> int:
        """How many events wait in the directory, from every process (approximate during a replay)."""
        total = 0
        for path in self._files():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # claimed or deleted meanwhile
            except OSError as exc:
                raise TelemetryError(f"cannot read the telemetry spool: {exc.strerror}") from exc
            total += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        return total

    def replay(self, store: EventStore, *, batch_size: int = 1_000) -> int:
        """Insert every spooled event into ``store``; returns how many events were replayed.

        Raises :class:`TelemetryError` when the store fails; files not yet committed stay spooled.
        """
        self.seal()
        replayed = 0
        files = 0
        for path in self._candidates():
            claimed = self._claim(path)
            if claimed is None:
                continue
            replayed += self._replay_file(claimed, store, batch_size)
            files += 1
        if files:
            logger.info("replayed spooled telemetry events", extra={"events": replayed, "files": files})
        return replayed

    # -- writing ------------------------------------------------------------------------------

    def _append_locked(self, payload: bytes) -> None:
        created = self._segment is None
        if self._segment is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._sequence += 1
            self._segment = self.directory / f"{self._owner}_{self._sequence:06d}{OPEN_SUFFIX}"
        fd = os.open(self._segment, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            start = os.fstat(fd).st_size
            try:
                _write_all(fd, payload)
                os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, start)  # leave no torn line in front of the next batch
                except OSError:
                    logger.warning("could not cut a failed write from the telemetry spool segment")
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.directory)
        if start + len(payload) >= self._segment_bytes:
            self._seal_locked()

    def _seal_locked(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            os.rename(segment, segment.with_suffix(SEALED_SUFFIX))
            _fsync_dir(self.directory)
        except FileNotFoundError:
            return  # nothing was ever written to it
        except OSError as exc:
            raise TelemetryError(f"cannot seal a telemetry spool segment: {exc.strerror}") from exc

    def _abandon_segment_locked(self) -> None:
        try:
            self._seal_locked()
        except TelemetryError:
            self._segment = None

    # -- replaying ----------------------------------------------------------------------------

    def _files(self) -> list[Path]:
        try:
            entries = list(self.directory.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TelemetryError(f"cannot list the telemetry spool: {exc.strerror}") from exc
        suffixes = (OPEN_SUFFIX, SEALED_SUFFIX, CLAIMED_SUFFIX)
        return sorted(path for path in entries if path.name.endswith(suffixes))

    def _candidates(self) -> Iterator[Path]:
        """Sealed files, plus open segments and claims left by dead processes on this host."""
        for path in self._files():
            name = path.name
            if name.endswith(SEALED_SUFFIX):
                yield path
            elif name.endswith(OPEN_SUFFIX):
                owner = _Owner.parse(name.removesuffix(OPEN_SUFFIX).rsplit("_", 1)[0])
                if owner is not None and owner.is_dead_here(self._host):
                    yield path
            elif name.endswith(CLAIMED_SUFFIX) and "~" in name:
                owner = _Owner.parse(name.removesuffix(CLAIMED_SUFFIX).rsplit("~", 1)[1])
                if owner is not None and owner.is_dead_here(self._host):
                    yield path

    def _claim(self, path: Path) -> Path | None:
        original = path.name.rsplit("~", 1)[0] if path.name.endswith(CLAIMED_SUFFIX) else path.name
        target = path.with_name(f"{original}~{self._owner}{CLAIMED_SUFFIX}")
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None  # another process claimed it first
        except OSError as exc:
            raise TelemetryError(f"cannot claim a telemetry spool file: {exc.strerror}") from exc
        return target

    def _release(self, claimed: Path) -> None:
        original = claimed.name.rsplit("~", 1)[0]
        stem = original.removesuffix(OPEN_SUFFIX).removesuffix(SEALED_SUFFIX)
        try:
            os.rename(claimed, claimed.with_name(stem + SEALED_SUFFIX))
        except OSError:
            logger.warning("could not release a claimed telemetry spool file; it is adopted after exit")

    def _replay_file(self, claimed: Path, store: EventStore, batch_size: int) -> int:
        try:
            read = self._read(claimed)
            for start in range(0, len(read.events), batch_size):
                store.insert(read.events[start : start + batch_size])
        except TelemetryError:
            self._release(claimed)
            raise
        try:
            claimed.unlink()
        except OSError as exc:
            raise TelemetryError(f"cannot delete a replayed telemetry spool file: {exc.strerror}") from exc
        self._metrics.events_replayed.inc(len(read.events))
        if read.corrupt:
            self._metrics.events_dropped.labels(reason="spool_corrupt").inc(read.corrupt)
            logger.warning(
                "dropped unreadable lines from the telemetry spool",
                extra={"events": read.corrupt, "file": claimed.name},
            )
        return len(read.events)

    @staticmethod
    def _read(path: Path) -> _ReadBack:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TelemetryError(f"cannot read a telemetry spool file: {exc.strerror}") from exc
        lines = data.split(b"\n")
        corrupt = 1 if lines[-1] else 0  # a last line without its newline was torn by a crash
        events: list[InvocationEvent] = []
        for line in lines[:-1]:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                events.append(InvocationEvent.from_row(row))
            except (ValueError, TypeError, KeyError, AttributeError):
                corrupt += 1
        return _ReadBack(events, corrupt)

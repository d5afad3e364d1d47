"""The bounded, batched background writer between the tool path and the telemetry store.

:meth:`EventWriter.submit` appends to an in-memory queue and returns: it never blocks on I/O and
never raises. It takes an event, or a recipe the thread calls to build one (so that the tool path
does not pay for building it; a recipe that fails drops its event, counted as
``reason="build_failed"`` and logged). When the queue is full the event is dropped and counted
(``events_dropped{reason="queue_full"}``) with a rate-limited warning. A daemon thread (the store
drivers are synchronous; the event loop must never wait on them) drains the queue in batches of
up to ``batch_size`` events or every ``flush_interval_s`` and inserts them. When the store fails,
the batch goes to the disk :class:`~fleetdeck.telemetry.spool.Spool` and the writer enters retry
mode: further batches go straight to the spool, and every ``retry_interval_s`` it replays the spool
into the store; once that succeeds it writes to the store again. If the spool fails too, the batch
is dropped and counted (``reason="spool_failed"``).

Metrics: ``events_written`` counts direct inserts, ``events_replayed`` spooled events later
inserted (by this process), so ``submitted = written + spooled + dropped + queued`` per process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Self

from fleetdeck.errors import TelemetryError
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.events import EventRecipe, InvocationEvent
from fleetdeck.telemetry.metrics import Metrics
from fleetdeck.telemetry.spool import Spool
from fleetdeck.telemetry.store import EventStore

logger = logging.getLogger(__name__)

DROP_LOG_INTERVAL_S = 10.0


class EventWriter:
    """Moves invocation events from the tool path to the store on a background thread."""

    def __init__(
        self,
        store: EventStore,
        spool: Spool,
        metrics: Metrics,
        queue_size: int = 100_000,
        batch_size: int = 1_000,
        flush_interval_s: float = 1.0,
        retry_interval_s: float = 2.0,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or flush_interval_s <= 0 or retry_interval_s <= 0:
            raise ValueError("queue_size and batch_size must be >= 1, intervals > 0")
        self.store = store
        self.spool = spool
        self.metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self._queue: deque[EventRecipe] = deque()
        self._lock = threading.Lock()  # not reentrant: submit takes it without the Condition's Python layer
        self._cond = threading.Condition(self._lock)
        self._accepted = 0  # events queued, ever
        self._settled = 0  # events written, spooled or dropped by the thread, ever
        self._flush_waiters = 0
        self._retrying = False
        self._started_replay_done = False  # the spool found at start has been tried
        self._next_retry = 0.0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._drops_unlogged = 0
        self._build_failed = False
        self._last_drop_log = float("-inf")
        metrics.queue_depth.set_function(lambda: len(self._queue))

    @classmethod
    def from_settings(cls, settings: FleetdeckSettings, metrics: Metrics) -> Self:
        """A writer for the configured store and spool."""
        url = settings.telemetry_url()
        t = settings.telemetry
        return cls(
            EventStore(url),
            Spool(settings.spool_dir(), metrics),
            metrics,
            queue_size=t.queue_size,
            batch_size=t.batch_size,
            flush_interval_s=t.flush_interval_s,
            retry_interval_s=t.retry_interval_s,
        )

    # -- the tool path ------------------------------------------------------------------------

    def submit(self, event: EventRecipe) -> None:
        """Queue ``event`` (or its recipe) for the store; drops and counts it if the queue is full/closed."""
        with self._lock:
            if self._closing:
                reason = "closed"
            elif len(self._queue) >= self.queue_size:
                reason = "queue_full"
            else:
                self._queue.append(event)
                self._accepted += 1
                depth = len(self._queue)
                if depth == 1 or depth == self.batch_size:
                    self._cond.notify_all()
                return
        self._count_drop(reason)

    def _count_drop(self, reason: str) -> None:
        self.metrics.events_dropped.labels(reason=reason).inc()
        now = time.monotonic()
        self._drops_unlogged += 1
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            dropped, self._drops_unlogged, self._last_drop_log = self._drops_unlogged, 0, now
            logger.warning(
                "dropping telemetry events",
                extra={"reason": reason, "events": dropped, "queue_size": self.queue_size},
            )

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def retrying(self) -> bool:
        """Whether the store failed and events currently go to the spool."""
        return self._retrying

    def start(self) -> None:
        """Start the background thread (idempotent); it first replays whatever is spooled."""
        with self._cond:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(target=self._run, name="fleetdeck-telemetry-writer", daemon=True)
            self._thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event submitted so far is in the store or the spool; False on timeout."""
        with self._cond:
            target = self._accepted
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._settled >= target, timeout)
            finally:
                self._flush_waiters -= 1

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every event submitted so far is committed to the store; False on timeout.

        Spooled events count once this writer has replayed the spool (it retries every
        ``retry_interval_s``); meant for tests and orderly shutdowns.
        """
        with self._cond:
            target = self._accepted
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._stored(target), timeout)
            finally:
                self._flush_waiters -= 1

    def _stored(self, target: int) -> bool:
        return self._settled >= target and self._started_replay_done and not self._retrying

    def close(self, timeout: float | None = 30.0) -> None:
        """Write or spool what is queued and stop the thread (idempotent).

        If the thread does not finish in ``timeout`` (a store hanging on a batch), the events
        still queued are spooled from the calling thread.
        """
        with self._cond:
            self._closing = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        if thread is None or thread.is_alive():
            with self._cond:
                leftovers = list(self._queue)
                self._queue.clear()
            if leftovers:
                if thread is not None:
                    logger.warning("telemetry writer did not stop in time; spooling queued events")
                self._spool(self._built(leftovers))
                with self._cond:
                    self._settled += len(leftovers)
                    self._cond.notify_all()
        try:
            self.spool.seal()
        except TelemetryError as exc:
            logger.warning("cannot seal the telemetry spool", extra={"error": str(exc)})

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        self._try_replay()
        with self._cond:
            self._started_replay_done = True
            self._cond.notify_all()
        while True:
            batch, stopping = self._take_batch()
            if batch:
                self._write(batch)
            elif stopping:
                return
            if self._retrying and not stopping and time.monotonic() >= self._next_retry:
                self._try_replay()

    def _take_batch(self) -> tuple[list[EventRecipe], bool]:
        """Wait for a full batch, the flush interval, a flush request, a retry or close."""
        with self._cond:
            first_seen: float | None = None
            while not self._closing:
                now = time.monotonic()
                if self._queue:
                    first_seen = now if first_seen is None else first_seen
                    if len(self._queue) >= self.batch_size or self._flush_waiters:
                        break
                    deadline = first_seen + self.flush_interval_s
                else:
                    first_seen = None
                    deadline = float("inf")
                if self._retrying:
                    deadline = min(deadline, self._next_retry)
                if now >= deadline:
                    break
                self._cond.wait(None if deadline == float("inf") else deadline - now)
            count = min(len(self._queue), self.batch_size)
            batch = [self._queue.popleft() for _ in range(count)]
            return batch, self._closing

    def _built(self, batch: Sequence[EventRecipe]) -> list[InvocationEvent]:
        """The events of ``batch``, its recipes called; a recipe that fails is a counted drop."""
        events: list[InvocationEvent] = []
        for item in batch:
            if isinstance(item, InvocationEvent):
                events.append(item)
                continue
            try:
                events.append(item())
            except Exception:  # a bug in a recipe must cost its one event, not the writer thread
                if not self._build_failed:  # the traceback once; then counted, with rate-limited warnings
                    self._build_failed = True
                    logger.exception("cannot build a telemetry event; dropped")
                self._count_drop("build_failed")
        return events

    def _write(self, recipes: Sequence[EventRecipe]) -> None:
        batch = self._built(recipes)
        if not batch:
            self._settle(len(recipes))
            return
        if not self._retrying:
            try:
                self.store.insert(batch)
            except TelemetryError as exc:
                logger.warning(
                    "telemetry store failed; spooling and retrying",
                    extra={
                        "error": str(exc),
                        "events": len(batch),
                        "retry_interval_s": self.retry_interval_s,
                    },
                )
                self._enter_retry()
            except Exception:  # the writer thread must survive any store fault
                logger.exception("unexpected telemetry store failure; spooling and retrying")
                self._enter_retry()
            else:
                self.metrics.events_written.inc(len(batch))
                self._settle(len(recipes))
                return
        self._spool(batch)
        self._settle(len(recipes))

    def _spool(self, batch: Sequence[InvocationEvent]) -> None:
        try:
            self.spool.append(batch)
        except TelemetryError as exc:
            self.metrics.events_dropped.labels(reason="spool_failed").inc(len(batch))
            logger.error(
                "telemetry spool failed; events dropped", extra={"error": str(exc), "events": len(batch)}
            )
        else:
            self.metrics.events_spooled.inc(len(batch))

    def _settle(self, count: int) -> None:
        with self._cond:
            self._settled += count
            self._cond.notify_all()

    def _enter_retry(self) -> None:
        with self._cond:
            self._retrying = True
            self._next_retry = time.monotonic() + self.retry_interval_s

    def _try_replay(self) -> None:
        try:
            self.store.create()
            self.spool.replay(self.store, batch_size=self.batch_size)
        except TelemetryError as exc:
            if not self._retrying:
                logger.warning("telemetry store unavailable; spooling", extra={"error": str(exc)})
            self._enter_retry()
            return
        except Exception:  # the writer thread must survive any store fault
            logger.exception("unexpected failure replaying the telemetry spool")
            self._enter_retry()
            return
        with self._cond:
            if self._retrying:
                logger.info("telemetry store is back; writing directly again")
            self._retrying = False
            self._cond.notify_all()

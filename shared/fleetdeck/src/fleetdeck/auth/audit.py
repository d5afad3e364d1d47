"""The audit trail: every access decision, approval step and mutating outcome, written synchronously.

Unlike invocation telemetry (batched, pseudonymised, best-effort with a spool), the audit trail is
the one place raw identities live — the on-behalf-of user (issuer and subject) and the workload —
and its records are written *before* the kit acts on them: :meth:`AuditLog.record` returns only once
the row is committed (SQLite with ``synchronous=FULL``, or PostgreSQL), and raises
:class:`~fleetdeck.errors.TelemetryError` when it cannot. A mutating call whose pre-execution record
cannot be written fails closed. Records that gate nothing (read-only decisions, denials) go through
:meth:`AuditLog.submit` instead: a background thread commits them in batches, retrying while the store
is down; a record that still cannot be written is logged at ERROR in full and counted, never lost
silently.

The table ``audit_events`` lives in the telemetry store (its own :class:`~sqlalchemy.MetaData`, so
the invocation store's schema code never touches it).
"""

from __future__ import annotations

import hashlib
import logging
import operator
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, Final, NoReturn

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from fleetdeck.auth.principal import Principal
from fleetdeck.errors import TelemetryError
from fleetdeck.telemetry.events import new_event_id
from fleetdeck.telemetry.middleware import CallRecord, current_trace_id
from fleetdeck.telemetry.store import make_engine

logger = logging.getLogger(__name__)
_QUEUE_MAX = 100_000
_BATCH = 1_000
_RETRY_S = 2.0
_LOCKED_RETRIES = 5

audit_metadata = sa.MetaData()

audit_events = sa.Table(
    "audit_events",
    audit_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("server", sa.String(128), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("rule", sa.String(64)),
    sa.Column("reason", sa.String(1024)),
    sa.Column("user_subject", sa.String(512)),
    sa.Column("user_issuer", sa.String(512)),
    sa.Column("workload", sa.String(512)),
    sa.Column("args_digest", sa.String(64)),
    sa.Column("approval_id", sa.String(64)),
    sa.Column("outcome", sa.String(32)),
    sa.Column("trace_id", sa.String(64)),
    sa.Index("ix_audit_events_ts", "ts"),
)

_REASON_MAX: Final = 1024


class AuditEvent(StrEnum):
    """What an audit record is about."""

    DECISION_ALLOWED = "decision_allowed"
    DECISION_DENIED = "decision_denied"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_ACCEPTED = "approval_accepted"
    APPROVAL_DECLINED = "approval_declined"
    APPROVAL_REFUSED = "approval_refused"
    OUTCOME = "outcome"


@dataclass(slots=True)
class AuditRecord:
    """One row of ``audit_events``; read-only by contract (not frozen: see ``InvocationEvent``)."""

    id: str
    ts: float
    server: str
    tool: str
    event: str
    rule: str | None
    reason: str | None
    user_subject: str | None
    user_issuer: str | None
    workload: str | None
    args_digest: str | None
    approval_id: str | None
    outcome: str | None
    trace_id: str | None


_FIELDS = tuple(field.name for field in fields(AuditRecord))


_row = operator.attrgetter(*_FIELDS)  # a record's values in column order, in one C call


_Submitted = tuple[AuditEvent, float, CallRecord, str, str | None, str | None]
"""What :meth:`AuditLog.submit` queues: event, time, call, tool, rule, reason (one tuple, no dicts)."""


def _insert_sql(dialect: str) -> str:
    """The driver-level INSERT of one row (positional parameters: no per-row work in SQLAlchemy)."""
    markers = ", ".join(["?" if dialect == "sqlite" else "%s"] * len(_FIELDS))
    return f"INSERT INTO {audit_events.name} ({', '.join(_FIELDS)}) VALUES ({markers})"  # noqa: S608 - fixed names


def argument_digest(arguments_json: bytes) -> str:
    """``sha256`` (hex) of a call's arguments JSON (:func:`telemetry.middleware.arguments_json`)."""
    return hashlib.sha256(arguments_json).hexdigest()


def make_durable_engine(url: str) -> Engine:
    """An engine whose commits are durable (SQLite ``synchronous=FULL``, or PostgreSQL)."""
    return make_engine(url, durable=True)


class AuditLog:
    """Writes audit records for one server, synchronously, into ``audit_events`` at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        server: str,
        on_failure: Callable[[], None] | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        """``flush_interval_s``: the longest a record from :meth:`submit` waits for its batch's commit."""
        self.url = url
        self.server = server
        self.flush_interval_s = flush_interval_s
        self._on_failure = on_failure
        self._engine: Engine | None = None
        self._created = False
        self._lock = threading.Lock()
        self._pending: deque[_Submitted] = deque()
        self._queue_lock = threading.Lock()  # not reentrant: submit takes it without the Condition's layer
        self._wake = threading.Condition(self._queue_lock)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._flushing = 0
        self._inflight = 0
        self._failing = 0  # 1 while the store refuses writes: flush() stops waiting

    def _ready_engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = make_durable_engine(self.url)
            if not self._created:
                audit_metadata.create_all(self._engine)
                self._created = True
            return self._engine

    def build(
        self,
        event: AuditEvent,
        *,
        tool: str,
        principal: Principal,
        rule: str | None = None,
        reason: str | None = None,
        args_digest: str | None = None,
        approval_id: str | None = None,
        outcome: str | None = None,
        call: CallRecord | None = None,
        ts: float | None = None,
    ) -> AuditRecord:
        """The record :meth:`record` would write (raw identity of the principal included).

        ``call``: the tool call this record is about; the record takes its event id, its trace id
        and, unless ``args_digest`` is given, the digest of its arguments. ``ts``: when it happened
        (now, by default).
        """
        user, workload = principal.user, principal.workload
        if args_digest is None and call is not None and call.arguments_json is not None:
            args_digest = argument_digest(call.arguments_json)
        return AuditRecord(
            id=call.event_id if call else new_event_id(),
            ts=time.time() if ts is None else ts,
            server=self.server,
            tool=tool[:128],
            event=event._value_,  # the value without Enum's descriptor (a call per record)
            rule=rule[:64] if rule else rule,
            reason=reason[:_REASON_MAX] if reason else reason,
            user_subject=user.subject if user else None,
            user_issuer=user.issuer if user else None,
            workload=workload.spiffe_id if workload else None,
            args_digest=args_digest,
            approval_id=approval_id,
            outcome=outcome,
            trace_id=call.trace_id if call else current_trace_id(),
        )

    def write(self, record: AuditRecord, *more: AuditRecord) -> None:
        """Commit records in one transaction; :class:`TelemetryError` when they cannot be written.

        SQLite answers "database is locked" at once in some lock races between connections (the busy
        timeout does not apply); those are retried a few times with a short backoff.
        """
        rows = [_row(r) for r in (record, *more)]
        for attempt in range(_LOCKED_RETRIES + 1):
            try:
                engine = self._ready_engine()
                with engine.begin() as conn:
                    conn.exec_driver_sql(_insert_sql(engine.dialect.name), rows)
                return
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or attempt == _LOCKED_RETRIES:
                    self._failed(exc)
                time.sleep(0.02 * 2**attempt)
            except SQLAlchemyError as exc:
                self._failed(exc)

    def _failed(self, exc: SQLAlchemyError) -> NoReturn:
        if self._on_failure is not None:
            self._on_failure()
        cause = getattr(exc, "orig", None) or exc
        raise TelemetryError(
            f"the audit record could not be written ({type(cause).__name__}: {cause})"
        ) from exc

    def record(self, event: AuditEvent, **fields: Any) -> AuditRecord:
        """Build and commit a record (see :meth:`build` for the fields); blocking."""
        record = self.build(event, **fields)
        self.write(record)
        return record

    async def arecord(self, event: AuditEvent, *, required: bool, **fields: Any) -> AuditRecord:
        """Build and commit a record from async code, off the event loop.

        ``required``: raise :class:`TelemetryError` if the write fails (the caller must fail
        closed). Otherwise the failure is logged at ERROR with the full record and counted.
        """
        record = self.build(event, **fields)
        try:
            await anyio.to_thread.run_sync(self.write, record)
        except TelemetryError as exc:
            if required:
                logger.error("audit write failed (%s); refusing the call: %s", exc, asdict(record))
                raise
            logger.error("audit write failed (%s); the record follows: %s", exc, asdict(record))
        return record

    def submit(
        self, event: AuditEvent, call: CallRecord, tool: str, rule: str | None, reason: str | None
    ) -> None:
        """Queue the record of a decision about ``call`` that gates nothing; never blocks.

        Only the facts are taken here (the call's ids and arguments are fixed by then): the background
        thread builds the record, digests the arguments and commits it, so the event loop does none of
        that.
        """
        item: _Submitted = (event, time.time(), call, tool, rule, reason)
        with self._queue_lock:
            if self._closing or len(self._pending) >= _QUEUE_MAX:
                self._lost([item], "the audit queue is full or closed")
                return
            self._pending.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="fleetdeck-audit", daemon=True)
                self._thread.start()
            if len(self._pending) in (1, _BATCH):  # wake the writer only when it has something new to do
                self._wake.notify()

    def _built(self, item: _Submitted) -> AuditRecord:
        event, ts, call, tool, rule, reason = item
        principal = call.principal
        return self.build(event, ts=ts, call=call, tool=tool, principal=principal, rule=rule, reason=reason)

    def _drain(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending:
                    return
                gather_until = time.monotonic() + self.flush_interval_s  # one commit per batch
                while len(self._pending) < _BATCH and not self._closing and not self._flushing:
                    if not self._wake.wait(max(0.0, gather_until - time.monotonic())):
                        break
                batch = [self._pending.popleft() for _ in range(min(_BATCH, len(self._pending)))]
                self._inflight = len(batch)
            try:
                self.write(*map(self._built, batch))
                with self._wake:
                    self._inflight = self._failing = 0
                    self._wake.notify_all()
            except TelemetryError:
                with self._wake:
                    if self._closing:
                        self._lost(batch, "the audit store is down at shutdown")
                        return
                    self._pending.extendleft(reversed(batch))
                    self._inflight, self._failing = 0, 1
                    self._wake.notify_all()
                    self._wake.wait(_RETRY_S)

    def _lost(self, items: list[_Submitted], why: str) -> None:
        for item in items:
            logger.error("audit record not stored (%s): %s", why, asdict(self._built(item)))
            if self._on_failure is not None:
                self._on_failure()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted record is committed (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        with self._wake:
            self._flushing += 1
            self._wake.notify_all()
            try:
                while (self._pending or self._inflight) and not self._failing and time.monotonic() < deadline:
                    self._wake.wait(0.01)
                return not (self._pending or self._inflight)
            finally:
                self._flushing -= 1

    def events(self, *, tool: str | None = None) -> list[AuditRecord]:
        """Every record (of ``tool``), oldest first — for tests, reports and investigations."""
        engine = self._ready_engine()
        query = sa.select(audit_events).order_by(audit_events.c.id)
        if tool is not None:
            query = query.where(audit_events.c.tool == tool)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [AuditRecord(**dict(row)) for row in rows]

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued (or log it in full), stop the thread, release connections."""
        self.flush(timeout)
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._wake:
            if self._pending:
                self._lost(list(self._pending), "the audit store did not answer before shutdown")
                self._pending.clear()
        if self._engine is not None:
            self._engine.dispose()

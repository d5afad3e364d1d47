"""The shared ``approvals`` table: pending approvals, bound to caller, tool and arguments, consumed once."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic_core import to_jsonable_python
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fleetdeck.auth.audit import make_durable_engine
from fleetdeck.auth.principal import Principal
from fleetdeck.errors import TelemetryError
from fleetdeck.manifest.digest import canonical_json

if TYPE_CHECKING:  # the SDK is imported only when a server is built (keeps the CLI fast)
    pass

logger = logging.getLogger(__name__)

KEEP_EXPIRED_S = 86_400.0
"""How long a row outlives its expiry (for investigations; the audit trail keeps the history)."""
PURGE_EVERY_S = 3_600.0

approvals_metadata = sa.MetaData()

approvals_table = sa.Table(
    "approvals",
    approvals_metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("principal", sa.String(1200), nullable=False),
    sa.Column("server", sa.String(128), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("consumed_at", sa.Float),
    sa.Column("decision", sa.String(16)),  # accepted | declined | refused, once consumed
)


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """One row of ``approvals``."""

    id: str
    digest: str
    principal: str
    server: str
    tool: str
    created: float
    expires: float
    consumed_at: float | None = None
    decision: str | None = None


class ApprovalStore:
    """The ``approvals`` table in a store every replica shares; consumption is one atomic UPDATE.

    Rows expired for more than ``KEEP_EXPIRED_S`` are deleted by :meth:`create` (at most once per
    ``PURGE_EVERY_S`` per process), so the table stays small; a purged id is refused like an expired one.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.clock = clock
        self._engine: Engine | None = None
        self._created = False
        self._purged_at = float("-inf")

    def _ready(self) -> Engine:
        if self._engine is None:
            self._engine = make_durable_engine(self.url)
        if not self._created:
            approvals_metadata.create_all(self._engine)
            self._created = True
        return self._engine

    def create(self, *, digest: str, principal: str, server: str, tool: str, ttl_s: float) -> PendingApproval:
        """Record a pending approval with a fresh random id, before the human is asked."""
        now = self.clock()
        row = PendingApproval(
            id=secrets.token_urlsafe(24),
            digest=digest,
            principal=principal,
            server=server,
            tool=tool,
            created=now,
            expires=float(round(now + ttl_s, 3)),
        )
        purge = now - self._purged_at >= PURGE_EVERY_S
        try:
            with self._ready().begin() as conn:
                conn.execute(approvals_table.insert(), [asdict(row)])
                if purge:
                    old = approvals_table.c.expires < now - KEEP_EXPIRED_S
                    conn.execute(approvals_table.delete().where(old))
        except SQLAlchemyError as exc:
            raise TelemetryError(f"the approval store is unavailable ({type(exc).__name__})") from exc
        if purge:
            self._purged_at = now
        return row

    def get(self, approval_id: str) -> PendingApproval | None:
        """The row with ``approval_id``, or None."""
        try:
            with self._ready().connect() as conn:
                row = (
                    conn.execute(sa.select(approvals_table).where(approvals_table.c.id == approval_id))
                    .mappings()
                    .first()
                )
        except SQLAlchemyError as exc:
            raise TelemetryError(f"the approval store is unavailable ({type(exc).__name__})") from exc
        return PendingApproval(**dict(row)) if row is not None else None

    def _close(self, approval_id: str, decision: str, digest: str | None) -> bool:
        now = self.clock()
        c = approvals_table.c
        condition = sa.and_(c.id == approval_id, c.consumed_at.is_(None), c.expires > now)
        if digest is not None:
            condition = sa.and_(condition, c.digest == digest)
        statement = approvals_table.update().where(condition).values(consumed_at=now, decision=decision)
        try:
            with self._ready().begin() as conn:
                return conn.execute(statement).rowcount == 1
        except SQLAlchemyError as exc:
            raise TelemetryError(f"the approval store is unavailable ({type(exc).__name__})") from exc

    def consume(self, approval_id: str, digest: str) -> bool:
        """Use the approval once: True only for the first consumer, before expiry, for the same digest."""
        return self._close(approval_id, "accepted", digest)

    def close_unused(self, approval_id: str, decision: str) -> bool:
        """Close a pending approval that will not be used (declined or refused)."""
        return self._close(approval_id, decision, None)

    def close(self) -> None:
        """Release the engine's connections."""
        if self._engine is not None:
            self._engine.dispose()


# -- binding ---------------------------------------------------------------------------------------


def principal_key(principal: Principal) -> str:
    """The raw identity an approval is bound to (stored only in the approval and audit tables)."""
    user, workload = principal.user, principal.workload
    return canonical_json(
        {
            "issuer": user.issuer if user else None,
            "subject": user.subject if user else None,
            "workload": workload.spiffe_id if workload else None,
        }
    )


def binding_digest(server: str, tool: str, principal: Principal, arguments: Mapping[str, Any]) -> str:
    """``sha256`` over server, tool, principal and the canonical JSON of the arguments."""
    document = {
        "v": 1,
        "server": server,
        "tool": tool,
        "principal": principal_key(principal),
        "args": arguments,
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def jsonable_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The validated arguments as plain JSON values (models dumped, odd objects by their repr)."""
    value = to_jsonable_python(dict(arguments), fallback=repr)
    return value if isinstance(value, dict) else {}

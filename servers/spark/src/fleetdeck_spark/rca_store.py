"""Recorded root-cause analyses: a ``spark_rcas`` table (SQLAlchemy Core) in the shared telemetry store.

The table lives beside the fleet's telemetry (SQLite locally, PostgreSQL in production). Every text
is redacted before it is written.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import anyio
import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from fleetdeck.errors import BackendUnavailableError
from fleetdeck.telemetry.store import make_engine
from fleetdeck_spark.diagnosis import SimilarRca
from fleetdeck_spark.redaction import clip

metadata = sa.MetaData()
rcas = sa.Table(
    "spark_rcas",
    metadata,
    sa.Column("rca_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("recorded_by", sa.String(256), nullable=True),
    sa.Column("app_id", sa.String(200), nullable=False, index=True),
    sa.Column("app_name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(40), nullable=False, index=True),
    sa.Column("signature", sa.String(300), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("root_cause", sa.Text, nullable=False),
    sa.Column("remediation", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("tags", sa.String(400), nullable=False, default=""),
)
SIMILAR_LIMIT = 3


class RcaRecord(BaseModel):
    """One recorded RCA."""

    rca_id: int
    recorded_at: str
    recorded_by: str | None = None
    app_id: str
    app_name: str
    category: str
    signature: str
    title: str
    root_cause: str
    remediation: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


def _record(row: sa.Row[Any]) -> RcaRecord:
    data = dict(row._mapping)
    data["evidence"] = json.loads(data["evidence"] or "{}")
    data["tags"] = [t for t in (data["tags"] or "").split(",") if t]
    return RcaRecord(**data)


class RcaStore:
    """Writes and searches RCAs; the table is created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _ready(self) -> Engine:
        with self._lock:
            if self._engine is None:
                try:
                    engine = make_engine(self.url, durable=True)
                    metadata.create_all(engine)
                except sa.exc.SQLAlchemyError as exc:
                    raise BackendUnavailableError(
                        f"the RCA store cannot be opened ({type(exc).__name__})"
                    ) from exc
                self._engine = engine
            return self._engine

    def _record_sync(self, values: dict[str, Any]) -> RcaRecord:
        row = {
            **values,
            "title": clip(values["title"], 200),
            "root_cause": clip(values["root_cause"], 4000),
            "remediation": clip(values["remediation"], 4000),
            "evidence": clip(json.dumps(values.get("evidence") or {}, sort_keys=True), 16000),
            "tags": ",".join(sorted({t.strip().lower() for t in values.get("tags") or [] if t.strip()}))[
                :400
            ],
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            with self._ready().begin() as conn:
                rca_id = conn.execute(rcas.insert().values(**row)).inserted_primary_key[0]  # type: ignore[index]
                return _record(conn.execute(sa.select(rcas).where(rcas.c.rca_id == rca_id)).one())
        except sa.exc.SQLAlchemyError as exc:
            raise BackendUnavailableError(f"the RCA store refused the record ({type(exc).__name__})") from exc

    async def record(self, **values: Any) -> RcaRecord:
        """Store one RCA and return it with its id."""
        return await anyio.to_thread.run_sync(lambda: self._record_sync(values))

    def _find_sync(
        self, text: str | None, category: str | None, app_id: str | None, limit: int
    ) -> list[RcaRecord]:
        query = sa.select(rcas).order_by(rcas.c.rca_id.desc()).limit(limit)
        if category:
            query = query.where(rcas.c.category == category)
        if app_id:
            query = query.where(rcas.c.app_id == app_id)
        for word in (text or "").split()[:8]:
            escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            columns = (rcas.c.title, rcas.c.root_cause, rcas.c.app_name, rcas.c.signature, rcas.c.tags)
            query = query.where(sa.or_(*(sa.func.lower(c).like(pattern, escape="\\") for c in columns)))
        try:
            with self._ready().connect() as conn:
                return [_record(row) for row in conn.execute(query)]
        except sa.exc.SQLAlchemyError as exc:
            raise BackendUnavailableError(f"the RCA store cannot be searched ({type(exc).__name__})") from exc

    async def find(
        self, text: str | None = None, category: str | None = None, app_id: str | None = None, limit: int = 10
    ) -> list[RcaRecord]:
        """RCAs matching every word of ``text`` and the filters, newest first."""
        return await anyio.to_thread.run_sync(lambda: self._find_sync(text, category, app_id, limit))

    def _similar_sync(self, signature: str, category: str, app_id: str) -> list[SimilarRca]:
        query = (
            sa.select(rcas.c.rca_id, rcas.c.app_id, rcas.c.title, rcas.c.recorded_at, rcas.c.signature)
            .where(rcas.c.category == category)
            .order_by((rcas.c.signature == signature).desc(), rcas.c.rca_id.desc())
            .limit(SIMILAR_LIMIT)
        )
        with self._ready().connect() as conn:
            return [
                SimilarRca(rca_id=r.rca_id, app_id=r.app_id, title=r.title, recorded_at=r.recorded_at)
                for r in conn.execute(query)
            ]

    async def similar(self, signature: str, category: str, app_id: str) -> list[SimilarRca]:
        """Past RCAs of the same category, the same signature first; empty when the store is down."""
        try:
            return await anyio.to_thread.run_sync(lambda: self._similar_sync(signature, category, app_id))
        except (sa.exc.SQLAlchemyError, BackendUnavailableError):
            return []

    def close(self) -> None:
        """Release the connections."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

"""Query results as tools return them: typed columns, JSON rows, and the caps that bound them."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue

TruncatedBy = Literal["row_cap", "byte_cap"]


class Column(BaseModel):
    """One result column: its name and the engine's type (``varchar``, ``decimal(12,2)``, …)."""

    name: str
    type: str


class QueryResult(BaseModel):
    """Rows of a query, bounded by the row and byte caps; ``truncated`` says whether rows were cut."""

    query_id: str | None = Field(description="The engine's query id (get_query_status, the engine's UI).")
    columns: list[Column]
    rows: list[list[Any]] = Field(description="Values in column order, as JSON.")
    row_count: int
    truncated: bool = Field(description="True when the query had more rows than returned.")
    truncated_by: TruncatedBy | None = None
    elapsed_ms: float


def to_json_value(value: Any) -> JsonValue:
    """A driver value as JSON: exact decimals and timestamps as strings, bytes as base64."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):  # ISO 8601 duration (interval day to second)
        seconds = value.seconds + value.microseconds / 1_000_000
        return f"P{value.days}DT{seconds:g}S"
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID | IPv4Address | IPv6Address):
        return str(value)
    if isinstance(value, Mapping):
        return {str(to_json_value(k)): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(v) for v in value]
    if type(value).__name__ == "relativedelta":  # interval year to month
        return f"P{value.years}Y{value.months}M"
    return str(value)


@dataclass
class Collector:
    """Accepts rows until a cap is reached; memory stays within the caps whatever the query returns."""

    max_rows: int
    max_bytes: int
    rows: list[list[JsonValue]] = field(default_factory=list)
    size: int = 2
    truncated_by: TruncatedBy | None = None

    def add(self, row: Iterable[Any]) -> bool:
        """Add one row; False (and ``truncated_by`` set) when it does not fit: stop fetching then."""
        if len(self.rows) >= self.max_rows:
            self.truncated_by = "row_cap"
            return False
        values = [to_json_value(v) for v in row]
        size = len(json.dumps(values, separators=(",", ":"), ensure_ascii=False)) + 1
        if self.size + size > self.max_bytes:
            self.truncated_by = "byte_cap"
            return False
        self.rows.append(values)
        self.size += size
        return True

    def result(self, query_id: str | None, columns: list[Column], elapsed_ms: float) -> QueryResult:
        return QueryResult(
            query_id=query_id,
            columns=columns,
            rows=self.rows,
            row_count=len(self.rows),
            truncated=self.truncated_by is not None,
            truncated_by=self.truncated_by,
            elapsed_ms=round(elapsed_ms, 2),
        )

"""What the Airflow server's tools return: small, stable shapes independent of the client library.

Their JSON schemas are kept flat: a nullable scalar is ``"type": ["string", "null"]`` rather than an
``anyOf``, and lists of models use :func:`inline` instead of ``$ref`` into ``$defs``. MCP clients
validate every structured result against the tool's output schema (the SDK's client does, with
``jsonschema``), and that costs per keyword and per nested schema visited, per list item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

_NULL = {"type": "null"}
_SCALAR_KEYS = frozenset({"type", "format"})


def _flatten(schema: dict[str, Any]) -> None:
    """Nullable scalars as a type list and no per-property titles, in place (``json_schema_extra``)."""
    for prop in (schema.get("properties") or {}).values():
        prop.pop("title", None)
        options = prop.get("anyOf")
        if not isinstance(options, list) or len(options) != 2 or _NULL not in options:
            continue
        other = options[0] if options[1] == _NULL else options[1]
        if isinstance(other.get("type"), str) and set(other) <= _SCALAR_KEYS:
            del prop["anyOf"]
            prop.update(other, type=[other["type"], "null"])


class FlatModel(BaseModel):
    """A result model whose JSON schema is cheap to validate (see the module docstring)."""

    model_config = ConfigDict(json_schema_extra=_flatten)


def inline(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema to embed where a ``$ref`` would be (use with ``WithJsonSchema``)."""
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise TypeError(f"{model.__name__} nests models: it cannot be inlined")
    return schema


def inline_one(model: type[BaseModel]) -> WithJsonSchema:
    """Annotate a field of type ``model`` to embed its schema (``Annotated[M, inline_one(M)]``)."""
    return WithJsonSchema(inline(model))


def inline_list(model: type[BaseModel]) -> WithJsonSchema:
    """Annotate a ``list[model]`` field to embed the item schema (``Annotated[list[M], inline_list(M)]``)."""
    return WithJsonSchema({"type": "array", "items": inline(model)})


class DagSummary(FlatModel):
    """One DAG as a list shows it; ``tags`` and ``owners`` also drive per-DAG authorization."""

    dag_id: str
    description: str | None = None
    owners: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    is_paused: bool | None = None
    schedule: str | None = Field(default=None, description="The timetable, e.g. '@daily' or 'None'.")
    next_run_after: datetime | None = None
    has_import_errors: bool = False
    file: str | None = Field(default=None, description="DAG file relative to its bundle.")


class TaskSummary(FlatModel):
    """One task of a DAG."""

    task_id: str
    operator: str | None = None
    retries: float | None = None
    trigger_rule: str | None = None
    downstream_task_ids: list[str] = Field(default_factory=list)


class TaskKind(FlatModel):
    """Tasks of a DAG sharing an operator, a number of retries and a trigger rule."""

    operator: str | None = None
    retries: float | None = None
    trigger_rule: str | None = None
    task_ids: str = Field(description="Their task ids, comma-separated.")


class DagRunSummary(FlatModel):
    """One DAG run."""

    dag_id: str
    run_id: str
    state: str | None = None
    run_type: str | None = None
    logical_date: datetime | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration_s: float | None = None
    triggered_by: str | None = None
    triggering_user: str | None = None
    note: str | None = None
    conf: dict[str, Any] = Field(default_factory=dict)


class TaskInstanceSummary(FlatModel):
    """One task instance of a run: its state and its tries."""

    task_id: str
    map_index: int = -1
    state: str | None = None
    try_number: int = 0
    max_tries: int = 0
    operator: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration_s: float | None = None


class ImportProblem(FlatModel):
    """A DAG file Airflow could not import."""

    filename: str | None = None
    timestamp: datetime | None = None
    error: str = Field(description="The last lines of the stack trace (secrets redacted).")


class ComponentHealth(FlatModel):
    """One Airflow component's status as the API server reports it."""

    name: str
    status: str | None = None
    latest_heartbeat: str | None = None


class LogLine(FlatModel):
    """One rendered log line (secrets redacted, long lines cut)."""

    text: str


class ErrorReport(FlatModel):
    """The error a task failed with, as its log tells it."""

    error_type: str
    message: str
    location: str | None = Field(default=None, description="file:line of the innermost user frame.")
    raised: str | None = Field(default=None, description="The outermost exception when the root differs.")


class LogTail(FlatModel):
    """The end of one task try's log plus what the scan found."""

    lines: list[str] = Field(description="The last lines, oldest first (secrets redacted).")
    total_lines: int
    total_bytes: int
    truncated: bool = Field(description="True when earlier lines were left out.")
    error: ErrorReport | None = None

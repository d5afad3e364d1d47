"""The Fleetdeck error tree, and the one place errors map to outcomes and HTTP codes.

Tools and backends raise these; the server kit turns them into MCP tool results, telemetry records
their ``outcome``, and HTTP routes answer with their ``http_status``. Messages are shown to callers,
so they must never carry tokens, secrets or query literals.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How a tool call ended, as telemetry and reports count it."""

    OK = "ok"
    TOOL_ERROR = "tool_error"
    INVALID_INPUT = "invalid_input"
    DENIED = "denied"
    BACKEND_ERROR = "backend_error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    INTERNAL_ERROR = "internal_error"


class FleetdeckError(Exception):
    """Base of every error Fleetdeck raises on purpose."""

    outcome: Outcome = Outcome.TOOL_ERROR
    http_status: int = 500


class ConfigError(FleetdeckError):
    """A setting or configuration file is wrong; the message names the setting."""

    outcome = Outcome.INTERNAL_ERROR
    http_status = 500


class InvalidInputError(FleetdeckError):
    """The caller's arguments are unacceptable (too large, malformed, refused by a guard)."""

    outcome = Outcome.INVALID_INPUT
    http_status = 400


class NotFoundError(FleetdeckError):
    """The thing the caller asked for does not exist."""

    outcome = Outcome.TOOL_ERROR
    http_status = 404


class AccessDeniedError(FleetdeckError):
    """The caller may not do this; the message says which rule decided."""

    outcome = Outcome.DENIED
    http_status = 403


class BackendError(FleetdeckError):
    """The backend (Trino, Spark, Airflow, ...) failed; wraps the driver error with ``from``."""

    outcome = Outcome.BACKEND_ERROR
    http_status = 502


class BackendUnavailableError(BackendError):
    """The backend cannot be reached at all."""

    http_status = 503


class BackendTimeoutError(BackendError):
    """The backend did not answer in time; the work was cancelled on the backend."""

    outcome = Outcome.TIMEOUT
    http_status = 504


class ManifestError(FleetdeckError):
    """A manifest or review file is invalid; the message names the file and the line."""

    outcome = Outcome.INTERNAL_ERROR
    http_status = 422


class TelemetryError(FleetdeckError):
    """The telemetry store refused or failed a write (the writer spools and retries)."""

    outcome = Outcome.INTERNAL_ERROR
    http_status = 503


def outcome_of(exc: BaseException) -> Outcome:
    """The telemetry outcome for an exception escaping a tool body."""
    if isinstance(exc, FleetdeckError):
        return exc.outcome
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT
    return Outcome.INTERNAL_ERROR

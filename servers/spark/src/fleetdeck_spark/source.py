"""What the tools need from a Spark source; the event-log folder and the History Server implement it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from fleetdeck.errors import InvalidInputError
from fleetdeck_spark.model import Application, AppSummary, Stage

APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$")


def check_app_id(app_id: str) -> str:
    """``app_id`` if it looks like a Spark application id (never a path)."""
    if not APP_ID.match(app_id) or ".." in app_id:
        raise InvalidInputError(f"{app_id[:80]!r} is not a Spark application id (like local-1712345678901)")
    return app_id


@dataclass(frozen=True, slots=True)
class AppQuery:
    """Filters of :meth:`SparkSource.list_applications`; times in epoch milliseconds."""

    status: Literal["running", "completed"] | None = None
    started_after_ms: int | None = None
    started_before_ms: int | None = None
    name_contains: str | None = None
    user: str | None = None
    limit: int = 50

    def accepts(self, app: AppSummary) -> bool:
        """Whether ``app`` passes every filter."""
        if self.status and app.status != self.status:
            return False
        if self.started_after_ms is not None and (app.start_ms or 0) < self.started_after_ms:
            return False
        if self.started_before_ms is not None and (app.start_ms or 0) > self.started_before_ms:
            return False
        if self.name_contains and self.name_contains.lower() not in app.name.lower():
            return False
        return not (self.user and app.user != self.user)


class AppListing(BaseModel):
    """Applications found, and the servers that did not answer (the listing is then partial)."""

    applications: list[AppSummary]
    unreachable: list[str] = Field(default_factory=list)


class SparkSource(Protocol):
    """A place Spark applications can be read from."""

    description: str

    async def check(self) -> None:
        """Return when the source answers; raise a BackendError otherwise."""

    async def list_applications(self, query: AppQuery) -> AppListing:
        """Applications passing ``query``, most recent first, at most ``query.limit``."""

    async def get_application(self, app_id: str) -> Application:
        """The full model of the latest attempt of ``app_id``; NotFoundError when no source has it."""

    async def get_stage(self, app_id: str, stage_id: int, attempt: int | None) -> Stage:
        """One stage attempt with its quantiles and slowest tasks; NotFoundError when absent."""

"""Reading tools: list applications, one application's summary, one stage, two runs compared."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from fleetdeck.auth.policy import authorize_tool
from fleetdeck.server import FleetServer
from fleetdeck_spark.comparison import Comparison, compare
from fleetdeck_spark.model import AppSummary, Stage
from fleetdeck_spark.source import AppQuery, SparkSource
from fleetdeck_spark.tools.views import ApplicationView, application_view

AppId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$",
        description="Spark application id.",
    ),
]


class ApplicationList(BaseModel):
    """Applications, most recent first."""

    applications: list[AppSummary]
    unreachable: list[str] = Field(default_factory=list, description="Servers that did not answer.")
    source: str


def _ms(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1000) if value is not None else None


def register(server: FleetServer, source: SparkSource, surfaces: tuple[str, ...] = ()) -> None:
    """Add the reading tools to ``server``."""

    @server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(surfaces=surfaces)
    async def list_applications(
        status: Literal["running", "completed"] | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        name_contains: Annotated[str | None, Field(max_length=200)] = None,
        user: Annotated[str | None, Field(max_length=200)] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> ApplicationList:
        """List Spark applications, most recent first, filtered by status, start time, name and user.

        Times are ISO 8601. Returns at most `limit` applications; servers that did not answer are named.
        """
        query = AppQuery(
            status=status,
            started_after_ms=_ms(started_after),
            started_before_ms=_ms(started_before),
            name_contains=name_contains,
            user=user,
            limit=limit,
        )
        listing = await source.list_applications(query)
        return ApplicationList(
            applications=listing.applications, unreachable=listing.unreachable, source=source.description
        )

    @server.tool(minutes_saved=5, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(surfaces=surfaces)
    async def get_application(app_id: AppId) -> ApplicationView:
        """Summarise one Spark application: duration, jobs, stages, tasks, failures, executors, key settings.

        Failures are grouped by cause with their top frames; secrets in settings are redacted.
        """
        return application_view(await source.get_application(app_id))

    @server.tool(minutes_saved=5, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(surfaces=surfaces)
    async def get_stage(
        app_id: AppId,
        stage_id: Annotated[int, Field(ge=0, le=10_000_000)],
        attempt: Annotated[int | None, Field(ge=0, le=1000)] = None,
    ) -> Stage:
        """Show one stage: task-time and shuffle quantiles, spill, skew ratio and the slowest tasks.

        Quantiles are min, p25, median, p75 and max over successful tasks; without `attempt`, the
        latest attempt is shown.
        """
        return await source.get_stage(app_id, stage_id, attempt)

    @server.tool(minutes_saved=10, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(surfaces=surfaces)
    async def compare_applications(before_app_id: AppId, after_app_id: AppId) -> Comparison:
        """Compare two runs of the same job: total time, the stages whose time changed most, changed settings.

        Settings that differ on every run (ids, ports, start times) are left out; secrets are redacted.
        """
        before = await source.get_application(before_app_id)
        after = await source.get_application(after_app_id)
        return compare(before, after)

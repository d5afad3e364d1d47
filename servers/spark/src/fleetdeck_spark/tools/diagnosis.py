"""Diagnosis tools: a structured RCA of one application, and recording / finding RCAs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from fleetdeck.auth.policy import authorize_tool
from fleetdeck.auth.principal import current_principal
from fleetdeck.server import FleetServer
from fleetdeck_spark.diagnosis import Category, Diagnosis, diagnose
from fleetdeck_spark.rca_store import RcaRecord, RcaStore
from fleetdeck_spark.redaction import redact_text
from fleetdeck_spark.source import SparkSource
from fleetdeck_spark.tools.applications import AppId

Text = Annotated[str, Field(min_length=1, max_length=4000)]


class RcaList(BaseModel):
    """Recorded RCAs, newest first."""

    rcas: list[RcaRecord]


def register(
    server: FleetServer, source: SparkSource, store: RcaStore, surfaces: tuple[str, ...] = ()
) -> None:
    """Add the diagnosis and RCA tools to ``server``."""

    async def diagnosis_of(app_id: str) -> Diagnosis:
        result = diagnose(await source.get_application(app_id))
        result.similar_rcas = [
            r for r in await store.similar(result.signature, result.category, app_id) if r.app_id != app_id
        ]
        return result

    @server.tool(minutes_saved=30, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(surfaces=surfaces)
    async def diagnose_application(app_id: AppId) -> Diagnosis:
        """Diagnose why a Spark application failed or was slow: evidence, and the settings or code to change.

        Returns a category (python_exception, executor_oom, driver_oom, result_size_limit,
        shuffle_fetch_failure, executor_lost, data_skew, heavy_spill, analysis_error, missing_input,
        cancelled, unknown), a confidence, the evidence, remediation, and similar recorded RCAs.
        """
        return await diagnosis_of(app_id)

    @server.tool(minutes_saved=10, read_only=False, destructive=False, idempotent=False)
    @authorize_tool(surfaces=surfaces)
    async def record_rca(
        app_id: AppId,
        title: Annotated[str, Field(min_length=3, max_length=200)],
        root_cause: Text,
        remediation: Text,
        category: Category | None = None,
        tags: Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=10)] = [],  # noqa: B006
    ) -> RcaRecord:
        """Record a root-cause analysis of a Spark application so the team can find it again.

        Adds one record (never changes others). The category defaults to the diagnosis; the diagnosis
        evidence is stored with it. Secrets are redacted before storing.
        """
        found = await diagnosis_of(app_id)
        user = current_principal.get().user
        return await store.record(
            app_id=app_id,
            app_name=found.app_name,
            category=category or found.category,
            signature=found.signature,
            title=redact_text(title),
            root_cause=redact_text(root_cause),
            remediation=redact_text(remediation),
            evidence=found.evidence.model_dump(exclude_defaults=True),
            tags=tags,
            recorded_by=user.subject if user else None,
        )

    @server.tool(minutes_saved=5, read_only=True, destructive=False, idempotent=True)
    @authorize_tool(surfaces=surfaces)
    async def find_rcas(
        text: Annotated[str | None, Field(max_length=200)] = None,
        category: Category | None = None,
        app_id: AppId | None = None,
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> RcaList:
        """Find recorded Spark RCAs by words (title, cause, app name, tags), category or application id.

        Newest first; every word of `text` must match.
        """
        return RcaList(rcas=await store.find(text, category, app_id, limit))

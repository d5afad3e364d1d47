"""What every tool module shares: the backend, the per-DAG guard, settings, and the caller's note."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from fleetdeck.auth.audit import AuditEvent, AuditLog
from fleetdeck.auth.principal import current_principal
from fleetdeck.errors import AccessDeniedError
from fleetdeck_airflow.backend import AirflowBackend
from fleetdeck_airflow.models import DagSummary
from fleetdeck_airflow.permissions import Action, DagGuard
from fleetdeck_airflow.settings import AirflowSettings

DagId = Annotated[
    str, Field(min_length=1, max_length=250, pattern=r"^[A-Za-z0-9_.\-]+$", description="A DAG id.")
]
RunId = Annotated[
    str, Field(min_length=1, max_length=250, pattern=r"^[A-Za-z0-9_.:+\-]+$", description="A DAG run id.")
]
TaskId = Annotated[
    str, Field(min_length=1, max_length=250, pattern=r"^[A-Za-z0-9_.\-]+$", description="A task id.")
]


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Dependencies of the tool modules."""

    backend: AirflowBackend
    guard: DagGuard
    settings: AirflowSettings
    audit: AuditLog


def on_behalf_note(action: str) -> str:
    """The run note recording who asked for ``action`` (Airflow shows it next to the run)."""
    user = current_principal.get().user
    who = user.subject if user else "no user"
    if user is not None and user.email:
        who += f" <{user.email}>"
    return f"{action} via Fleetdeck on behalf of {who}, after their approval"[:1000]


async def permitted(ctx: ToolContext, tool: str, dag_id: str, action: Action) -> DagSummary:
    """The DAG when the caller may ``action`` it; otherwise audit the refusal and raise AccessDeniedError."""
    try:
        return await ctx.guard.require(dag_id, action)
    except AccessDeniedError as exc:
        await ctx.audit.arecord(
            AuditEvent.DECISION_DENIED,
            required=False,
            tool=tool,
            principal=current_principal.get(),
            rule=f"dag-{action}",
            reason=str(exc),
        )
        raise

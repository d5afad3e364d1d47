"""Assemble the Airflow server from its settings and backend (no I/O here)."""

from __future__ import annotations

from fleetdeck.auth.identity import IdentityResolver
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.tool import ServerInfo
from fleetdeck_airflow.backend import AirflowBackend
from fleetdeck_airflow.permissions import DagGuard, DagRules
from fleetdeck_airflow.settings import AirflowSettings
from fleetdeck_airflow.tools import dags, operations, runs
from fleetdeck_airflow.tools.context import ToolContext

INFO = ServerInfo(
    name="airflow",
    registry_name="io.fleetdeck/airflow",
    title="Airflow",
    description=(
        "Inspect Airflow DAGs, find why runs failed, and operate your team's pipelines with approval."
    ),
    version="0.1.0",
    owner_team="data-infra",
    support_channel="#data-infra-help",
    docs_url="https://github.com/fleetdeck/fleetdeck/tree/main/servers/airflow",
    data_classification="internal",
    lifecycle="beta",
    instructions=(
        "Start with list_dags or get_dag; for a failed run call diagnose_dag_run before reading logs. "
        "Changes (trigger_dag_run, clear_*, pause_dag, unpause_dag, mark_dag_run) ask the user to approve; "
        "give trigger_dag_run a unique run_id and reuse it when retrying."
    ),
    tags=("airflow", "pipelines", "orchestration"),
)


def build_server(
    settings: FleetdeckSettings,
    airflow: AirflowSettings,
    backend: AirflowBackend,
    identity: IdentityResolver | None = None,
) -> FleetServer:
    """The Airflow server over ``backend``, with ``airflow``'s access policy and per-DAG grants."""
    server = FleetServer(INFO, settings, access=airflow.access, identity=identity, readiness=backend.check)
    guard = DagGuard(backend, DagRules(airflow.dags))
    context = ToolContext(backend=backend, guard=guard, settings=airflow, audit=server.audit)
    dags.register(server, context)
    runs.register(server, context)
    operations.register(server, context)
    return server

"""The ``fleetdeck.servers`` entry point of the Airflow server."""

from __future__ import annotations

from pathlib import Path

import anyio

from fleetdeck.errors import FleetdeckError
from fleetdeck.plugins import ServerPlugin
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_airflow.backend import RestAirflowBackend
from fleetdeck_airflow.server import build_server
from fleetdeck_airflow.settings import AirflowSettings

DEFAULT_PORT = 8103
PROBE_TIMEOUT_S = 5.0


def build(config_file: Path | None = None, *, settings: FleetdeckSettings | None = None) -> FleetServer:
    """Build the server from configuration; Airflow is contacted on first use."""
    settings = settings or FleetdeckSettings.load(config_file)
    airflow = AirflowSettings.load(config_file)
    return build_server(settings, airflow, RestAirflowBackend(airflow))


async def available(config_file: Path | None = None) -> str | None:
    """``None`` when an Airflow is configured and answers; otherwise why the server cannot run."""
    airflow = AirflowSettings.load(config_file)
    if not airflow.url:
        return "no Airflow is configured (set airflow.url or FLEETDECK_AIRFLOW__URL)"
    try:
        backend = RestAirflowBackend(airflow)
        try:
            with anyio.fail_after(PROBE_TIMEOUT_S):
                await backend.check()
        finally:
            backend.close()
    except TimeoutError:
        return f"Airflow at {airflow.url} did not answer within {PROBE_TIMEOUT_S:g} s"
    except FleetdeckError as exc:
        return str(exc)
    return None


plugin = ServerPlugin(name="airflow", build=build, available=available, default_port=DEFAULT_PORT)

"""The ``fleetdeck.servers`` entry point of the Spark server."""

from __future__ import annotations

from pathlib import Path

import anyio

from fleetdeck.errors import FleetdeckError
from fleetdeck.plugins import ServerPlugin
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_spark.demo import seed_event_dir
from fleetdeck_spark.eventlog import EventLogSource
from fleetdeck_spark.history import HistoryServerSource
from fleetdeck_spark.rca_store import RcaStore
from fleetdeck_spark.server import build_server
from fleetdeck_spark.settings import SparkSettings
from fleetdeck_spark.source import SparkSource

DEFAULT_PORT = 8102
AVAILABLE_TIMEOUT_S = 10.0


def make_source(settings: FleetdeckSettings, spark: SparkSettings) -> SparkSource:
    """The configured source (no I/O: sources connect on first use; the demo is seeded then)."""
    if spark.source == "history":
        return HistoryServerSource(
            spark.history_urls,
            timeout_s=spark.request_timeout_s,
            retries=spark.retries,
            max_response_bytes=spark.max_response_mb * 1024 * 1024,
        )
    seed = spark.uses_default_dir() and spark.seed_demo
    folder = Path(spark.log_dir(settings))
    return EventLogSource(
        str(folder),
        storage_options=spark.storage_options,
        prepare=(lambda: seed_event_dir(folder)) if seed else None,
    )


def build(config_file: Path | None = None, *, settings: FleetdeckSettings | None = None) -> FleetServer:
    """Build the server from configuration; logs and servers are read on first use."""
    settings = settings or FleetdeckSettings.load(config_file)
    spark = SparkSettings.load(config_file)
    store = RcaStore(spark.rca_store_url(settings))
    return build_server(settings, spark, make_source(settings, spark), store)


async def available(config_file: Path | None = None) -> str | None:
    """None when the configured source answers (event-log folder listable, a History Server up)."""
    settings = FleetdeckSettings.load(config_file)
    spark = SparkSettings.load(config_file)
    try:
        with anyio.fail_after(AVAILABLE_TIMEOUT_S):
            await make_source(settings, spark).check()
    except FleetdeckError as exc:
        return str(exc)
    except (OSError, TimeoutError) as exc:
        return f"the Spark source is not reachable ({type(exc).__name__})"
    return None


plugin = ServerPlugin(name="spark", build=build, available=available, default_port=DEFAULT_PORT)

"""The demo event logs shipped with the package: real Spark 4 logs a newcomer can diagnose at once."""

from __future__ import annotations

import logging
import shutil
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

logger = logging.getLogger(__name__)

PACKAGE_FOLDER = "demo_logs"


def demo_logs() -> Traversable:
    """The bundled folder of demo event logs."""
    return resources.files("fleetdeck_spark") / PACKAGE_FOLDER


def _copy(source: Traversable, target: Path) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in source.iterdir():
            _copy(child, target / child.name)
    else:
        with source.open("rb") as reader, target.open("wb") as writer:
            shutil.copyfileobj(reader, writer)


def seed_event_dir(target: Path) -> bool:
    """Copy the demo logs into ``target`` when it is missing or empty; True when it did."""
    if target.exists() and any(target.iterdir()):
        return False
    target.mkdir(parents=True, exist_ok=True)
    for entry in demo_logs().iterdir():
        if entry.name.startswith(("eventlog_v2_", "local-", "app-")):
            _copy(entry, target / entry.name)
    logger.info("seeded %s with the demo Spark event logs", target)
    return True

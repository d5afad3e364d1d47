"""Settings of the Spark server: TOML table ``[spark]``, env prefix ``FLEETDECK_SPARK__``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.settings import FleetdeckSettings, ServerSettings


class SparkSettings(ServerSettings):
    """Where applications are read from, where RCAs are stored, and who may use the tools where."""

    model_config = SettingsConfigDict(
        env_prefix="FLEETDECK_SPARK__", env_nested_delimiter="__", extra="ignore"
    )
    toml_table: ClassVar[str | None] = "spark"

    access: AccessPolicy = Field(
        default=AccessPolicy(business_groups=("data-infra", "data-eng", "ads")),
        description="Business groups that may use the server.",
    )
    source: Literal["eventlog", "history"] = Field(
        default="eventlog",
        description="eventlog (read event logs directly) or history (History Server REST).",
    )
    event_log_dir: str | None = Field(
        default=None,
        description="Event-log folder: a path or any fsspec URL; default <data_dir>/spark-events.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec storage options for a remote event-log folder."
    )
    history_urls: list[str] = Field(
        default_factory=list, description="History Server base URLs (http://host:18080); all are searched."
    )
    request_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Timeout of one REST request.")
    retries: int = Field(default=2, ge=0, le=5, description="Retries of an idempotent REST read.")
    max_response_mb: int = Field(default=64, ge=1, le=1024, description="Largest REST answer accepted.")
    rca_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the RCA store; default: the fleet's telemetry store."
    )
    surfaces: tuple[str, ...] = Field(
        default=(), description="Client surfaces (channels) where the tools are offered; empty: everywhere."
    )
    seed_demo: bool = Field(
        default=True, description="Copy the bundled demo event logs into an empty default event-log folder."
    )

    def log_dir(self, settings: FleetdeckSettings) -> str:
        """The event-log folder to read."""
        return self.event_log_dir or str(settings.data_dir / "spark-events")

    def uses_default_dir(self) -> bool:
        """Whether the event-log folder is the default one (which the demo may seed)."""
        return self.event_log_dir is None

    def rca_store_url(self, settings: FleetdeckSettings) -> str:
        """Where RCAs are stored."""
        return self.rca_url or settings.telemetry_url()


def default_event_dir(settings: FleetdeckSettings) -> Path:
    """``<data_dir>/spark-events``."""
    return settings.data_dir / "spark-events"

"""Settings of the Presto/Trino server: TOML table ``[presto]``, env prefix ``FLEETDECK_PRESTO__``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.settings import ServerSettings


class PrestoSettings(ServerSettings):
    """Who may use the server, which warehouse backend it uses and where the embedded one lives."""

    model_config = SettingsConfigDict(
        env_prefix="FLEETDECK_PRESTO__", env_nested_delimiter="__", extra="ignore"
    )
    toml_table: ClassVar[str | None] = "presto"

    access: AccessPolicy = Field(
        default=AccessPolicy(business_groups=("ads", "finance", "data-infra")),
        description="Business groups that may use the server.",
    )
    backend: Literal["duckdb"] = Field(
        default="duckdb", description="duckdb (embedded demo warehouse); trino arrives with the Presto issue."
    )
    duckdb_path: Path | None = Field(
        default=None, description="DuckDB file of the demo warehouse; default <data_dir>/warehouse.duckdb."
    )

"""Settings of the Airflow server: TOML table ``[airflow]``, env prefix ``FLEETDECK_AIRFLOW__``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.settings import ServerSettings


class DagGrant(BaseModel):
    """DAGs a set of business groups may read or operate, by fnmatch patterns over ids, tags or owners.

    A DAG matches when any pattern of any of the three lists matches it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: tuple[str, ...] = Field(description="Business groups this grant applies to ('*' = everyone).")
    dag_ids: tuple[str, ...] = Field(default=(), description="fnmatch patterns over DAG ids.")
    tags: tuple[str, ...] = Field(default=(), description="fnmatch patterns over DAG tags.")
    owners: tuple[str, ...] = Field(default=(), description="fnmatch patterns over DAG owners.")

    @model_validator(mode="after")
    def _names_something(self) -> DagGrant:
        if not self.groups:
            raise ValueError("a DAG grant needs at least one group")
        if not (self.dag_ids or self.tags or self.owners):
            raise ValueError("a DAG grant needs at least one dag_ids, tags or owners pattern")
        return self


class DagAccess(BaseModel):
    """Per-DAG authorization: who may read which DAGs and who may operate (change) which DAGs.

    Operating implies reading. A user outside every grant sees and changes no DAG.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    read: tuple[DagGrant, ...] = Field(
        default=(DagGrant(groups=("*",), dag_ids=("*",)),),
        description="Grants to read DAGs, runs and logs (default: every user of the server reads every DAG).",
    )
    operate: tuple[DagGrant, ...] = Field(
        default=(), description="Grants to trigger, clear, pause and mark runs (default: nobody)."
    )


class AirflowSettings(ServerSettings):
    """Which Airflow the server talks to, with which credentials, and who may do what on which DAGs."""

    model_config = SettingsConfigDict(
        env_prefix="FLEETDECK_AIRFLOW__", env_nested_delimiter="__", extra="ignore"
    )
    toml_table: ClassVar[str | None] = "airflow"

    access: AccessPolicy = Field(
        default=AccessPolicy(business_groups=("data-infra", "ads", "finance")),
        description="Business groups that may use the server.",
    )
    dags: DagAccess = Field(default_factory=DagAccess, description="Per-DAG read / operate grants.")
    url: str | None = Field(
        default=None,
        description="Base URL of the Airflow 3 API server (e.g. http://airflow:8080); unset = off.",
    )
    environment_name: str = Field(
        default="airflow", max_length=64, description="Name of this Airflow environment in results."
    )
    username: str | None = Field(default=None, description="The server's own Airflow user (simple auth).")
    password: SecretStr | None = Field(default=None, description="Password of ``username``.")
    token: SecretStr | None = Field(
        default=None, description="A bearer token for Airflow instead of username/password."
    )
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    read_timeout_s: float = Field(default=15.0, gt=0, le=300)
    read_retries: int = Field(default=2, ge=0, le=5, description="Retries of idempotent reads only.")
    token_refresh_margin_s: float = Field(
        default=60.0, ge=0, description="Fetch a new token this long before the current one expires."
    )
    log_tail_lines: int = Field(default=200, ge=1, le=5000, description="Default tail of get_task_logs.")
    max_log_bytes: int = Field(
        default=64_000, ge=1000, le=1_000_000, description="Most log text one result returns."
    )
    diagnose_max_failed_tasks: int = Field(
        default=10, ge=1, le=100, description="Failed tasks whose logs diagnose_dag_run reads."
    )

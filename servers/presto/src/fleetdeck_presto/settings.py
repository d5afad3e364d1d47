"""Settings of the Presto/Trino server: TOML table ``[presto]``, env prefix ``FLEETDECK_PRESTO__``."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.settings import ServerSettings


class TrinoAuth(BaseModel):
    """How the *server* authenticates to Trino; the end user's token is never forwarded."""

    method: Literal["none", "basic", "jwt", "certificate"] = "none"
    user: str | None = Field(default=None, description="Service account (basic).")
    password: SecretStr | None = Field(default=None, description="Service password (basic).")
    token: SecretStr | None = Field(default=None, description="The server's own JWT (jwt).")
    client_cert: Path | None = Field(default=None, description="Client certificate PEM (certificate).")
    client_key: Path | None = Field(default=None, description="Client key PEM (certificate).")


class TrinoSettings(BaseModel):
    """Where the Trino coordinator is and how queries are attributed to the end user."""

    host: str = "localhost"
    port: int = Field(default=8080, ge=1, le=65535)
    http_scheme: Literal["http", "https"] = "http"
    verify: bool | Path = Field(default=True, description="TLS verification: on, off, or a CA bundle path.")
    catalog: str | None = Field(default=None, description="Session catalog for unqualified names.")
    default_schema: str | None = Field(default=None, description="Session schema for unqualified names.")
    auth: TrinoAuth = Field(default_factory=TrinoAuth)
    source: str = Field(default="fleetdeck-presto", description="X-Trino-Source of every query.")
    user_from: Literal["subject", "email", "email_local_part", "claim"] = Field(
        default="subject", description="Which verified identity field becomes the Trino user."
    )
    user_claim: str | None = Field(default=None, description="The JWT claim used when user_from=claim.")
    request_timeout_s: float = Field(default=30.0, gt=0)
    engine_timeout: bool = Field(
        default=True, description="Also set query_max_run_time so Trino kills a query past the timeout."
    )


class Limits(BaseModel):
    """Bounds on what one query may return and how long it may run."""

    max_rows: int = Field(default=1000, ge=1, le=100_000)
    max_bytes: int = Field(default=262_144, ge=1024, description="JSON size of the rows returned.")
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    sample_rows: int = Field(default=10, ge=1, le=100)
    progress_interval_s: float = Field(default=1.0, gt=0)


class GroupScope(BaseModel):
    """What one business group may reach: catalog names and ``catalog.schema`` patterns (``*`` wildcards)."""

    catalogs: tuple[str, ...] = ("*",)
    schemas: tuple[str, ...] = ("*",)

    def allows(self, catalog: str, schema: str | None = None) -> bool:
        if not any(fnmatchcase(catalog, p) for p in self.catalogs):
            return False
        return schema is None or any(fnmatchcase(f"{catalog}.{schema}", p) for p in self.schemas)


class PrestoSettings(ServerSettings):
    """Who may use the server, which backend it uses, its limits and the per-group data scopes."""

    model_config = SettingsConfigDict(
        env_prefix="FLEETDECK_PRESTO__", env_nested_delimiter="__", extra="ignore"
    )
    toml_table: ClassVar[str | None] = "presto"

    access: AccessPolicy = Field(
        default=AccessPolicy(business_groups=("ads", "finance", "data-infra")),
        description="Business groups that may use the server.",
    )
    query_groups: tuple[str, ...] = Field(
        default=("ads", "finance", "data-infra"),
        description="Groups that may call run_query and explain_query (narrower than access).",
    )
    scopes: dict[str, GroupScope] = Field(
        default_factory=dict,
        description="Group -> reachable catalogs/schemas. Empty: no restriction. Otherwise a user reaches "
        "the union of their groups' scopes ('*' applies to everyone).",
    )
    backend: Literal["duckdb", "trino"] = Field(
        default="duckdb", description="duckdb (embedded demo) or trino."
    )
    duckdb_path: Path | None = Field(
        default=None, description="DuckDB file of the demo warehouse; default <data_dir>/warehouse.duckdb."
    )
    trino: TrinoSettings = Field(default_factory=TrinoSettings)
    limits: Limits = Field(default_factory=Limits)
    table_functions: tuple[str, ...] = Field(
        default=("sequence", "exclude_columns"), description="Table functions the SQL guard lets through."
    )
    system_schemas: tuple[str, ...] = Field(
        default=("information_schema", "jdbc", "metadata"),
        description="Readable schemas of the system catalog.",
    )

    def scope_for(self, groups: frozenset[str]) -> list[GroupScope] | None:
        """The scopes a user with ``groups`` has; None means unrestricted."""
        if not self.scopes:
            return None
        return [scope for group, scope in self.scopes.items() if group == "*" or group in groups]

"""Settings of the registry: TOML table ``[registry]``, env prefix ``FLEETDECK_REGISTRY__``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.settings import ServerSettings


class RegistrySettings(ServerSettings):
    """Where manifests live, how often they are reloaded and servers probed, and who probes."""

    model_config = SettingsConfigDict(
        env_prefix="FLEETDECK_REGISTRY__", env_nested_delimiter="__", extra="ignore"
    )
    toml_table: ClassVar[str | None] = "registry"

    access: AccessPolicy = Field(
        default=AccessPolicy(business_groups=("*",)),
        description="Who may use the registry itself (every verified user by default).",
    )
    manifests_dir: Path | None = Field(
        default=None, description="Manifest folder; default: the shared setting manifests_dir."
    )
    reload_interval_s: float = Field(default=2.0, gt=0, description="How often the folder is checked.")
    max_servers: int = Field(default=10_000, ge=1, description="More server folders than this are refused.")
    probe_enabled: bool = Field(default=True, description="Probe catalogued servers in the background.")
    probe_interval_s: float = Field(default=60.0, gt=0, description="Time between two probe rounds.")
    probe_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of one server's probe.")
    probe_concurrency: int = Field(default=32, ge=1, le=1024, description="Servers probed at once.")
    probe_token: SecretStr | None = Field(
        default=None, description="Bearer token of the registry's own fixed identity, sent to every server."
    )
    probe_workload_header: str | None = Field(
        default=None, description="Header carrying a workload proof (e.g. a JWT-SVID) on probes."
    )
    probe_workload_token: SecretStr | None = Field(default=None, description="Value of that header.")
    endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Server folder name -> /mcp URL to probe, overriding the manifest's remote.",
    )
    history_per_server: int = Field(default=500, ge=1, description="Probe results kept per server.")
    ui_access: Literal["open", "token"] | None = Field(
        default=None,
        description="open: the web UI reads without a token (e.g. behind the company SSO proxy); token: "
        "bearer only. Unset: open only in development on a loopback address, else token (fail closed).",
    )
    roi_cache_s: float = Field(default=30.0, ge=0, description="How long ROI figures are cached.")

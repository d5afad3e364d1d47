"""Typed settings: a TOML file plus ``FLEETDECK_*`` environment variables (nested with ``__``).

Precedence, highest first: explicit keyword arguments, environment variables, the TOML file
(``--config FILE`` or ``FLEETDECK_CONFIG``), then the embedded defaults, which run a local fleet.
Each package has one settings class; a server's class reads its own TOML table (``[presto]``) and
its own prefix (``FLEETDECK_PRESTO__``). A wrong value fails at start with a :class:`ConfigError`
naming the setting.
"""

from __future__ import annotations

import os
import tomllib
from ipaddress import ip_address
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.auth.sealing import ApprovalSettings
from fleetdeck.errors import ConfigError
from fleetdeck.keyfile import random_hex_key, read_or_create

CONFIG_ENV = "FLEETDECK_CONFIG"


def default_data_dir() -> Path:
    """Where a local fleet keeps its shared state (telemetry file, spool, development keys)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fleetdeck"


class _TomlTable(PydanticBaseSettingsSource):
    """One table of a TOML file (or the top level) as a settings source."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None, table: str | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is None:
            return
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
        section = document.get(table, {}) if table else document
        if not isinstance(section, dict):
            raise ConfigError(f"configuration file {path}: [{table}] must be a table")
        self._data = section

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class PackageSettings(BaseSettings):
    """Base for every package's settings class: adds :meth:`load` and setting-naming errors."""

    toml_table: ClassVar[str | None] = None
    _config_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlTable(settings_cls, cls._config_file, cls.toml_table)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Self:
        """Read the settings, or raise :class:`ConfigError` naming the first wrong setting."""
        path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
        bound = type(cls.__name__, (cls,), {"_config_file": path})
        try:
            return bound(**overrides)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise ConfigError(cls._describe(exc)) from exc

    def source_file(self) -> Path | None:
        """The TOML file these settings were loaded from, if any."""
        return type(self)._config_file

    @classmethod
    def _describe(cls, exc: ValidationError) -> str:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = []
        for error in exc.errors():
            dotted = ".".join(str(part) for part in error["loc"])
            env = prefix + "__".join(str(part).upper() for part in error["loc"])
            problems.append(f"setting {dotted} (env {env}): {error['msg']}")
        return "invalid configuration: " + "; ".join(problems)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 possibly in brackets) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HttpSettings(BaseModel):
    """How a server listens over Streamable HTTP."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="Canonical base URL clients use (defaults to http://host:port)."
    )
    allowed_hosts: list[str] = Field(default_factory=list, description="Extra Host values accepted.")
    allowed_origins: list[str] = Field(default_factory=list, description="Extra Origin values accepted.")
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    max_argument_bytes: int = Field(default=262_144, ge=256)
    stateless: bool = Field(default=False, description="Stateless HTTP (no sessions, no SSE back-channel).")
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    tls_certfile: Path | None = Field(default=None, description="Serve HTTPS with this certificate (PEM).")
    tls_keyfile: Path | None = Field(default=None, description="The private key of tls_certfile (PEM).")
    tls_client_ca: Path | None = Field(
        default=None,
        description="Require client certificates signed by this bundle (mTLS); the certificate's SPIFFE "
        "ID becomes the calling workload.",
    )

    @model_validator(mode="after")
    def _tls_complete(self) -> Self:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        if self.tls_client_ca is not None and self.tls_certfile is None:
            raise ValueError("tls_client_ca needs tls_certfile and tls_keyfile (mTLS is served over HTTPS)")
        return self


class TelemetrySettings(BaseModel):
    """Where invocation events go and how the background writer batches them."""

    url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite in the data dir.")
    spool_dir: Path | None = Field(default=None, description="Where events wait while the store is down.")
    queue_size: int = Field(default=100_000, ge=1)
    batch_size: int = Field(default=5_000, ge=1)
    flush_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Longest wait before queued events (and audit records that gate nothing) are written; "
        "longer means larger, cheaper batches. Shutdown and flush() write at once.",
    )
    retry_interval_s: float = Field(default=2.0, gt=0)
    pseudonym_key: SecretStr | None = Field(
        default=None, description="Key for hashing user ids; generated once per data dir when unset."
    )
    otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP endpoint for spans and metrics.")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class DevelopmentIdentitySettings(BaseModel):
    """Who the local developer is when a development server runs without an issuer (loopback only)."""

    user: str | None = Field(default=None, description="Subject of the local developer (default: OS user).")
    groups: tuple[str, ...] = Field(default=("data-infra",), description="Business groups of the developer.")
    roles: tuple[str, ...] = Field(default=(), description="Roles of the developer.")


class ServerSettings(PackageSettings):
    """Base of every domain server's settings class: who may use the server at all."""

    access: AccessPolicy = Field(default_factory=AccessPolicy, description="Server access policy.")


class FleetdeckSettings(PackageSettings):
    """Settings shared by every server and the CLI (TOML top level, prefix ``FLEETDECK_``)."""

    model_config = SettingsConfigDict(env_prefix="FLEETDECK_", env_nested_delimiter="__", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    manifests_dir: Path = Path("registry-manifests")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http: HttpSettings = Field(default_factory=HttpSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    dev: DevelopmentIdentitySettings = Field(default_factory=DevelopmentIdentitySettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)

    def telemetry_url(self) -> str:
        """The telemetry store URL: configured, or the SQLite file a local fleet shares."""
        return self.telemetry.url or f"sqlite:///{self.data_dir / 'telemetry.db'}"

    def spool_dir(self) -> Path:
        """Where events wait on disk while the store is unreachable."""
        return self.telemetry.spool_dir or self.data_dir / "spool"

    def pseudonym_key(self) -> bytes:
        """The keyed-hash key for user ids; in development one is generated per data dir."""
        if self.telemetry.pseudonym_key is not None:
            return self.telemetry.pseudonym_key.get_secret_value().encode()
        if self.environment == "production":
            raise ConfigError(
                "setting telemetry.pseudonym_key (env FLEETDECK_TELEMETRY__PSEUDONYM_KEY) is required"
            )
        return read_or_create(self.data_dir / "pseudonym.key", random_hex_key).strip()

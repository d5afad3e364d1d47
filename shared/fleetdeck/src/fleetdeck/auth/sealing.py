"""Sealing keys for multi-round request state: shared by every replica so any of them completes a call."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from fleetdeck.errors import ConfigError
from fleetdeck.keyfile import random_hex_key, read_or_create

if TYPE_CHECKING:  # the SDK is imported only when a server is built (keeps the CLI fast)
    from mcp.server.request_state import RequestStateCodec, RequestStateSecurity

    from fleetdeck.settings import FleetdeckSettings

logger = logging.getLogger(__name__)

MIN_KEY_BYTES: Final = 32


class ApprovalSettings(BaseModel):
    """Human approval of destructive tools (TOML ``[approvals]``, env ``FLEETDECK_APPROVALS__*``)."""

    model_config = ConfigDict(extra="forbid")

    sealing_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys sealing the multi-round request state; the first seals, all unseal (rotation). "
        "Every replica needs the same list. Required in production; generated per data dir in development.",
    )
    ttl_s: float = Field(default=300.0, gt=0, le=3600, description="How long an approval may be completed.")
    environment_label: str | None = Field(
        default=None, max_length=64, description="Environment shown to the human (default: `environment`)."
    )
    store_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the shared approval store (default: the telemetry store).",
    )
    max_shown_argument_chars: int = Field(
        default=2000, ge=200, le=20000, description="Arguments longer than this are shown truncated."
    )

    @field_validator("store_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


def _development_key(data_dir: Path) -> bytes:
    """One random key per data dir, created atomically (concurrent starters share one key)."""
    return read_or_create(data_dir / "request-state.key", random_hex_key).strip()


def sealing_keys(settings: FleetdeckSettings) -> list[bytes]:
    """The request-state sealing keys: configured, or (development only) one generated per data dir."""
    configured = settings.approvals.sealing_keys
    if configured:
        keys = [key.get_secret_value().encode() for key in configured]
        for index, key in enumerate(keys):
            if len(key) < MIN_KEY_BYTES:
                raise ConfigError(
                    f"setting approvals.sealing_keys[{index}] (env FLEETDECK_APPROVALS__SEALING_KEYS) "
                    f"must be at least {MIN_KEY_BYTES} bytes of secret randomness"
                )
        if len(set(keys)) != len(keys):
            raise ConfigError("setting approvals.sealing_keys lists the same key twice")
        return keys
    if settings.environment == "production":
        raise ConfigError(
            "setting approvals.sealing_keys (env FLEETDECK_APPROVALS__SEALING_KEYS) is required in "
            "production: every replica must share the keys so any of them can complete an approval"
        )
    return [_development_key(settings.data_dir)]


class _DevelopmentCodec:
    """AES-GCM under the data dir's development key, created on first use (building a server does no IO)."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._codec: RequestStateCodec | None = None
        self._lock = threading.Lock()

    def _ready(self) -> RequestStateCodec:
        from mcp.server.request_state import AESGCMRequestStateCodec

        with self._lock:
            if self._codec is None:
                self._codec = AESGCMRequestStateCodec([_development_key(self._data_dir)])
            return self._codec

    def seal(self, payload: bytes) -> str:
        return self._ready().seal(payload)

    def unseal(self, token: str) -> bytes:
        return self._ready().unseal(token)


def request_state_security(settings: FleetdeckSettings) -> RequestStateSecurity:
    """The SDK's request-state policy under the shared sealing keys (any replica can unseal).

    Configured keys (and their absence in production) are checked here, at start; the development
    key is read or generated on first use.
    """
    from mcp.server.request_state import RequestStateSecurity

    ttl = settings.approvals.ttl_s
    if settings.approvals.sealing_keys or settings.environment == "production":
        return RequestStateSecurity(keys=sealing_keys(settings), ttl=ttl)
    return RequestStateSecurity(codec=_DevelopmentCodec(settings.data_dir), ttl=ttl)

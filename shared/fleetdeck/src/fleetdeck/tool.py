"""What a Fleetdeck tool declares besides its code: annotations, minutes saved, policy slot.

The kit refuses a tool that does not state every one of these explicitly; the manifest exports them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fleetdeck.auth.policy import ToolPolicy
from fleetdeck.errors import ConfigError

if TYPE_CHECKING:
    from mcp.types import ToolAnnotations

TOOL_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$|^[a-z][a-z0-9]*$")
Lifecycle = Literal["experimental", "beta", "ga", "deprecated"]


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Who a server is and who owns it; exported verbatim into the manifest."""

    name: str
    """Short name used by the CLI and URLs (``presto``)."""
    registry_name: str
    """Reverse-DNS name for the MCP registry (``io.fleetdeck/presto``)."""
    title: str
    description: str
    version: str
    owner_team: str
    support_channel: str
    docs_url: str
    data_classification: Literal["public", "internal", "confidential", "restricted"]
    lifecycle: Lifecycle = "beta"
    instructions: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool's Fleetdeck declaration; ``policy`` comes from ``@authorize_tool`` (None: server-wide only)."""

    name: str
    description: str
    minutes_saved: float
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    title: str | None = None
    policy: ToolPolicy | None = None

    @property
    def requires_approval(self) -> bool:
        """Destructive tools run only after a human approves the exact call."""
        return self.destructive

    def annotations(self) -> ToolAnnotations:
        """The MCP annotations, all four hints stated explicitly."""
        from mcp.types import ToolAnnotations  # deferred: the CLI imports declarations without the SDK

        return ToolAnnotations(
            title=self.title,
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


def describe(fn: Callable[..., Any], name: str) -> str:
    """The model-facing description: the function's docstring, dedented."""
    doc = inspect.getdoc(fn)
    if not doc or not doc.strip():
        raise ConfigError(f"tool {name!r} needs a docstring: it is the description the model reads")
    return doc.strip()


def make_spec(
    fn: Callable[..., Any],
    *,
    name: str | None,
    title: str | None,
    minutes_saved: float,
    read_only: bool,
    destructive: bool,
    idempotent: bool,
    open_world: bool,
    policy: ToolPolicy | None,
) -> ToolSpec:
    """Validate a tool's declaration and return its spec."""
    tool_name = name or fn.__name__
    if not TOOL_NAME.match(tool_name) or len(tool_name) > 64:
        raise ConfigError(f"tool name {tool_name!r} must be verb-first snake_case, at most 64 characters")
    for flag, value in (("read_only", read_only), ("destructive", destructive), ("idempotent", idempotent)):
        if not isinstance(value, bool):
            raise ConfigError(f"tool {tool_name!r}: {flag} must be True or False, got {value!r}")
    if read_only and destructive:
        raise ConfigError(f"tool {tool_name!r} cannot be both read_only and destructive")
    if (
        isinstance(minutes_saved, bool)
        or not isinstance(minutes_saved, int | float)
        or not 0 <= minutes_saved <= 480
    ):
        raise ConfigError(f"tool {tool_name!r}: minutes_saved must be a number between 0 and 480")
    return ToolSpec(
        name=tool_name,
        description=describe(fn, tool_name),
        minutes_saved=float(minutes_saved),
        read_only=read_only,
        destructive=destructive,
        idempotent=idempotent,
        open_world=open_world,
        title=title,
        policy=policy,
    )

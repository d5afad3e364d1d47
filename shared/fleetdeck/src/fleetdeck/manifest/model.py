"""The manifest: the official MCP registry ``server.json`` plus Fleetdeck's governance data.

The official fields keep their registry spelling (``websiteUrl``, ``remotes``, ``_meta``, schema
``2025-09-29``). Everything Fleetdeck adds lives under one namespaced key,
``_meta["io.fleetdeck/governance"]``, in snake_case. Manifests are generated from the server object
(:mod:`fleetdeck.manifest.builder`) and never edited, so every model refuses unknown fields: a field
the builder does not write can only come from a hand edit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleetdeck.manifest.digest import DIGEST_PATTERN, surface_digest
from fleetdeck.manifest.strict_yaml import load_json, validate

SERVER_JSON_SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json"
GOVERNANCE_KEY = "io.fleetdeck/governance"
REGISTRY_NAME_PATTERN = r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$"
TOOL_NAME_PATTERN = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"

DataClassification = Literal["public", "internal", "confidential", "restricted"]
Lifecycle = Literal["experimental", "beta", "ga", "deprecated"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Repository(_Strict):
    """Where the server's source lives (official ``repository`` object)."""

    url: str = Field(min_length=1)
    source: str = Field(min_length=1, description="Hosting service, e.g. 'github'.")
    id: str | None = None
    subfolder: str | None = None


class Remote(_Strict):
    """How a client reaches the server (official ``remotes[]`` entry)."""

    type: Literal["streamable-http"] = "streamable-http"
    url: str = Field(min_length=1, description="The server's canonical /mcp URL.")


class ToolHints(_Strict):
    """A tool's MCP annotations, every hint stated (the wire spells them camelCase)."""

    title: str | None = None
    read_only_hint: bool
    destructive_hint: bool
    idempotent_hint: bool
    open_world_hint: bool


class ManifestTool(_Strict):
    """One tool as the model sees it plus what Fleetdeck declares about it."""

    name: str = Field(pattern=TOOL_NAME_PATTERN, max_length=64)
    title: str | None = None
    description: str = Field(min_length=1)
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    annotations: ToolHints
    policy: dict[str, Any] | None = Field(
        default=None, description="The per-tool authorization policy, as the server enforces it."
    )
    minutes_saved: float = Field(ge=0, le=480, description="Minutes a successful call saves a human.")
    requires_approval: bool = Field(description="Whether a human must approve each call (destructive tools).")

    def canonical(self) -> dict[str, Any]:
        """The tool's full definition as plain JSON data; the digest hashes exactly this."""
        return self.model_dump(mode="json")


class Governance(_Strict):
    """Fleetdeck's data about a server: ownership, classification, access and its tool surface."""

    owner_team: str = Field(min_length=1)
    support_channel: str = Field(min_length=1)
    docs_url: str = Field(min_length=1)
    data_classification: DataClassification
    lifecycle: Lifecycle
    instructions: str = Field(default="", description="Server instructions shown to the model.")
    tags: list[str] = Field(default_factory=list)
    access_policy: dict[str, Any] = Field(
        default_factory=dict, description="Who may use the server at all (typed by the auth layer)."
    )
    tools: list[ManifestTool]
    tool_surface_digest: str = Field(pattern=DIGEST_PATTERN)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [tool.name for tool in self.tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tool names must be unique; repeated: {', '.join(duplicates)}")
        if names != sorted(names):
            raise ValueError("tools must be sorted by name")
        actual = surface_digest(tool.canonical() for tool in self.tools)
        if actual != self.tool_surface_digest:
            raise ValueError(
                f"tool_surface_digest {self.tool_surface_digest} does not match the tools listed ({actual})"
            )
        return self


class ManifestMeta(_Strict):
    """The ``_meta`` object: Fleetdeck writes exactly one namespaced key."""

    governance: Governance = Field(alias=GOVERNANCE_KEY)


class Manifest(_Strict):
    """A ``server.json`` for the MCP registry, extended with Fleetdeck's governance data."""

    schema_: str = Field(default=SERVER_JSON_SCHEMA, alias="$schema")
    name: str = Field(pattern=REGISTRY_NAME_PATTERN, min_length=3, max_length=200)
    description: str = Field(min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=100)
    version: str = Field(min_length=1, max_length=255)
    website_url: str | None = Field(default=None, alias="websiteUrl")
    repository: Repository | None = None
    remotes: list[Remote] = Field(default_factory=list)
    meta: ManifestMeta = Field(alias="_meta")

    @property
    def governance(self) -> Governance:
        """Fleetdeck's part of the manifest."""
        return self.meta.governance

    @property
    def tools(self) -> list[ManifestTool]:
        """The tool surface, sorted by name."""
        return self.meta.governance.tools

    @property
    def digest(self) -> str:
        """The canonical digest of the tool surface (``sha256:<hex>``)."""
        return self.meta.governance.tool_surface_digest

    def document(self) -> dict[str, Any]:
        """The manifest as JSON data, official spelling; unset optional official fields omitted."""
        data = self.model_dump(mode="json", by_alias=True)
        for key in ("title", "websiteUrl", "repository"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Manifest` (what ``manifest.schema.json`` holds)."""
    schema = Manifest.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://fleetdeck.io/schemas/manifest.schema.json"
    return schema


def render_json(data: Any) -> str:
    """Stable JSON: sorted keys, 2-space indent, ASCII only (invisible characters show), final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n"


def load_manifest(path: Path) -> Manifest:
    """Load a committed ``server.json`` strictly; a :class:`ManifestError` names the file and line."""
    return validate(load_json(path), Manifest)

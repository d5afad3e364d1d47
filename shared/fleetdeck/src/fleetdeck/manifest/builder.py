"""Build a manifest from the live server object, never by hand, and render it byte-stably.

The wire half of each tool (name, title, description, schemas, annotations) is taken from exactly
what ``tools/list`` returns; the Fleetdeck half (policy, minutes saved, approval) from the tool's
:class:`~fleetdeck.tool.ToolSpec`. Ownership and classification come from the server's
:class:`~fleetdeck.tool.ServerInfo`; the remote URL from its canonical ``/mcp`` URL.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from fleetdeck.errors import ManifestError
from fleetdeck.manifest.digest import canonical_json, diff_surfaces, diff_values, short, surface_digest
from fleetdeck.manifest.model import GOVERNANCE_KEY, SERVER_JSON_SCHEMA, Manifest, ManifestTool, render_json
from fleetdeck.tool import ServerInfo, ToolSpec

if TYPE_CHECKING:
    from mcp.types import Tool

# What MCP clients assume when a hint is absent (used only for live surfaces, which may omit them).
_MCP_HINT_DEFAULTS = {
    "read_only_hint": False,
    "destructive_hint": True,
    "idempotent_hint": False,
    "open_world_hint": True,
}


class ManifestSource(Protocol):
    """What the builder reads from a server (``fleetdeck.server.FleetServer`` satisfies it)."""

    @property
    def info(self) -> ServerInfo: ...

    @property
    def tool_specs(self) -> Mapping[str, ToolSpec]: ...

    async def tool_definitions(self) -> list[Tool]: ...

    def canonical_url(self) -> str: ...


def jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON data, deterministically (sets sorted); refuses anything else."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ManifestError(f"{where}: {value!r} is not a finite number")
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value, where)
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="json"), where)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), where)
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ManifestError(f"{where}: key {key!r} is not a string")
            result[key] = jsonable(item, f"{where}.{key}")
        return result
    if isinstance(value, list | tuple):
        return [jsonable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(item, f"{where}[]") for item in value), key=canonical_json)
    raise ManifestError(f"{where}: a {type(value).__name__} cannot be exported to the manifest")


def _hints(definition: Tool, *, defaults: bool) -> dict[str, Any]:
    annotations = definition.annotations
    hints: dict[str, Any] = {"title": annotations.title if annotations else None}
    for hint, default in _MCP_HINT_DEFAULTS.items():
        value = getattr(annotations, hint, None) if annotations else None
        if value is None and not defaults:
            raise ManifestError(f"tool {definition.name}: annotations must state {hint} explicitly")
        hints[hint] = default if value is None else value
    return hints


def _manifest_tool(
    definition: Tool, *, policy: Any, minutes_saved: float, requires_approval: bool, defaults: bool
) -> ManifestTool:
    data = {
        "name": definition.name,
        "title": definition.title,
        "description": definition.description or "",
        "input_schema": jsonable(definition.input_schema, f"tool {definition.name}: input_schema"),
        "output_schema": jsonable(definition.output_schema, f"tool {definition.name}: output_schema"),
        "annotations": _hints(definition, defaults=defaults),
        "policy": jsonable(policy, f"tool {definition.name}: policy"),
        "minutes_saved": minutes_saved,
        "requires_approval": requires_approval,
    }
    try:
        return ManifestTool.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"tool {definition.name}: {_describe(exc)}") from None


def tool_from_definition(definition: Tool, spec: ToolSpec) -> ManifestTool:
    """One tool as the manifest records it: the wire definition plus its Fleetdeck declaration."""
    return _manifest_tool(
        definition,
        policy=spec.policy,
        minutes_saved=spec.minutes_saved,
        requires_approval=spec.requires_approval,
        defaults=False,
    )


def live_surface(definitions: Iterable[Tool], declared: Iterable[ManifestTool]) -> list[ManifestTool]:
    """A live ``tools/list`` as the manifest would record it, for drift checks against ``declared``.

    ``tools/list`` cannot show policy, minutes saved or the approval requirement, so those come from
    the declared (approved) tool of the same name; an undeclared tool gets none. Absent hints take
    the MCP defaults, so a server that stops stating a hint drifts from an explicit declaration.
    """
    known = {tool.name: tool for tool in declared}
    surface = []
    for definition in definitions:
        twin = known.get(definition.name)
        surface.append(
            _manifest_tool(
                definition,
                policy=twin.policy if twin else None,
                minutes_saved=twin.minutes_saved if twin else 0.0,
                requires_approval=twin.requires_approval if twin else False,
                defaults=True,
            )
        )
    return sorted(surface, key=lambda tool: tool.name)


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def _access_policy(server: ManifestSource) -> dict[str, Any]:
    """The server-level access policy, if the server exposes one (the auth layer types it)."""
    policy = getattr(server, "access_policy", None)
    if callable(policy):
        policy = policy()
    exported = jsonable(policy, f"server {server.info.name}: access_policy")
    if exported is None:
        return {}
    if not isinstance(exported, dict):
        raise ManifestError(f"server {server.info.name}: access_policy must export as an object")
    return exported


async def build_manifest(server: ManifestSource) -> Manifest:
    """The manifest of ``server``, from its live tool definitions, declarations and info."""
    info = server.info
    specs = server.tool_specs
    definitions = await server.tool_definitions()
    listed = {definition.name for definition in definitions}
    if undeclared := sorted(listed - set(specs)):
        raise ManifestError(
            f"server {info.name}: tools without a Fleetdeck declaration: {', '.join(undeclared)}"
        )
    if unlisted := sorted(set(specs) - listed):
        raise ManifestError(
            f"server {info.name}: declared tools missing from tools/list: {', '.join(unlisted)}"
        )
    tools = sorted(
        (tool_from_definition(definition, specs[definition.name]) for definition in definitions),
        key=lambda tool: tool.name,
    )
    governance = {
        "owner_team": info.owner_team,
        "support_channel": info.support_channel,
        "docs_url": info.docs_url,
        "data_classification": info.data_classification,
        "lifecycle": info.lifecycle,
        "instructions": info.instructions,
        "tags": list(info.tags),
        "access_policy": _access_policy(server),
        "tools": [tool.canonical() for tool in tools],
        "tool_surface_digest": surface_digest(tools),
    }
    document = {
        "$schema": SERVER_JSON_SCHEMA,
        "name": info.registry_name,
        "description": info.description,
        "title": info.title,
        "version": info.version,
        "websiteUrl": info.docs_url,
        "remotes": [{"type": "streamable-http", "url": server.canonical_url()}],
        "_meta": {GOVERNANCE_KEY: governance},
    }
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        raise ManifestError(f"server {info.name}: the manifest would be invalid: {_describe(exc)}") from None


def render(manifest: Manifest) -> str:
    """The manifest's file text: sorted keys, 2-space indent, ASCII, trailing newline; byte-stable."""
    return render_json(manifest.document())


def _split(document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[Any], Any]:
    """A manifest document as (official fields, governance fields, tools, digest), tolerating junk."""
    top = copy.deepcopy(dict(document))
    meta = top.pop("_meta", None)
    governance = meta.get(GOVERNANCE_KEY) if isinstance(meta, dict) else None
    governance = dict(governance) if isinstance(governance, dict) else {}
    if isinstance(meta, dict) and set(meta) - {GOVERNANCE_KEY}:
        top["_meta"] = {key: value for key, value in meta.items() if key != GOVERNANCE_KEY}
    tools = governance.pop("tools", [])
    digest = governance.pop("tool_surface_digest", None)
    return top, governance, tools if isinstance(tools, list) else [], digest


def describe_changes(committed: Manifest | Mapping[str, Any], built: Manifest) -> list[str]:
    """What differs between a committed manifest (parsed, or raw JSON data) and the built one."""
    old_document = committed.document() if isinstance(committed, Manifest) else committed
    old, old_governance, old_tools, old_digest = _split(old_document)
    new, new_governance, new_tools, new_digest = _split(built.document())
    named = [tool for tool in old_tools if isinstance(tool, dict) and isinstance(tool.get("name"), str)]
    lines = diff_surfaces(named, new_tools)
    if len(named) != len(old_tools):
        lines.append("tools: some entries are not tool objects with a name")
    if old_digest != new_digest:
        lines.append(f"tool_surface_digest {short(str(old_digest))} -> {short(str(new_digest))}")
    lines += diff_values("server.json", old, new) if old != new else []
    lines += (
        diff_values("governance", old_governance, new_governance) if old_governance != new_governance else []
    )
    return lines

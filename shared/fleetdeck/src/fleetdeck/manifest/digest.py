"""The canonical digest of a tool surface, and a human-readable diff between two surfaces.

What was reviewed is everything the model sees and everything Fleetdeck enforces: each tool's name,
title, description, input and output schema, annotations, policy, minutes saved and approval
requirement. The digest is ``sha256:<hex>`` over canonical JSON of those definitions: keys sorted,
no whitespace, tools ordered by name, ASCII escapes for everything else. Text is *not* Unicode
normalised: different bytes are a different surface, and an invisible or bidirectional character in
a description changes the digest like any other edit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
DIGEST_VERSION = 1
_MAX_CHANGES_PER_FIELD = 5


class HasCanonical(Protocol):
    """Anything that can state its canonical tool definition (e.g. ``ManifestTool``)."""

    def canonical(self) -> dict[str, Any]: ...


ToolLike = Mapping[str, Any] | HasCanonical


def _as_dict(tool: ToolLike) -> dict[str, Any]:
    return dict(tool) if isinstance(tool, Mapping) else tool.canonical()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no whitespace, ASCII escapes, no NaN or infinity."""
    return _CANONICAL.encode(value)


def surface_digest(tools: Iterable[ToolLike]) -> str:
    """The digest of a tool surface; stable under key order and tool order."""
    definitions = sorted((_as_dict(tool) for tool in tools), key=lambda tool: str(tool.get("name", "")))
    payload = canonical_json({"digest_version": DIGEST_VERSION, "tools": definitions})
    return "sha256:" + hashlib.sha256(payload.encode("ascii")).hexdigest()


def short(digest: str) -> str:
    """A digest shortened for messages: ``sha256:0123456789ab..``."""
    return digest[:19] + ".." if len(digest) > 19 else digest


def _path(parts: Sequence[str]) -> str:
    return ".".join(parts) if parts else "(root)"


def _changed_paths(old: Any, new: Any, parts: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths where two JSON values differ (list positions as ``[i]``)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        paths: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            here = (*parts, str(key))
            if key not in old:
                paths.append(f"{_path(here)} (added)")
            elif key not in new:
                paths.append(f"{_path(here)} (removed)")
            else:
                paths.extend(_changed_paths(old[key], new[key], here))
        return paths
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        paths = []
        for index, (left, right) in enumerate(zip(old, new, strict=True)):
            label = (*parts[:-1], f"{parts[-1]}[{index}]") if parts else (f"[{index}]",)
            paths.extend(_changed_paths(left, right, label))
        return paths
    if type(old) is type(new) and old == new:
        return []
    return [_path(parts)]


def diff_values(label: str, old: Any, new: Any) -> list[str]:
    """Human-readable differences between two JSON values: ``<label> changed at <path>``."""
    paths = _changed_paths(old, new)
    if paths == ["(root)"]:
        return [f"{label} changed"]
    lines = [f"{label} changed at {path}" for path in paths[:_MAX_CHANGES_PER_FIELD]]
    if len(paths) > _MAX_CHANGES_PER_FIELD:
        lines.append(f"{label}: {len(paths) - _MAX_CHANGES_PER_FIELD} more changes")
    return lines


_SCALAR_FIELDS = ("title", "description", "minutes_saved", "requires_approval")
_NESTED_FIELDS = ("input_schema", "output_schema", "annotations", "policy")


def diff_tool(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed in one tool, field by field (e.g. ``description changed``)."""
    changes: list[str] = []
    for field in _SCALAR_FIELDS:
        before, after = old.get(field), new.get(field)
        if before != after or type(before) is not type(after):
            # descriptions are long and may hold hidden characters: name the field, not the text
            changes.append(
                f"{field} changed" if field == "description" else f"{field} changed ({before!r} -> {after!r})"
            )
    for field in _NESTED_FIELDS:
        changes.extend(diff_values(field, old.get(field), new.get(field)))
    known = set(_SCALAR_FIELDS) | set(_NESTED_FIELDS) | {"name"}
    for field in sorted((set(old) | set(new)) - known):
        changes.extend(diff_values(field, old.get(field), new.get(field)))
    return changes


def diff_surfaces(old_tools: Iterable[ToolLike], new_tools: Iterable[ToolLike]) -> list[str]:
    """Human-readable changes from ``old_tools`` to ``new_tools``, one line each, ordered by tool.

    Lines look like ``tool list_schemas: description changed``, ``tool drop_table: added`` or
    ``tool run_query: input_schema changed at properties.sql.maxLength``. An empty list means the
    surfaces are identical (and so are their digests).
    """
    old = {str(tool["name"]): tool for tool in map(_as_dict, old_tools)}
    new = {str(tool["name"]): tool for tool in map(_as_dict, new_tools)}
    lines: list[str] = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            lines.append(f"tool {name}: added")
        elif name not in new:
            lines.append(f"tool {name}: removed")
        else:
            lines.extend(f"tool {name}: {change}" for change in diff_tool(old[name], new[name]))
    return lines

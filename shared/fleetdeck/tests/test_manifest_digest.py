"""The tool-surface digest: stable under ordering, sensitive to every reviewed field."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from fleetdeck.manifest.digest import diff_surfaces, surface_digest


def _tool(name: str = "list_schemas") -> dict[str, Any]:
    return {
        "name": name,
        "title": "List schemas",
        "description": "List the schemas in a catalog.",
        "input_schema": {
            "type": "object",
            "properties": {"catalog": {"type": "string", "maxLength": 64}},
            "required": ["catalog"],
        },
        "output_schema": {
            "type": "object",
            "properties": {"names": {"type": "array", "items": {"type": "string"}}},
        },
        "annotations": {
            "title": None,
            "read_only_hint": True,
            "destructive_hint": False,
            "idempotent_hint": True,
            "open_world_hint": False,
        },
        "policy": {"groups": ["analysts"]},
        "minutes_saved": 3.0,
        "requires_approval": False,
    }


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


def test_digest_has_the_sha256_format() -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", surface_digest([_tool()]))


def test_digest_is_stable_under_key_order_and_tool_order() -> None:
    tools = [_tool("list_schemas"), _tool("describe_table"), _tool("run_query")]
    shuffled = [_reversed_keys(tool) for tool in reversed(tools)]

    assert surface_digest(tools) == surface_digest(shuffled)
    assert surface_digest(tools) == surface_digest(copy.deepcopy(tools))


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(tool: dict[str, Any]) -> None:
        target = tool
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


MUTATIONS = {
    "name": _set(("name",), "list_schemata"),
    "title": _set(("title",), "Schemas"),
    "description": _set(("description",), "List the schemas in a catalog. Always call this first."),
    "input_schema": _set(("input_schema", "properties", "catalog", "maxLength"), 65),
    "output_schema": _set(("output_schema", "properties", "names", "items", "type"), "integer"),
    "read_only_hint": _set(("annotations", "read_only_hint"), False),
    "destructive_hint": _set(("annotations", "destructive_hint"), True),
    "idempotent_hint": _set(("annotations", "idempotent_hint"), False),
    "open_world_hint": _set(("annotations", "open_world_hint"), True),
    "annotation_title": _set(("annotations", "title"), "Schemas"),
    "policy": _set(("policy", "groups"), ["analysts", "everyone"]),
    "minutes_saved": _set(("minutes_saved",), 4.0),
    "requires_approval": _set(("requires_approval",), True),
}


@pytest.mark.parametrize("field", sorted(MUTATIONS))
def test_digest_changes_when_a_reviewed_field_changes(field: str) -> None:
    original = [_tool(), _tool("run_query")]
    changed = copy.deepcopy(original)
    MUTATIONS[field](changed[0])

    assert surface_digest(changed) != surface_digest(original)


def test_digest_sees_invisible_characters_and_does_not_normalise_unicode() -> None:
    plain, hidden = _tool(), _tool()
    hidden["description"] = "List the schemas\u200b in a catalog."
    composed, decomposed = _tool(), _tool()
    composed["description"], decomposed["description"] = "Caf\u00e9 schemas.", "Cafe\u0301 schemas."

    assert surface_digest([plain]) != surface_digest([hidden])
    assert surface_digest([composed]) != surface_digest([decomposed])


def test_digest_changes_when_a_tool_is_added_or_removed() -> None:
    one, two = [_tool()], [_tool(), _tool("drop_table")]

    assert surface_digest(one) != surface_digest(two)
    assert surface_digest([]) != surface_digest(one)


def test_diff_surfaces_names_each_change() -> None:
    old = [_tool(), _tool("drop_table")]
    new = [_tool(), _tool("run_query")]
    new[0]["description"] = "Something else."
    new[0]["input_schema"]["properties"]["catalog"]["maxLength"] = 128
    new[0]["annotations"]["destructive_hint"] = True

    lines = diff_surfaces(old, new)

    assert "tool list_schemas: description changed" in lines
    assert "tool list_schemas: input_schema changed at properties.catalog.maxLength" in lines
    assert "tool list_schemas: annotations changed at destructive_hint" in lines
    assert "tool drop_table: removed" in lines
    assert "tool run_query: added" in lines


def test_diff_surfaces_is_empty_for_identical_surfaces() -> None:
    assert diff_surfaces([_tool()], [_reversed_keys(_tool())]) == []


def test_diff_surfaces_reports_scalar_changes_with_values() -> None:
    new = _tool()
    new["minutes_saved"] = 5.0

    assert diff_surfaces([_tool()], [new]) == ["tool list_schemas: minutes_saved changed (3.0 -> 5.0)"]

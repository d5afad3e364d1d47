"""Fast strict parsing of manifests and review records, for catalogs of thousands of servers.

The shared strict loaders (:mod:`fleetdeck.manifest.strict_yaml`) parse with pure-Python scanners
so they can point at the exact line of a problem; over 2,000 servers that alone takes many seconds.
Here the same checks run on the C parsers first: JSON through ``json.loads`` with a hook refusing
duplicate keys and NaN/Infinity, and a depth check; YAML through libyaml's composer, then the
shared node conversion (duplicate keys, ambiguous plain scalars). Anything the fast path does not
accept outright — or any text that could hold anchors, aliases, tags, merge keys or deep flow
nesting — goes through the shared strict loader, which accepts the same documents and reports the
problem with its line. So the fast path never accepts what the strict one refuses.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from fleetdeck.manifest.model import Manifest, load_manifest
from fleetdeck.manifest.reviews import Reviews, load_reviews
from fleetdeck.manifest.strict_yaml import (
    MAX_DEPTH,
    MAX_JSON_BYTES,
    MAX_YAML_BYTES,
    Document,
    _convert,
    _plain_scalar,
    _Refused,
    read_bounded,
    validate,
)

_JSON_MAX_DEPTH = MAX_DEPTH * 2
_YAML_RISKY = ("&", "*", "!", "<<", "%")
_STRINGS: dict[str, bool] = {}
_MEMO_SIZE = 50_000
_CLoader: Any = getattr(yaml, "CBaseLoader", None)  # no implicit typing: the shared conversion decides


class _Fallback(Exception):
    """The fast path declines; the strict loader decides (and explains)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Fallback
    return result


def _constant(name: str) -> Any:
    raise _Fallback


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (C-speed passes over the text)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def read_manifest(path: Path) -> Manifest:
    """A manifest, strictly: duplicate keys, NaN, deep nesting, schema and digest all checked."""
    text = read_bounded(path, MAX_JSON_BYTES)
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
        if _depth(text) > _JSON_MAX_DEPTH:
            raise _Fallback
    except (_Fallback, ValueError, RecursionError):
        return load_manifest(path)  # raises the precise ManifestError
    return validate(Document(path=path, data=data, text=text), Manifest)


def read_reviews(path: Path) -> Reviews:
    """Review records, strictly (see the module docstring)."""
    text = read_bounded(path, MAX_YAML_BYTES)
    flow = text.count("[") + text.count("{")
    if _CLoader is None or flow > MAX_DEPTH or any(mark in text for mark in _YAML_RISKY):
        return load_reviews(path)
    loader = _CLoader(text)
    try:
        node = loader.get_single_node()
        if node is None or _node_depth(node) > MAX_DEPTH:
            raise _Fallback
        marks: dict[tuple[str | int, ...], tuple[int, int]] = {}
        data = _convert(node, (), marks)
    except (_Fallback, _Refused, yaml.YAMLError, RecursionError):
        return load_reviews(path)
    finally:
        loader.dispose()
    return validate(Document(path=path, data=data, marks=marks), Reviews)


def _plain_string(node: Any) -> bool:
    """Whether the shared rules read this plain scalar as exactly its text (memoised by text).

    Such a scalar can then be marked quoted: the shared conversion returns the same string for it,
    without asking the YAML resolver again. Values repeat across files (keys, statuses), so the memo
    saves most of the resolver's work; anything else is left plain for the shared rules to judge.
    """
    verdict = _STRINGS.get(node.value)
    if verdict is None:
        node.style = None
        try:
            value = _plain_scalar(node)
            verdict = isinstance(value, str) and value == node.value
        except _Refused:
            verdict = False
        if len(_STRINGS) > _MEMO_SIZE:
            _STRINGS.clear()
        _STRINGS[node.value] = verdict
    return verdict


def _node_depth(node: Any) -> int:
    """Nesting depth of a composed node tree; marks the plain scalars the shared rules read as strings.

    No aliases, anchors or explicit tags can be in the tree: texts holding ``*``, ``&`` or ``!`` never
    reach the fast path.
    """
    deepest, stack = 0, [(node, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, yaml.ScalarNode):
            if item.style == "":  # libyaml spells the plain style '' where PyYAML says None
                item.style = '"' if _plain_string(item) else None
        elif isinstance(item, yaml.SequenceNode):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item.value)
        else:
            deepest = max(deepest, level)
            for key, value in item.value:
                stack.append((key, level + 1))
                stack.append((value, level + 1))
    return deepest

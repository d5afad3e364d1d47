"""Strict loading of review records (YAML) and manifests (JSON): refuse what lenient loaders accept.

``yaml.safe_load`` keeps the last of duplicate keys, reads ``NO`` as ``False`` and ``1.10`` as
``1.1``, expands alias bombs and overflows the stack on deep nesting. These loaders refuse, with
``file:line:column: what``, as a :class:`~fleetdeck.errors.ManifestError`:

- files over a size cap, symlinks, bytes that are not UTF-8;
- duplicate mapping keys, anchors and aliases (so no alias bombs), explicit tags, merge keys;
- nesting deeper than a cap (checked while composing, before any recursion can overflow);
- YAML plain scalars that YAML 1.1 or 1.2 would read as anything but a string, except exactly
  ``true``/``false``, ``null``/``~``/empty and decimal integers. ISO dates (``2026-01-31``) stay
  strings: the schema parses them. Quote anything else that should be a string.

Types beyond that are the schema's business: :func:`validate` maps pydantic errors back to the line
of the offending value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.decoder import JSONObject  # type: ignore[attr-defined]
from json.scanner import py_make_scanner  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fleetdeck.errors import ManifestError

MAX_YAML_BYTES = 256 * 1024
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_DECIMAL_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# YAML 1.2 core-schema forms that YAML 1.1 (PyYAML) reads as strings: still ambiguous to a reader.
_YAML12_NON_STRING = re.compile(
    r"0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|True|TRUE|False|FALSE|Null|NULL"
)
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Document:
    """Loaded data plus where each value came from, so schema errors can name a line."""

    path: Path
    data: Any
    marks: Mapping[Loc, tuple[int, int]] = field(default_factory=dict)
    text: str = ""

    def position(self, loc: Loc) -> tuple[int, int]:
        """1-based line and column of the value at ``loc`` (its nearest located ancestor)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.marks:
                return self.marks[loc[:end]]
        return _json_position(self.text, loc) if self.text else (1, 1)

    def where(self, loc: Loc) -> str:
        line, column = self.position(loc)
        return f"{self.path}:{line}:{column}"


def _refuse(path: Path, line: int, column: int, what: str) -> ManifestError:
    return ManifestError(f"{path}:{line}:{column}: {what}")


def read_bounded(path: Path, max_bytes: int) -> str:
    """The file's UTF-8 text, refusing symlinks, missing files and files over ``max_bytes``."""
    if path.is_symlink():
        raise _refuse(path, 1, 1, "is a symbolic link; manifests and review records must be regular files")
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(raw) > max_bytes:
        raise _refuse(path, 1, 1, f"file is larger than the {max_bytes}-byte limit")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _refuse(path, line, column, "is not valid UTF-8") from exc


# -- YAML ----------------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


class _StrictComposer(yaml.SafeLoader):
    """PyYAML's pure-Python loader, composing nodes only, refusing aliases, tags and deep nesting."""

    def __init__(self, text: str, max_depth: int) -> None:
        super().__init__(text)
        self._depth = 0
        self._max_depth = max_depth

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(f"aliases are not allowed (*{event.anchor})", event.start_mark)
        if event.anchor is not None:
            raise _Refused(f"anchors are not allowed (&{event.anchor})", event.start_mark)
        if event.tag is not None:
            raise _Refused(f"explicit tags are not allowed ({event.tag})", event.start_mark)
        nests = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if nests:
            self._depth += 1
            if self._depth > self._max_depth:
                raise _Refused(f"nesting is deeper than {self._max_depth} levels", event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self._depth -= 1


def _yaml_reading(value: str) -> str | None:
    """What a YAML reader might take a plain scalar for, if not a string."""
    tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    if tag != _STR_TAG:
        return str(tag).rsplit(":", 1)[-1]
    if _YAML12_NON_STRING.fullmatch(value):
        return "a number, boolean or null in YAML 1.2"
    return None


def plain_scalar_is_string(value: str) -> bool:
    """Whether ``value`` written unquoted reads back as this same string (for writers)."""
    if value in ("true", "false", "null", "~", "") or _DECIMAL_INT.fullmatch(value):
        return False
    return _ISO_DATE.fullmatch(value) is not None or _yaml_reading(value) is None


def _plain_scalar(node: Any) -> Any:
    value: str = node.value
    if node.style is not None:  # quoted or block scalar: always a string
        return value
    if value in ("true", "false"):
        return value == "true"
    if value in ("null", "~", ""):
        return None
    if _DECIMAL_INT.fullmatch(value):
        return int(value)
    if _ISO_DATE.fullmatch(value):
        return value
    reading = _yaml_reading(value)
    if reading is not None:
        raise _Refused(
            f"ambiguous plain scalar {value!r} (YAML may read it as {reading}); quote it", node.start_mark
        )
    return value


def _convert(node: Any, loc: Loc, marks: dict[Loc, tuple[int, int]]) -> Any:
    marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.ScalarNode):
        return _plain_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(child, (*loc, index), marks) for index, child in enumerate(node.value)]
    result: dict[str, Any] = {}
    first_seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused("mapping keys must be strings", key_node.start_mark)
        if key_node.value == "<<" and key_node.style is None:
            raise _Refused("merge keys (<<) are not allowed", key_node.start_mark)
        key = _plain_scalar(key_node)
        if not isinstance(key, str):
            raise _Refused(f"mapping key {key_node.value!r} must be a string", key_node.start_mark)
        if key in result:
            raise _Refused(f"duplicate key {key!r} (first at line {first_seen[key]})", key_node.start_mark)
        first_seen[key] = key_node.start_mark.line + 1
        result[key] = _convert(value_node, (*loc, key), marks)
    return result


_RESOLVER = yaml.resolver.Resolver()


def load_yaml(path: Path, *, max_bytes: int = MAX_YAML_BYTES, max_depth: int = MAX_DEPTH) -> Document:
    """Read one YAML document strictly (see the module docstring), or raise :class:`ManifestError`."""
    return parse_yaml(read_bounded(path, max_bytes), path, max_depth=max_depth)


def parse_yaml(text: str, path: Path, *, max_depth: int = MAX_DEPTH) -> Document:
    """Parse YAML text strictly; ``path`` only names the source in errors."""
    loader = _StrictComposer(text, max_depth)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _refuse(path, 1, 1, "is empty")
        marks: dict[Loc, tuple[int, int]] = {}
        data = _convert(node, (), marks)
    except _Refused as exc:
        raise _refuse(path, exc.mark.line + 1, exc.mark.column + 1, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise _refuse(path, line, column, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        position = int(getattr(exc, "position", 0) or 0)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        raise _refuse(path, line, column, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return Document(path=path, data=data, marks=marks)


# -- JSON ----------------------------------------------------------------------------------------


def _line_column(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _json_position(text: str, loc: Loc) -> tuple[int, int]:
    """Best effort: follow the keys of ``loc`` through the text in order (list indices are skipped)."""
    index = 0
    for part in loc:
        if isinstance(part, str):
            found = re.compile(re.escape(json.dumps(part)) + r"\s*:").search(text, index)
            if found is None:
                break
            index = found.start()
    return _line_column(text, index)


class _DuplicateKey(Exception):
    def __init__(self, key: str, index: int) -> None:
        super().__init__(key)
        self.key, self.index = key, index


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_object(
    state: tuple[str, int], strict: bool, scan_once: Any, *hooks_and_memo: Any
) -> tuple[dict[str, Any], int]:
    """``json.decoder.JSONObject``, refusing duplicate keys (position: the second occurrence)."""
    text, start = state
    memo = hooks_and_memo[-1] if hooks_and_memo else {}
    pairs, end = JSONObject(state, strict, scan_once, None, lambda found: found, memo)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
            hits = [match.start() for match in pattern.finditer(text, start, end)]
            raise _DuplicateKey(key, hits[1] if len(hits) > 1 else start)
        seen.add(key)
    return dict(pairs), end


class _StrictDecoder(json.JSONDecoder):
    """A decoder on the pure-Python scanner whose objects refuse duplicate keys."""

    parse_object: Any
    scan_once: Any

    def __init__(self) -> None:
        super().__init__(parse_constant=_refuse_constant)
        self.parse_object = _parse_object
        self.scan_once = py_make_scanner(self)


def load_json(path: Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH * 2) -> Document:
    """Read a JSON document refusing duplicate keys, NaN/Infinity, oversize and deep nesting."""
    text = read_bounded(path, max_bytes)
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise _refuse(
                    path, *_line_column(text, token.start()), f"nesting is deeper than {max_depth} levels"
                )
        elif char in "]}":
            depth -= 1
    try:
        data = _StrictDecoder().decode(text)
    except _DuplicateKey as exc:
        raise _refuse(path, *_line_column(text, exc.index), f"duplicate key {exc.key!r}") from None
    except json.JSONDecodeError as exc:
        raise _refuse(path, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise _refuse(path, 1, 1, f"invalid JSON: {exc}") from None
    return Document(path=path, data=data, text=text)


# -- schema --------------------------------------------------------------------------------------


def validate(document: Document, model: type[M]) -> M:
    """Validate loaded data against ``model``; errors name the file and line of each bad value."""
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc: Loc = tuple(error["loc"])
            dotted = ".".join(str(part) for part in loc) or "(document)"
            problems.append(f"{document.where(loc)}: {dotted}: {error['msg']}")
        raise ManifestError("; ".join(problems)) from None

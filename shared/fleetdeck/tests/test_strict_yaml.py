"""Strict loading: what lenient YAML/JSON loaders accept is refused with file, line and column."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from fleetdeck.errors import ManifestError
from fleetdeck.manifest.reviews import Reviews
from fleetdeck.manifest.strict_yaml import load_json, load_yaml, validate


def _write(tmp_path: Path, text: str, name: str = "reviews.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path, line: int, what: str) -> str:
    return rf"^{re.escape(str(path))}:{line}:\d+: .*{what}"


def test_a_plain_document_loads_with_the_expected_types(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'server: presto\ncount: 3\nflag: true\nnothing: null\nquoted: "NO"\n'
        "when: 2026-01-31\nitems:\n  - a\n",
    )

    data = load_yaml(path).data

    assert data == {
        "server": "presto",
        "count": 3,
        "flag": True,
        "nothing": None,
        "quoted": "NO",
        "when": "2026-01-31",
        "items": ["a"],
    }


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "server: presto\ntracks: {}\nserver: admin\n")

    with pytest.raises(ManifestError, match=_refused(path, 3, r"duplicate key 'server' \(first at line 1\)")):
        load_yaml(path)


@pytest.mark.parametrize(
    "scalar",
    ["NO", "yes", "Off", "1.10", "0o17", "0x1F", "1e3", "10:00", ".inf", "2024-01-01 10:00:00", "TRUE"],
)
def test_ambiguous_plain_scalars_are_refused(tmp_path: Path, scalar: str) -> None:
    path = _write(tmp_path, f"server: presto\nticket: {scalar}\n")

    with pytest.raises(ManifestError, match=_refused(path, 2, "ambiguous plain scalar")):
        load_yaml(path)


def test_an_alias_bomb_is_refused_at_its_first_anchor(tmp_path: Path) -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index in range(1, 9):
        previous, current = chr(ord("a") + index - 1), chr(ord("a") + index)
        levels.append(f"{current}: &{current} [{', '.join(['*' + previous] * 9)}]")
    path = _write(tmp_path, "\n".join(levels) + "\n")

    with pytest.raises(ManifestError, match=_refused(path, 1, r"anchors are not allowed \(&a\)")):
        load_yaml(path)


def test_an_alias_without_anchor_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "a: 1\nb: *a\n")

    with pytest.raises(ManifestError, match=_refused(path, 2, "")):
        load_yaml(path)


def test_a_ten_megabyte_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = _write(tmp_path, "notes: " + "x" * (10 * 1024 * 1024) + "\n")

    with pytest.raises(ManifestError, match=_refused(path, 1, "larger than the 262144-byte limit")):
        load_yaml(path)


def test_thousand_deep_flow_nesting_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "deep: " + "[" * 1000 + "]" * 1000 + "\n")

    with pytest.raises(ManifestError, match=_refused(path, 1, "nesting is deeper than 32 levels")):
        load_yaml(path)


def test_thousand_deep_block_nesting_is_refused(tmp_path: Path) -> None:
    text = "".join(f"{' ' * depth}k{depth}:\n" for depth in range(500)) + " " * 500 + "leaf\n"
    path = _write(tmp_path, text)

    with pytest.raises(ManifestError, match=_refused(path, 33, "nesting is deeper than 32 levels")):
        load_yaml(path)


@pytest.mark.parametrize("text", ["a: !!python/object:os.system x\n", "a: !!str 3\n", "a: !custom x\n"])
def test_explicit_tags_are_refused(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(ManifestError, match=_refused(path, 1, "explicit tags are not allowed")):
        load_yaml(path)


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "a:\n  <<: {b: c}\n")

    with pytest.raises(ManifestError, match=_refused(path, 2, "merge keys")):
        load_yaml(path)


def test_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "a: 1\nb: [unclosed\nc: 2\n")

    with pytest.raises(ManifestError, match=rf"^{re.escape(str(path))}:\d+:\d+: invalid YAML"):
        load_yaml(path)


def test_invalid_utf8_and_symlinks_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"a: ok\nb: \xff\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(_write(tmp_path, "a: 1\n", "target.yaml"))

    with pytest.raises(ManifestError, match=_refused(binary, 2, "not valid UTF-8")):
        load_yaml(binary)
    with pytest.raises(ManifestError, match="symbolic link"):
        load_yaml(link)


def test_schema_errors_point_at_the_offending_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "server: presto\ntracks:\n  security:\n    status: approved\n    reviewer: alice\n"
        "    ticket: 1234\n    date: 2026-01-31\n    digest: sha256:" + "a" * 64 + "\n",
    )

    with pytest.raises(
        ManifestError, match=_refused(path, 6, "tracks.security.ticket: Input should be a valid string")
    ):
        validate(load_yaml(path), Reviews)


def test_dates_are_parsed_by_the_schema_not_the_loader(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "server: presto\ntracks:\n  genai:\n    status: pending\n    reviewer: bob\n"
        "    ticket: GEN-1\n    date: 2026-01-31\n",
    )

    reviews = validate(load_yaml(path), Reviews)

    assert reviews.tracks["genai"].date == dt.date(2026, 1, 31)


# -- JSON ----------------------------------------------------------------------------------------


def test_json_duplicate_keys_are_refused_with_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '{\n  "a": {\n    "b": 1,\n    "b": 2\n  }\n}\n', "server.json")

    with pytest.raises(ManifestError, match=_refused(path, 4, "duplicate key 'b'")):
        load_json(path)


def test_json_deep_nesting_nan_and_syntax_errors_are_refused(tmp_path: Path) -> None:
    deep = _write(tmp_path, "[" * 1000 + "]" * 1000, "deep.json")
    nan = _write(tmp_path, '{"a": NaN}', "nan.json")
    broken = _write(tmp_path, '{\n  "a": 1,\n}\n', "broken.json")

    with pytest.raises(ManifestError, match=_refused(deep, 1, "nesting is deeper than 64 levels")):
        load_json(deep)
    with pytest.raises(ManifestError, match="NaN is not allowed"):
        load_json(nan)
    with pytest.raises(ManifestError, match=_refused(broken, 3, "invalid JSON")):
        load_json(broken)


def test_json_strings_with_brackets_do_not_count_as_nesting(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"a": "' + "[" * 500 + '\\"{"}', "ok.json")

    assert load_json(path).data == {"a": "[" * 500 + '"{'}

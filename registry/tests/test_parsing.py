"""The fast parsers accept exactly what the shared strict loaders accept, with the same result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from registry.tests.registry_helpers import good_folder

from fleetdeck.errors import ManifestError
from fleetdeck.manifest.model import load_manifest
from fleetdeck.manifest.reviews import load_reviews
from fleetdeck_registry.parsing import read_manifest, read_reviews

RECORD = (
    "    status: approved\n    reviewer: r@x\n    ticket: T-1\n    date: 2026-01-01\n    digest: sha256:{d}\n"
)
DIGEST = "a" * 64
YAML_CASES = [
    "server: orders\ntracks:\n  security:\n" + RECORD.format(d=DIGEST),
    "server: orders\ntracks:\n  security:\n" + RECORD.format(d=DIGEST).replace("T-1", "1.10"),
    "server: orders\ntracks:\n  security:\n" + RECORD.format(d=DIGEST).replace("T-1", "'1.10'"),
    "server: orders\ntracks:\n  security:\n" + RECORD.format(d=DIGEST).replace("approved", "yes"),
    "server: orders\ntracks:\n  security:\n" + RECORD.format(d=DIGEST).replace("T-1", "'Q&A *x* !y'"),
    "server: orders\ntracks:\n  security:\n"
    + RECORD.format(d=DIGEST).replace("2026-01-01", "2026-01-01T10:00:00"),
    "server: orders\ntracks:\n  security:\n" + RECORD.format(d=DIGEST).replace("T-1", "!!str T-1"),
    "server: orders\ntracks: {security: {status: pending, reviewer: r, ticket: T, date: 2026-01-01}}\n",
    "server: orders\nserver: orders\ntracks: {}\n",
    "server: orders\ntracks: {}\nx: &a 1\n",
    "server: ~\ntracks: {}\n",
    "server: orders\ntracks: " + "[" * 40 + "]" * 40 + "\n",
    "- just\n- a list\n",
    "",
]


def outcome(load: Callable[[Path], Any], path: Path) -> tuple[str, Any]:
    try:
        return "ok", load(path)
    except ManifestError as exc:
        return "refused", str(exc).split(": ", 1)[0]


@pytest.mark.parametrize("text", YAML_CASES)
def test_review_records_parse_like_the_strict_loader(tmp_path: Path, text: str) -> None:
    path = tmp_path / "reviews.yaml"
    path.write_text(text)
    fast, strict = outcome(read_reviews, path), outcome(load_reviews, path)
    assert fast == strict


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text,
        lambda text: text.replace('"version"', '"version": "x", "version"', 1),
        lambda text: text.replace('"1.0.0"', "Infinity", 1),
        lambda text: text.replace(
            '"input_schema": {', '"input_schema": {"x": ' + "[" * 70 + "]" * 70 + ",", 1
        ),
        lambda text: text.replace('"1.0.0"', '"1.0.0 ]]]] [[[["', 1),
        lambda text: text[:-5],
    ],
    ids=["valid", "duplicate", "infinity", "deep", "brackets-in-strings", "truncated"],
)
def test_manifests_parse_like_the_strict_loader(
    tmp_path: Path, root: Path, edit: Callable[[str], str]
) -> None:
    good_folder(tmp_path, root)
    path = root / "orders" / "server.json"
    path.write_text(edit(path.read_text()))
    assert outcome(read_manifest, path) == outcome(load_manifest, path)

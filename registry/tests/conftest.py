"""Fixtures of the registry's tests; helpers live in ``registry.tests.registry_helpers``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: registry.tests.*


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty manifest folder."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    return folder

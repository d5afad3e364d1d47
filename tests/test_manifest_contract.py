"""The contract every installed server passes: committed manifests match code and the schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from fleetdeck import plugins
from fleetdeck.manifest.builder import build_manifest
from fleetdeck.manifest.commands import manifests_app

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "registry-manifests"
SERVERS = sorted(plugins.discover())


def test_committed_manifests_match_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(manifests_app, ["check"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", SERVERS)
def test_manifest_validates_against_the_published_schema(name: str) -> None:
    schema = json.loads((MANIFESTS / "manifest.schema.json").read_text())
    document = json.loads((MANIFESTS / name / "server.json").read_text())
    jsonschema.validate(document, schema)


@pytest.mark.parametrize("name", SERVERS)
async def test_every_tool_declares_what_governance_needs(name: str) -> None:
    server = plugins.get(name).build(None)
    manifest = await build_manifest(server)
    assert manifest.tools, f"{name} publishes no tools"
    for tool in manifest.tools:
        assert tool.minutes_saved > 0, f"{name}.{tool.name} claims no time saved"
        assert tool.description.split("\n")[0].endswith("."), f"{name}.{tool.name}: first line is a sentence"
        assert tool.requires_approval == bool(tool.annotations.destructive_hint)


@pytest.mark.parametrize("name", SERVERS)
def test_building_a_server_does_no_io(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETDECK_DATA_DIR", str(tmp_path / "data"))
    plugins.get(name).build(None)
    assert not (tmp_path / "data").exists()

"""Review records: the governance state of a digest, writing approvals, and the reviews commands."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from fleetdeck import plugins
from fleetdeck.errors import InvalidInputError, ManifestError
from fleetdeck.manifest import commands
from fleetdeck.manifest.commands import manifests_app, reviews_app
from fleetdeck.manifest.reviews import (
    ReviewRecord,
    Reviews,
    approve,
    dump_reviews,
    load_reviews,
    review_state,
)
from fleetdeck.plugins import ServerPlugin
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.tool import ServerInfo
from fleetdeck_testkit.servers import OPEN_ACCESS

CURRENT = "sha256:" + "c" * 64
OLD = "sha256:" + "a" * 64
TODAY = dt.date(2026, 6, 1)


def _record(
    digest: str = CURRENT, expires: dt.date | None = dt.date(2027, 1, 1), status: str = "approved"
) -> ReviewRecord:
    return ReviewRecord.model_validate(
        {
            "status": status,
            "reviewer": "alice@example.com",
            "ticket": "SEC-1",
            "date": "2026-01-15",
            "expires": expires,
            "digest": digest,
        }
    )


def _reviews(**records: ReviewRecord) -> Reviews:
    return Reviews.model_validate(
        {"server": "presto", "tracks": {k.replace("_", "-"): v for k, v in records.items()}}
    )


def test_all_tracks_approving_the_current_digest_is_approved() -> None:
    reviews = _reviews(security=_record(), legal_privacy=_record(), genai=_record(expires=None))

    assert review_state(reviews, CURRENT, TODAY) == (True, [])


def test_an_expired_track_is_not_approved() -> None:
    reviews = _reviews(
        security=_record(), legal_privacy=_record(), genai=_record(expires=dt.date(2026, 5, 1))
    )

    assert review_state(reviews, CURRENT, TODAY) == (False, ["genai: expired on 2026-05-01"])
    assert review_state(reviews, CURRENT, dt.date(2026, 4, 30)) == (True, [])


def test_a_track_that_approved_another_digest_is_stale() -> None:
    reviews = _reviews(security=_record(digest=OLD), legal_privacy=_record(), genai=_record())

    approved, reasons = review_state(reviews, CURRENT, TODAY)

    assert not approved
    assert reasons == [
        "security: approved digest sha256:aaaaaaaaaaaa.. is not the current sha256:cccccccccccc.."
    ]


def test_missing_tracks_and_missing_files_are_not_approved() -> None:
    reviews = _reviews(security=_record(), genai=_record())

    assert review_state(reviews, CURRENT, TODAY) == (False, ["legal-privacy: missing"])
    assert review_state(None, CURRENT, TODAY) == (
        False,
        ["security: missing", "legal-privacy: missing", "genai: missing"],
    )


def test_a_track_that_is_not_approved_says_its_status() -> None:
    reviews = _reviews(security=_record(status="changes-requested"), legal_privacy=_record(), genai=_record())

    assert review_state(reviews, CURRENT, TODAY) == (
        False,
        ["security: status is changes-requested (ticket SEC-1)"],
    )


def test_an_approval_without_a_digest_is_invalid() -> None:
    with pytest.raises(ValueError, match="must name the digest"):
        ReviewRecord.model_validate(
            {"status": "approved", "reviewer": "a", "ticket": "T", "date": "2026-01-01"}
        )


def test_approve_writes_readable_deterministic_yaml_and_keeps_other_tracks(tmp_path: Path) -> None:
    path = tmp_path / "presto" / "reviews.yaml"
    approve(path, "security", "alice@example.com", "SEC-1", CURRENT, dt.date(2027, 1, 1), TODAY)
    first = approve(path, "genai", "NO", "0o17", CURRENT, None, TODAY, notes="hidden\u200bchar")
    text = path.read_text()

    assert load_reviews(path) == first
    assert set(first.tracks) == {"security", "genai"}
    assert first.tracks["genai"].reviewer == "NO"
    assert 'reviewer: "NO"' in text
    assert 'ticket: "0o17"' in text
    assert "\\u200b" in text
    assert "    reviewer: alice@example.com\n" in text
    assert f"    digest: {CURRENT}\n" in text
    assert text.index("  security:") < text.index("  genai:")
    assert dump_reviews(load_reviews(path)) == text


def test_approve_refuses_a_past_expiry_and_empty_reviewer(tmp_path: Path) -> None:
    path = tmp_path / "presto" / "reviews.yaml"

    with pytest.raises(InvalidInputError, match="must be after today"):
        approve(path, "security", "alice", "SEC-1", CURRENT, TODAY, TODAY)
    with pytest.raises(InvalidInputError, match="must not be empty"):
        approve(path, "security", " ", "SEC-1", CURRENT, None, TODAY)
    assert not path.exists()


def test_approve_refuses_a_broken_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "presto" / "reviews.yaml"
    path.parent.mkdir()
    path.write_text("server: presto\nserver: presto\n")

    with pytest.raises(ManifestError, match=r"reviews.yaml:2:1: duplicate key"):
        approve(path, "security", "alice", "SEC-1", CURRENT, None, TODAY)


# -- the commands --------------------------------------------------------------------------------

runner = CliRunner()

INFO = ServerInfo(
    name="demo",
    registry_name="io.fleetdeck/demo",
    title="Demo",
    description="A demonstration server for review tests.",
    version="0.1.0",
    owner_team="data-platform",
    support_channel="#data-platform",
    docs_url="https://docs.example.com/demo",
    data_classification="internal",
)


class Count(BaseModel):
    count: int


def _server(docstring: str) -> FleetServer:
    server = FleetServer(INFO, FleetdeckSettings.load(), access=OPEN_ACCESS)

    async def count_rows(table: str) -> Count:
        return Count(count=len(table))

    count_rows.__doc__ = docstring
    count_rows.__annotations__ = {"table": Annotated[str, Field(max_length=64)], "return": Count}
    server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)(count_rows)
    return server


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """One installed server called demo whose docstring the test can change; manifests in tmp_path."""
    monkeypatch.setenv("FLEETDECK_MANIFESTS_DIR", str(tmp_path))
    monkeypatch.delenv("FLEETDECK_CONFIG", raising=False)
    monkeypatch.setattr(commands, "_today", lambda: TODAY)
    state = {"doc": "Count the rows of a table."}

    async def available(config: Path | None) -> str | None:
        return None

    plugin = ServerPlugin(
        name="demo",
        build=lambda config=None, *, settings=None: _server(state["doc"]),
        available=available,
        default_port=8000,
    )
    monkeypatch.setattr(plugins, "discover", lambda: {"demo": plugin})
    return state


def test_reviews_approve_records_the_committed_digest(fleet: dict[str, str], tmp_path: Path) -> None:
    assert runner.invoke(manifests_app, ["build"]).exit_code == 0
    digest = json.loads((tmp_path / "demo" / "server.json").read_text())["_meta"]["io.fleetdeck/governance"][
        "tool_surface_digest"
    ]

    expiry = ["--expires", "2027-01-01"]
    results = [
        runner.invoke(
            reviews_app,
            [
                "approve",
                "demo",
                "--track",
                track,
                "--reviewer",
                "alice@example.com",
                "--ticket",
                f"T-{n}",
                *expiry,
            ],
        )
        for n, track in enumerate(["security", "legal-privacy", "genai"])
    ]
    status = runner.invoke(reviews_app, ["status"])

    assert [result.exit_code for result in results] == [0, 0, 0], [r.output for r in results]
    assert "all tracks approve the current digest" in results[-1].output
    reviews = load_reviews(tmp_path / "demo" / "reviews.yaml")
    assert {record.digest for record in reviews.tracks.values()} == {digest}
    assert reviews.tracks["legal-privacy"].ticket == "T-1"
    assert reviews.tracks["security"].date == TODAY
    assert status.exit_code == 0, status.output
    assert "demo: in the catalog" in status.output


def test_reviews_approve_refuses_a_stale_manifest(fleet: dict[str, str], tmp_path: Path) -> None:
    assert runner.invoke(manifests_app, ["build"]).exit_code == 0
    fleet["doc"] = "Count the rows of a table, then email them to someone."

    result = runner.invoke(
        reviews_app, ["approve", "demo", "--track", "security", "--reviewer", "alice", "--ticket", "T-1"]
    )

    assert result.exit_code == 1
    assert "does not match the code" in result.output
    assert "description changed" in result.output
    assert not (tmp_path / "demo" / "reviews.yaml").exists()


def test_reviews_approve_refuses_a_missing_manifest(fleet: dict[str, str], tmp_path: Path) -> None:
    result = runner.invoke(
        reviews_app, ["approve", "demo", "--track", "genai", "--reviewer", "alice", "--ticket", "T-1"]
    )

    assert result.exit_code == 1
    assert "server.json is missing" in result.output


@pytest.mark.parametrize(
    "extra",
    [["--expires", "2027-13-01"], ["--expires", "tomorrow"], ["--track", "finance"]],
)
def test_reviews_approve_rejects_bad_arguments(fleet: dict[str, str], extra: list[str]) -> None:
    assert runner.invoke(manifests_app, ["build"]).exit_code == 0
    args = ["approve", "demo", "--track", "security", "--reviewer", "alice", "--ticket", "T-1", *extra]

    result = runner.invoke(reviews_app, args)

    assert result.exit_code == 2


def test_reviews_approve_refuses_an_expiry_in_the_past(fleet: dict[str, str]) -> None:
    assert runner.invoke(manifests_app, ["build"]).exit_code == 0

    result = runner.invoke(
        reviews_app,
        [
            "approve",
            "demo",
            "--track",
            "security",
            "--reviewer",
            "a",
            "--ticket",
            "T",
            "--expires",
            "2026-01-01",
        ],
    )

    assert result.exit_code == 2
    assert "must be after today" in result.output


def test_reviews_status_lists_missing_tracks(fleet: dict[str, str]) -> None:
    assert runner.invoke(manifests_app, ["build"]).exit_code == 0

    result = runner.invoke(reviews_app, ["status", "demo"])

    assert result.exit_code == 0, result.output
    assert "demo: not in the catalog" in result.output
    assert "security: missing" in result.output

"""The loader and governance gate over every family of bad manifest folders."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import anyio
import pytest
from registry.tests.registry_helpers import good_folder, http_client, make_registry, make_server, publish

from fleetdeck_registry.state import RegistryState

NOW = dt.datetime.now(dt.UTC)


def load(root: Path, at: dt.datetime = NOW) -> RegistryState:
    state = RegistryState(root, clock=lambda: at)
    state.reload()
    return state


def manifest_data(root: Path, key: str = "orders") -> dict[str, object]:
    data: dict[str, object] = json.loads((root / key / "server.json").read_text())
    return data


def write(root: Path, data: object, key: str = "orders") -> None:
    (root / key / "server.json").write_text(json.dumps(data, indent=2))


def single_problem(state: RegistryState) -> str:
    assert state.degraded, "the load should have failed"
    assert state.problems, "the load should have failed"
    return state.problems[0]


def test_an_approved_server_enters_the_agent_catalog(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    state = load(root)
    entry = state.current.catalog.by_key["orders"]
    assert not state.degraded
    assert entry.approved
    assert state.in_agent_catalog(entry)
    assert [tool.name for tool in entry.tools] == [
        "cancel_order",
        "export_orders",
        "get_order",
        "list_orders",
    ]


def test_a_server_without_reviews_waits_in_the_queue_with_the_reason(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root, approved=False)
    entry = load(root).current.catalog.by_key["orders"]
    assert not entry.approved
    assert "reviews are missing" in entry.reasons[0]


def test_expired_and_mismatched_reviews_keep_a_server_out(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    later = NOW + dt.timedelta(days=400)
    entry = load(root, later).current.catalog.by_key["orders"]
    assert not entry.approved
    assert any("expired on" in reason for reason in entry.reasons)

    reviews = root / "orders" / "reviews.yaml"
    text = reviews.read_text()
    digest = text.split("digest: ")[1].split()[0]
    reviews.write_text(text.replace(digest, "sha256:" + "0" * 64, 1))
    entry = load(root).current.catalog.by_key["orders"]
    assert any("is not the current" in reason for reason in entry.reasons)


def test_a_rejected_track_is_the_reason(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    reviews = root / "orders" / "reviews.yaml"
    reviews.write_text(reviews.read_text().replace("status: approved", "status: rejected", 1))
    entry = load(root).current.catalog.by_key["orders"]
    assert entry.reasons == ("security: status is rejected (ticket T-security)",)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda text: text[:-20], "invalid JSON"),
        (lambda text: text.replace('"version"', '"version": "2", "version"', 1), "duplicate key 'version'"),
        (lambda text: text.replace('"1.0.0"', "NaN", 1), "NaN is not allowed"),
        (lambda text: "[" * 200 + "]" * 200, "nesting is deeper"),
        (
            lambda text: text.replace('"data_classification": "internal"', '"data_classification": "secret"'),
            "data_classification",
        ),
        (
            lambda text: text.replace(
                '"owner_team": "orders-team",', '"owner_team": "orders-team", "extra": 1,'
            ),
            "Extra inputs are not permitted",
        ),
        (
            lambda text: text.replace("Get one order by id.", "Get one order by ID."),
            "does not match the tools",
        ),
    ],
    ids=["truncated", "duplicate-key", "nan", "deep", "schema-enum", "unknown-field", "digest"],
)
def test_a_broken_manifest_is_reported_with_path_and_line(
    root: Path, tmp_path: Path, breakage: object, expected: str
) -> None:
    good_folder(tmp_path, root)
    path = root / "orders" / "server.json"
    path.write_text(breakage(path.read_text()))  # type: ignore[operator]
    problem = single_problem(load(root))
    assert problem.startswith(f"{path}:")
    assert problem.split(":")[1].isdigit()
    assert expected in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server: orders\ntracks: [\n", "invalid YAML"),
        ("server: orders\nserver: other\ntracks: {}\n", "duplicate key 'server'"),
        ("a: &x [1]\nb: *x\n", "anchors are not allowed"),
        ("server: orders\ntracks:\n  security:\n    status: yes\n", "ambiguous plain scalar"),
        ("server: orders\ntracks:\n  security:\n    status: approved\n", "Field required"),
        ("server: billing\ntracks: {}\n", "records are for 'billing'"),
    ],
    ids=["malformed", "duplicate", "alias", "norway", "schema", "wrong-server"],
)
def test_a_broken_review_file_is_reported(root: Path, tmp_path: Path, text: str, expected: str) -> None:
    good_folder(tmp_path, root)
    (root / "orders" / "reviews.yaml").write_text(text)
    problem = single_problem(load(root))
    assert str(root / "orders" / "reviews.yaml") in problem
    assert expected in problem


def test_huge_files_are_refused_unread(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    (root / "orders" / "reviews.yaml").write_text("# " + "x" * 300_000 + "\nserver: orders\n")
    assert "larger than the" in single_problem(load(root))
    (root / "orders" / "reviews.yaml").unlink()
    path = root / "orders" / "server.json"
    path.write_text(path.read_text() + " " * (5 * 1024 * 1024))
    assert "larger than the" in single_problem(load(root))


def test_symbolic_links_and_paths_outside_are_refused(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "server.json").write_text((root / "orders" / "server.json").read_text())
    (root / "sneaky").symlink_to(outside, target_is_directory=True)
    assert "is a symbolic link" in single_problem(load(root))
    (root / "sneaky").unlink()

    (root / "orders" / "reviews.yaml").unlink()
    (root / "orders" / "reviews.yaml").symlink_to(outside / "server.json")
    assert "symbolic link" in single_problem(load(root))
    (root / "orders" / "reviews.yaml").unlink()

    (root / "orders" / "reviews.yaml").symlink_to(root / "orders" / "server.json")
    assert "symbolic link" in single_problem(load(root))


def test_odd_folder_names_and_empty_folders_are_refused(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    (root / "Bad_Name").mkdir()
    assert "folder name must match" in single_problem(load(root))
    (root / "Bad_Name").rmdir()
    (root / "empty").mkdir()
    assert "without a server.json" in single_problem(load(root))


def test_duplicate_server_names_by_case_are_refused(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    data = manifest_data(root)
    (root / "orders-copy").mkdir()
    data["name"] = "io.fleetdeck/Orders"
    write(root, data, "orders-copy")
    assert "duplicate server name: 'io.fleetdeck/Orders' looks like 'io.fleetdeck/orders'" in single_problem(
        load(root)
    )


def test_unicode_look_alike_names_are_refused(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    data = manifest_data(root)
    data["name"] = "io.fleetdeck/\u043erders"  # Cyrillic small o: the schema refuses it outright
    (root / "orders-two").mkdir()
    write(root, data, "orders-two")
    assert "name" in single_problem(load(root))


def test_look_alike_tool_names_in_one_server_are_refused(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    data = manifest_data(root)
    governance = data["_meta"]["io.fleetdeck/governance"]  # type: ignore[index]
    twin = dict(governance["tools"][2])
    twin["name"] = "get_0rder"
    from fleetdeck.manifest.digest import surface_digest

    governance["tools"] = sorted([*governance["tools"], twin], key=lambda tool: tool["name"])
    governance["tool_surface_digest"] = surface_digest(governance["tools"])
    write(root, data)
    assert "duplicate tool name: 'get_order' looks like 'get_0rder'" in single_problem(load(root))


def test_a_failed_reload_keeps_the_last_good_catalog(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    state = load(root)
    good = state.current
    (root / "orders" / "server.json").write_text("{ not json")
    assert state.reload() is False
    assert state.current is good
    assert state.degraded
    assert state.health()["status"] == "degraded"
    assert f"{root / 'orders' / 'server.json'}:1:" in str(state.health()["problems"])


def test_a_change_on_disk_is_noticed_and_reloaded(root: Path, tmp_path: Path) -> None:
    good_folder(tmp_path, root)
    state = load(root)
    assert not state.needs_reload()
    reviews = root / "orders" / "reviews.yaml"
    reviews.write_text(reviews.read_text().replace("status: approved", "status: pending", 1))
    os.utime(reviews, ns=(1, 1))
    assert state.needs_reload()
    assert state.reload()
    assert not state.current.catalog.by_key["orders"].approved


async def test_reloads_never_drop_requests(root: Path, tmp_path: Path) -> None:
    await publish(root, make_server(tmp_path))
    registry = make_registry(tmp_path, root)
    reviews = root / "orders" / "reviews.yaml"
    text = reviews.read_text()
    async with http_client(registry) as client:
        statuses: list[int] = []

        async def hammer() -> None:
            for _ in range(40):
                statuses.append((await client.get("/v0.1/servers")).status_code)

        async with anyio.create_task_group() as group:
            group.start_soon(hammer)
            for round_ in range(10):
                reviews.write_text(text if round_ % 2 else text.replace("approved", "pending", 1))
                await registry.reload()
        assert statuses == [200] * 40
        assert registry.state.current.catalog.generation >= 5


async def test_the_running_registry_notices_a_change_by_polling(tmp_path: Path, root: Path) -> None:
    await publish(root, make_server(tmp_path))
    registry = make_registry(tmp_path, root)  # polls every 0.05 s
    reviews = root / "orders" / "reviews.yaml"
    async with http_client(registry) as client:
        assert len((await client.get("/v0.1/servers")).json()["servers"]) == 1
        reviews.write_text(reviews.read_text().replace("status: approved", "status: rejected", 1))
        with anyio.fail_after(10):
            while registry.state.current.catalog.by_key["orders"].approved:
                await anyio.sleep(0.05)
        assert (await client.get("/v0.1/servers")).json()["servers"] == []
        queue = (await client.get("/reviews")).text
    assert "security: status is rejected (ticket T-security)" in queue

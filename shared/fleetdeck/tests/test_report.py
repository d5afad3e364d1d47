"""The ROI report: its numbers against an independent computation, its filters, and its four formats."""

from __future__ import annotations

import csv
import io
import json
import struct
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fleetdeck.errors import InvalidInputError, Outcome
from fleetdeck.report import CSV_COLUMNS, JSON_SCHEMA, render_csv, render_json, render_png, report_command
from fleetdeck.telemetry.events import InvocationEvent
from fleetdeck.telemetry.roi import RoiFigures, RoiReport, build_report
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.events import bulk_load, generate_events, month_sequence

MONTHS = month_sequence(3, start="2025-02")


@dataclass
class Tally:
    """Expected figures for one report row, computed straight from the events."""

    invocations: int = 0
    successful: int = 0
    minutes: float = 0.0
    users: set[str] = field(default_factory=set)

    def add(self, event: InvocationEvent) -> None:
        self.invocations += 1
        if event.outcome is Outcome.OK:
            self.successful += 1
            self.minutes += event.minutes_saved
        if event.user_hash is not None:
            self.users.add(event.user_hash)

    def figures(self) -> RoiFigures:
        return RoiFigures(self.invocations, self.successful, len(self.users), self.minutes)


@dataclass
class Expected:
    totals: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    servers: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    tools: dict[tuple[str, str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    teams: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))


def expected_of(events: Sequence[InvocationEvent]) -> Expected:
    expected = Expected()
    for event in events:
        month = event.to_row()["month"]
        expected.totals[month].add(event)
        expected.servers[month, event.server].add(event)
        expected.tools[month, event.server, event.tool].add(event)
        expected.teams[month, event.team].add(event)
    return expected


@pytest.fixture(scope="module")
def events() -> list[InvocationEvent]:
    return generate_events(6_000, months=MONTHS, users=120, seed=7)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, events: list[InvocationEvent]) -> Iterator[EventStore]:
    store = EventStore(f"sqlite:///{tmp_path_factory.mktemp('store') / 'telemetry.db'}")
    store.insert(events)
    yield store
    store.dispose()


def event(
    tool: str, user: str | None, outcome: Outcome, minutes: float, ts: float, team: str = "t1"
) -> InvocationEvent:
    return InvocationEvent(
        server=tool.split(".")[0],
        tool=tool.split(".")[1],
        team=team,
        outcome=outcome,
        duration_ms=1.0,
        minutes_saved=minutes,
        user_hash=user,
        ts=ts,
    )


MARCH = 1_740_787_200.0  # 2025-03-01T00:00:00Z
APRIL = 1_743_465_600.0  # 2025-04-01T00:00:00Z


def assert_matches(report: RoiReport, expected: Expected, months: Sequence[str]) -> None:
    assert [entry.month for entry in report.months] == sorted(months, reverse=True)
    for entry in report.months:
        m = entry.month
        assert entry.totals == expected.totals[m].figures()
        assert {r.server: r.figures for r in entry.by_server} == {
            s: t.figures() for (mm, s), t in expected.servers.items() if mm == m
        }
        assert {(r.server, r.tool): r.figures for r in entry.by_tool} == {
            (s, tl): t.figures() for (mm, s, tl), t in expected.tools.items() if mm == m
        }
        assert {r.team: r.figures for r in entry.by_team} == {
            tm: t.figures() for (mm, tm), t in expected.teams.items() if mm == m
        }


def test_report_numbers_match_an_independent_count(store: EventStore, events: list[InvocationEvent]) -> None:
    report = build_report(store)

    assert_matches(report, expected_of(events), MONTHS)
    assert sum(entry.totals.invocations for entry in report.months) == len(events)
    assert report.servers == ("airflow", "presto", "spark")


def test_breakdowns_are_sorted_by_hours_saved(store: EventStore) -> None:
    entry = build_report(store).months[0]

    for rows in (entry.by_server, entry.by_tool, entry.by_team):
        hours = [row.figures.hours_saved for row in rows]
        assert hours == sorted(hours, reverse=True)


def test_failed_invocations_add_no_hours(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 't.db'}")
    store.insert(
        [
            event("s.a", "u1", Outcome.OK, 30.0, MARCH + 10),
            event("s.a", "u1", Outcome.BACKEND_ERROR, 30.0, MARCH + 20),
            event("s.a", "u2", Outcome.DENIED, 30.0, MARCH + 30),
            event("s.a", "u2", Outcome.TIMEOUT, 30.0, MARCH + 40),
        ]
    )

    totals = build_report(store).months[0].totals

    assert totals == RoiFigures(invocations=4, successful=1, monthly_active_users=2, minutes_saved=30.0)
    assert totals.hours_saved == 0.5
    assert totals.failed == 3


def test_a_user_of_several_tools_counts_once_per_month(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 't.db'}")
    store.insert(
        [
            event("s.a", "u1", Outcome.OK, 1.0, MARCH + 1),
            event("s.b", "u1", Outcome.OK, 1.0, MARCH + 2),
            event("r.c", "u1", Outcome.OK, 1.0, MARCH + 3, team="t2"),
            event("s.a", "u2", Outcome.OK, 1.0, MARCH + 4),
            event("s.a", None, Outcome.OK, 1.0, MARCH + 5),
            event("s.a", "u1", Outcome.OK, 1.0, APRIL + 1),
        ]
    )

    april, march = build_report(store).months

    assert (march.month, april.month) == ("2025-03", "2025-04")
    assert march.totals.monthly_active_users == 2
    assert {r.server: r.figures.monthly_active_users for r in march.by_server} == {"s": 2, "r": 1}
    assert {r.team: r.figures.monthly_active_users for r in march.by_team} == {"t1": 2, "t2": 1}
    assert {r.tool: r.figures.monthly_active_users for r in march.by_tool} == {"a": 2, "b": 1, "c": 1}
    assert april.totals.monthly_active_users == 1


def test_month_filter_reports_only_that_month(store: EventStore, events: list[InvocationEvent]) -> None:
    calls: list[tuple[str, int, int]] = []

    report = build_report(store, MONTHS[1], lambda *args: calls.append(args))

    assert report.requested_month == MONTHS[1]
    assert_matches(report, expected_of(events), [MONTHS[1]])
    assert calls == [(MONTHS[1], 0, 1)]


def test_progress_is_reported_per_month_newest_first(store: EventStore) -> None:
    calls: list[tuple[str, int, int]] = []

    build_report(store, progress=lambda *args: calls.append(args))

    assert calls == [(MONTHS[2], 0, 3), (MONTHS[1], 1, 3), (MONTHS[0], 2, 3)]


def test_a_month_without_events_is_an_empty_report(store: EventStore) -> None:
    assert build_report(store, "2019-01").is_empty


def test_a_store_without_the_table_is_an_empty_report(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'fresh.db'}")

    assert build_report(store).is_empty
    assert build_report(store.engine, "2025-01").months == ()


@pytest.mark.parametrize(
    "month", ["2025-13", "2025-00", "2025-3", "25-03", "2025/03", "March", "", "1969-12"]
)
def test_a_malformed_month_is_rejected(store: EventStore, month: str) -> None:
    with pytest.raises(InvalidInputError, match="YYYY-MM"):
        build_report(store, month)


def test_csv_parses_back_to_the_same_numbers(store: EventStore, events: list[InvocationEvent]) -> None:
    expected = expected_of(events)

    rows = list(csv.DictReader(io.StringIO(render_csv(build_report(store)))))

    assert tuple(rows[0]) == CSV_COLUMNS
    assert {row["level"] for row in rows} == {"total", "server", "tool", "team"}
    for row in rows:
        key, level = row["month"], row["level"]
        if level == "total":
            tally = expected.totals[key]
        elif level == "server":
            tally = expected.servers[key, row["server"]]
        elif level == "tool":
            tally = expected.tools[key, row["server"], row["tool"]]
        else:
            tally = expected.teams[key, row["team"]]
        assert int(row["invocations"]) == tally.invocations
        assert int(row["successful"]) == tally.successful
        assert int(row["failed"]) == tally.invocations - tally.successful
        assert int(row["monthly_active_users"]) == len(tally.users)
        assert float(row["minutes_saved"]) == tally.minutes
        assert float(row["hours_saved"]) == pytest.approx(tally.minutes / 60, abs=1e-4)


def test_json_parses_back_to_the_same_numbers(store: EventStore, events: list[InvocationEvent]) -> None:
    expected = expected_of(events)

    document = json.loads(render_json(build_report(store)))

    assert document["schema"] == JSON_SCHEMA
    assert document["month"] is None
    assert [m["month"] for m in document["months"]] == sorted(MONTHS, reverse=True)
    for entry in document["months"]:
        key = entry["month"]
        total = expected.totals[key]
        assert entry["totals"]["invocations"] == total.invocations
        assert entry["totals"]["monthly_active_users"] == len(total.users)
        assert entry["totals"]["minutes_saved"] == total.minutes
        assert entry["totals"]["hours_saved"] == total.minutes / 60
        for row in entry["by_server"]:
            tally = expected.servers[key, row["server"]]
            assert (
                row["invocations"],
                row["successful"],
                row["monthly_active_users"],
                row["minutes_saved"],
            ) == (
                tally.invocations,
                tally.successful,
                len(tally.users),
                tally.minutes,
            )
        for row in entry["by_tool"]:
            assert row["monthly_active_users"] == len(expected.tools[key, row["server"], row["tool"]].users)
        for row in entry["by_team"]:
            assert row["hours_saved"] == expected.teams[key, row["team"]].minutes / 60


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_is_a_slide_sized_chart(store: EventStore, tmp_path: Path) -> None:
    path = render_png(build_report(store), tmp_path / "out" / "roi.png")

    assert png_size(path) == (2000, 1125)
    assert 20_000 < path.stat().st_size < 2_000_000


def test_png_of_one_month(store: EventStore, tmp_path: Path) -> None:
    path = render_png(build_report(store, MONTHS[0]), tmp_path / "one.png")

    assert png_size(path) == (2000, 1125)


# The command, through typer's runner, against a real SQLite file.


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("report")(report_command)
    return app


def config_for(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "fleetdeck.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[telemetry]\nurl = "{url}"\n', encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, store: EventStore) -> Path:
    return config_for(tmp_path, store.url)


def test_command_prints_json(config: Path, events: list[InvocationEvent]) -> None:
    result = CliRunner().invoke(cli(), ["--format", "json", "--config", str(config)])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert sum(m["totals"]["invocations"] for m in document["months"]) == len(events)


def test_command_prints_a_table_for_one_month(config: Path, events: list[InvocationEvent]) -> None:
    result = CliRunner().invoke(cli(), ["--month", MONTHS[0], "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert MONTHS[0] in result.stdout
    assert MONTHS[1] not in result.stdout
    assert "By server" in result.stdout
    assert f"{expected_of(events).totals[MONTHS[0]].invocations:,}" in result.stdout


def test_command_writes_csv_to_a_file(config: Path, tmp_path: Path) -> None:
    target = tmp_path / "roi.csv"

    result = CliRunner().invoke(cli(), ["--format", "csv", "--output", str(target), "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert target.read_text().startswith(",".join(CSV_COLUMNS))


def test_command_writes_the_png_to_its_default_name(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(cli(), ["--format", "png", "--month", MONTHS[2], "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / f"fleetdeck-report-{MONTHS[2]}.png") == (2000, 1125)


def test_command_rejects_a_bad_month(config: Path) -> None:
    result = CliRunner().invoke(cli(), ["--month", "2025-13", "--config", str(config)])

    assert result.exit_code == 2
    assert "YYYY-MM" in result.output


@pytest.mark.parametrize("create", [False, True])
def test_command_on_an_empty_store_says_so(tmp_path: Path, create: bool) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    if create:
        EventStore(url).create()

    result = CliRunner().invoke(cli(), ["--format", "png", "--config", str(config_for(tmp_path, url))])

    assert result.exit_code == 0, result.output
    assert "no invocations recorded" in result.stdout
    assert not list(tmp_path.glob("*.png"))
    assert (tmp_path / "empty.db").exists() is create


def test_bulk_load_writes_the_same_rows_as_the_generator(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'bulk.db'}")

    written = bulk_load(store, 3_000, months=MONTHS, users=50, seed=3)

    assert written == store.count() == 3_000
    assert_matches(
        build_report(store), expected_of(generate_events(3_000, months=MONTHS, users=50, seed=3)), MONTHS
    )


@pytest.mark.postgres
def test_report_on_postgresql_matches_an_independent_count(
    postgres_database: str, events: list[InvocationEvent]
) -> None:
    store = EventStore(postgres_database)
    try:
        store.insert(events)

        assert_matches(build_report(store), expected_of(events), MONTHS)
        assert_matches(build_report(store, MONTHS[0]), expected_of(events), [MONTHS[0]])
    finally:
        store.dispose()

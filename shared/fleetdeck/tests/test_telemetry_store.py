"""The event store: idempotent inserts, the report rollup kept exact, old databases migrated."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleetdeck.errors import Outcome
from fleetdeck.telemetry import events as events_module
from fleetdeck.telemetry.events import InvocationEvent, month_of, new_event_id
from fleetdeck.telemetry.roi import build_report
from fleetdeck.telemetry.store import (
    FORMER_REPORT_INDEX,
    EventStore,
    invocation_rollup,
    invocations,
    make_engine,
)
from fleetdeck_testkit.events import generate_events, month_sequence

MONTHS = month_sequence(3, start="2025-05")
RollupRow = tuple[str, str, str, str, str, int, int, float]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'telemetry.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def store(url: str) -> Iterator[EventStore]:
    store = EventStore(url)
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def events() -> list[InvocationEvent]:
    """Realistic events plus anonymous calls and a tool that saves a non-dyadic 0.1 minute."""
    generated = generate_events(1_500, months=MONTHS, users=40, seed=11)
    odd = [replace(e, event_id=f"odd{i:029d}", minutes_saved=0.1) for i, e in enumerate(generated[:40])]
    return generated + odd


def rollup_rows(store: EventStore) -> list[RollupRow]:
    c = invocation_rollup.c
    query = sa.select(
        c.month, c.server, c.tool, c.team, c.user_key, c.invocations, c.successes, c.minutes_saved
    ).order_by(c.month, c.server, c.tool, c.team, c.user_key)
    with store.engine.connect() as conn:
        return [_normalised(row) for row in conn.execute(query)]


def grouped_in_sql(store: EventStore) -> list[RollupRow]:
    """The rollup as a GROUP BY over ``invocations`` computes it, written independently of the store."""
    c = invocations.c
    ok = c.outcome == Outcome.OK.value
    user_key = sa.func.coalesce(c.user_hash, "")
    key = (c.month, c.server, c.tool, c.team, user_key)
    query = (
        sa.select(
            *key,
            sa.func.count(),
            sa.func.sum(sa.case((ok, 1), else_=0)),
            sa.func.sum(sa.case((ok, c.minutes_saved), else_=0.0)),
        )
        .group_by(*key)
        .order_by(*key)
    )
    with store.engine.connect() as conn:
        return [_normalised(row) for row in conn.execute(query)]


def grouped_in_python(events: list[InvocationEvent]) -> list[RollupRow]:
    """The rollup of a set of distinct events, computed in Python."""
    counts: Counter[tuple[str, ...]] = Counter()
    successes: Counter[tuple[str, ...]] = Counter()
    minutes: dict[tuple[str, ...], float] = {}
    for event in {e.event_id: e for e in events}.values():
        key = (event.to_row()["month"], event.server, event.tool, event.team, event.user_hash or "")
        counts[key] += 1
        minutes.setdefault(key, 0.0)
        if event.outcome is Outcome.OK:
            successes[key] += 1
            minutes[key] += event.minutes_saved
    return [_normalised((*key, counts[key], successes[key], minutes[key])) for key in sorted(counts)]


def _normalised(row: sa.Row[tuple[object, ...]] | tuple[object, ...]) -> RollupRow:
    month, server, tool, team, user_key, count, successes, minutes = tuple(row)
    return (
        str(month),
        str(server),
        str(tool),
        str(team),
        str(user_key),
        int(count),  # type: ignore[call-overload]
        int(successes),  # type: ignore[call-overload]
        round(float(minutes), 9),  # type: ignore[arg-type]
    )


def test_rollup_equals_a_group_by_after_random_batches_with_replays(
    store: EventStore, events: list[InvocationEvent]
) -> None:
    rng = random.Random(5)
    order = events[:]
    rng.shuffle(order)
    sent: list[InvocationEvent] = []
    position = 0
    while position < len(order):
        size = rng.randint(1, 200)
        fresh = order[position : position + size]
        position += size
        replayed = rng.sample(sent, min(len(sent), rng.randint(0, 60)))
        batch = fresh + replayed + fresh[: rng.randint(0, len(fresh))]  # duplicates inside the batch too
        rng.shuffle(batch)
        store.insert(batch)
        sent += fresh

    assert store.count() == len(events)
    rollup = rollup_rows(store)
    assert rollup == grouped_in_sql(store) == grouped_in_python(events)
    assert any(row[4] == "" for row in rollup)  # anonymous calls are rolled up under ''
    assert sum(row[5] for row in rollup) == len(events)


def test_a_replayed_batch_adds_nothing(store: EventStore, events: list[InvocationEvent]) -> None:
    store.insert(events[:500])
    before = rollup_rows(store)

    store.insert(events[:500])
    store.insert(events[100:300])

    assert rollup_rows(store) == before == grouped_in_python(events[:500])
    assert store.count() == 500


def test_a_partly_written_batch_adds_only_its_new_events(
    store: EventStore, events: list[InvocationEvent]
) -> None:
    store.insert(events[:300])

    store.insert(events[200:700])

    assert store.count() == 700
    assert rollup_rows(store) == grouped_in_python(events[:700])


def old_database(url: str, events: list[InvocationEvent]) -> None:
    """A store as the version before the rollup wrote it: ``invocations`` and its report index only."""
    old = sa.MetaData()
    table = invocations.to_metadata(old)
    sa.Index(
        FORMER_REPORT_INDEX,
        table.c.month,
        table.c.server,
        table.c.tool,
        table.c.team,
        table.c.user_hash,
        table.c.outcome,
        table.c.minutes_saved,
    )
    engine = make_engine(url)
    try:
        old.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [event.to_row() for event in events])
    finally:
        engine.dispose()


def index_names(store: EventStore) -> set[str | None]:
    with store.engine.connect() as conn:
        return {index["name"] for index in sa.inspect(conn).get_indexes(invocations.name)}


def test_create_backfills_the_rollup_of_an_old_database_once(
    url: str, store: EventStore, events: list[InvocationEvent]
) -> None:
    old_database(url, events[:1_000])
    assert FORMER_REPORT_INDEX in index_names(store)

    store.create()
    store.create()  # idempotent: the rollup is not empty any more

    assert rollup_rows(store) == grouped_in_python(events[:1_000])
    assert FORMER_REPORT_INDEX not in index_names(store)

    store.insert(events[500:])  # half replayed, half new

    assert rollup_rows(store) == grouped_in_sql(store) == grouped_in_python(events)


def test_the_report_migrates_an_old_database(url: str, events: list[InvocationEvent]) -> None:
    old_database(url, events)
    store = EventStore(url)
    try:
        report = build_report(store)

        assert [entry.month for entry in report.months] == sorted(MONTHS, reverse=True)
        assert sum(entry.totals.invocations for entry in report.months) == len(events)
        assert rollup_rows(store) == grouped_in_python(events)
    finally:
        store.dispose()


def test_a_fresh_store_has_an_empty_rollup_and_no_report_index(store: EventStore) -> None:
    store.create()

    assert rollup_rows(store) == []
    assert FORMER_REPORT_INDEX not in index_names(store)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_postgresql_url_uses_psycopg_3(scheme: str) -> None:
    engine = make_engine(f"{scheme}://fleetdeck:secret@db.example:5432/telemetry")
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
        assert engine.url.database == "telemetry"
    finally:
        engine.dispose()


def test_event_ids_are_unique_32_hex_and_increase_across_calls_and_threads() -> None:
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_event_id() for _ in range(20_000))

    threads = [threading.Thread(target=make, args=(ids,)) for ids in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [event_id for ids in per_thread for event_id in ids]
    sequential = [InvocationEvent(server="s", tool="t", outcome=Outcome.OK, duration_ms=1.0).event_id]
    sequential += [new_event_id() for _ in range(5)]

    assert len(set(ids + sequential)) == len(ids) + len(sequential)
    assert all(re.fullmatch(r"[0-9a-f]{32}", event_id) for event_id in ids + sequential)
    assert all(thread_ids == sorted(thread_ids) for thread_ids in per_thread)
    assert sequential == sorted(sequential)
    assert min(sequential) > max(ids)  # later calls sort later
    assert abs(int(sequential[-1][:12], 16) / 1000 - time.time()) < 60  # 48-bit ms timestamp first


def test_a_forked_child_does_not_continue_the_parents_ids() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    parent = new_event_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its random start and next id, and leave at once
        os.write(write, f"{events_module._base} {new_event_id()}".encode())
        os._exit(0)
    os.close(write)
    base, child = os.read(read, 128).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    after = new_event_id()

    assert int(base) != events_module._base  # the child draws its own random start at fork
    assert len({parent, child, after}) == 3


def test_month_of_is_the_utc_month_on_either_side_of_a_boundary() -> None:
    new_year = datetime(2025, 1, 1, tzinfo=UTC).timestamp()

    assert month_of(new_year - 0.001) == "2024-12"
    assert month_of(new_year) == "2025-01"
    assert month_of(new_year + 86_399.999) == "2025-01"
    assert month_of(0) == "1970-01"


def test_nulls_ints_and_a_repeated_id_in_one_batch(store: EventStore) -> None:
    base = InvocationEvent(server="s", tool="t", outcome=Outcome.OK, duration_ms=1, minutes_saved=2)
    bare = replace(base, event_id="a" * 32, ts=1_750_000_000)  # ints where floats go; optional fields None
    full = replace(
        base,
        event_id="b" * 32,
        outcome=Outcome.TOOL_ERROR,
        error_class="Boom",
        user_hash="u" * 32,
        workload="w",
        client_name="c",
        protocol_version="p",
        trace_id="t" * 32,
        team="x",
    )
    repeated = replace(full, team="ignored", minutes_saved=99.0)  # same id: the first one is kept

    store.insert([bare, full, repeated])
    store.insert([bare])

    assert store.count() == 2
    stored = {event.event_id: event for event in store.events()}
    assert stored[bare.event_id] == bare
    assert stored[full.event_id] == full
    assert rollup_rows(store) == grouped_in_python([bare, full]) == grouped_in_sql(store)


def test_concurrent_writers_with_overlapping_batches_count_each_event_once(
    url: str, events: list[InvocationEvent]
) -> None:
    stores = [EventStore(url) for _ in range(3)]
    stores[0].create()
    failures: list[BaseException] = []

    def write(store: EventStore, seed: int) -> None:
        rng = random.Random(seed)
        order = events[:]
        rng.shuffle(order)  # every writer sends every event: most inserts conflict with another's
        try:
            for start in range(0, len(order), 97):
                store.insert(order[start : start + 97])
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(store, i)) for i, store in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert failures == []
        assert stores[0].count() == len(events)
        assert rollup_rows(stores[0]) == grouped_in_sql(stores[0]) == grouped_in_python(events)
    finally:
        for store in stores:
            store.dispose()

"""The background writer and the disk spool against real stores: SQLite files and PostgreSQL.

Outages are real: SQLite refuses writes through a trigger or is held by an exclusive lock from
another connection; PostgreSQL is stopped and started. Every test counts events end to end.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleetdeck.errors import Outcome
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.events import InvocationEvent
from fleetdeck.telemetry.metrics import Metrics
from fleetdeck.telemetry.spool import Spool
from fleetdeck.telemetry.store import EventStore
from fleetdeck.telemetry.writer import EventWriter
from fleetdeck_testkit.backends import backend_unavailable
from fleetdeck_testkit.postgres import PostgresServer

WAIT_S = 60.0


def make_event(i: int = 0) -> InvocationEvent:
    return InvocationEvent(
        server="presto",
        tool="run_query",
        outcome=Outcome.OK,
        duration_ms=1.5,
        minutes_saved=2.0,
        team=f"t{i % 3}",
    )


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(f"fleetdeck_telemetry_{name}_total", labels)
    return value or 0.0


def queue_depth(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("fleetdeck_telemetry_queue_depth")
    assert value is not None
    return value


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "telemetry.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[EventStore]:
    store = EventStore(f"sqlite:///{db_path}")
    store.create()
    yield store
    store.dispose()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def writers() -> Iterator[list[EventWriter]]:
    made: list[EventWriter] = []
    yield made
    for writer in made:
        writer.close(WAIT_S)


def new_writer(
    made: list[EventWriter], store: EventStore, spool_dir: Path, metrics: Metrics, **tuning: float
) -> EventWriter:
    options: dict[str, float] = {"batch_size": 100, "flush_interval_s": 0.02, "retry_interval_s": 0.05}
    options.update(tuning)
    writer = EventWriter(
        store,
        Spool(spool_dir, metrics),
        metrics,
        queue_size=int(options.get("queue_size", 100_000)),
        batch_size=int(options["batch_size"]),
        flush_interval_s=options["flush_interval_s"],
        retry_interval_s=options["retry_interval_s"],
    )
    made.append(writer)
    return writer


@contextmanager
def sqlite_refusing_writes(db_path: Path) -> Iterator[None]:
    """The SQLite store rejects every insert (a real constraint failure) until the block ends."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute(
            "CREATE TRIGGER refuse_writes BEFORE INSERT ON invocations"
            " BEGIN SELECT RAISE(ABORT, 'offline'); END"
        )
        conn.commit()
        yield
    finally:
        conn.execute("DROP TRIGGER IF EXISTS refuse_writes")
        conn.commit()
        conn.close()


def submit_many(writer: EventWriter, count: int) -> None:
    for i in range(count):
        writer.submit(make_event(i))


def test_events_reach_a_sqlite_store(store: EventStore, spool_dir: Path, writers: list[EventWriter]) -> None:
    metrics = Metrics()
    writer = new_writer(writers, store, spool_dir, metrics)
    writer.start()
    submit_many(writer, 1_234)

    assert writer.flush(WAIT_S)
    assert store.count() == 1_234
    assert counter(metrics, "events_written") == 1_234
    assert counter(metrics, "events_spooled") == 0
    assert queue_depth(metrics) == 0


def test_sqlite_outage_then_recovery_loses_no_events(
    store: EventStore, db_path: Path, spool_dir: Path, writers: list[EventWriter]
) -> None:
    metrics = Metrics()
    writer = new_writer(writers, store, spool_dir, metrics)
    writer.start()
    submit_many(writer, 300)
    assert writer.sync(WAIT_S)

    with sqlite_refusing_writes(db_path):
        submit_many(writer, 500)
        assert writer.flush(WAIT_S)
        assert writer.retrying
        assert store.count() == 300
        assert writer.spool.pending() == 500

    assert writer.sync(WAIT_S)
    assert store.count() == 800
    assert writer.spool.pending() == 0
    assert counter(metrics, "events_spooled") == 500
    assert counter(metrics, "events_replayed") == 500
    assert counter(metrics, "events_written") == 300
    assert (
        metrics.registry.get_sample_value(
            "fleetdeck_telemetry_events_dropped_total", {"reason": "queue_full"}
        )
        is None
    )


@pytest.mark.postgres
def test_postgres_events_are_written(
    postgres_database: str, spool_dir: Path, writers: list[EventWriter]
) -> None:
    store = EventStore(postgres_database)
    metrics = Metrics()
    writer = new_writer(writers, store, spool_dir, metrics)
    writer.start()
    submit_many(writer, 2_500)

    assert writer.flush(WAIT_S)
    assert store.count() == 2_500
    assert counter(metrics, "events_written") == 2_500
    writer.close(WAIT_S)
    store.dispose()


@pytest.mark.postgres
def test_postgres_stopped_and_restarted_loses_no_events(
    postgres_server: PostgresServer, postgres_database: str, spool_dir: Path, writers: list[EventWriter]
) -> None:
    if not postgres_server.restartable:
        backend_unavailable("the PostgreSQL server was given by URL; the testkit cannot stop it")
    store = EventStore(postgres_database)
    metrics = Metrics()
    writer = new_writer(writers, store, spool_dir, metrics)
    writer.start()
    submit_many(writer, 200)
    assert writer.sync(WAIT_S)

    postgres_server.stop()
    try:
        submit_many(writer, 700)
        assert writer.flush(WAIT_S)
        assert writer.retrying
        assert writer.spool.pending() == 700
    finally:
        postgres_server.start()

    assert writer.sync(WAIT_S)
    assert store.count() == 900
    assert writer.spool.pending() == 0
    assert counter(metrics, "events_written") + counter(metrics, "events_replayed") == 900
    assert counter(metrics, "events_spooled") == counter(metrics, "events_replayed") == 700
    writer.close(WAIT_S)
    store.dispose()


def test_full_queue_drops_and_counts_with_one_warning(
    store: EventStore, spool_dir: Path, writers: list[EventWriter], caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    writer = new_writer(writers, store, spool_dir, metrics, queue_size=10)
    with caplog.at_level(logging.WARNING, logger="fleetdeck.telemetry.writer"):
        submit_many(writer, 25)  # not started: nothing drains

    assert queue_depth(metrics) == 10
    assert counter(metrics, "events_dropped", reason="queue_full") == 15
    assert len([r for r in caplog.records if r.getMessage() == "dropping telemetry events"]) == 1

    writer.start()
    assert writer.flush(WAIT_S)
    assert store.count() == 10
    assert queue_depth(metrics) == 0


def test_submit_does_not_wait_for_a_locked_store(
    store: EventStore,
    db_path: Path,
    spool_dir: Path,
    writers: list[EventWriter],
    record_property: Callable[[str, object], None],
) -> None:
    metrics = Metrics()
    writer = new_writer(writers, store, spool_dir, metrics, batch_size=500)
    writer.start()
    lock = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        slowest = 0.0
        started = time.perf_counter()
        for i in range(10_000):
            before = time.perf_counter()
            writer.submit(make_event(i))
            slowest = max(slowest, time.perf_counter() - before)
        elapsed = time.perf_counter() - started
        record_property("submit_10k_seconds", round(elapsed, 4))
        record_property("slowest_submit_seconds", round(slowest, 6))
        assert elapsed < 5.0, f"10k submits took {elapsed:.3f}s while the store was locked"
        assert store.count() == 0  # WAL readers still work; nothing could be written
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    assert writer.flush(WAIT_S)
    assert store.count() == 10_000
    assert counter(metrics, "events_dropped", reason="queue_full") == 0


def test_torn_spool_line_is_counted_as_dropped(
    store: EventStore, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    writing = Spool(spool_dir, metrics)
    writing.append([make_event(i) for i in range(3)])
    writing.seal()
    (sealed,) = spool_dir.glob("*.jsonl")
    sealed.write_bytes(sealed.read_bytes()[:-10])  # a crash cut the last line short

    replaying = Spool(spool_dir, metrics)
    assert replaying.pending() == 3
    with caplog.at_level(logging.WARNING, logger="fleetdeck.telemetry.spool"):
        assert replaying.replay(store) == 2

    assert store.count() == 2
    assert counter(metrics, "events_dropped", reason="spool_corrupt") == 1
    assert counter(metrics, "events_replayed") == 2
    assert replaying.pending() == 0
    assert list(spool_dir.iterdir()) == []
    assert any(r.getMessage() == "dropped unreadable lines from the telemetry spool" for r in caplog.records)


def test_segment_of_a_crashed_process_is_replayed(store: EventStore, spool_dir: Path) -> None:
    child = textwrap.dedent(
        f"""
        import os
        from fleetdeck.errors import Outcome
        from fleetdeck.telemetry.events import InvocationEvent
        from fleetdeck.telemetry.metrics import Metrics
        from fleetdeck.telemetry.spool import Spool
        spool = Spool({str(spool_dir)!r}, Metrics())
        spool.append([InvocationEvent("s", "t", Outcome.OK, 1.0) for _ in range(40)])
        os._exit(3)  # dies without sealing its open segment
        """
    )
    result = subprocess.run([sys.executable, "-c", child], check=False, timeout=WAIT_S)
    assert result.returncode == 3
    assert len(list(spool_dir.glob("*.open"))) == 1

    metrics = Metrics()
    assert Spool(spool_dir, metrics).replay(store) == 40
    assert store.count() == 40
    assert list(spool_dir.iterdir()) == []


def test_concurrent_replays_claim_each_file_once(store: EventStore, spool_dir: Path) -> None:
    for _ in range(20):
        spool = Spool(spool_dir, Metrics())
        spool.append([make_event(i) for i in range(50)])
        spool.seal()
    replayers = [Spool(spool_dir, Metrics()) for _ in range(4)]
    counts = [0] * len(replayers)
    barrier = threading.Barrier(len(replayers))

    def replay(index: int) -> None:
        barrier.wait(WAIT_S)
        counts[index] = replayers[index].replay(EventStore(store.url))

    threads = [threading.Thread(target=replay, args=(i,)) for i in range(len(replayers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)

    assert sum(counts) == 1_000
    assert store.count() == 1_000
    assert list(spool_dir.iterdir()) == []


def test_two_writers_sharing_a_spool_do_not_double_count(
    store: EventStore, db_path: Path, spool_dir: Path, writers: list[EventWriter]
) -> None:
    metrics = [Metrics(), Metrics()]
    pair = [new_writer(writers, EventStore(store.url), spool_dir, m) for m in metrics]
    for writer in pair:
        writer.start()

    with sqlite_refusing_writes(db_path):
        for writer in pair:
            submit_many(writer, 400)
        for writer in pair:
            assert writer.flush(WAIT_S)
        assert store.count() == 0

    for writer in pair:
        assert writer.sync(WAIT_S)
    assert store.count() == 800
    spooled = sum(counter(m, "events_spooled") for m in metrics)
    replayed = sum(counter(m, "events_replayed") for m in metrics)
    assert spooled == replayed == 800
    assert Spool(spool_dir, Metrics()).pending() == 0


def test_close_spools_what_the_store_refuses_and_next_start_replays_it(
    store: EventStore, db_path: Path, spool_dir: Path, writers: list[EventWriter]
) -> None:
    metrics = Metrics()
    writer = new_writer(writers, store, spool_dir, metrics, flush_interval_s=3600, batch_size=10_000)
    writer.start()
    with sqlite_refusing_writes(db_path):
        submit_many(writer, 50)
        writer.close(WAIT_S)
        writer.close(WAIT_S)  # idempotent
        assert Spool(spool_dir, Metrics()).pending() == 50
    assert counter(metrics, "events_spooled") == 50

    writer.submit(make_event())  # after close: counted, never raised
    assert counter(metrics, "events_dropped", reason="closed") == 1

    restarted_metrics = Metrics()
    restarted = new_writer(writers, store, spool_dir, restarted_metrics)
    restarted.start()
    assert restarted.sync(WAIT_S)
    assert store.count() == 50
    assert counter(restarted_metrics, "events_replayed") == 50


def test_spool_failure_is_counted_as_dropped(
    store: EventStore, db_path: Path, tmp_path: Path, writers: list[EventWriter]
) -> None:
    not_a_directory = tmp_path / "spool-is-a-file"
    not_a_directory.write_text("")
    metrics = Metrics()
    writer = new_writer(writers, store, not_a_directory, metrics)
    writer.start()
    with sqlite_refusing_writes(db_path):
        submit_many(writer, 30)
        assert writer.flush(WAIT_S)

    assert counter(metrics, "events_dropped", reason="spool_failed") == 30
    assert counter(metrics, "events_spooled") == 0


def test_writer_from_settings_writes_to_the_data_dir(tmp_path: Path, writers: list[EventWriter]) -> None:
    settings = FleetdeckSettings.load(data_dir=tmp_path / "data")
    writer = EventWriter.from_settings(settings, Metrics())
    writers.append(writer)
    writer.start()
    writer.submit(make_event())

    assert writer.sync(WAIT_S)
    assert EventStore(settings.telemetry_url()).count() == 1
    assert (tmp_path / "data" / "telemetry.db").exists()


def test_recipes_are_built_on_the_writer_thread_and_a_failing_one_costs_only_its_event(
    store: EventStore, spool_dir: Path, writers: list[EventWriter], caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    writer = new_writer(writers, store, spool_dir, metrics)
    built_on: list[str] = []

    def recipe(i: int) -> InvocationEvent:
        built_on.append(threading.current_thread().name)
        return make_event(i)

    def broken() -> InvocationEvent:
        raise KeyError("a bug in a recipe")

    writer.start()
    writer.submit(make_event(0))
    writer.submit(functools.partial(recipe, 1))
    writer.submit(broken)
    writer.submit(functools.partial(recipe, 2))
    writer.submit(broken)

    assert writer.flush(WAIT_S)
    assert store.count() == 3
    assert built_on == ["fleetdeck-telemetry-writer"] * 2
    assert counter(metrics, "events_dropped", reason="build_failed") == 2
    tracebacks = [r for r in caplog.records if r.getMessage() == "cannot build a telemetry event; dropped"]
    assert len(tracebacks) == 1  # once with its traceback, then counted

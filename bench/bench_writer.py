"""Telemetry writer: sustained throughput into SQLite and PostgreSQL, and submit latency vs. the store.

Targets (the issue): at least 20,000 events/s sustained into SQLite and 5,000/s into PostgreSQL, with
the tool path never waiting on the store.

Per backend (a SQLite file in a temp dir; a PostgreSQL cluster started by the testkit's
``launch_postgres()`` and stopped at the end), on a fresh database each time:

1. **Throughput**, per ``--batch-sizes``: a real :class:`EventWriter` (store, disk spool, metrics)
   is started; ``N`` pre-built events are submitted by one producer at full speed into a queue sized
   to ``N`` (so the producer may outrun the writer without drops), then ``sync()`` waits until all
   are committed. events/s = N / (first submit -> all committed). Dropped and spooled events must
   be 0 and ``store.count()`` must equal N. The time the writer thread spends inside
   ``store.insert`` is reported too (``insert %``: near 100 means the store path is the bottleneck).
2. **Paced** (``--paced-s``, default queue size): the producer submits at the target rate for a few
   seconds; the writer must keep up: 0 drops and everything committed within 1 s of the last submit
   (a writer slower than the target only hides behind the 100k queue for a while).
3. **Submit latency** (µs, every call timed with ``perf_counter_ns``) of ``EventWriter.submit``
   against a plain ``collections.deque.append`` (the floor), paced at ``--latency-rate``:
   ``healthy`` (store answering), ``blocked`` (another connection holds SQLite ``BEGIN EXCLUSIVE``
   / PostgreSQL ``LOCK TABLE invocations IN ACCESS EXCLUSIVE MODE`` for ``--block-s`` seconds; the
   writer must commit nothing meanwhile and everything after), and ``saturated`` (the full-speed
   producer of the throughput run, with the writer thread busy competing for the GIL).

With ``--profile`` the writer thread's ``store.insert`` calls of one throughput run per backend are
profiled (cProfile) and the top functions printed. ``PYTHONPATH=<scratch copy of
shared/fleetdeck/src>`` measures a prototype instead (the module path is recorded in the JSON).

    uv run python bench/bench_writer.py --json-out bench/results/writer.json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import io
import itertools
import json
import os
import platform
import pstats
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from prometheus_client import Counter

import fleetdeck
from fleetdeck.errors import Outcome
from fleetdeck.settings import TelemetrySettings
from fleetdeck.telemetry.events import InvocationEvent
from fleetdeck.telemetry.metrics import Metrics
from fleetdeck.telemetry.spool import Spool
from fleetdeck.telemetry.store import EventStore
from fleetdeck.telemetry.writer import EventWriter
from fleetdeck_testkit.postgres import PostgresServer, launch_postgres

TARGETS = {"sqlite": 20_000.0, "postgresql": 5_000.0}  # events/s, sustained
DEFAULT_QUEUE_SIZE = TelemetrySettings().queue_size
DEFAULT_BATCH = TelemetrySettings().batch_size
SYNC_TIMEOUT_S = 600.0
PACED_MAX_LAG_S = 1.0  # paced run: all committed within this after the last submit (the writer keeps up)
TOOLS = ("list_catalogs", "list_schemas", "describe_table", "run_query", "explain", "list_dags", "dag_runs")
OUTCOMES = (Outcome.OK,) * 9 + (Outcome.TOOL_ERROR,)


# -- events, stores, measurement helpers ------------------------------------------------------


def make_events(count: int, seed: int = 7, users: int = 0) -> list[InvocationEvent]:
    """``count`` events shaped like the middleware's (default ids, a few tools, ~10 % errors).

    ``users`` > 0 draws each event's user from that many with a Zipf-like activity curve (weight
    ``1 / rank**0.9``, as the testkit's generator: realistic, rollup keys repeat within a batch);
    0 gives every event its own user (the worst case: one new rollup row per event).
    """
    rng = random.Random(seed)
    pool = [f"{rng.getrandbits(128):032x}" for _ in range(users)]
    cum_weights = list(itertools.accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(users)))
    picked = rng.choices(pool, cum_weights=cum_weights, k=count) if pool else []
    now = time.time()
    events = []
    for i in range(count):
        outcome = rng.choice(OUTCOMES)
        user = picked[i] if picked else f"{rng.getrandbits(128):032x}"
        events.append(
            InvocationEvent(
                server="presto",
                tool=rng.choice(TOOLS),
                team="data-platform",
                outcome=outcome,
                error_class=None if outcome is Outcome.OK else "QueryFailed",
                duration_ms=rng.uniform(0.2, 900.0),
                minutes_saved=2.5,
                user_hash=user,
                client_name="claude-code",
                protocol_version="2025-11-25",
                trace_id=f"{rng.getrandbits(128):032x}",
                ts=now + i * 1e-4,
            )
        )
    return events


class TimedStore(EventStore):
    """An :class:`EventStore` that adds up the writer thread's time in ``insert`` (and can profile it)."""

    def __init__(self, url: str, profile: cProfile.Profile | None = None) -> None:
        super().__init__(url)
        self.profile = profile
        self.insert_s = 0.0
        self.batches = 0

    def insert(self, events: Sequence[InvocationEvent]) -> None:
        started = time.perf_counter()
        if self.profile is not None:
            self.profile.enable()  # profiles the calling thread only: the writer's
        try:
            super().insert(events)
        finally:
            if self.profile is not None:
                self.profile.disable()
            self.insert_s += time.perf_counter() - started
            self.batches += 1


def server_cpu_s(backend: Backend) -> float | None:
    """CPU seconds (user + system) the backend's server processes have used so far, if measurable.

    For the local PostgreSQL of the testkit: the postmaster (with its reaped children) plus its live
    children, from ``/proc``; ``None`` elsewhere (SQLite runs in-process; Docker; no ``/proc``).
    """
    data_dir = getattr(getattr(backend, "server", None), "data_dir", None)
    if data_dir is None:
        return None
    try:
        pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
            this, ppid = int(stat.parent.name), int(fields[1])
            if this == pid:
                total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            elif ppid == pid:
                total += int(fields[11]) + int(fields[12])
        return total / ticks
    except (OSError, ValueError, IndexError):
        return None


def counter_total(counter: Counter) -> float:
    """The sum of a (possibly labelled) counter's ``_total`` samples."""
    return sum(s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total"))


def pipeline_counts(metrics: Metrics) -> dict[str, int]:
    return {
        "written": int(counter_total(metrics.events_written)),
        "spooled": int(counter_total(metrics.events_spooled)),
        "replayed": int(counter_total(metrics.events_replayed)),
        "dropped": int(counter_total(metrics.events_dropped)),
    }


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max and mean of nanosecond samples, in µs."""
    ordered = sorted(samples_ns)
    n = len(ordered)

    def pct(q: float) -> float:
        return ordered[min(n - 1, max(0, round(q * n) - 1))] / 1000.0

    return {
        "n": n,
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": ordered[-1] / 1000.0,
        "mean_us": sum(ordered) / n / 1000.0,
    }


def paced(
    events: Sequence[InvocationEvent], rate: float, sink: Callable[[InvocationEvent], None]
) -> list[int]:
    """Call ``sink`` on each event at ``rate``/s (in ~1 ms chunks, sleeping between); per-call ns."""
    clock = time.perf_counter_ns
    latencies = []
    began = time.perf_counter()
    sent = 0
    total = len(events)
    while sent < total:
        due = min(total, int((time.perf_counter() - began) * rate) + 1)
        while sent < due:
            event = events[sent]
            t0 = clock()
            sink(event)
            latencies.append(clock() - t0)
            sent += 1
        time.sleep(0.001)
    return latencies


# -- backends ---------------------------------------------------------------------------------


class Backend:
    """Fresh databases of one kind, and a way to block writers to one."""

    name = ""

    def fresh_url(self) -> str:
        raise NotImplementedError

    @contextlib.contextmanager
    def blocked(self, url: str) -> Iterator[None]:
        """Hold a lock that makes every insert into ``invocations`` wait, while the block runs."""
        raise NotImplementedError
        yield

    def close(self) -> None:
        """Release what the backend started."""


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._serial = 0

    def fresh_url(self) -> str:
        self._serial += 1
        return f"sqlite:///{self.workdir / f'telemetry-{self._serial}.db'}"

    @contextlib.contextmanager
    def blocked(self, url: str) -> Iterator[None]:
        path = sa.engine.make_url(url).database
        assert path is not None
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self) -> None:
        self.server: PostgresServer = launch_postgres()

    def fresh_url(self) -> str:
        return self.server.create_database()

    @contextlib.contextmanager
    def blocked(self, url: str) -> Iterator[None]:
        libpq = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(libpq, connect_timeout=10) as conn:  # a transaction until rollback
            conn.execute("LOCK TABLE invocations IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()

    def close(self) -> None:
        self.server.close()


@dataclass
class Rig:
    """One writer on a fresh database of ``backend``."""

    backend: Backend
    workdir: Path
    queue_size: int = DEFAULT_QUEUE_SIZE
    batch_size: int = DEFAULT_BATCH
    profile: cProfile.Profile | None = None
    url: str = ""
    store: TimedStore = field(init=False)
    metrics: Metrics = field(init=False)
    writer: EventWriter = field(init=False)

    def __enter__(self) -> Rig:
        self.url = self.backend.fresh_url()
        self.store = TimedStore(self.url, self.profile)
        self.store.create()
        self.metrics = Metrics()
        spool_dir = Path(tempfile.mkdtemp(prefix="spool-", dir=self.workdir))
        self.writer = EventWriter(
            self.store,
            Spool(spool_dir, self.metrics),
            self.metrics,
            queue_size=self.queue_size,
            batch_size=self.batch_size,
        )
        self.writer.start()
        if not self.writer.sync(SYNC_TIMEOUT_S):  # the start-up replay of the (empty) spool
            raise RuntimeError("the writer did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()
        self.store.dispose()


# -- phases -----------------------------------------------------------------------------------


def throughput(
    backend: Backend, workdir: Path, events: list[InvocationEvent], batch_size: int, profile: bool
) -> dict[str, Any]:
    """Full-speed producer into a queue sized to N; N / (first submit -> all committed)."""
    n = len(events)
    profiler = cProfile.Profile() if profile else None
    clock = time.perf_counter_ns
    latencies = [0] * n
    with Rig(backend, workdir, queue_size=max(n, DEFAULT_QUEUE_SIZE), batch_size=batch_size) as rig:
        rig.store.profile = profiler
        submit = rig.writer.submit
        server_cpu_before = server_cpu_s(backend)
        cpu_before = time.process_time()
        began = time.perf_counter()
        for i, event in enumerate(events):
            t0 = clock()
            submit(event)
            latencies[i] = clock() - t0
        submitted = time.perf_counter()
        synced = rig.writer.sync(SYNC_TIMEOUT_S)
        committed = time.perf_counter()
        cpu_s = time.process_time() - cpu_before
        server_cpu_after = server_cpu_s(backend)
        rig.store.profile = None
        stored = rig.store.count()
        counts = pipeline_counts(rig.metrics)
        insert_s, batches = rig.store.insert_s, rig.store.batches
    elapsed = committed - began
    rate = n / elapsed
    result: dict[str, Any] = {
        "events": n,
        "batch_size": batch_size,
        "queue_size": max(n, DEFAULT_QUEUE_SIZE),
        "elapsed_s": elapsed,
        "events_per_s": rate,
        "producer_s": submitted - began,
        "producer_events_per_s": n / (submitted - began),
        "batches": batches,
        "insert_s": insert_s,
        "insert_share": insert_s / elapsed,
        "insert_us_per_event": insert_s / n * 1e6,
        "cpu_s": cpu_s,  # this process (producer + writer thread), first submit -> all committed
        "server_cpu_s": (
            None
            if server_cpu_before is None or server_cpu_after is None
            else server_cpu_after - server_cpu_before
        ),
        "synced": synced,
        "stored": stored,
        **counts,
        "submit_latency_saturated": percentiles(latencies),
    }
    result["ok"] = synced and stored == n and counts["dropped"] == 0 and counts["spooled"] == 0
    result["target_met"] = result["ok"] and rate >= TARGETS[backend.name]
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        result["profile_top"] = out.getvalue()
    return result


def sustained(
    backend: Backend, workdir: Path, events: list[InvocationEvent], seconds: float
) -> dict[str, Any]:
    """Producer paced at the target rate for ``seconds`` into the default-size queue."""
    rate = TARGETS[backend.name]
    n = min(len(events), int(rate * seconds))
    batch = events[:n]
    max_depth = 0
    with Rig(backend, workdir) as rig:
        stop = threading.Event()

        def watch() -> None:
            nonlocal max_depth
            while not stop.wait(0.01):
                max_depth = max(max_depth, len(rig.writer._queue))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        began = time.perf_counter()
        paced(batch, rate, rig.writer.submit)
        submitted = time.perf_counter()
        synced = rig.writer.sync(SYNC_TIMEOUT_S)
        committed = time.perf_counter()
        stop.set()
        watcher.join()
        stored = rig.store.count()
        counts = pipeline_counts(rig.metrics)
    result = {
        "events": n,
        "offered_per_s": n / (submitted - began),
        "committed_per_s": n / (committed - began),
        "lag_after_last_submit_s": committed - submitted,
        "max_queue_depth": max_depth,
        "stored": stored,
        **counts,
    }
    result["ok"] = (
        synced
        and stored == n
        and counts["dropped"] == 0
        and counts["spooled"] == 0
        and result["lag_after_last_submit_s"] <= PACED_MAX_LAG_S
    )
    return result


def latency(
    backend: Backend, workdir: Path, events: list[InvocationEvent], rate: float, block_s: float
) -> dict[str, Any]:
    """submit() latency: deque floor, healthy store, store blocked by another connection's lock."""
    n = min(len(events), int(rate * block_s))
    floor: collections.deque[InvocationEvent] = collections.deque()
    results: dict[str, Any] = {"rate_per_s": rate, "events_per_phase": n}
    results["deque"] = percentiles(paced(events[:n], rate, floor.append))
    with Rig(backend, workdir) as rig:
        results["healthy"] = percentiles(paced(events[:n], rate, rig.writer.submit))
        if not rig.writer.sync(SYNC_TIMEOUT_S):
            raise RuntimeError("healthy phase did not sync")
        written_before = counter_total(rig.metrics.events_written)
        with backend.blocked(rig.url):
            time.sleep(0.05)  # the lock is held before the first submit
            blocked_began = time.perf_counter()
            samples = paced(
                events[n : 2 * n] if len(events) >= 2 * n else events[:n], rate, rig.writer.submit
            )
            blocked_for = time.perf_counter() - blocked_began
            written_while_blocked = counter_total(rig.metrics.events_written) - written_before
            depth_at_release = len(rig.writer._queue)
        released = time.perf_counter()
        synced = rig.writer.sync(SYNC_TIMEOUT_S)
        drained = time.perf_counter() - released
        results["blocked"] = percentiles(samples)
        expected = n + len(samples)
        stored = rig.store.count()
        results["blocked_run"] = {
            "blocked_s": blocked_for,
            "written_while_blocked": int(written_while_blocked),
            "queued_at_release": depth_at_release,
            "drain_after_release_s": drained,
            "stored": stored,
            **pipeline_counts(rig.metrics),
        }
        results["blocked_run"]["ok"] = synced and stored == expected and written_while_blocked == 0
    return results


# -- report -----------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def print_tables(report: dict[str, Any]) -> None:
    header = (
        f"{'backend':<11}{'batch':>6}{'events':>8}{'events/s':>10}{'target':>8}{'producer/s':>12}"
        f"{'insert %':>9}{'µs/ev ins':>10}{'cpu s':>7}{'srv cpu':>8}{'stored':>8}{'drop':>5}{'spool':>6}"
        "  verdict"
    )
    print(
        "\nThroughput (full-speed producer, queue sized to N; first submit -> all committed; "
        "cpu s: this process, srv cpu: the PostgreSQL server)"
    )
    print(header + "\n" + "-" * len(header))
    for name, entry in report["backends"].items():
        for r in entry["throughput"]:
            verdict = "ok" if r["target_met"] else ("MISSES target" if r["ok"] else "LOST EVENTS")
            print(
                f"{name:<11}{r['batch_size']:>6}{r['events']:>8}{r['events_per_s']:>10,.0f}"
                f"{TARGETS[name]:>8,.0f}{r['producer_events_per_s']:>12,.0f}{r['insert_share']:>9.0%}"
                f"{r['insert_us_per_event']:>10.1f}{r['cpu_s']:>7.2f}"
                f"{'-' if r['server_cpu_s'] is None else format(r['server_cpu_s'], '.2f'):>8}"
                f"{r['stored']:>8}{r['dropped']:>5}{r['spooled']:>6}"
                f"  {verdict}"
            )
    print(
        f"\nPaced at the target rate (default queue_size {DEFAULT_QUEUE_SIZE}, default batch {DEFAULT_BATCH})"
    )
    header = (
        f"{'backend':<11}{'events':>8}{'offered/s':>10}{'committed/s':>12}{'max depth':>10}{'lag s':>7}"
        f"{'drop':>5}  verdict"
    )
    print(header + "\n" + "-" * len(header))
    for name, entry in report["backends"].items():
        s = entry.get("paced")
        if s:
            print(
                f"{name:<11}{s['events']:>8}{s['offered_per_s']:>10,.0f}{s['committed_per_s']:>12,.0f}"
                f"{s['max_queue_depth']:>10}{s['lag_after_last_submit_s']:>7.2f}{s['dropped']:>5}"
                f"  {'ok' if s['ok'] else 'FALLS BEHIND'}"
            )
    print("\nsubmit() latency in µs (deque.append = the floor; ratios vs. the floor and vs. healthy)")
    header = (
        f"{'backend':<11}{'case':<11}{'n':>8}{'p50':>7}{'p90':>7}{'p99':>8}{'p99.9':>8}{'max':>9}"
        f"{'p50/deq':>8}{'p99/deq':>8}{'p99/hlth':>9}"
    )
    print(header + "\n" + "-" * len(header))
    for name, entry in report["backends"].items():
        lat = entry["latency"]
        floor, healthy = lat["deque"], lat["healthy"]
        rows = [("deque", floor), ("healthy", healthy), ("blocked", lat["blocked"])]
        rows += [(f"saturated{r['batch_size']}", r["submit_latency_saturated"]) for r in entry["throughput"]]
        for case, p in rows:
            print(
                f"{name:<11}{case:<11}{p['n']:>8}{p['p50_us']:>7.2f}{p['p90_us']:>7.2f}{p['p99_us']:>8.2f}"
                f"{p['p999_us']:>8.1f}{p['max_us']:>9.1f}{ratio(p['p50_us'], floor['p50_us']):>8.1f}"
                f"{ratio(p['p99_us'], floor['p99_us']):>8.1f}{ratio(p['p99_us'], healthy['p99_us']):>9.2f}"
            )
        b = lat["blocked_run"]
        print(
            f"{'':<11}blocked {b['blocked_s']:.1f} s: written meanwhile {b['written_while_blocked']}, "
            f"queued at release {b['queued_at_release']}, drained in {b['drain_after_release_s']:.2f} s, "
            f"stored {b['stored']}, dropped {b['dropped']}  {'ok' if b['ok'] else 'FAILED'}"
        )
    for name, entry in report["backends"].items():
        for r in entry["throughput"]:
            if "profile_top" in r:
                print(f"\nprofile of the writer thread's store.insert, {name}, batch {r['batch_size']}:")
                print(r["profile_top"])


# -- main -------------------------------------------------------------------------------------


def run_backend(backend: Backend, workdir: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    print(f"[{backend.name}] building {n:,} events", flush=True)
    events = make_events(n, users=args.users)
    entry: dict[str, Any] = {"events": n, "throughput": []}
    for i, batch_size in enumerate(args.batch_sizes):
        r = throughput(backend, workdir, events, batch_size, profile=args.profile and i == 0)
        entry["throughput"].append(r)
        print(
            f"  throughput batch {batch_size}: {r['events_per_s']:,.0f} events/s "
            f"(stored {r['stored']:,}, dropped {r['dropped']})",
            flush=True,
        )
    if args.paced_s > 0:
        paced_events = make_events(int(TARGETS[backend.name] * args.paced_s), 8, args.users)
        entry["paced"] = sustained(backend, workdir, paced_events, args.paced_s)
        print(
            f"  paced: {entry['paced']['offered_per_s']:,.0f}/s offered, ok={entry['paced']['ok']}",
            flush=True,
        )
    lat_events = make_events(2 * int(args.latency_rate * args.block_s), 9, args.users)
    entry["latency"] = latency(backend, workdir, lat_events, args.latency_rate, args.block_s)
    print(f"  latency: blocked run ok={entry['latency']['blocked_run']['ok']}", flush=True)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per SQLite throughput run")
    parser.add_argument("--pg-events", type=int, default=100_000, help="events per PostgreSQL throughput run")
    parser.add_argument(
        "--batch-sizes",
        type=lambda s: [int(x) for x in s.split(",") if x.strip()],
        default=[DEFAULT_BATCH, 1_000],
        help="comma-separated writer batch sizes for the throughput runs",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=0,
        help="users the events are drawn from, Zipf-like (0: every event its own user, the worst case)",
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--paced-s", type=float, default=5.0, help="seconds at the target rate (0: skip)")
    parser.add_argument("--latency-rate", type=float, default=5_000.0, help="submits/s in the latency phases")
    parser.add_argument("--block-s", type=float, default=4.0, help="seconds the store stays locked")
    parser.add_argument("--profile", action="store_true", help="cProfile the first throughput run's inserts")
    parser.add_argument("--json-out", type=Path, help="write the full results as JSON here")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - set(TARGETS):
        parser.error(f"--backends: choose from {sorted(TARGETS)}")
    if args.events < 1 or args.pg_events < 1 or not args.batch_sizes or min(args.batch_sizes) < 1:
        parser.error("--events, --pg-events and --batch-sizes must be >= 1")
    if args.users < 0:
        parser.error("--users must be >= 0")
    if not 0 < args.block_s < 25:
        parser.error("--block-s must be in (0, 25): the SQLite busy timeout is 30 s")

    report: dict[str, Any] = {
        "meta": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sa.__version__,
            "psycopg": psycopg.__version__,
            "fleetdeck": metadata.version("fleetdeck"),
            "fleetdeck_path": str(Path(fleetdeck.__file__).parent),
            "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "platform": platform.platform(),
            "targets_events_per_s": TARGETS,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        },
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="fleetdeck-bench-writer-") as tmp:
        workdir = Path(tmp)
        for name in backends:
            backend: Backend
            if name == "sqlite":
                backend = SqliteBackend(workdir)
            else:
                print("[postgresql] launching a throwaway server", flush=True)
                backend = PostgresBackend()
            try:
                n = args.events if name == "sqlite" else args.pg_events
                report["backends"][name] = run_backend(backend, workdir, n, args)
            finally:
                backend.close()
    if "postgresql" in report["backends"]:
        report["meta"]["postgresql_server"] = "testkit launch_postgres() (fsync=off, synchronous_commit=off)"
    print_tables(report)
    entries = report["backends"].values()
    report["passed"] = all(
        all(r["ok"] for r in e["throughput"])
        and e["throughput"][0]["target_met"]
        and e.get("paced", {"ok": True})["ok"]
        and e["latency"]["blocked_run"]["ok"]
        for e in entries
    )
    print(
        f"\npassed (default batch meets target, nothing lost, blocked store waited out): {report['passed']}"
    )
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    if not report["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Benchmark ``fleetdeck report`` over a cached SQLite file of generated events (default 10 million).

Target (the issue): the report over 10M events in under 5 s on SQLite.

Steps: make sure the cached database exists (built once by ``fleetdeck_testkit.events``, about three
minutes; kept in ``~/.cache/fleetdeck/bench``, rebuilt when the schema or generator changes), then
time ``build_report`` for every month and for the newest month (``--repeat`` runs each, min and
median reported; the first run warms the OS page cache and is included), and the whole CLI
``fleetdeck report --format json`` as a subprocess. The report reads the store's rollup
(``invocation_rollup``), not the raw events. Each case records wall-clock seconds (min, median) and
CPU seconds (the database works in this process, so CPU time shows the cost even when other jobs
compete for the cores). Results are printed and written as JSON to
``--json-out``; ``environment.cpu_pressure`` tells whether the machine was busy.

    uv run python bench/bench_report.py --json-out bench/results/report.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fleetdeck.telemetry.roi import build_report
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.events import ensure_bench_database

TARGET_S = 5.0
_CLI_FALLBACK = (
    "import typer\n"
    "from fleetdeck.report import report_command\n"
    "app = typer.Typer()\n"
    "app.command()(report_command)\n"
    "app()\n"
)


def timed(action: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (this process, all threads, plus finished children) per run."""
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), _cpu()
        action()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return walls, cpus


def _cpu() -> float:
    own = os.times()
    return own.user + own.system + own.children_user + own.children_system


def _pressure() -> str | None:
    """Linux PSI CPU pressure (share of time tasks waited for a CPU), if the kernel exposes it."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None


def cli_command() -> list[str]:
    """``fleetdeck report`` from this environment, or the command function alone if not registered yet."""
    script = Path(sys.executable).with_name("fleetdeck")
    if script.exists():
        probe = subprocess.run([str(script), "report", "--help"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [str(script), "report"]
    return [sys.executable, "-c", _CLI_FALLBACK]


def run_cli(command: list[str], url: str) -> None:
    env = {**os.environ, "FLEETDECK_TELEMETRY__URL": url}
    result = subprocess.run(
        [*command, "--format", "json"], env=env, capture_output=True, check=False, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"CLI failed ({result.returncode}): {result.stderr[-2000:]}")
    json.loads(result.stdout)


def summary(measured: tuple[list[float], list[float]]) -> dict[str, Any]:
    walls, cpus = measured
    return {
        "runs_s": [round(r, 4) for r in walls],
        "min_s": min(walls),
        "median_s": statistics.median(walls),
        "cpu_median_s": statistics.median(cpus),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="database file (default: the cache)")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    err = Console(stderr=True)

    start = time.perf_counter()
    with err.status(f"ensuring the {args.rows:,}-row benchmark database") as status:

        def loaded(done: int, total: int) -> None:
            status.update(f"building the benchmark database: {done:,}/{total:,} rows")

        path = ensure_bench_database(args.rows, path=args.db, rebuild=args.rebuild, progress=loaded)
    prepare_s = time.perf_counter() - start
    url = f"sqlite:///{path}"
    store = EventStore(url)
    report = build_report(store)
    months = [entry.month for entry in report.months]
    rows = sum(entry.totals.invocations for entry in report.months)
    newest = months[0]

    results = {
        "build_report_all_months": summary(timed(lambda: build_report(store), args.repeat)),
        "build_report_one_month": summary(timed(lambda: build_report(store, newest), args.repeat)),
    }
    command = cli_command()
    results["cli_report_json_all_months"] = summary(
        timed(lambda: run_cli(command, url), max(2, args.repeat // 2))
    )
    store.dispose()

    table = Table(title=f"fleetdeck report over {rows:,} events ({len(months)} months, SQLite)")
    for column in ("case", "min s", "median s", "CPU s (median)", f"< {TARGET_S:g} s"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for name, result in results.items():
        ok = "yes" if result["median_s"] < TARGET_S else "NO"
        cpu = f"{result['cpu_median_s']:.3f}"
        table.add_row(name, f"{result['min_s']:.3f}", f"{result['median_s']:.3f}", cpu, ok)
    Console().print(table)

    document = {
        "benchmark": "report",
        "rows": rows,
        "months": len(months),
        "database": str(path),
        "database_bytes": path.stat().st_size,
        "prepare_s": round(prepare_s, 3),
        "target_s": TARGET_S,
        "results": results,
        "passed": all(result["median_s"] < TARGET_S for result in results.values()),
        "environment": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "cpu_pressure": _pressure(),
            "cli": " ".join(command[:2]) if command[0] != sys.executable else "report_command via typer",
        },
    }
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

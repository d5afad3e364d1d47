"""Presto server overhead per ``run_query`` vs. the bare ``trino`` client, and peak memory under truncation.

Starts one real Trino through the testkit (Maven Central distribution, cached) unless
``FLEETDECK_TEST_TRINO_URL`` names one. Then, in this one process:

1. **Overhead.** The same query (``SELECT * FROM tpch.tiny.nation``, 25 rows) runs ``--calls`` times
   through the server's ``run_query`` (in-memory MCP client, guard, policy, telemetry, a fresh
   Trino session per query) and through the bare ``trino`` DB-API client (a fresh connection per
   query, as the server does), interleaved call by call so machine noise lands on both. Reported:
   p50/p99 of each, the p50 difference and the ratio. Target: server p50 <= bare p50 + 5 ms.
   A third row runs ``run_query`` with the engine round trip stubbed out (a canned 25-row result):
   the server's own cost per call without Trino's latency and noise.
2. **Memory.** ``run_query`` on a query that would return 10 million rows
   (``tpch.sf10.lineitem LIMIT 10000000``), truncated at the caps; peak RSS is sampled every 5 ms and
   compared with the idle process (after warm-up). Target: < 100 MB above idle.

    uv run python bench/bench_presto.py --calls 300 --json-out bench-presto.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trino
from mcp import Client

from fleetdeck.auth.identity import StaticIdentity
from fleetdeck.auth.principal import Principal, User
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_presto.backend import QueryContext
from fleetdeck_presto.guard import CheckedStatement
from fleetdeck_presto.results import QueryResult
from fleetdeck_presto.server import build_server
from fleetdeck_presto.settings import PrestoSettings, TrinoSettings
from fleetdeck_presto.trino_backend import TrinoBackend
from fleetdeck_testkit.trino import ANALYST, TrinoServer, launch_trino

QUERY = "SELECT * FROM tpch.tiny.nation"
PRINCIPAL = Principal(
    user=User(subject=ANALYST, issuer="bench", proven_by="bearer-jwt", groups=frozenset({"data-infra"}))
)
HUGE = "SELECT orderkey, partkey, comment FROM tpch.sf10.lineitem LIMIT 10000000"
TARGET_P50_DELTA_MS = 5.0
TARGET_PEAK_MB = 100.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class StubBackend(TrinoBackend):
    """The Trino backend with the engine round trip replaced by a canned 25-row result."""

    def __init__(self, settings: TrinoSettings, canned: QueryResult) -> None:
        super().__init__(settings)
        self._canned = canned

    async def run(self, statement: CheckedStatement, ctx: QueryContext) -> QueryResult:
        if ctx.handle is not None:
            ctx.handle.finish("finished")
        return self._canned


async def server_only_ms(
    settings: FleetdeckSettings, presto: PrestoSettings, canned: QueryResult, calls: int
) -> list[float]:
    """Per-call latency of run_query with the engine stubbed out: the server's own cost."""
    server = build_server(
        settings, presto, StubBackend(presto.trino, canned), identity=StaticIdentity(PRINCIPAL)
    )
    times: list[float] = []
    async with server.running(), Client(server.mcp) as client:
        for i in range(calls + 50):
            start = time.perf_counter()
            await client.call_tool("run_query", {"sql": QUERY})
            if i >= 50:
                times.append((time.perf_counter() - start) * 1000)
    return times


def bare_query(server: TrinoServer) -> None:
    connect = trino.dbapi.connect
    with connect(host=server.host, port=server.port, user=ANALYST, source="bench-bare") as conn:  # type: ignore[no-untyped-call]
        cursor = conn.cursor()
        cursor.execute(QUERY)
        cursor.fetchall()


async def run(calls: int) -> dict[str, Any]:
    engine = launch_trino()
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = FleetdeckSettings.load(data_dir=Path(data_dir))
            presto = PrestoSettings.load(
                backend="trino", trino=TrinoSettings(host=engine.host, port=engine.port)
            )
            principal = Principal(
                user=User(
                    subject=ANALYST, issuer="bench", proven_by="bearer-jwt", groups=frozenset({"data-infra"})
                )
            )
            server = build_server(
                settings, presto, TrinoBackend(presto.trino), identity=StaticIdentity(principal)
            )
            async with server.running(), Client(server.mcp) as client:
                first = await client.call_tool("run_query", {"sql": QUERY})
                for _ in range(20):  # warm-up: JIT on the engine, imports and caches here
                    await client.call_tool("run_query", {"sql": QUERY})
                    await asyncio.to_thread(bare_query, engine)
                served: list[float] = []
                bare: list[float] = []
                for i in range(calls):
                    order = ("served", "bare") if i % 2 == 0 else ("bare", "served")
                    for side in order:
                        start = time.perf_counter()
                        if side == "served":
                            result = await client.call_tool("run_query", {"sql": QUERY})
                            if result.is_error:
                                raise RuntimeError(f"run_query failed: {result.content}")
                            served.append((time.perf_counter() - start) * 1000)
                        else:
                            await asyncio.to_thread(bare_query, engine)
                            bare.append((time.perf_counter() - start) * 1000)

                idle = rss_mb()
                peak = [idle]
                stop = threading.Event()

                def sample() -> None:
                    while not stop.is_set():
                        peak[0] = max(peak[0], rss_mb())
                        stop.wait(0.005)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                start = time.perf_counter()
                huge = await client.call_tool("run_query", {"sql": HUGE})
                huge_s = time.perf_counter() - start
                stop.set()
                sampler.join()
                data = huge.structured_content or {}
                canned = QueryResult.model_validate(first.structured_content)
            stub = await server_only_ms(settings, presto, canned, calls)
    finally:
        engine.close()
    return {
        "calls": calls,
        "query": QUERY,
        "served_p50_ms": statistics.median(served),
        "served_p99_ms": pct(served, 0.99),
        "bare_p50_ms": statistics.median(bare),
        "bare_p99_ms": pct(bare, 0.99),
        "p50_delta_ms": statistics.median(served) - statistics.median(bare),
        "p50_ratio": statistics.median(served) / statistics.median(bare),
        "server_only_p50_ms": statistics.median(stub),
        "server_only_p99_ms": pct(stub, 0.99),
        "idle_rss_mb": idle,
        "peak_rss_mb": peak[0],
        "peak_above_idle_mb": peak[0] - idle,
        "huge_rows_returned": data.get("row_count"),
        "huge_truncated_by": data.get("truncated_by"),
        "huge_seconds": huge_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    r = asyncio.run(run(args.calls))
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'run_query (server)':28}{r['served_p50_ms']:>10.2f}{r['served_p99_ms']:>10.2f}")
    print(f"{'trino client (bare)':28}{r['bare_p50_ms']:>10.2f}{r['bare_p99_ms']:>10.2f}")
    print(f"{'run_query, engine stubbed':28}{r['server_only_p50_ms']:>10.2f}{r['server_only_p99_ms']:>10.2f}")
    verdict = "ok" if r["p50_delta_ms"] <= TARGET_P50_DELTA_MS else "MISSED"
    print(
        f"overhead p50 +{r['p50_delta_ms']:.2f} ms (x{r['p50_ratio']:.2f});"
        f" target <= +{TARGET_P50_DELTA_MS} ms: {verdict}"
    )
    verdict = "ok" if r["peak_above_idle_mb"] < TARGET_PEAK_MB else "MISSED"
    print(
        f"10M-row query: {r['huge_rows_returned']} rows returned ({r['huge_truncated_by']})"
        f" in {r['huge_seconds']:.2f} s;"
        f" RSS idle {r['idle_rss_mb']:.1f} MB, peak {r['peak_rss_mb']:.1f} MB,"
        f" +{r['peak_above_idle_mb']:.1f} MB; target < {TARGET_PEAK_MB} MB: {verdict}"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

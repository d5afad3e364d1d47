"""Kit overhead: one trivial tool served by the Fleetdeck kit vs. by a bare ``MCPServer``.

Each server runs in its own process under uvicorn on a loopback port (so the client's CPU does not
share a GIL with either server); this process is the one client. Per configuration it opens one
SDK ``Client`` session per server over Streamable HTTP, warms every server up, then measures
sequential ``tools/call echo`` in ``--rounds`` rounds of ``--calls`` calls per server, the servers
taking turns call by call, so every server meets the same moments of this VM, whose speed drifts
within seconds (with one block of 250 calls per server after the other, the kit-minus-bare p50 of a
round ranged from -1.9 to +1.9 ms). The turn order rotates every call (ABC, BCA, CAB…): each server
is first, middle and last equally often and, with three servers or more as here, never called twice
in a row. (Reversing the order instead — ABC, CBA — let the two end servers follow themselves every
other call, with their process and connection still warm, and never the middle one: two identical
kit servers measured +0.07 and +0.10 ms apart at p50 that way, and +0.01 ms apart with the
rotation.) The verdict takes, per configuration, the median over the rounds of each round's
side-by-side calls/s ratio and p50 difference; the pooled numbers are reported too.

Configurations (``--configs``):

- ``modern``: client ``mode="auto"`` (2026-07-28, one POST per call; the server's stateless flag
  does not apply to this era), servers with the kit's defaults (stateful, SSE responses).
- ``legacy``: client ``mode="legacy"`` (2025-11-25 handshake, one session) against the same
  stateful servers.
- ``legacy-stateless``: client ``mode="legacy"`` against a second pair with ``stateless_http=True``.

A third server, ``kit-auth``, is the kit with the user layer on: it trusts a JWKS served from this
process, and its client sends a bearer JWT on every request (target #3: at least 85 % of bare's
calls/s with auth, policy and telemetry on).

Last, function calls are counted rather than timed: a fresh bare, kit and kit-auth server each make
``--count-calls`` 2026-07-28 calls under ``cProfile`` (event-loop thread only), and the Python frames
and built-in calls per call are reported with the kit's excess over bare. Counts hardly move with the
VM's speed, so they show a change to the kit's per-call path that timing here cannot resolve.

The kit records real telemetry (default settings, SQLite in a temp data dir). After the run the
servers are stopped with SIGTERM (the kit flushes its writer on shutdown) and every kit server's
``telemetry.db`` must hold exactly the number of calls it was sent, all ``ok``.

    uv run python bench/bench_kit.py --calls 250 --rounds 16 --json-out bench-kit.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import pstats
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fleetdeck_testkit.identity import JwksServer, TestIssuer

HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = HERE / "servers_for_bench.py"
HOST = "127.0.0.1"
READY_DEADLINE_S = 60.0
STOP_DEADLINE_S = 20.0
TARGET_CALLS_RATIO = 0.90  # kit calls/s >= 90 % of bare (#2)
TARGET_P50_DELTA_MS = 0.3  # kit p50 <= bare p50 + 0.3 ms (#2)
TARGET_AUTH_CALLS_RATIO = 0.85  # kit with JWT auth, policy and telemetry: calls/s >= 85 % of bare (#3)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

CONFIGS: dict[str, tuple[str, bool]] = {  # name -> (client mode, server stateless_http)
    "modern": ("auto", False),
    "legacy": ("legacy", False),
    "legacy-stateless": ("legacy", True),
}


@dataclass
class ServerProcess:
    """One benchmark server subprocess and what it was sent."""

    variant: str
    stateless: bool
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    calls_sent: int = 0
    exit_code: int | None = None
    token: str | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    @property
    def is_kit(self) -> bool:
        return self.variant.startswith("kit")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


@dataclass
class Samples:
    """Per-call latencies (seconds) and per-round throughput for one server in one configuration."""

    latencies: list[float] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)
    round_p50s: list[float] = field(default_factory=list)
    busy_s: float = 0.0
    server_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        n = len(ordered)

        def pct(q: float) -> float:
            return ordered[min(n - 1, max(0, round(q * n) - 1))] * 1000.0

        return {
            "calls": n,
            "calls_per_s": n / self.busy_s,
            "p50_ms": statistics.median(ordered) * 1000.0,
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "mean_ms": statistics.fmean(ordered) * 1000.0,
            "max_ms": ordered[-1] * 1000.0,
            "server_cpu_us_per_call": self.server_cpu_s / n * 1e6,
            "round_calls_per_s": [round(r, 1) for r in self.round_rates],
            "round_p50_ms": [round(p * 1000.0, 3) for p in self.round_p50s],
        }


# -- server processes -------------------------------------------------------------------------


def start_server(
    variant: str,
    stateless: bool,
    workdir: Path,
    log_level: str,
    issuer: TestIssuer,
    profile: Path | None = None,
) -> ServerProcess:
    """Bind a free loopback port here and hand the socket to a fresh server process.

    ``kit-auth`` trusts ``issuer`` (its JWKS served from this process) and gets a token for its URL.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    name = f"{variant}{'-stateless' if stateless else ''}{'-profiled' if profile else ''}"
    data_dir = workdir / name
    data_dir.mkdir()
    log_path = workdir / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETDECK_")}  # default settings only
    if variant == "kit-auth":
        env |= {"FLEETDECK_AUTH__ISSUER": issuer.issuer, "FLEETDECK_AUTH__JWKS_URL": issuer.jwks_url}
    command = [sys.executable, str(SERVER_SCRIPT), variant, str(sock.fileno()), str(data_dir)]
    command += ["--log-level", log_level] + (["--stateless"] if stateless else [])
    command += ["--profile", str(profile)] if profile else []
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, pass_fds=[sock.fileno()], env=env, cwd=HERE.parent
        )
    sock.close()
    server = ServerProcess(variant, stateless, port, data_dir, log_path, proc)
    if variant == "kit-auth":
        server.token = issuer.mint("bench-user", ["bench"], audience=server.url, lifetime_s=3600)
    return server


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process (all its threads) has used so far, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def stop_server(server: ServerProcess) -> None:
    """SIGTERM (graceful: the kit flushes telemetry), then SIGKILL after a deadline."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            print(f"  {server.variant}: did not stop within {STOP_DEADLINE_S:g} s; killing", file=sys.stderr)
            server.proc.kill()
            server.proc.wait()
    server.exit_code = server.proc.returncode


def http_client(server: ServerProcess) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {server.token}"} if server.token else None
    return httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=300.0), headers=headers)


async def wait_ready(server: ServerProcess, mode: str) -> None:
    """Kit: ``/healthz`` answers 200. Bare: a client connects (discover/initialize) and lists ``echo``."""
    deadline = time.monotonic() + READY_DEADLINE_S
    last_error = "not tried"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.variant} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            if server.is_kit:
                async with httpx2.AsyncClient(timeout=2.0) as client:
                    response = await client.get(f"http://{HOST}:{server.port}/healthz")
                if response.status_code == 200:
                    return
                last_error = f"/healthz answered {response.status_code}"
            else:
                async with (
                    http_client(server) as hc,
                    Client(streamable_http_client(server.url, http_client=hc), mode=mode) as c,
                ):
                    if "echo" in {tool.name for tool in (await c.list_tools()).tools}:
                        return
                last_error = "echo not listed"
        except (OSError, httpx2.HTTPError, RuntimeError) as exc:  # still starting
            last_error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - the SDK wraps connection failures in its own errors
            last_error = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.05)  # poll interval, not a fixed wait: readiness is the condition
    raise TimeoutError(
        f"{server.variant} not ready after {READY_DEADLINE_S:g} s ({last_error}):\n{server.log_tail()}"
    )


# -- measurement ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sessions(servers: list[ServerProcess], mode: str) -> AsyncIterator[list[Client]]:
    """One SDK client session per server, held open for the whole configuration."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for server in servers:
            hc = await stack.enter_async_context(http_client(server))
            transport = streamable_http_client(server.url, http_client=hc)
            clients.append(await stack.enter_async_context(Client(transport, mode=mode)))
        yield clients


async def call_many(client: Client, server: ServerProcess, calls: int) -> None:
    """``calls`` sequential, unmeasured ``echo`` calls (warm-up and call counting)."""
    for i in range(calls):
        check(server, await client.call_tool("echo", {"text": f"hello {i}"}), f"hello {i}")
    server.calls_sent += calls


def check(server: ServerProcess, result: Any, text: str) -> None:
    """Raise unless ``result`` is ``echo``'s answer to ``text``."""
    if result.is_error or result.structured_content != {"result": text}:
        raise RuntimeError(f"{server.variant}: unexpected result {result!r}")


async def run_round(
    clients: list[Client], servers: list[ServerProcess], calls: int, samples: dict[str, Samples]
) -> None:
    """``calls`` measured calls to each server, interleaved call by call.

    The servers take turns, their order rotated every call (ABC, BCA, CAB…), so each meets the same
    moments of this VM, whose speed drifts within seconds, in every position equally often and never
    right after itself: a paired comparison, not two blocks apart.
    """
    perf = time.perf_counter
    latencies: list[list[float]] = [[] for _ in servers]
    cpu_before = [cpu_seconds(s.proc.pid) for s in servers]
    count = len(servers)
    for i in range(calls):
        text = f"hello {i}"
        for j in [(i + k) % count for k in range(count)]:
            started = perf()
            result = await clients[j].call_tool("echo", {"text": text})
            latencies[j].append(perf() - started)
            check(servers[j], result, text)
    for j, server in enumerate(servers):
        cpu = cpu_seconds(server.proc.pid) - cpu_before[j]
        server.calls_sent += calls
        busy = sum(latencies[j])  # sequential calls: the time this server kept the client waiting
        sample = samples[server.variant]
        sample.latencies.extend(latencies[j])
        sample.round_rates.append(calls / busy)
        sample.round_p50s.append(statistics.median(latencies[j]))
        sample.busy_s += busy
        sample.server_cpu_s += cpu


async def run_config(name: str, servers: list[ServerProcess], args: argparse.Namespace) -> dict[str, Any]:
    mode, stateless = CONFIGS[name]
    print(f"\n[{name}] client mode={mode}, server stateless_http={stateless}, SSE responses", flush=True)
    samples = {s.variant: Samples() for s in servers}
    async with sessions(servers, mode) as clients:
        for client, server in zip(clients, servers, strict=True):
            await call_many(client, server, args.warmup)
        for r in range(args.rounds):
            await run_round(clients, servers, args.calls, samples)
            line = [f"{s.variant} {samples[s.variant].round_rates[-1]:7.1f}/s" for s in servers]
            print(f"  round {r + 1}/{args.rounds}: " + "  ".join(line), flush=True)
    results = {variant: s.summary() for variant, s in samples.items()}
    bare = results["bare"]
    comparisons = {}
    for variant, summary in results.items():
        if variant == "bare":
            continue
        ratio = summary["calls_per_s"] / bare["calls_per_s"]
        round_ratios = [
            k / b for k, b in zip(summary["round_calls_per_s"], bare["round_calls_per_s"], strict=True)
        ]
        delta = summary["p50_ms"] - bare["p50_ms"]
        round_ratio = statistics.median(round_ratios)
        round_delta = statistics.median(
            k - b for k, b in zip(summary["round_p50_ms"], bare["round_p50_ms"], strict=True)
        )
        comparisons[f"{variant}_vs_bare"] = {
            "calls_per_s_ratio": ratio,
            "calls_per_s_ratio_per_round": [round(x, 3) for x in round_ratios],
            "calls_per_s_ratio_median_of_rounds": round_ratio,
            "p50_delta_ms_median_of_rounds": round_delta,
            "server_cpu_us_per_call_delta": summary["server_cpu_us_per_call"]
            - bare["server_cpu_us_per_call"],
            "p50_delta_ms": delta,
            "p90_delta_ms": summary["p90_ms"] - bare["p90_ms"],
            "p99_delta_ms": summary["p99_ms"] - bare["p99_ms"],
            "target_met": round_ratio >= TARGET_AUTH_CALLS_RATIO
            if variant == "kit-auth"
            else round_ratio >= TARGET_CALLS_RATIO and round_delta <= TARGET_P50_DELTA_MS,
        }
    return {
        "config": name,
        "client_mode": mode,
        "stateless_http": stateless,
        "results": results,
        **comparisons,
    }


def print_table(report: list[dict[str, Any]]) -> None:
    header = (
        f"{'config':<17}{'server':<9}{'calls/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}"
        f"{'ratio':>7}{'med/rnd':>8}{'Δp50 ms':>9}{'med/rnd':>8}{'srv CPU µs/call':>16}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for entry in report:
        for variant, s in entry["results"].items():
            cmp = entry.get(f"{variant}_vs_bare")
            ratio = f"{cmp['calls_per_s_ratio']:.3f}" if cmp else "1.000"
            median = f"{cmp['calls_per_s_ratio_median_of_rounds']:.3f}" if cmp else ""
            delta = f"{cmp['p50_delta_ms']:+.3f}" if cmp else ""
            round_delta = f"{cmp['p50_delta_ms_median_of_rounds']:+.3f}" if cmp else ""
            cpu = f"{s['server_cpu_us_per_call']:.0f}"
            if cmp:
                cpu += f" ({cmp['server_cpu_us_per_call_delta']:+.0f})"
            verdict = ("  ok" if cmp["target_met"] else "  MISSES target") if cmp else ""
            print(
                f"{entry['config']:<17}{variant:<9}{s['calls_per_s']:>8.1f}{s['p50_ms']:>8.3f}"
                f"{s['p90_ms']:>8.3f}{s['p99_ms']:>8.3f}{ratio:>7}{median:>8}{delta:>9}{round_delta:>8}{cpu:>16}{verdict}"
            )
    print(
        f"target: kit calls/s >= {TARGET_CALLS_RATIO:.0%} of bare, "
        f"kit p50 <= bare p50 + {TARGET_P50_DELTA_MS} ms; "
        f"kit-auth calls/s >= {TARGET_AUTH_CALLS_RATIO:.0%} of bare"
        "\n(ratio, Δp50: pooled over all rounds; med/rnd: median over the rounds of the side-by-side"
        " ratio / p50 difference, which the verdict uses; CPU: server process, all threads)"
    )


def count_telemetry(server: ServerProcess) -> dict[str, Any]:
    """Rows in the kit's SQLite telemetry file, by outcome, against the calls it was sent."""
    path = server.data_dir / "telemetry.db"
    rows: dict[str, int] = {}
    if path.exists():
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = dict(db.execute("SELECT outcome, count(*) FROM invocations GROUP BY outcome").fetchall())
    recorded = sum(rows.values())
    return {
        "server": f"{server.variant}{'-stateless' if server.stateless else ''}",
        "calls_sent": server.calls_sent,
        "rows": recorded,
        "by_outcome": rows,
        "exit_code": server.exit_code,
        "exact": recorded == server.calls_sent == rows.get("ok", 0),
    }


# -- main -------------------------------------------------------------------------------------


def machine_speed_ms() -> float:
    """A fixed pure-Python workload's best time of three: tells the VM's fast and slow phases apart."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        sum(i * i for i in range(300_000))
        best = min(best, time.perf_counter() - started)
    return best * 1000.0


async def count_calls(args: argparse.Namespace, workdir: Path, issuer: TestIssuer) -> dict[str, Any]:
    """Function calls per ``tools/call`` on each server's event-loop thread, counted by ``cProfile``.

    Timing on this VM swings by tens of percent; counting does not. Each variant gets a fresh
    server (2026-07-28 era); after ``--warmup`` calls it is told to profile (SIGUSR1) for
    ``--count-calls`` calls and to write its statistics (SIGUSR2). Python frames are the expensive
    kind; built-in calls (``dict.get``, ``len``…) are cheap.
    """
    counts: dict[str, Any] = {}
    for variant in ("bare", "kit", "kit-auth"):
        stats_path = workdir / f"{variant}.pstats"
        server = start_server(variant, False, workdir, args.server_log_level, issuer, profile=stats_path)
        try:
            await wait_ready(server, "auto")
            async with sessions([server], "auto") as (client,):
                await call_many(client, server, args.warmup)
                server.proc.send_signal(signal.SIGUSR1)
                await call_many(client, server, args.count_calls)
                server.proc.send_signal(signal.SIGUSR2)
                deadline = time.monotonic() + READY_DEADLINE_S
                while not stats_path.exists() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)  # poll for the file the server writes on SIGUSR2
            await asyncio.sleep(0.5)  # let the server finish writing the file it just created
        finally:
            stop_server(server)
        stats = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
        python = sum(calls for (path, _, _), (_, calls, *_) in stats.items() if path != "~")
        builtin = sum(calls for (path, _, _), (_, calls, *_) in stats.items() if path == "~")
        counts[variant] = {
            "python_frames_per_call": python / args.count_calls,
            "builtin_calls_per_call": builtin / args.count_calls,
        }
    print(f"\nfunction calls per tools/call on the event-loop thread (cProfile, {args.count_calls} calls):")
    bare = counts["bare"]
    for variant, count in counts.items():
        extra = ""
        if variant != "bare":
            frames = count["python_frames_per_call"] - bare["python_frames_per_call"]
            builtins = count["builtin_calls_per_call"] - bare["builtin_calls_per_call"]
            extra = f"  ({frames:+.0f} frames, {builtins:+.0f} built-in calls over bare)"
        print(
            f"  {variant:<9} {count['python_frames_per_call']:7.0f} Python frames"
            f" {count['builtin_calls_per_call']:7.0f} built-in calls{extra}"
        )
    return counts


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"unknown configs {sorted(unknown)}; choose from {sorted(CONFIGS)}")
    variants = ["bare", "kit", "kit-auth"] + (["kit-otel"] if args.otel else [])
    pools: dict[bool, list[ServerProcess]] = {}
    started: list[ServerProcess] = []
    report: list[dict[str, Any]] = []
    speed_before = machine_speed_ms()  # before any server starts (their imports would load the CPU)
    print(f"machine speed probe: {speed_before:.1f} ms (lower is faster)", flush=True)
    calls_counted: dict[str, Any] | None = None
    jwks = JwksServer()
    jwks.__enter__()
    issuer = TestIssuer(jwks)
    try:
        for stateless in sorted({CONFIGS[c][1] for c in configs}):
            pools[stateless] = [
                start_server(v, stateless, workdir, args.server_log_level, issuer) for v in variants
            ]
            started += pools[stateless]
        t0 = time.monotonic()
        for server in started:
            await wait_ready(server, "legacy" if server.stateless else "auto")
        print(f"{len(started)} servers ready in {time.monotonic() - t0:.1f} s", flush=True)
        for name in configs:
            report.append(await run_config(name, pools[CONFIGS[name][1]], args))
        for server in started:  # stopped before counting, so that they hold no CPU meanwhile
            stop_server(server)
        calls_counted = await count_calls(args, workdir, issuer) if args.count_calls else None
    finally:
        for server in started:
            stop_server(server)
        jwks.__exit__(None, None, None)
    telemetry = [count_telemetry(s) for s in started if s.is_kit]
    return {
        "meta": {
            "machine_speed_probe_ms": {
                "before": round(speed_before, 2),
                "after": round(machine_speed_ms(), 2),
            },
            "python": platform.python_version(),
            "mcp": metadata.version("mcp"),
            "fleetdeck": metadata.version("fleetdeck"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "calls_per_round": args.calls,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "tool": "echo(text: str) -> str, async",
            "targets": {"calls_per_s_ratio_min": TARGET_CALLS_RATIO, "p50_delta_ms_max": TARGET_P50_DELTA_MS},
        },
        "configs": report,
        "function_calls": calls_counted,
        "telemetry": telemetry,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=250, help="calls per server per round")
    parser.add_argument("--rounds", type=int, default=16, help="interleaved rounds per configuration")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured calls per server first")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from {list(CONFIGS)}")
    parser.add_argument(
        "--otel", action="store_true", help="also measure the kit with the OTel SDK installed"
    )
    parser.add_argument(
        "--count-calls", type=int, default=500, help="calls profiled per server for the call counts (0: none)"
    )
    parser.add_argument("--server-log-level", default="warning", help="uvicorn log level in the servers")
    parser.add_argument("--json-out", type=Path, help="write the full results as JSON here")
    args = parser.parse_args()
    if args.calls < 1 or args.rounds < 1 or args.warmup < 0 or args.count_calls < 0:
        parser.error("--calls and --rounds must be >= 1, --warmup and --count-calls >= 0")

    with tempfile.TemporaryDirectory(prefix="fleetdeck-bench-") as tmp:
        result = asyncio.run(bench(args, Path(tmp)))
    print_table(result["configs"])
    probe = result["meta"]["machine_speed_probe_ms"]
    print(f"machine speed probe: {probe['before']} ms before, {probe['after']} ms after (lower is faster)")
    print("\ntelemetry (kit SQLite file after shutdown):")
    for t in result["telemetry"]:
        verdict = "exact" if t["exact"] else "MISMATCH"
        line = f"  {t['server']:<20} sent {t['calls_sent']:>6}  rows {t['rows']:>6}  {t['by_outcome']}"
        print(f"{line}  {verdict}")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json_out}")
    if not all(t["exact"] for t in result["telemetry"]):
        sys.exit(1)


if __name__ == "__main__":
    main()

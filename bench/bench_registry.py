"""Registry benchmark: a catalog of 2,000 servers with 40,000 tools, and live probing of 200.

Measures (targets from issue 7):

- ``load``: cold load of the whole manifest folder into a catalog and search index (< 5 s);
- ``search``: ranked search p50/p99 over servers and tools, filtered for a caller (p99 < 20 ms);
- ``http``: ``GET /v0.1/servers`` pages (cursor walks, 30 per page) per second, from this process
  against the registry served by uvicorn in a separate process (>= 1,000 req/s on 2 cores);
- ``probe``: one probe round of 200 servers (real MCP ``tools/list`` over HTTP against a real
  FleetServer in another process) against the probe interval, and the API (4 connections walking
  pages) over the first interval, which holds that round (the prober shares the API's event loop).

    uv run python bench/bench_registry.py --json-out bench-registry.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

HOST = "127.0.0.1"
WORDS = [
    "orders",
    "invoices",
    "customers",
    "tables",
    "schemas",
    "jobs",
    "dags",
    "queries",
    "spark",
    "trino",
    "airflow",
    "metrics",
    "reports",
    "users",
    "teams",
    "budgets",
    "alerts",
    "logs",
    "events",
    "files",
    "buckets",
    "models",
    "features",
    "datasets",
]
VERBS = ("list", "get", "describe", "run", "cancel", "search", "export", "count", "find", "check")


def generate(root: Path, servers: int, tools: int) -> None:
    """Write ``servers`` manifests of ``tools`` tools each, every one approved by all tracks."""
    import datetime as dt

    from fleetdeck.manifest.digest import surface_digest
    from fleetdeck.manifest.model import GOVERNANCE_KEY, SERVER_JSON_SCHEMA, render_json
    from fleetdeck.manifest.reviews import TRACKS, ReviewRecord, Reviews, dump_reviews

    rng = random.Random(7)
    today = dt.date.today()
    for index in range(servers):
        key = f"srv{index:05d}"
        topic = rng.sample(WORDS, 3)
        defs: list[dict[str, Any]] = []
        for t in range(tools):
            name = f"{VERBS[t % len(VERBS)]}_{topic[t % 3]}_{t:02d}"
            defs.append(
                {
                    "name": name,
                    "title": None,
                    "description": f"{name.replace('_', ' ').capitalize()} of the "
                    f"{' '.join(rng.sample(WORDS, 4))}.",
                    "input_schema": {
                        "type": "object",
                        "properties": {"limit": {"type": "integer", "maximum": 100}},
                    },
                    "output_schema": None,
                    "annotations": {
                        "title": None,
                        "read_only_hint": True,
                        "destructive_hint": False,
                        "idempotent_hint": True,
                        "open_world_hint": False,
                    },
                    "policy": None,
                    "minutes_saved": 2.0,
                    "requires_approval": False,
                }
            )
        defs.sort(key=lambda tool: str(tool["name"]))
        digest = surface_digest(defs)
        document = {
            "$schema": SERVER_JSON_SCHEMA,
            "name": f"io.bench/{key}",
            "description": f"Bench server {key}.",
            "title": f"{topic[0].title()} {index}",
            "version": "1.0.0",
            "remotes": [{"type": "streamable-http", "url": f"http://{HOST}:1/mcp"}],
            "_meta": {
                GOVERNANCE_KEY: {
                    "owner_team": f"team-{index % 40}",
                    "support_channel": "#bench",
                    "docs_url": "https://x",
                    "data_classification": "internal",
                    "lifecycle": "ga",
                    "instructions": "",
                    "tags": topic,
                    "access_policy": {"business_groups": ["*"]},
                    "tools": defs,
                    "tool_surface_digest": digest,
                }
            },
        }
        folder = root / key
        folder.mkdir()
        (folder / "server.json").write_text(render_json(document))
        record = ReviewRecord(
            status="approved",
            reviewer="r",
            ticket="T-1",
            date=today,
            expires=today + dt.timedelta(days=30),
            digest=digest,
        )
        (folder / "reviews.yaml").write_text(
            dump_reviews(Reviews(server=key, tracks=dict.fromkeys(TRACKS, record)))
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_load_and_search(root: Path, queries: int) -> dict[str, Any]:
    from fleetdeck.auth.principal import Principal, User
    from fleetdeck_registry.state import RegistryState

    state = RegistryState(root)
    started, cpu = time.perf_counter(), time.process_time()
    if not state.reload():
        raise RuntimeError(f"the generated catalog did not load: {state.problems[:3]}")
    load_s, load_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    catalog = state.current.catalog
    caller = Principal(user=User("alice", "bench", "bearer-jwt", groups=frozenset({"ads"})))
    visible = state.visible_keys(caller)
    rng = random.Random(3)
    timings = []
    for _ in range(queries):
        query = " ".join(rng.sample(WORDS + list(VERBS), rng.randint(1, 3)))
        began = time.perf_counter()
        state.current.index.search(query, limit=20, servers=visible)
        timings.append((time.perf_counter() - began) * 1000)
    return {
        "servers": len(catalog.entries),
        "tools": sum(len(e.tools) for e in catalog.entries),
        "load_s": round(load_s, 3),
        "load_cpu_s": round(load_cpu_s, 3),
        "search_p50_ms": round(percentile(timings, 0.5), 3),
        "search_p99_ms": round(percentile(timings, 0.99), 3),
        "search_max_ms": round(max(timings), 3),
    }


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], env=env)


async def wait_up(url: str, deadline_s: float = 120) -> None:
    end = time.monotonic() + deadline_s
    async with httpx2.AsyncClient(timeout=2) as client:
        while time.monotonic() < end:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


_CURSOR = re.compile(rb'"nextCursor":\s*"([^"]+)"')


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str, host: str
) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 GET on an open connection (a minimal client: the load is the server's)."""
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    return status, await reader.readexactly(length)


async def load_http(base: str, seconds: float, workers: int) -> dict[str, Any]:
    """``workers`` keep-alive connections walking ``/v0.1/servers`` pages (30 each) for ``seconds``."""
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        cursor: bytes | None = None
        try:
            while time.monotonic() < stop:
                target = "/v0.1/servers?limit=30" + (f"&cursor={cursor.decode()}" if cursor else "")
                began = time.perf_counter()
                status, body = await _get(reader, writer, target, f"{host}:{port}")
                latencies.append((time.perf_counter() - began) * 1000)
                if status != 200:
                    errors += 1
                    continue
                found = _CURSOR.search(body, max(0, len(body) - 300))
                cursor = found.group(1) if found else None
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


def serve_registry(root: str, port: int, probe_interval: float, endpoints: str) -> None:
    """(Child process) serve the registry over ``root`` on ``port``, as the local developer."""
    import anyio

    from fleetdeck.settings import FleetdeckSettings
    from fleetdeck_registry.server import build_registry
    from fleetdeck_registry.settings import RegistrySettings

    data = tempfile.mkdtemp()
    settings = FleetdeckSettings.model_validate(
        {"data_dir": data, "log_level": "WARNING", "http": {"port": port}}
    )
    registry = RegistrySettings.model_validate(
        {
            "manifests_dir": root,
            "probe_interval_s": probe_interval,
            "endpoints": json.loads(endpoints),
            "probe_concurrency": 32,
            "probe_timeout_s": 20,
            "probe_enabled": bool(json.loads(endpoints)),
        }
    )
    anyio.run(build_registry(settings, registry).serve_http)


def serve_target(port: int) -> None:
    """(Child process) a real FleetServer with 20 tools that every probed entry points at."""
    import anyio

    from fleetdeck.auth.policy import AccessPolicy
    from fleetdeck.server import FleetServer
    from fleetdeck.settings import FleetdeckSettings
    from fleetdeck.tool import ServerInfo

    settings = FleetdeckSettings.model_validate(
        {"data_dir": tempfile.mkdtemp(), "log_level": "WARNING", "http": {"port": port}}
    )
    info = ServerInfo(
        name="target",
        registry_name="io.bench/target",
        title="t",
        description="d",
        version="1",
        owner_team="t",
        support_channel="#t",
        docs_url="https://x",
        data_classification="internal",
    )
    server = FleetServer(info, settings, access=AccessPolicy(business_groups=("*",)))
    for t in range(20):

        def tool(limit: int = 10) -> int:
            return limit

        tool.__doc__ = f"Bench tool {t}."
        server.tool(
            minutes_saved=1, read_only=True, destructive=False, idempotent=True, name=f"tool_{t:02d}"
        )(tool)
    anyio.run(server.serve_http)


async def bench_http(root: Path, seconds: float, workers: int) -> dict[str, Any]:
    from fleetdeck_testkit.backends import free_port

    port = free_port()
    child = spawn(["--serve-registry", str(root), str(port), "3600", "{}"], dict(os.environ))
    try:
        await wait_up(f"http://{HOST}:{port}/readyz")
        await load_http(f"http://{HOST}:{port}", 2, workers)  # warm up
        return await load_http(f"http://{HOST}:{port}", seconds, workers)
    finally:
        child.terminate()
        child.wait(30)


async def bench_probe(tmp: Path, count: int, interval_s: float) -> dict[str, Any]:
    from fleetdeck_testkit.backends import free_port

    root = tmp / "probe"
    root.mkdir()
    generate(root, count, 20)
    target_port, port = free_port(), free_port()
    endpoints = {f"srv{i:05d}": f"http://{HOST}:{target_port}/mcp" for i in range(count)}
    target = spawn(["--serve-target", str(target_port)], dict(os.environ))
    registry = None
    try:
        await wait_up(f"http://{HOST}:{target_port}/healthz")
        registry = spawn(
            ["--serve-registry", str(root), str(port), str(interval_s), json.dumps(endpoints)],
            dict(os.environ),
        )
        await wait_up(f"http://{HOST}:{port}/readyz")
        api = asyncio.create_task(load_http(f"http://{HOST}:{port}", interval_s, 4))
        health: dict[str, Any] = {}
        async with httpx2.AsyncClient(timeout=10) as client:
            end = time.monotonic() + interval_s * 2
            while time.monotonic() < end:
                health = (await client.get(f"http://{HOST}:{port}/api/health")).json()
                if health["probe"]["rounds"] >= 1:
                    break
                await asyncio.sleep(0.5)
        during = await api
        return {
            "servers": count,
            "interval_s": interval_s,
            "round_s": health["probe"]["last_round_s"],
            "api_during_round": during,
        }
    finally:
        for child in (registry, target):
            if child is not None:
                child.terminate()
                child.wait(30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--tools", type=int, default=20)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--probe-servers", type=int, default=200)
    parser.add_argument("--probe-interval", type=float, default=60)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        root = tmp / "catalog"
        root.mkdir()
        began = time.perf_counter()
        generate(root, args.servers, args.tools)
        print(f"generated {args.servers} servers x {args.tools} tools in {time.perf_counter() - began:.1f} s")
        results: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
        results["load_search"] = bench_load_and_search(root, args.queries)
        print(json.dumps(results["load_search"]))
        results["http"] = await bench_http(root, args.seconds, args.workers)
        print(json.dumps(results["http"]))
        results["probe"] = await bench_probe(tmp, args.probe_servers, args.probe_interval)
        print(json.dumps(results["probe"]))
    ls, http, probe = results["load_search"], results["http"], results["probe"]
    rows = [
        ("load 2,000 servers / 40,000 tools (wall)", f"{ls['load_s']} s", "< 5 s", ls["load_s"] < 5),
        ("  same load, CPU time of this process", f"{ls['load_cpu_s']} s", "< 5 s", ls["load_cpu_s"] < 5),
        ("search p99", f"{ls['search_p99_ms']} ms", "< 20 ms", ls["search_p99_ms"] < 20),
        ("/v0.1/servers pages", f"{http['req_per_s']} req/s", ">= 1000 req/s", http["req_per_s"] >= 1000),
        (
            f"probe round of {probe['servers']}",
            f"{round(probe['round_s'] or -1, 2)} s",
            f"< {probe['interval_s']} s",
            probe["round_s"] is not None and probe["round_s"] < probe["interval_s"],
        ),
        (
            "API p99 during the probe round",
            f"{probe['api_during_round']['p99_ms']} ms",
            "(not blocked)",
            True,
        ),
    ]
    print(f"load average at the end: {os.getloadavg()} (other processes share these cores)")
    print(f"{'measure':40} {'value':>16} {'target':>16}  ok")
    for name, value, target, ok in rows:
        print(f"{name:40} {value:>16} {target:>16}  {'yes' if ok else 'NO'}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-registry":
        serve_registry(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve-target":
        serve_target(int(sys.argv[2]))
    else:
        asyncio.run(main())

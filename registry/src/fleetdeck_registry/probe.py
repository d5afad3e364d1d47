"""Probe every catalogued server on a schedule: reachable, latency and its live ``tools/list``.

The registry calls each server with its own fixed identity (a configured bearer token and,
optionally, a workload proof header). It compares the live surface with the approved one *as that
identity may see it* (the declared tools filtered by :func:`fleetdeck.auth.policy.decide`, exactly
as the server filters ``tools/list``): a tool added, removed, or changed in description, schema or
annotations is drift; mere ordering is not (both sides are sorted by name).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Tool

from fleetdeck.auth.policy import decide
from fleetdeck.auth.principal import Principal
from fleetdeck.manifest.builder import live_surface
from fleetdeck.manifest.digest import diff_surfaces, surface_digest
from fleetdeck_registry.catalog import ServerEntry
from fleetdeck_registry.history import HistoryStore, ProbeResult
from fleetdeck_registry.state import RegistryState

logger = logging.getLogger(__name__)
MAX_PAGES = 50
ListTools = Callable[[str], Awaitable[list[Tool]]]


@dataclass(frozen=True, slots=True)
class ProbeIdentity:
    """Who the registry is when it probes: the headers it sends and the principal they prove."""

    headers: dict[str, str]
    principal: Principal


def expected_surface(entry: ServerEntry, principal: Principal) -> list[object]:
    """The approved tools ``principal`` may see, as canonical definitions."""
    return [
        tool.canonical()
        for tool in entry.tools
        if decide(principal, entry.tool_facts[tool.name], entry.access).allowed
    ]


def compare(entry: ServerEntry, live: list[Tool], principal: Principal) -> tuple[str, tuple[str, ...]]:
    """The live digest and the drift lines (empty: no drift) of ``live`` against ``entry``."""
    surface = live_surface(live, entry.tools)
    expected = expected_surface(entry, principal)
    lines = diff_surfaces([t for t in expected if isinstance(t, dict)], surface)
    return surface_digest(surface), tuple(lines)


class Prober:
    """Probes the servers of the current catalog every ``interval_s`` seconds."""

    def __init__(
        self,
        state: RegistryState,
        identity: ProbeIdentity,
        endpoints: dict[str, str],
        *,
        interval_s: float,
        timeout_s: float,
        concurrency: int,
        history: HistoryStore | None = None,
        keep: int = 500,
    ) -> None:
        self.state = state
        self.identity = identity
        self.endpoints = endpoints
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.history = history
        self.keep = keep
        self.rounds = 0
        self.last_round_s: float | None = None
        self._wake = anyio.Event()
        self._client: httpx2.AsyncClient | None = None

    def url_of(self, entry: ServerEntry) -> str | None:
        """Where to probe ``entry``: the configured endpoint, else the manifest's first remote."""
        if entry.key in self.endpoints:
            return self.endpoints[entry.key]
        return entry.manifest.remotes[0].url if entry.manifest.remotes else None

    def _http(self) -> httpx2.AsyncClient:
        """The HTTP client of the current round (shared: one connection pool, one TLS context)."""
        if self._client is None:
            limits = httpx2.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            )
            self._client = httpx2.AsyncClient(
                headers=self.identity.headers, timeout=self.timeout_s, limits=limits
            )
        return self._client

    async def list_tools(self, url: str) -> list[Tool]:
        """The live ``tools/list`` of the server at ``url`` (every page)."""
        async with Client(streamable_http_client(url, http_client=self._http())) as client:
            tools: list[Tool] = []
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                tools += page.tools
                cursor = page.next_cursor
                if not cursor:
                    break
            return tools

    async def probe(self, entry: ServerEntry) -> ProbeResult:
        """Probe one server; failures are results (unreachable, with the reason), never exceptions."""
        now, digest = time.time(), entry.manifest.digest
        url = self.url_of(entry)
        if url is None:
            return ProbeResult(entry.key, now, False, approved_digest=digest, error="no remote URL to probe")
        started = time.perf_counter()
        try:
            with anyio.fail_after(self.timeout_s):
                live = await self.list_tools(url)
        except Exception as exc:  # noqa: BLE001 - any failure of a remote server is its status
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            return ProbeResult(entry.key, now, False, approved_digest=digest, error=reason)
        latency = round((time.perf_counter() - started) * 1000, 2)
        live_digest, drift = compare(entry, live, self.identity.principal)
        return ProbeResult(entry.key, now, True, latency, len(live), live_digest, digest, drift)

    async def run_round(self) -> list[ProbeResult]:
        """Probe every server of the current catalog once, ``concurrency`` at a time."""
        entries = list(self.state.current.catalog.entries)
        results: list[ProbeResult] = []
        limiter = anyio.Semaphore(self.concurrency)
        started = time.perf_counter()

        async def one(entry: ServerEntry) -> None:
            async with limiter:
                result = await self.probe(entry)
            self.state.record(result)
            results.append(result)

        try:
            async with anyio.create_task_group() as group:
                for entry in entries:
                    group.start_soon(one, entry)
        finally:
            if self._client is not None:
                await self._client.aclose()
                self._client = None
        self.rounds += 1
        self.last_round_s = time.perf_counter() - started
        if self.history is not None:
            try:
                await anyio.to_thread.run_sync(self.history.record, results, self.keep)
            except Exception:
                logger.exception("probe history could not be written")
        return results

    def wake(self) -> None:
        """Start the next round now (e.g. after a reload changed a digest)."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Probe round after round; each round starts ``interval_s`` after the previous started."""
        while True:
            started = time.monotonic()
            await self.run_round()
            remaining = self.interval_s - (time.monotonic() - started)
            if remaining > 0:
                with anyio.move_on_after(remaining):
                    await self._wake.wait()
            self._wake = anyio.Event()

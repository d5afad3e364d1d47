"""The two servers ``bench_kit.py`` compares, each run in its own process.

Usage: ``python bench/servers_for_bench.py VARIANT FD DATA_DIR [--stateless] [--log-level L]``,
``VARIANT`` one of ``bare``, ``kit``, ``kit-auth``, ``kit-otel``.

``FD`` is a listening-ready TCP socket bound on loopback by the parent (inherited, so there is no
race for a free port). Every variant serves the same trivial async tool ``echo(text) -> str`` at
``/mcp`` over Streamable HTTP (SSE responses, the kit's default) under the same uvicorn settings:

- ``bare``: a plain ``mcp.server.MCPServer`` with the SDK's defaults for a loopback host, the same
  identity (name, title, description, website) the kit server reports, and log level WARNING: at the
  SDK's default INFO it renders a "Terminating session" line through ``rich`` after every stateless
  request (~1,300 Python frames, which the kit does not emit), and that CPU, spent just after bare's
  answer, would land on the kit's call that the client makes next.
- ``kit``: the tool through :class:`fleetdeck.server.FleetServer` with default settings in
  ``DATA_DIR``: the call gate (identity, access decision, audit, argument limit, telemetry), the
  tool wrapper and the background writers recording every call and every decision into
  ``DATA_DIR/telemetry.db`` (SQLite). Its start-up heap is frozen (``settle_heap``), as
  ``fleetdeck serve`` does: the kit's imports hold ~30,000 more objects than the bare SDK's, which
  every full collection would otherwise walk (~140 ms each here, every ~700 calls).
- ``kit-auth``: ``kit`` with the user layer on: ``FLEETDECK_AUTH__ISSUER`` / ``JWKS_URL`` in its
  environment (set by ``bench_kit.py``), so every request's bearer JWT is verified.
- ``kit-otel``: ``kit`` plus what ``fleetdeck serve`` installs without an ``otlp_endpoint``
  (``configure_observability``: the OpenTelemetry SDK's tracer provider, no exporter).

``--profile PATH``: SIGUSR1 starts ``cProfile`` on the event loop's thread, SIGUSR2 stops it and
writes the statistics to ``PATH`` (``bench_kit.py`` counts the function calls per tool call with it).

The kit's ``serve_http`` is not used because it binds by port and runs uvicorn at the settings'
log level (access log on at INFO); both servers here get the identical uvicorn configuration so
the comparison isolates the kit itself.
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import socket
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette

HOST = "127.0.0.1"
MAX_REQUEST_BYTES = 1_048_576  # the kit's default http.max_request_bytes, given to both
TITLE, DESCRIPTION = "Bench", "A trivial server for measuring the kit's overhead."
DOCS_URL = "https://example.invalid/bench"
"""The identity both variants report as ``serverInfo``: the SDK deep-copies it into every 2026-07-28
response (four Python frames per field), a cost of the identity, not of the kit."""


def build_bare(stateless: bool) -> Starlette:
    """A bare SDK server with one trivial tool."""
    from mcp.server import MCPServer

    server = MCPServer(
        "bench",
        title=TITLE,
        description=DESCRIPTION,
        website_url=DOCS_URL,
        version="0.0.0",
        log_level="WARNING",  # no per-request log line, as in the kit (see the module docstring)
    )

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=stateless,
        max_request_body_size=MAX_REQUEST_BYTES,
        host=HOST,
    )


def build_kit(data_dir: Path, port: int, stateless: bool, otel: bool) -> Starlette:
    """The same tool through the Fleetdeck kit, telemetry on (SQLite in ``data_dir``)."""
    from fleetdeck.auth.policy import AccessPolicy
    from fleetdeck.server import FleetServer
    from fleetdeck.settings import FleetdeckSettings
    from fleetdeck.tool import ServerInfo

    settings = FleetdeckSettings.load(
        data_dir=data_dir, http={"host": HOST, "port": port, "stateless": stateless}
    )
    if otel:
        from fleetdeck.observability import configure_observability

        configure_observability(settings, service="bench")
    info = ServerInfo(
        name="bench",
        registry_name="io.fleetdeck/bench",
        version="0.0.0",
        owner_team="platform",
        support_channel="#platform",
        title=TITLE,
        description=DESCRIPTION,
        docs_url=DOCS_URL,
        data_classification="internal",
    )
    server = FleetServer(info, settings, access=AccessPolicy(business_groups=("*",)))

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return server.http_app()


def profile_on_signals(path: Path) -> None:
    """SIGUSR1: start profiling this (the event loop's) thread; SIGUSR2: stop and write ``path``."""
    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variant", choices=["bare", "kit", "kit-auth", "kit-otel"])
    parser.add_argument("fd", type=int, help="inherited socket bound on loopback")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--stateless", action="store_true", help="stateless_http=True (legacy era only)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (access log stays off)")
    parser.add_argument("--profile", type=Path, help="profile between SIGUSR1 and SIGUSR2, write stats here")
    args = parser.parse_args()
    if args.profile:
        profile_on_signals(args.profile)

    sock = socket.socket(fileno=args.fd)
    port = sock.getsockname()[1]
    if args.variant == "bare":
        app = build_bare(args.stateless)
    else:
        from fleetdeck.server import settle_heap

        app = build_kit(args.data_dir, port, args.stateless, otel=args.variant == "kit-otel")
        settle_heap()  # as `fleetdeck serve` does once the server is built
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()

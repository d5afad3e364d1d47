"""Serve an ASGI app with uvicorn on a free loopback port inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from fleetdeck_testkit.backends import free_port

__all__ = ["free_port", "serving"]

START_TIMEOUT_S = 30.0


@asynccontextmanager
async def serving(app: ASGIApp, port: int, **options: Any) -> AsyncIterator[str]:
    """Run ``app`` on ``port`` (lifespan included) and yield its base URL; stop it on exit.

    ``options`` go to ``uvicorn.Config`` (e.g. the TLS ones of :func:`fleetdeck.mtls.uvicorn_tls_options`).
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn exited before it started")
                await asyncio.sleep(0.01)
        yield f"{'https' if options.get('ssl_certfile') else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task

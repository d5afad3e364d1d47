"""Headless Chromium for UI tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Never downloads a browser (``.ci/chromium.sh`` installs Debian's package). :func:`launch_chromium`
raises :class:`BackendStartError` when Chromium or Playwright cannot start, so a fixture can turn it
into :func:`~fleetdeck_testkit.backends.backend_unavailable` (skip by hand, fail under ``CI=true``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fleetdeck_testkit.backends import BackendStartError

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
LAUNCH_TIMEOUT_MS = 30_000


@asynccontextmanager
async def launch_chromium(executable: str = CHROMIUM) -> AsyncIterator[Browser]:
    """A headless Chromium browser for the block; closed (with its process) on exit."""
    if not os.access(executable, os.X_OK):
        raise BackendStartError(f"{executable} is missing: run .ci/chromium.sh (apt-get install chromium)")
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright
    except ImportError as exc:
        raise BackendStartError(f"the playwright package is not installed: {exc}") from exc
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=list(CHROMIUM_ARGS), headless=True, timeout=LAUNCH_TIMEOUT_MS
            )
        except PlaywrightError as exc:
            raise BackendStartError(f"Chromium did not start: {exc.message.splitlines()[0]}") from exc
        try:
            yield browser
        finally:
            await browser.close()

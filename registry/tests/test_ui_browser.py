"""The web UI in a real headless Chromium: search, open a server, see tools and status, see the ROI chart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from registry.tests.registry_helpers import make_registry, make_server, publish

from fleetdeck.errors import Outcome
from fleetdeck.telemetry.events import InvocationEvent
from fleetdeck.telemetry.store import EventStore
from fleetdeck_testkit.backends import BackendStartError, backend_unavailable
from fleetdeck_testkit.browser import launch_chromium
from fleetdeck_testkit.http import free_port, serving

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    try:
        async with launch_chromium() as started:
            yield started
    except BackendStartError as exc:
        backend_unavailable(str(exc))


def telemetry(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/t.db")
    store.create()
    now = time.time()
    events = [
        InvocationEvent(
            ts=now - 40 * 86400 * (i % 2),
            server="orders",
            tool="list_orders",
            team="orders-team",
            outcome=Outcome.OK,
            duration_ms=3.0,
            minutes_saved=30.0,
            user_hash=f"u{i % 3}",
        )
        for i in range(12)
    ]
    store.insert(events)
    store.dispose()


async def test_people_search_open_a_server_and_see_tools_status_and_roi(
    browser: Browser, tmp_path: Path, root: Path
) -> None:
    port = free_port()
    served = make_server(tmp_path, port=port)
    await publish(root, served)
    await publish(root, make_server(tmp_path, "billing"), approved=False)
    telemetry(tmp_path)
    async with serving(served.http_app(), port) as base:
        registry = make_registry(tmp_path, root, endpoints={"orders": f"{base}/mcp"})
        registry.probing = False
        async with serving(registry.http_app(), free_port()) as ui:
            await registry.prober.run_round()
            page: Page = await browser.new_page()
            await page.goto(f"{ui}/")
            await expect(page.locator("tr.server-row")).to_have_count(2)
            await page.get_by_label("Search servers and tools").fill("cancel order")
            await page.get_by_role("button", name="Search").click()
            await expect(page.locator(".tool-hits")).to_contain_text("cancel_order")
            await page.get_by_role("link", name="Orders server").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Orders server")
            await expect(page.locator("#live-status")).to_contain_text("up")
            await expect(page.locator("section.tool")).to_have_count(4)
            await expect(page.locator("#tool-cancel_order")).to_contain_text("human approval per call")
            await page.get_by_label("This tool saved me (minutes)").first.fill("12")
            await page.get_by_role("button", name="Send").first.click()
            await expect(page.get_by_role("status")).to_contain_text("feedback on cancel_order was recorded")
            await page.get_by_role("link", name="ROI").click()
            chart = page.get_by_role("img", name="Hours saved by month")
            await expect(chart).to_be_visible()
            assert await page.locator("svg.chart rect.bar").count() >= 2
            await expect(page.locator("table").last).to_contain_text("cancel_order")
            await page.get_by_role("link", name="Review queue").click()
            await expect(page.locator("main")).to_contain_text("io.fleetdeck/billing")

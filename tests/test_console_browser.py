"""The operations console in headless Chromium (the system's, driven by Playwright) against
a live API over the test database and Temporal, with the real worker: a warehouse key and a
finance key sign in, see the queues with two real holds, see only the decisions their role
may take, fix an address through the page (first refused by the order workflow, the
problem's detail shown, then accepted) and confirm a payment from the order page; both
orders move on to allocated. Screenshots: artifacts/console/ (printed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Page
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.ports import free_port
from runtime.settings import Settings
from tests.console_browser import chromium, new_page, ready, shot, sign_in, sign_out, system_chromium
from tests.factories import receive
from tests.live_api import live_api
from tests.orders_api import Headers, create, order_body

ADDRESS = "order-web-CON-1"
PAYMENT = "order-web-CON-2"
UI = "http://127.0.0.1:8233"


@pytest.fixture
def browser_path() -> str:
    path = system_chromium()
    if path is None:
        pytest.skip("no Chromium on PATH (tools/install_chromium.sh installs it where apt-get can)")
    return path


async def _order(api: httpx.AsyncClient, headers: Headers, order_id: str, done: Callable[[Any], bool]) -> Any:
    order: Any = {}
    for _ in range(300):
        order = (await api.get(f"/v1/orders/{order_id}", headers=headers)).json()
        if done(order):
            return order
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_id} never got there: {order}")


@pytest.fixture
async def held(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, worker: Worker
) -> dict[str, Headers]:
    """Two orders on hold: one for its address (postal code ABC), one for a pending payment."""
    await receive(engine, "TEE", "DC-EAST", 10)
    web = keys["web"]
    good = order_body()["ship_to"]
    bad = order_body("CON-1", ship_to={**good, "postal_code": "ABC"})
    pending = order_body(
        "CON-2", payment={"method": "invoice", "status": "pending", "amount": 0, "reference": ""}
    )
    for body in (bad, pending):
        assert (await create(api, web, body)).status_code == 202
    for order_id in (ADDRESS, PAYMENT):
        await _order(api, web, order_id, lambda o: o["status"] == "on_hold" and o["holds"])
    return keys


def _bearer(headers: Headers) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_a_hold_is_decided_through_the_console(
    api: httpx.AsyncClient,
    held: dict[str, Headers],
    settings: Settings,
    temporal_client: Client,
    browser_path: str,
) -> None:
    errors: list[str] = []
    configured = settings.model_copy(update={"temporal_ui_url": UI})
    async with live_api(configured, temporal_client) as base, chromium(browser_path) as browser:
        page = await new_page(browser, errors)
        await _a_bad_key_is_refused(page, base)
        await sign_in(page, base, _bearer(held["warehouse"]))
        await _warehouse_fixes_the_address(page, api, held)
        await sign_out(page)
        await sign_in(page, base, _bearer(held["finance"]))
        await _finance_confirms_the_payment(page, api, held)
        await ready(page, "#/exceptions")
        assert "No open exceptions" in await page.inner_text("main")
        await _kpis_are_charted(page)
    # The browser logs each 4xx it was answered: the bad key and the refused address, nothing else.
    refused = [e for e in errors if "the server responded with a status of" in e]
    assert [e for e in errors if e not in refused] == []
    assert [e.split("status of ")[1][:3] for e in refused] == ["401", "422"]


async def _a_bad_key_is_refused(page: Page, base: str) -> None:
    """With the API's own words."""
    await page.goto(f"{base}/console")
    await page.fill("form.signin input[name=key]", "omf_not_a_key")
    await page.click("form.signin button[type=submit]")
    assert "the API key is not valid" in await page.inner_text("form.signin .problem")


async def _warehouse_fixes_the_address(page: Page, api: httpx.AsyncClient, held: dict[str, Headers]) -> None:
    """Both queues shown; the warehouse may fix an address, not confirm a payment. A still bad
    postal code is refused by the workflow (422, its detail shown), then a good one clears it."""
    await page.wait_for_selector("section.queue[data-kind=address_invalid]")
    address_row = page.locator("section.queue[data-kind=address_invalid] tbody tr")
    payment_row = page.locator("section.queue[data-kind=payment_pending] tbody tr")
    assert await address_row.count() == 1 and await payment_row.count() == 1
    assert ADDRESS in await address_row.inner_text()
    assert "ok · due in" in await address_row.inner_text()  # SLA status
    assert await address_row.locator("button").all_inner_texts() == ["fix address", "cancel"]
    assert await payment_row.locator("button").count() == 0
    assert "decided by admin, approver, finance" in await payment_row.inner_text()
    await shot(page, "01-queue-warehouse")

    await address_row.locator("button[data-action=fix_address]").click()
    dialog = page.locator("dialog.decide")
    postal = dialog.locator("input[name='ship_to.postal_code']")
    assert await postal.input_value() == "ABC"  # the order's ship-to, to correct
    await postal.fill("1")
    await dialog.locator("button[type=submit]").click()
    problem = dialog.locator(".problem")
    await problem.wait_for()
    assert "the address still has problems" in await problem.inner_text()
    await shot(page, "02-decision-refused")
    await postal.fill("10001")
    await dialog.locator("textarea[name=note]").fill("customer confirmed by phone")
    await dialog.locator("button[type=submit]").click()
    await dialog.locator(".outcome .ok").wait_for()
    assert "resolved: fix_address by test warehouse" in await dialog.locator(".outcome").inner_text()
    await dialog.wait_for(state="detached")
    await page.wait_for_selector("section.queue[data-kind=address_invalid]", state="detached")
    order = await _order(api, held["web"], ADDRESS, lambda o: o["status"] == "allocated")
    assert order["ship_to"]["postal_code"] == "10001"
    params = {"subject_id": ADDRESS, "status": "resolved"}
    [exception] = (await api.get("/v1/exceptions", params=params, headers=held["admin"])).json()["items"]
    assert exception["resolution"]["note"] == "customer confirmed by phone"


async def _finance_confirms_the_payment(page: Page, api: httpx.AsyncClient, held: dict[str, Headers]) -> None:
    """From the order page, which links the workflow in the Temporal UI."""
    await ready(page, f"#/orders/{PAYMENT}")
    assert "on_hold" in await page.inner_text("main h1")
    link = page.locator("a.temporal")
    assert await link.get_attribute("href") == (
        f"{UI}/namespaces/default/workflows?query=WorkflowId%3D%22{PAYMENT}%22"
    )
    hold = page.locator("table.holds tbody tr")
    assert "payment pending" in await hold.inner_text()
    await shot(page, "03-order-on-hold")
    await hold.locator("button[data-action=confirm_payment]").click()
    dialog = page.locator("dialog.decide")
    await dialog.locator("select[name=status]").select_option("authorized")
    assert await dialog.locator("input[name=amount]").input_value() == "4500"  # the amount due
    await dialog.locator("input[name=reference]").fill("inv-77")
    await dialog.locator("button[type=submit]").click()
    await dialog.locator(".outcome .ok").wait_for()
    await dialog.wait_for(state="detached")
    await _order(api, held["web"], PAYMENT, lambda o: o["status"] == "allocated")
    await ready(page, f"#/orders/{PAYMENT}")
    assert "allocated" in await page.inner_text("main h1")
    assert "resolved" in await page.inner_text("table.holds")
    assert "DC-EAST" in await page.inner_text("table.shipments")
    assert "hold cleared" in await page.inner_text("ol.timeline")
    await shot(page, "04-order-allocated")


async def _sync_failed(api: httpx.AsyncClient, admin: Headers, env: WorkflowEnvironment) -> dict[str, Any]:
    """Wait, in skipped time (the publisher's retries back off on timers), for the open exception."""
    params = {"kind": "channel_sync_failed", "subject_id": "web"}
    for _ in range(200):
        items = (await api.get("/v1/exceptions", params=params, headers=admin)).json()["items"]
        if items:
            return dict(items[0])
        await env.sleep(5)
        await asyncio.sleep(0.05)
    raise AssertionError("channel_sync_failed never opened")


async def test_a_failing_channel_shows_channel_sync_failed_on_its_row_and_is_paused_from_it(
    api: httpx.AsyncClient,
    keys: dict[str, Headers],
    worker: Worker,
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    browser_path: str,
) -> None:
    """The web channel's webhook refuses connections (nothing listens on its port): its
    publishing row says failing, shows the open channel_sync_failed with its decisions (admin
    only), and pausing it from the row closes the exception and pauses the publisher."""
    admin = keys["admin"]
    nowhere = f"http://127.0.0.1:{free_port()}/hook"
    configured = settings.model_copy(update={"publish_fail_after_seconds": 1})
    errors: list[str] = []
    async with live_api(configured, temporal_env.client) as base, chromium(browser_path) as browser:
        async with httpx.AsyncClient(base_url=base, headers=admin, timeout=30) as live:
            r = await live.put("/v1/channels/web/publishing", json={"url": nowhere, "batch_ms": 0})
            assert r.status_code == 200, r.text
            exception = await _sync_failed(live, admin, temporal_env)
        page = await new_page(browser, errors)
        await sign_in(page, base, _bearer(keys["readonly"]))
        await ready(page, "#/channels")
        row = page.locator("tr[data-channel=web]")
        assert "failing for" in await row.inner_text()
        assert await row.locator("button").count() == 0  # readonly: sees the status, decides nothing
        await sign_out(page)
        await sign_in(page, base, _bearer(admin))
        await ready(page, "#/channels")
        assert "channel sync failed" in await row.inner_text()
        assert await row.locator("button").all_inner_texts() == ["retry now", "pause", "resync"]
        assert "no publishing target" in await page.inner_text("tr[data-channel=marketplace]")
        await shot(page, "06-channels-sync-failed")
        await row.locator("button[data-action=pause]").click()
        await page.locator("dialog.decide button[type=submit]").click()
        await page.locator("dialog.decide .outcome .ok").wait_for()
        await page.locator("dialog.decide").wait_for(state="detached")
        await ready(page, "#/channels")
        assert "paused" in await row.inner_text()
        assert "none" in await row.locator("td").nth(5).inner_text()
        await shot(page, "07-channels-paused")
    decided = (await api.get(f"/v1/exceptions/{exception['id']}", headers=admin)).json()
    assert (decided["status"], decided["resolution"]["action"]) == ("resolved", "pause")
    assert (await api.get("/v1/channels/web/publishing/status", headers=admin)).json()["paused"] is True
    # readonly may not list exceptions: the page says so (a 403 logged), nothing else failed.
    assert [e for e in errors if "status of 403" not in e and "status of 404" not in e] == []


async def _kpis_are_charted(page: Page) -> None:
    """GET /v1/reports/kpis for each of the last 24 hours: a card a KPI, a line where there
    is data (the two orders received this hour), "no data yet" where there is none."""
    await ready(page, "#/kpis?range=hours")
    cards = page.locator("figure.kpi")
    assert await cards.count() >= 5
    names = [await c.get_attribute("data-kpi") for c in await cards.all()]
    assert "fill_rate" in names
    assert await page.locator("figure.kpi svg.chart path.series").count() >= 1
    assert "no data yet" in await page.inner_text("main .kpis")
    # margin_by_channel's value is rows, one a channel and currency: charted a line a channel.
    # CON-1 came in captured (4,000 merchandise + 500 shipping), nothing shipped: margin 45.00.
    margin = page.locator("figure.kpi[data-kpi=margin_by_channel]")
    assert await margin.locator("svg.chart circle.point").count() == 1  # this hour's window
    assert await margin.locator(".latest").inner_text() == "web USD 45"
    assert await margin.locator(".legend").inner_text() == "web USD"
    await shot(page, "05-kpis-24h")

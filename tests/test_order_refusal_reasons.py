"""A line the rules refuse at sourcing says which rule on the order's timeline (issue 20):
through the API, the real worker and its activities. Each order here passes intake's
pre-filter (api.intake_refusal: the stock covered it when it came) and the stock changes
before its workflow sources it (the worker starts only then), as when a flash sale's buyers
race: a line whose units another channel's ring-fence now holds is refused by `ring_fence`,
the units the channel's safety stock now holds back by `safety_stock` (the rest of that line
is sold), and units that are not there by `atp`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from runtime.settings import Settings
from tests.factories import assert_inventory_clean, balance, receive, set_policy
from tests.orders_api import Headers, create, order_body
from tests.test_orders_api_workflow import _wait_for
from tests.workers import running_worker


@pytest.fixture
async def stocked(keys: dict[str, Headers], engine: AsyncEngine) -> dict[str, Headers]:
    """10 TEE at DC-EAST, 10 MUG at DC-WEST; no worker yet."""
    await receive(engine, "TEE", "DC-EAST", 10)
    await receive(engine, "MUG", "DC-WEST", 10)
    return keys


async def fence_and_hold_back(engine: AsyncEngine) -> None:
    """Every TEE at DC-EAST ring-fenced for the marketplace; web keeps 8 MUG back."""
    async with engine.begin() as conn:
        await set_policy(conn, "marketplace", "TEE", ringfence={"DC-EAST": 10})
        await set_policy(conn, "web", "MUG", safety=8)


async def place_then_source(
    api: httpx.AsyncClient,
    web: Headers,
    external_id: str,
    lines: list[dict[str, Any]],
    allow_split: bool = True,
) -> str:
    """Order on the web channel, no backorders: taken at intake (202), its workflow waiting."""
    paid = sum(ln["qty"] * ln["unit_price"] for ln in lines) + 500
    payment = {"method": "card", "status": "captured", "amount": paid, "reference": "ch_1"}
    body = order_body(
        external_id, lines=lines, allow_backorder=False, allow_split=allow_split, payment=payment
    )
    r = await create(api, web, body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


@pytest.mark.parametrize(
    ("sku", "qty", "sold", "reason"),
    [("TEE", 3, 0, "ring_fence"), ("MUG", 3, 2, "safety_stock"), ("TEE", 11, 0, "atp")],
)
async def test_a_line_refused_at_sourcing_names_the_rule_that_refused_it_on_the_order_timeline(
    api: httpx.AsyncClient,
    stocked: dict[str, Headers],
    engine: AsyncEngine,
    temporal_client: Client,
    settings: Settings,
    sku: str,
    qty: int,
    sold: int,
    reason: str,
) -> None:
    web = stocked["web"]
    order_id = await place_then_source(
        api, web, f"R-{reason}", [{"sku": sku, "qty": qty, "unit_price": 1000}]
    )
    await fence_and_hold_back(engine)
    async with running_worker(temporal_client, engine, settings):
        order = await _wait_for(api, web, order_id, lambda o: o["lines"][0]["cancelled"] > 0)
    refused = [e["detail"] for e in order["timeline"] if e["event"] == "line_refused"]
    assert order["lines"][0]["reserved"] == sold, refused
    assert refused == [{"line": "1", "sku": sku, "qty": qty - sold, "reason": reason, "outcome": "cancelled"}]
    location = "DC-EAST" if sku == "TEE" else "DC-WEST"
    assert await balance(engine, sku, location) == (10, sold)
    await assert_inventory_clean(engine)

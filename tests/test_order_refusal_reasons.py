"""A line the rules refuse says which rule on the order's timeline (issue 20): through the
API, the real worker and its activities, a line whose units another channel's ring-fence
holds is refused by `ring_fence`, the units the channel's safety stock holds back by
`safety_stock` (the rest of that line is sold), and units that are not there by `atp`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from tests.factories import assert_inventory_clean, balance, receive, set_policy
from tests.orders_api import Headers, create, order_body
from tests.test_orders_api_workflow import _wait_for


@pytest.fixture
async def fenced(keys: dict[str, Headers], engine: AsyncEngine, worker: Worker) -> dict[str, Headers]:
    """10 TEE at DC-EAST, all ring-fenced for the marketplace; 10 MUG at DC-WEST, web keeping
    8 of them back as safety stock."""
    await receive(engine, "TEE", "DC-EAST", 10)
    await receive(engine, "MUG", "DC-WEST", 10)
    async with engine.begin() as conn:
        await set_policy(conn, "marketplace", "TEE", ringfence={"DC-EAST": 10})
        await set_policy(conn, "web", "MUG", safety=8)
    return keys


async def _refused(
    api: httpx.AsyncClient, web: Headers, external_id: str, sku: str, qty: int
) -> tuple[int, list[Any]]:
    """Order `qty` of `sku` on the web channel, no backorders: the units reserved, and the
    order's `line_refused` events once what did not fit is cancelled."""
    lines = [{"sku": sku, "qty": qty, "unit_price": 1000}]
    payment = {"method": "card", "status": "captured", "amount": qty * 1000 + 500, "reference": "ch_1"}
    body = order_body(external_id, lines=lines, allow_backorder=False, payment=payment)
    assert (await create(api, web, body)).status_code == 202
    order = await _wait_for(api, web, f"order-web-{external_id}", lambda o: o["lines"][0]["cancelled"] > 0)
    return order["lines"][0]["reserved"], [
        e["detail"] for e in order["timeline"] if e["event"] == "line_refused"
    ]


@pytest.mark.parametrize(
    ("sku", "qty", "sold", "reason"),
    [("TEE", 3, 0, "ring_fence"), ("MUG", 3, 2, "safety_stock"), ("TEE", 11, 0, "atp")],
)
async def test_a_refused_line_names_the_rule_that_refused_it_on_the_order_timeline(
    api: httpx.AsyncClient,
    fenced: dict[str, Headers],
    engine: AsyncEngine,
    sku: str,
    qty: int,
    sold: int,
    reason: str,
) -> None:
    reserved, refused = await _refused(api, fenced["web"], f"R-{reason}", sku, qty)
    assert reserved == sold, refused
    assert refused == [{"line": "1", "sku": sku, "qty": qty - sold, "reason": reason, "outcome": "cancelled"}]
    location = "DC-EAST" if sku == "TEE" else "DC-WEST"
    assert await balance(engine, sku, location) == (10, sold)
    await assert_inventory_clean(engine)

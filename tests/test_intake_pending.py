"""Intake counts the orders taken and not sourced yet against the stock (issue 20): without
that, in a sale whose buyers arrive faster than the order workflows reserve, every buyer
passes intake while the stock still shows on the shelf, and is refused later at sourcing.
Through the real API on real Postgres, with no worker (so the orders taken stay `received`),
both ways an order on its way is known: this process's own note right after it is taken, and
a fresh read that finds it in Postgres. And `domain.atp.after_pending` on its own."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.atp import AvailabilitySnapshot, LocationStock, after_pending
from runtime.settings import Settings
from tests.factories import receive
from tests.orders_api import Headers
from tests.test_order_intake_refusal import body, post


async def test_units_an_order_on_its_way_will_reserve_are_not_promised_again(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, settings: Settings
) -> None:
    await receive(engine, "TEE", "DC-EAST", 3)
    await receive(engine, "MUG", "DC-EAST", 10)
    web, market = keys["web"], keys["marketplace"]
    assert (await post(api, web, body("P-1", "TEE", 2), "k-1")).status_code == 202
    # Within this process's reuse of its read: its own note of P-1 holds the 2 back.
    r = await post(api, web, body("P-2", "TEE", 2, allow_split=False), "k-2")
    assert r.status_code == 409, r.text
    assert r.json()["lines"] == [{"line": "1", "sku": "TEE", "qty": 2, "available": 1, "rule": "atp"}]
    # A fresh read finds P-1 in Postgres, still `received`; another channel is held back too,
    # and so is a kit that shares the component (a GIFT is 1 TEE + 2 MUG).
    await asyncio.sleep(settings.intake_stock_cache_seconds)
    assert (await post(api, market, body("P-3", "TEE", 1, channel="marketplace"), "k-3")).status_code == 202
    await asyncio.sleep(settings.intake_stock_cache_seconds)
    gift = await post(api, web, body("P-4", "GIFT", 1), "k-4")
    assert gift.status_code == 409, gift.text
    assert gift.json()["lines"][0]["available"] == 0


async def test_an_order_on_its_way_stops_holding_units_back_after_the_pending_window(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, settings: Settings
) -> None:
    await receive(engine, "TEE", "DC-EAST", 2)
    cache = api._transport.app.state.intake_stock  # type: ignore[attr-defined]
    assert (await post(api, keys["web"], body("W-1", "TEE", 2), "k-1")).status_code == 202
    cache.pending_window = 0.0  # as if W-1 had been taken longer ago than the window (its start lost)
    cache._taken.clear()
    await asyncio.sleep(settings.intake_stock_cache_seconds)
    assert (await post(api, keys["web"], body("W-2", "TEE", 2), "k-2")).status_code == 202


def test_after_pending_takes_what_the_channel_could_reserve_and_no_more() -> None:
    stock = {
        ("TEE", "EAST"): LocationStock(on_hand=5, reserved=0, fences={"market": 2}),
        ("TEE", "WEST"): LocationStock(on_hand=3, reserved=1),
    }
    snap = AvailabilitySnapshot(
        stock, {"web": ["EAST", "WEST"], "market": ["EAST"]}, {("web", "TEE"): 1}, {}, {"TEE"}
    )
    assert (snap.atp("web", "TEE"), snap.atp("market", "TEE")) == (4, 5)
    # From where the channel has most (EAST): which also leaves the marketplace, which ships
    # from EAST only, 2 fewer for the moment, though sourcing may take them from WEST.
    after = after_pending(snap, [("web", "TEE", 2)])
    assert (after.atp("web", "TEE"), after.atp("market", "TEE")) == (2, 3)
    # More than the channel's ATP: it takes only that (the rest is sourcing's to refuse); the
    # fence and the safety stock stay.
    after = after_pending(snap, [("web", "TEE", 50)])
    assert after.atp("web", "TEE") == 0
    assert after.atp("market", "TEE") == 2  # the 2 fenced at EAST: web took its 3 there, and 1 at WEST
    assert snap.atp("web", "TEE") == 4  # the snapshot given is not changed

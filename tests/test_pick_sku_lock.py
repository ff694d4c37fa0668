"""A short pick releases stock (the missing units leave sellable), so it takes the SKU
locks before its first write and waits for whoever holds them. Here another transaction
really holds TEE's lock on the real Postgres while the real pick step runs. (Every pick still
takes them: see docs/scaling.md, *The warehouse's steps*, for why a full pick without them
was measured and not kept.)"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.gateways import gateway_from_settings
from activities.orders import OrderActivities
from models.availability import lock_skus
from runtime.settings import Settings
from tests.factories import assert_inventory_clean, balance, wait_for_a_sku_lock
from tests.orders import recorded_tee_order, stocked_shop
from workflows.contracts import PickedLine, PickRequest, PickShipment, SourceOrder


@pytest.fixture
async def steps(engine: AsyncEngine, settings: Settings) -> OrderActivities:
    await stocked_shop(engine)  # 10 TEE at DC-EAST
    return OrderActivities(engine, gateway_from_settings(settings), None)


async def _allocated(steps: OrderActivities, external_id: str, qty: int) -> tuple[str, str]:
    order_id = await recorded_tee_order(steps, external_id, qty)
    sourced = await steps.source_order(SourceOrder(order_id, "source", []))
    return order_id, sourced.new_shipments[0]


async def test_a_short_pick_waits_for_the_sku_lock(steps: OrderActivities, engine: AsyncEngine) -> None:
    order_id, shipment_id = await _allocated(steps, "PICK-SHORT", 2)
    pick = PickShipment(order_id, PickRequest(shipment_id, [PickedLine("TEE", 1)]))
    async with engine.connect() as holder:
        tx = await holder.begin()
        await lock_skus(holder, ["TEE"])
        running = asyncio.ensure_future(steps.pick_shipment(pick))
        await wait_for_a_sku_lock(engine)  # the short pick waits for TEE's lock
        assert not running.done()
        await tx.rollback()
    picked = await asyncio.wait_for(running, timeout=10)
    assert sum(picked.short.values()) == 1
    assert await balance(engine, "TEE", "DC-EAST") == (9, 1)  # the missing unit left, its reservation too
    await assert_inventory_clean(engine)

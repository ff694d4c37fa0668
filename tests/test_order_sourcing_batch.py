"""Order sourcing reserves through the worker's ReservationBatcher (issue 20): concurrent
orders for one hot SKU are decided in one batch, each all-or-nothing with its own key and
refusal; and a step whose reservation committed in its batch while its own transaction did
not (the worker died in between) loses and doubles nothing on its next attempt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.gateways import gateway_from_settings
from activities.orders import OrderActivities
from models import shipment_store
from models.availability import lock_sku_set
from runtime.settings import Settings
from tests.factories import assert_inventory_clean, balance
from tests.orders import recorded_tee_order, stocked_shop
from worker import close_batcher, reservation_batcher
from workflows.contracts import OrderSnapshot, Sourced, SourceOrder


@pytest.fixture
async def steps(engine: AsyncEngine, settings: Settings) -> AsyncIterator[OrderActivities]:
    await stocked_shop(engine)  # 10 TEE at DC-EAST
    batcher = reservation_batcher(engine, settings)
    assert batcher is not None  # batching is on by default
    yield OrderActivities(engine, gateway_from_settings(settings), batcher)
    await close_batcher(batcher)


async def _refusals(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT order_id, detail->>'reason' AS reason FROM order_event WHERE event = 'line_refused'")
        )
        return {r.order_id: r.reason for r in rows}


async def test_concurrent_orders_for_one_sku_are_decided_in_one_batch_each_with_its_own_outcome(
    steps: OrderActivities,
) -> None:
    batcher = steps.batcher
    assert batcher is not None
    ids = [await recorded_tee_order(steps, f"HOT-{n}", 2) for n in range(9)]  # 18 tees asked, 10 there
    # The SKU's lock held elsewhere: the first batch (those already in the lane) waits for it,
    # the rest queue behind it and go as the next batch: 9 orders, 2 transactions.
    async with steps.engine.connect() as blocker:
        await blocker.begin()
        await lock_sku_set(blocker, {"TEE"})
        sourcing = [asyncio.ensure_future(steps.source_order(SourceOrder(i, "source", []))) for i in ids]
        for _ in range(1000):
            lanes = batcher._lanes.values()
            queued = sum(len(lane.queue) for lane in lanes)
            started = sum(n * k for n, k in batcher.batch_sizes.items())  # in flight
            if queued + started == len(ids):
                break
            await asyncio.sleep(0.01)
        await blocker.rollback()
    results = await asyncio.gather(*sourcing)
    sizes = batcher.batch_sizes
    assert sum(sizes.values()) == 2 and sum(n * k for n, k in sizes.items()) == len(ids), sizes
    allocated = [r for r in results if r.new_shipments]
    assert len(allocated) == 5  # 5 orders of 2: every tee sold, none twice, no order in part
    assert all(ln.reserved == 2 for r in allocated for ln in _order(r).lines)
    refused = [_order(r).order_id for r in results if not r.new_shipments]
    assert all(ln.reserved == 0 for r in results if not r.new_shipments for ln in _order(r).lines)
    assert await _refusals(steps.engine) == {i: "atp" for i in refused}
    assert await balance(steps.engine, "TEE", "DC-EAST") == (10, 10)
    async with steps.engine.connect() as conn:
        keys = (await conn.execute(text("SELECT DISTINCT key FROM reservation ORDER BY key"))).scalars().all()
    assert keys == sorted(f"{_order(r).order_id}:reserve:{r.new_shipments[0]}" for r in allocated)
    await assert_inventory_clean(steps.engine)


async def test_a_reservation_whose_step_did_not_commit_is_given_back_and_the_order_reserved_once(
    steps: OrderActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = await recorded_tee_order(steps, "CRASH-1", 3)
    real_insert = shipment_store.insert

    async def dies(*_: object) -> None:  # the worker dying after the batch, before the step's commit
        raise ConnectionError("worker gone")

    monkeypatch.setattr(shipment_store, "insert", dies)
    with pytest.raises(ConnectionError):
        await steps.source_order(SourceOrder(order_id, "source", []))
    assert await balance(steps.engine, "TEE", "DC-EAST") == (10, 3)  # committed in its batch
    async with steps.engine.connect() as conn:
        assert await shipment_store.of_order(conn, order_id) == []  # the step's transaction did not

    monkeypatch.setattr(shipment_store, "insert", real_insert)
    sourced = await steps.source_order(SourceOrder(order_id, "source", []))  # the activity's retry
    assert [ln.reserved for ln in _order(sourced).lines] == [3]
    assert await balance(steps.engine, "TEE", "DC-EAST") == (10, 3)  # not 6: reserved once
    async with steps.engine.connect() as conn:
        [shipment] = await shipment_store.of_order(conn, order_id)
        held: dict[str, int] = dict(
            (
                await conn.execute(
                    text("SELECT key, qty - released FROM reservation WHERE ref = :o"), {"o": order_id}
                )
            ).all()
        )
    assert shipment.reservation_key == f"{order_id}:reserve:{order_id}-S1.1"
    assert held == {f"{order_id}:reserve:{order_id}-S1": 0, shipment.reservation_key: 3}
    again = await steps.source_order(SourceOrder(order_id, "source", []))  # once more: the step is done
    assert again.new_shipments == sourced.new_shipments
    assert await balance(steps.engine, "TEE", "DC-EAST") == (10, 3)
    await assert_inventory_clean(steps.engine)


async def test_with_batching_off_each_step_reserves_in_its_own_transaction(
    steps: OrderActivities, settings: Settings
) -> None:
    off = OrderActivities(steps.engine, gateway_from_settings(settings), None)
    ids = [await recorded_tee_order(off, f"OFF-{n}", 2) for n in range(7)]
    results = await asyncio.gather(*(off.source_order(SourceOrder(i, "source", [])) for i in ids))
    assert sum(bool(r.new_shipments) for r in results) == 5
    assert len(await _refusals(off.engine)) == 2
    assert await balance(off.engine, "TEE", "DC-EAST") == (10, 10)
    await assert_inventory_clean(off.engine)


def _order(sourced: Sourced) -> OrderSnapshot:
    assert sourced.snapshot is not None  # `source_order` always answers the order
    return sourced.snapshot

"""The order workflow on the time-skipping test server with the real worker and Postgres:
the happy path, split shipments, short picks, cancels, drop-ship, kits, the flash sale. Holds,
escalation and default actions, backorders and pre-orders: tests/test_order_workflow_waits.py."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.worker import Worker

from runtime.settings import Settings
from tests.factories import assert_inventory_clean, balance, receive
from tests.orders import (
    exception_row,
    fulfil,
    ledger,
    open_exception,
    place_order,
    snapshot,
    stocked_shop,
    until,
)
from tests.test_replay import record_history
from workflows import search_attributes as sa
from workflows.contracts import CancelRequest, OrderSnapshot, Resolution, ShipmentAnswer


@pytest.fixture
async def shop(engine: AsyncEngine, worker: Worker) -> AsyncEngine:
    return await stocked_shop(engine)


async def test_an_order_is_reserved_picked_packed_shipped_captured_and_completed(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(shop, temporal_client, settings, "A-1", [("TEE", 2, 2000)], tax=300)
    snap = await until(h, lambda s: s.status == "allocated")
    assert [(s.location, s.status) for s in snap.shipments] == [("DC-EAST", "allocated")]
    assert await balance(shop, "TEE", "DC-EAST") == (10, 2)
    final = await fulfil(h, snap.shipments[0].id)
    assert final.status in ("shipped", "completed")
    result: OrderSnapshot = await temporal_client.get_workflow_handle(
        h.id, result_type=OrderSnapshot
    ).result()
    assert result.status == "completed"
    assert result.payment_status == "captured"
    assert await balance(shop, "TEE", "DC-EAST") == (8, 0)
    books = await ledger(shop, h.id)
    assert books["1000"] == 4000 + 500 + 300  # cash clearing: everything the customer paid
    assert books["4000"] == -4000 and books["4100"] == -500 and books["2200"] == -300
    assert books["5000"] == 2 * 1000  # COGS at the moving average cost
    attrs = (await h.describe()).typed_search_attributes
    assert (attrs.get(sa.OMNI_STATUS), attrs.get(sa.OMNI_CHANNEL)) == ("completed", "web")
    await record_history(temporal_client, h.id, "order-happy-path")
    await assert_inventory_clean(shop)


async def test_a_wrong_state_or_quantity_is_refused_before_any_work(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(shop, temporal_client, settings, "A-2", [("TEE", 2, 2000)])
    snap = await until(h, lambda s: s.status == "allocated")
    sid = snap.shipments[0].id
    from workflows.contracts import PackageIn, PackRequest, PickedLine, PickRequest, ShipRequest

    with pytest.raises(WorkflowUpdateFailedError) as wrong_state:
        await h.execute_update("ship", ShipRequest(sid, "UPS"))
    assert getattr(wrong_state.value.cause, "type", None) == "WrongState"
    with pytest.raises(WorkflowUpdateFailedError) as too_many:
        await h.execute_update("pick", PickRequest(sid, [PickedLine("TEE", 3)]))
    assert getattr(too_many.value.cause, "type", None) == "Invalid"
    await h.execute_update("pick", PickRequest(sid, [PickedLine("TEE", 2)]))
    with pytest.raises(WorkflowUpdateFailedError) as mismatch:
        await h.execute_update("pack", PackRequest(sid, [PackageIn(500, 100, 100, 100, {"TEE": 1})]))
    assert "packed 1, picked 2" in str(mismatch.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as heavy:
        await h.execute_update("pack", PackRequest(sid, [PackageIn(40_000, 100, 100, 100, {"TEE": 2})]))
    assert "over the ground limit" in str(heavy.value.cause)
    assert (await snapshot(h)).shipments[0].status == "picked"


async def test_an_order_splits_across_locations_and_completes_after_both_ship(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(
        shop, temporal_client, settings, "S-1", [("TEE", 1, 2000), ("MUG", 1, 1500)], tax=350
    )
    snap = await until(h, lambda s: s.status == "allocated")
    assert sorted(s.location for s in snap.shipments) == ["DC-EAST", "DC-WEST"]
    first = await fulfil(h, snap.shipments[0].id)
    assert first.status == "partially_shipped"
    await fulfil(h, snap.shipments[1].id)
    done = await until(h, lambda s: s.status == "completed")
    assert done.payment_status == "captured"
    books = await ledger(shop, h.id)
    assert books["1000"] == 2000 + 1500 + 500 + 350  # two captures add up to the order total exactly
    await record_history(temporal_client, h.id, "order-split-shipment")
    await assert_inventory_clean(shop)


async def test_a_short_pick_writes_off_the_missing_units_and_sources_them_elsewhere(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    await receive(shop, "TEE", "DC-WEST", 5)
    h = await place_order(shop, temporal_client, settings, "P-1", [("TEE", 4, 2000)])
    snap = await until(h, lambda s: s.status == "allocated")
    first = snap.shipments[0]
    assert first.location == "DC-EAST"
    await fulfil(h, first.id, short={"TEE": 1})
    snap = await until(h, lambda s: len(s.shipments) == 2)
    second = snap.shipments[1]
    assert (second.location, second.lines[0].qty) == ("DC-WEST", 1)
    assert await balance(shop, "TEE", "DC-EAST") == (6, 0)  # 10 − 3 shipped − 1 written off
    await fulfil(h, second.id)
    done = await until(h, lambda s: s.status == "completed")
    assert done.lines[0].shipped == 4
    await record_history(temporal_client, h.id, "order-short-pick-resourced")
    await assert_inventory_clean(shop)


async def test_a_short_pick_nobody_can_refill_waits_for_a_person(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(shop, temporal_client, settings, "P-2", [("TEE", 10, 2000)], allow_backorder=False)
    snap = await until(h, lambda s: s.status == "allocated")
    await fulfil(h, snap.shipments[0].id, short={"TEE": 2})
    exc = await open_exception(shop, h.id, "short_pick")
    assert exc.details["lines"] == {"1": 2}
    await h.execute_update("resolve_exception", Resolution(exc.id, "cancel", "customer agreed", "lead"))
    done = await until(h, lambda s: s.status == "completed")
    assert (done.lines[0].shipped, done.lines[0].cancelled) == (8, 2)
    books = await ledger(shop, h.id)
    assert books["4000"] == -8 * 2000  # only what shipped was captured
    await record_history(temporal_client, h.id, "order-short-pick-decided")
    await assert_inventory_clean(shop)


@pytest.mark.parametrize("stage", ["allocated", "picked", "packed"])
async def test_cancel_before_shipping_releases_stock_and_voids_the_payment(
    shop: AsyncEngine, temporal_client: Client, settings: Settings, stage: str
) -> None:
    from workflows.contracts import PackageIn, PackRequest, PickedLine, PickRequest

    h = await place_order(shop, temporal_client, settings, f"C-{stage}", [("TEE", 3, 2000)])
    snap = await until(h, lambda s: s.status == "allocated")
    sid = snap.shipments[0].id
    if stage in ("picked", "packed"):
        await h.execute_update("pick", PickRequest(sid, [PickedLine("TEE", 3)]))
    if stage == "packed":
        await h.execute_update("pack", PackRequest(sid, [PackageIn(900, 300, 200, 100, {"TEE": 3})]))
    result = await h.execute_update(
        "cancel", CancelRequest("customer changed their mind"), result_type=OrderSnapshot
    )
    assert result.status == "cancelled" and result.payment_status == "voided"
    assert [s.status for s in result.shipments] == ["cancelled"]
    assert await balance(shop, "TEE", "DC-EAST") == (10, 0)
    final = await temporal_client.get_workflow_handle(h.id).describe()
    assert final.status is not None
    await assert_inventory_clean(shop)


async def test_cancel_on_hold_and_while_awaiting_stock_and_refused_after_shipping(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    held = await place_order(shop, temporal_client, settings, "C-H", [("TEE", 1, 2000)], payment="pending")
    exc = await open_exception(shop, held.id, "payment_pending")
    out = await held.execute_update("cancel", CancelRequest("duplicate"), result_type=OrderSnapshot)
    assert out.status == "cancelled"
    assert (await exception_row(shop, exc.id)).status == "cancelled"

    waiting = await place_order(shop, temporal_client, settings, "C-W", [("COFFEE", 2, 900)])
    await until(waiting, lambda s: s.status == "awaiting_stock")
    out = await waiting.execute_update("cancel", CancelRequest("too slow"), result_type=OrderSnapshot)
    assert out.status == "cancelled" and out.lines[0].backordered == 0

    shipped = await place_order(shop, temporal_client, settings, "C-S", [("TEE", 2, 2000)])
    snap = await until(shipped, lambda s: s.status == "allocated")
    await fulfil(shipped, snap.shipments[0].id)
    await until(shipped, lambda s: s.status == "completed")
    from temporalio.service import RPCError

    with pytest.raises((RPCError, WorkflowUpdateFailedError)):  # a finished workflow refuses (API: 409)
        await shipped.execute_update("cancel", CancelRequest("late"))
    await assert_inventory_clean(shop)


async def test_a_partial_cancel_refunds_an_order_paid_up_front(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(
        shop,
        temporal_client,
        settings,
        "C-P",
        [("TEE", 2, 2000), ("MUG", 1, 1000)],
        payment="captured",
        tax=500,
    )
    await until(h, lambda s: s.status == "allocated")
    out = await h.execute_update("cancel", CancelRequest("one less", {"1": 1}), result_type=OrderSnapshot)
    assert out.lines[0].cancelled == 1 and out.payment_status == "partially_refunded"
    with pytest.raises(WorkflowUpdateFailedError):
        await h.execute_update("cancel", CancelRequest("too many", {"1": 5}))
    books = await ledger(shop, h.id)
    assert books["1000"] == 2000 * 2 + 1000 + 500 + 500 - (2000 + 200)  # refund: a unit and its tax share
    await assert_inventory_clean(shop)


async def test_drop_ship_lines_go_to_the_supplier_and_ship_on_its_confirmation(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    from tests.factories import add_location, add_sku
    from workflows.contracts import ShipRequest

    async with shop.begin() as conn:
        await add_sku(conn, "SOFA", unit_cost=30_000, price=80_000)
        await conn.execute(
            text(
                "INSERT INTO supplier (code, name, lead_time_days, dropship, created_at) "
                "VALUES ('ACME', 'Acme', 5, true, now())"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO supplier_item (supplier, sku, cost, moq, order_multiple) "
                "VALUES ('ACME', 'SOFA', 30000, 1, 1)"
            )
        )
        await add_location(conn, "DS-ACME", type="dropship")
        await conn.execute(text("UPDATE location SET supplier = 'ACME' WHERE code = 'DS-ACME'"))
        await conn.execute(text("INSERT INTO channel_location (channel, location) VALUES ('web', 'DS-ACME')"))
    h = await place_order(shop, temporal_client, settings, "DS-1", [("SOFA", 1, 80_000), ("TEE", 1, 2000)])
    snap = await until(h, lambda s: len(s.shipments) == 2)
    drop = next(s for s in snap.shipments if s.kind == "dropship")
    assert (drop.location, drop.status) == ("DS-ACME", "requested")
    await h.execute_update(
        "ship", ShipRequest(drop.id, "Freight Co", "ground", "FC-1"), result_type=ShipmentAnswer
    )
    await fulfil(h, next(s.id for s in snap.shipments if s.kind == "stock"))
    await until(h, lambda s: s.status == "completed")
    books = await ledger(shop, h.id)
    assert books["5000"] == 30_000 + 1000 and books["2100"] == -30_000  # supplier's cost, to be billed
    await assert_inventory_clean(shop)


async def test_a_kit_ships_whole_from_one_location(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    await receive(shop, "TEE", "DC-WEST", 3)
    h = await place_order(shop, temporal_client, settings, "K-1", [("GIFT", 2, 5000)])
    snap = await until(h, lambda s: s.status == "allocated")
    assert [(s.location, s.lines[0].qty) for s in snap.shipments] == [("DC-WEST", 2)]
    assert await balance(shop, "MUG", "DC-WEST") == (10, 4)
    await fulfil(h, snap.shipments[0].id)
    await until(h, lambda s: s.status == "completed")
    assert await balance(shop, "MUG", "DC-WEST") == (6, 0)
    await assert_inventory_clean(shop)


async def test_cancelling_the_rest_of_a_partly_shipped_order_completes_it_with_only_the_shipped_part_paid(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(
        shop, temporal_client, settings, "C-R", [("TEE", 1, 2000), ("MUG", 2, 1500)], tax=400
    )
    snap = await until(h, lambda s: len(s.shipments) == 2)
    east = next(s for s in snap.shipments if s.location == "DC-EAST")
    await fulfil(h, east.id)
    out = await h.execute_update("cancel", CancelRequest("rest not wanted"), result_type=OrderSnapshot)
    assert [(ln.shipped, ln.cancelled) for ln in out.lines] == [(1, 0), (0, 2)]
    done = await until(h, lambda s: s.status == "completed")
    assert done.payment_status == "captured"
    books = await ledger(shop, h.id)
    assert books["4000"] == -2000 and books["4100"] == -500  # the tee and the shipping, nothing for the mugs
    assert await balance(shop, "MUG", "DC-WEST") == (10, 0)
    await assert_inventory_clean(shop)


async def test_a_flash_sale_of_concurrent_orders_never_promises_a_unit_twice(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    import asyncio

    await receive(shop, "MUG", "DC-EAST", 2)  # 12 mugs in all, 40 buyers on two channels
    handles = await asyncio.gather(
        *(
            place_order(
                shop,
                temporal_client,
                settings,
                f"FS-{i}",
                [("MUG", 1, 1500)],
                allow_backorder=False,
                channel=("web", "marketplace")[i % 2],
                customer=f"fs-{i}",
            )
            for i in range(40)
        )
    )
    settled = [await until(h, lambda s: s.status in ("allocated", "cancelled"), timeout=60) for h in handles]
    assert sum(s.lines[0].reserved for s in settled) == 12
    assert sum(s.status == "cancelled" for s in settled) == 28
    assert await balance(shop, "MUG", "DC-WEST") == (10, 10)
    assert await balance(shop, "MUG", "DC-EAST") == (2, 2)
    # every buyer turned away was told why, on the order's timeline: the units were gone
    from sqlalchemy import text

    async with shop.connect() as conn:
        refused = (
            await conn.execute(
                text(
                    "SELECT order_id, detail FROM order_event WHERE event = 'line_refused' ORDER BY order_id"
                )
            )
        ).all()
    cancelled = sorted(h.id for h, s in zip(handles, settled, strict=True) if s.status == "cancelled")
    assert [r.order_id for r in refused] == cancelled
    assert {(r.detail["reason"], r.detail["outcome"], r.detail["qty"]) for r in refused} == {
        ("atp", "cancelled", 1)
    }
    await assert_inventory_clean(shop)

"""The order workflow where it waits, on the time-skipping test server with the real worker
and Postgres: holds (address, payment, fraud review) with their escalation and default
actions, backorders woken by stock or aged into a question, the backorder dispatcher, and
pre-orders. The rest of the order workflow: tests/test_order_workflow.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.settings import Settings
from tests.factories import assert_inventory_clean, atp, balance, receive
from tests.orders import (
    exception_row,
    fast_policy,
    open_exception,
    place_order,
    snapshot,
    stocked_shop,
    until,
)
from tests.test_replay import record_history
from workflows import search_attributes as sa
from workflows.contracts import CancelRequest, OrderSnapshot, Resolution, StockArrived


@pytest.fixture
async def shop(engine: AsyncEngine, worker: Worker) -> AsyncEngine:
    return await stocked_shop(engine)


async def test_a_bad_address_holds_the_order_until_it_is_fixed(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    bad = {
        "name": "Ada",
        "line1": "1 Main St",
        "city": "New York",
        "region": "XX",
        "postal_code": "1000",
        "country": "US",
    }
    h = await place_order(shop, temporal_client, settings, "H-1", [("TEE", 1, 2000)], ship_to=bad)
    exc = await open_exception(shop, h.id, "address_invalid")
    assert {p["field"] for p in exc.details["problems"]} == {"region", "postal_code"}
    snap = await until(h, lambda s: s.status == "on_hold")
    assert snap.shipments == []
    desc = await h.describe()
    assert desc.typed_search_attributes.get(sa.OMNI_EXCEPTION) == "address_invalid"
    from workflows.contracts import ShipToFix

    with pytest.raises(WorkflowUpdateFailedError) as still_bad:
        await h.execute_update("fix_ship_to", ShipToFix({**bad, "region": "NY"}))
    assert "postal_code" in str(still_bad.value.cause)
    await h.execute_update(
        "fix_ship_to",
        ShipToFix({**bad, "region": "NY", "postal_code": "10001"}, "cs-agent"),
        result_type=OrderSnapshot,
    )
    snap = await until(h, lambda s: s.status == "allocated")
    assert (await exception_row(shop, exc.id)).status == "resolved"
    desc = await h.describe()
    assert desc.typed_search_attributes.get(sa.OMNI_EXCEPTION) is None
    await h.execute_update("cancel", CancelRequest("test over"), result_type=OrderSnapshot)
    await until(h, lambda s: s.status == "cancelled")
    await record_history(temporal_client, h.id, "order-address-fixed-then-cancelled")


async def test_an_unpaid_order_escalates_at_each_sla_then_is_cancelled_at_the_limit(
    shop: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_order(
        shop,
        temporal_env.client,
        settings,
        "H-2",
        [("TEE", 1, 2000)],
        payment="pending",
        policies=fast_policy("payment_pending", "cancel", limit=2),
    )
    exc = await open_exception(shop, h.id, "payment_pending")
    await temporal_env.sleep(timedelta(seconds=3601))
    await until(h, lambda s: True)
    row = await exception_row(shop, exc.id)
    assert row.escalation_level >= 1
    await temporal_env.sleep(timedelta(seconds=2 * 3601))
    await until(h, lambda s: s.status == "cancelled")
    row = await exception_row(shop, exc.id)
    assert (row.status, row.escalation_level, row.resolved_by) == ("resolved", 2, "system:policy")
    await record_history(temporal_env.client, h.id, "order-unpaid-escalated-cancelled")
    assert await balance(shop, "TEE", "DC-EAST") == (10, 0)
    await assert_inventory_clean(shop)


async def test_a_payment_confirmation_releases_the_hold_and_is_authorized(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(shop, temporal_client, settings, "H-3", [("TEE", 1, 2000)], payment="pending")
    await open_exception(shop, h.id, "payment_pending")
    from workflows.contracts import PaymentConfirmation

    with pytest.raises(WorkflowUpdateFailedError):
        await h.execute_update("confirm_payment", PaymentConfirmation("pending", 2500, "r"))
    await h.execute_update(
        "confirm_payment", PaymentConfirmation("authorized", 2500, "psp-9"), result_type=OrderSnapshot
    )
    snap = await until(h, lambda s: s.status == "allocated")
    assert snap.payment_status == "authorized"


async def test_fraud_review_is_approved_by_a_person_or_cancelled_by_default(
    shop: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    elsewhere = {"name": "X", "line1": "1 Rue", "city": "Paris", "postal_code": "75001", "country": "FR"}
    h = await place_order(shop, temporal_env.client, settings, "F-1", [("TEE", 4, 20_000)], billing=elsewhere)
    exc = await open_exception(shop, h.id, "fraud_review")
    assert exc.details["score"] >= 50
    await h.execute_update("resolve_exception", Resolution(exc.id, "approve", "known customer", "analyst"))
    await until(h, lambda s: s.status == "allocated")

    h2 = await place_order(
        shop,
        temporal_env.client,
        settings,
        "F-2",
        [("TEE", 4, 20_000)],
        customer="c2",
        policies=fast_policy("fraud_review", "cancel", limit=0),
        billing=elsewhere,
    )
    await open_exception(shop, h2.id, "fraud_review")
    await temporal_env.sleep(timedelta(seconds=3601))
    result = await until(h2, lambda s: s.status == "cancelled")
    assert result.payment_status == "voided"


async def test_a_backorder_waits_and_is_woken_by_stock(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(shop, temporal_client, settings, "B-1", [("TEE", 12, 2000)], allow_split=True)
    snap = await until(h, lambda s: s.lines[0].backordered == 2)
    assert snap.lines[0].reserved == 10
    assert snap.status == "allocated"
    await receive(shop, "TEE", "DC-WEST", 5)
    await h.signal("stock_arrived", StockArrived(["TEE"]))
    snap = await until(h, lambda s: s.lines[0].backordered == 0)
    assert snap.lines[0].reserved == 12 and len(snap.shipments) == 2
    assert await atp(shop, "web", "TEE") == 3


async def test_a_backorder_past_its_age_asks_a_person_and_stock_withdraws_the_question(
    shop: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_order(
        shop,
        temporal_env.client,
        settings,
        "B-2",
        [("COFFEE", 3, 900)],
        aging_seconds=7200,
        recheck_seconds=3600,
    )
    await until(h, lambda s: s.status == "awaiting_stock")
    await temporal_env.sleep(timedelta(seconds=7300))
    exc = await open_exception(shop, h.id, "backorder_aging")
    assert exc.actions == ["keep_waiting", "cancel"]
    await receive(shop, "COFFEE", "DC-EAST", 3, lot="L1")
    await h.signal("stock_arrived", StockArrived(["COFFEE"]))
    await until(h, lambda s: s.status == "allocated")
    row = await exception_row(shop, exc.id)
    assert row.status == "cancelled"
    await h.execute_update("cancel", CancelRequest("test over"), result_type=OrderSnapshot)
    await record_history(temporal_env.client, h.id, "order-backorder-aging-withdrawn")


async def test_the_dispatcher_wakes_backorders_oldest_first_when_stock_arrives(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    from workflows.contracts import BACKORDER_DISPATCHER_ID, WakeInput

    first = await place_order(shop, temporal_client, settings, "D-1", [("COFFEE", 2, 900)])
    await until(first, lambda s: s.status == "awaiting_stock")
    second = await place_order(shop, temporal_client, settings, "D-2", [("COFFEE", 2, 900)], customer="c9")
    await until(second, lambda s: s.status == "awaiting_stock")
    dispatcher = await temporal_client.start_workflow(
        "BackorderDispatcher",
        WakeInput(wait_seconds=1),
        id=BACKORDER_DISPATCHER_ID,
        task_queue=settings.task_queue,
    )
    await receive(shop, "COFFEE", "DC-EAST", 2, lot="L7")  # enough for the oldest only
    snap = await until(first, lambda s: s.status == "allocated")
    assert snap.lines[0].reserved == 2
    assert (await snapshot(second)).status == "awaiting_stock"
    await receive(shop, "COFFEE", "DC-WEST", 2, lot="L8")
    await until(second, lambda s: s.status == "allocated")
    await dispatcher.terminate("test over")
    await record_history(temporal_client, dispatcher.id, "backorder-dispatcher")
    for h in (first, second):
        await h.execute_update("cancel", CancelRequest("test over"), result_type=OrderSnapshot)
    await assert_inventory_clean(shop)


async def test_a_pre_order_waits_for_the_release_date(
    shop: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with shop.begin() as conn:
        await conn.execute(text("UPDATE sku SET release_at = now() + interval '2 days' WHERE code = 'MUG'"))
    h = await place_order(shop, temporal_env.client, settings, "PRE-1", [("MUG", 1, 1500)])
    snap = await until(h, lambda s: s.status == "awaiting_stock")
    assert snap.lines[0].backordered == 1 and snap.shipments == []
    async with shop.begin() as conn:  # the test server's clock skips; the database's does not
        await conn.execute(text("UPDATE sku SET release_at = now() - interval '1 second' WHERE code = 'MUG'"))
    await temporal_env.sleep(timedelta(days=2, seconds=5))
    snap = await until(h, lambda s: s.status == "allocated")
    assert snap.shipments[0].location == "DC-WEST"
    await h.execute_update("cancel", CancelRequest("test over"), result_type=OrderSnapshot)

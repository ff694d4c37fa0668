"""The order workflow on the time-skipping test server with the real worker and Postgres:
the happy path, holds, escalation and default actions, backorders, short picks, cancels."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.settings import Settings
from tests.factories import assert_inventory_clean, atp, balance, receive, standard_catalog
from tests.orders import fulfil, open_exception, place_order, snapshot, until
from workflows import search_attributes as sa
from workflows.contracts import CancelRequest, ExceptionPolicyInput, OrderSnapshot, Resolution


@pytest.fixture
async def shop(engine: AsyncEngine, worker: Worker) -> AsyncEngine:
    await standard_catalog(engine)
    await receive(engine, "TEE", "DC-EAST", 10)
    await receive(engine, "MUG", "DC-WEST", 10)
    return engine


async def _ledger(engine: AsyncEngine, ref: str) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT l.account, sum(l.debit) - sum(l.credit) AS net FROM journal_line l JOIN journal_entry e"
            " ON e.id = l.entry_id WHERE e.ref = :r GROUP BY l.account"), {"r": ref})  # fmt: skip
        return {r.account: int(r.net) for r in rows}


async def test_an_order_is_reserved_picked_packed_shipped_captured_and_completed(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(shop, temporal_client, settings, "A-1", [("TEE", 2, 2000)], tax=300)
    snap = await until(h, lambda s: s.status == "allocated")
    assert [(s.location, s.status) for s in snap.shipments] == [("DC-EAST", "allocated")]
    assert await balance(shop, "TEE", "DC-EAST") == (10, 2)
    final = await fulfil(h, snap.shipments[0].id)
    assert final.status in ("shipped", "completed")
    result: OrderSnapshot = await temporal_client.get_workflow_handle(h.id, result_type=OrderSnapshot).result()
    assert result.status == "completed"
    assert result.payment_status == "captured"
    assert await balance(shop, "TEE", "DC-EAST") == (8, 0)
    books = await _ledger(shop, h.id)
    assert books["1000"] == 4000 + 500 + 300  # cash clearing: everything the customer paid
    assert books["4000"] == -4000 and books["4100"] == -500 and books["2200"] == -300
    assert books["5000"] == 2 * 1000  # COGS at the moving average cost
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
    assert wrong_state.value.cause.type == "WrongState"  # type: ignore[union-attr]
    with pytest.raises(WorkflowUpdateFailedError) as too_many:
        await h.execute_update("pick", PickRequest(sid, [PickedLine("TEE", 3)]))
    assert too_many.value.cause.type == "Invalid"  # type: ignore[union-attr]
    await h.execute_update("pick", PickRequest(sid, [PickedLine("TEE", 2)]))
    with pytest.raises(WorkflowUpdateFailedError) as mismatch:
        await h.execute_update("pack", PackRequest(sid, [PackageIn(500, 100, 100, 100, {"TEE": 1})]))
    assert "packed 1, picked 2" in str(mismatch.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as heavy:
        await h.execute_update("pack", PackRequest(sid, [PackageIn(40_000, 100, 100, 100, {"TEE": 2})]))
    assert "over the ground limit" in str(heavy.value.cause)
    assert (await snapshot(h)).shipments[0].status == "picked"

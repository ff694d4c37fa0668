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


def _fast(kind: str, default: str, limit: int = 1) -> dict[str, ExceptionPolicyInput]:
    return {kind: ExceptionPolicyInput(sla_seconds=3600, max_escalations=limit, default_action=default)}


async def _exception_row(engine: AsyncEngine, exception_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT * FROM exception WHERE id = :i"), {"i": exception_id})).one()


async def test_a_bad_address_holds_the_order_until_it_is_fixed(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    bad = {"name": "Ada", "line1": "1 Main St", "city": "New York", "region": "XX", "postal_code": "1000",
           "country": "US"}  # fmt: skip
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
    await h.execute_update("fix_ship_to", ShipToFix({**bad, "region": "NY", "postal_code": "10001"}, "cs-agent"),
                           result_type=OrderSnapshot)  # fmt: skip
    snap = await until(h, lambda s: s.status == "allocated")
    assert (await _exception_row(shop, exc.id)).status == "resolved"
    desc = await h.describe()
    assert desc.typed_search_attributes.get(sa.OMNI_EXCEPTION) == ""


async def test_an_unpaid_order_escalates_at_each_sla_then_is_cancelled_at_the_limit(
    shop: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_order(shop, temporal_env.client, settings, "H-2", [("TEE", 1, 2000)], payment="pending",
                          policies=_fast("payment_pending", "cancel", limit=2))  # fmt: skip
    exc = await open_exception(shop, h.id, "payment_pending")
    await temporal_env.sleep(timedelta(seconds=3601))
    await until(h, lambda s: True)
    row = await _exception_row(shop, exc.id)
    assert row.escalation_level >= 1
    await temporal_env.sleep(timedelta(seconds=2 * 3601))
    result = await until(h, lambda s: s.status == "cancelled")
    row = await _exception_row(shop, exc.id)
    assert (row.status, row.escalation_level, row.resolved_by) == ("resolved", 2, "system:policy")
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
    await h.execute_update("confirm_payment", PaymentConfirmation("authorized", 2500, "psp-9"), result_type=OrderSnapshot)
    snap = await until(h, lambda s: s.status == "allocated")
    assert snap.payment_status == "authorized"


async def test_fraud_review_is_approved_by_a_person_or_cancelled_by_default(
    shop: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    elsewhere = {"name": "X", "line1": "1 Rue", "city": "Paris", "postal_code": "75001", "country": "FR"}
    risky = dict(billing=elsewhere, tax=0)
    h = await place_order(shop, temporal_env.client, settings, "F-1", [("TEE", 4, 20_000)], **risky)  # type: ignore[arg-type]
    exc = await open_exception(shop, h.id, "fraud_review")
    assert exc.details["score"] >= 50
    await h.execute_update("resolve_exception", Resolution(exc.id, "approve", "known customer", "analyst"))
    await until(h, lambda s: s.status == "allocated")

    h2 = await place_order(shop, temporal_env.client, settings, "F-2", [("TEE", 4, 20_000)], customer="c2",
                           policies=_fast("fraud_review", "cancel", limit=0), **risky)  # type: ignore[arg-type]
    await open_exception(shop, h2.id, "fraud_review")
    await temporal_env.sleep(timedelta(seconds=3601))
    result = await until(h2, lambda s: s.status == "cancelled")
    assert result.payment_status == "voided"

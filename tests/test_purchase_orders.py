"""The purchase-order workflow on the time-skipping test server with the real worker and
Postgres: sent at once or after approval, confirmation (and its timeout), partial receipts
into stock at PO cost, discrepancies and their actions, QC, the three-way match, cancel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.posting import (
    ACCOUNTS_PAYABLE,
    GOODS_RECEIVED_NOT_INVOICED,
    INVENTORY,
    PURCHASE_PRICE_VARIANCE,
    SHRINKAGE,
)
from runtime.settings import Settings
from tests.factories import assert_inventory_clean, balance, standard_catalog
from tests.orders import ledger
from tests.purchase_orders import (
    add_item,
    add_supplier,
    once_open,
    open_exception_of,
    place_po,
    po_when,
)
from tests.test_replay import record_history
from workflows.contracts import (
    ApprovalDecision,
    BillLine,
    CancelPurchase,
    ConfirmedLine,
    ExceptionPolicyInput,
    QcLine,
    QcRequest,
    Receipt,
    ReceiptLine,
    Resolution,
    SupplierConfirmation,
    VendorBillIn,
)
from workflows.purchase_order import PurchaseOrderWorkflow as PO


@pytest.fixture
async def buyer(engine: AsyncEngine, worker: Worker) -> AsyncEngine:
    await standard_catalog(engine)
    await add_supplier(engine)
    await add_item(engine, "TEE", 1000)
    await add_item(engine, "MUG", 400, inspect=True)
    await add_item(engine, "COFFEE", 500)
    return engine


async def test_a_po_is_sent_confirmed_received_in_parts_billed_and_closed(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-1", [("TEE", 10, 1000)])
    snap = await po_when(h, lambda s: s.status == "sent")
    assert await balance(buyer, "TEE", "DC-EAST", "inbound") == (10, 0)
    confirm = SupplierConfirmation(
        [ConfirmedLine("TEE", 8, (datetime.now(UTC) + timedelta(days=3)).isoformat())]
    )
    snap = await h.execute_update(PO.confirm, confirm)
    assert snap.status == "confirmed" and snap.lines[0].confirmed == 8
    assert await balance(buyer, "TEE", "DC-EAST", "inbound") == (8, 0)  # the supplier sends 8, not 10
    await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("TEE", 5)]))
    snap = await h.execute_update(PO.receive, Receipt("R-2", [ReceiptLine("TEE", 3)]))
    assert snap.status == "received" and snap.lines[0].received == 8
    assert await balance(buyer, "TEE", "DC-EAST") == (8, 0)
    assert await balance(buyer, "TEE", "DC-EAST", "inbound") == (0, 0)
    await h.execute_update(PO.bill, VendorBillIn("INV-1", [BillLine("TEE", 8, 1010)]))  # 1 % over: within 2 %
    result = await h.result()
    assert result.status == "closed"
    books = await ledger(buyer, "po-P-1")
    assert books[INVENTORY] == 8 * 1000
    assert books.get(GOODS_RECEIVED_NOT_INVOICED, 0) == 0  # received, then billed
    assert books[ACCOUNTS_PAYABLE] == -8 * 1010 and books[PURCHASE_PRICE_VARIANCE] == 8 * 10
    await record_history(temporal_env.client, h.id, "po-received-billed-closed")
    await assert_inventory_clean(buyer)


async def test_a_receipt_replayed_by_its_number_posts_once(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-2", [("TEE", 4, 1000)])
    await po_when(h, lambda s: s.status == "sent")
    first = await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("TEE", 2)]))
    again = await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("TEE", 2)]))
    assert first.lines[0].received == again.lines[0].received == 2
    assert await balance(buyer, "TEE", "DC-EAST") == (2, 0)
    await h.execute_update(PO.cancel, CancelPurchase("the rest is not needed"))
    snap = await po_when(h, lambda s: s.lines[0].closed == 2)
    assert snap.status == "received"
    assert await balance(buyer, "TEE", "DC-EAST", "inbound") == (0, 0)
    await assert_inventory_clean(buyer)


async def test_over_the_threshold_a_po_waits_for_approval_and_a_rejection_cancels_it(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-3", [("TEE", 600, 1000)], approval=True)
    await po_when(h, lambda s: s.status == "awaiting_approval")
    await open_exception_of(buyer, "P-3", "po_approval")
    for _ in range(200):  # until the workflow has the exception open (WrongState before)
        with pytest.raises(WorkflowUpdateFailedError) as no_reason:
            await h.execute_update(PO.decide_approval, ApprovalDecision(False))
        if getattr(no_reason.value.cause, "type", None) != "WrongState":
            break
        await asyncio.sleep(0.02)
    assert getattr(no_reason.value.cause, "type", None) == "Invalid"
    await once_open(h, PO.decide_approval, ApprovalDecision(False, "too much", "ana"))
    result = await h.result()
    assert result.status == "cancelled"
    assert await balance(buyer, "TEE", "DC-EAST", "inbound") == (0, 0)
    await record_history(temporal_env.client, h.id, "po-approval-rejected")


async def test_an_approved_po_is_sent(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-4", [("TEE", 600, 1000)], approval=True)
    await open_exception_of(buyer, "P-4", "po_approval")
    snap = await once_open(h, PO.decide_approval, ApprovalDecision(True, "ok", "ana"))
    assert snap.status == "sent"
    await h.execute_update(PO.cancel, CancelPurchase("test over"))
    assert (await h.result()).status == "cancelled"


async def test_a_supplier_that_never_confirms_is_asked_about_and_cancelled(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    policy = ExceptionPolicyInput(sla_seconds=3600, max_escalations=1, default_action="cancel")
    h = await place_po(
        buyer,
        temporal_env.client,
        settings,
        "P-5",
        [("TEE", 5, 1000)],
        policies={"supplier_unconfirmed": policy},
    )
    result = await h.result()  # time skips: the SLA, the exception, one escalation, the default
    assert result.status == "cancelled"
    assert await balance(buyer, "TEE", "DC-EAST", "inbound") == (0, 0)
    await record_history(temporal_env.client, h.id, "po-unconfirmed-cancelled")


async def test_damaged_and_over_received_units_go_back_to_the_supplier(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-6", [("TEE", 10, 1000)])
    await po_when(h, lambda s: s.status == "sent")
    await h.execute_update(
        PO.receive, Receipt("R-1", [ReceiptLine("TEE", 12, 1)])
    )  # 10 expected, 5 % tolerance
    exc = await open_exception_of(buyer, "P-6", "receipt_discrepancy")
    assert exc.details["over"] == {"TEE": 2} and exc.details["damaged"] == {"TEE": 1}
    await once_open(h, "resolve_exception", Resolution(exc.id, "return_to_vendor", "send back", "ana"))
    snap = await po_when(h, lambda s: s.lines[0].returned == 2)
    assert await balance(buyer, "TEE", "DC-EAST") == (10, 0)
    assert await balance(buyer, "TEE", "DC-EAST", "damaged") == (0, 0)
    books = await ledger(buyer, "po-P-6")
    assert books[INVENTORY] == 10 * 1000 and books[GOODS_RECEIVED_NOT_INVOICED] == -10 * 1000
    assert snap.lines[0].received == 12
    await h.execute_update(PO.bill, VendorBillIn("INV-6", [BillLine("TEE", 10, 1000)]))
    assert (await h.result()).status == "closed"
    await record_history(temporal_env.client, h.id, "po-discrepancy-returned")
    await assert_inventory_clean(buyer)


async def test_damaged_units_written_off_are_shrinkage(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-7", [("TEE", 4, 1000)])
    await po_when(h, lambda s: s.status == "sent")
    await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("TEE", 3, 1)], final=True))
    exc = await open_exception_of(buyer, "P-7", "receipt_discrepancy")
    await once_open(h, "resolve_exception", Resolution(exc.id, "write_off", "broken", "ana"))
    await po_when(h, lambda s: s.status == "received")
    books = await ledger(buyer, "po-P-7")
    assert books[SHRINKAGE] == 1000 and books[INVENTORY] == 3 * 1000
    assert await balance(buyer, "TEE", "DC-EAST", "damaged") == (0, 0)
    await assert_inventory_clean(buyer)


async def test_inspected_units_wait_in_quarantine_until_qc(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-8", [("MUG", 5, 400)])
    await po_when(h, lambda s: s.status == "sent")
    await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("MUG", 5)]))
    assert await balance(buyer, "MUG", "DC-EAST", "quarantine") == (5, 0)
    with pytest.raises(WorkflowUpdateFailedError) as too_many:
        await h.execute_update(PO.inspect, QcRequest([QcLine("MUG", 6, "pass")]))
    assert getattr(too_many.value.cause, "type", None) == "WrongState"
    await h.execute_update(
        PO.inspect, QcRequest([QcLine("MUG", 4, "pass"), QcLine("MUG", 1, "fail", "scrap")])
    )
    assert await balance(buyer, "MUG", "DC-EAST") == (4, 0)
    assert await balance(buyer, "MUG", "DC-EAST", "quarantine") == (0, 0)
    await h.execute_update(PO.bill, VendorBillIn("INV-8", [BillLine("MUG", 4, 400)]))
    assert (await h.result()).status == "closed"
    await assert_inventory_clean(buyer)


async def test_a_bill_outside_the_tolerances_waits_for_finance(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-9", [("TEE", 5, 1000)])
    await po_when(h, lambda s: s.status == "sent")
    await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("TEE", 5)]))
    await h.execute_update(
        PO.bill, VendorBillIn("INV-9", [BillLine("TEE", 7, 1200)])
    )  # 2 units and 20 % over
    exc = await open_exception_of(buyer, "P-9", "bill_mismatch")
    assert {m["rule"] for m in exc.details["mismatches"]} == {"quantity", "price"}
    again = await h.execute_update(
        PO.bill, VendorBillIn("INV-9", [BillLine("TEE", 7, 1200)])
    )  # a retry: its answer
    assert again.lines[0].billed == 0
    with pytest.raises(WorkflowUpdateFailedError) as other:
        await h.execute_update(PO.bill, VendorBillIn("INV-9", [BillLine("TEE", 1, 1000)]))  # posts once
    assert getattr(other.value.cause, "type", None) == "WrongState"
    await once_open(h, "resolve_exception", Resolution(exc.id, "accept", "agreed", "fin"))
    assert (await h.result()).status == "closed"
    books = await ledger(buyer, "po-P-9")
    assert books[ACCOUNTS_PAYABLE] == -5 * 1200  # never more units than were received
    assert books[PURCHASE_PRICE_VARIANCE] == 5 * 200
    await record_history(temporal_env.client, h.id, "po-bill-mismatch-accepted")
    await assert_inventory_clean(buyer)


async def test_a_lot_tracked_receipt_names_its_lot_and_expiry(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-10", [("COFFEE", 3, 500)])
    await po_when(h, lambda s: s.status == "sent")
    with pytest.raises(WorkflowUpdateFailedError) as no_lot:
        await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("COFFEE", 3)]))
    assert getattr(no_lot.value.cause, "type", None) == "Invalid"
    expiry = (datetime.now(UTC) + timedelta(days=200)).isoformat()
    await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("COFFEE", 3, 0, "L1", expiry)]))
    assert await balance(buyer, "COFFEE", "DC-EAST", lot="L1") == (3, 0)
    await assert_inventory_clean(buyer)


async def test_an_accepted_discrepancy_keeps_the_over_and_damaged_units_and_closes_the_short(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-11", [("TEE", 10, 1000), ("MUG", 4, 400)])
    await po_when(h, lambda s: s.status == "sent")
    # TEE: 12 good of 10 (over the 5 % tolerance) and 1 damaged; MUG: 3 of 4 on a final receipt
    await h.execute_update(
        PO.receive, Receipt("R-1", [ReceiptLine("TEE", 12, 1), ReceiptLine("MUG", 3)], final=True)
    )
    exc = await open_exception_of(buyer, "P-11", "receipt_discrepancy")
    assert exc.details["over"] == {"TEE": 2} and exc.details["damaged"] == {"TEE": 1}
    await once_open(h, "resolve_exception", Resolution(exc.id, "accept", "keep them", "ana"))
    snap = await po_when(h, lambda s: s.status == "received")
    by_sku = {ln.sku: ln for ln in snap.lines}
    tee, mug = by_sku["TEE"], by_sku["MUG"]
    assert (tee.received, tee.damaged, tee.returned, tee.closed) == (12, 1, 0, 0)
    assert (mug.received, mug.closed) == (3, 1)  # the short unit is no longer expected
    assert await balance(buyer, "TEE", "DC-EAST") == (12, 0)  # the damaged unit came on top
    assert await balance(buyer, "TEE", "DC-EAST", "damaged") == (1, 0)
    assert await balance(buyer, "TEE", "DC-EAST", "inbound") == (0, 0)
    assert await balance(buyer, "MUG", "DC-EAST", "inbound") == (0, 0)
    assert await balance(buyer, "MUG", "DC-EAST", "quarantine") == (3, 0)  # MUG is inspected
    await assert_inventory_clean(buyer)


async def test_units_failing_qc_go_back_to_the_supplier(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    h = await place_po(buyer, temporal_env.client, settings, "P-12", [("MUG", 5, 400)])
    await po_when(h, lambda s: s.status == "sent")
    await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("MUG", 5)]))
    snap = await h.execute_update(
        PO.inspect, QcRequest([QcLine("MUG", 3, "pass"), QcLine("MUG", 2, "fail", "return_to_vendor")])
    )
    assert snap.lines[0].rejected == 2
    assert await balance(buyer, "MUG", "DC-EAST") == (3, 0)
    assert await balance(buyer, "MUG", "DC-EAST", "quarantine") == (0, 0)
    books = await ledger(buyer, "po-P-12")
    assert books[INVENTORY] == 3 * 400  # the rejected units left the books with the stock
    await h.execute_update(PO.bill, VendorBillIn("INV-12", [BillLine("MUG", 5, 400)]))
    exc = await open_exception_of(buyer, "P-12", "bill_mismatch")
    assert {m["rule"] for m in exc.details["mismatches"]} == {"quantity"}  # 5 billed, 3 kept
    await once_open(h, "resolve_exception", Resolution(exc.id, "accept", "pay what we kept", "fin"))
    assert (await h.result()).status == "closed"
    books = await ledger(buyer, "po-P-12")
    assert books[ACCOUNTS_PAYABLE] == -3 * 400  # never more units than were kept
    await assert_inventory_clean(buyer)


@pytest.mark.parametrize("action", ["dispute", "reject"])
async def test_a_disputed_or_rejected_bill_posts_nothing_and_a_corrected_one_closes_the_po(
    buyer: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings, action: str
) -> None:
    number = f"P-13-{action}"
    h = await place_po(buyer, temporal_env.client, settings, number, [("TEE", 5, 1000)])
    await po_when(h, lambda s: s.status == "sent")
    await h.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("TEE", 5)]))
    await h.execute_update(PO.bill, VendorBillIn("INV-13", [BillLine("TEE", 5, 1500)]))  # 50 % over
    exc = await open_exception_of(buyer, number, "bill_mismatch")
    await once_open(h, "resolve_exception", Resolution(exc.id, action, "wrong price", "fin"))
    await po_when(h, lambda s: s.status == "received" and s.lines[0].billed == 0)
    books = await ledger(buyer, f"po-{number}")
    assert books.get(ACCOUNTS_PAYABLE, 0) == 0 and books[GOODS_RECEIVED_NOT_INVOICED] == -5 * 1000
    async with buyer.connect() as conn:
        status = await conn.scalar(text("SELECT status FROM vendor_bill WHERE invoice_number = 'INV-13'"))
    assert status == {"dispute": "disputed", "reject": "rejected"}[action]
    await h.execute_update(PO.bill, VendorBillIn("INV-13b", [BillLine("TEE", 5, 1000)]))
    assert (await h.result()).status == "closed"
    books = await ledger(buyer, f"po-{number}")
    assert books[ACCOUNTS_PAYABLE] == -5 * 1000 and books[GOODS_RECEIVED_NOT_INVOICED] == 0
    await assert_inventory_clean(buyer)

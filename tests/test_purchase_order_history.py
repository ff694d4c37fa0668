"""A purchase order with many receipts continues-as-new before its history grows large, and
carries on from the database: the receipts after it are posted once, the PO still closes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.settings import Settings
from tests.factories import assert_inventory_clean, balance, standard_catalog
from tests.purchase_orders import add_item, add_supplier, place_po, po_when
from workflows.contracts import BillLine, Receipt, ReceiptLine, VendorBillIn
from workflows.purchase_order import PurchaseOrderWorkflow as PO


async def test_a_long_purchase_order_continues_as_new_and_still_closes(
    engine: AsyncEngine, worker: Worker, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    await standard_catalog(engine)
    await add_supplier(engine)
    await add_item(engine, "TEE", 100)
    h = await place_po(engine, temporal_env.client, settings, "P-LONG", [("TEE", 40, 100)], history_limit=40)
    first_run = (await h.describe()).run_id
    await po_when(h, lambda s: s.status == "sent")
    for i in range(20):
        await h.execute_update(PO.receive, Receipt(f"R-{i}", [ReceiptLine("TEE", 2)]))
    snap = await po_when(h, lambda s: s.lines[0].received == 40)
    assert snap.status == "received"
    await h.execute_update(PO.bill, VendorBillIn("INV-LONG", [BillLine("TEE", 40, 100)]))
    result = await h.result()  # follows the runs it continued as
    assert result.status == "closed"
    runs = [
        e
        async for e in temporal_env.client.get_workflow_handle(h.id, run_id=first_run).fetch_history_events()
    ]
    assert runs[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert len(runs) < 200
    assert await balance(engine, "TEE", "DC-EAST") == (40, 0)
    await assert_inventory_clean(engine)

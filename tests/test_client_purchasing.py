"""The purchasing operations of the client (client/operations_purchasing.py) against the real
app over ASGI with the real worker: supplier terms, a PO created once (202, then 200) and a
422 naming the rule as an ApiError, confirmed, received in part with damaged units (the
`receipt_discrepancy` hold), received in full and billed; approval and rejection over the
threshold; cancel; the list paged; replenishment suggestions from a policy; and the sync
client over the same app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from client import (
    ApiError,
    AsyncOmniflowClient,
    BillLine,
    ConfirmedLine,
    NewLocation,
    NewPoLine,
    NewPurchaseOrder,
    NewSku,
    OmniflowClient,
    PurchaseOrder,
    ReceiptLine,
    SupplierTerms,
)
from client import operations_purchasing as buy
from tests.factories import balance
from tests.purchase_orders import add_supplier
from tests.test_client import _OnTheLoop

Roles = dict[str, AsyncOmniflowClient]


@pytest.fixture
async def roles(
    api: httpx.AsyncClient, admin_key: str, engine: AsyncEngine, make_key: Callable[..., str]
) -> AsyncIterator[Roles]:
    """A client a role on the test app (one set of connections), a catalog and supplier ACME."""
    async with AsyncOmniflowClient(http=api, api_key=admin_key) as admin:
        for sku in (NewSku(code="TEE", name="Tee"), NewSku(code="MUG", name="Mug")):
            await admin.create_sku(sku)
        await admin.create_location(NewLocation(code="DC-EAST", name="East", type="dc"))
        await add_supplier(engine, "ACME", lead_time_days=4)
        yield {
            "admin": admin,
            **{
                role: admin.with_options(api_key=make_key(role))
                for role in ("approver", "warehouse", "finance")
            },
        }


def new_po(number: str, *lines: tuple[str, int]) -> NewPurchaseOrder:
    return NewPurchaseOrder(
        number=number,
        supplier="ACME",
        location="DC-EAST",
        lines=[NewPoLine(sku=s, qty=q) for s, q in lines],
    )


async def settled(
    api: AsyncOmniflowClient, number: str, ready: Callable[[PurchaseOrder], bool]
) -> PurchaseOrder:
    """The PO once its workflow has taken it there (recorded, waiting on a person, …)."""
    for _ in range(200):
        po = await api.get_purchase_order(number)
        if ready(po):
            return po
        await asyncio.sleep(0.05)
    raise AssertionError(f"{number} never got there (last: {po.status}, holds {po.holds})")


async def test_terms_and_a_po_through_its_steps(roles: Roles, engine: AsyncEngine, worker: Worker) -> None:
    admin, warehouse, finance = roles["admin"], roles["warehouse"], roles["finance"]
    item = await admin.put_supplier_item("ACME", "TEE", SupplierTerms(cost=800, moq=10, order_multiple=5))
    assert (item.supplier, item.cost, item.lead_time_days, item.inspect) == ("ACME", 800, 4, False)
    assert (await warehouse.get_supplier_item("ACME", "TEE")).moq == 10
    with pytest.raises(ApiError) as broken:  # 12 is not a multiple of 5
        await admin.create_purchase_order(new_po("P-1", ("TEE", 12)))
    assert (broken.value.status, broken.value.slug) == (422, "validation-error")
    assert broken.value.errors[0]["rule"] == "order_multiple"
    with pytest.raises(ApiError) as forbidden:
        await warehouse.put_supplier_item("ACME", "TEE", SupplierTerms(cost=1))
    assert forbidden.value.status == 403

    created = await admin.send(buy.create_purchase_order(new_po("P-1", ("TEE", 20))))
    assert (created.status, created.value.number, created.value.workflow_id) == (202, "P-1", "po-P-1")
    assert created.value.line("TEE").unit_cost == 800 and created.value.value == 16_000
    again = await admin.send(buy.create_purchase_order(new_po("P-1", ("TEE", 20))))
    assert again.status == 200 and again.value.number == "P-1"  # the number is the business key
    with pytest.raises(ApiError) as conflict:
        await admin.create_purchase_order(new_po("P-1", ("TEE", 30)))
    assert conflict.value.status == 409
    assert await balance(engine, "TEE", "DC-EAST", "inbound") == (20, 0)

    await settled(admin, "P-1", lambda po: po.status == "sent")
    promised = [ConfirmedLine(sku="TEE", qty=20, promised_at=datetime(2030, 1, 1, tzinfo=UTC))]
    confirmed = await admin.confirm_purchase_order("P-1", promised)
    assert confirmed.status == "confirmed" and confirmed.line("TEE").confirmed == 20
    with pytest.raises(ApiError) as twice:
        await admin.confirm_purchase_order("P-1", promised)
    assert twice.value.status == 409

    part = await warehouse.receive_purchase_order(
        "P-1", "GRN-1", [ReceiptLine(sku="TEE", qty_received=8, qty_damaged=2)]
    )
    assert part.status == "partially_received" and part.line("TEE").received == 8
    assert part.receipts[0].receipt_number == "GRN-1"
    held = await settled(admin, "P-1", lambda po: po.hold("receipt_discrepancy") is not None)
    hold = held.hold("receipt_discrepancy")
    assert hold is not None and hold.status == "open" and "write_off" in hold.actions
    assert (await admin.get_exception(hold.exception_id)).subject.id == "P-1"  # as an order's hold
    await admin.resolve_exception(hold.exception_id, "write_off", note="two torn")
    await settled(admin, "P-1", lambda po: not po.holds)
    assert await balance(engine, "TEE", "DC-EAST") == (8, 0)

    rest = await warehouse.receive_purchase_order("P-1", "GRN-2", [ReceiptLine(sku="TEE", qty_received=10)])
    assert rest.line("TEE").received == 18
    billed = await finance.bill_purchase_order("P-1", "INV-1", [BillLine(sku="TEE", qty=18, unit_cost=800)])
    assert billed.line("TEE").billed == 18 and billed.bills[0].invoice_number == "INV-1"
    assert [p.number async for p in warehouse.iter_purchase_orders(supplier="ACME")] == ["P-1"]
    with pytest.raises(ApiError) as unknown:
        await warehouse.list_purchase_orders(status="bogus")
    assert unknown.value.status == 422


async def test_approval_rejection_cancel_and_suggestions(
    roles: Roles, engine: AsyncEngine, worker: Worker
) -> None:
    admin, approver = roles["admin"], roles["approver"]
    await admin.put_supplier_item("ACME", "TEE", SupplierTerms(cost=10_000))
    await admin.put_supplier_item("ACME", "MUG", SupplierTerms(cost=500, moq=24, order_multiple=12))
    for number in ("P-10", "P-11", "P-12"):  # 600,000 each: over the threshold
        await approver.create_purchase_order(new_po(number, ("TEE", 60)))
    for number in ("P-10", "P-11"):
        waiting = await settled(approver, number, lambda po: po.hold("po_approval") is not None)
        assert waiting.status == "awaiting_approval"
    sent = await approver.approve_purchase_order("P-10", reason="budgeted")
    assert sent.status == "sent"
    with pytest.raises(ApiError) as no_reason:
        await approver.reject_purchase_order("P-11", "")
    assert no_reason.value.status == 422
    rejected = await approver.reject_purchase_order("P-11", "not this quarter")
    assert rejected.status == "cancelled"
    cancelled = await admin.cancel_purchase_order("P-10", "not needed")
    assert cancelled.status == "cancelled" and cancelled.line("TEE").inbound == 0
    first = await approver.list_purchase_orders(limit=2)
    assert [p.number for p in first.items] == ["P-10", "P-11"] and first.next_cursor
    assert [p.number async for p in approver.iter_purchase_orders(status="cancelled")] == ["P-10", "P-11"]

    policy = await admin.set_replenishment_policy("MUG", "DC-EAST", safety_stock=30, review_days=7)
    assert (policy.safety_stock, policy.supplier) == (30, None)
    suggestions = await approver.replenishment_suggestions(location="DC-EAST")
    mug = suggestions.at("MUG", "DC-EAST")
    assert mug is not None and (mug.supplier, mug.suggested_qty, mug.reorder_point) == ("ACME", 36, 30.0)
    assert "safety" in mug.why and suggestions.at("TEE", "DC-EAST") is None
    assert (await approver.replenishment_suggestions(supplier="NOPE")).items == []


async def test_the_sync_client_buys_too(
    api: httpx.AsyncClient, roles: Roles, make_key: Callable[..., str], worker: Worker
) -> None:
    transport = _OnTheLoop(api.app, asyncio.get_running_loop())  # type: ignore[attr-defined]
    admin_key, approver_key = make_key("admin"), make_key("approver")

    def buyer() -> tuple[PurchaseOrder, PurchaseOrder, ApiError]:
        with OmniflowClient("http://testserver", admin_key, transport=transport) as sync:
            sync.put_supplier_item("ACME", "MUG", SupplierTerms(cost=300))
            po = sync.create_purchase_order(new_po("P-20", ("MUG", 5)))
            read = sync.with_options(api_key=approver_key).get_purchase_order("P-20")
            try:
                sync.get_purchase_order("P-none")
            except ApiError as exc:
                return po, read, exc
            raise AssertionError("no 404")

    po, read, missing = await asyncio.to_thread(buyer)
    assert (po.number, read.number, read.line("MUG").qty, read.value) == ("P-20", "P-20", 5, 1500)
    assert (missing.status, missing.slug) == (404, "not-found")

"""End to end over HTTP against the running stack (`omniflow dev`), with the API client, as a
channel, a buyer, a supplier's answer, the warehouse and finance use it: an order for a SKU
with no stock backorders; a purchase order for it is created, confirmed and received; the
receipt wakes the backorder through the arrival hook (the periodic re-check is an hour
away), the order is allocated, picked, packed and shipped and completes; the vendor bill
closes the PO; `omniflow inventory check` and `omniflow ledger check` are clean."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from bench.chaos import run_checks
from bench.common import CHANNELS, LOCATIONS, create_catalog
from client import (
    BillLine,
    ConfirmedLine,
    LocationStock,
    NewPoLine,
    NewPurchaseOrder,
    NewSku,
    PurchaseOrder,
    ReceiptLine,
    SupplierTerms,
)
from client import operations_purchasing as buy
from tests.stack import DevStack
from tests.test_order_e2e import Shop

pytestmark = pytest.mark.e2e

SUPPLIER = {"code": "FASTEN", "name": "Fasten & Co", "lead_time_days": 3}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    # The backorder re-check stays at its default (an hour): only the arrival hook can wake
    # the order within the test's wait.
    s = DevStack(
        tmp_path_factory.mktemp("purchasing") / "data", extra_env={"OMNIFLOW_RPC_TIMEOUT_SECONDS": "3"}
    ).start()
    yield s
    s.stop()


def until_po(
    shop: Shop, number: str, ok: Callable[[PurchaseOrder], bool], timeout: float = 30.0
) -> PurchaseOrder:
    deadline = time.monotonic() + timeout
    po = shop.admin.get_purchase_order(number)
    while not ok(po):
        if time.monotonic() > deadline:
            raise AssertionError(f"{number} stuck: {po.status} {po.lines} {po.holds}")
        time.sleep(0.2)
        po = shop.admin.get_purchase_order(number)
    return po


def east_of(shop: Shop) -> LocationStock:
    return next(loc for loc in shop.admin.get_stock("BOLT").locations if loc.location == "DC-EAST")


def test_a_backorder_is_filled_by_a_purchase_order_and_completes(stack: DevStack) -> None:
    shop = Shop(stack)
    create_catalog(
        shop.admin, [NewSku(code="BOLT", name="Bolt", unit_cost=200, price=900)], LOCATIONS, CHANNELS
    )
    created = httpx.post(f"{stack.api}/v1/suppliers", json=SUPPLIER, headers=stack.headers, timeout=30)
    assert created.status_code in (200, 201), created.text
    shop.admin.put_supplier_item("FASTEN", "BOLT", SupplierTerms(cost=200, moq=10, order_multiple=10))
    buyer, warehouse, finance = shop.key("approver"), shop.key("warehouse"), shop.key("finance")

    order = shop.order("web", "B-1", [("BOLT", 4, 900)])
    waiting = shop.until(order.id, lambda o: o.status == "awaiting_stock")
    assert (waiting.line("BOLT").backordered, waiting.line("BOLT").reserved) == (4, 0)

    po = NewPurchaseOrder(
        number="PO-B-1", supplier="FASTEN", location="DC-EAST", lines=[NewPoLine(sku="BOLT", qty=10)]
    )
    placed = buyer.send(buy.create_purchase_order(po))
    assert placed.status == 202 and placed.value.value == 2_000
    assert east_of(shop).buckets.get("inbound") == 10  # on order at once
    until_po(shop, "PO-B-1", lambda p: p.status == "sent")
    confirmed = shop.admin.confirm_purchase_order("PO-B-1", [ConfirmedLine(sku="BOLT", qty=10)])
    assert confirmed.status == "confirmed"
    assert shop.get(order.id).status == "awaiting_stock"  # on order is not on the shelf

    received = warehouse.receive_purchase_order(
        "PO-B-1", "GRN-B-1", [ReceiptLine(sku="BOLT", qty_received=10)]
    )
    assert received.status == "received" and received.line("BOLT").received == 10
    allocated = shop.until(order.id, lambda o: o.status == "allocated", timeout=30)
    assert [(s.location, s.lines[0].qty) for s in allocated.shipments] == [("DC-EAST", 4)]

    assert shop.work_the_floor(warehouse) == 1
    done = shop.until(order.id, lambda o: o.status == "completed")
    assert (done.line("BOLT").shipped, done.payment.captured) == (4, done.amounts.total)
    east = east_of(shop)
    assert (east.on_hand, east.reserved, east.buckets.get("inbound", 0)) == (6, 0, 0)

    billed = finance.bill_purchase_order("PO-B-1", "INV-B-1", [BillLine(sku="BOLT", qty=10, unit_cost=200)])
    assert billed.line("BOLT").billed == 10
    until_po(shop, "PO-B-1", lambda p: p.status == "closed")
    checks = run_checks(stack)
    assert all(c["exit"] == 0 for c in checks.values()), checks

"""Typed results and request bodies of the purchasing API: supplier terms, purchase orders
and their steps (approval, the supplier's confirmation, receipts, QC, bills), and the
replenishment suggestions (the conventions are client.models')."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from client.models import Body, Hold, Result

# -- suppliers and their items ---------------------------------------------------------


class NewSupplierItem(Body):
    sku: str
    cost: int
    moq: int = 1
    order_multiple: int = 1


class NewSupplier(Body):
    """A supplier by code: the same body again is the supplier (200), another body a 409."""

    code: str
    name: str
    lead_time_days: int = 7
    items: list[NewSupplierItem] = Field(default_factory=list)
    dropship: bool = False


class Supplier(Result):
    code: str
    name: str
    lead_time_days: int
    dropship: bool
    items: list[dict[str, Any]]
    created_at: datetime


class SupplierTerms(Body):
    """A supplier's terms for one SKU (PUT replaces what was there). `lead_time_days` None:
    the supplier's own lead time; `inspect`: receipts wait in quarantine for QC."""

    cost: int
    currency: str = "USD"
    moq: int = 1
    order_multiple: int = 1
    lead_time_days: int | None = None
    inspect: bool = False


class SupplierItem(Result):
    supplier: str
    sku: str
    cost: int  # per unit, minor units of `currency`
    currency: str
    moq: int  # the fewest units a PO line may order
    order_multiple: int  # a line orders a multiple of it
    lead_time_days: int  # the item's own, else the supplier's
    inspect: bool  # receipts wait in quarantine for QC


# -- purchase orders: what is sent ------------------------------------------------------


class NewPoLine(Body):
    sku: str
    qty: int
    unit_cost: int | None = None  # None: the supplier item's cost


class NewPurchaseOrder(Body):
    """A PO. `number` is its business key: the same number and body again is the same PO
    (200), the same number with other data a 409. Each line must meet the supplier's terms
    (MOQ, order multiple, currency) or the API answers 422 naming the line and the rule."""

    number: str
    supplier: str
    location: str
    lines: list[NewPoLine]
    expected_at: datetime | None = None  # None: today plus the longest lead time

    @property
    def value(self) -> int:
        """The value in minor units, where every line names its cost."""
        return sum(ln.qty * (ln.unit_cost or 0) for ln in self.lines)


class ConfirmedLine(Body):
    """The supplier's answer for a line: the quantity it will send (lower lowers inbound)."""

    sku: str
    qty: int
    promised_at: datetime | None = None


class ReceiptLine(Body):
    sku: str
    qty_received: int
    qty_damaged: int = 0
    lot: str = ""
    expires_at: datetime | None = None


class QcLine(Body):
    """Quarantined units released (`pass`) or rejected (`fail`: to the vendor or scrap)."""

    sku: str
    qty: int
    result: Literal["pass", "fail"]
    disposition: Literal["return_to_vendor", "scrap", ""] = ""


class BillLine(Body):
    sku: str
    qty: int
    unit_cost: int


# -- purchase orders: what comes back ---------------------------------------------------


class PoLine(Result):
    """A line's units: ordered, then where they went. `inbound` is what is still expected."""

    sku: str
    qty: int  # ordered
    unit_cost: int
    confirmed: int | None = None  # the supplier's quantity, once it confirmed
    promised_at: datetime | None = None
    received: int  # into stock (sellable, or quarantine when inspected)
    damaged: int  # arrived damaged (a receipt_discrepancy decides what becomes of them)
    quarantined: int  # waiting for QC
    rejected: int  # failed QC
    returned: int  # sent back to the vendor
    closed: int  # no longer expected (short, cancelled)
    billed: int  # invoiced by the vendor
    inbound: int


class PoReceipt(Result):
    receipt_number: str
    status: str
    lines: Any
    discrepancy: Any = None
    received_at: datetime


class PoBill(Result):
    invoice_number: str
    status: str
    lines: Any
    mismatches: Any = None
    total: int
    created_at: datetime


class PoEvent(Result):
    event: str
    detail: Any = None
    at: datetime


class PurchaseOrder(Result):
    number: str
    supplier: str
    location: str
    status: str  # draft, awaiting_approval, sent, confirmed, partially_received, received, closed, cancelled
    currency: str
    value: int
    expected_at: datetime
    source: str
    run_id: str | None = None
    note: str
    workflow_id: str
    lines: list[PoLine]
    receipts: list[PoReceipt]
    bills: list[PoBill]
    holds: list[Hold]  # its open exceptions: po_approval, receipt_discrepancy, bill_mismatch, …
    timeline: list[PoEvent]
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _holds_as_orders_have_them(cls, data: Any) -> Any:
        """The API names a PO's hold by `id`; a `Hold` (as on an order) by `exception_id`."""
        if isinstance(data, dict) and isinstance(data.get("holds"), list):
            holds = [{"exception_id": h.get("id"), **h} if isinstance(h, dict) else h for h in data["holds"]]
            data = {**data, "holds": holds}
        return data

    def line(self, sku: str) -> PoLine:
        """The line of this SKU (one line per SKU)."""
        return next(ln for ln in self.lines if ln.sku == sku)

    def hold(self, kind: str) -> Hold | None:
        """The open exception of this kind, if any."""
        return next((h for h in self.holds if h.kind == kind), None)


# -- replenishment ----------------------------------------------------------------------


class Suggestion(Result):
    """What to order now for a SKU at a location, with the arithmetic spelled out in `why`."""

    sku: str
    location: str
    on_hand: int  # sellable + quarantine
    inbound: int
    reserved: int
    position: int  # on_hand + inbound − reserved
    demand_per_day: float
    factor: float
    lead_time_days: int | None = None
    safety_stock: int
    review_days: int
    reorder_point: float
    order_up_to: float
    suggested_qty: int
    supplier: str | None = None
    unit_cost: int | None = None
    currency: str | None = None
    why: str


class Suggestions(Result):
    as_of: date
    demand_days: int
    items: list[Suggestion] = Field(default_factory=list)

    def at(self, sku: str, location: str) -> Suggestion | None:
        return next((s for s in self.items if (s.sku, s.location) == (sku, location)), None)


class ReplenishmentPolicy(Result):
    sku: str
    location: str
    safety_stock: int
    review_days: int
    supplier: str | None = None

"""The purchasing operations of the API: supplier terms, purchase orders and each step of
one (approve, reject, confirm, receive, inspect, bill, cancel), and replenishment. They are
built and sent like those of client.operations (`api.send(ops.create_purchase_order(...))`
or `api.create_purchase_order(...)`).

Every step answers the purchase order as it stands after the step. A step the PO is not in
the state for is a 409; a step that breaks a rule (more received than ordered beyond the
tolerance, a rejection without a reason) a 422."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from client.models import Page
from client.models_purchasing import (
    BillLine,
    ConfirmedLine,
    NewPurchaseOrder,
    NewSupplier,
    PurchaseOrder,
    QcLine,
    ReceiptLine,
    ReplenishmentPolicy,
    Suggestions,
    Supplier,
    SupplierItem,
    SupplierTerms,
)
from client.reads import get
from client.request import Request, path, write

_ITEM = "/v1/suppliers/{code}/items/{sku}"
T = TypeVar("T")


def _post(route: str, the_path: str, body: Any, key: str | None, **kw: Any) -> Request[PurchaseOrder]:
    """A write answering the purchase order; it takes an Idempotency-Key (optional)."""
    return write(
        "POST", route, the_path, PurchaseOrder.model_validate, body, key=key, policy="optional", **kw
    )


def _put(route: str, the_path: str, parse: Callable[[Any], T], body: Any) -> Request[T]:
    """A PUT: it replaces what was there, so sending it again does what sending it once does."""
    return write("PUT", route, the_path, parse, body, key=None, policy=None)


# -- suppliers and their items ---------------------------------------------------------


def create_supplier(supplier: NewSupplier, *, idempotency_key: str | None = None) -> Request[Supplier]:
    """201 new, 200 when it exists with the same data, 409 with other data."""
    route = "/v1/suppliers"
    parse = Supplier.model_validate
    return write("POST", route, route, parse, supplier.to_json(), key=idempotency_key, policy="optional")


def put_supplier_item(supplier: str, sku: str, terms: SupplierTerms) -> Request[SupplierItem]:
    """An admin sets a supplier's terms for a SKU (replaces what was there; 404 for an
    unknown supplier, 422 for a kit or an unknown SKU)."""
    return _put(_ITEM, path(_ITEM, code=supplier, sku=sku), SupplierItem.model_validate, terms.to_json())


def get_supplier_item(supplier: str, sku: str) -> Request[SupplierItem]:
    return get(_ITEM, SupplierItem.model_validate, code=supplier, sku=sku)


# -- purchase orders -------------------------------------------------------------------


def create_purchase_order(
    po: NewPurchaseOrder, *, idempotency_key: str | None = None
) -> Request[PurchaseOrder]:
    """Record the PO and start its workflow (202; its units show in `inbound` at once). Over
    the approval threshold it waits in `po_approval`. The same number and body again is the
    PO (200): the number is the business key, so a create is safe to send again."""
    route = "/v1/purchase-orders"
    return _post(route, route, po.to_json(), idempotency_key, idempotent=True)


def get_purchase_order(number: str) -> Request[PurchaseOrder]:
    """The PO with its lines, receipts, bills, open holds and timeline (any role but channel)."""
    return get("/v1/purchase-orders/{number}", PurchaseOrder.model_validate, number=number)


def list_purchase_orders(
    *,
    status: str | None = None,
    supplier: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Request[Page[PurchaseOrder]]:
    """By number (422 for an unknown status)."""
    params = {"status": status, "supplier": supplier, "limit": limit, "cursor": cursor}
    return get("/v1/purchase-orders", Page[PurchaseOrder].model_validate, params)


def _step(step: str, number: str, body: dict[str, Any], key: str | None) -> Request[PurchaseOrder]:
    route = f"/v1/purchase-orders/{{number}}/{step}"
    return _post(route, path(route, number=number), body, key)


def approve_purchase_order(
    number: str, *, reason: str = "", idempotency_key: str | None = None
) -> Request[PurchaseOrder]:
    """An approver sends a PO waiting in `po_approval` (409 if it is not waiting)."""
    return _step("approve", number, {"reason": reason}, idempotency_key)


def reject_purchase_order(
    number: str, reason: str, *, idempotency_key: str | None = None
) -> Request[PurchaseOrder]:
    """An approver cancels a PO waiting in `po_approval`, with the reason."""
    return _step("reject", number, {"reason": reason}, idempotency_key)


def confirm_purchase_order(
    number: str, lines: Sequence[ConfirmedLine], *, idempotency_key: str | None = None
) -> Request[PurchaseOrder]:
    """The supplier's confirmed quantity and promised date per line (once; then a 409)."""
    return _step("confirm", number, {"lines": [ln.to_json() for ln in lines]}, idempotency_key)


def receive_purchase_order(
    number: str,
    receipt: str,
    lines: Sequence[ReceiptLine],
    *,
    final: bool = False,
    idempotency_key: str | None = None,
) -> Request[PurchaseOrder]:
    """A delivery, keyed by its receipt number: the same receipt again changes nothing.
    Damaged units, more than the tolerance over, or short on a `final` receipt open a
    `receipt_discrepancy` for a person."""
    body = {"receipt": receipt, "lines": [ln.to_json() for ln in lines], "final": final}
    return _step("receipts", number, body, idempotency_key)


def inspect_purchase_order(
    number: str, lines: Sequence[QcLine], *, idempotency_key: str | None = None
) -> Request[PurchaseOrder]:
    """QC of quarantined units: pass → sellable, fail → to the vendor or scrap."""
    return _step("qc", number, {"lines": [ln.to_json() for ln in lines]}, idempotency_key)


def bill_purchase_order(
    number: str, invoice_number: str, lines: Sequence[BillLine], *, idempotency_key: str | None = None
) -> Request[PurchaseOrder]:
    """A vendor bill, matched three ways; each invoice number posts once. Outside the
    tolerances it waits in `bill_mismatch`."""
    body = {"invoice_number": invoice_number, "lines": [ln.to_json() for ln in lines]}
    return _step("bills", number, body, idempotency_key)


def cancel_purchase_order(
    number: str, reason: str, *, idempotency_key: str | None = None
) -> Request[PurchaseOrder]:
    """An admin cancels what has not been received (it leaves inbound)."""
    return _step("cancel", number, {"reason": reason}, idempotency_key)


# -- replenishment ---------------------------------------------------------------------


def replenishment_suggestions(
    *, location: str | None = None, supplier: str | None = None, everything: bool = False
) -> Request[Suggestions]:
    """What to order now per SKU and location, with the arithmetic (`why`); `everything`
    also lists the SKU-locations that need nothing."""
    params = {"location": location, "supplier": supplier, "all": everything or None}
    return get("/v1/replenishment/suggestions", Suggestions.model_validate, params)


def set_replenishment_policy(
    sku: str, location: str, *, safety_stock: int, review_days: int, supplier: str | None = None
) -> Request[ReplenishmentPolicy]:
    """Safety stock, review days and the preferred supplier of a SKU at a location."""
    route = "/v1/replenishment/policies/{sku}/{location}"
    body = {"safety_stock": safety_stock, "review_days": review_days, "supplier": supplier}
    return _put(route, path(route, sku=sku, location=location), ReplenishmentPolicy.model_validate, body)

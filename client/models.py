"""Typed results and request bodies of the omniflow API.

Results keep fields the API adds later (`extra="allow"`, read them from `model_extra`), so an
older client keeps working against a newer server. Request bodies reject unknown fields, as
the API does. Money is in minor units (cents), quantities in units."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Result(BaseModel):
    model_config = ConfigDict(extra="allow")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class Page(Result, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` for the next (None: the last page)."""

    items: list[T]
    next_cursor: str | None = None


# -- shared ----------------------------------------------------------------------------


class Address(Body):
    """A postal address. Anything is accepted: one that cannot be shipped to becomes an
    `address_invalid` hold on the order, not an error."""

    model_config = ConfigDict(extra="allow")  # read back from orders as the channel sent it

    name: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    lat: float | None = None
    lon: float | None = None


class Customer(Body):
    model_config = ConfigDict(extra="allow")

    id: str
    email: str = ""


# -- orders ----------------------------------------------------------------------------


class NewLine(Body):
    sku: str
    qty: int
    unit_price: int


class NewPayment(Body):
    status: Literal["authorized", "captured", "pending"]
    amount: int
    method: str = ""
    reference: str = ""


class NewOrder(Body):
    """What a channel sends. `channel` + `external_id` name the order: the same pair again is
    the same order (200 if the data is the same, 409 if not), never a second one."""

    channel: str
    external_id: str
    customer: Customer
    ship_to: Address
    lines: list[NewLine]
    payment: NewPayment
    billing_address: Address | None = None
    shipping_amount: int = 0
    tax_amount: int = 0
    promise: Literal["standard", "express"] = "standard"
    allow_backorder: bool = True
    allow_split: bool = True
    currency: str = "USD"

    @property
    def total(self) -> int:
        return sum(ln.qty * ln.unit_price for ln in self.lines) + self.shipping_amount + self.tax_amount


class Amounts(Result):
    merchandise: int
    shipping: int
    tax: int
    total: int


class Payment(Result):
    method: str
    status: str  # our books: pending, authorized, captured, voided, refunded, …
    reported: str | None = None  # what the channel said when it sent the order
    amount: int
    reference: str
    captured: int


class OrderLine(Result):
    line: str
    sku: str
    qty: int
    unit_price: int
    reserved: int
    backordered: int
    shipped: int
    cancelled: int
    returned: int


class ShipmentLine(Result):
    line: str
    sku: str
    qty: int
    picked: int


class Shipment(Result):
    """A shipment, as `GET /v1/shipments/{id}` and the warehouse actions answer it, and as an
    order lists it (there `order_id` and `updated_at` are absent)."""

    id: str
    location: str
    kind: str  # stock, dropship
    status: str  # allocated, picked, packed, shipped, cancelled, requested, …
    promise: str
    lines: list[ShipmentLine]
    supplier: str | None = None
    carrier: str | None = None
    service: str | None = None
    tracking: str | None = None
    packages: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime
    shipped_at: datetime | None = None
    order_id: str | None = None
    updated_at: datetime | None = None


class Hold(Result):
    exception_id: str
    kind: str
    status: str
    opened_at: datetime
    due_at: datetime
    escalation_level: int
    actions: list[str]


class TimelineEvent(Result):
    at: datetime
    event: str
    detail: dict[str, Any]


class Order(Result):
    id: str
    channel: str
    external_id: str
    status: str  # received, on_hold, awaiting_stock, allocated, …, completed, cancelled
    customer: Customer
    ship_to: Address
    billing_address: Address | None = None
    promise: str
    allow_backorder: bool
    allow_split: bool
    currency: str
    amounts: Amounts
    payment: Payment
    lines: list[OrderLine]
    shipments: list[Shipment]
    holds: list[Hold]
    timeline: list[TimelineEvent]
    fraud_score: int | None = None
    fraud_reasons: list[str] = Field(default_factory=list)
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None

    def line(self, sku: str) -> OrderLine:
        """The line of this SKU (one line per SKU)."""
        return next(ln for ln in self.lines if ln.sku == sku)


class CancelLine(Body):
    sku: str
    qty: int


# -- the warehouse ---------------------------------------------------------------------


class WaveShipmentLine(Result):
    line: str
    sku: str
    qty: int


class WaveShipment(Result):
    id: str
    order_id: str
    created_at: datetime
    lines: list[WaveShipmentLine]


class PickListLine(Result):
    sku: str
    lot: str
    qty: int


class Wave(Result):
    """Open pick work: stock shipments waiting to be picked, with one summed pick list."""

    id: str
    location: str
    number: int
    promise: str
    shipments: list[WaveShipment]
    pick_list: list[PickListLine]
    lines: int


class PickLine(Body):
    sku: str
    qty: int
    lot: str = ""


class PackLine(Body):
    sku: str
    qty: int


class Package(Body):
    weight_g: int
    length_mm: int
    width_mm: int
    height_mm: int
    lines: list[PackLine]


# -- exceptions ------------------------------------------------------------------------


class Subject(Result):
    type: str
    id: str


class ExceptionItem(Result):
    """An exception (a human wait) in the queues."""

    id: str
    kind: str
    subject: Subject
    status: str  # open, resolved, cancelled
    opened_at: datetime
    due_at: datetime
    escalation_level: int
    priority: float
    value_at_risk: int
    actions: list[str]
    workflow_id: str
    details: dict[str, Any]
    resolution: dict[str, Any] | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None

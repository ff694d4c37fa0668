"""Request and response shapes of the orders API (docs/api.md, "Orders")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from api.schemas import RequestModel, ResponseModel

CODE = r"^[A-Za-z0-9._-]{1,64}$"
MAX_MONEY = 2_147_483_647  # the read model keeps money in 32-bit integers (minor units)
MAX_QTY = 1_000_000


# -- request bodies ------------------------------------------------------------------


class AddressIn(RequestModel):
    """Any text is accepted (an address that cannot be shipped to becomes an `address_invalid`
    hold naming the field, not a 422); only the types are checked."""

    name: str = Field(default="", max_length=200)
    line1: str = Field(default="", max_length=200)
    line2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    region: str = Field(default="", max_length=100)
    postal_code: str = Field(default="", max_length=32)
    country: str = Field(default="", max_length=64)
    lat: float | None = Field(default=None, allow_inf_nan=False)
    lon: float | None = Field(default=None, allow_inf_nan=False)


class CustomerIn(RequestModel):
    id: str = Field(min_length=1, max_length=200)
    email: str = Field(default="", max_length=320)


class OrderLineIn(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)
    unit_price: int = Field(ge=0, le=MAX_MONEY)


class PaymentIn(RequestModel):
    method: str = Field(default="", max_length=40)
    status: Literal["authorized", "captured", "pending"]
    amount: int = Field(ge=0, le=MAX_MONEY)
    reference: str = Field(default="", max_length=200)


class OrderCreate(RequestModel):
    channel: str = Field(pattern=CODE)
    external_id: str = Field(pattern=CODE, description="Your order number; one order per channel and number.")
    customer: CustomerIn
    ship_to: AddressIn
    billing_address: AddressIn | None = None
    lines: list[OrderLineIn] = Field(min_length=1, max_length=200)
    shipping_amount: int = Field(default=0, ge=0, le=MAX_MONEY)
    tax_amount: int = Field(default=0, ge=0, le=MAX_MONEY)
    payment: PaymentIn
    promise: Literal["standard", "express"] = "standard"
    allow_backorder: bool = True
    allow_split: bool = True
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class CancelLineIn(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)


class CancelBody(RequestModel):
    reason: str = Field(min_length=1, max_length=200)
    lines: list[CancelLineIn] | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Cancel only these units; absent: all not shipped.",
    )


class PaymentBody(RequestModel):
    status: Literal["authorized", "captured"]
    amount: int = Field(gt=0, le=MAX_MONEY)
    reference: str = Field(min_length=1, max_length=200)
    method: str = Field(default="", max_length=40)


# -- responses -----------------------------------------------------------------------


class CustomerRead(ResponseModel):
    id: str
    email: str


class AmountsRead(ResponseModel):
    merchandise: int
    shipping: int
    tax: int
    total: int


class PaymentRead(ResponseModel):
    method: str
    status: str  # what our books say: pending, authorized, captured, voided, refunded, …
    reported: str | None = None  # what the channel said when it sent the order
    amount: int
    reference: str
    captured: int


class OrderLineRead(ResponseModel):
    line: str
    sku: str
    qty: int
    unit_price: int
    reserved: int
    backordered: int
    shipped: int
    cancelled: int
    returned: int


class ShipmentLineBrief(ResponseModel):
    line: str
    sku: str
    qty: int
    picked: int


class OrderShipmentRead(ResponseModel):
    id: str
    location: str
    kind: str
    status: str
    promise: str
    lines: list[ShipmentLineBrief]
    supplier: str | None
    carrier: str | None
    service: str | None
    tracking: str | None
    packages: list[dict[str, Any]]
    created_at: datetime
    shipped_at: datetime | None


class HoldRead(ResponseModel):
    exception_id: str
    kind: str
    status: str
    opened_at: datetime
    due_at: datetime
    escalation_level: int
    actions: list[str]


class TimelineEvent(ResponseModel):
    at: datetime
    event: str
    detail: dict[str, Any]


class OrderRead(ResponseModel):
    id: str
    channel: str
    external_id: str
    status: str
    customer: CustomerRead
    ship_to: dict[str, Any]
    billing_address: dict[str, Any] | None
    promise: str
    allow_backorder: bool
    allow_split: bool
    currency: str
    amounts: AmountsRead
    payment: PaymentRead
    lines: list[OrderLineRead]
    shipments: list[OrderShipmentRead]
    holds: list[HoldRead]
    timeline: list[TimelineEvent]
    fraud_score: int | None
    fraud_reasons: list[str]
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class ShipmentRead(OrderShipmentRead):
    """A shipment read on its own: as in its order, with the order's id and when it last
    changed."""

    order_id: str
    updated_at: datetime

"""Request and response shapes of the returns API (docs/api.md, "Returns"): return reasons,
returns (RMAs) and their steps, and a customer's store credit.

Bodies check types and shapes only; what needs the order (the lines it shipped, a SKU twice,
the exchange's lines for the outcome) is checked by the route once it has found the order,
so a channel learns nothing about an order that is not its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from api.schemas import RequestModel, ResponseModel
from api.schemas_orders import HoldRead, TimelineEvent

CODE = r"^[A-Za-z0-9._-]{1,64}$"
MAX_QTY = 10**6
MAX_PRICE = 10**9

Outcome = Literal["refund", "exchange", "replacement", "store_credit"]
Condition = Literal["new", "opened", "damaged", "defective"]
Disposition = Literal["restock", "refurbish", "quarantine", "scrap", "return_to_vendor"]

# -- reasons ---------------------------------------------------------------------------------


class ReasonBody(RequestModel):
    code: str = Field(pattern=CODE)
    label: str = Field(min_length=1, max_length=200)
    fee_amount: int = Field(default=0, ge=0, le=MAX_PRICE, description="Flat fee per line, minor units.")
    fee_percent: int = Field(default=0, ge=0, le=100, description="Percent of the line's value.")
    defect: bool = Field(default=False, description="A defect: never charged a fee.")


class ReasonRead(ResponseModel):
    code: str
    label: str
    fee_amount: int
    fee_percent: int
    defect: bool


# -- a return: what is sent --------------------------------------------------------------------


class ReturnLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)
    reason: str = Field(pattern=CODE, description="A code of GET /v1/return-reasons.")


class ExchangeLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)
    unit_price: int = Field(ge=0, le=MAX_PRICE)


class ReturnCreate(RequestModel):
    number: str | None = Field(
        default=None, pattern=CODE, description="The business key; generated if absent."
    )
    order: str = Field(min_length=1, max_length=200, description="The order's id.")
    lines: list[ReturnLineBody] = Field(min_length=1, max_length=500)
    outcome: Outcome
    exchange_lines: list[ExchangeLineBody] = Field(
        default_factory=list,
        max_length=500,
        description="The new order's lines: required for `exchange` only.",
    )
    instant: bool = Field(
        default=False, description="Exchange or replacement: ship before the parcel arrives."
    )


class ReturnedLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)


class ReceiveBody(RequestModel):
    location: str = Field(pattern=CODE, description="Where the parcel arrived.")
    lines: list[ReturnedLineBody] = Field(min_length=1, max_length=500)


class InspectLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)
    condition: Condition
    disposition: Disposition


class InspectBody(RequestModel):
    lines: list[InspectLineBody] = Field(min_length=1, max_length=500)


class CancelReturnBody(RequestModel):
    reason: str = Field(min_length=1, max_length=500)


# -- a return: what comes back -----------------------------------------------------------------


class ReturnLineRead(ResponseModel):
    sku: str
    order_line: str
    qty: int
    reason: str
    unit_price: int
    keep: bool  # refunded without a parcel
    received: int
    inspected: int
    credited: int
    condition: str | None
    dispositions: dict[str, Any]
    fee: int
    refund_amount: int


class ReturnRead(ResponseModel):
    number: str
    id: str  # = number
    order: str
    channel: str
    customer_id: str
    status: str
    outcome: str
    instant: bool
    needs_approval: bool
    currency: str
    lines: list[ReturnLineRead]
    fee: int
    credit: int
    refunded: int
    store_credit: int
    charged: int
    exchange_order: str | None
    new_order_lines: list[dict[str, Any]]
    deadline_at: datetime | None
    note: str
    approval_reasons: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    holds: list[HoldRead]
    timeline: list[TimelineEvent]
    workflow_id: str
    created_at: datetime
    updated_at: datetime


# -- store credit ------------------------------------------------------------------------------


class StoreCreditEntryRead(ResponseModel):
    id: int
    amount: int
    kind: str  # issued | bonus | spent | restored
    ref: str
    at: datetime


class StoreCreditRead(ResponseModel):
    customer_id: str
    balance: int
    currency: str
    entries: list[StoreCreditEntryRead]

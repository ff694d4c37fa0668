"""Typed results and request bodies of the returns API: return reasons, returns (RMAs) and
their steps (receipt, inspection, cancel), and a customer's store credit (the conventions
are client.models')."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from client.models import Body, Hold, Result, TimelineEvent

Outcome = Literal["refund", "exchange", "replacement", "store_credit"]

# -- reasons ---------------------------------------------------------------------------


class ReturnReason(Body):
    """A reason of the managed list: a flat fee per line and/or a percent of the line's
    value; a `defect` is never charged. Sent to add or change one; read back the same."""

    model_config = ConfigDict(extra="allow")  # read back as the API answers it

    code: str
    label: str
    fee_amount: int = 0
    fee_percent: int = 0
    defect: bool = False


# -- returns: what is sent -------------------------------------------------------------


class NewReturnLine(Body):
    sku: str
    qty: int
    reason: str  # a code of the managed list


class ExchangeLine(Body):
    sku: str
    qty: int
    unit_price: int


class NewReturn(Body):
    """A return of shipped units of an order. `number` is its business key (generated when
    None): the same number and body again is the same return (200), other data a 409. A
    line policy refuses is a 422 naming the line and the rule (`ApiError.errors`)."""

    order: str  # the order's id
    lines: list[NewReturnLine]
    outcome: Outcome = "refund"
    number: str | None = None
    exchange_lines: list[ExchangeLine] = Field(default_factory=list)  # an exchange's new order
    instant: bool = False  # exchange or replacement: ship before the parcel arrives


class ReturnedLine(Body):
    """Units that arrived in the parcel."""

    sku: str
    qty: int


class InspectedLine(Body):
    sku: str
    qty: int
    condition: Literal["new", "opened", "damaged", "defective"]
    disposition: Literal["restock", "refurbish", "quarantine", "scrap", "return_to_vendor"]


# -- returns: what comes back ----------------------------------------------------------


class ReturnLine(Result):
    """A returned line: its units as they come back, and its money."""

    sku: str
    reason: str  # a code of the managed list
    order_line: str  # the order's line it comes from
    qty: int  # asked back
    keep: bool  # refunded without a parcel: nothing comes back
    received: int  # arrived, into the `returns` bucket
    inspected: int  # of those, inspected (see `dispositions`)
    credited: int  # units whose value went back to the customer
    condition: str | None = None
    dispositions: dict[str, Any] = Field(default_factory=dict)  # disposition -> units
    unit_price: int  # what the order charged a unit
    fee: int  # the return fee of the line, deducted from its refund
    refund_amount: int


class Return(Result):
    number: str
    id: str
    order: str
    channel: str
    customer_id: str
    status: (
        str  # requested, authorized, in_transit, received, inspected, completed, rejected, cancelled, expired
    )
    outcome: str
    instant: bool
    needs_approval: bool
    currency: str
    lines: list[ReturnLine]
    fee: int
    credit: int
    refunded: int
    store_credit: int
    charged: int  # an exchange's difference paid by the customer
    exchange_order: str | None = None  # the exchange or replacement order's id
    new_order_lines: list[dict[str, Any]] = Field(default_factory=list)
    deadline_at: datetime | None = None
    note: str = ""
    approval_reasons: list[dict[str, Any]] = Field(default_factory=list)
    refunds: list[dict[str, Any]] = Field(default_factory=list)
    holds: list[Hold]  # open exceptions: return_approval, refund_approval, refund_overdue
    timeline: list[TimelineEvent]
    workflow_id: str
    created_at: datetime
    updated_at: datetime

    def line(self, sku: str) -> ReturnLine:
        """The line of this SKU (one line per SKU)."""
        return next(ln for ln in self.lines if ln.sku == sku)

    def hold(self, kind: str) -> Hold | None:
        """The open exception of this kind, if any."""
        return next((h for h in self.holds if h.kind == kind), None)


# -- store credit ----------------------------------------------------------------------


class StoreCreditEntry(Result):
    id: int
    amount: int  # signed: issued and bonus add, spent takes away
    kind: str  # issued | bonus | spent | restored
    ref: str
    at: datetime


class StoreCredit(Result):
    customer_id: str
    balance: int
    currency: str
    entries: list[StoreCreditEntry]  # newest first

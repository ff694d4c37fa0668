"""An order's state: its statuses, the quantities of each line, what may be cancelled, and
its money. The line quantities and the money have modules of their own; their names are
importable from here too (`from domain import orders as rules` reads every rule).

The order workflow decides *when* things happen; these rules decide what a step does to the
numbers and which steps are legal, so the workflow's validators, the activities that write
the read model and the API's 409s all agree.

**Statuses** (`STATUSES`): the read model's status is derived from the lines after every
step (`order_status_from_lines`), never moved by events: the lines are the truth, and a
status machine beside them could only disagree. `DONE` are the statuses an order ends in.

**Line quantities** (`LineQty`, in domain.order_lines): every unit of a line is in exactly
one place; an operation that would break that raises `LineChangeRefused`. `units_to_cancel`
says what a cancel request takes (or why it is refused), for the workflow's validator and the
activity.

**Money** (`order_totals`, `cancel_refund_amounts`, `shipment_charge`, in domain.order_money):
integers in minor units that never drift in rounding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain.errors import InvalidRequest, WrongState
from domain.order_lines import LineChangeRefused, LineQty
from domain.order_money import (
    CancelRefund,
    OrderTotals,
    PricedLine,
    RefundLine,
    allocate,
    cancel_refund_amounts,
    line_tax,
    order_totals,
    shipment_charge,
)

__all__ = [
    "ALLOCATED",
    "AWAITING_STOCK",
    "CANCELLED",
    "COMPLETED",
    "DONE",
    "IN_FULFILLMENT",
    "ON_HOLD",
    "PARTIALLY_RETURNED",
    "PARTIALLY_SHIPPED",
    "RECEIVED",
    "RETURNED",
    "SHIPPED",
    "STATUSES",
    "CancelRefund",
    "LineChangeRefused",
    "LineQty",
    "OrderTotals",
    "PricedLine",
    "RefundLine",
    "allocate",
    "cancel_refund_amounts",
    "line_tax",
    "nothing_open",
    "order_status_from_lines",
    "order_totals",
    "shipment_charge",
    "units_to_cancel",
]

# -- statuses ----------------------------------------------------------------------------

RECEIVED = "received"
ON_HOLD = "on_hold"
AWAITING_STOCK = "awaiting_stock"
ALLOCATED = "allocated"
IN_FULFILLMENT = "in_fulfillment"
PARTIALLY_SHIPPED = "partially_shipped"
SHIPPED = "shipped"
COMPLETED = "completed"
CANCELLED = "cancelled"
PARTIALLY_RETURNED = "partially_returned"
RETURNED = "returned"

STATUSES: tuple[str, ...] = (
    RECEIVED,
    ON_HOLD,
    AWAITING_STOCK,
    ALLOCATED,
    IN_FULFILLMENT,
    PARTIALLY_SHIPPED,
    SHIPPED,
    COMPLETED,
    CANCELLED,
    PARTIALLY_RETURNED,
    RETURNED,
)
DONE: tuple[str, ...] = (COMPLETED, CANCELLED)  # the order workflow has nothing left to do


# -- the order from its lines ------------------------------------------------------------


def order_status_from_lines(
    lines: Sequence[LineQty], holds_open: bool, *, picking: bool = False, settled: bool = False
) -> str:
    """The order's summary status from its lines. The first row that matches wins:

        | # | the lines say                                           | status             |
        |---|---------------------------------------------------------|--------------------|
        | 1 | every unit cancelled (nothing shipped)                  | cancelled          |
        | 2 | a hold is open                                          | on_hold            |
        | 3 | nothing open¹, something shipped, all shipped returned  | returned           |
        | 4 | nothing open, some shipped units returned               | partially_returned |
        | 5 | nothing open, something shipped, `settled`²             | completed          |
        | 6 | nothing open, something shipped                         | shipped            |
        | 7 | something shipped, something open                       | partially_shipped  |
        | 8 | something reserved, `picking`³                          | in_fulfillment     |
        | 9 | something reserved                                      | allocated          |
        | 10| something backordered, nothing reserved                 | awaiting_stock     |
        | 11| otherwise (open units not yet sourced)                  | received           |

    ¹ open = ordered − shipped − cancelled. ² payment captured, invoiced, posted: the lines
    cannot know it. ³ a shipment of the order is being picked: neither can they.

    Row 8/9 over 10: an order with some units reserved and others backordered is allocated
    (with `allow_split` the reserved part ships now; the line says what waits). Row 7 over
    4: while units are still to ship, fulfilment is the news, even if a return came in."""
    if not lines:
        raise ValueError("an order has at least one line")
    ordered = sum(ln.ordered for ln in lines)
    shipped = sum(ln.shipped for ln in lines)
    returned = sum(ln.returned for ln in lines)
    open_units = sum(ln.open for ln in lines)
    if shipped == 0 and sum(ln.cancelled for ln in lines) == ordered:
        return CANCELLED
    if holds_open:
        return ON_HOLD
    if shipped > 0 and open_units == 0:
        if returned == shipped:
            return RETURNED
        if returned > 0:
            return PARTIALLY_RETURNED
        return COMPLETED if settled else SHIPPED
    if shipped > 0:
        return PARTIALLY_SHIPPED
    if any(ln.reserved > 0 for ln in lines):
        return IN_FULFILLMENT if picking else ALLOCATED
    if any(ln.backordered > 0 for ln in lines):
        return AWAITING_STOCK
    return RECEIVED


def nothing_open(lines: Sequence[LineQty]) -> bool:
    """Every unit shipped or cancelled: the order has nothing left to fulfil."""
    return all(ln.open <= 0 for ln in lines)


def units_to_cancel(
    order_id: str, status: str, lines: Mapping[str, LineQty], requested: Mapping[str, int] | None
) -> dict[str, int]:
    """Order line → units a cancel takes: every open unit (`requested` None), or the units
    asked for, each line named, positive and no more than it has open (the rest shipped or
    is cancelled). Refused when nothing would be cancelled."""
    if requested is None:
        take = {line: q.open for line, q in lines.items() if q.open > 0}
    else:
        take = {}
        for line, n in requested.items():
            if line not in lines:
                raise InvalidRequest(f"the order has no line {line}")
            if n <= 0:
                raise InvalidRequest(f"line {line}: cancel a positive quantity")
            if n > lines[line].open:
                raise WrongState(
                    f"line {line} has {lines[line].open} units left to cancel (the rest shipped or is cancelled)",
                    line=line,
                    open=lines[line].open,
                )
            take[line] = n
    if not take:
        raise WrongState(f"order {order_id} is {status}: nothing left to cancel", status=status)
    return take

"""An order's state: its statuses, the quantities of each line, what may be cancelled, and
its money.

The order workflow decides *when* things happen; these rules decide what a step does to the
numbers and which steps are legal, so the workflow's validators, the activities that write
the read model and the API's 409s all agree.

**Statuses** (`STATUSES`): the read model's status is derived from the lines after every
step (`order_status_from_lines`), never moved by events: the lines are the truth, and a
status machine beside them could only disagree. `DONE` are the statuses an order ends in.

**Line quantities** (`LineQty`): per order line, every unit is in exactly one place:

    ordered = unassigned + reserved + backordered + shipped + cancelled
    returned <= shipped           (a return is a later fact about shipped units)

Operations move units between places and return a new value; an operation that would break
an invariant raises `LineChangeRefused` and changes nothing. `units_to_cancel` says what a
cancel request takes (or why it is refused), for the workflow's validator and the activity.

**Money** (`order_totals`, `cancel_refund_amounts`): integers in minor units. The tax of a
partial cancel is pro rata to the merchandise cancelled; shipping is refunded only when the
whole order is cancelled. Rounding never drifts: the order's tax is split over lines by
largest remainder, and each cancel refunds the difference of a line's cumulative share, so
cancelling everything, in any number of steps, refunds exactly what was charged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from domain.errors import DomainError, InvalidRequest, Refusal, WrongState

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


# -- line quantities -------------------------------------------------------------------


@dataclass
class LineChangeRefused(DomainError):
    """Asked to move more units than the line has in that place (or a negative amount)."""

    op: str
    requested: int
    allowed: int
    code = "line_change_refused"
    refusal = Refusal.CONFLICT

    def __str__(self) -> str:
        return f"cannot {self.op} {self.requested}: at most {self.allowed}"

    def details(self) -> dict[str, object]:
        return {"op": self.op, "requested": self.requested, "allowed": self.allowed}


@dataclass(frozen=True)
class LineQty:
    """The units of one order line by where they are (API: order line fields)."""

    ordered: int
    reserved: int = 0  # held at a location, not yet shipped
    backordered: int = 0  # waiting for stock
    shipped: int = 0
    cancelled: int = 0
    returned: int = 0  # of the shipped units

    @property
    def unassigned(self) -> int:
        """Neither reserved nor backordered, shipped or cancelled: not yet sourced (or
        released after a short pick, waiting to be sourced again)."""
        return self.ordered - self.reserved - self.backordered - self.shipped - self.cancelled

    @property
    def open(self) -> int:
        """Units that may still ship, and so may still be cancelled."""
        return self.ordered - self.shipped - self.cancelled

    def problems(self) -> list[str]:
        out = [f"{name} is negative" for name, value in self._fields() if value < 0]
        if self.shipped + self.cancelled > self.ordered:
            out.append("shipped + cancelled exceeds ordered")
        if self.reserved + self.backordered + self.shipped + self.cancelled > self.ordered:
            out.append("reserved + backordered + shipped + cancelled exceeds ordered")
        if self.returned > self.shipped:
            out.append("returned exceeds shipped")
        return out

    def check(self) -> bool:
        """The order line invariants ("shipped + cancelled <= ordered per line; returned
        <= shipped"), plus: every unit is in at most one place, nothing negative."""
        return not self.problems()

    def _fields(self) -> list[tuple[str, int]]:
        return [
            ("ordered", self.ordered),
            ("reserved", self.reserved),
            ("backordered", self.backordered),
            ("shipped", self.shipped),
            ("cancelled", self.cancelled),
            ("returned", self.returned),
        ]

    # Each operation moves n units and returns the new line; n outside 0..allowed raises.

    def reserve(self, n: int) -> LineQty:
        """Reserve unassigned units first, then backordered ones (the stock they waited
        for has arrived)."""
        _require("reserve", n, self.unassigned + self.backordered)
        from_unassigned = min(n, self.unassigned)
        return replace(self, reserved=self.reserved + n, backordered=self.backordered - (n - from_unassigned))

    def release(self, n: int) -> LineQty:
        """Give reserved units back (short pick, lost reservation): they are unassigned
        again, to be sourced again."""
        _require("release", n, self.reserved)
        return replace(self, reserved=self.reserved - n)

    def backorder(self, n: int) -> LineQty:
        _require("backorder", n, self.unassigned)
        return replace(self, backordered=self.backordered + n)

    def ship(self, n: int) -> LineQty:
        """Only reserved units ship: a reservation is consumed at shipment."""
        _require("ship", n, self.reserved)
        return replace(self, reserved=self.reserved - n, shipped=self.shipped + n)

    def cancel(self, n: int) -> LineQty:
        """Cancel n unshipped units: first those holding nothing (unassigned), then the
        backordered ones, reserved ones last, so what is left is what ships soonest and
        as few reservations as possible are released."""
        _require("cancel", n, self.open)
        left = n
        take_unassigned = min(left, self.unassigned)
        left -= take_unassigned
        take_backordered = min(left, self.backordered)
        left -= take_backordered
        return replace(
            self,
            backordered=self.backordered - take_backordered,
            reserved=self.reserved - left,
            cancelled=self.cancelled + n,
        )

    def return_(self, n: int) -> LineQty:
        _require("return", n, self.shipped - self.returned)
        return replace(self, returned=self.returned + n)


def _require(op: str, n: int, allowed: int) -> None:
    if n < 0 or n > allowed:
        raise LineChangeRefused(op=op, requested=n, allowed=max(allowed, 0))


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


# -- money -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PricedLine:
    line: str  # the order line's id
    qty: int  # ordered
    unit_price: int  # minor units

    @property
    def amount(self) -> int:
        return self.qty * self.unit_price


@dataclass(frozen=True)
class OrderTotals:
    merchandise: int
    shipping: int
    tax: int

    @property
    def total(self) -> int:
        return self.merchandise + self.shipping + self.tax


def order_totals(lines: Sequence[PricedLine], shipping_amount: int, tax_amount: int) -> OrderTotals:
    _check_priced(lines, shipping_amount, tax_amount)
    return OrderTotals(merchandise=sum(ln.amount for ln in lines), shipping=shipping_amount, tax=tax_amount)


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split a non-negative `total` in proportion to non-negative `weights` by largest
    remainder: every piece is floor or ceil of its exact share and the pieces sum to
    `total`. Ties of remainder go to the earlier weight (deterministic). All-zero weights
    split evenly."""
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("allocate takes a non-negative total and weights")
    if not weights:
        if total:
            raise ValueError("nothing to allocate to")
        return []
    if sum(weights) == 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    pieces = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    short = total - sum(pieces)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:short]:
        pieces[i] += 1
    return pieces


def line_tax(lines: Sequence[PricedLine], tax_amount: int) -> dict[str, int]:
    """The order's tax carried by each line, pro rata to the line's merchandise value.
    The order has one tax amount (tax on shipping included), so the lines carry all of it:
    cancelling every line refunds all the tax."""
    return dict(
        zip((ln.line for ln in lines), allocate(tax_amount, [ln.amount for ln in lines]), strict=True)
    )


@dataclass(frozen=True)
class RefundLine:
    line: str
    qty: int
    merchandise: int
    tax: int


@dataclass(frozen=True)
class CancelRefund:
    lines: tuple[RefundLine, ...]
    shipping: int
    whole_order: bool  # this cancel leaves no unit of the order uncancelled

    @property
    def merchandise(self) -> int:
        return sum(ln.merchandise for ln in self.lines)

    @property
    def tax(self) -> int:
        return sum(ln.tax for ln in self.lines)

    @property
    def total(self) -> int:
        return self.merchandise + self.tax + self.shipping


def cancel_refund_amounts(
    lines: Sequence[PricedLine],
    cancel: Mapping[str, int],
    shipping_amount: int,
    tax_amount: int,
    already_cancelled: Mapping[str, int] | None = None,
) -> CancelRefund:
    """What to refund (or void) for cancelling `cancel` (line -> units) on top of
    `already_cancelled` (line -> units cancelled before).

    - merchandise: units × unit price;
    - tax: a line's tax share (`line_tax`) is given back by its cumulative cancelled
      fraction, rounded half up: refund = share(cancelled after) − share(cancelled before).
      The differences telescope, so any sequence of cancels refunds at most the line's tax
      and exactly all of it once the line is fully cancelled;
    - shipping: refunded only by the cancel that cancels the last unit of the order (the
      parcel still travels while any unit ships).

    The pieces are integers and `total` is their exact sum. Cancelling units that shipped
    is the caller's refusal to make (`LineQty.cancel`); here a line cannot cancel more
    than it ordered."""
    _check_priced(lines, shipping_amount, tax_amount)
    before = dict(already_cancelled or {})
    known = {ln.line for ln in lines}
    unknown = sorted((set(cancel) | set(before)) - known)
    if unknown:
        raise ValueError(f"unknown order lines {unknown}")
    shares = line_tax(lines, tax_amount)
    out: list[RefundLine] = []
    everything = True
    for ln in lines:
        was, now = before.get(ln.line, 0), cancel.get(ln.line, 0)
        if not 0 <= was <= ln.qty:
            raise ValueError(f"line {ln.line} cannot have {was} of {ln.qty} units cancelled")
        _require(f"cancel on line {ln.line}", now, ln.qty - was)
        after = was + now
        everything = everything and after == ln.qty
        if now:
            tax = _share(shares[ln.line], after, ln.qty) - _share(shares[ln.line], was, ln.qty)
            out.append(RefundLine(ln.line, now, now * ln.unit_price, tax))
    whole = everything and bool(out)  # the cancel that takes the last unit, and only that one
    return CancelRefund(lines=tuple(out), shipping=shipping_amount if whole else 0, whole_order=whole)


def shipment_charge(
    lines: Sequence[PricedLine],
    ship: Mapping[str, int],
    shipping_amount: int,
    tax_amount: int,
    already_shipped: Mapping[str, int] | None = None,
    *,
    first_shipment: bool,
) -> OrderTotals:
    """What to capture when `ship` (line -> units) leaves on top of `already_shipped`:
    merchandise of the units, each line's tax share by its cumulative shipped fraction (the
    same telescoping rule as `cancel_refund_amounts`, so shipping everything in any number of
    parcels captures exactly the order's tax), and the shipping charge with the first parcel."""
    _check_priced(lines, shipping_amount, tax_amount)
    before = dict(already_shipped or {})
    shares = line_tax(lines, tax_amount)
    merchandise = tax = 0
    for ln in lines:
        was, now = before.get(ln.line, 0), ship.get(ln.line, 0)
        _require(f"ship on line {ln.line}", now, ln.qty - was)
        merchandise += now * ln.unit_price
        tax += _share(shares[ln.line], was + now, ln.qty) - _share(shares[ln.line], was, ln.qty)
    return OrderTotals(merchandise=merchandise, shipping=shipping_amount if first_shipment else 0, tax=tax)


def _share(amount: int, part: int, whole: int) -> int:
    """amount × part / whole, rounded half up; exact at part == 0 and part == whole."""
    return (2 * amount * part + whole) // (2 * whole)


def _check_priced(lines: Sequence[PricedLine], shipping_amount: int, tax_amount: int) -> None:
    if not lines:
        raise ValueError("an order has at least one line")
    if len({ln.line for ln in lines}) != len(lines):
        raise ValueError("order line ids repeat")
    if any(ln.qty <= 0 or ln.unit_price < 0 for ln in lines):
        raise ValueError("an order line has a positive qty and a non-negative unit price")
    if shipping_amount < 0 or tax_amount < 0:
        raise ValueError("shipping and tax are non-negative")

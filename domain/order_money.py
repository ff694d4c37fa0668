"""An order's money (`order_totals`, `cancel_refund_amounts`, `shipment_charge`): integers
in minor units. The tax of a partial cancel is pro rata to the merchandise cancelled;
shipping is refunded only when the whole order is cancelled. Rounding never drifts: the order's tax is split over lines by
largest remainder, and each cancel refunds the difference of a line's cumulative share, so
cancelling everything, in any number of steps, refunds exactly what was charged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.order_lines import require_units


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
        require_units(f"cancel on line {ln.line}", now, ln.qty - was)
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
        require_units(f"ship on line {ln.line}", now, ln.qty - was)
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

"""A return's rules (RMA): which lines may come back and whether policy authorizes them at
once, what a return costs the customer (fees), which lines are refunded without a parcel
("keep it"), what each disposition does with the units, and what the customer gets back.

**Authorization** (`assess`), per requested line, against the order's shipped lines:
- refused (422, naming the line and the rule): a SKU the order did not ship (`not_shipped`),
  more units than shipped − already claimed by other returns (`exceeds_shipped`), an unknown
  reason (`unknown_reason`), a quantity below 1 (`qty`);
- for a person (`return_approval`): past the SKU's return window, counted from the ship date
  (`outside_window`), or a SKU that is not returnable (`not_returnable`, window 0 days);
- otherwise authorized at once.
"Already claimed" counts every unit of the line on a return that is still live (not rejected,
cancelled or expired), so two returns racing for the same units cannot together exceed what
shipped: the API assesses under the order's row lock.

**Fees** (`line_fee`): a reason's flat fee per line plus its percent of the line's value,
never more than the line's value; no fee for a defect reason or an outcome the settings
waive it for (store credit, replacement by default).

**Keep it** (`keep_it`): a line worth no more than the threshold is refunded without a
parcel; nothing comes back and no stock moves (its cost stays in COGS: the write-off).

**Dispositions** (`DISPOSITIONS`): where inspected units go from the `returns` bucket:
restock → sellable (ATP rises, backorders wake), refurbish and quarantine → quarantine,
scrap → the scrap location (shrinkage), return_to_vendor → the supplier (a vendor claim).

**Money**: the credit of returned units is their merchandise plus their share of the order's
tax, on the telescoping rule of a cancel (domain.order_money), so returning every unit in
any number of returns credits exactly what was charged for it; shipping is not credited.
The refund is the credit less the fees; store credit adds the settings' bonus; an exchange
charges or refunds the difference between the new order and the credit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.order_money import PricedLine, cancel_refund_amounts

REQUESTED = "requested"
AUTHORIZED = "authorized"
REJECTED = "rejected"
IN_TRANSIT = "in_transit"
RECEIVED = "received"
INSPECTED = "inspected"
COMPLETED = "completed"
CANCELLED = "cancelled"
EXPIRED = "expired"
RETURN_STATUSES: tuple[str, ...] = (
    REQUESTED,
    AUTHORIZED,
    REJECTED,
    IN_TRANSIT,
    RECEIVED,
    INSPECTED,
    COMPLETED,
    CANCELLED,
    EXPIRED,
)
RETURN_DONE: tuple[str, ...] = (REJECTED, COMPLETED, CANCELLED, EXPIRED)
# A return in these statuses holds its units against the order's shipped quantity.
NOT_LIVE: tuple[str, ...] = (REJECTED, CANCELLED, EXPIRED)

REFUND = "refund"
EXCHANGE = "exchange"
REPLACEMENT = "replacement"
STORE_CREDIT = "store_credit"
OUTCOMES: tuple[str, ...] = (REFUND, EXCHANGE, REPLACEMENT, STORE_CREDIT)
NEW_ORDER_OUTCOMES: tuple[str, ...] = (EXCHANGE, REPLACEMENT)

CONDITIONS: tuple[str, ...] = ("new", "opened", "damaged", "defective")
# disposition -> (location kind, bucket): "here" is the receiving location
DISPOSITIONS: dict[str, tuple[str, str]] = {
    "restock": ("here", "sellable"),
    "refurbish": ("here", "quarantine"),
    "quarantine": ("here", "quarantine"),
    "scrap": ("scrap", "virtual"),
    "return_to_vendor": ("supplier", "virtual"),
}

APPROVAL_ACTIONS = ("approve", "reject")
REFUND_APPROVAL_ACTIONS = ("approve", "reject")
OVERDUE_ACTIONS = ("refund_now", "keep_waiting")
RETURN_EXCEPTION_KINDS = ("return_approval", "refund_approval", "refund_overdue")


@dataclass(frozen=True)
class Reason:
    code: str
    label: str
    fee_amount: int = 0  # minor units, per line
    fee_percent: int = 0  # of the line's value
    defect: bool = False


@dataclass(frozen=True)
class ShippedLine:
    """An order line as a return sees it."""

    line: str
    sku: str
    ordered: int
    shipped: int
    cancelled: int
    claimed: int  # units of this line on live returns (this one excluded)
    unit_price: int
    returnable_days: int
    shipped_at: datetime | None

    @property
    def returnable(self) -> int:
        return max(0, self.shipped - self.claimed)


@dataclass(frozen=True)
class WantedLine:
    sku: str
    qty: int
    reason: str


@dataclass(frozen=True)
class LineProblem:
    line: int  # index in the request's lines
    rule: str
    message: str


@dataclass(frozen=True)
class Assessment:
    refused: tuple[LineProblem, ...]  # 422: nothing is recorded
    for_approval: tuple[LineProblem, ...]  # outside policy: a person decides

    @property
    def authorized(self) -> bool:
        return not self.refused and not self.for_approval


def assess(
    wanted: Sequence[WantedLine],
    shipped: Mapping[str, ShippedLine],
    reasons: Mapping[str, Reason],
    now: datetime,
) -> Assessment:
    """Each requested line against the order's shipped lines (by SKU) and the policy."""
    refused: list[LineProblem] = []
    approval: list[LineProblem] = []
    totals: dict[str, int] = {}
    for i, w in enumerate(wanted):
        totals[w.sku] = totals.get(w.sku, 0) + w.qty
        line = shipped.get(w.sku)
        if w.reason not in reasons:
            refused.append(LineProblem(i, "unknown_reason", f"line {i}: unknown return reason {w.reason!r}"))
        if w.qty < 1:
            refused.append(LineProblem(i, "qty", f"line {i}: a return line has at least 1 unit"))
            continue
        if line is None or line.shipped == 0:
            refused.append(LineProblem(i, "not_shipped", f"line {i}: the order shipped no {w.sku}"))
            continue
        if totals[w.sku] > line.returnable:
            msg = (
                f"line {i}: {totals[w.sku]} × {w.sku} asked back, {line.shipped} shipped and "
                f"{line.claimed} already on other returns"
            )
            refused.append(LineProblem(i, "exceeds_shipped", msg))
            continue
        if line.returnable_days <= 0:
            approval.append(LineProblem(i, "not_returnable", f"line {i}: {w.sku} is not returnable"))
        elif line.shipped_at is not None and now > line.shipped_at + timedelta(days=line.returnable_days):
            msg = f"line {i}: {w.sku} shipped {line.shipped_at:%Y-%m-%d}, past its {line.returnable_days}-day window"
            approval.append(LineProblem(i, "outside_window", msg))
    return Assessment(tuple(refused), tuple(approval))


def line_fee(reason: Reason, value: int, outcome: str, fee_free_outcomes: Sequence[str]) -> int:
    """The fee a line pays: none for a defect or a fee-free outcome; never above its value."""
    if reason.defect or outcome in fee_free_outcomes or value <= 0:
        return 0
    return min(value, reason.fee_amount + value * reason.fee_percent // 100)


def keep_it(value: int, threshold: int, outcome: str) -> bool:
    """Refunded without a parcel: a line worth no more than the threshold (0: never).
    A replacement of such a line ships without one coming back, too."""
    return threshold > 0 and 0 < value <= threshold and outcome in OUTCOMES


@dataclass(frozen=True)
class Credit:
    merchandise: int
    tax: int

    @property
    def total(self) -> int:
        return self.merchandise + self.tax


def credit_for(
    order_lines: Sequence[ShippedLine],
    tax_amount: int,
    units: Mapping[str, int],
    credited_before: Mapping[str, int],
) -> Credit:
    """What `units` (order line -> units) returned are worth: merchandise and their share of
    the order's tax, telescoping over what was cancelled or credited on the line before, so
    every unit of a line, credited in any number of steps, returns its share exactly."""
    units = {line: n for line, n in units.items() if n > 0}
    if not units:
        return Credit(0, 0)
    priced = [PricedLine(ln.line, ln.ordered, ln.unit_price) for ln in order_lines]
    before = {ln.line: ln.cancelled + credited_before.get(ln.line, 0) for ln in order_lines}
    money = cancel_refund_amounts(priced, units, 0, tax_amount, before)
    return Credit(money.merchandise, money.tax)


def order_value(lines: Sequence[Mapping[str, object]]) -> int:
    """What the lines of a promised order (`{"sku", "qty", "unit_price"}`) are worth."""
    return sum(int(str(ln["qty"])) * int(str(ln["unit_price"])) for ln in lines)


def store_credit_bonus(credit: int, bonus_percent: int) -> int:
    return max(0, credit) * bonus_percent // 100


def exchange_difference(credit: int, new_order_value: int) -> int:
    """> 0: the customer pays this much more; < 0: this much is refunded."""
    return new_order_value - credit


def needs_refund_approval(amount: int, threshold: int) -> bool:
    return threshold > 0 and amount > threshold


def receive_problems(
    expected: Mapping[str, int], received: Mapping[str, int], arriving: Mapping[str, int]
) -> list[str]:
    """Why a receipt is refused: a SKU the return does not expect, or more than is still due."""
    out = []
    for sku, qty in arriving.items():
        if sku not in expected:
            out.append(f"{sku} is not on this return")
        elif qty < 1:
            out.append(f"{sku}: a receipt line has at least 1 unit")
        elif received.get(sku, 0) + qty > expected[sku]:
            out.append(f"{sku}: {qty} arriving, {expected[sku] - received.get(sku, 0)} still due")
    return out


def inspect_problems(
    received: Mapping[str, int], inspected: Mapping[str, int], lines: Sequence[tuple[str, int, str, str]]
) -> list[str]:
    """Why an inspection is refused: (sku, qty, condition, disposition) for units that have
    not arrived or were inspected already, or an unknown condition or disposition."""
    out = []
    asked: dict[str, int] = {}
    for sku, qty, condition, disposition in lines:
        asked[sku] = asked.get(sku, 0) + qty
        if condition not in CONDITIONS:
            out.append(f"{sku}: condition must be one of {list(CONDITIONS)}")
        if disposition not in DISPOSITIONS:
            out.append(f"{sku}: disposition must be one of {list(DISPOSITIONS)}")
        if qty < 1:
            out.append(f"{sku}: an inspection line has at least 1 unit")
        elif asked[sku] > received.get(sku, 0) - inspected.get(sku, 0):
            out.append(
                f"{sku}: {asked[sku]} to inspect, {received.get(sku, 0) - inspected.get(sku, 0)} uninspected"
            )
    return out


def return_status(
    *,
    authorized: bool,
    expected: int,
    received: int,
    inspected: int,
    settled: bool,
) -> str:
    """The return's status from its units, while it is live (rejected, cancelled and expired
    are set by the step that ends it)."""
    if not authorized:
        return REQUESTED
    if settled and (received == inspected):
        return COMPLETED
    if received == 0:
        return IN_TRANSIT if expected else AUTHORIZED
    if inspected == received:
        return INSPECTED
    return RECEIVED

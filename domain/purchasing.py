"""A purchase order's rules: which lines a supplier's terms allow, when a PO needs approval,
where each unit of a line is, what a receipt does to it (and when it is a discrepancy), what
QC may release, and the three-way match of a vendor bill against the PO and its receipts.

**Line quantities** (`PoLineQty`): the units a line expects are its confirmed quantity (or
the ordered one until the supplier confirms). Each expected unit is still open (inbound),
received (into sellable, or quarantine until QC), damaged, or closed (no longer expected:
cancelled, or a short receipt accepted). Received units may later be rejected by QC or
returned to the supplier.

**Receipts**: each receipt is checked against what is still open, with an over-receipt
tolerance. Units beyond the tolerance, damaged units, and the units still open on a
receipt marked `final` are a discrepancy, which a person settles:
- `accept`: over units stay, damaged units stay in `damaged`, short units close;
- `return_to_vendor`: over and damaged units go back to the supplier, short units close;
- `write_off`: damaged units are scrapped, over units stay, short units close.

**Three-way match**, per bill line:
- quantity: what was billed before plus this line ≤ units kept (received − returned −
  rejected) × (1 + quantity tolerance);
- price: |bill unit cost − PO unit cost| ≤ PO unit cost × value tolerance.

Inside both, the bill posts (GRNI at PO cost → AP at bill cost, the difference to purchase
price variance). Outside either, it waits for finance. Even an accepted mismatch never
bills more units than the quantity rule allows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from domain.errors import InvalidRequest, WrongState

DRAFT = "draft"
AWAITING_APPROVAL = "awaiting_approval"
SENT = "sent"
CONFIRMED = "confirmed"
PARTIALLY_RECEIVED = "partially_received"
RECEIVED = "received"
CLOSED = "closed"
CANCELLED = "cancelled"
PO_STATUSES: tuple[str, ...] = (
    DRAFT,
    AWAITING_APPROVAL,
    SENT,
    CONFIRMED,
    PARTIALLY_RECEIVED,
    RECEIVED,
    CLOSED,
    CANCELLED,
)
PO_DONE: tuple[str, ...] = (CLOSED, CANCELLED)

DISCREPANCY_ACTIONS = ("accept", "return_to_vendor", "write_off")
BILL_ACTIONS = ("accept", "dispute", "reject")
UNCONFIRMED_ACTIONS = ("resend", "keep_waiting", "cancel")
APPROVAL_ACTIONS = ("approve", "reject")


# -- supplier terms and the lines of a new PO -------------------------------------------------


@dataclass(frozen=True)
class SupplierTerms:
    sku: str
    cost: int  # minor units
    currency: str
    moq: int
    order_multiple: int
    lead_time_days: int
    inspect: bool = False  # receipts go to quarantine until QC


@dataclass(frozen=True)
class LineProblem:
    line: int  # index in the request
    rule: str  # not_supplied | moq | order_multiple | positive | duplicate | currency
    message: str


def line_problems(
    lines: Sequence[tuple[str, int]], terms: Mapping[str, SupplierTerms], currency: str
) -> list[LineProblem]:
    """Every rule a new PO's (sku, qty) lines break against the supplier's terms, in order."""
    problems: list[LineProblem] = []
    seen: set[str] = set()
    for i, (sku, qty) in enumerate(lines):
        term = terms.get(sku)
        if sku in seen:
            problems.append(LineProblem(i, "duplicate", f"{sku} is on the PO twice: one line per SKU"))
        seen.add(sku)
        if term is None:
            problems.append(LineProblem(i, "not_supplied", f"the supplier has no terms for {sku}"))
            continue
        if qty <= 0:
            problems.append(LineProblem(i, "positive", f"{sku}: order a positive quantity"))
        elif qty < term.moq:
            problems.append(LineProblem(i, "moq", f"{sku}: {qty} is below the minimum order of {term.moq}"))
        elif qty % term.order_multiple:
            problems.append(
                LineProblem(i, "order_multiple", f"{sku}: {qty} is not a multiple of {term.order_multiple}")
            )
        if term.currency != currency:
            problems.append(
                LineProblem(i, "currency", f"{sku} is bought in {term.currency}, the PO is in {currency}")
            )
    return problems


def expected_at(ordered_at: datetime, terms: Iterable[SupplierTerms]) -> datetime:
    """When the goods are due: the longest lead time of the PO's lines."""
    return ordered_at + timedelta(days=max((t.lead_time_days for t in terms), default=0))


def needs_approval(value: int, threshold: int) -> bool:
    return value > threshold


# -- where the units of a line are -----------------------------------------------------------


@dataclass(frozen=True)
class PoLineQty:
    sku: str
    qty: int
    unit_cost: int
    confirmed: int | None = None
    received: int = 0
    damaged: int = 0
    quarantined: int = 0
    rejected: int = 0
    returned: int = 0
    closed: int = 0
    billed: int = 0

    @property
    def expected(self) -> int:
        return self.qty if self.confirmed is None else self.confirmed

    @property
    def open(self) -> int:
        """Units still inbound."""
        return max(0, self.expected - self.received - self.damaged - self.closed)

    @property
    def kept(self) -> int:
        """Units of this line we keep and may be billed for."""
        return self.received - self.returned - self.rejected


def po_status(lines: Sequence[PoLineQty], *, sent: bool, confirmed: bool, cancelled: bool) -> str:
    """The PO's status from its lines (before it is closed, which a step decides)."""
    got = sum(ln.received + ln.damaged for ln in lines)
    if not any(ln.open for ln in lines):
        if got == 0:
            return CANCELLED if cancelled or sent else SENT
        return RECEIVED
    if got:
        return PARTIALLY_RECEIVED
    if confirmed:
        return CONFIRMED
    return SENT if sent else DRAFT


def ready_to_close(lines: Sequence[PoLineQty], qty_tolerance: float) -> bool:
    """Nothing inbound, nothing in quarantine, and every kept unit billed (within tolerance)."""
    return all(
        ln.open == 0 and ln.quarantined == 0 and ln.billed >= ln.kept - int(ln.kept * qty_tolerance)
        for ln in lines
    ) and any(ln.received + ln.damaged for ln in lines)


# -- confirmation -----------------------------------------------------------------------------


def check_confirmation(lines: Mapping[str, PoLineQty], confirmed: Sequence[tuple[str, int]]) -> None:
    for sku, qty in confirmed:
        if sku not in lines:
            raise InvalidRequest(f"{sku} is not on this purchase order")
        if qty < 0 or qty > lines[sku].qty:
            raise InvalidRequest(f"{sku}: confirm between 0 and the {lines[sku].qty} ordered")


# -- receipts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedUnits:
    sku: str
    qty_received: int
    qty_damaged: int = 0


@dataclass(frozen=True)
class ReceiptCheck:
    """What a receipt does per SKU: `good` units go to stock, `over` of them are beyond the
    tolerance, `damaged` arrived damaged, `short` are still open on a final receipt."""

    good: dict[str, int] = field(default_factory=dict)
    over: dict[str, int] = field(default_factory=dict)
    damaged: dict[str, int] = field(default_factory=dict)
    short: dict[str, int] = field(default_factory=dict)

    @property
    def discrepancy(self) -> bool:
        return bool(self.over or self.damaged or self.short)


def check_receipt(
    lines: Mapping[str, PoLineQty], received: Sequence[ReceivedUnits], tolerance: float, *, final: bool
) -> ReceiptCheck:
    """Refused for a SKU not on the PO or a negative quantity; otherwise what it does."""
    check = ReceiptCheck()
    seen: set[str] = set()
    for r in received:
        ln = lines.get(r.sku)
        if ln is None:
            raise InvalidRequest(f"{r.sku} is not on this purchase order")
        if r.sku in seen:
            raise InvalidRequest(f"{r.sku} is on the receipt twice: one line per SKU")
        seen.add(r.sku)
        if r.qty_received < 0 or r.qty_damaged < 0 or r.qty_received + r.qty_damaged == 0:
            raise InvalidRequest(
                f"{r.sku}: receive a positive quantity (received and damaged are not negative)"
            )
        # Over is counted on good units: a damaged unit is its own discrepancy.
        allowed = int(ln.expected * (1 + tolerance)) - ln.received
        over = max(0, r.qty_received - max(allowed, 0))
        check.good[r.sku] = r.qty_received
        if over:
            check.over[r.sku] = over
        if r.qty_damaged:
            check.damaged[r.sku] = r.qty_damaged
    if final:
        for sku, ln in lines.items():
            got = check.good.get(sku, 0) + check.damaged.get(sku, 0)
            if ln.open - got > 0:
                check.short[sku] = ln.open - got
    return check


def apply_receipt(line: PoLineQty, good: int, damaged: int, *, inspect: bool) -> PoLineQty:
    return replace(
        line,
        received=line.received + good,
        damaged=line.damaged + damaged,
        quarantined=line.quarantined + (good if inspect else 0),
    )


Settlement = Literal["accept", "return_to_vendor", "write_off"]


@dataclass(frozen=True)
class SettledUnits:
    """What settling a discrepancy moves, per SKU."""

    returned: dict[str, int] = field(default_factory=dict)  # to the supplier (over and damaged)
    scrapped: dict[str, int] = field(default_factory=dict)  # damaged, written off
    closed: dict[str, int] = field(default_factory=dict)  # short units no longer expected


def settle_discrepancy(
    action: str, over: Mapping[str, int], damaged: Mapping[str, int], short: Mapping[str, int]
) -> SettledUnits:
    if action not in DISCREPANCY_ACTIONS:
        raise InvalidRequest(f"action {action!r} is not one of {list(DISCREPANCY_ACTIONS)}")
    returned: dict[str, int] = {}
    if action == "return_to_vendor":
        for sku in sorted({*over, *damaged}):
            returned[sku] = over.get(sku, 0) + damaged.get(sku, 0)
    scrapped = dict(damaged) if action == "write_off" else {}
    return SettledUnits(returned=returned, scrapped=scrapped, closed=dict(short))


# -- QC ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QcResult:
    sku: str
    qty: int
    result: str  # pass | fail
    disposition: str = ""  # for fail: return_to_vendor | scrap


def check_qc(lines: Mapping[str, PoLineQty], results: Sequence[QcResult]) -> None:
    asked: dict[str, int] = {}
    for r in results:
        ln = lines.get(r.sku)
        if ln is None:
            raise InvalidRequest(f"{r.sku} is not on this purchase order")
        if r.qty <= 0:
            raise InvalidRequest(f"{r.sku}: a QC result is for a positive quantity")
        if r.result not in ("pass", "fail"):
            raise InvalidRequest(f"{r.sku}: result is pass or fail")
        if r.result == "fail" and r.disposition not in ("return_to_vendor", "scrap"):
            raise InvalidRequest(f"{r.sku}: a failed unit goes to return_to_vendor or scrap")
        asked[r.sku] = asked.get(r.sku, 0) + r.qty
        if asked[r.sku] > ln.quarantined:
            raise WrongState(f"{r.sku}: {ln.quarantined} units are in quarantine, not {asked[r.sku]}")


# -- three-way match -------------------------------------------------------------------------


@dataclass(frozen=True)
class BilledLine:
    sku: str
    qty: int
    unit_cost: int


@dataclass(frozen=True)
class MatchedLine:
    sku: str
    qty: int  # units this bill posts (an accepted mismatch: capped by the quantity rule)
    received_value: int  # at PO cost: what leaves GRNI
    billed: int  # at bill cost: what AP owes
    price_variance: int  # billed - received_value


@dataclass(frozen=True)
class Match:
    lines: tuple[MatchedLine, ...]
    mismatches: tuple[dict[str, object], ...]

    @property
    def total(self) -> int:
        return sum(ln.billed for ln in self.lines)


def match_bill(
    lines: Mapping[str, PoLineQty], bill: Sequence[BilledLine], qty_tolerance: float, value_tolerance: float
) -> Match:
    """The three-way match of a bill (refused for a SKU not on the PO or a bad number)."""
    matched: list[MatchedLine] = []
    mismatches: list[dict[str, object]] = []
    for b in bill:
        ln = lines.get(b.sku)
        if ln is None:
            raise InvalidRequest(f"{b.sku} is not on this purchase order")
        if b.qty <= 0 or b.unit_cost < 0:
            raise InvalidRequest(f"{b.sku}: bill a positive quantity at a non-negative cost")
        allowed = int(ln.kept * (1 + qty_tolerance)) - ln.billed
        if b.qty > allowed:
            mismatches.append(
                {"sku": b.sku, "rule": "quantity", "billed": b.qty, "billable": max(allowed, 0)}
            )
        if abs(b.unit_cost - ln.unit_cost) > ln.unit_cost * value_tolerance:
            mismatches.append(
                {"sku": b.sku, "rule": "price", "billed_unit_cost": b.unit_cost, "po_unit_cost": ln.unit_cost}
            )
        qty = max(0, min(b.qty, allowed))
        received_value = qty * ln.unit_cost
        billed = qty * b.unit_cost
        matched.append(MatchedLine(b.sku, qty, received_value, billed, billed - received_value))
    return Match(tuple(matched), tuple(mismatches))

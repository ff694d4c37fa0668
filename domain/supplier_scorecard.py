"""A supplier's scorecard over the purchase orders sent to it in a window: the arithmetic on
facts read by models.supplier_scorecard (one row per PO line, one per PO). A KPI with no
data yet is None, never an invented number.

**On time in full** (OTIF): the share of PO lines received complete (received ≥ expected:
the confirmed quantity, else the ordered one; damaged units do not count) by the line's due
moment (its `promised_at`, else the PO's `expected_at`). A line is complete at the receipt
that brought its cumulative `qty_received` to the expected quantity. Only lines whose outcome
is known count: complete (on time or late), past due, or on a PO that expects nothing more
(received, closed, cancelled). A line confirmed at 0 is never in full.

**Lead-time variance**: per PO with a receipt, actual lead time (first receipt − sent, in
days) minus the quoted one (the longest of its lines' lead times: the supplier item's own,
else the supplier's, as `domain.purchasing.expected_at` plans it); the mean, and the sample
standard deviation (n − 1: None below two POs).

**Rejection rate**: (units rejected by QC + units arrived damaged) / (units received +
units arrived damaged)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from statistics import fmean, stdev

# A PO in one of these expects nothing more: a line not complete by now never will be.
NOTHING_MORE: tuple[str, ...] = ("received", "closed", "cancelled")
DAY = timedelta(days=1)


@dataclass(frozen=True)
class LineFacts:
    po_number: str
    sku: str
    expected: int  # confirmed, else ordered
    received: int  # accepted into stock (sellable or quarantine)
    damaged: int  # arrived damaged
    rejected: int  # of received, failed QC
    due_at: datetime | None  # promised_at, else the PO's expected_at
    complete_at: datetime | None  # the receipt that brought received to expected
    po_status: str

    def judged(self, as_of: datetime) -> bool:
        """Its outcome is known: complete, past due, or nothing more is coming."""
        return (
            self.complete_at is not None
            or (self.due_at is not None and self.due_at <= as_of)
            or self.po_status in NOTHING_MORE
        )

    @property
    def on_time_in_full(self) -> bool:
        return (
            self.expected > 0
            and self.received >= self.expected
            and self.complete_at is not None
            and (self.due_at is None or self.complete_at <= self.due_at)
        )


@dataclass(frozen=True)
class PoFacts:
    number: str
    sent_at: datetime
    first_receipt_at: datetime | None
    quoted_days: int  # the longest quoted lead time of its lines
    receipts: int

    @property
    def variance_days(self) -> float | None:
        """Actual lead time minus the quoted one, in days (None before the first receipt)."""
        if self.first_receipt_at is None:
            return None
        return (self.first_receipt_at - self.sent_at) / DAY - self.quoted_days


@dataclass(frozen=True)
class Scorecard:
    on_time_in_full: Fraction | None
    lead_time_variance_mean: float | None
    lead_time_variance_std_dev: float | None
    rejection_rate: Fraction | None
    pos: int
    lines: int
    receipts: int
    units: int  # arrived: received + damaged
    lines_judged: int  # the OTIF denominator
    pos_received: int  # POs with a receipt: the lead-time observations


def _share(part: int, whole: int) -> Fraction | None:
    return Fraction(part, whole) if whole else None


def scorecard(lines: Sequence[LineFacts], pos: Sequence[PoFacts], as_of: datetime) -> Scorecard:
    judged = [ln for ln in lines if ln.judged(as_of)]
    variances = [v for v in (po.variance_days for po in pos) if v is not None]
    arrived = sum(ln.received + ln.damaged for ln in lines)
    bad = sum(ln.rejected + ln.damaged for ln in lines)
    return Scorecard(
        on_time_in_full=_share(sum(ln.on_time_in_full for ln in judged), len(judged)),
        lead_time_variance_mean=fmean(variances) if variances else None,
        lead_time_variance_std_dev=stdev(variances) if len(variances) >= 2 else None,
        rejection_rate=_share(bad, arrived),
        pos=len(pos),
        lines=len(lines),
        receipts=sum(po.receipts for po in pos),
        units=arrived,
        lines_judged=len(judged),
        pos_received=len(variances),
    )

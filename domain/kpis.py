"""The KPI report's arithmetic on the facts models.kpis* read from Postgres (counts, sums and
percentiles over a window); the definitions are in domain.kpi_definitions. A KPI with no
data yet is None, never an invented number: a ratio with nothing to divide by, a percentile
over no observations.

The window is half-open, [from, to), in UTC. Ratios are 0..1 (4 decimals), durations are
seconds (1 decimal) unless a unit says milliseconds, money is in minor units."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.supplier_scorecard import LineFacts, scorecard

# A return line counts against a perfect order when its reason is a defect or the unit came
# back in one of these conditions (return inspection's vocabulary, domain.returns).
DEFECT_CONDITIONS: tuple[str, ...] = ("damaged", "defective")
# Returns that will not bring anything back count for no return rate or perfect order.
DEAD_RETURNS: tuple[str, ...] = ("rejected", "cancelled", "expired")
# The outcomes whose settlement gives the customer money or credit: time to refund.
REFUND_OUTCOMES: tuple[str, ...] = ("refund", "store_credit")


def ratio(part: int, whole: int) -> float | None:
    """part ÷ whole to 4 decimals; None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None


def seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def ratios(parts: Mapping[str, int], wholes: Mapping[str, int]) -> dict[str, float | None]:
    """Per key: its part ÷ its whole (keys of either side; None where its whole is 0)."""
    return {k: ratio(parts.get(k, 0), wholes.get(k, 0)) for k in sorted({*parts, *wholes})}


@dataclass(frozen=True)
class OrderFacts:
    """Aggregates over the orders received in a window (models.kpis)."""

    judged: int = 0  # orders whose outcome is known
    perfect: int = 0
    lines: int = 0  # of judged orders
    lines_complete: int = 0
    units: int = 0
    units_shipped: int = 0
    to_ship: int = 0  # judged orders with a unit not cancelled
    on_time: int = 0
    shipped: int = 0  # orders with a shipment shipped
    split: int = 0
    done: int = 0  # orders that shipped all they will ship: the cycle-time observations
    cycle_p50: float | None = None
    cycle_p95: float | None = None


def order_kpis(f: OrderFacts) -> dict[str, dict[str, object]]:
    """The order KPIs' figures (without unit and definition)."""
    return {
        "fill_rate": {
            "value": ratio(f.lines_complete, f.lines),
            "units": ratio(f.units_shipped, f.units),
            "counts": {
                "orders": f.judged,
                "lines": f.lines,
                "lines_complete": f.lines_complete,
                "units": f.units,
                "units_shipped": f.units_shipped,
            },
        },
        "perfect_order_rate": {
            "value": ratio(f.perfect, f.judged),
            "counts": {"orders": f.judged, "perfect": f.perfect},
        },
        "order_cycle_time": {
            "value": seconds(f.cycle_p50),
            "p50": seconds(f.cycle_p50),
            "p95": seconds(f.cycle_p95),
            "counts": {"orders": f.done},
        },
        "on_time_ship_rate": {
            "value": ratio(f.on_time, f.to_ship),
            "counts": {"orders": f.to_ship, "on_time": f.on_time},
        },
        "split_shipment_rate": {
            "value": ratio(f.split, f.shipped),
            "counts": {"orders": f.shipped, "split": f.split},
        },
    }


@dataclass(frozen=True)
class Backorders:
    orders: int = 0  # orders received in the window (none: no data yet)
    lines: int = 0
    units: int = 0
    age_p50: float | None = None
    age_max: float | None = None


def backorder_kpi(b: Backorders) -> dict[str, object]:
    """Nothing backordered among orders received is a figure (0); no orders is no data."""
    count = b.lines if b.orders else None
    return {
        "value": count,
        "count": count,
        "units": b.units,
        "aging": {"p50": seconds(b.age_p50), "max": seconds(b.age_max)},
    }


@dataclass(frozen=True)
class Durations:
    """Observations of a duration: how many, and their p50 / p95 (p99 for publish lag)."""

    n: int = 0
    p50: float | None = None
    high: float | None = None


def duration_kpi(d: Durations, high: str = "p95", **extra: object) -> dict[str, object]:
    return {
        "value": seconds(d.p50),
        "p50": seconds(d.p50),
        high: seconds(d.high),
        "counts": {"n": d.n},
        **extra,
    }


@dataclass(frozen=True)
class Units:
    sku: str
    channel: str
    units: int
    reason: str = ""


def _by(rows: Sequence[Units], key: Callable[[Units], str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[key(r)] = out.get(key(r), 0) + r.units
    return out


def return_rate_kpi(returned: Sequence[Units], shipped: Sequence[Units], in_use: bool) -> dict[str, object]:
    """Before the first return ever (`in_use` false) there is no data: null, not 0."""
    back, sent = sum(r.units for r in returned), sum(r.units for r in shipped)
    by_sku = ratios(_by(returned, lambda r: r.sku), _by(shipped, lambda r: r.sku))
    by_channel = ratios(_by(returned, lambda r: r.channel), _by(shipped, lambda r: r.channel))
    return {
        "value": ratio(back, sent) if in_use else None,
        "by_sku": by_sku if in_use else {},
        "by_channel": by_channel if in_use else {},
        "by_reason": {k: ratio(n, sent) for k, n in sorted(_by(returned, lambda r: r.reason).items())},
        "counts": {"returned": back, "shipped": sent},
    }


@dataclass(frozen=True)
class Accuracy:
    lines: int = 0
    exact: int = 0
    within_tolerance: int = 0


def accuracy_kpi(a: Accuracy) -> dict[str, object]:
    return {
        "value": ratio(a.exact, a.lines),
        "within_tolerance": ratio(a.within_tolerance, a.lines),
        "counts": {"lines": a.lines, "exact": a.exact, "within_tolerance": a.within_tolerance},
    }


@dataclass(frozen=True)
class Oversell:
    buckets: int = 0
    units: int = 0


def oversell_kpi(o: Oversell) -> dict[str, object]:
    return {"value": o.units, "buckets": o.buckets}


@dataclass(frozen=True)
class ExceptionKind:
    kind: str
    open: int
    age_p50: float | None
    age_max: float | None
    opened: int  # in the window
    breaches: int


def exceptions_kpi(kinds: Sequence[ExceptionKind]) -> dict[str, object]:
    """An empty queue is a figure (0 open), not missing data."""
    return {
        "value": sum(k.open for k in kinds),
        "sla_breaches": sum(k.breaches for k in kinds),
        "by_kind": {
            k.kind: {
                "open": k.open,
                "age": {"p50": seconds(k.age_p50), "max": seconds(k.age_max)},
                "opened": k.opened,
                "sla_breaches": k.breaches,
            }
            for k in kinds
        },
    }


@dataclass(frozen=True)
class ChannelMargin:
    channel: str | None  # None: a posting that names no channel and is for no order or return
    currency: str
    revenue: int
    cogs: int
    refunds: int

    @property
    def margin(self) -> int:
        return self.revenue - self.cogs - self.refunds


def margin_kpi(rows: Sequence[ChannelMargin]) -> dict[str, object]:
    return {
        "value": [
            {
                "channel": r.channel,
                "currency": r.currency,
                "revenue": r.revenue,
                "cogs": r.cogs,
                "refunds": r.refunds,
                "margin": r.margin,
                "margin_rate": ratio(r.margin, r.revenue) if r.revenue > 0 else None,
            }
            for r in rows
        ]
        or None
    }


def supplier_kpi(lines: Mapping[str, Sequence[LineFacts]], as_of: datetime) -> dict[str, object]:
    """OTIF over every supplier's judged lines, and each supplier's own."""
    cards = {code: scorecard(ls, [], as_of) for code, ls in sorted(lines.items())}
    judged = sum(c.lines_judged for c in cards.values())
    met = sum(ln.on_time_in_full for ls in lines.values() for ln in ls if ln.judged(as_of))
    return {
        "value": ratio(met, judged),
        "by_supplier": {
            code: None if c.on_time_in_full is None else round(float(c.on_time_in_full), 4)
            for code, c in cards.items()
        },
        "counts": {"lines_judged": judged, "on_time_in_full": met},
    }


@dataclass(frozen=True)
class ChannelLag:
    channel: str | None  # None: all channels together
    n: int
    p50: float | None
    p99: float | None


def publish_lag_kpi(rows: Sequence[ChannelLag]) -> dict[str, object]:
    total = next((r for r in rows if r.channel is None), ChannelLag(None, 0, None, None))

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "value": ms(total.p50),
        "p50": ms(total.p50),
        "p99": ms(total.p99),
        "by_channel": {
            r.channel: {"p50": ms(r.p50), "p99": ms(r.p99), "deliveries": r.n} for r in rows if r.channel
        },
        "counts": {"deliveries": total.n},
    }

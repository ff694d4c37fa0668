"""Replenishment: what to buy for each SKU at each location, the draft POs that buys it, and
how a policy would have done against recorded demand.

**Demand** per day = units shipped from the location (stock moves to `customer`) over the
last `demand_days` days ÷ `demand_days`, × the factor active on the day. The factor: the
SKU's own factors active that day if it has any, else its category's; several active at the
same level multiply (a promotion inside a season: 1.5 × 1.2 = 1.8); none active: 1.

- **reorder point** (ROP) = demand × lead time days + safety stock;
- **order-up-to** (OUT) = ROP + demand × review days;
- **inventory position** = on hand (sellable + quarantine) + inbound − reserved.

An order is suggested when position **<** ROP, strictly: at a position ≥ ROP nothing is
ordered (this is the property the tests check). The need, OUT − position rounded up to a
whole unit, becomes the smallest multiple of the order multiple that is ≥ max(need, MOQ).
The supplier is the policy's when it supplies the SKU, else the cheapest (cost, then lead
time, then code). Arithmetic is exact (fractions); the API shows it rounded.

**Simulation** replays a policy day by day over the last N days of recorded daily demand,
starting from today's inventory position with nothing on order (a documented simplification:
no reconstruction of the position N days ago; the current and the proposed policy start from
the same point, so they compare fairly). Each day: what was ordered lead-time days ago
arrives, the day's demand is served from on hand (what is missing is short: lost, not
backordered), then the position is reviewed against the ROP of that day, the demand rate
being the policy's window of the days before (rolling, so no day sees its own future)."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from functools import reduce
from operator import mul
from statistics import NormalDist, pstdev

ONE = Fraction(1)
DEFAULT_REVIEW_DAYS = 7  # a SKU-location without a policy row
PO_NUMBER_LIMIT = 64


@dataclass(frozen=True)
class Factor:
    """A seasonality or promotion factor for one SKU or one category, over dates (inclusive)."""

    starts_on: date
    ends_on: date
    factor: Fraction
    sku: str | None = None
    category: str | None = None


class Factors:
    """The factors by SKU and by category: the factor of a SKU on a day."""

    def __init__(self, factors: Iterable[Factor]) -> None:
        self.by_sku: dict[str, list[Factor]] = defaultdict(list)
        self.by_category: dict[str, list[Factor]] = defaultdict(list)
        for f in factors:
            if f.sku is not None:
                self.by_sku[f.sku].append(f)
            elif f.category is not None:
                self.by_category[f.category].append(f)

    def on(self, sku: str, category: str | None, day: date) -> Fraction:
        active = [f.factor for f in self.by_sku.get(sku, ()) if f.starts_on <= day <= f.ends_on]
        if not active and category is not None:
            found = self.by_category.get(category, ())
            active = [f.factor for f in found if f.starts_on <= day <= f.ends_on]
        return reduce(mul, active, ONE)


@dataclass(frozen=True)
class SupplierOption:
    supplier: str
    sku: str
    cost: int  # minor units of `currency`
    currency: str
    moq: int
    order_multiple: int
    lead_time_days: int


@dataclass(frozen=True)
class StockPoint:
    """One SKU at one location as it stands, with its policy (or the defaults)."""

    sku: str
    location: str
    category: str | None
    on_hand: int  # sellable + quarantine
    inbound: int
    reserved: int
    safety_stock: int = 0
    review_days: int = DEFAULT_REVIEW_DAYS
    supplier: str | None = None  # the policy's supplier

    @property
    def position(self) -> int:
        return self.on_hand + self.inbound - self.reserved


@dataclass(frozen=True)
class Suggestion:
    point: StockPoint
    shipped: int
    demand_days: int
    demand_per_day: Fraction
    factor: Fraction
    reorder_point: Fraction
    order_up_to: Fraction
    suggested_qty: int
    option: SupplierOption | None
    why: str


def choose_supplier(options: Sequence[SupplierOption], preferred: str | None) -> SupplierOption | None:
    """The policy's supplier when it supplies the SKU, else the cheapest."""
    for o in options:
        if o.supplier == preferred:
            return o
    return min(options, key=lambda o: (o.cost, o.lead_time_days, o.supplier), default=None)


def order_qty(need: int, moq: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is ≥ max(need, moq); 0 when nothing is needed."""
    if need <= 0:
        return 0
    return -(-max(need, moq) // max(multiple, 1)) * max(multiple, 1)


def fmt(x: Fraction | float) -> str:
    """A number as people read it: at most three decimals, no trailing zeros."""
    return f"{float(x):.3f}".rstrip("0").rstrip(".")


def suggest(
    point: StockPoint, shipped: int, demand_days: int, factor: Fraction, option: SupplierOption | None
) -> Suggestion:
    """The suggestion for one SKU-location (see the module's arithmetic)."""
    demand = Fraction(shipped, demand_days) * factor
    lead = option.lead_time_days if option else 0
    rop = demand * lead + point.safety_stock
    out = rop + demand * point.review_days
    position = point.position
    need = math.ceil(out - position) if position < rop else 0
    qty = order_qty(need, option.moq, option.order_multiple) if option else 0
    scaled = f" × factor {fmt(factor)}" if factor != ONE else ""
    why = (
        f"demand {fmt(demand)}/day = {shipped} shipped in {demand_days} days ÷ {demand_days}{scaled}; "
        f"reorder point {fmt(demand)} × {lead} days lead + {point.safety_stock} safety = {fmt(rop)}; "
        f"order-up-to {fmt(rop)} + {fmt(demand)} × {point.review_days} review days = {fmt(out)}; "
        f"position {point.on_hand} on hand + {point.inbound} inbound − {point.reserved} reserved = {position}"
    )
    if option is None:
        why += f"; no supplier supplies {point.sku}: nothing to order"
    elif qty:
        why += (
            f" < {fmt(rop)}: need {fmt(out)} − {position} → {need}, ordered {qty}"
            f" (MOQ {option.moq}, multiple {option.order_multiple}) from {option.supplier}"
        )
    else:
        why += f" ≥ {fmt(rop)}: nothing to order"
    return Suggestion(point, shipped, demand_days, demand, factor, rop, out, qty, option, why)


def suggest_all(
    points: Iterable[StockPoint],
    shipped: Mapping[tuple[str, str], int],
    demand_days: int,
    factors: Factors,
    options: Mapping[str, Sequence[SupplierOption]],
    today: date,
) -> list[Suggestion]:
    return [
        suggest(
            p,
            shipped.get((p.sku, p.location), 0),
            demand_days,
            factors.on(p.sku, p.category, today),
            choose_supplier(options.get(p.sku, ()), p.supplier),
        )
        for p in points
    ]


# -- draft purchase orders --------------------------------------------------------------------


@dataclass(frozen=True)
class DraftLine:
    sku: str
    qty: int
    unit_cost: int


@dataclass(frozen=True)
class DraftOrder:
    number: str
    supplier: str
    location: str
    currency: str
    lead_time_days: int  # the longest of its lines
    lines: tuple[DraftLine, ...]

    @property
    def value(self) -> int:
        return sum(ln.qty * ln.unit_cost for ln in self.lines)


def po_number(run_id: str, supplier: str, location: str) -> str:
    """`R-{run_id}-{supplier}-{location}`; a digest of supplier and location when that is
    longer than a PO number may be (the run id is at most 48 characters)."""
    number = f"R-{run_id}-{supplier}-{location}"
    if len(number) <= PO_NUMBER_LIMIT:
        return number
    digest = hashlib.sha256(f"{supplier}|{location}".encode()).hexdigest()[:12]
    return f"R-{run_id}-{digest}"


def draft_orders(suggestions: Iterable[Suggestion], run_id: str) -> list[DraftOrder]:
    """One draft PO per supplier, location (and currency, should a supplier sell in two),
    with a line per suggested SKU; numbers derived from the run id, so a rerun finds them."""
    groups: dict[tuple[str, str, str], list[Suggestion]] = defaultdict(list)
    for s in suggestions:
        if s.suggested_qty > 0 and s.option is not None:
            groups[(s.option.supplier, s.point.location, s.option.currency)].append(s)
    currencies: dict[tuple[str, str], int] = defaultdict(int)
    for supplier, location, _ in groups:
        currencies[(supplier, location)] += 1
    orders = []
    for (supplier, location, currency), group in sorted(groups.items()):
        where = location if currencies[(supplier, location)] == 1 else f"{location}-{currency}"
        lines = tuple(
            DraftLine(s.point.sku, s.suggested_qty, s.option.cost if s.option else 0)
            for s in sorted(group, key=lambda s: s.point.sku)
        )
        lead = max(s.option.lead_time_days if s.option else 0 for s in group)
        orders.append(
            DraftOrder(po_number(run_id, supplier, where), supplier, location, currency, lead, lines)
        )
    return orders


# -- simulation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What a simulation varies. `None`: as the SKU-location's own policy has it."""

    demand_days: int
    factors: Factors
    safety_stock: int | None = None
    safety_stock_multiplier: float | None = None
    review_days: int | None = None
    service_level: float | None = None  # safety stock = z × σ(daily demand) × √lead time


@dataclass(frozen=True)
class SimItem:
    point: StockPoint
    option: SupplierOption
    history: tuple[int, ...]  # units shipped per day, oldest first, the last one yesterday


@dataclass(frozen=True)
class SimOutcome:
    stock_out_days: int = 0  # SKU-location-days with demand not served
    units_short: int = 0
    cover_days: float = 0.0  # Σ end-of-day on hand ÷ average daily demand
    cover_samples: int = 0
    purchase_value: int = 0  # Σ qty × unit cost of what the policy ordered (minor units)
    orders: int = 0

    def __add__(self, other: SimOutcome) -> SimOutcome:
        return SimOutcome(
            self.stock_out_days + other.stock_out_days,
            self.units_short + other.units_short,
            self.cover_days + other.cover_days,
            self.cover_samples + other.cover_samples,
            self.purchase_value + other.purchase_value,
            self.orders + other.orders,
        )

    @property
    def average_days_of_cover(self) -> float | None:
        return self.cover_days / self.cover_samples if self.cover_samples else None


def safety_of(item: SimItem, policy: Policy) -> int:
    own = item.point.safety_stock
    if policy.service_level is not None:
        window = item.history[-policy.demand_days :] or (0,)
        z = NormalDist().inv_cdf(policy.service_level)
        return max(0, math.ceil(z * pstdev(window) * math.sqrt(item.option.lead_time_days)))
    if policy.safety_stock is not None:
        return policy.safety_stock
    if policy.safety_stock_multiplier is not None:
        return math.ceil(own * policy.safety_stock_multiplier)
    return own


def simulate_item(item: SimItem, days: int, policy: Policy, today: date) -> SimOutcome:
    """Replay one SKU-location over the last `days` days of its history (module docstring)."""
    hist, opt, point = item.history, item.option, item.point
    start = max(len(hist) - days, 0)
    dd = policy.demand_days
    prefix = [0]
    for units in hist:
        prefix.append(prefix[-1] + units)
    safety = safety_of(item, policy)
    review = point.review_days if policy.review_days is None else policy.review_days
    average = (prefix[-1] - prefix[start]) / max(len(hist) - start, 1)
    on_hand, on_order = max(point.position, 0), 0
    arrivals: dict[int, int] = defaultdict(int)
    short_days = short = cover_samples = orders = value = 0
    cover = 0.0
    for t in range(start, len(hist)):
        got = arrivals.pop(t, 0)
        on_hand, on_order = on_hand + got, on_order - got
        served = min(on_hand, hist[t])
        on_hand -= served
        if served < hist[t]:
            short_days, short = short_days + 1, short + hist[t] - served
        if average > 0:
            cover, cover_samples = cover + on_hand / average, cover_samples + 1
        day = today - timedelta(days=len(hist) - t)
        factor = float(policy.factors.on(point.sku, point.category, day))
        rate = (prefix[t + 1] - prefix[max(t + 1 - dd, 0)]) / dd * factor
        rop = rate * opt.lead_time_days + safety
        position = on_hand + on_order
        if position < rop:
            qty = order_qty(math.ceil(rop + rate * review - position - 1e-9), opt.moq, opt.order_multiple)
            value, orders = value + qty * opt.cost, orders + 1
            if opt.lead_time_days == 0:
                on_hand += qty
            else:
                arrivals[t + opt.lead_time_days] += qty
                on_order += qty
    return SimOutcome(short_days, short, cover, cover_samples, value, orders)


def simulate(items: Iterable[SimItem], days: int, policy: Policy, today: date) -> SimOutcome:
    return sum((simulate_item(item, days, policy, today) for item in items), SimOutcome())

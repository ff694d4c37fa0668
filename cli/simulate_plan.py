"""What `omniflow simulate` will do, when, per actor: made by one `random.Random(seed)` before
anything is sent, so the same seed (and bounds) gives the same plan, and the run only carries
it out. Times are seconds from the start of the run.

- **Channels** (web, marketplace, b2b, store) place orders at `rate` per second (Poisson
  arrivals), each from its own mix of SKUs, quantities and express share, with one promotion a
  channel (a discount and a boost of one SKU for a while); some orders carry a trouble that
  holds them (a bad address, a pending payment, a fraud-review profile); some are cancelled by
  the customer (a few too late, after they shipped); some come back as a return.
- **A flash sale**: a burst of one-unit orders for a limited SKU from three channels, far more
  orders than units, none allowing a backorder: the shop refuses what it cannot promise.
- **The warehouse** picks each shipment a while after it appears, sometimes short; receives
  returns and inspects them; receives purchase orders (sometimes with damaged units).
- **Suppliers** confirm purchase orders after a delay, some late enough to escalate.
- **The approver desk** answers some kinds of exception (a share of each, some only after they
  escalated) and lets the others run past their SLA to their default action (`decide`)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from cli.demo import SKUS

_ROWS: list[dict[str, Any]] = SKUS
FLASH_SKU: dict[str, Any] = {
    "code": "SNEAKER-LTD",
    "name": "Limited sneaker drop",
    "unit_cost": 5000,
    "price": 12000,
}
PRICES: dict[str, int] = {str(s["code"]): int(s["price"]) for s in [*_ROWS, FLASH_SKU]}
KITS = {
    str(s["code"]): [(c["sku"], c["qty"]) for c in s.get("components", [])] for s in _ROWS if s.get("kind")
}
# Where opening stock goes (a share of what the planned orders need), and which SKUs carry a lot.
STOCK_SPLIT = (("DC-EAST", 0.5), ("DC-WEST", 0.3), ("STORE-SF", 0.2))
STOCK_COVER = 0.85  # the rest backorders until a purchase order (or nobody) brings it
LOTS = {"COFFEE-1": ("SIM-LOT-1", "2030-01-01T00:00:00Z")}  # lot-tracked: its stock needs a lot
TROUBLES = ("address", "payment", "fraud")


@dataclass(frozen=True)
class Mix:
    """A channel's habits: its share of the traffic, SKU weights, units a line, lines an order,
    and the share of orders with each trouble, cancelled, returned."""

    channel: str
    share: float
    skus: dict[str, int]
    qty: tuple[int, int]
    lines: tuple[int, int]
    express: float
    troubles: dict[str, float]
    cancel: float
    returns: float
    discount: float = 0.0  # the channel's standing discount (wholesale)


MIXES = (
    Mix("web", 0.45, {"TEE-1": 5, "HOODIE-1": 3, "MUG-1": 3, "BOOT-1": 1, "GIFT-SET-1": 1, "CANDLE-1": 1},
        (1, 2), (1, 3), 0.2, {"address": 0.04, "payment": 0.04, "fraud": 0.03}, 0.06, 0.15),
    Mix("marketplace", 0.3, {"TEE-1": 4, "HOODIE-1": 2, "MUG-1": 2, "BOOT-1": 1},
        (1, 2), (1, 2), 0.1, {"address": 0.03, "fraud": 0.04}, 0.04, 0.1),
    Mix("b2b", 0.1, {"MUG-1": 3, "COFFEE-1": 3, "TEE-1": 2},
        (6, 24), (1, 3), 0.0, {"payment": 0.1}, 0.02, 0.0, discount=0.2),
    Mix("store", 0.15, {"TEE-1": 3, "MUG-1": 3, "CANDLE-1": 2, "HOODIE-1": 1},
        (1, 1), (1, 2), 0.0, {}, 0.0, 0.05),
)  # fmt: skip # kept aligned: one channel a row, its habits read across


@dataclass(frozen=True)
class KindPolicy:
    """How the desk treats one kind: the share it answers at all, the share of those it answers
    only once the exception escalated, the actions it picks (weights), how long it thinks."""

    answered: float
    late: float
    actions: dict[str, int]
    think: tuple[float, float] = (1.0, 6.0)


POLICIES = {
    "fraud_review": KindPolicy(0.7, 0.15, {"approve": 4, "cancel": 1}),
    "address_invalid": KindPolicy(0.8, 0.1, {"fix_address": 1}),
    "payment_pending": KindPolicy(0.6, 0.2, {"confirm_payment": 1}),
    "po_approval": KindPolicy(0.8, 0.1, {"approve": 9, "reject": 1}),
    "supplier_unconfirmed": KindPolicy(0.5, 0.0, {"keep_waiting": 1, "resend": 1}),
    "receipt_discrepancy": KindPolicy(0.7, 0.2, {"accept": 1, "write_off": 1}),
    "short_pick": KindPolicy(0.8, 0.1, {"backorder": 7, "cancel": 3}),
    "backorder_aging": KindPolicy(0.5, 0.0, {"keep_waiting": 1}),
    "return_approval": KindPolicy(0.7, 0.2, {"approve": 7, "reject": 3}),
    "refund_approval": KindPolicy(0.9, 0.0, {"approve": 1}),
    "refund_overdue": KindPolicy(0.5, 0.0, {"refund_now": 1}),
}  # every other kind (a cycle count, a channel's publishing) is left to escalate


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    unit_price: int


@dataclass(frozen=True)
class ReturnStory:
    after: float  # after the order completed
    sku: str
    reason: str
    outcome: str  # refund, store_credit
    receive_after: float
    inspect_after: float
    condition: str
    disposition: str


@dataclass(frozen=True)
class OrderStory:
    number: int
    at: float
    channel: str
    customer: int
    lines: tuple[Line, ...]
    promise: str = "standard"
    trouble: str = ""  # "", address, payment, fraud
    flash: bool = False
    pick_after: float = 2.0  # after its shipment appears
    short_pick: bool = False
    cancel_after: float | None = None  # after it was placed
    ret: ReturnStory | None = None

    @property
    def total(self) -> int:
        return sum(ln.qty * ln.unit_price for ln in self.lines) + SHIPPING + TAX


SHIPPING, TAX = 695, 180


@dataclass(frozen=True)
class PoStory:
    number: int
    at: float
    supplier: str
    location: str
    sku: str
    qty: int
    confirm_after: float  # the supplier's delay, after the PO was sent
    receive_after: float  # after the confirmation
    damaged: int


@dataclass(frozen=True)
class Promotion:
    channel: str
    sku: str
    start: float
    end: float
    discount: float


@dataclass(frozen=True)
class FlashSale:
    at: float
    sku: str
    units: int
    orders: int


@dataclass(frozen=True)
class Plan:
    seed: int
    duration: float
    orders: tuple[OrderStory, ...]
    purchase_orders: tuple[PoStory, ...]
    promotions: tuple[Promotion, ...]
    flash_sale: FlashSale | None
    stock: tuple[tuple[str, str, int], ...]  # sku, location, units put on the shelf first
    policies: dict[str, KindPolicy] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What the desk answers to one exception: `action` once it reached `escalations` and the
    desk thought `think` seconds about it."""

    action: str
    escalations: int
    think: float


def make_plan(seed: int, duration: float, max_orders: int, rate: float) -> Plan:
    """Everything the run will do; bounded by `duration` seconds and `max_orders` orders."""
    rnd = random.Random(seed)
    window = min(duration, max_orders / rate)  # when orders arrive: the flash sale and promotions fall in it
    promotions = tuple(_promotion(rnd, mix, window) for mix in MIXES)
    regular: list[tuple[float, Mix]] = []
    t = rnd.expovariate(rate)
    while t < duration and len(regular) < max_orders:
        regular.append((t, rnd.choices(MIXES, weights=[m.share for m in MIXES])[0]))
        t += rnd.expovariate(rate)
    units = rnd.randint(8, 15)
    flash = FlashSale(rnd.uniform(0.3, 0.6) * window, FLASH_SKU["code"], units, units * rnd.randint(2, 3))
    arrivals = [(at, mix, False) for at, mix in regular]
    arrivals += [
        (flash.at + rnd.uniform(0, 4), _mix(rnd.choice(("web", "marketplace", "store"))), True)
        for _ in range(flash.orders)
    ]
    arrivals = sorted(arrivals, key=lambda a: a[0])[:max_orders]
    arrivals = [a for a in arrivals if a[0] < duration]
    stories = tuple(
        _order(rnd, n, at, mix, flash_order, promotions)
        for n, (at, mix, flash_order) in enumerate(arrivals, 1)
    )
    placed_flash = sum(s.flash for s in stories)
    sale = FlashSale(flash.at, flash.sku, flash.units, placed_flash) if placed_flash else None
    pos = tuple(_purchase_order(rnd, n, window) for n in range(1, max(1, round(window / 45)) + 1))
    policies = {kind: _jitter(rnd, p) for kind, p in POLICIES.items()}
    return Plan(seed, duration, stories, pos, promotions, sale, _stock(stories, sale), policies)


def decide(plan: Plan, kind: str, subject_id: str) -> Decision | None:
    """The desk's answer to the exception of `kind` about `subject_id` (None: it lets it
    escalate to its default action). A function of the seed and the exception alone, so the
    same run answers the same exceptions the same way whenever the desk sees them."""
    policy = plan.policies.get(kind)
    if policy is None:
        return None
    rnd = random.Random(f"{plan.seed}:{kind}:{subject_id}")
    if rnd.random() >= policy.answered:
        return None
    action = rnd.choices(list(policy.actions), weights=list(policy.actions.values()))[0]
    return Decision(action, 1 if rnd.random() < policy.late else 0, rnd.uniform(*policy.think))


def units_needed(lines: tuple[Line, ...]) -> dict[str, int]:
    """Stock units the lines take (a kit is its components)."""
    need: dict[str, int] = {}
    for ln in lines:
        for sku, per in KITS.get(ln.sku) or [(ln.sku, 1)]:
            need[sku] = need.get(sku, 0) + ln.qty * per
    return need


# -- the pieces --------------------------------------------------------------------------


def _mix(channel: str) -> Mix:
    return next(m for m in MIXES if m.channel == channel)


def _promotion(rnd: random.Random, mix: Mix, duration: float) -> Promotion:
    start = rnd.uniform(0, 0.7) * duration
    sku = rnd.choice(sorted(mix.skus))
    return Promotion(
        mix.channel, sku, start, start + rnd.uniform(0.15, 0.3) * duration, rnd.choice((0.1, 0.2, 0.3))
    )


def _price(sku: str, mix: Mix, promo: Promotion | None) -> int:
    off = mix.discount + (promo.discount if promo is not None and promo.sku == sku else 0.0)
    return round(PRICES[sku] * (1 - off))


def _order(
    rnd: random.Random, n: int, at: float, mix: Mix, flash: bool, promotions: tuple[Promotion, ...]
) -> OrderStory:
    customer = rnd.randrange(max(50, n * 2))
    if flash:
        line = Line(FLASH_SKU["code"], 1, FLASH_SKU["price"])
        return OrderStory(n, at, mix.channel, customer, (line,), pick_after=rnd.uniform(1, 6), flash=True)
    promo = next((p for p in promotions if p.channel == mix.channel and p.start <= at < p.end), None)
    weights = {s: w * (3 if promo and promo.sku == s else 1) for s, w in mix.skus.items()}
    skus = _distinct(rnd, weights, rnd.randint(*mix.lines))
    lines = tuple(Line(s, rnd.randint(*mix.qty), _price(s, mix, promo)) for s in skus)
    trouble = next((k for k in TROUBLES if rnd.random() < mix.troubles.get(k, 0.0)), "")
    if trouble == "fraud":  # high value, billed abroad: what the fraud rules hold
        lines = (Line("HOODIE-1", rnd.randint(8, 10), PRICES["HOODIE-1"]),)
    pick_after = rnd.uniform(1, 6)
    cancel_after = None
    if rnd.random() < mix.cancel:
        late = rnd.random() < 0.2  # the customer asks after it shipped: refused
        cancel_after = pick_after + 15 if late else rnd.uniform(0.2, 1.0)
        pick_after = pick_after if late else max(pick_after, cancel_after + 4)
    return OrderStory(
        n,
        at,
        mix.channel,
        customer,
        lines,
        promise="express" if rnd.random() < mix.express else "standard",
        trouble=trouble,
        pick_after=pick_after,
        short_pick=rnd.random() < 0.05,
        cancel_after=cancel_after,
        ret=_return(rnd, lines)
        if cancel_after is None and rnd.random() < mix.returns and _returnable(lines)
        else None,
    )


def _distinct(rnd: random.Random, weights: dict[str, int], k: int) -> list[str]:
    chosen: list[str] = []
    pool = dict(weights)
    while pool and len(chosen) < k:
        sku = rnd.choices(list(pool), weights=list(pool.values()))[0]
        chosen.append(sku)
        del pool[sku]
    return chosen


def _returnable(lines: tuple[Line, ...]) -> bool:
    return any(ln.sku not in KITS for ln in lines)  # a kit comes back as its components, not here


def _return(rnd: random.Random, lines: tuple[Line, ...]) -> ReturnStory:
    sku = rnd.choice([ln.sku for ln in lines if ln.sku not in KITS])
    reason = rnd.choices(("wrong_size", "changed_mind", "defective"), weights=(5, 3, 2))[0]
    if reason == "defective":
        condition, disposition = "defective", "scrap"
    else:
        condition, disposition = rnd.choices((("new", "restock"), ("opened", "refurbish")), weights=(3, 1))[0]
    return ReturnStory(
        after=rnd.uniform(2, 10),
        sku=sku,
        reason=reason,
        outcome=rnd.choices(("refund", "store_credit"), weights=(3, 2))[0],
        receive_after=rnd.uniform(2, 8),
        inspect_after=rnd.uniform(1, 5),
        condition=condition,
        disposition=disposition,
    )


# supplier, SKU, MOQ, order multiple (the demo's supplier terms); HOODIE-1 × 300 is over the
# approval threshold (300 × 1,800 = 540,000 > 500,000).
_SUPPLIED = (("NORTHWIND", "TEE-1", 50, 25), ("NORTHWIND", "HOODIE-1", 20, 10), ("KILN", "MUG-1", 48, 24))


def _purchase_order(rnd: random.Random, n: int, duration: float) -> PoStory:
    supplier, sku, moq, multiple = rnd.choice(_SUPPLIED)
    qty = 300 if sku == "HOODIE-1" and rnd.random() < 0.4 else moq + multiple * rnd.randint(0, 4)
    late = rnd.random() < 0.25  # past the supplier_unconfirmed SLA `make demo` runs with
    return PoStory(
        n,
        rnd.uniform(0.05, 0.6) * duration,
        supplier,
        rnd.choice(("DC-EAST", "DC-WEST")),
        sku,
        qty,
        confirm_after=rnd.uniform(40, 90) if late else rnd.uniform(2, 12),
        receive_after=rnd.uniform(3, 15),
        damaged=rnd.randint(1, 3) if rnd.random() < 0.3 else 0,
    )


def _jitter(rnd: random.Random, p: KindPolicy) -> KindPolicy:
    """This run's desk: each share a little off the usual."""
    answered = min(1.0, max(0.0, p.answered + rnd.uniform(-0.1, 0.1)))
    return KindPolicy(answered, p.late, p.actions, p.think)


def _stock(stories: tuple[OrderStory, ...], sale: FlashSale | None) -> tuple[tuple[str, str, int], ...]:
    need: dict[str, int] = {}
    for story in stories:
        if not story.flash:
            for sku, n in units_needed(story.lines).items():
                need[sku] = need.get(sku, 0) + n
    rows = [
        (sku, location, math.ceil(units * STOCK_COVER * share))
        for sku, units in sorted(need.items())
        for location, share in STOCK_SPLIT
    ]
    if sale is not None:
        rows.append((sale.sku, "DC-EAST", sale.units))
    return tuple(r for r in rows if r[2] > 0)

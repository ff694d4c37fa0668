"""The flash sale of issue 20 on one `omniflow dev` stack: buyers from three channels, one
unit each, race for a kit whose components two other SKUs on sale at the same time also use,
with a ring-fence for one channel and safety stock for another; then the checks.

    LAUNCH-KIT = SHOE + BAG     (the kit on sale: `units` of each component)
    SHOE                        (sold alone too)
    STARTER    = BAG + SOCKS    (another kit on the same BAG)

Four in five of the units are at DC-EAST, the rest at DC-WEST; the `app` channel ships from
DC-EAST only and has a tenth of the SHOE and BAG there ring-fenced; `market` keeps a
twentieth of the SHOE back as safety stock. Buyers: 70 % want the kit, 15 % the shoe, 15 % the
starter, channels in turn (web, market, app), at a constant arrival rate (`run_sale`), none
allowing backorders: a buyer the channel's ATP cannot cover is turned away at intake (409
insufficient-stock, nothing written), the others become order workflows that reserve or lose
the race at sourcing.

Checked from what the API and the database say afterwards (`check`): every component unit
reserved by exactly the orders that were accepted (none twice: `oversold` 0), none left that
a refused buyer's channel could still have promised (`unsold_while_buyers_remain` 0), the
fence (`others + max(app, fence) <= on hand` at DC-EAST) and the safety stock (`market's
SHOE <= on hand - safety`) kept, each order all or nothing; and the refused lines by the
rule that refused them, at intake (the 409's lines) and at sourcing (their `line_refused`
events)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.common import percentile
from bench.lifecycle import cpu_seconds, db_counters
from bench.lifecycle_shop import Shop
from bench.open_loop import offer
from client import ApiError, NewSku, Ringfence

RECIPES = {"LAUNCH-KIT": {"SHOE": 1, "BAG": 1}, "SHOE": {"SHOE": 1}, "STARTER": {"BAG": 1, "SOCKS": 1}}
COMPONENTS = ("SHOE", "BAG", "SOCKS")
CHANNELS = ("web", "market", "app")
FENCED = ("app", "DC-EAST")  # the channel with the ring-fence, and where
SAFETY = ("market", "SHOE")  # the channel with safety stock, and of what


def wanted(n: int) -> tuple[str, str]:
    """Buyer n's channel and SKU: 70 % the kit, 15 % the shoe, 15 % the starter."""
    k = n % 20
    sku = "LAUNCH-KIT" if k < 14 else "SHOE" if k < 17 else "STARTER"
    return CHANNELS[n % 3], sku


@dataclass(frozen=True)
class Sale:
    units: int  # of each component

    @property
    def east(self) -> int:
        return self.units - self.units // 5

    @property
    def fence(self) -> int:
        return max(1, self.units // 10)

    @property
    def safety(self) -> int:
        return max(1, self.units // 20)


async def stock_the_sale(shop: Shop, sale: Sale) -> None:
    for code in COMPONENTS:
        await shop.admin.create_sku(NewSku(code=code, name=code.title(), unit_cost=1000, price=2500))
    for kit in ("LAUNCH-KIT", "STARTER"):
        components = [{"sku": c, "qty": q} for c, q in RECIPES[kit].items()]
        await shop.admin.create_sku(NewSku(code=kit, name=kit.title(), kind="kit", components=components))
    for code in COMPONENTS:
        await shop.adjust(code, "DC-EAST", sale.east)
        await shop.adjust(code, "DC-WEST", sale.units - sale.east)
    fence = [Ringfence(location=FENCED[1], qty=sale.fence)]
    for code in ("SHOE", "BAG"):
        await shop.admin.set_policy(FENCED[0], code, ringfence=fence)
    await shop.admin.set_policy(SAFETY[0], SAFETY[1], safety_stock=sale.safety)


@dataclass
class Answers:
    """What the buyers were told: ms from each buyer's scheduled instant to its answer, taken
    (202) or turned away at intake (409 insufficient-stock, by the rule of each refused line)."""

    accepted: list[str] = field(default_factory=list)  # external ids of the orders taken
    accepted_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    intake_rules: Counter[str] = field(default_factory=Counter)
    turned_away: set[tuple[str, str]] = field(default_factory=set)  # (channel, sku) refused at intake


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {q: round(percentile(ordered, p), 1) for q, p in (("p50", 0.5), ("p99", 0.99))}


async def run_sale(shop: Shop, sale: Sale, buyers: int, seconds: float) -> tuple[dict[str, Any], Answers]:
    """The buyers at a constant arrival rate over `seconds` (open loop: each buyer its own task
    at its own instant, timed from it), then wait until every order taken is decided; the CPU
    each process of the stack spent and the commits per buyer, in that window."""
    answers = Answers()

    async def one(n: int, scheduled: float) -> None:
        channel, sku = wanted(n)
        taken = await _buy(shop, channel, f"kit-{n}", sku, answers.intake_rules)
        took = (time.perf_counter() - scheduled) * 1000
        if taken:
            answers.accepted.append(f"kit-{n}")
            answers.accepted_ms.append(took)
        else:
            answers.refused_ms.append(took)
            answers.turned_away.add((channel, sku))

    cpu0, db0, t0 = cpu_seconds(shop.stack), await db_counters(shop), time.perf_counter()
    offered = await offer(buyers / seconds, buyers, one)
    arrived = max(offered.answered_at, default=t0) - offered.start
    await _until_decided(shop, answers.accepted)
    decided = time.perf_counter() - offered.start
    cpu1, db1 = cpu_seconds(shop.stack), await db_counters(shop)
    cpu = {part: round(cpu1[part] - cpu0.get(part, 0), 1) for part in sorted(cpu1)}
    return {
        "buyers": buyers,
        "units_per_component": sale.units,
        "arrival_seconds": seconds,
        "failed_requests": offered.failed,
        "answered_seconds": round(arrived, 1),
        "buyers_per_s": round((buyers - offered.failed) / arrived, 1) if arrived else 0.0,
        "all_decided_seconds": round(decided, 1),
        "taken_at_intake": len(answers.accepted_ms),
        "capture_ms": {"accepted": _ms(answers.accepted_ms), "refused": _ms(answers.refused_ms)},
        "send_lag_ms": _ms(offered.send_lag_ms),
        "cpu_seconds": cpu,
        "cores_busy": round(sum(cpu.values()) / decided, 2),
        "commits_per_buyer": round((db1["commits"] - db0["commits"]) / max(1, buyers - offered.failed), 1),
        "write_xacts_per_buyer": round((db1["write_xacts"] - db0["write_xacts"]) / max(1, buyers), 1),
    }, answers


async def _buy(
    shop: Shop, channel: str, external_id: str, sku: str, rules: Counter[str], tries: int = 5
) -> bool:
    """One buyer: taken (True) or turned away at intake (False, `rules` counted); sent again
    under the same key after a 503 (the engine or the database did not answer in time), as a
    channel does: the order is recorded once and gets its workflow on the retry."""
    for _ in range(tries - 1):
        try:
            return await shop.buy(channel, external_id, sku, rules) is not None
        except ApiError as exc:
            if exc.status != 503:
                raise
            await asyncio.sleep(exc.retry_after or 1.0)
    return await shop.buy(channel, external_id, sku, rules) is not None


async def _until_decided(shop: Shop, taken: list[str], timeout: float = 1800.0) -> None:
    """Every order taken allocated or cancelled (read from the database: one query a poll,
    not one request per order)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(shop.stack.database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status IN ('allocated', 'cancelled')), count(*)"
                " FROM sales_order WHERE external_id = ANY(%s)",  # each buyer's id is its own
                (taken,),
            ).fetchone()
        assert row is not None
        if row[0] == row[1] == len(taken):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"orders still undecided after {timeout} s")


async def check(shop: Shop, sale: Sale, answers: Answers) -> dict[str, Any]:
    """What the books say after the sale (see the module docstring), with what intake refused."""
    with psycopg.connect(shop.stack.database_url) as conn:
        lines = conn.execute(
            "SELECT o.channel, l.sku, l.qty, l.reserved, l.cancelled FROM order_line l"
            " JOIN sales_order o ON o.id = l.order_id WHERE o.external_id LIKE 'kit-%'"
        ).fetchall()
        held = conn.execute(
            "SELECT channel, sku, location, sum(qty - released - consumed) FROM reservation GROUP BY 1, 2, 3"
        ).fetchall()
        refused = conn.execute(
            "SELECT o.channel, e.detail->>'sku', e.detail->>'reason', count(*) FROM order_event e"
            " JOIN sales_order o ON o.id = e.order_id WHERE e.event = 'line_refused'"
            " AND o.external_id LIKE 'kit-%' GROUP BY 1, 2, 3"
        ).fetchall()
    sold: Counter[str] = Counter()  # component units in accepted orders
    market_shoe = 0
    partial = 0
    accepted: Counter[str] = Counter()
    for channel, sku, qty, reserved, cancelled in lines:
        partial += int(reserved not in (0, qty) or reserved + cancelled != qty)
        accepted[sku] += reserved
        for component, per in RECIPES[sku].items():
            sold[component] += per * reserved
            if (channel, component) == SAFETY:
                market_shoe += per * reserved
    by_channel: dict[tuple[str, str, str], int] = {(c, s, loc): int(n) for c, s, loc, n in held}
    stock = {code: await shop.admin.get_stock(code) for code in (*COMPONENTS, "LAUNCH-KIT", "STARTER")}
    on_hand = {c: {loc.location: loc.on_hand for loc in stock[c].locations} for c in COMPONENTS}
    reserved = {c: {loc.location: loc.reserved for loc in stock[c].locations} for c in COMPONENTS}
    oversold = sum(max(0, reserved[c][loc] - on_hand[c][loc]) for c in COMPONENTS for loc in on_hand[c])
    oversold += sum(max(0, sold[c] - sum(on_hand[c].values())) for c in COMPONENTS)
    not_booked = sum(abs(sold[c] - sum(reserved[c].values())) for c in COMPONENTS)
    refusals: dict[str, int] = defaultdict(int)
    for _, _, reason, n in refused:
        refusals[reason] += int(n)
    turned_away = {(channel, sku) for channel, sku, _, _ in refused} | answers.turned_away
    left_for_refused = sum(stock[s].available_to_promise.get(c, 0) for c, s in turned_away)
    fence_kept = all(
        sum(n for (ch, s, loc), n in by_channel.items() if s == c and loc == FENCED[1] and ch != FENCED[0])
        + max(by_channel.get((FENCED[0], c, FENCED[1]), 0), sale.fence)
        <= on_hand[c][FENCED[1]]
        for c in ("SHOE", "BAG")
    )
    return {
        "accepted_by_sku": dict(accepted),
        "component_units_sold": dict(sold),
        "component_units_left": {c: sum(on_hand[c].values()) - sum(reserved[c].values()) for c in COMPONENTS},
        "oversold": oversold,
        "sold_but_not_booked": not_booked,  # component units of accepted orders ≠ units reserved
        "orders_in_part": partial,
        "unsold_while_buyers_remain": left_for_refused,
        "ring_fence_kept": fence_kept,
        "app_units_at_fence": {c: by_channel.get((FENCED[0], c, FENCED[1]), 0) for c in ("SHOE", "BAG")},
        "safety_stock_kept": market_shoe <= sum(on_hand["SHOE"].values()) - sale.safety,
        "market_shoe_units": market_shoe,
        "refusals_by_reason": dict(sorted((Counter(refusals) + answers.intake_rules).items())),
        "refusals_where": {
            "intake": dict(sorted(answers.intake_rules.items())),
            "sourcing": dict(sorted(refusals.items())),
        },
        "refusals_by_channel_sku_reason": {f"{c}/{s}/{r}": int(n) for c, s, r, n in sorted(refused)},
    }


if __name__ == "__main__":  # `python -m bench.flash_kit` is `python -m bench.flash`
    from bench.flash import main

    main()

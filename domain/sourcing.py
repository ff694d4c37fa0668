"""Sourcing: which location ships which order lines.

Input: the order lines, the ship-to point, the channel's rule, and ATP per (location, SKU)
for the channel. Output: shipments (location → lines), backordered lines and drop-ship
lines. Rules:

- prefer **fewer shipments**: a single location that can fill every line wins;
- among equals, the channel's rule decides: `nearest` (haversine distance to the ship-to),
  `cheapest` (ship cost per unit × units), `priority` (lowest priority number first);
- ties break by location code, so equal input always gives the same plan;
- split across locations only if the order allows it; a kit line always ships whole from
  one location (its components are reserved there);
- what no location can fill is backordered (if allowed) — lines of a SKU sold by a
  drop-ship location go to that supplier instead.

The strategies are small functions (`RULES`); a greedy set cover picks, at each step, the
location that fills the most units, then the rule's cost."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Site:
    code: str
    lat: float | None = None
    lon: float | None = None
    ship_cost: int = 0  # per unit, minor units
    priority: int = 100
    dropship: bool = False


@dataclass(frozen=True)
class OrderLine:
    line: str
    sku: str
    qty: int
    kit: bool = False


@dataclass(frozen=True)
class Shipment:
    location: str
    lines: tuple[tuple[str, int], ...]  # (line id, qty)


@dataclass(frozen=True)
class Plan:
    shipments: tuple[Shipment, ...] = ()
    backordered: tuple[tuple[str, int], ...] = ()  # (line id, qty)
    dropship: tuple[Shipment, ...] = ()
    unfillable: tuple[tuple[str, int], ...] = ()  # neither stock nor backorder allowed

    @property
    def complete(self) -> bool:
        return not self.backordered and not self.unfillable


@dataclass(frozen=True)
class Request:
    lines: Sequence[OrderLine]
    sites: Sequence[Site]
    atp: Mapping[tuple[str, str], int]  # (location, line-sku) -> promisable units (kits: kits)
    rule: str = "nearest"
    ship_to: tuple[float, float] | None = None
    allow_split: bool = True
    allow_backorder: bool = True
    dropship_skus: Mapping[str, str] = field(default_factory=dict)  # sku -> dropship location


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


Cost = Callable[[Site, int, "Request"], float]


def _nearest(site: Site, units: int, req: Request) -> float:
    if req.ship_to is None or site.lat is None or site.lon is None:
        return math.inf if req.ship_to is not None else 0.0
    return haversine_km((site.lat, site.lon), req.ship_to)


def _cheapest(site: Site, units: int, req: Request) -> float:
    return float(site.ship_cost * units)


def _priority(site: Site, units: int, req: Request) -> float:
    return float(site.priority)


RULES: dict[str, Cost] = {"nearest": _nearest, "cheapest": _cheapest, "priority": _priority}


def source(req: Request) -> Plan:
    sites = sorted((s for s in req.sites if not s.dropship), key=lambda s: s.code)
    remaining = {ln.line: ln.qty for ln in req.lines}
    drop = _take_dropship(req, remaining)
    if req.allow_split:
        shipments = _source_split(req, sites, remaining)
    else:
        shipments = _source_from_one_site(req, sites, remaining)
    leftover = tuple(sorted((line, q) for line, q in remaining.items() if q > 0))
    return Plan(
        shipments=tuple(sorted(shipments, key=lambda s: s.location)),
        backordered=leftover if req.allow_backorder else (),
        dropship=tuple(Shipment(loc, tuple(sorted(lines))) for loc, lines in sorted(drop.items())),
        unfillable=() if req.allow_backorder else leftover,
    )


def _take_dropship(req: Request, remaining: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    """Drop-ship SKUs never come from our shelves: their lines, by dropship location (taken out of
    `remaining`)."""
    drop: dict[str, list[tuple[str, int]]] = {}
    for ln in req.lines:
        if ln.sku in req.dropship_skus:
            drop.setdefault(req.dropship_skus[ln.sku], []).append((ln.line, ln.qty))
            remaining[ln.line] = 0
    return drop


def _fill_at(
    site: Site, req: Request, remaining: Mapping[str, int], atp: Mapping[tuple[str, str], int]
) -> dict[str, int]:
    """What this site could ship of the remaining lines (kits whole or not at all)."""
    left = dict(atp)
    out: dict[str, int] = {}
    for ln in req.lines:
        want = remaining[ln.line]
        if want <= 0:
            continue
        have = left.get((site.code, ln.sku), 0)
        take = want if ln.kit and have >= want else (0 if ln.kit else min(want, have))
        if not req.allow_split and take < want:
            take = 0
        if take > 0:
            out[ln.line] = take
            left[(site.code, ln.sku)] = have - take
    return out


def _source_from_one_site(req: Request, sites: Sequence[Site], remaining: dict[str, int]) -> list[Shipment]:
    """Everything from one place, or nothing from our shelves."""
    units = sum(remaining.values())
    full = [s for s in sites if sum(_fill_at(s, req, remaining, req.atp).values()) == units]
    if not full or units <= 0:
        return []
    cost = RULES[req.rule]
    best = min(full, key=lambda s: (cost(s, units, req), s.code))
    taken = _fill_at(best, req, remaining, req.atp)
    for line in taken:
        remaining[line] = 0
    return [Shipment(best.code, tuple(sorted(taken.items())))]


def _source_split(req: Request, sites: Sequence[Site], remaining: dict[str, int]) -> list[Shipment]:
    """Greedy: the site that ships the most units next (then the cheapest by the rule), until
    nothing is left or no site has any of it."""
    cost = RULES[req.rule]
    atp = dict(req.atp)
    by_line = {ln.line: ln for ln in req.lines}
    shipments: list[Shipment] = []
    while any(q > 0 for q in remaining.values()):
        options = [(s, _fill_at(s, req, remaining, atp)) for s in sites]
        options = [(s, f) for s, f in options if f]
        if not options:
            break
        site, taken = min(
            options, key=lambda o: (-sum(o[1].values()), cost(o[0], sum(o[1].values()), req), o[0].code)
        )
        shipments.append(Shipment(site.code, tuple(sorted(taken.items()))))
        for line, qty in taken.items():
            remaining[line] -= qty
            atp[(site.code, by_line[line].sku)] = atp.get((site.code, by_line[line].sku), 0) - qty
    return shipments


def plan_within_budget(request: Request, budget: Mapping[str, int]) -> Plan:
    """Sourcing sees ATP per location; safety stock is per channel. Where a plan would take
    more of a SKU than the channel may promise (`budget`), lower that SKU's ATP at the plan's
    last location and plan again (a few rounds always settle: each round lowers a total). The
    ATP there becomes what the plan took there less the excess (lowering the location's own
    ATP by the excess never got under a safety stock of more units than rounds: the line was
    refused whole)."""
    atp = dict(request.atp)
    by_line = {ln.line: ln for ln in request.lines}
    for _ in range(8):
        plan = source(replace(request, atp=dict(atp)))
        taken: dict[str, int] = {}
        last: dict[str, tuple[str, int]] = {}  # sku -> its plan's last location, units taken there
        for shp in plan.shipments:
            for line, n in shp.lines:
                sku = by_line[line].sku
                taken[sku] = taken.get(sku, 0) + n
                there = last[sku][1] if last.get(sku, ("", 0))[0] == shp.location else 0
                last[sku] = (shp.location, there + n)
        over = {sku: n - budget.get(sku, 0) for sku, n in taken.items() if n > budget.get(sku, 0)}
        if not over:
            return plan
        for sku, excess in over.items():
            location, there = last[sku]
            place = (location, sku)
            atp[place] = max(0, min(atp.get(place, 0), there - excess))
    return source(replace(request, atp=dict.fromkeys(atp, 0)))

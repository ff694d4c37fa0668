"""Planning a reservation: pure. Everything `models.stock.reserve` decides, from values read
from the database, with no database:

    expand_lines      validate the lines and expand kits into their component lines
    plan_reservation  the above, then ATP (per line, location and kit) and lots (FEFO):
                      the reservation rows to write, the totals per balance and per
                      (sku, location), the result payload and the ATP after

A kit line `1` of 2 × GIFT (1 TEE + 2 MUG) reserves the component lines `1/MUG` (4) and
`1/TEE` (2) at the kit line's location; `per_unit` keeps the units per kit (so a kit line
can later be released or shipped in part). The request is all-or-nothing: one
ReservationShortage names every line (and kit) that does not fit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain.atp import (
    AvailabilitySnapshot,
    LocationStock,
    Shortage,
    channel_shortage_reason,
    check_lines,
    shortage_reason,
)
from domain.errors import DomainError, InvalidStockChange, ReservationShortage, UnknownReference
from domain.lots import LotStock, allocate_fefo

KIT = "kit"


@dataclass(frozen=True)
class ReserveLine:
    line: str  # the order line id (unique within the reservation)
    sku: str
    location: str
    qty: int


@dataclass(frozen=True)
class ReserveRequest:
    """One reservation asked for: its own key (idempotency), channel, lines and reference."""

    key: str
    channel: str
    lines: Sequence[ReserveLine]
    ref: str = ""


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the catalog says about a reservation's lines (read before the SKU locks)."""

    kinds: Mapping[str, str]  # SKU -> kind, for the SKUs asked for that exist ("kit" or another)
    recipes: Mapping[str, Sequence[tuple[str, int]]]  # kit -> (component, units per kit), by component
    channel_locations: Mapping[str, Collection[str]]  # every channel -> the locations it ships from


@dataclass(frozen=True, slots=True)
class ComponentLine:
    """A line as it is reserved: a plain SKU's line, or one component of a kit line (`1/TEE`)."""

    line: str
    sku: str
    location: str
    qty: int
    per_unit: int  # units per kit unit (1 for a plain SKU's line)


@dataclass(frozen=True, slots=True)
class Balance:
    """One sellable balance row (a lot, or the one row of an untracked SKU) at a location."""

    id: int
    sku: str
    location: str
    lot: str
    expires_at: datetime | None
    available: int  # on hand - reserved


@dataclass(frozen=True, slots=True)
class PlannedReservation:
    """One reservation row: `qty` units of a component line from one balance."""

    line: str
    sku: str
    location: str
    lot: str
    qty: int
    per_unit: int
    balance_id: int


@dataclass(frozen=True)
class ReservationPlan:
    reservations: list[PlannedReservation]  # by line, then first-expiry-first-out
    per_balance: dict[int, int]  # balance id -> units it reserves more
    per_location: dict[tuple[str, str], int]  # (sku, location) -> units the channel reserves more there
    atp_after: dict[tuple[str, str], int]  # (channel, sku) -> ATP once reserved, sorted
    result: dict[str, Any]  # the operation's result: {"channel", "reservations": [...]}


def expand_lines(channel: str, lines: Sequence[ReserveLine], catalog: Catalog) -> list[ComponentLine]:
    """Validate the lines (UnknownReference, InvalidStockChange) and expand each kit line into
    one line per component, at the kit line's location."""
    for ln in lines:
        if ln.sku not in catalog.kinds:
            raise UnknownReference("SKU", ln.sku)
        if ln.qty <= 0:
            raise InvalidStockChange(f"line {ln.line}: quantity must be positive")
    served = catalog.channel_locations.get(channel)
    if served is None:
        raise UnknownReference("channel", channel)
    out: list[ComponentLine] = []
    for ln in lines:
        if catalog.kinds[ln.sku] == KIT:
            out += [
                ComponentLine(f"{ln.line}/{c}", c, ln.location, ln.qty * q, q)
                for c, q in catalog.recipes.get(ln.sku, ())
            ]
        else:
            out.append(ComponentLine(ln.line, ln.sku, ln.location, ln.qty, 1))
    for c in out:
        if c.location not in served:
            raise InvalidStockChange(f"channel {channel} does not fulfil from {c.location}")
    return out


def plan_reservation(
    channel: str,
    lines: Sequence[ReserveLine],
    catalog: Catalog,
    atp: AvailabilitySnapshot,
    balances: Iterable[Balance],
    now: datetime,
    *,
    with_atp_after: bool = True,
) -> ReservationPlan:
    """Plan the reservation of `lines` for `channel`, or raise what is wrong with it.

    `atp` is the snapshot before (every component SKU, and every kit containing one);
    `balances` are the sellable rows of the lines' (sku, location) pairs, in id order.
    `with_atp_after` False: no `atp_after` (a batch computes it once, at its end)."""
    components = expand_lines(channel, lines, catalog)
    shortages = _shortages(channel, lines, catalog, components, atp)
    if shortages:
        raise ReservationShortage(shortages)
    made = _allocate(components, balances, now)
    per_balance: dict[int, int] = defaultdict(int)
    per_location: dict[tuple[str, str], int] = defaultdict(int)
    for m in made:
        per_balance[m.balance_id] += m.qty
        per_location[(m.sku, m.location)] += m.qty
    result = {
        "channel": channel,
        "reservations": [
            {"line": m.line, "sku": m.sku, "location": m.location, "lot": m.lot, "qty": m.qty} for m in made
        ],
    }
    after = after_reserving(atp, channel, made).all_atp() if with_atp_after else {}
    return ReservationPlan(
        reservations=made,
        per_balance=dict(per_balance),
        per_location=dict(per_location),
        atp_after=dict(sorted(after.items())),
        result=result,
    )


@dataclass(frozen=True)
class BatchPlan:
    outcomes: list[ReservationPlan | DomainError]  # one per request, in the requests' order
    atp_after: dict[tuple[str, str], int]  # (channel, sku) -> ATP once every accepted one is reserved


def plan_batch(
    requests: Sequence[ReserveRequest],
    catalog: Catalog,
    atp: AvailabilitySnapshot,
    balances: Iterable[Balance],
    now: datetime,
) -> BatchPlan:
    """Plan many reservations from one read, as if each ran alone after the ones before it:
    each request is decided against the stock the accepted ones before it left (ATP, ring-fences,
    safety stock, kits, lots); a refused one leaves the stock as it was for the next. Each
    outcome is the request's own plan or its own refusal. The plans' `atp_after` is empty: the
    batch writes the ATP once, from the end state."""
    rows = {b.id: b for b in balances}
    outcomes: list[ReservationPlan | DomainError] = []
    for req in requests:
        try:
            plan = plan_reservation(
                req.channel, req.lines, catalog, atp, rows.values(), now, with_atp_after=False
            )
        except DomainError as refused:
            outcomes.append(refused)
            continue
        outcomes.append(plan)
        atp = after_reserving(atp, req.channel, plan.reservations)
        for bid, q in plan.per_balance.items():
            rows[bid] = replace(rows[bid], available=rows[bid].available - q)
    return BatchPlan(outcomes, dict(sorted(atp.all_atp().items())))


def _shortages(
    channel: str,
    lines: Sequence[ReserveLine],
    catalog: Catalog,
    components: list[ComponentLine],
    atp: AvailabilitySnapshot,
) -> list[Shortage]:
    """Every component line over its location's or its SKU's ATP, then every kit asked for
    over the kit's own ATP (which also holds back the kit's safety stock)."""

    def short_lines(snap: AvailabilitySnapshot) -> list[Shortage]:
        return check_lines(
            [(c.line, c.sku, c.location, c.qty) for c in components],
            {(c.sku, c.location): snap.location_atp(channel, c.sku, c.location) for c in components},
            {c.sku: snap.simple_atp(channel, c.sku) for c in components},
        )

    def fits(line: str) -> Callable[[AvailabilitySnapshot], bool]:
        return lambda snap: line not in {x.line for x in short_lines(snap)}

    shortages = [replace(s, reason=shortage_reason(atp, fits(s.line))) for s in short_lines(atp)]
    kit_asks: dict[str, int] = defaultdict(int)
    for ln in lines:
        if catalog.kinds[ln.sku] == KIT:
            kit_asks[ln.sku] += ln.qty
    for kit, qty in sorted(kit_asks.items()):
        have = atp.atp(channel, kit)
        if qty > have:
            first = next(ln for ln in lines if ln.sku == kit)
            reason = channel_shortage_reason(atp, channel, kit, qty)
            shortages.append(Shortage(first.line, kit, first.location, qty, have, reason))
    return shortages


def _allocate(
    components: list[ComponentLine], balances: Iterable[Balance], now: datetime
) -> list[PlannedReservation]:
    """Each component line from its (sku, location)'s unexpired lots, first expiry first;
    lines of the same pair draw on what the earlier ones left."""
    by_pair: dict[tuple[str, str], list[Balance]] = defaultdict(list)
    for b in balances:
        by_pair[(b.sku, b.location)].append(b)
    left = {b.id: b.available for rows in by_pair.values() for b in rows}
    made: list[PlannedReservation] = []
    for c in components:
        candidates = by_pair.get((c.sku, c.location), [])
        by_lot = {b.lot: b for b in candidates}
        lots = [LotStock(b.lot, b.expires_at, left[b.id]) for b in candidates]
        for lot, qty in allocate_fefo(lots, c.qty, now):
            balance_id = by_lot[lot].id
            left[balance_id] -= qty
            made.append(PlannedReservation(c.line, c.sku, c.location, lot, qty, c.per_unit, balance_id))
    return made


def after_reserving(
    snapshot: AvailabilitySnapshot, channel: str, made: Iterable[PlannedReservation]
) -> AvailabilitySnapshot:
    """The snapshot once `made` is reserved for `channel` (no second read under the lock)."""
    stock = dict(snapshot.stock)
    for m in made:
        key = (m.sku, m.location)
        stock[key] = stock.get(key, LocationStock(0, 0)).with_reserved(channel, m.qty)
    return AvailabilitySnapshot(
        stock, snapshot.channel_locations, snapshot.safety, snapshot.recipes, snapshot.targets
    )

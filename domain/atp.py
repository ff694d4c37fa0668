"""Available-to-promise: pure arithmetic, shared by reservation (under locks), the change
feed and the read API.

For one SKU and one channel:

    at a location   L:  atp(L) = max(0, available(L) - fenced_for_others(L))
    for the channel  :  ATP    = max(0, Σ_L atp(L) - safety_stock)

- available = sellable (unexpired) - reserved;
- a channel's ring-fence at L is "taken" as it reserves there: what still holds others back
  is max(0, fence - that channel's active reservations at L);
- safety stock is "units held back from this channel": subtracted once from its total.

A kit ships from one location: at L it is min over components of atp(L) // qty; its channel
ATP is the sum over locations, capped by each component's channel ATP // qty, less the kit's
own safety stock. A reservation is exact when every line fits its location's atp and every
SKU's total fits the channel ATP (`check_lines`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from domain.errors import ShortageReason


@dataclass(frozen=True)
class LocationStock:
    """What the channel rules need to know about one SKU at one location."""

    on_hand: int  # sellable, unexpired units
    reserved: int  # active reservations of all channels
    fences: Mapping[str, int] = field(default_factory=dict)  # channel -> ring-fenced units
    reserved_by_channel: Mapping[str, int] = field(default_factory=dict)  # channel -> active reserved
    # Sellable units of expired lots less their reservations: no rule counts them; they only
    # say that a line would have fitted but for the expiry (ShortageReason.LOT_EXPIRY).
    expired: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def fence_remaining(self, channel: str) -> int:
        return max(0, self.fences.get(channel, 0) - self.reserved_by_channel.get(channel, 0))

    def fenced_for_others(self, channel: str) -> int:
        return sum(self.fence_remaining(other) for other in self.fences if other != channel)

    def with_reserved(self, channel: str, qty: int) -> LocationStock:
        """This stock once `qty` more is reserved for `channel`."""
        by_channel = dict(self.reserved_by_channel)
        by_channel[channel] = by_channel.get(channel, 0) + qty
        return replace(self, reserved=self.reserved + qty, reserved_by_channel=by_channel)


def location_atp(stock: LocationStock, channel: str) -> int:
    return max(0, stock.available - stock.fenced_for_others(channel))


def channel_atp(per_location: Iterable[int], safety_stock: int = 0) -> int:
    return max(0, sum(per_location) - safety_stock)


def kit_location_atp(component_atp: Mapping[str, int], recipe: Mapping[str, int]) -> int:
    if not recipe:
        return 0
    return min(component_atp.get(sku, 0) // qty for sku, qty in recipe.items())


def kit_channel_atp(
    per_location_component_atp: Mapping[str, Mapping[str, int]],
    recipe: Mapping[str, int],
    component_channel_atp: Mapping[str, int],
    safety_stock: int = 0,
) -> int:
    """per_location_component_atp: location -> component -> atp(L)."""
    if not recipe:
        return 0
    by_location = sum(kit_location_atp(atps, recipe) for atps in per_location_component_atp.values())
    cap = min(component_channel_atp.get(sku, 0) // qty for sku, qty in recipe.items())
    return max(0, min(by_location, cap) - safety_stock)


@dataclass
class AvailabilitySnapshot:
    """Everything needed to compute ATP for a set of SKUs (and the kits built from them)."""

    stock: dict[tuple[str, str], LocationStock]  # (sku, location) -> stock
    channel_locations: dict[str, list[str]]  # channel -> shipping locations
    safety: dict[tuple[str, str], int]  # (channel, sku) -> safety stock
    recipes: dict[str, dict[str, int]]  # kit -> component -> qty
    targets: set[str]  # SKUs whose ATP is asked for

    def location_atp(self, channel: str, sku: str, location: str) -> int:
        stock = self.stock.get((sku, location))
        return location_atp(stock, channel) if stock else 0

    def simple_atp(self, channel: str, sku: str) -> int:
        locations = self.channel_locations.get(channel, [])
        return channel_atp(
            (self.location_atp(channel, sku, loc) for loc in locations), self.safety.get((channel, sku), 0)
        )

    def atp(self, channel: str, sku: str) -> int:
        recipe = self.recipes.get(sku)
        if recipe is None:
            return self.simple_atp(channel, sku)
        locations = self.channel_locations.get(channel, [])
        return kit_channel_atp(
            {loc: {c: self.location_atp(channel, c, loc) for c in recipe} for loc in locations},
            recipe,
            {c: self.simple_atp(channel, c) for c in recipe},
            self.safety.get((channel, sku), 0),
        )

    def all_atp(self) -> dict[tuple[str, str], int]:
        return {(ch, sku): self.atp(ch, sku) for ch in self.channel_locations for sku in self.targets}


@dataclass(frozen=True)
class Shortage:
    line: str
    sku: str
    location: str
    requested: int
    atp: int
    reason: ShortageReason = ShortageReason.ATP


def check_lines(
    requests: list[tuple[str, str, str, int]],
    location_atps: Mapping[tuple[str, str], int],
    channel_atps: Mapping[str, int],
) -> list[Shortage]:
    """All-or-nothing check of (line, sku, location, qty) requests. Requests for the same SKU
    draw on the same location ATP and the same channel ATP."""
    left_at = dict(location_atps)
    left_total = dict(channel_atps)
    shortages: list[Shortage] = []
    for line, sku, location, qty in requests:
        have = min(left_at.get((sku, location), 0), left_total.get(sku, 0))
        if qty > have:
            shortages.append(Shortage(line=line, sku=sku, location=location, requested=qty, atp=have))
        take = min(qty, have)
        left_at[(sku, location)] = left_at.get((sku, location), 0) - take
        left_total[sku] = left_total.get(sku, 0) - take
    return shortages


def totals_by_sku(requests: Iterable[tuple[str, str, str, int]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for _, sku, _, qty in requests:
        totals[sku] += qty
    return dict(totals)


# -- which rule refused a line ------------------------------------------------------------


def _without_safety(snap: AvailabilitySnapshot) -> AvailabilitySnapshot:
    return replace(snap, safety={})


def _without_fences(snap: AvailabilitySnapshot) -> AvailabilitySnapshot:
    return replace(snap, stock={k: replace(s, fences={}) for k, s in snap.stock.items()})


def _with_expired(snap: AvailabilitySnapshot) -> AvailabilitySnapshot:
    return replace(
        snap, stock={k: replace(s, on_hand=s.on_hand + s.expired, expired=0) for k, s in snap.stock.items()}
    )


# Lifted one after another: the reason is the rule whose lifting first makes the line fit.
_RULES: tuple[tuple[ShortageReason, Callable[[AvailabilitySnapshot], AvailabilitySnapshot]], ...] = (
    (ShortageReason.SAFETY_STOCK, _without_safety),
    (ShortageReason.RING_FENCE, _without_fences),
    (ShortageReason.LOT_EXPIRY, _with_expired),
)


def shortage_reason(
    snap: AvailabilitySnapshot, fits: Callable[[AvailabilitySnapshot], bool]
) -> ShortageReason:
    """Why something that does not fit in `snap` is refused: safety stock, ring-fences and lot
    expiry are lifted in that order, and the first whose lifting makes `fits` true is the
    reason; `atp` when the units are not there even then (reserved, or never received)."""
    relaxed = snap
    for reason, lift in _RULES:
        relaxed = lift(relaxed)
        if fits(relaxed):
            return reason
    return ShortageReason.ATP


def channel_shortage_reason(snap: AvailabilitySnapshot, channel: str, sku: str, qty: int) -> ShortageReason:
    """Why `qty` of `sku` (a kit or not) is over `channel`'s ATP."""
    return shortage_reason(snap, lambda s: qty <= s.atp(channel, sku))


# -- the pre-filter of an order taken without backorders ----------------------------------


@dataclass(frozen=True)
class IntakeShort:
    """A line the channel's ATP cannot cover: what was asked, what there is, and the rule."""

    sku: str
    qty: int
    available: int
    rule: ShortageReason


def intake_refusals(
    snap: AvailabilitySnapshot,
    channel: str,
    lines: Sequence[tuple[str, int]],
    *,
    allow_split: bool,
    not_from_stock: Collection[str] = (),
) -> list[IntakeShort]:
    """The lines that make sourcing take nothing of an order without backorders from `snap`,
    each with the rule that refuses it; empty: let the order through (its reservation decides).

    Never stricter than sourcing and the reservation, which see the same snapshot: a line over
    its SKU's channel ATP (`atp`: kits from their components) cannot be reserved whole. Without
    `allow_split` the order ships from one place or not at all: one short line refuses it. With
    it, a plain line gets what there is: the order is refused only when every line is short and
    no plain one has a unit (a kit ships whole). `not_from_stock`: SKUs of lines that are not
    sourced from our shelves now (drop-shipped, pre-orders): the order is never refused here."""
    if any(sku in not_from_stock for sku, _ in lines):
        return []
    short = []
    for sku, qty in lines:
        have = snap.atp(channel, sku)
        if qty > have:
            short.append(IntakeShort(sku, qty, have, channel_shortage_reason(snap, channel, sku, qty)))
    if not short:
        return []
    if allow_split and (
        len(short) < len(lines) or any(s.available > 0 and s.sku not in snap.recipes for s in short)
    ):
        return []
    return short


def after_pending(
    snap: AvailabilitySnapshot, pending: Iterable[tuple[str, str, int]]
) -> AvailabilitySnapshot:
    """The snapshot once orders taken but not sourced yet have reserved what they will:
    `pending` is (channel, SKU, units) per line, kits already as their components. Each takes
    from the channel's locations with the most ATP first, never more than the channel's ATP of
    the SKU (its safety stock kept back), as their reservation would. Intake judges a new order
    against this, so that a unit promised to an order still on its way to sourcing is not
    promised again; where sourcing later places the units differs from this guess only in
    which location, not in what the channel has left."""
    stock = dict(snap.stock)
    out = AvailabilitySnapshot(stock, snap.channel_locations, snap.safety, snap.recipes, snap.targets)
    for channel, sku, qty in pending:
        left = min(qty, out.simple_atp(channel, sku))
        places = [
            (-out.location_atp(channel, sku, loc), loc) for loc in snap.channel_locations.get(channel, [])
        ]
        for _, loc in sorted(places):
            take = min(left, out.location_atp(channel, sku, loc))
            if take <= 0:
                continue
            stock[(sku, loc)] = stock[(sku, loc)].with_reserved(channel, take)
            left -= take
    return out

"""Order intake's pre-filter (domain.atp.intake_refusals) is never stricter than the
reservation, with Hypothesis over generated stock, fences, reservations and safety stock of
two SKUs and a kit of both: a line it refuses is one the reservation (domain.reservation.
plan_reservation, from the same snapshot) refuses at every location the channel ships from,
whole, and (a plain SKU's line of an order that may split) even one unit of it; and the rule
it names is the one order sourcing puts on the timeline for the same ask (`line_refused`)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.atp import AvailabilitySnapshot, channel_shortage_reason, intake_refusals
from domain.errors import ReservationShortage
from domain.reservation import Balance, Catalog, ReserveLine, plan_reservation
from tests.stock_model import CHANNELS, LOCATIONS
from tests.test_atp_properties import location_stocks

RECIPE = {"A": 1, "B": 2}
CATALOG = Catalog(
    kinds={"A": "stock", "B": "stock", "K": "kit"},
    recipes={"K": tuple(sorted(RECIPE.items()))},
    channel_locations={ch: LOCATIONS for ch in CHANNELS},
)
NOW = datetime(2026, 12, 3, tzinfo=UTC)


@st.composite
def snapshots(draw: st.DrawFn) -> AvailabilitySnapshot:
    stock = {(sku, loc): draw(location_stocks(max_units=8)) for sku in RECIPE for loc in LOCATIONS}
    safety = {(ch, sku): draw(st.integers(0, 6)) for ch in CHANNELS for sku in ("A", "B", "K")}
    return AvailabilitySnapshot(stock, {ch: list(LOCATIONS) for ch in CHANNELS}, safety, {"K": RECIPE}, {"K"})


def _reserves(snap: AvailabilitySnapshot, channel: str, sku: str, qty: int, location: str) -> bool:
    """Whether the reservation takes `qty` of `sku` for `channel` at `location` (one lot a balance)."""
    balances = [
        Balance(n, s, loc, "", None, st_.available)
        for n, ((s, loc), st_) in enumerate(sorted(snap.stock.items()))
    ]
    try:
        plan_reservation(channel, [ReserveLine("1", sku, location, qty)], CATALOG, snap, balances, NOW)
    except ReservationShortage:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(
    snapshots(),
    st.sampled_from(CHANNELS),
    st.sampled_from(("A", "B", "K")),
    st.integers(1, 12),
    st.booleans(),
)
def test_a_line_intake_refuses_is_one_no_location_can_reserve(
    snap: AvailabilitySnapshot, channel: str, sku: str, qty: int, split: bool
) -> None:
    refused = intake_refusals(snap, channel, [(sku, qty)], allow_split=split)
    if not refused:
        return
    (line,) = refused
    assert (line.sku, line.qty, line.available) == (sku, qty, snap.atp(channel, sku))
    smallest = 1 if split and sku != "K" else qty
    for location in LOCATIONS:
        assert not _reserves(snap, channel, sku, smallest, location)
    # The rule sourcing names on the timeline when the same ask loses the race there.
    assert line.rule == channel_shortage_reason(snap, channel, sku, qty)


@settings(max_examples=100, deadline=None)
@given(snapshots(), st.sampled_from(CHANNELS), st.sampled_from(("B", "K")), st.integers(1, 12))
def test_a_line_over_nothing_is_never_refused_when_another_line_fits_and_the_order_may_split(
    snap: AvailabilitySnapshot, channel: str, sku: str, qty: int
) -> None:
    have = snap.atp(channel, "A")
    if have == 0:
        return
    assert intake_refusals(snap, channel, [(sku, qty), ("A", have)], allow_split=True) == []

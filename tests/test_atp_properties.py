"""Properties of the ATP arithmetic of domain/atp.py, with Hypothesis, over generated stock,
fences, reservations and safety stock: never negative, never above what is available, a
channel's own fence never lowers its ATP, taking a fence never moves the other channels, a kit
never promises more than its components, `check_lines` accepts exactly the requests whose
totals fit. (The inventory core's state machine is in test_stock_properties.py.)"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from domain.atp import (
    AvailabilitySnapshot,
    LocationStock,
    channel_atp,
    check_lines,
    kit_channel_atp,
    kit_location_atp,
    location_atp,
)
from tests.stock_model import CHANNELS, LOCATIONS


@st.composite
def location_stocks(draw: st.DrawFn, max_units: int = 60) -> LocationStock:
    by_channel = {ch: draw(st.integers(0, 20)) for ch in CHANNELS}
    reserved = sum(by_channel.values())
    on_hand = draw(st.integers(reserved, reserved + max_units))
    fenced = draw(st.sets(st.sampled_from(CHANNELS)))
    fences = {ch: draw(st.integers(0, 30)) for ch in sorted(fenced)}
    return LocationStock(on_hand, reserved, fences, {ch: q for ch, q in by_channel.items() if q})


@given(location_stocks(), st.sampled_from(CHANNELS), st.integers(0, 40))
def test_location_atp_is_never_negative_nor_above_what_is_available(
    here: LocationStock, channel: str, safety: int
) -> None:
    atp_here = location_atp(here, channel)
    assert 0 <= atp_here <= here.available
    assert 0 <= channel_atp([atp_here], safety) <= atp_here
    # safety stock is units held back: more of it never gives more
    assert channel_atp([atp_here], safety + 1) <= channel_atp([atp_here], safety)


@given(st.lists(location_stocks(), min_size=1, max_size=4), st.sampled_from(CHANNELS), st.integers(0, 40))
def test_channel_atp_is_never_negative_nor_above_the_sum_available(
    stocks: list[LocationStock], channel: str, safety: int
) -> None:
    total = channel_atp((location_atp(s, channel) for s in stocks), safety)
    assert 0 <= total <= sum(s.available for s in stocks)


@given(location_stocks(), st.sampled_from(CHANNELS), st.integers(0, 50))
def test_a_channels_own_fence_never_lowers_its_atp(here: LocationStock, channel: str, fence: int) -> None:
    without = replace(here, fences={c: q for c, q in here.fences.items() if c != channel})
    with_fence = replace(here, fences={**here.fences, channel: fence})
    assert location_atp(with_fence, channel) >= location_atp(without, channel)
    assert location_atp(with_fence, channel) == location_atp(here, channel)


@given(location_stocks(), st.sampled_from(CHANNELS), st.sampled_from(CHANNELS), st.integers(1, 20))
def test_another_channels_fence_never_raises_my_atp(
    here: LocationStock, me: str, other: str, more: int
) -> None:
    if me == other:
        return
    bigger = replace(here, fences={**here.fences, other: here.fences.get(other, 0) + more})
    assert location_atp(bigger, me) <= location_atp(here, me)


@given(location_stocks(), st.sampled_from(CHANNELS), st.data())
def test_taking_ones_own_fence_leaves_the_others_atp_unchanged(
    here: LocationStock, taker: str, data: st.DataObject
) -> None:
    room = min(here.fence_remaining(taker), location_atp(here, taker))
    if room == 0:
        return
    q = data.draw(st.integers(1, room))
    after = replace(
        here,
        reserved=here.reserved + q,
        reserved_by_channel={**here.reserved_by_channel, taker: here.reserved_by_channel.get(taker, 0) + q},
    )
    for other in CHANNELS:
        if other != taker:
            assert location_atp(after, other) == location_atp(here, other)
    assert location_atp(after, taker) == location_atp(here, taker) - q


@given(
    st.dictionaries(st.sampled_from(["TEE", "MUG", "CAP"]), st.integers(1, 4), min_size=1),
    st.dictionaries(
        st.sampled_from(LOCATIONS),
        st.dictionaries(st.sampled_from(["TEE", "MUG", "CAP"]), st.integers(0, 40)),
        min_size=1,
    ),
    st.dictionaries(st.sampled_from(["TEE", "MUG", "CAP"]), st.integers(0, 60)),
    st.integers(0, 5),
)
def test_a_kit_never_promises_more_than_its_components(
    recipe: dict[str, int],
    per_location: dict[str, dict[str, int]],
    component_channel: dict[str, int],
    safety: int,
) -> None:
    kit = kit_channel_atp(per_location, recipe, component_channel, safety)
    assert kit >= 0
    for sku, qty in recipe.items():
        assert kit <= component_channel.get(sku, 0) // qty
    assert kit <= sum(kit_location_atp(atps, recipe) for atps in per_location.values())
    for atps in per_location.values():
        assert kit_location_atp(atps, recipe) <= min(atps.get(s, 0) // q for s, q in recipe.items())


@st.composite
def snapshots(draw: st.DrawFn) -> AvailabilitySnapshot:
    """A consistent snapshot of TEE and MUG at the three locations, and the GIFT kit."""
    stock_ = {(sku, loc): draw(location_stocks(max_units=30)) for sku in ("TEE", "MUG") for loc in LOCATIONS}
    safety = {
        (ch, sku): draw(st.integers(0, 6))
        for ch in CHANNELS
        for sku in ("TEE", "MUG", "GIFT")
        if draw(st.booleans())
    }
    return AvailabilitySnapshot(
        stock=stock_,
        channel_locations={"web": list(LOCATIONS), "marketplace": ["DC-EAST", "DC-WEST"], "b2b": ["DC-EAST"]},
        safety=safety,
        recipes={"GIFT": {"TEE": 1, "MUG": 2}},
        targets={"TEE", "MUG", "GIFT"},
    )


@given(snapshots())
def test_a_kits_channel_atp_fits_every_component_and_a_reservation_of_it_fits(
    snap: AvailabilitySnapshot,
) -> None:
    for ch in CHANNELS:
        gift = snap.atp(ch, "GIFT")
        assert 0 <= gift <= min(snap.atp(ch, "TEE") // 1, snap.atp(ch, "MUG") // 2)
        # the kit's ATP, if positive, is reservable: at some location the first kit fits
        if gift > 0:
            assert any(
                not check_lines(
                    [("1/TEE", "TEE", loc, 1), ("1/MUG", "MUG", loc, 2)],
                    {(s, loc): snap.location_atp(ch, s, loc) for s in ("TEE", "MUG")},
                    {s: snap.simple_atp(ch, s) for s in ("TEE", "MUG")},
                )
                for loc in snap.channel_locations[ch]
            )


REQUESTS = st.lists(
    st.tuples(st.sampled_from(["TEE", "MUG", "CAP"]), st.sampled_from(LOCATIONS), st.integers(1, 8)),
    max_size=6,
).map(lambda rs: [(f"L{i}", s, loc, q) for i, (s, loc, q) in enumerate(rs)])


@given(
    REQUESTS,
    st.dictionaries(
        st.tuples(st.sampled_from(["TEE", "MUG", "CAP"]), st.sampled_from(LOCATIONS)), st.integers(0, 15)
    ),
    st.dictionaries(st.sampled_from(["TEE", "MUG", "CAP"]), st.integers(0, 25)),
    st.randoms(use_true_random=False),
)
def test_check_lines_accepts_exactly_the_requests_whose_totals_fit(
    requests: list[tuple[str, str, str, int]],
    at: dict[tuple[str, str], int],
    total: dict[str, int],
    rnd: random.Random,
) -> None:
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    per_sku: dict[str, int] = defaultdict(int)
    for _, sku, loc, qty in requests:
        per_pair[(sku, loc)] += qty
        per_sku[sku] += qty
    fits = all(q <= at.get(p, 0) for p, q in per_pair.items()) and all(
        q <= total.get(s, 0) for s, q in per_sku.items()
    )
    shortages = check_lines(requests, at, total)
    assert (shortages == []) == fits
    assert {s.line for s in shortages} <= {r[0] for r in requests}
    assert all(s.requested > s.atp >= 0 for s in shortages)
    shuffled = list(requests)
    rnd.shuffle(shuffled)
    assert (check_lines(shuffled, at, total) == []) == fits  # the order of lines does not matter

"""`domain.reservation.plan_reservation` with no database: validation, kits (sharing
components), lots first-expiry-first-out, shortages at line, location and kit level, and a
Hypothesis property over generated stock: a plan never takes more than ATP, and every
planned unit comes from an unexpired lot."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.atp import AvailabilitySnapshot, LocationStock, Shortage
from domain.errors import InvalidStockChange, ReservationShortage, ShortageReason, UnknownReference
from domain.reservation import (
    Balance,
    Catalog,
    PlannedReservation,
    ReservationPlan,
    ReserveLine,
    expand_lines,
    plan_reservation,
)

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
LOCATIONS = ("DC-EAST", "DC-WEST", "STORE-SF")
CHANNEL_LOCATIONS = {"web": ["DC-EAST", "DC-WEST"], "marketplace": ["DC-EAST", "DC-WEST"], "b2b": ["DC-EAST"]}
RECIPES = {"GIFT": {"MUG": 2, "TEE": 1}, "PAIR": {"MUG": 1, "TEE": 2}}  # two kits sharing both components
KINDS = {"TEE": "simple", "MUG": "simple", "COFFEE": "simple", "GIFT": "kit", "PAIR": "kit"}
CATALOG = Catalog(
    kinds=KINDS,
    recipes={kit: sorted(parts.items()) for kit, parts in RECIPES.items()},
    channel_locations=CHANNEL_LOCATIONS,
)


def bal(
    id_: int,
    sku: str,
    location: str,
    qty: int,
    *,
    lot: str = "",
    expires: datetime | None = None,
    reserved: int = 0,
) -> tuple[Balance, int, int]:
    """A balance row as the plan sees it, with its on-hand and reserved units for the snapshot."""
    return Balance(id_, sku, location, lot, expires, qty - reserved), qty, reserved


def snapshot(
    rows: list[tuple[Balance, int, int]],
    *,
    safety: dict[tuple[str, str], int] | None = None,
    fences: dict[tuple[str, str], dict[str, int]] | None = None,
    by_channel: dict[tuple[str, str], dict[str, int]] | None = None,
) -> AvailabilitySnapshot:
    """The ATP snapshot the database would read for these balance rows: unexpired sellable
    units and their reserved units per (sku, location)."""
    on_hand: dict[tuple[str, str], int] = defaultdict(int)
    reserved: dict[tuple[str, str], int] = defaultdict(int)
    expired: dict[tuple[str, str], int] = defaultdict(int)
    for b, qty, res in rows:
        if b.expires_at is None or b.expires_at > NOW:
            on_hand[(b.sku, b.location)] += qty
            reserved[(b.sku, b.location)] += res
        else:
            expired[(b.sku, b.location)] += qty - res
    fences = fences or {}
    by_channel = by_channel or {}
    stock = {
        key: LocationStock(
            on_hand.get(key, 0),
            reserved.get(key, 0),
            fences.get(key, {}),
            by_channel.get(key, {}),
            expired.get(key, 0),
        )
        for key in on_hand.keys() | fences.keys() | expired.keys()
    }
    return AvailabilitySnapshot(
        stock=stock,
        channel_locations={ch: sorted(locs) for ch, locs in CHANNEL_LOCATIONS.items()},
        safety=safety or {},
        recipes=RECIPES,
        targets=set(KINDS),
    )


Rows = list[tuple[Balance, int, int]]
Fences = dict[tuple[str, str], dict[str, int]]


def plan(
    lines: list[ReserveLine],
    rows: Rows,
    channel: str = "web",
    *,
    safety: dict[tuple[str, str], int] | None = None,
    fences: Fences | None = None,
) -> ReservationPlan:
    before = snapshot(rows, safety=safety, fences=fences)
    return plan_reservation(channel, lines, CATALOG, before, [r[0] for r in rows], NOW)


def shortages(
    lines: list[ReserveLine],
    rows: Rows,
    *,
    safety: dict[tuple[str, str], int] | None = None,
    fences: Fences | None = None,
) -> list[Shortage]:
    with pytest.raises(ReservationShortage) as info:
        plan(lines, rows, safety=safety, fences=fences)
    return info.value.shortages


# -- plain lines ----------------------------------------------------------------------


def test_a_plain_line_plans_its_rows_totals_result_and_the_atp_after() -> None:
    rows = [bal(1, "TEE", "DC-EAST", 10, reserved=2), bal(2, "TEE", "DC-WEST", 4)]
    p = plan([ReserveLine("1", "TEE", "DC-EAST", 3)], rows, safety={("web", "TEE"): 1})
    assert p.reservations == [PlannedReservation("1", "TEE", "DC-EAST", "", 3, 1, 1)]
    assert p.per_balance == {1: 3}
    assert p.per_location == {("TEE", "DC-EAST"): 3}
    assert p.result == {
        "channel": "web",
        "reservations": [{"line": "1", "sku": "TEE", "location": "DC-EAST", "lot": "", "qty": 3}],
    }
    # web: (8 - 3) + 4 - safety 1; b2b ships from DC-EAST only
    assert p.atp_after[("web", "TEE")] == 8
    assert p.atp_after[("b2b", "TEE")] == 5
    assert list(p.atp_after) == sorted(p.atp_after)  # written in a stable order


def test_lines_of_one_sku_at_one_location_draw_on_the_same_balance() -> None:
    rows = [bal(1, "TEE", "DC-EAST", 5)]
    p = plan([ReserveLine("1", "TEE", "DC-EAST", 2), ReserveLine("2", "TEE", "DC-EAST", 3)], rows)
    assert [(r.line, r.qty, r.balance_id) for r in p.reservations] == [("1", 2, 1), ("2", 3, 1)]
    assert p.per_balance == {1: 5}
    assert p.atp_after[("web", "TEE")] == 0


# -- kits -----------------------------------------------------------------------------


def test_kits_sharing_components_expand_per_line_and_add_up_per_balance() -> None:
    rows = [bal(1, "MUG", "DC-EAST", 10), bal(2, "TEE", "DC-EAST", 10)]
    lines = [ReserveLine("1", "GIFT", "DC-EAST", 2), ReserveLine("2", "PAIR", "DC-EAST", 1)]
    p = plan(lines, rows)
    assert [(r.line, r.sku, r.qty, r.per_unit) for r in p.reservations] == [
        ("1/MUG", "MUG", 4, 2),
        ("1/TEE", "TEE", 2, 1),
        ("2/MUG", "MUG", 1, 1),
        ("2/TEE", "TEE", 2, 2),
    ]
    assert p.per_balance == {1: 5, 2: 4}
    assert p.per_location == {("MUG", "DC-EAST"): 5, ("TEE", "DC-EAST"): 4}
    # MUG 5 left, TEE 6 left: GIFT min(5 // 2, 6) = 2, PAIR min(5, 6 // 2) = 3
    assert p.atp_after[("web", "GIFT")] == 2
    assert p.atp_after[("web", "PAIR")] == 3


def test_kits_sharing_a_short_component_name_the_line_that_does_not_fit() -> None:
    rows = [bal(1, "MUG", "DC-EAST", 4), bal(2, "TEE", "DC-EAST", 10)]
    lines = [ReserveLine("1", "GIFT", "DC-EAST", 2), ReserveLine("2", "PAIR", "DC-EAST", 1)]
    assert shortages(lines, rows) == [Shortage("2/MUG", "MUG", "DC-EAST", 1, 0)]


def test_expand_lines_keeps_the_kit_line_location_and_units_per_kit() -> None:
    out = expand_lines("web", [ReserveLine("7", "PAIR", "DC-WEST", 3)], CATALOG)
    assert [(c.line, c.sku, c.location, c.qty, c.per_unit) for c in out] == [
        ("7/MUG", "MUG", "DC-WEST", 3, 1),
        ("7/TEE", "TEE", "DC-WEST", 6, 2),
    ]


# -- lots -----------------------------------------------------------------------------


def test_lots_go_first_expiry_first_out_and_an_expired_lot_is_never_taken() -> None:
    rows = [
        bal(1, "COFFEE", "DC-EAST", 50, lot="L-OLD", expires=NOW - timedelta(days=1)),
        bal(2, "COFFEE", "DC-EAST", 10, lot="L-LATE", expires=NOW + timedelta(days=30)),
        bal(3, "COFFEE", "DC-EAST", 3, lot="L-SOON", expires=NOW + timedelta(days=10)),
        bal(4, "COFFEE", "DC-EAST", 20, lot="L-NEVER"),
        bal(5, "COFFEE", "DC-EAST", 9, lot="L-NOW", expires=NOW),  # expires this instant: expired
    ]
    p = plan([ReserveLine("1", "COFFEE", "DC-EAST", 2), ReserveLine("2", "COFFEE", "DC-EAST", 13)], rows)
    assert [(r.line, r.lot, r.qty, r.balance_id) for r in p.reservations] == [
        ("1", "L-SOON", 2, 3),
        ("2", "L-SOON", 1, 3),
        ("2", "L-LATE", 10, 2),
        ("2", "L-NEVER", 2, 4),
    ]
    assert p.per_balance == {3: 3, 2: 10, 4: 2}
    # the expired lots' 59 units were never promisable
    assert shortages([ReserveLine("1", "COFFEE", "DC-EAST", 34)], rows) == [
        Shortage("1", "COFFEE", "DC-EAST", 34, 33, ShortageReason.LOT_EXPIRY)
    ]


def test_reserved_units_of_a_lot_are_not_planned_again() -> None:
    rows = [
        bal(1, "COFFEE", "DC-EAST", 5, lot="A", expires=NOW + timedelta(days=1), reserved=4),
        bal(2, "COFFEE", "DC-EAST", 5, lot="B", expires=NOW + timedelta(days=2)),
    ]
    p = plan([ReserveLine("1", "COFFEE", "DC-EAST", 3)], rows)
    assert [(r.lot, r.qty) for r in p.reservations] == [("A", 1), ("B", 2)]


# -- shortages ------------------------------------------------------------------------


def test_a_line_over_its_location_atp_is_short() -> None:
    rows = [bal(1, "TEE", "DC-EAST", 2), bal(2, "TEE", "DC-WEST", 50)]
    assert shortages([ReserveLine("1", "TEE", "DC-EAST", 3)], rows) == [Shortage("1", "TEE", "DC-EAST", 3, 2)]


def test_lines_at_one_location_share_its_atp_and_another_channels_fence_holds_units_back() -> None:
    rows = [bal(1, "TEE", "DC-EAST", 10)]
    fences = {("TEE", "DC-EAST"): {"marketplace": 4}}
    lines = [ReserveLine("1", "TEE", "DC-EAST", 3), ReserveLine("2", "TEE", "DC-EAST", 4)]
    assert shortages(lines, rows, fences=fences) == [
        Shortage("2", "TEE", "DC-EAST", 4, 3, ShortageReason.RING_FENCE)
    ]
    # the fence's own channel is not held back by it
    assert plan(lines, rows, "marketplace", fences=fences).per_balance == {1: 7}


def test_lines_at_different_locations_share_the_channel_atp_less_safety_stock() -> None:
    rows = [bal(1, "TEE", "DC-EAST", 5), bal(2, "TEE", "DC-WEST", 5)]
    lines = [ReserveLine("1", "TEE", "DC-EAST", 5), ReserveLine("2", "TEE", "DC-WEST", 5)]
    assert shortages(lines, rows, safety={("web", "TEE"): 4}) == [
        Shortage("2", "TEE", "DC-WEST", 5, 1, ShortageReason.SAFETY_STOCK)
    ]


def test_a_kit_respects_its_own_safety_stock_and_every_shortage_is_named() -> None:
    rows = [bal(1, "MUG", "DC-EAST", 4), bal(2, "TEE", "DC-EAST", 2), bal(3, "COFFEE", "DC-EAST", 1)]
    lines = [ReserveLine("1", "GIFT", "DC-EAST", 2), ReserveLine("2", "COFFEE", "DC-EAST", 2)]
    # the components fit (4 MUG, 2 TEE), the kit's ATP is 2 - 1 held back; COFFEE is short too
    assert shortages(lines, rows, safety={("web", "GIFT"): 1}) == [
        Shortage("2", "COFFEE", "DC-EAST", 2, 1),
        Shortage("1", "GIFT", "DC-EAST", 2, 1, ShortageReason.SAFETY_STOCK),
    ]


def test_a_kit_asked_on_two_lines_is_checked_on_its_total_at_the_first_line() -> None:
    rows = [bal(1, "MUG", "DC-EAST", 6), bal(2, "TEE", "DC-EAST", 3), bal(3, "MUG", "DC-WEST", 2)]
    rows += [bal(4, "TEE", "DC-WEST", 1)]
    lines = [ReserveLine("1", "GIFT", "DC-EAST", 2), ReserveLine("2", "GIFT", "DC-WEST", 1)]
    assert plan(lines, rows).per_balance == {1: 4, 2: 2, 3: 2, 4: 1}
    # GIFT: 3 at DC-EAST + 1 at DC-WEST, less 2 held back
    assert shortages(lines, rows, safety={("web", "GIFT"): 2}) == [
        Shortage("1", "GIFT", "DC-EAST", 3, 2, ShortageReason.SAFETY_STOCK)
    ]


# -- validation -----------------------------------------------------------------------


def test_an_unknown_sku_is_an_unknown_reference() -> None:
    with pytest.raises(UnknownReference) as info:
        plan([ReserveLine("1", "TEE", "DC-EAST", 1), ReserveLine("2", "NOPE", "DC-EAST", 1)], [])
    assert (info.value.what, info.value.value) == ("SKU", "NOPE")


def test_an_unknown_channel_is_an_unknown_reference() -> None:
    with pytest.raises(UnknownReference) as info:
        plan([ReserveLine("1", "TEE", "DC-EAST", 1)], [], "fax")
    assert (info.value.what, info.value.value) == ("channel", "fax")


@pytest.mark.parametrize("qty", [0, -1])
def test_a_line_needs_a_positive_quantity(qty: int) -> None:
    with pytest.raises(InvalidStockChange, match="line 1: quantity must be positive"):
        plan([ReserveLine("1", "TEE", "DC-EAST", qty)], [bal(1, "TEE", "DC-EAST", 5)])


@pytest.mark.parametrize("sku", ["TEE", "GIFT"])
def test_a_location_the_channel_does_not_ship_from_is_refused(sku: str) -> None:
    with pytest.raises(InvalidStockChange, match="channel b2b does not fulfil from DC-WEST"):
        plan([ReserveLine("1", sku, "DC-WEST", 1)], [bal(1, "TEE", "DC-WEST", 5)], "b2b")
    with pytest.raises(InvalidStockChange, match="does not fulfil from STORE-SF"):
        plan([ReserveLine("1", sku, "STORE-SF", 1)], [bal(1, "TEE", "STORE-SF", 5)])


# -- the property ---------------------------------------------------------------------

SKUS = ("TEE", "MUG", "COFFEE")
OFFSETS = st.one_of(st.none(), st.integers(-3, 3).map(lambda d: NOW + timedelta(days=d)))


@st.composite
def stock_rows(draw: st.DrawFn) -> list[tuple[Balance, int, int]]:
    rows: list[tuple[Balance, int, int]] = []
    for sku in SKUS:
        for location in LOCATIONS:
            lots = ["A", "B", "C"] if sku == "COFFEE" else [""]
            for lot in draw(st.lists(st.sampled_from(lots), unique=True, min_size=1, max_size=len(lots))):
                qty = draw(st.integers(0, 30))
                expires = draw(OFFSETS) if lot else None
                reserved = draw(st.integers(0, qty // 3))
                rows.append(
                    bal(len(rows) + 1, sku, location, qty, lot=lot, expires=expires, reserved=reserved)
                )
    return rows


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, list[ReserveLine]]:
    channel = draw(st.sampled_from(sorted(CHANNEL_LOCATIONS)))
    picks = st.tuples(
        st.sampled_from(sorted(KINDS)), st.sampled_from(CHANNEL_LOCATIONS[channel]), st.integers(1, 6)
    )
    lines = [
        ReserveLine(str(i), s, loc, q)
        for i, (s, loc, q) in enumerate(draw(st.lists(picks, min_size=1, max_size=4)))
    ]
    return channel, lines


FENCES = st.dictionaries(
    st.tuples(st.sampled_from(SKUS), st.sampled_from(LOCATIONS)),
    st.dictionaries(st.sampled_from(sorted(CHANNEL_LOCATIONS)), st.integers(1, 5), max_size=2),
    max_size=3,
)
SAFETY = st.dictionaries(
    st.tuples(st.sampled_from(sorted(CHANNEL_LOCATIONS)), st.sampled_from(sorted(KINDS))), st.integers(0, 4)
)


def plan_or_shortages(
    channel: str, lines: list[ReserveLine], before: AvailabilitySnapshot, balances: list[Balance]
) -> ReservationPlan | list[Shortage]:
    try:
        return plan_reservation(channel, lines, CATALOG, before, balances, NOW)
    except ReservationShortage as short:
        return short.shortages


def planned_units(p: ReservationPlan, balances: dict[int, Balance]) -> dict[tuple[str, str], int]:
    """Units per (sku, location), checking that each row comes from an unexpired lot of its
    own SKU and location, and no balance gives more than it has available."""
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    for r in p.reservations:
        b = balances[r.balance_id]
        assert (b.sku, b.location, b.lot) == (r.sku, r.location, r.lot)
        assert b.expires_at is None or b.expires_at > NOW  # never from an expired lot
        assert r.qty > 0
        per_pair[(r.sku, r.location)] += r.qty
    for bid, qty in p.per_balance.items():
        assert qty <= balances[bid].available
    assert per_pair == p.per_location
    assert sum(p.per_balance.values()) == sum(per_pair.values())
    return per_pair


def assert_every_line_in_full(p: ReservationPlan, lines: list[ReserveLine]) -> None:
    per_line: dict[str, int] = defaultdict(int)
    for r in p.reservations:
        per_line[r.line] += r.qty
    for ln in lines:
        parts = RECIPES.get(ln.sku, {ln.sku: 1})
        for part, units in parts.items():
            assert per_line[f"{ln.line}/{part}" if ln.sku in RECIPES else ln.line] == ln.qty * units


@settings(max_examples=300, deadline=None)
@given(stock_rows(), requests(), FENCES, SAFETY)
def test_a_plan_never_takes_more_than_atp_and_only_from_unexpired_lots(
    rows: Rows, ask: tuple[str, list[ReserveLine]], fences: Fences, safety: dict[tuple[str, str], int]
) -> None:
    channel, lines = ask
    before = snapshot(rows, fences=fences, safety=safety)
    balances = {b.id: b for b, _, _ in rows}
    p = plan_or_shortages(channel, lines, before, list(balances.values()))
    if isinstance(p, list):
        assert p
        assert all(s.requested > s.atp >= 0 for s in p)
        return
    per_pair = planned_units(p, balances)
    assert_every_line_in_full(p, lines)
    for (sku, location), qty in per_pair.items():
        assert qty <= before.location_atp(channel, sku, location)
    per_sku: dict[str, int] = defaultdict(int)
    for (sku, _), qty in per_pair.items():
        per_sku[sku] += qty
    for sku, qty in per_sku.items():
        assert qty <= before.simple_atp(channel, sku)
    kits: dict[str, int] = defaultdict(int)
    for ln in lines:
        if ln.sku in RECIPES:
            kits[ln.sku] += ln.qty
    for kit, qty in kits.items():
        assert qty <= before.atp(channel, kit)
    for (ch, sku), value in p.atp_after.items():  # reserving never raises anyone's ATP
        assert 0 <= value <= before.atp(ch, sku)


def test_a_channel_shortage_names_the_rule_that_refused_it() -> None:
    """What sourcing tells an order it cannot fill: safety stock, then ring-fences, then lot
    expiry are lifted in turn; atp when the units are not there at all."""
    from domain.atp import channel_shortage_reason

    rows = [bal(1, "TEE", "DC-EAST", 10), bal(2, "COFFEE", "DC-EAST", 5, lot="OLD", expires=NOW)]
    fenced = snapshot(rows, safety={("web", "TEE"): 2}, fences={("TEE", "DC-EAST"): {"b2b": 5}})
    assert fenced.atp("web", "TEE") == 3
    assert channel_shortage_reason(fenced, "web", "TEE", 5) == ShortageReason.SAFETY_STOCK
    assert channel_shortage_reason(fenced, "web", "TEE", 6) == ShortageReason.RING_FENCE
    assert channel_shortage_reason(fenced, "web", "TEE", 11) == ShortageReason.ATP
    assert channel_shortage_reason(fenced, "web", "COFFEE", 5) == ShortageReason.LOT_EXPIRY
    assert channel_shortage_reason(fenced, "web", "COFFEE", 6) == ShortageReason.ATP

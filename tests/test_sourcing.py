"""Sourcing as a merchandiser would describe it, then its properties for any input."""

from __future__ import annotations

import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.sourcing import OrderLine, Request, Site, haversine_km, source

NYC, LA, SF = (40.7, -74.0), (34.0, -118.2), (37.8, -122.4)
SITES = [
    Site("DC-EAST", *NYC, ship_cost=400, priority=2),
    Site("DC-WEST", *LA, ship_cost=300, priority=1),
    Site("STORE-SF", *SF, ship_cost=900, priority=3),
]


def test_the_nearest_location_that_can_fill_everything_ships_it() -> None:
    atp = {("DC-EAST", "TEE"): 5, ("DC-WEST", "TEE"): 5, ("STORE-SF", "TEE"): 5}
    plan = source(Request([OrderLine("1", "TEE", 2)], SITES, atp, rule="nearest", ship_to=(37.7, -122.3)))
    assert [s.location for s in plan.shipments] == ["STORE-SF"]
    assert plan.complete


def test_cheapest_and_priority_rules() -> None:
    atp = {("DC-EAST", "TEE"): 5, ("DC-WEST", "TEE"): 5}
    lines = [OrderLine("1", "TEE", 2)]
    assert source(Request(lines, SITES, atp, rule="cheapest")).shipments[0].location == "DC-WEST"
    assert source(Request(lines, SITES, atp, rule="priority")).shipments[0].location == "DC-WEST"


def test_one_shipment_beats_a_nearer_split() -> None:
    atp = {("STORE-SF", "TEE"): 1, ("STORE-SF", "MUG"): 1, ("DC-EAST", "TEE"): 3, ("DC-EAST", "MUG"): 3}
    lines = [OrderLine("1", "TEE", 2), OrderLine("2", "MUG", 1)]
    plan = source(Request(lines, SITES, atp, rule="nearest", ship_to=SF))
    assert [(s.location, s.lines) for s in plan.shipments] == [("DC-EAST", (("1", 2), ("2", 1)))]


def test_split_only_when_allowed_else_backorder() -> None:
    atp = {("DC-EAST", "TEE"): 1, ("DC-WEST", "TEE"): 1}
    lines = [OrderLine("1", "TEE", 2)]
    split = source(Request(lines, SITES, atp, rule="cheapest"))
    assert sorted((s.location, s.lines) for s in split.shipments) == [
        ("DC-EAST", (("1", 1),)),
        ("DC-WEST", (("1", 1),)),
    ]
    whole = source(Request(lines, SITES, atp, rule="cheapest", allow_split=False))
    assert whole.shipments == ()
    assert whole.backordered == (("1", 2),)
    strict = source(Request(lines, SITES, atp, rule="cheapest", allow_split=False, allow_backorder=False))
    assert strict.unfillable == (("1", 2),)


def test_kits_ship_whole_from_one_location() -> None:
    atp = {("DC-EAST", "GIFT"): 1, ("DC-WEST", "GIFT"): 1}
    plan = source(Request([OrderLine("1", "GIFT", 2, kit=True)], SITES, atp, rule="nearest", ship_to=NYC))
    assert plan.shipments == ()
    assert plan.backordered == (("1", 2),)


def test_dropship_lines_go_to_the_supplier() -> None:
    sites = [*SITES, Site("DROP-ACME", dropship=True)]
    plan = source(
        Request(
            [OrderLine("1", "TEE", 1), OrderLine("2", "SOFA", 1)],
            sites,
            {("DC-EAST", "TEE"): 1},
            dropship_skus={"SOFA": "DROP-ACME"},
        )
    )
    assert [(s.location, s.lines) for s in plan.dropship] == [("DROP-ACME", (("2", 1),))]
    assert [s.location for s in plan.shipments] == ["DC-EAST"]


def test_haversine_is_roughly_right() -> None:
    assert 3900 < haversine_km(NYC, LA) < 4000


codes = st.sampled_from(["A", "B", "C", "D"])


@st.composite
def requests(draw: st.DrawFn) -> Request:
    skus = ["S1", "S2", "K1"]
    lines = [
        OrderLine(str(i), sku, draw(st.integers(1, 5)), kit=sku.startswith("K"))
        for i, sku in enumerate(draw(st.lists(st.sampled_from(skus), min_size=1, max_size=4, unique=True)))
    ]
    sites = [
        Site(
            c,
            draw(st.floats(-60, 60)),
            draw(st.floats(-170, 170)),
            draw(st.integers(0, 999)),
            draw(st.integers(1, 9)),
        )
        for c in draw(st.lists(codes, min_size=1, max_size=4, unique=True))
    ]
    atp = {(s.code, sku): draw(st.integers(0, 6)) for s in sites for sku in skus}
    return Request(
        lines,
        sites,
        atp,
        rule=draw(st.sampled_from(["nearest", "cheapest", "priority"])),
        ship_to=(draw(st.floats(-60, 60)), draw(st.floats(-170, 170))),
        allow_split=draw(st.booleans()),
        allow_backorder=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(requests())
def test_plans_never_promise_more_than_atp_and_account_for_every_unit(req: Request) -> None:
    plan = source(req)
    taken: dict[tuple[str, str], int] = defaultdict(int)
    per_line: dict[str, int] = defaultdict(int)
    by_line = {ln.line: ln for ln in req.lines}
    for s in plan.shipments:
        for line, qty in s.lines:
            taken[(s.location, by_line[line].sku)] += qty
            per_line[line] += qty
    for key, qty in taken.items():
        assert qty <= req.atp.get(key, 0)
    for line, qty in (*plan.backordered, *plan.unfillable):
        per_line[line] += qty
    assert dict(per_line) == {ln.line: ln.qty for ln in req.lines}
    for ln in req.lines:  # kits whole, from one place
        if ln.kit:
            places = [s.location for s in plan.shipments if any(line == ln.line for line, _ in s.lines)]
            assert len(places) <= 1
    if not req.allow_split:
        assert len(plan.shipments) <= 1
    # Deterministic whatever order the sites come in.
    shuffled = list(req.sites)
    random.Random(0).shuffle(shuffled)
    assert (
        source(
            Request(req.lines, shuffled, req.atp, req.rule, req.ship_to, req.allow_split, req.allow_backorder)
        )
        == plan
    )


def test_a_budget_far_below_a_location_s_atp_still_fills_what_it_allows() -> None:
    """Safety stock (the channel's budget) of 8 of the 10 at the only location: 2 of 3 ship."""
    from domain.sourcing import plan_within_budget

    request = Request([OrderLine("1", "MUG", 3)], SITES, {("DC-WEST", "MUG"): 10}, rule="nearest", ship_to=LA)
    plan = plan_within_budget(request, {"MUG": 2})
    assert [(s.location, s.lines) for s in plan.shipments] == [("DC-WEST", (("1", 2),))]
    assert plan.backordered == (("1", 1),)  # Request allows backorders by default

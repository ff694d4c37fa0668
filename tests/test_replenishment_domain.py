"""domain.replenishment, pure: the suggestion arithmetic, factors, supplier choice, draft POs,
the simulation; and Hypothesis properties: an order is never below the MOQ, always a
multiple of the order multiple, never made at a position ≥ the reorder point, and always
lifts the position to the order-up-to level."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from domain.purchasing import SupplierTerms, line_problems
from domain.replenishment import (
    Factor,
    Factors,
    Policy,
    SimItem,
    StockPoint,
    SupplierOption,
    choose_supplier,
    draft_orders,
    order_qty,
    po_number,
    simulate,
    suggest,
    suggest_all,
)

TODAY = date(2026, 6, 15)


def point(
    on_hand: int = 0, inbound: int = 0, reserved: int = 0, safety_stock: int = 0, review_days: int = 7
) -> StockPoint:
    return StockPoint("TEE", "DC-EAST", "apparel", on_hand, inbound, reserved, safety_stock, review_days)


def option(
    supplier: str = "ACME", cost: int = 500, moq: int = 1, multiple: int = 1, lead: int = 7
) -> SupplierOption:
    return SupplierOption(supplier, "TEE", cost, "USD", moq, multiple, lead)


def test_the_arithmetic_of_one_suggestion() -> None:
    # 70 shipped in 28 days: 2.5/day; ROP = 2.5 × 7 + 10 = 27.5; OUT = 27.5 + 2.5 × 7 = 45
    s = suggest(
        point(12, 3, 2, safety_stock=10, review_days=7), 70, 28, Fraction(1), option(moq=12, multiple=6)
    )
    assert s.demand_per_day == Fraction(5, 2)
    assert s.reorder_point == Fraction(55, 2) and s.order_up_to == 45
    assert s.point.position == 13
    assert s.suggested_qty == 36  # need 45 − 13 = 32 → the next multiple of 6 is 36
    assert "2.5 × 7 days lead + 10 safety = 27.5" in s.why
    assert "position 12 on hand + 3 inbound − 2 reserved = 13 < 27.5" in s.why
    assert "ordered 36 (MOQ 12, multiple 6) from ACME" in s.why


def test_nothing_is_ordered_at_or_above_the_reorder_point() -> None:
    at = suggest(point(27), 70, 28, Fraction(1), option(lead=10))  # ROP = 2.5 × 10 = 25 ≤ 27
    assert at.suggested_qty == 0 and "≥ 25: nothing to order" in at.why
    exactly = suggest(point(25), 70, 28, Fraction(1), option(lead=10))
    assert exactly.suggested_qty == 0
    below = suggest(point(24), 70, 28, Fraction(1), option(lead=10))
    assert below.suggested_qty == 19  # OUT = 25 + 2.5 × 7 = 42.5 → need 18.5 → 19


def test_no_demand_and_no_safety_stock_orders_nothing() -> None:
    assert suggest(point(0), 0, 28, Fraction(1), option()).suggested_qty == 0


def test_the_factor_scales_demand() -> None:
    s = suggest(point(0), 28, 28, Fraction(3, 2), option(lead=2))
    assert s.demand_per_day == Fraction(3, 2) and s.reorder_point == 3
    assert "× factor 1.5" in s.why


def test_without_a_supplier_nothing_is_ordered() -> None:
    s = suggest(point(0, safety_stock=5), 10, 10, Fraction(1), None)
    assert s.suggested_qty == 0 and "no supplier supplies TEE" in s.why


def test_sku_factors_override_the_category_and_overlaps_multiply() -> None:
    june = (date(2026, 6, 1), date(2026, 6, 30))
    factors = Factors(
        [
            Factor(*june, Fraction(2), category="apparel"),
            Factor(*june, Fraction(3, 2), sku="TEE"),
            Factor(date(2026, 6, 10), date(2026, 6, 20), Fraction(6, 5), sku="TEE"),
            Factor(date(2026, 7, 1), date(2026, 7, 31), Fraction(9), sku="TEE"),
        ]
    )
    assert factors.on("TEE", "apparel", TODAY) == Fraction(9, 5)  # 1.5 × 1.2, the category's 2 ignored
    assert factors.on("TEE", "apparel", date(2026, 6, 25)) == Fraction(3, 2)
    assert factors.on("MUG", "apparel", TODAY) == 2  # no own factor: the category's
    assert factors.on("MUG", None, TODAY) == 1
    assert factors.on("TEE", "apparel", date(2026, 8, 1)) == 1


def test_the_policy_supplier_wins_else_the_cheapest() -> None:
    options = [option("B", cost=400, lead=9), option("A", cost=400, lead=5), option("C", cost=300, lead=20)]
    assert choose_supplier(options, "B").supplier == "B"  # type: ignore[union-attr]
    assert choose_supplier(options, None).supplier == "C"  # type: ignore[union-attr]
    assert choose_supplier(options[:2], "NOT-A-SUPPLIER").supplier == "A"  # type: ignore[union-attr]
    assert choose_supplier([], None) is None


def test_draft_orders_group_by_supplier_and_location() -> None:
    points = [
        StockPoint("TEE", "DC-EAST", None, 0, 0, 0, safety_stock=5),
        StockPoint("MUG", "DC-EAST", None, 0, 0, 0, safety_stock=5),
        StockPoint("TEE", "DC-WEST", None, 0, 0, 0, safety_stock=5),
        StockPoint("CAP", "DC-WEST", None, 100, 0, 0, safety_stock=5),
    ]
    options = {sku: [SupplierOption("ACME", sku, 100, "USD", 10, 5, 3)] for sku in ("TEE", "MUG", "CAP")}
    found = suggest_all(points, {}, 28, Factors([]), options, TODAY)
    orders = draft_orders(found, "run1")
    assert [(o.number, [(ln.sku, ln.qty) for ln in o.lines]) for o in orders] == [
        ("R-run1-ACME-DC-EAST", [("MUG", 10), ("TEE", 10)]),
        ("R-run1-ACME-DC-WEST", [("TEE", 10)]),
    ]
    assert orders[0].value == 2000 and orders[0].lead_time_days == 3


def test_long_po_numbers_are_digested_to_fit() -> None:
    number = po_number("r" * 48, "S" * 40, "L" * 40)
    assert len(number) <= 64 and number.startswith("R-" + "r" * 48 + "-")
    assert number == po_number("r" * 48, "S" * 40, "L" * 40)
    assert number != po_number("r" * 48, "S" * 40, "M" * 40)


def test_a_simulation_replays_demand_and_orders_at_the_reorder_point() -> None:
    item = SimItem(point(10), option(cost=100, lead=2), tuple([2] * 20))  # 2/day for 20 days
    lean = simulate([item], 10, Policy(demand_days=7, factors=Factors([])), TODAY)
    # ROP = 2 × 2 = 4, OUT = 4 + 2 × 7 = 18: on day 4 the position is 2 < 4, order 18 − 2 = 16
    assert lean.orders == 1 and lean.purchase_value == 1600 and lean.units_short == 0
    safe = simulate([item], 10, Policy(demand_days=7, factors=Factors([]), safety_stock=10), TODAY)
    assert safe.units_short <= lean.units_short
    assert safe.purchase_value >= lean.purchase_value
    assert lean.average_days_of_cover is not None


def test_a_simulation_without_orders_runs_out() -> None:
    item = SimItem(point(5), option(lead=30), tuple([0] * 10 + [1] * 10))
    out = simulate([item], 10, Policy(demand_days=10, factors=Factors([])), TODAY)
    assert out.stock_out_days == 5 and out.units_short == 5  # 5 on hand for 10 days of 1


def test_service_level_sets_a_safety_stock_from_the_variation() -> None:
    steady = SimItem(point(0), option(lead=4), tuple([3] * 30))
    bumpy = SimItem(point(0), option(lead=4), tuple([0, 6] * 15))
    policy = Policy(demand_days=14, factors=Factors([]), service_level=0.95)
    assert (
        simulate([steady], 14, policy, TODAY).purchase_value
        <= simulate([bumpy], 14, policy, TODAY).purchase_value
    )


# -- properties -------------------------------------------------------------------------------

points = st.builds(
    StockPoint,
    sku=st.just("TEE"),
    location=st.just("DC"),
    category=st.none(),
    on_hand=st.integers(0, 500),
    inbound=st.integers(0, 200),
    reserved=st.integers(0, 100),
    safety_stock=st.integers(0, 100),
    review_days=st.integers(0, 30),
)
options = st.builds(
    SupplierOption,
    supplier=st.just("ACME"),
    sku=st.just("TEE"),
    cost=st.integers(0, 10_000),
    currency=st.just("USD"),
    moq=st.integers(1, 100),
    order_multiple=st.integers(1, 48),
    lead_time_days=st.integers(0, 60),
)
factors = st.fractions(min_value=0, max_value=5, max_denominator=1000)


@given(points, st.integers(0, 5_000), st.integers(1, 90), factors, options)
def test_an_order_respects_the_terms_and_the_reorder_point(
    p: StockPoint, shipped: int, days: int, factor: Fraction, o: SupplierOption
) -> None:
    s = suggest(p, shipped, days, factor, o)
    if p.position >= s.reorder_point:
        assert s.suggested_qty == 0  # never orders when the position is at or above the ROP
    else:
        assert s.suggested_qty >= o.moq  # never below the MOQ
        assert s.suggested_qty % o.order_multiple == 0  # a multiple of the order multiple
        assert p.position + s.suggested_qty >= s.order_up_to  # reaches the order-up-to level
        assert s.suggested_qty - o.order_multiple < max(
            s.order_up_to - p.position, Fraction(o.moq)
        )  # and no further
        terms = {"TEE": SupplierTerms("TEE", o.cost, "USD", o.moq, o.order_multiple, o.lead_time_days)}
        assert line_problems([("TEE", s.suggested_qty)], terms, "USD") == []  # a PO accepts it


@given(st.integers(-10, 10_000), st.integers(1, 100), st.integers(1, 50))
def test_order_qty_is_the_smallest_valid_quantity(need: int, moq: int, multiple: int) -> None:
    q = order_qty(need, moq, multiple)
    if need <= 0:
        assert q == 0
    else:
        assert q >= max(need, moq) and q % multiple == 0 and q - multiple < max(need, moq)


@given(st.lists(st.integers(0, 20), min_size=40, max_size=40), points, options, st.integers(1, 30))
def test_a_simulation_orders_only_on_terms_and_never_more_than_demand_short(
    history: list[int], p: StockPoint, o: SupplierOption, days: int
) -> None:
    out = simulate([SimItem(p, o, tuple(history))], days, Policy(demand_days=7, factors=Factors([])), TODAY)
    assert 0 <= out.units_short <= sum(history[-days:])
    assert out.stock_out_days <= days
    assert out.purchase_value % max(o.cost, 1) == 0 or o.cost == 0
    assert out.orders <= days


def test_simulated_days_are_dated_back_from_today() -> None:
    promo = Factor(TODAY - timedelta(days=3), TODAY - timedelta(days=1), Fraction(10), sku="TEE")
    item = SimItem(point(0), option(lead=1), tuple([1] * 20))
    plain = simulate([item], 5, Policy(demand_days=5, factors=Factors([])), TODAY)
    boosted = simulate([item], 5, Policy(demand_days=5, factors=Factors([promo])), TODAY)
    assert boosted.purchase_value > plain.purchase_value

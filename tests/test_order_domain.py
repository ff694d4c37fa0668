"""The order rules as the business states them (holds, status, line quantities, money), then
their properties for any input. Waves and packing: tests/test_warehouse_domain.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.holds import (
    HOLDS,
    Address,
    AddressProblem,
    FraudRules,
    FraudSignals,
    address_from,
    billing_differences,
    fraud_score,
    holds_for,
    payment_hold,
    validate_address,
)
from domain.orders import (
    STATUSES,
    LineChangeRefused,
    LineQty,
    PricedLine,
    allocate,
    cancel_refund_amounts,
    line_tax,
    order_status_from_lines,
    order_totals,
)


def addr(**kw: object) -> Address:
    base: dict[str, object] = {
        "name": "Ada Lovelace",
        "line1": "1 Main St",
        "city": "Springfield",
        "region": "IL",
        "postal_code": "62701",
        "country": "US",
    }
    base.update(kw)
    return Address(**base)  # type: ignore[arg-type]


def fields(problems: list[AddressProblem]) -> list[tuple[str, str]]:
    return [(p.field, p.problem) for p in problems]


# -- address ---------------------------------------------------------------------------


def test_a_complete_us_address_ships() -> None:
    assert validate_address(addr()) == []
    assert validate_address(addr(postal_code="62701-1234", region="il")) == []


def test_us_needs_a_zip_and_a_state() -> None:
    assert fields(validate_address(addr(postal_code="6270"))) == [("postal_code", "malformed")]
    assert fields(validate_address(addr(postal_code=""))) == [("postal_code", "missing")]
    assert fields(validate_address(addr(region=""))) == [("region", "missing")]
    assert fields(validate_address(addr(region="Illinois"))) == [("region", "malformed")]


def test_canada_postal_codes_and_provinces() -> None:
    ottawa = {"region": "ON", "country": "CA", "city": "Ottawa"}
    assert validate_address(addr(postal_code="K1A 0B1", **ottawa)) == []
    assert validate_address(addr(postal_code="k1a0b1", **ottawa)) == []
    assert fields(validate_address(addr(postal_code="D1A 0B1", **ottawa))) == [("postal_code", "malformed")]
    assert fields(validate_address(addr(postal_code="K1A 0B1", **{**ottawa, "region": "IL"}))) == [
        ("region", "malformed")
    ]


@pytest.mark.parametrize(
    "code", ["SW1A 1AA", "EC1A 1BB", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "W1A0AX", "GIR 0AA"]
)
def test_uk_postcodes_that_royal_mail_delivers(code: str) -> None:
    assert validate_address(addr(country="GB", region="", postal_code=code, city="London")) == []


@pytest.mark.parametrize("code", ["SW1A 1A", "Q1 1AA", "12345", "SW1A 1CA"])
def test_uk_postcodes_that_it_does_not(code: str) -> None:
    problems = validate_address(addr(country="GB", region="", postal_code=code, city="London"))
    assert fields(problems) == [("postal_code", "malformed")]
    assert "SW1A 1AA" in problems[0].message  # the message shows what a good one looks like


def test_germany_and_france_use_five_digits() -> None:
    assert validate_address(addr(country="DE", region="", postal_code="10115", city="Berlin")) == []
    assert validate_address(addr(country="FR", region="", postal_code="75001", city="Paris")) == []
    assert fields(validate_address(addr(country="DE", region="", postal_code="1011"))) == [
        ("postal_code", "malformed")
    ]


def test_elsewhere_a_postal_code_is_optional_but_the_basics_are_not() -> None:
    assert validate_address(Address(name="Mei", line1="1-1 Chiyoda", city="Tokyo", country="JP")) == []
    assert fields(validate_address(Address(country="JP"))) == [
        ("name", "missing"),
        ("line1", "missing"),
        ("city", "missing"),
    ]


def test_every_broken_field_is_named_at_once() -> None:
    problems = validate_address(Address(name=" ", line1="1 Main St", city="", country="UK"))
    assert fields(problems) == [("name", "missing"), ("city", "missing"), ("country", "malformed")]
    assert fields(validate_address(Address(name="A", line1="B", city="C"))) == [("country", "missing")]


def test_coordinates_come_in_pairs_and_on_the_globe() -> None:
    assert validate_address(addr(lat=39.8, lon=-89.6)) == []
    assert fields(validate_address(addr(lat=39.8))) == [("lon", "missing")]
    assert fields(validate_address(addr(lat=91.0, lon=-200.0))) == [
        ("lat", "malformed"),
        ("lon", "malformed"),
    ]


# -- fraud and payment -----------------------------------------------------------------


def test_an_ordinary_order_scores_nothing() -> None:
    assessment = fraud_score(FraudSignals(order_value=4_999))
    assert (assessment.score, assessment.reasons, assessment.hold) == (0, [], False)


def test_points_add_up_with_a_reason_each_and_hold_at_fifty() -> None:
    first_express = FraudSignals(order_value=60_000, first_time_customer=True, express=True)
    assessment = fraud_score(first_express)
    assert assessment.score == 45 and not assessment.hold
    assert [r.split(" ")[0] for r in assessment.reasons] == ["high_value", "new_customer_express"]
    assert "order value 60000 over 50000" in assessment.reasons[0]

    other_zip = FraudSignals(
        order_value=60_000, first_time_customer=True, express=True, billing_postal_differs=True
    )
    assert fraud_score(other_zip).score == 55 and fraud_score(other_zip).hold


def test_value_rules_stack() -> None:
    assert fraud_score(FraudSignals(order_value=50_000)).score == 0  # "over" means over
    assert fraud_score(FraudSignals(order_value=200_001)).score == 60


def test_another_country_scores_once_not_with_the_postal_code_too() -> None:
    abroad = FraudSignals(order_value=1_000, billing_country_differs=True, billing_postal_differs=True)
    assert fraud_score(abroad).score == 25


def test_busy_customers() -> None:
    assert fraud_score(FraudSignals(order_value=1_000, orders_last_24h=2)).score == 0
    assert fraud_score(FraudSignals(order_value=1_000, orders_last_24h=3)).score == 20
    assert fraud_score(FraudSignals(order_value=1_000, orders_last_24h=6)).score == 40


def test_a_merchant_tunes_thresholds() -> None:
    strict = FraudRules(high_value=10_000, hold_at=30)
    assessment = fraud_score(FraudSignals(order_value=20_000), strict)
    assert assessment.hold and "over 10000" in assessment.reasons[0]


def test_billing_differences() -> None:
    home = addr()
    assert billing_differences(home, None) == (False, False)
    assert billing_differences(home, addr(postal_code=" 62701 ")) == (False, False)
    assert billing_differences(home, addr(postal_code="62702")) == (False, True)
    assert billing_differences(home, addr(country="CA", postal_code="K1A 0B1")) == (True, True)


def test_unauthorized_money_holds_the_order() -> None:
    assert payment_hold("pending")
    assert not payment_hold("authorized")
    assert not payment_hold("captured")
    assert payment_hold("declined")  # not known to be money: a person looks


def test_holds_come_in_a_fixed_order_with_their_actions() -> None:
    risky = fraud_score(FraudSignals(order_value=250_000))
    clean = fraud_score(FraudSignals(order_value=100))
    bad_address = validate_address(addr(postal_code="x"))
    assert holds_for(bad_address, "pending", risky) == ["address_invalid", "payment_pending", "fraud_review"]
    assert holds_for([], "pending", risky) == ["payment_pending", "fraud_review"]
    assert holds_for([], "captured", clean) == []
    assert HOLDS["address_invalid"].actions == ("fix_address", "cancel")
    assert HOLDS["payment_pending"].actions == ("confirm_payment", "cancel")
    assert HOLDS["fraud_review"].actions == ("approve", "cancel")
    assert {h.default_action for h in HOLDS.values()} == {"cancel"}
    assert all(h.default_action in h.actions for h in HOLDS.values())


# -- line quantities -------------------------------------------------------------------


def test_a_line_from_order_to_return() -> None:
    line = LineQty(ordered=5).reserve(3).backorder(2)
    assert (line.reserved, line.backordered, line.unassigned) == (3, 2, 0)
    line = line.reserve(2)  # the backorder's stock arrived
    assert (line.reserved, line.backordered) == (5, 0)
    line = line.ship(4).cancel(1)
    assert (line.shipped, line.reserved, line.cancelled, line.open) == (4, 0, 1, 0)
    line = line.return_(2)
    assert line == LineQty(ordered=5, shipped=4, cancelled=1, returned=2)
    assert line.check()


def test_cancel_takes_what_holds_nothing_first_and_reservations_last() -> None:
    line = LineQty(ordered=6, reserved=2, backordered=2)  # 2 not yet sourced
    assert line.cancel(3) == LineQty(ordered=6, reserved=2, backordered=1, cancelled=3)
    assert line.cancel(5) == LineQty(ordered=6, reserved=1, backordered=0, cancelled=5)


def test_shipped_units_cannot_be_cancelled() -> None:
    line = LineQty(ordered=3, reserved=1, shipped=2)
    with pytest.raises(LineChangeRefused) as caught:
        line.cancel(2)
    assert caught.value.details() == {"op": "cancel", "requested": 2, "allowed": 1}
    assert isinstance(caught.value, DomainError)


def test_only_reserved_units_ship_and_only_shipped_units_return() -> None:
    with pytest.raises(LineChangeRefused):
        LineQty(ordered=3, reserved=1).ship(2)
    with pytest.raises(LineChangeRefused):
        LineQty(ordered=3, reserved=1, shipped=2, returned=1).return_(2)
    with pytest.raises(LineChangeRefused):
        LineQty(ordered=3, reserved=1).backorder(3)
    with pytest.raises(LineChangeRefused):
        LineQty(ordered=3).reserve(-1)


def test_a_short_pick_releases_units_to_be_sourced_again() -> None:
    line = LineQty(ordered=4, reserved=4).release(1)
    assert (line.reserved, line.unassigned) == (3, 1)
    assert line.backorder(1).backordered == 1


def test_check_names_every_broken_invariant() -> None:
    assert LineQty(ordered=2).check()
    bad = LineQty(ordered=2, reserved=1, shipped=1, cancelled=1, returned=2)
    assert not bad.check()
    assert bad.problems() == [
        "reserved + backordered + shipped + cancelled exceeds ordered",
        "returned exceeds shipped",
    ]
    assert "reserved is negative" in LineQty(ordered=1, reserved=-1).problems()


@pytest.mark.parametrize(
    ("lines", "holds_open", "flags", "status"),
    [
        ([LineQty(2, cancelled=2), LineQty(1, cancelled=1)], False, {}, "cancelled"),
        ([LineQty(2, cancelled=2)], True, {}, "cancelled"),
        ([LineQty(2)], True, {}, "on_hold"),
        ([LineQty(2, shipped=2, returned=2), LineQty(1, cancelled=1)], False, {}, "returned"),
        ([LineQty(2, shipped=2, returned=1)], False, {"settled": True}, "partially_returned"),
        ([LineQty(2, shipped=1, cancelled=1)], False, {"settled": True}, "completed"),
        ([LineQty(2, shipped=1, cancelled=1)], False, {}, "shipped"),
        ([LineQty(2, shipped=1, returned=1, reserved=1)], False, {}, "partially_shipped"),
        ([LineQty(2, reserved=1, backordered=1)], False, {"picking": True}, "in_fulfillment"),
        ([LineQty(2, reserved=1), LineQty(1, backordered=1)], False, {}, "allocated"),
        ([LineQty(2, backordered=2), LineQty(1, cancelled=1)], False, {}, "awaiting_stock"),
        ([LineQty(2)], False, {}, "received"),
    ],
)
def test_the_summary_status_from_the_lines(
    lines: list[LineQty], holds_open: bool, flags: dict[str, bool], status: str
) -> None:
    assert order_status_from_lines(lines, holds_open, **flags) == status


# -- money -----------------------------------------------------------------------------

TEE = PricedLine("1", qty=2, unit_price=1_000)
MUG = PricedLine("2", qty=1, unit_price=500)


def test_order_totals() -> None:
    totals = order_totals([TEE, MUG], shipping_amount=500, tax_amount=250)
    assert (totals.merchandise, totals.shipping, totals.tax, totals.total) == (2_500, 500, 250, 3_250)


def test_a_partial_cancel_refunds_its_share_of_tax_but_no_shipping() -> None:
    refund = cancel_refund_amounts([TEE, MUG], {"1": 1}, shipping_amount=500, tax_amount=250)
    assert (refund.merchandise, refund.tax, refund.shipping, refund.total) == (1_000, 100, 0, 1_100)
    assert not refund.whole_order


def test_cancelling_the_rest_refunds_shipping_and_all_remaining_tax() -> None:
    first = cancel_refund_amounts([TEE, MUG], {"1": 1}, 500, 250)
    rest = cancel_refund_amounts([TEE, MUG], {"1": 1, "2": 1}, 500, 250, already_cancelled={"1": 1})
    assert rest.whole_order and rest.shipping == 500
    assert first.total + rest.total == order_totals([TEE, MUG], 500, 250).total
    again = cancel_refund_amounts([TEE, MUG], {}, 500, 250, already_cancelled={"1": 2, "2": 1})
    assert again.total == 0  # shipping is refunded once, by the cancel that takes the last unit


def test_pennies_do_not_drift_over_many_small_cancels() -> None:
    lines = [PricedLine(str(i), qty=3, unit_price=333) for i in range(3)]
    assert line_tax(lines, 10) == {"0": 4, "1": 3, "2": 3}  # largest remainder, ties to the first
    refunded, done = 0, {ln.line: 0 for ln in lines}
    for _ in range(3):
        for ln in lines:
            refunded += cancel_refund_amounts(lines, {ln.line: 1}, 0, 10, already_cancelled=done).tax
            done[ln.line] += 1
    assert refunded == 10


def test_cancelling_more_than_ordered_is_refused() -> None:
    with pytest.raises(LineChangeRefused):
        cancel_refund_amounts([TEE], {"1": 2}, 0, 0, already_cancelled={"1": 1})
    with pytest.raises(ValueError, match="unknown"):
        cancel_refund_amounts([TEE], {"9": 1}, 0, 0)


def test_allocate_by_largest_remainder() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(5, [0, 0]) == [3, 2]
    assert allocate(7, [2, 0, 5]) == [2, 0, 5]


# -- properties ------------------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "release", "backorder", "ship", "cancel", "return_"]), st.integers(-1, 6)
    ),
    max_size=30,
)


@given(ordered=st.integers(0, 12), steps=ops)
def test_accepted_operations_keep_the_line_invariants(ordered: int, steps: list[tuple[str, int]]) -> None:
    line = LineQty(ordered)
    for op, n in steps:
        before = line
        try:
            line = getattr(line, op)(n)
        except LineChangeRefused:
            assert line == before
            continue
        assert line.check(), (op, n, line.problems())
        assert line.ordered == before.ordered
        assert line.shipped >= before.shipped and line.cancelled >= before.cancelled  # facts stay facts
        assert order_status_from_lines([line], holds_open=False) in STATUSES


@st.composite
def orders_and_cancels(draw: st.DrawFn) -> tuple[list[PricedLine], int, int, list[dict[str, int]]]:
    lines = [
        PricedLine(str(i), draw(st.integers(1, 7)), draw(st.integers(0, 100_000)))
        for i in range(draw(st.integers(1, 5)))
    ]
    left = {ln.line: ln.qty for ln in lines}
    cancels = []
    for _ in range(draw(st.integers(1, 8))):
        cancel = {line: draw(st.integers(0, q)) for line, q in left.items() if q}
        cancels.append(cancel)
        for line, q in cancel.items():
            left[line] -= q
    if draw(st.booleans()):  # and sometimes cancel everything that is left
        cancels.append({line: q for line, q in left.items() if q})
    return lines, draw(st.integers(0, 5_000)), draw(st.integers(0, 50_000)), cancels


@given(orders_and_cancels())
def test_cancel_refunds_never_exceed_the_charge_and_sum_exactly(
    case: tuple[list[PricedLine], int, int, list[dict[str, int]]],
) -> None:
    lines, shipping, tax, cancels = case
    charged = order_totals(lines, shipping, tax)
    done: dict[str, int] = {}
    refunded_total = refunded_tax = 0
    for cancel in cancels:
        refund = cancel_refund_amounts(lines, cancel, shipping, tax, already_cancelled=done)
        assert refund.total == sum(r.merchandise + r.tax for r in refund.lines) + refund.shipping
        assert all(r.tax >= 0 and r.merchandise >= 0 for r in refund.lines)
        refunded_total += refund.total
        refunded_tax += refund.tax
        for line, q in cancel.items():
            done[line] = done.get(line, 0) + q
        assert refunded_total <= charged.total and refunded_tax <= tax
    if all(done.get(ln.line, 0) == ln.qty for ln in lines):
        assert refunded_total == charged.total and refunded_tax == tax


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_allocate_pieces_sum_exactly_and_stay_within_a_unit_of_their_share(
    total: int, weights: list[int]
) -> None:
    pieces = allocate(total, weights)
    assert sum(pieces) == total
    whole = sum(weights) or len(weights)
    for piece, w in zip(pieces, weights if sum(weights) else [1] * len(weights), strict=True):
        assert total * w // whole <= piece <= -(-total * w // whole)


signals = st.builds(
    FraudSignals,
    order_value=st.integers(0, 500_000),
    billing_country_differs=st.booleans(),
    billing_postal_differs=st.booleans(),
    orders_last_24h=st.integers(0, 10),
    first_time_customer=st.booleans(),
    express=st.booleans(),
)


@given(signals, st.integers(0, 500_000))
def test_more_money_never_lowers_the_fraud_score(s: FraudSignals, more: int) -> None:
    richer = FraudSignals(**{**s.__dict__, "order_value": s.order_value + more})
    assert fraud_score(richer).score >= fraud_score(s).score
    assert fraud_score(richer).hold >= fraud_score(s).hold


def test_an_address_is_read_from_json_with_missing_text_empty_and_numeric_coordinates() -> None:
    assert address_from(
        {"name": "Ada", "city": None, "postal_code": 10001, "lat": "40.5", "lon": 2}
    ) == Address(name="Ada", postal_code="10001", lat=40.5, lon=2.0)
    assert address_from(None) == Address()
    with pytest.raises(ValueError, match="north"):
        address_from({"lat": "north", "lon": 1})

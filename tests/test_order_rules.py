"""The rules the order workflow's validators and its activities both ask (domain.fulfilment,
domain.orders.units_to_cancel, domain.hold_decisions) and the one refusal vocabulary that
carries their answers to the API (domain.errors)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from api.domain_errors import STATUS_OF, as_problem
from domain import fulfilment
from domain.errors import (
    DomainError,
    InsufficientStock,
    InvalidRequest,
    NotFound,
    Refusal,
    UnknownReference,
    WrongState,
)
from domain.hold_decisions import check_address_fix, check_payment_confirmation
from domain.orders import DONE, STATUSES, LineChangeRefused, LineQty, units_to_cancel
from domain.waves import Package
from models.orders import ORDER_STATUSES
from workflows.contracts import ShipmentLineSnap, ShipmentSnap
from workflows.contracts.refusals import application_error


def shipment(status: str = "allocated", kind: str = "stock", picked: int = 0) -> ShipmentSnap:
    lines = [ShipmentLineSnap("1", "TEE", 2, picked), ShipmentLineSnap("2", "MUG", 1, min(picked, 1))]
    return ShipmentSnap("order-web-1-S1", "DC-EAST", kind, status, lines)


def test_a_pick_reports_every_sku_of_an_allocated_stock_shipment() -> None:
    assert fulfilment.check_pick(shipment(), [("TEE", 1), ("MUG", 1)], "missing") == {"TEE": 1, "MUG": 1}
    assert fulfilment.short_lines(shipment(), {"TEE": 1, "MUG": 1}) == {"1": 1}
    with pytest.raises(WrongState, match="is picked, not allocated") as wrong:
        fulfilment.check_pick(shipment("picked"), [("TEE", 2), ("MUG", 1)], "missing")
    assert wrong.value.details() == {"shipment_status": "picked"}
    with pytest.raises(WrongState, match="drop-shipped"):
        fulfilment.check_pick(shipment(kind="dropship"), [], "missing")
    for lines, reason, why in [
        ([("TEE", 2)], "missing", "MUG is missing"),
        ([("TEE", 3), ("MUG", 1)], "missing", "picked 3, the shipment holds 2"),
        ([("TEE", 2), ("MUG", 1), ("HAT", 1)], "missing", "HAT is not on shipment"),
        ([("TEE", -1), ("MUG", 1)], "missing", "not negative"),
        ([("TEE", 2), ("MUG", 1)], "lost", "short_reason"),
    ]:
        with pytest.raises(InvalidRequest, match=why):
            fulfilment.check_pick(shipment(), lines, reason)


def test_a_pack_holds_exactly_what_was_picked_within_the_service_limits() -> None:
    picked = shipment("picked", picked=2)
    box = Package(1000, 300, 200, 100, {"TEE": 2, "MUG": 1})
    fulfilment.check_pack(picked, "ground", [box])
    with pytest.raises(InvalidRequest, match="unknown service"):
        fulfilment.check_pack(picked, "rocket", [box])
    with pytest.raises(InvalidRequest, match="the packages do not match") as mismatch:
        fulfilment.check_pack(picked, "ground", [Package(1000, 300, 200, 100, {"TEE": 1})])
    assert mismatch.value.details()["problems"]
    with pytest.raises(WrongState):
        fulfilment.check_pack(shipment("allocated"), "ground", [box])


def test_stock_ships_packed_and_drop_ship_ships_requested() -> None:
    fulfilment.check_ship(shipment("packed"), "UPS")
    fulfilment.check_ship(shipment("requested", kind="dropship"), "ACME trucks")
    with pytest.raises(WrongState, match="not packed"):
        fulfilment.check_ship(shipment("picked"), "UPS")
    with pytest.raises(InvalidRequest, match="carrier"):
        fulfilment.check_ship(shipment("packed"), "  ")
    with pytest.raises(NotFound):
        fulfilment.find([shipment()], "order-web-1-S9")


@pytest.mark.parametrize(
    ("kind", "status", "step", "before"),
    [
        ("stock", "allocated", "pack", ()),  # nothing recorded: a pack before the pick stays refused
        ("stock", "picked", "pack", ("pick",)),
        ("stock", "picked", "ship", ("pick",)),
        ("stock", "packed", "ship", ("pick", "pack")),
        ("stock", "shipped", "ship", ("pick", "pack")),  # never the step itself
        ("stock", "shipped", "pick", ()),
        ("stock", "cancelled", "pack", ()),  # a pick that found nothing: there is no next step
        ("dropship", "shipped", "ship", ()),  # a drop-ship shipment has no step before it ships
    ],
)
def test_the_steps_a_shipment_went_through_before_a_step(
    kind: str, status: str, step: str, before: tuple[str, ...]
) -> None:
    """What a refused step sends the workflow again from the shipment's record (api.shipment_steps)."""
    assert fulfilment.steps_before(kind, status, step) == before


def test_a_cancel_takes_open_units_only() -> None:
    lines = {"1": LineQty(3, reserved=1, shipped=1), "2": LineQty(2, cancelled=2)}
    assert units_to_cancel("o", "partially_shipped", lines, None) == {"1": 2}
    assert units_to_cancel("o", "partially_shipped", lines, {"1": 1}) == {"1": 1}
    with pytest.raises(WrongState, match="line 1 has 2 units left") as too_many:
        units_to_cancel("o", "partially_shipped", lines, {"1": 3})
    assert too_many.value.details() == {"line": "1", "open": 2}
    with pytest.raises(InvalidRequest, match="no line 9"):
        units_to_cancel("o", "partially_shipped", lines, {"9": 1})
    with pytest.raises(InvalidRequest, match="positive"):
        units_to_cancel("o", "partially_shipped", lines, {"1": 0})
    done = {"1": LineQty(1, shipped=1)}
    with pytest.raises(WrongState, match="order o is completed: nothing left to cancel"):
        units_to_cancel("o", "completed", done, None)


@dataclass(frozen=True)
class Decision:
    action: str
    data: dict[str, object] | None


def test_a_hold_decision_must_carry_what_clears_the_hold() -> None:
    good = {
        "name": "Ada",
        "line1": "1 Main St",
        "city": "Springfield",
        "region": "IL",
        "postal_code": "62701",
        "country": "US",
    }
    check_address_fix(Decision("fix_address", {"ship_to": good}))
    check_address_fix(Decision("cancel", None))  # not a fix: nothing to check
    with pytest.raises(InvalidRequest, match=r"needs data\.ship_to"):
        check_address_fix(Decision("fix_address", {}))
    with pytest.raises(InvalidRequest, match="still has problems") as bad:
        check_address_fix(Decision("fix_address", {"ship_to": {**good, "postal_code": ""}}))
    assert bad.value.details()["problems"]
    check_payment_confirmation(Decision("confirm_payment", {"status": "captured", "amount": 100}))
    with pytest.raises(InvalidRequest, match="status"):
        check_payment_confirmation(Decision("confirm_payment", {"status": "maybe", "amount": 100}))
    with pytest.raises(InvalidRequest, match="amount"):
        check_payment_confirmation(Decision("confirm_payment", {"status": "authorized", "amount": 0}))


def test_one_vocabulary_from_the_rule_to_the_problem() -> None:
    """A refusal's code crosses Temporal as the ApplicationError type and names its class
    again on the API side: no table of names anywhere in between."""
    for exc, status, slug in [
        (WrongState("x"), 409, "refused"),
        (InvalidRequest("x"), 422, "validation-error"),
        (NotFound("x"), 404, "not-found"),
        (InsufficientStock("TEE", "DC", "sellable", "", 3, 1, 1), 409, "insufficient-stock"),
        (UnknownReference("SKU", "X"), 422, "validation-error"),
        (LineChangeRefused("ship", 3, 1), 409, "refused"),
    ]:
        err = application_error(exc)
        assert err.non_retryable and err.type == exc.code
        kind = DomainError.kind_of(err.type)
        assert kind is type(exc)
        assert STATUS_OF[kind.refusal] == status and kind.problem_slug() == slug
        problem = as_problem(exc)
        assert (problem.status_code, problem.slug) == (status, slug)
    assert DomainError.kind_of("no-such-code") is None
    assert set(STATUS_OF) == set(Refusal)
    codes = [cls.code for cls in DomainError._by_code.values()]
    assert len(codes) == len(set(codes)), "every refusal has a code of its own"


def test_the_statuses_are_said_once() -> None:
    assert ORDER_STATUSES is STATUSES  # the table's CHECK constraint and the API's filter read these
    assert set(DONE) <= set(STATUSES)

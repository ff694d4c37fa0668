"""What a person's decision on a hold must carry before the order workflow takes it: a fixed
address that passes validation, a payment confirmation with a status and an amount. The
workflow asks these in the update validator, so a decision that cannot clear the hold is
refused (422) while the hold keeps waiting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from domain import holds
from domain.errors import InvalidRequest


class Decision(Protocol):
    @property
    def action(self) -> str: ...
    @property
    def data(self) -> Mapping[str, Any] | None: ...


def check_address_fix(decision: Decision) -> None:
    if decision.action != "fix_address":
        return
    ship_to = (decision.data or {}).get("ship_to")
    if not isinstance(ship_to, dict):
        raise InvalidRequest("fix_address needs data.ship_to (or use PATCH /v1/orders/{id}/ship-to)")
    try:
        address = holds.address_from(ship_to)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"ship_to is not an address: {exc}") from exc
    problems = holds.validate_address(address)
    if problems:
        raise InvalidRequest(
            "the address still has problems: " + "; ".join(p.message for p in problems),
            problems=[{"field": p.field, "problem": p.problem, "message": p.message} for p in problems],
        )


def check_payment_confirmation(decision: Decision) -> None:
    if decision.action != "confirm_payment":
        return
    data = decision.data or {}
    if data.get("status") not in ("authorized", "captured"):
        raise InvalidRequest("confirm_payment needs data.status authorized or captured")
    amount = data.get("amount")
    if not isinstance(amount, int) or amount <= 0:
        raise InvalidRequest("confirm_payment needs a positive integer data.amount")


HOLD_CHECKS = {"address_invalid": check_address_fix, "payment_pending": check_payment_confirmation}

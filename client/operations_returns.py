"""The returns operations of the API: the managed list of return reasons, returns (RMAs)
and each step of one (receive, inspect, cancel), and a customer's store credit. They are
built and sent like those of client.operations (`api.send(rma.create_return(...))` or
`api.create_return(...)`).

Every step answers the return as it stands after the step. A step the return is not in
the state for is a 409; one that names units the return does not expect a 422."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from client.models import Page
from client.models_returns import InspectedLine, NewReturn, Return, ReturnedLine, ReturnReason, StoreCredit
from client.reads import get
from client.request import Request, path, write

_REASONS = "/v1/return-reasons"
_RETURNS = "/v1/returns"

# -- reasons ---------------------------------------------------------------------------


def list_return_reasons() -> Request[list[ReturnReason]]:
    """The managed list, by code, with the fees."""
    return get(_REASONS, lambda body: [ReturnReason.model_validate(r) for r in body])


def put_return_reason(reason: ReturnReason, *, idempotency_key: str | None = None) -> Request[ReturnReason]:
    """An admin adds a reason (201) or changes one (200): sending it again does nothing new."""
    body = reason.to_json()
    parse = ReturnReason.model_validate
    return write(
        "POST", _REASONS, _REASONS, parse, body, key=idempotency_key, policy="optional", idempotent=True
    )


# -- returns ---------------------------------------------------------------------------


def create_return(new: NewReturn, *, idempotency_key: str | None = None) -> Request[Return]:
    """Ask for a return of shipped units (202, then 200 for the same number and body). The
    Idempotency-Key is required: one is generated when not given and kept across retries."""
    body = new.to_json()
    return write(
        "POST", _RETURNS, _RETURNS, Return.model_validate, body, key=idempotency_key, policy="required"
    )


def get_return(number: str) -> Request[Return]:
    """The return with its lines, amounts, refunds, open holds and timeline."""
    return get("/v1/returns/{number}", Return.model_validate, number=number)


def list_returns(
    *,
    status: str | None = None,
    order: str | None = None,
    outcome: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Request[Page[Return]]:
    """By number (a channel key: its own channel's; 422 for an unknown status or outcome)."""
    params = {"status": status, "order": order, "outcome": outcome, "limit": limit, "cursor": cursor}
    return get(_RETURNS, Page[Return].model_validate, params)


def _step(step: str, number: str, body: dict[str, Any], key: str | None) -> Request[Return]:
    route = f"/v1/returns/{{number}}/{step}"
    the_path = path(route, number=number)
    return write("POST", route, the_path, Return.model_validate, body, key=key, policy="optional")


def receive_return(
    number: str, location: str, lines: Sequence[ReturnedLine], *, idempotency_key: str | None = None
) -> Request[Return]:
    """The warehouse receives what arrived of the parcel (a parcel may arrive in parts)."""
    body = {"location": location, "lines": [ln.to_json() for ln in lines]}
    return _step("receive", number, body, idempotency_key)


def inspect_return(
    number: str, lines: Sequence[InspectedLine], *, idempotency_key: str | None = None
) -> Request[Return]:
    """The condition and disposition of received units."""
    return _step("inspect", number, {"lines": [ln.to_json() for ln in lines]}, idempotency_key)


def cancel_return(number: str, reason: str, *, idempotency_key: str | None = None) -> Request[Return]:
    """Cancel a return before its parcel arrives."""
    return _step("cancel", number, {"reason": reason}, idempotency_key)


# -- store credit ----------------------------------------------------------------------


def get_store_credit(customer_id: str) -> Request[StoreCredit]:
    """A customer's store credit: the balance and its entries, newest first."""
    return get(
        "/v1/customers/{customer_id}/store-credit", StoreCredit.model_validate, customer_id=customer_id
    )

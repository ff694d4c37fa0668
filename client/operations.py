"""Every operation of the API, declared once: a function that returns the `Request` to send.
`OmniflowClient` and `AsyncOmniflowClient` expose each of them as a method of the same name
(and the list operations also as `iter_…`, every item of every page).

Writes under routes that take an Idempotency-Key get one generated when the request is
built (pass `idempotency_key=` to choose it: a key derived from your own record, say the
order number, survives a restart of your process too)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from client.models import (
    Address,
    CancelLine,
    ExceptionItem,
    NewOrder,
    Order,
    Package,
    Page,
    PickLine,
    Shipment,
    Wave,
)
from client.models_inventory import ApiKey, ApiKeyInfo, Readiness
from client.operations_inventory import (
    Stock,
    adjust_stock,
    availability_changes,
    create_channel,
    create_location,
    create_sku,
    create_transfer,
    get_availability,
    get_sku,
    get_stock,
    get_transfer,
    list_movements,
    list_skus,
    list_transfers,
    move_stock,
    receive_transfer,
    set_policy,
    ship_transfer,
)
from client.reads import get
from client.request import Request, path, write

# The catalog, inventory, availability and transfer operations are declared in
# client/operations_inventory.py; every operation is one of this module all the same.
__all__ = [
    "Stock",
    "adjust_stock",
    "availability_changes",
    "cancel_order",
    "confirm_payment",
    "create_api_key",
    "create_channel",
    "create_location",
    "create_order",
    "create_sku",
    "create_transfer",
    "fix_ship_to",
    "get_availability",
    "get_exception",
    "get_order",
    "get_shipment",
    "get_sku",
    "get_stock",
    "get_transfer",
    "health",
    "list_api_keys",
    "list_exceptions",
    "list_movements",
    "list_orders",
    "list_skus",
    "list_transfers",
    "move_stock",
    "pack_shipment",
    "pick_shipment",
    "pick_tasks",
    "ready",
    "receive_transfer",
    "resolve_exception",
    "revoke_api_key",
    "set_policy",
    "ship_shipment",
    "ship_transfer",
]

# -- operations ----------------------------------------------------------------------------


def health() -> Request[dict[str, Any]]:
    """`GET /healthz`: the API process is alive."""
    return get("/healthz", lambda b: dict(b))


def ready() -> Request[Readiness]:
    """`GET /readyz`: Postgres and the workflow engine answer (a 503 here is an answer, not
    an error: `Readiness.ready` is False and `checks` says which is down)."""
    return Request("GET", "/readyz", "/readyz", Readiness.model_validate, ok_statuses=(503,))


def create_api_key(role: str, *, channel: str | None = None, name: str = "") -> Request[ApiKey]:
    """An admin creates a key for a role (a channel key names its channel)."""
    body = {"role": role, "name": name, **({"channel": channel} if channel else {})}
    return write("POST", "/v1/api-keys", "/v1/api-keys", ApiKey.model_validate, body, key=None, policy=None)


def list_api_keys(*, limit: int | None = None, cursor: str | None = None) -> Request[Page[ApiKeyInfo]]:
    """Every key, revoked ones too (`revoked_at`), by id; an admin's read."""
    return get("/v1/api-keys", Page[ApiKeyInfo].model_validate, {"limit": limit, "cursor": cursor})


def revoke_api_key(key_id: str) -> Request[None]:
    """Revoke a key (204; 404 if it is unknown or revoked already)."""
    route = "/v1/api-keys/{key_id}"
    return write("DELETE", route, path(route, key_id=key_id), lambda _: None, None, key=None, policy=None)


# -- orders --------------------------------------------------------------------------------


def create_order(order: NewOrder, *, idempotency_key: str | None = None) -> Request[Order]:
    """Take an order (202, status `received`); the same channel + external id again is the
    existing order (200), or 409 `conflict` if its data differs."""
    return write(
        "POST",
        "/v1/orders",
        "/v1/orders",
        Order.model_validate,
        order.to_json(),
        key=idempotency_key,
        policy="required",
    )


def get_order(order_id: str) -> Request[Order]:
    return get("/v1/orders/{order_id}", Order.model_validate, order_id=order_id)


def list_orders(
    *,
    status: str | None = None,
    channel: str | None = None,
    customer_id: str | None = None,
    created_from: datetime | str | None = None,
    created_to: datetime | str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Request[Page[Order]]:
    """Oldest first (a channel key sees its own channel's orders only)."""
    params = {
        "status": status,
        "channel": channel,
        "customer_id": customer_id,
        "created_from": created_from,
        "created_to": created_to,
        "limit": limit,
        "cursor": cursor,
    }
    return get("/v1/orders", Page[Order].model_validate, params)


def cancel_order(
    order_id: str,
    reason: str,
    *,
    lines: Sequence[CancelLine] | None = None,
    idempotency_key: str | None = None,
) -> Request[Order]:
    """Cancel the order, or these units of these SKUs (409 for what has shipped)."""
    route = "/v1/orders/{order_id}/cancel"
    body: dict[str, Any] = {"reason": reason}
    if lines is not None:
        body["lines"] = [ln.to_json() for ln in lines]
    return write(
        "POST",
        route,
        path(route, order_id=order_id),
        Order.model_validate,
        body,
        key=idempotency_key,
        policy="optional",
    )


def fix_ship_to(order_id: str, address: Address) -> Request[Order]:
    """Correct the ship-to address (clears an `address_invalid` hold once it is good)."""
    route = "/v1/orders/{order_id}/ship-to"
    return write(
        "PATCH",
        route,
        path(route, order_id=order_id),
        Order.model_validate,
        address.to_json(),
        key=None,
        policy=None,
        idempotent=True,
    )


def confirm_payment(
    order_id: str,
    *,
    status: Literal["authorized", "captured"],
    amount: int,
    reference: str,
    method: str = "",
    idempotency_key: str | None = None,
) -> Request[Order]:
    """Report the payment of an order taken with payment `pending`."""
    route = "/v1/orders/{order_id}/payment"
    body = {"status": status, "amount": amount, "reference": reference, "method": method}
    return write(
        "POST",
        route,
        path(route, order_id=order_id),
        Order.model_validate,
        body,
        key=idempotency_key,
        policy="optional",
    )


# -- the warehouse -------------------------------------------------------------------------


def get_shipment(shipment_id: str) -> Request[Shipment]:
    return get("/v1/shipments/{shipment_id}", Shipment.model_validate, shipment_id=shipment_id)


def pick_tasks(*, location: str | None = None, max_lines: int | None = None) -> Request[Page[Wave]]:
    """Open pick work in waves (express first, then oldest); all waves on one page."""
    return get("/v1/pick-tasks", Page[Wave].model_validate, {"location": location, "max_lines": max_lines})


def _shipment_action(step: str, shipment_id: str, body: dict[str, Any], key: str | None) -> Request[Shipment]:
    route = f"/v1/shipments/{{shipment_id}}/{step}"
    return write(
        "POST",
        route,
        path(route, shipment_id=shipment_id),
        Shipment.model_validate,
        body,
        key=key,
        policy="optional",
    )


def pick_shipment(
    shipment_id: str,
    lines: Sequence[PickLine],
    *,
    short_reason: Literal["missing", "damaged"] = "missing",
    idempotency_key: str | None = None,
) -> Request[Shipment]:
    """What was picked; less than asked is a short pick (the rest is sourced again)."""
    body = {"lines": [ln.to_json() for ln in lines], "short_reason": short_reason}
    return _shipment_action("pick", shipment_id, body, idempotency_key)


def pack_shipment(
    shipment_id: str,
    packages: Sequence[Package],
    *,
    service: str = "ground",
    idempotency_key: str | None = None,
) -> Request[Shipment]:
    """Packages and their contents: exactly what was picked, each fitting the service."""
    body = {"packages": [p.to_json() for p in packages], "service": service}
    return _shipment_action("pack", shipment_id, body, idempotency_key)


def ship_shipment(
    shipment_id: str,
    *,
    carrier: str,
    service: str = "ground",
    tracking: str = "",
    idempotency_key: str | None = None,
) -> Request[Shipment]:
    """Hand a packed shipment to the carrier (409 unless it is packed)."""
    body = {"carrier": carrier, "service": service, "tracking": tracking}
    return _shipment_action("ship", shipment_id, body, idempotency_key)


# -- exceptions ----------------------------------------------------------------------------


def list_exceptions(
    *,
    kind: str | None = None,
    status: Literal["open", "resolved", "cancelled"] | None = "open",
    subject_type: str | None = None,
    subject_id: str | None = None,
    sort: Literal["priority", "due_at", "opened_at"] | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Request[Page[ExceptionItem]]:
    params = {
        "kind": kind,
        "status": status,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "sort": sort,
        "limit": limit,
        "cursor": cursor,
    }
    return get("/v1/exceptions", Page[ExceptionItem].model_validate, params)


def get_exception(exception_id: str) -> Request[ExceptionItem]:
    return get("/v1/exceptions/{exception_id}", ExceptionItem.model_validate, exception_id=exception_id)


def resolve_exception(
    exception_id: str,
    action: str,
    *,
    note: str = "",
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Request[ExceptionItem]:
    """Decide an exception with one of its `actions` (422 if not one, 409 if decided)."""
    route = "/v1/exceptions/{exception_id}/resolve"
    body = {"action": action, "note": note, "data": dict(data or {})}
    return write(
        "POST",
        route,
        path(route, exception_id=exception_id),
        lambda b: ExceptionItem.model_validate(b["exception"]),
        body,
        key=idempotency_key,
        policy="optional",
    )

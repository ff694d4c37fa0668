"""Every operation of the API, declared once: a function that returns the `Request` to send.
`OmniflowClient` and `AsyncOmniflowClient` expose each of them as a method of the same name
(and the list operations also as `iter_…`, every item of every page).

Writes under routes that take an Idempotency-Key get one generated when the request is
built (pass `idempotency_key=` to choose it: a key derived from your own record, say the
order number, survives a restart of your process too)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from client.models import (
    Address,
    ApiKey,
    Availability,
    AvailabilityChanges,
    CancelLine,
    Channel,
    ExceptionItem,
    Location,
    Movement,
    NewChannel,
    NewLocation,
    NewOrder,
    NewSku,
    NewTransferLine,
    Order,
    Package,
    Page,
    PickLine,
    Policy,
    Readiness,
    ReceivedLine,
    Ringfence,
    Shipment,
    Sku,
    SkuStock,
    StockAdjustment,
    StockChange,
    Transfer,
    Wave,
)
from client.request import Request, path, write

T = TypeVar("T")

Stock = Literal["sellable", "in_transit", "inbound", "returns", "quarantine", "damaged"]


def _get(
    route: str, parse: Callable[[Any], T], params: Mapping[str, Any] | None = None, **values: str
) -> Request[T]:
    return Request("GET", route, path(route, **values), parse, params=dict(params or {}))


# -- operations ----------------------------------------------------------------------------


def health() -> Request[dict[str, Any]]:
    """`GET /healthz`: the API process is alive."""
    return _get("/healthz", lambda b: dict(b))


def ready() -> Request[Readiness]:
    """`GET /readyz`: Postgres and the workflow engine answer (a 503 here is an answer, not
    an error: `Readiness.ready` is False and `checks` says which is down)."""
    return Request("GET", "/readyz", "/readyz", Readiness.model_validate, ok_statuses=(503,))


def create_api_key(role: str, *, channel: str | None = None, name: str = "") -> Request[ApiKey]:
    """An admin creates a key for a role (a channel key names its channel)."""
    body = {"role": role, "name": name, **({"channel": channel} if channel else {})}
    return write("POST", "/v1/api-keys", "/v1/api-keys", ApiKey.model_validate, body, key=None, policy=None)


# -- catalog -------------------------------------------------------------------------------


def create_sku(sku: NewSku, *, idempotency_key: str | None = None) -> Request[Sku]:
    """201 new, 200 when it exists with the same data, 409 with other data."""
    return write(
        "POST",
        "/v1/skus",
        "/v1/skus",
        Sku.model_validate,
        sku.to_json(),
        key=idempotency_key,
        policy="optional",
    )


def get_sku(code: str) -> Request[Sku]:
    return _get("/v1/skus/{code}", Sku.model_validate, code=code)


def list_skus(
    *, kind: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Request[Page[Sku]]:
    return _get("/v1/skus", Page[Sku].model_validate, {"kind": kind, "limit": limit, "cursor": cursor})


def create_location(location: NewLocation, *, idempotency_key: str | None = None) -> Request[Location]:
    return write(
        "POST",
        "/v1/locations",
        "/v1/locations",
        Location.model_validate,
        location.to_json(),
        key=idempotency_key,
        policy="optional",
    )


def create_channel(channel: NewChannel, *, idempotency_key: str | None = None) -> Request[Channel]:
    return write(
        "POST",
        "/v1/channels",
        "/v1/channels",
        Channel.model_validate,
        channel.to_json(),
        key=idempotency_key,
        policy="optional",
    )


def set_policy(
    channel: str, sku: str, *, safety_stock: int = 0, ringfence: Sequence[Ringfence] = ()
) -> Request[Policy]:
    """A channel's safety stock of a SKU and the units ring-fenced for it (replaces the last)."""
    route = "/v1/channels/{channel}/policies/{sku}"
    body = {"safety_stock": safety_stock, "ringfence": [r.to_json() for r in ringfence]}
    return write(
        "PUT",
        route,
        path(route, channel=channel, sku=sku),
        Policy.model_validate,
        body,
        key=None,
        policy=None,
    )


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
    return _get("/v1/orders/{order_id}", Order.model_validate, order_id=order_id)


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
    return _get("/v1/orders", Page[Order].model_validate, params)


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
    return _get("/v1/shipments/{shipment_id}", Shipment.model_validate, shipment_id=shipment_id)


def pick_tasks(*, location: str | None = None, max_lines: int | None = None) -> Request[Page[Wave]]:
    """Open pick work in waves (express first, then oldest); all waves on one page."""
    return _get("/v1/pick-tasks", Page[Wave].model_validate, {"location": location, "max_lines": max_lines})


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
    return _get("/v1/exceptions", Page[ExceptionItem].model_validate, params)


def get_exception(exception_id: str) -> Request[ExceptionItem]:
    return _get("/v1/exceptions/{exception_id}", ExceptionItem.model_validate, exception_id=exception_id)


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


# -- inventory and availability ------------------------------------------------------------


def adjust_stock(adjustment: StockAdjustment, *, idempotency_key: str | None = None) -> Request[StockChange]:
    """Add or remove units in one bucket (409 if it would go negative)."""
    route = "/v1/inventory/adjustments"
    return write(
        "POST",
        route,
        route,
        StockChange.model_validate,
        adjustment.to_json(),
        key=idempotency_key,
        policy="required",
    )


def move_stock(
    sku: str,
    location: str,
    qty: int,
    *,
    from_status: Stock,
    to_status: Stock,
    lot: str = "",
    reason: str = "status_move",
    idempotency_key: str | None = None,
) -> Request[StockChange]:
    """Move units between statuses at one location (sellable → quarantine, say)."""
    body = {
        "sku": sku,
        "location": location,
        "qty": qty,
        "from_status": from_status,
        "to_status": to_status,
        "lot": lot,
        "reason": reason,
    }
    return write(
        "POST",
        "/v1/inventory/moves",
        "/v1/inventory/moves",
        StockChange.model_validate,
        body,
        key=idempotency_key,
        policy="optional",
    )


def get_stock(sku: str) -> Request[SkuStock]:
    """Per location on hand, reserved, available and every bucket; ATP per channel."""
    return _get("/v1/inventory/{sku}", SkuStock.model_validate, sku=sku)


def list_movements(
    *,
    sku: str | None = None,
    location: str | None = None,
    ref: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Request[Page[Movement]]:
    params = {"sku": sku, "location": location, "ref": ref, "limit": limit, "cursor": cursor}
    return _get("/v1/inventory/movements", Page[Movement].model_validate, params)


def get_availability(*, channel: str | None = None, skus: Sequence[str] = ()) -> Request[list[Availability]]:
    """ATP per SKU (a channel key: its own channel) as of the last committed change."""
    return _get(
        "/v1/availability",
        lambda b: [Availability.model_validate(i) for i in b["items"]],
        {"channel": channel, "sku": list(skus)},
    )


def availability_changes(
    *, channel: str | None = None, after: str | None = None, limit: int | None = None, wait: float = 0
) -> Request[AvailabilityChanges]:
    """The next page of a channel's ATP change feed after `after` (the last page's
    `next_after`; None = from the start); `wait` long-polls up to that many seconds."""
    params = {"channel": channel, "after": after, "limit": limit, "wait": wait or None}
    return Request(
        "GET",
        "/v1/availability/changes",
        "/v1/availability/changes",
        AvailabilityChanges.model_validate,
        params=params,
        extra_timeout=wait,
    )


# -- transfers -----------------------------------------------------------------------------


def create_transfer(
    from_location: str,
    to_location: str,
    lines: Sequence[NewTransferLine],
    *,
    number: str | None = None,
    idempotency_key: str | None = None,
) -> Request[Transfer]:
    body = {
        "from": from_location,
        "to": to_location,
        "lines": [ln.to_json() for ln in lines],
        **({"number": number} if number else {}),
    }
    return write(
        "POST",
        "/v1/transfers",
        "/v1/transfers",
        Transfer.model_validate,
        body,
        key=idempotency_key,
        policy="optional",
    )


def get_transfer(number: str) -> Request[Transfer]:
    return _get("/v1/transfers/{number}", Transfer.model_validate, number=number)


def list_transfers(
    *, status: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Request[Page[Transfer]]:
    return _get(
        "/v1/transfers", Page[Transfer].model_validate, {"status": status, "limit": limit, "cursor": cursor}
    )


def ship_transfer(
    number: str, *, carrier: str = "", tracking: str = "", idempotency_key: str | None = None
) -> Request[Transfer]:
    route = "/v1/transfers/{number}/ship"
    return write(
        "POST",
        route,
        path(route, number=number),
        Transfer.model_validate,
        {"carrier": carrier, "tracking": tracking},
        key=idempotency_key,
        policy="optional",
    )


def receive_transfer(
    number: str, lines: Sequence[ReceivedLine], *, idempotency_key: str | None = None
) -> Request[Transfer]:
    route = "/v1/transfers/{number}/receive"
    return write(
        "POST",
        route,
        path(route, number=number),
        Transfer.model_validate,
        {"lines": [ln.to_json() for ln in lines]},
        key=idempotency_key,
        policy="optional",
    )

"""The catalog, inventory, availability and transfer operations of the API; they are operations
of client.operations too (`ops.adjust_stock(...)`), which says how they are built and sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from client.models import Page
from client.models_inventory import (
    Availability,
    AvailabilityChanges,
    Channel,
    Location,
    Movement,
    NewChannel,
    NewLocation,
    NewSku,
    NewTransferLine,
    Policy,
    ReceivedLine,
    Ringfence,
    Sku,
    SkuStock,
    StockAdjustment,
    StockChange,
    Transfer,
)
from client.reads import get
from client.request import Request, path, write

Stock = Literal["sellable", "in_transit", "inbound", "returns", "quarantine", "damaged"]


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
    return get("/v1/skus/{code}", Sku.model_validate, code=code)


def list_skus(
    *, kind: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Request[Page[Sku]]:
    return get("/v1/skus", Page[Sku].model_validate, {"kind": kind, "limit": limit, "cursor": cursor})


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
    return get("/v1/inventory/{sku}", SkuStock.model_validate, sku=sku)


def list_movements(
    *,
    sku: str | None = None,
    location: str | None = None,
    ref: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Request[Page[Movement]]:
    params = {"sku": sku, "location": location, "ref": ref, "limit": limit, "cursor": cursor}
    return get("/v1/inventory/movements", Page[Movement].model_validate, params)


def get_availability(*, channel: str | None = None, skus: Sequence[str] = ()) -> Request[list[Availability]]:
    """ATP per SKU (a channel key: its own channel) as of the last committed change."""
    return get(
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
    return get("/v1/transfers/{number}", Transfer.model_validate, number=number)


def list_transfers(
    *, status: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Request[Page[Transfer]]:
    return get(
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

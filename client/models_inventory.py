"""Typed results and request bodies of the omniflow API: inventory, availability and
transfers, and the catalog, API keys and readiness (orders, the warehouse and exceptions are
in client.models, with the conventions they all follow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from client.models import Body, Result

# -- inventory and availability ----------------------------------------------------------


class Balance(Result):
    sku: str
    location: str
    status: str
    lot: str
    qty: int


class StockAdjustment(Body):
    """Units added (delta > 0) or removed in one bucket, with a reason."""

    sku: str
    location: str
    delta: int
    reason: Literal["count", "damage", "found", "initial", "correction", "theft", "expired", "other"]
    status: Literal["sellable", "in_transit", "inbound", "returns", "quarantine", "damaged"] = "sellable"
    lot: str = ""
    expires_at: datetime | None = None
    note: str = ""


class StockChange(Result):
    id: str  # the operation's business key
    kind: str
    replayed: bool
    balances: list[Balance]


class Movement(Result):
    id: int
    op_key: str
    sku: str
    lot: str
    from_location: str
    from_status: str
    to_location: str
    to_status: str
    qty: int
    reason: str
    ref: str
    created_at: datetime


class LocationStock(Result):
    location: str
    on_hand: int  # sellable units, unexpired
    reserved: int
    available: int
    buckets: dict[str, int]
    lots: list[dict[str, Any]] = Field(default_factory=list)


class SkuStock(Result):
    sku: str
    kind: str
    locations: list[LocationStock]
    available_to_promise: dict[str, int]


class Availability(Result):
    channel: str
    sku: str
    available: int


class AvailabilityChange(Result):
    seq: int
    sku: str
    available: int  # the new ATP of the SKU for the channel (not a delta)


class AvailabilityChanges(Result):
    """A page of a channel's ATP change feed; pass `next_after` as `after` to read on."""

    channel: str
    events: list[AvailabilityChange]
    next_after: str


# -- transfers -------------------------------------------------------------------------


class TransferLine(Result):
    sku: str
    lot: str
    qty: int
    shipped: int
    received: int
    damaged: int


class Transfer(Result):
    id: str
    from_location: str
    to_location: str
    status: str
    workflow_id: str
    lines: list[TransferLine]
    created_at: datetime
    updated_at: datetime


class NewTransferLine(Body):
    sku: str
    qty: int
    lot: str = ""


class ReceivedLine(Body):
    sku: str
    qty_received: int
    qty_damaged: int = 0
    lot: str = ""


# -- catalog, keys, operations -------------------------------------------------------------


class NewSku(Body):
    code: str
    name: str
    kind: Literal["simple", "kit"] = "simple"
    components: list[dict[str, Any]] | None = None  # [{"sku": …, "qty": …}] for a kit
    unit_cost: int = 0
    price: int = 0
    currency: str = "USD"
    tracking: Literal["none", "lot", "serial"] = "none"
    returnable_days: int = 30
    release_at: datetime | None = None


class Sku(Result):
    code: str
    name: str
    kind: str
    components: list[dict[str, Any]]
    unit_cost: int
    price: int
    currency: str
    tracking: str
    returnable_days: int
    release_at: datetime | None = None
    created_at: datetime


class NewLocation(Body):
    code: str
    name: str
    type: Literal["dc", "store", "3pl", "dropship"]
    lat: float | None = None
    lon: float | None = None
    ship_cost: int = 0
    priority: int = 100
    can_ship: bool = True
    supplier: str | None = None


class Location(Result):
    code: str
    name: str
    type: str
    lat: float | None = None
    lon: float | None = None
    ship_cost: int
    priority: int
    can_ship: bool
    supplier: str | None = None
    created_at: datetime


class NewChannel(Body):
    code: str
    type: Literal["web", "marketplace", "b2b", "pos", "edi"]
    locations: list[str] = Field(default_factory=list)
    sourcing_rule: Literal["nearest", "cheapest", "priority"] = "nearest"
    name: str | None = None


class Channel(Result):
    code: str
    name: str
    type: str
    locations: list[str]
    sourcing_rule: str
    created_at: datetime


class Ringfence(Body):
    location: str
    qty: int


class Policy(Result):
    channel: str
    sku: str
    safety_stock: int
    ringfence: list[dict[str, Any]]


class ApiKey(Result):
    """A new API key; `key` is the secret, shown this once."""

    id: str
    name: str
    role: str
    channel: str | None = None
    key: str


class ApiKeyInfo(Result):
    """A key as the list shows it: never its secret, only its first characters."""

    id: str
    name: str
    role: str
    channel: str | None = None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class Readiness(Result):
    status: str  # ready, not_ready
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return self.status == "ready"

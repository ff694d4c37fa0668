"""The steps of an order: what the order workflow asks of its activities, one dataclass in
and one out each. Every step is one keyed database transaction; `step` fields are the
workflow's step names (`source:3`), which make the key `{order_id}:{step}` under which a
retried step finds its first answer."""

from dataclasses import dataclass

from workflows.contracts.activity import ActivityRef
from workflows.contracts.exceptions import Resolution
from workflows.contracts.orders import (
    CancelRequest,
    HoldSettled,
    OrderSnapshot,
    PackRequest,
    Picked,
    PickRequest,
    Recorded,
    ShipmentStepped,
    ShipRequest,
    Sourced,
)


@dataclass(frozen=True)
class RecordOrder:
    order_id: str
    source_step: str = ""  # with a step name, an order nothing holds is sourced at once under it


@dataclass(frozen=True)
class SettleHold:
    order_id: str
    kind: str  # address_invalid | payment_pending | fraud_review
    resolution: Resolution
    holds_after: int  # holds still to come after this one: the order stays on hold while any


@dataclass(frozen=True)
class SourceOrder:
    order_id: str
    step: str
    avoid: list[str]  # locations whose shelves just came up short for this order


@dataclass(frozen=True)
class BackorderUnits:
    order_id: str
    step: str
    decided_by: str


@dataclass(frozen=True)
class PickShipment:
    order_id: str
    request: PickRequest


@dataclass(frozen=True)
class PackShipment:
    order_id: str
    request: PackRequest


@dataclass(frozen=True)
class ShipShipment:
    order_id: str
    request: ShipRequest


@dataclass(frozen=True)
class CancelOrder:
    order_id: str
    request: CancelRequest
    step: str
    exception_id: str = ""  # the exception whose decision this cancel carries out, closed with it


@dataclass(frozen=True)
class CompleteOrder:
    order_id: str


RECORD_ORDER = ActivityRef("record_order", RecordOrder, Recorded)
SETTLE_HOLD = ActivityRef("settle_hold", SettleHold, HoldSettled)
SOURCE_ORDER = ActivityRef("source_order", SourceOrder, Sourced)
BACKORDER_UNITS = ActivityRef("backorder_units", BackorderUnits, OrderSnapshot)
PICK_SHIPMENT = ActivityRef("pick_shipment", PickShipment, Picked)
PACK_SHIPMENT = ActivityRef("pack_shipment", PackShipment, ShipmentStepped)
SHIP_SHIPMENT = ActivityRef("ship_shipment", ShipShipment, ShipmentStepped)
CANCEL_ORDER = ActivityRef("cancel_order", CancelOrder, OrderSnapshot)
COMPLETE_ORDER = ActivityRef("complete_order", CompleteOrder, OrderSnapshot)

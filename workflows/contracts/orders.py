"""An order as the API, the order workflow and its activities exchange it: the input, the
snapshot every step answers, and what channels, customer service and the warehouse send."""

import re
from dataclasses import dataclass, field
from typing import Any

from domain.audit import Actor
from workflows.contracts.exceptions import ExceptionPolicyInput


def order_workflow_id(channel: str, external_id: str) -> str:
    """The order's id and workflow id: a business key, so a retried or raced create meets
    the same workflow."""
    return f"order-{channel}-{external_id}"


_SHIPMENT_ID = re.compile(r"(order-.+)-S[1-9][0-9]*")


def shipment_order_id(shipment_id: str) -> str | None:
    """The order (and its workflow) a shipment id names: sourcing numbers an order's
    shipments `{order_id}-S{n}`, n from 1. None: not a shipment id."""
    found = _SHIPMENT_ID.fullmatch(shipment_id)
    return found.group(1) if found else None


@dataclass(frozen=True)
class LineSnap:
    line: str
    sku: str
    ordered: int
    reserved: int = 0
    backordered: int = 0
    shipped: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class ShipmentLineSnap:
    line: str
    sku: str
    qty: int
    picked: int = 0


@dataclass(frozen=True)
class ShipmentSnap:
    id: str
    location: str
    kind: str  # stock | dropship
    status: str  # allocated | picked | packed | shipped | cancelled | requested (drop-ship)
    lines: list[ShipmentLineSnap]


@dataclass(frozen=True)
class ShipmentAnswer:
    """A shipment as a warehouse step (pick, pack, ship) left it, read in the step's
    transaction: what the workflow holds of it (`snap()`) and what the step's route answers
    besides, so the route needs no read of its own. It is in the order's history twice (the
    step's result, the update's), so times are microseconds since the Unix epoch (UTC), a
    third of their RFC 3339 text."""

    id: str
    location: str
    kind: str
    status: str
    lines: list[ShipmentLineSnap]
    promise: str
    supplier: str | None
    carrier: str | None
    service: str | None
    tracking: str | None
    packages: list[dict[str, Any]]
    created_at: int
    updated_at: int
    shipped_at: int | None

    def snap(self) -> ShipmentSnap:
        return ShipmentSnap(self.id, self.location, self.kind, self.status, self.lines)


@dataclass(frozen=True)
class OrderChange:
    """What a warehouse step changed of the order: its status and payment status and the
    lines the step changed (whole); the step's shipment comes as its `ShipmentAnswer`. The
    workflow merges it into the order it holds (line by line, shipment by shipment).
    Histories recorded before these answers hold the whole order here (an OrderSnapshot's
    fields: `shipments` every shipment), which the same merge takes whole."""

    status: str
    lines: list[LineSnap]
    shipments: list[ShipmentSnap] = field(default_factory=list)
    payment_status: str = "pending"


@dataclass(frozen=True)
class ShipmentStepped(OrderChange):
    """`pack_shipment` and `ship_shipment`: what they changed, and the shipment as they left
    it (None in histories recorded before: there the change is the whole order)."""

    shipment: ShipmentAnswer | None = None


@dataclass(frozen=True)
class OrderSnapshot:
    """The order as its last committed step left it (what the workflow decides on and its
    validators check; the read model holds the same numbers)."""

    order_id: str
    status: str
    lines: list[LineSnap]
    shipments: list[ShipmentSnap]
    payment_status: str = "pending"


@dataclass(frozen=True)
class OrderCarry:
    """What an order waiting for stock takes into its next run when its history reaches the
    bound: the order as its last step left it and what the workflow knew between steps
    (the step counter keeps every step key and exception key unique across runs)."""

    order: OrderSnapshot
    steps_named: int
    closed_by_last_step: bool
    backorder_since: str | None = None  # RFC 3339
    stock_news: bool = False
    needs_sourcing: bool = False
    unfillable: dict[str, int] | None = None
    avoid: list[str] | None = None
    runs: int = 1  # how many runs came before this one


@dataclass(frozen=True)
class OrderInput:
    order_id: str
    channel: str
    value: int  # what the customer pays, minor units (for priorities)
    policies: dict[str, ExceptionPolicyInput]  # by exception kind: holds, backorder_aging, short_pick
    backorder_aging_seconds: int = 3 * 24 * 3600
    backorder_recheck_seconds: int = 3600
    # Set when a long wait continued as new (workflows/order_carry.py): the run resumes there.
    carried: OrderCarry | None = None


@dataclass(frozen=True)
class Sourced:
    snapshot: OrderSnapshot | None  # None inside `Recorded`, whose snapshot is the same order
    new_shipments: list[str]
    backordered: int  # units now waiting for stock
    unfillable: dict[str, int]  # line -> units neither stock nor backorder can take


@dataclass(frozen=True)
class Recorded:
    """`record_order`: the order as stored, the holds it needs (in order), and when its
    pre-order lines are released (RFC 3339, or "")."""

    snapshot: OrderSnapshot
    holds: list[str]
    hold_details: dict[str, Any]  # kind -> what the person needs to see (problems, fraud reasons)
    release_at: str = ""
    sourced: Sourced | None = None  # sourced at once when nothing holds the order (one round trip less)


@dataclass(frozen=True)
class HoldSettled:
    snapshot: OrderSnapshot
    cleared: bool  # False: the decision did not clear the hold (e.g. the payment was declined)
    note: str = ""


@dataclass(frozen=True)
class Picked:
    snapshot: OrderChange  # what the pick changed (older histories: the whole order)
    short: dict[str, int]  # order line -> units not found (released, to be sourced again)
    shipment: ShipmentAnswer | None = None  # None in histories recorded before step answers


@dataclass(frozen=True)
class PickedLine:
    sku: str
    qty: int
    lot: str = ""


@dataclass(frozen=True)
class PickRequest:
    shipment_id: str
    lines: list[PickedLine]
    short_reason: str = "missing"  # missing (count loss) | damaged: where the missing units go
    picked_by: str = ""
    actor: Actor | None = None  # the person, for the audit trail (None in older histories)


@dataclass(frozen=True)
class PackageIn:
    weight_g: int
    length_mm: int
    width_mm: int
    height_mm: int
    lines: dict[str, int]  # sku -> units


@dataclass(frozen=True)
class PackRequest:
    shipment_id: str
    packages: list[PackageIn]
    service: str = "ground"
    actor: Actor | None = None


@dataclass(frozen=True)
class ShipRequest:
    shipment_id: str
    carrier: str
    service: str = "ground"
    tracking: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class CancelRequest:
    reason: str
    lines: dict[str, int] | None = None  # line -> units; None cancels everything not shipped
    requested_by: str = ""
    actor: Actor | None = None  # the person asking, or deciding the exception the cancel carries out


@dataclass(frozen=True)
class ShipToFix:
    ship_to: dict[str, Any]
    fixed_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class PaymentConfirmation:
    status: str  # authorized | captured
    amount: int
    reference: str
    method: str = ""
    confirmed_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class StockArrived:
    skus: list[str]

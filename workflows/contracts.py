"""Small typed contracts between the API, workflows and activities. Pure dataclasses:
the API imports these (never workflow code), and they cross the Temporal data converter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TASK_QUEUE = "omniflow"


@dataclass(frozen=True)
class HousekeepingInput:
    idempotency_ttl_hours: int = 24


@dataclass(frozen=True)
class HousekeepingResult:
    idempotency_records_purged: int
    skus_refreshed_for_expiry: int = 0


# -- exceptions (the human queues) ------------------------------------------------------


@dataclass(frozen=True)
class ExceptionPolicyInput:
    sla_seconds: int
    max_escalations: int
    default_action: str


@dataclass(frozen=True)
class OpenException:
    key: str  # "{workflow_id}:{step}"
    kind: str
    subject_type: str
    subject_id: str
    workflow_id: str
    sla_seconds: int
    value_at_risk: int
    actions: list[str]
    details: dict[str, Any]


@dataclass(frozen=True)
class OpenedException:
    id: str
    due_at: str  # RFC 3339
    priority: float


@dataclass(frozen=True)
class Escalate:
    id: str
    level: int
    sla_seconds: int
    value_at_risk: int


@dataclass(frozen=True)
class Resolution:
    exception_id: str
    action: str
    note: str = ""
    resolved_by: str = ""
    data: dict[str, Any] | None = None


# -- transfers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferLineIn:
    sku: str
    qty: int
    lot: str = ""


@dataclass(frozen=True)
class TransferInput:
    number: str
    from_location: str
    to_location: str
    lines: list[TransferLineIn]
    discrepancy_policy: ExceptionPolicyInput


@dataclass(frozen=True)
class ReceivedLine:
    sku: str
    qty_received: int
    qty_damaged: int = 0
    lot: str = ""


@dataclass(frozen=True)
class ShipTransfer:
    carrier: str = ""
    tracking: str = ""


@dataclass(frozen=True)
class ReceiveTransfer:
    lines: list[ReceivedLine]


@dataclass(frozen=True)
class TransferState:
    number: str
    status: str
    open_exception: str | None = None
    value_at_risk: int = 0  # missing + damaged units at moving-average cost (minor units)


def transfer_workflow_id(number: str) -> str:
    return f"transfer-{number}"


# -- cycle counts ------------------------------------------------------------------------


@dataclass(frozen=True)
class CountTolerance:
    units: int
    value: int  # minor units


@dataclass(frozen=True)
class CycleCountInput:
    id: str
    location: str
    tolerance: CountTolerance
    approval_policy: ExceptionPolicyInput


@dataclass(frozen=True)
class CountedLine:
    sku: str
    counted: int
    lot: str = ""


@dataclass(frozen=True)
class SubmitCount:
    lines: list[CountedLine]
    counted_by: str = ""


@dataclass(frozen=True)
class CountState:
    id: str
    status: str  # open | awaiting_approval | posted | rejected
    over_tolerance_lines: int = 0
    value_at_risk: int = 0
    open_exception: str | None = None


def count_workflow_id(count_id: str) -> str:
    return f"count-{count_id}"


# -- orders ------------------------------------------------------------------------------


def order_workflow_id(channel: str, external_id: str) -> str:
    """The order's id and workflow id: a business key, so a retried or raced create meets
    the same workflow."""
    return f"order-{channel}-{external_id}"


@dataclass(frozen=True)
class OrderInput:
    order_id: str
    channel: str
    value: int  # what the customer pays, minor units (for priorities)
    policies: dict[str, ExceptionPolicyInput]  # by exception kind: holds, backorder_aging, short_pick
    backorder_aging_seconds: int = 3 * 24 * 3600
    backorder_recheck_seconds: int = 3600


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
class OrderSnapshot:
    """The order as its last committed step left it (what the workflow decides on and its
    validators check; the read model holds the same numbers)."""

    order_id: str
    status: str
    lines: list[LineSnap]
    shipments: list[ShipmentSnap]
    payment_status: str = "pending"


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
class Sourced:
    snapshot: OrderSnapshot
    new_shipments: list[str]
    backordered: int  # units now waiting for stock
    unfillable: dict[str, int]  # line -> units neither stock nor backorder can take


@dataclass(frozen=True)
class HoldSettled:
    snapshot: OrderSnapshot
    cleared: bool  # False: the decision did not clear the hold (e.g. the payment was declined)
    note: str = ""


@dataclass(frozen=True)
class Picked:
    snapshot: OrderSnapshot
    short: dict[str, int]  # order line -> units not found (released, to be sourced again)


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


@dataclass(frozen=True)
class ShipRequest:
    shipment_id: str
    carrier: str
    service: str = "ground"
    tracking: str = ""


@dataclass(frozen=True)
class CancelRequest:
    reason: str
    lines: dict[str, int] | None = None  # line -> units; None cancels everything not shipped
    requested_by: str = ""


@dataclass(frozen=True)
class ShipToFix:
    ship_to: dict[str, Any]
    fixed_by: str = ""


@dataclass(frozen=True)
class PaymentConfirmation:
    status: str  # authorized | captured
    amount: int
    reference: str
    method: str = ""
    confirmed_by: str = ""


@dataclass(frozen=True)
class StockArrived:
    skus: list[str]


@dataclass(frozen=True)
class WakeInput:
    after: str = ""  # feed position (see models.availability.encode_after)
    wait_seconds: int = 30
    rounds: int = 0  # continue-as-new after enough rounds


@dataclass(frozen=True)
class WakeResult:
    after: str
    arrivals: int
    woken: list[str]


BACKORDER_DISPATCHER_ID = "backorder-dispatcher"

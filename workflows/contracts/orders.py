"""An order as the API, the order workflow and its activities exchange it: the input, the
snapshot every step answers, and what channels, customer service and the warehouse send."""

from dataclasses import dataclass
from typing import Any

from domain.audit import Actor
from workflows.contracts.exceptions import ExceptionPolicyInput


def order_workflow_id(channel: str, external_id: str) -> str:
    """The order's id and workflow id: a business key, so a retried or raced create meets
    the same workflow."""
    return f"order-{channel}-{external_id}"


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
    snapshot: OrderSnapshot
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

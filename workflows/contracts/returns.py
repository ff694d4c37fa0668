"""A return (RMA) as the API, its workflow and its activities exchange it: the input, the
snapshot each step answers, what the warehouse and the customer send, and the steps (one
dataclass in and one out each, keyed `rma-{number}:{step}`)."""

from dataclasses import dataclass

from domain.audit import Actor
from workflows.contracts.activity import ActivityRef
from workflows.contracts.exceptions import ExceptionPolicyInput, Resolution
from workflows.contracts.orders import OrderInput

RETURN_WORKFLOW = "Return"


def return_workflow_id(number: str) -> str:
    return f"rma-{number}"


@dataclass(frozen=True)
class ReturnInput:
    number: str
    needs_approval: bool
    outcome: str  # refund | exchange | replacement | store_credit
    instant: bool  # an exchange or replacement ships before the parcel arrives
    value: int  # the credit at stake, minor units (for priorities)
    parcel_seconds: int  # how long the parcel may take to arrive
    policies: dict[str, ExceptionPolicyInput]  # return_approval, refund_approval, refund_overdue
    new_order: OrderInput | None = None  # how an exchange or replacement order starts (its id filled in)
    refund_approval_threshold: int = 0  # a refund over this waits in refund_approval (0: never)
    store_credit_bonus_percent: int = 0


@dataclass(frozen=True)
class ReturnLineSnap:
    sku: str
    qty: int
    keep: bool = False
    received: int = 0
    inspected: int = 0
    credited: int = 0


@dataclass(frozen=True)
class ReturnSnapshot:
    number: str
    status: str
    lines: list[ReturnLineSnap]
    new_order: str = ""
    settled: bool = False  # the money of what came back has been settled


# -- what people send -------------------------------------------------------------------------
# Each carries `actor`, the person for the audit trail (None in histories recorded before it).


@dataclass(frozen=True)
class ReturnedUnits:
    sku: str
    qty: int


@dataclass(frozen=True)
class ParcelReceipt:
    location: str
    lines: list[ReturnedUnits]
    received_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class InspectedUnits:
    sku: str
    qty: int
    condition: str
    disposition: str


@dataclass(frozen=True)
class Inspection:
    lines: list[InspectedUnits]
    inspected_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class CancelReturn:
    reason: str
    cancelled_by: str = ""
    actor: Actor | None = None


# -- the steps --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordReturn:
    number: str


@dataclass(frozen=True)
class DecideReturn:
    number: str
    step: str
    resolution: Resolution  # approve → authorized; reject → rejected


@dataclass(frozen=True)
class HoldNewOrder:
    """Reserve the exchange or replacement order's units for it, at authorization."""

    number: str
    step: str


@dataclass(frozen=True)
class PlaceNewOrder:
    number: str
    step: str


@dataclass(frozen=True)
class PlacedOrder:
    snapshot: ReturnSnapshot
    order_id: str
    channel: str
    value: int


@dataclass(frozen=True)
class ReceiveParcel:
    number: str
    step: str
    receipt: ParcelReceipt


@dataclass(frozen=True)
class InspectUnits:
    number: str
    step: str
    inspection: Inspection


@dataclass(frozen=True)
class SettleReturn:
    """Give the customer what the units are worth: `scope` `keep` (lines refunded without a
    parcel) or `received` (what came back, not yet credited). `decision` "" asks whether the
    amount needs approval first; `approved` / `declined` is the person's answer."""

    number: str
    step: str
    scope: str
    decision: str = ""
    resolution: Resolution | None = None
    approval_over: int = 0  # the refund approval threshold (0: never)
    bonus_percent: int = 0  # store credit's bonus
    final: bool = True  # the last settlement: an exchange's difference is settled with it


@dataclass(frozen=True)
class Settlement:
    snapshot: ReturnSnapshot
    amount: int  # what goes back (refund or store credit), or an exchange's difference
    needs_approval: bool = False


@dataclass(frozen=True)
class EndReturn:
    """Close the return: `completed`, `expired` (nothing arrived in time) or `cancelled`;
    the stock held for a new order that was not placed goes back."""

    number: str
    step: str
    status: str
    reason: str = ""
    cancelled_by: str = ""
    actor: Actor | None = None  # who cancelled (the audit trail)


RECORD_RETURN = ActivityRef("record_return", RecordReturn, ReturnSnapshot)
DECIDE_RETURN = ActivityRef("decide_return", DecideReturn, ReturnSnapshot)
HOLD_NEW_ORDER = ActivityRef("hold_return_new_order", HoldNewOrder, ReturnSnapshot)
PLACE_NEW_ORDER = ActivityRef("place_return_new_order", PlaceNewOrder, PlacedOrder)
RECEIVE_PARCEL = ActivityRef("receive_return_parcel", ReceiveParcel, ReturnSnapshot)
INSPECT_UNITS = ActivityRef("inspect_returned_units", InspectUnits, ReturnSnapshot)
SETTLE_RETURN = ActivityRef("settle_return", SettleReturn, Settlement)
END_RETURN = ActivityRef("end_return", EndReturn, ReturnSnapshot)

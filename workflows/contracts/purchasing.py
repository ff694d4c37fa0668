"""A purchase order as the API, its workflow and its activities exchange it: the input, the
snapshot each step answers, what the supplier, the warehouse and finance send, and the steps
(one dataclass in and one out each, keyed `po-{number}:{step}`)."""

from dataclasses import dataclass
from typing import Any

from domain.audit import Actor
from workflows.contracts.activity import ActivityRef
from workflows.contracts.exceptions import ExceptionPolicyInput, Resolution

PURCHASE_ORDER_WORKFLOW = "PurchaseOrder"


def purchase_order_workflow_id(number: str) -> str:
    return f"po-{number}"


@dataclass(frozen=True)
class PurchaseTolerances:
    over_receipt: float  # a receipt may exceed the expected units by this fraction
    bill_quantity: float  # a bill may exceed the kept units by this fraction
    bill_value: float  # a bill's unit cost may differ from the PO's by this fraction


@dataclass(frozen=True)
class PurchaseOrderInput:
    number: str
    value: int  # minor units, for priorities
    approval_required: bool
    policies: dict[
        str, ExceptionPolicyInput
    ]  # po_approval, supplier_unconfirmed, receipt_discrepancy, bill_mismatch
    tolerances: PurchaseTolerances
    steps_named: int = 0  # carried over continue-as-new, so step names stay unique
    continued: bool = False  # a run continued-as-new: recording, approval and confirmation are behind it
    history_limit: int = 2_000  # events: continue-as-new past this, well before Temporal's warning at 10,240


@dataclass(frozen=True)
class PoLineSnap:
    sku: str
    qty: int
    unit_cost: int
    confirmed: int | None = None
    received: int = 0
    damaged: int = 0
    quarantined: int = 0
    rejected: int = 0
    returned: int = 0
    closed: int = 0
    billed: int = 0


@dataclass(frozen=True)
class PoSnapshot:
    number: str
    status: str
    lines: list[PoLineSnap]


# -- what people send -------------------------------------------------------------------------
# Each carries `actor`, the person for the audit trail (None in histories recorded before it).


@dataclass(frozen=True)
class ConfirmedLine:
    sku: str
    qty: int
    promised_at: str = ""  # RFC 3339


@dataclass(frozen=True)
class SupplierConfirmation:
    lines: list[ConfirmedLine]
    confirmed_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class ReceiptLine:
    sku: str
    qty_received: int
    qty_damaged: int = 0
    lot: str = ""
    expires_at: str = ""  # RFC 3339, required for lot-tracked SKUs


@dataclass(frozen=True)
class Receipt:
    receipt: str  # the receipt number: the business key of this delivery
    lines: list[ReceiptLine]
    final: bool = False  # the supplier sends nothing more: what is still open is short
    received_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class QcLine:
    sku: str
    qty: int
    result: str  # pass | fail
    disposition: str = ""  # fail: return_to_vendor | scrap


@dataclass(frozen=True)
class QcRequest:
    lines: list[QcLine]
    inspected_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class BillLine:
    sku: str
    qty: int
    unit_cost: int


@dataclass(frozen=True)
class VendorBillIn:
    invoice_number: str
    lines: list[BillLine]
    entered_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class CancelPurchase:
    reason: str
    requested_by: str = ""
    actor: Actor | None = None


@dataclass(frozen=True)
class ApprovalDecision:
    approve: bool
    reason: str = ""
    decided_by: str = ""
    actor: Actor | None = None


# -- the steps --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoStep:
    number: str
    step: str


@dataclass(frozen=True)
class PoRecord:
    number: str
    approval_required: bool


@dataclass(frozen=True)
class PoRecorded:
    snapshot: PoSnapshot
    sent: bool  # sent to the supplier at once (no approval needed)


@dataclass(frozen=True)
class PoDecision:
    number: str
    step: str
    resolution: Resolution


@dataclass(frozen=True)
class PoCancel:
    number: str
    step: str
    request: CancelPurchase
    exception_id: str = ""


@dataclass(frozen=True)
class PoConfirm:
    number: str
    confirmation: SupplierConfirmation


@dataclass(frozen=True)
class PoReceive:
    number: str
    receipt: Receipt
    over_receipt: float


@dataclass(frozen=True)
class Discrepancy:
    receipt: str
    over: dict[str, int]
    damaged: dict[str, int]
    short: dict[str, int]
    value_at_risk: int


@dataclass(frozen=True)
class PoReceived:
    snapshot: PoSnapshot
    discrepancy: Discrepancy | None = None


@dataclass(frozen=True)
class PoSettleReceipt:
    number: str
    discrepancy: Discrepancy
    resolution: Resolution


@dataclass(frozen=True)
class PoQc:
    number: str
    request: QcRequest
    step: str


@dataclass(frozen=True)
class PoBill:
    number: str
    bill: VendorBillIn
    tolerances: PurchaseTolerances


@dataclass(frozen=True)
class BillMismatch:
    invoice_number: str
    mismatches: list[dict[str, Any]]  # Any: the converter cannot decode `object` values
    value_at_risk: int


@dataclass(frozen=True)
class PoBilled:
    snapshot: PoSnapshot
    mismatch: BillMismatch | None = None


@dataclass(frozen=True)
class PoSettleBill:
    number: str
    mismatch: BillMismatch
    resolution: Resolution
    tolerances: PurchaseTolerances


@dataclass(frozen=True)
class PoClose:
    number: str
    bill_quantity: float


RECORD_PO = ActivityRef("record_purchase_order", PoRecord, PoRecorded)
SEND_PO = ActivityRef("send_purchase_order", PoDecision, PoSnapshot)
CANCEL_PO = ActivityRef("cancel_purchase_order", PoCancel, PoSnapshot)
CONFIRM_PO = ActivityRef("confirm_purchase_order", PoConfirm, PoSnapshot)
RECEIVE_PO = ActivityRef("receive_purchase_order", PoReceive, PoReceived)
SETTLE_RECEIPT = ActivityRef("settle_receipt_discrepancy", PoSettleReceipt, PoSnapshot)
QC_PO = ActivityRef("release_quarantine", PoQc, PoSnapshot)
BILL_PO = ActivityRef("match_vendor_bill", PoBill, PoBilled)
SETTLE_BILL = ActivityRef("settle_bill_mismatch", PoSettleBill, PoSnapshot)
CLOSE_PO = ActivityRef("close_purchase_order", PoClose, PoSnapshot)

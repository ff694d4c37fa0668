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

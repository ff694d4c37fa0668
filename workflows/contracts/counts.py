"""Cycle counts: input, the counted quantities, the approver's decision, the state."""

from dataclasses import dataclass

from domain.audit import Actor
from workflows.contracts.activity import ActivityRef
from workflows.contracts.exceptions import ExceptionPolicyInput, Resolution


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
    actor: Actor | None = None  # the person, for the audit trail (None in older histories)


@dataclass(frozen=True)
class CountState:
    id: str
    status: str  # open | awaiting_approval | posted | rejected
    over_tolerance_lines: int = 0
    value_at_risk: int = 0
    open_exception: str | None = None


def count_workflow_id(count_id: str) -> str:
    return f"count-{count_id}"


# -- the steps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CountEvaluation:
    count_id: str
    submitted: SubmitCount
    tolerance: CountTolerance


@dataclass(frozen=True)
class CountDecision:
    count_id: str
    resolution: Resolution


EVALUATE_COUNT = ActivityRef("evaluate_count", CountEvaluation, CountState)
DECIDE_COUNT = ActivityRef("decide_count", CountDecision, CountState)

"""The human queues: an exception opened by a workflow, escalated at its SLA, resolved by a
person or by its policy's default action."""

from dataclasses import dataclass
from typing import Any

from domain.audit import Actor
from workflows.contracts.activity import ActivityRef, NoResult


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
    # The person deciding, for the audit trail (None: the policy's default, a withdrawal, or
    # a history recorded before the trail; optional so those still replay).
    actor: Actor | None = None


@dataclass(frozen=True)
class WithdrawException:
    exception_id: str  # "" when none is open: nothing to do
    why: str


OPEN_EXCEPTION = ActivityRef("open_exception", OpenException, OpenedException)
ESCALATE_EXCEPTION = ActivityRef("escalate_exception", Escalate, OpenedException)
CLOSE_EXCEPTION = ActivityRef("close_exception", Resolution, NoResult)
WITHDRAW_EXCEPTION = ActivityRef("withdraw_exception", WithdrawException, NoResult)

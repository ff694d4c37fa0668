"""Exception queues: the pure rules (SLA, escalation, priority). Workflows wait; people act.

Priority (higher = handle first), documented for the API:

    priority = value_at_risk_major × (1 + escalation_level) × urgency
    urgency  = 1 + max(0, 1 − time_to_due / sla)        (1 when just opened, 2 at the SLA)

where value_at_risk_major is the money at stake in major units (e.g. dollars). So a $500
order at its SLA outranks a fresh $700 one, and every escalation doubles, triples… the weight."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ExceptionPolicy:
    sla: timedelta  # time until the first escalation
    max_escalations: int  # after this many, the default action runs
    default_action: str


def priority(
    value_at_risk_minor: int, escalation_level: int, time_to_due: timedelta, sla: timedelta
) -> float:
    major = max(0, value_at_risk_minor) / 100
    sla_s = max(sla.total_seconds(), 1.0)
    urgency = 1 + max(0.0, 1 - time_to_due.total_seconds() / sla_s)
    return round(major * (1 + escalation_level) * min(urgency, 2.0), 2)


def next_due(now: datetime, policy: ExceptionPolicy, escalation_level: int) -> datetime:
    """Each level gets the same SLA again (a person is paged, the clock restarts)."""
    del escalation_level
    return now + policy.sla


# Who may decide which kind of exception (admin may decide all).
RESOLVER_ROLES: dict[str, frozenset[str]] = {
    "fraud_review": frozenset({"approver"}),
    "address_invalid": frozenset({"approver", "warehouse"}),
    "payment_pending": frozenset({"finance", "approver"}),
    "backorder_aging": frozenset({"approver"}),
    "short_pick": frozenset({"warehouse"}),
    "po_approval": frozenset({"approver"}),
    "supplier_unconfirmed": frozenset({"approver"}),
    "receipt_discrepancy": frozenset({"warehouse", "approver"}),
    "bill_mismatch": frozenset({"finance"}),
    "count_variance": frozenset({"approver"}),
    "return_approval": frozenset({"approver"}),
    "refund_approval": frozenset({"finance", "approver"}),
    "refund_overdue": frozenset({"finance", "warehouse", "approver"}),
    "channel_sync_failed": frozenset(),
}


def may_resolve(role: str, kind: str) -> bool:
    return role == "admin" or role in RESOLVER_ROLES.get(kind, frozenset({"approver"}))

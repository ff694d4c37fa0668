"""What the reports of the API answer (client.operations_reports): the KPI report and the
audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from client.models import Result


class Kpi(Result):
    """One KPI: its headline `value` (None: no data yet), `unit`, `definition`, and the
    figures behind it as further attributes (`counts`, `p95`, `by_kind`, …)."""

    value: Any = None
    unit: str
    definition: str
    channel_scoped: bool


class KpiReport(Result):
    start: datetime = Field(alias="from")
    to: datetime
    channel: str | None = None
    as_of: datetime
    kpis: dict[str, Kpi]

    def kpi(self, name: str) -> Kpi:
        return self.kpis[name]


class AuditActor(Result):
    key_id: str  # the API key that made the request
    role: str
    name: str


class AuditObject(Result):
    type: str  # sku, channel_policy, api_key, exception, purchase_order, return, shipment, ...
    id: str


class AuditEntry(Result):
    """One human action: who (`actor`), what (`action` on `object`, by `route`, `before` →
    `after` where it applies), when (`at`, its transaction's time) and the `request_id`."""

    id: int
    at: datetime
    actor: AuditActor
    action: str
    object: AuditObject
    route: str
    before: Any = None
    after: Any = None
    request_id: str

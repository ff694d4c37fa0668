"""What the reports of the API answer (client.operations_reports)."""

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

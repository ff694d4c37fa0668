"""The reports of the API: the KPI report of a window (`api.kpis(...)`, or
`api.send(reports.kpis(...))`). A console or a script draws a KPI over time by asking for
consecutive windows."""

from __future__ import annotations

from datetime import datetime

from client.models_reports import KpiReport
from client.reads import get
from client.request import Request


def kpis(
    start: datetime | None = None, end: datetime | None = None, *, channel: str | None = None
) -> Request[KpiReport]:
    """Every KPI over [`start`, `end`) (default: the 30 days up to now), narrowed to `channel`
    where a KPI belongs to one; any role but channel. A KPI without data has `value` None."""
    params = {
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "channel": channel,
    }
    return get("/v1/reports/kpis", KpiReport.model_validate, params)

"""The reports of the API: the KPI report of a window (`api.kpis(...)`, or
`api.send(reports.kpis(...))`; a console or a script draws a KPI over time by asking for
consecutive windows), and the audit trail (`api.list_audit(...)`, `api.iter_audit(...)`)."""

from __future__ import annotations

from datetime import datetime

from client.models import Page
from client.models_reports import AuditEntry, KpiReport
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


def list_audit(
    *,
    actor: str | None = None,
    object: str | None = None,  # the API's name for the filter
    action: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Request[Page[AuditEntry]]:
    """The audit trail, newest first (admin): `actor` a key id, `object` `type` or `type:id`
    (`purchase_order:P-1`), `action` (`resolve`, `cancel`, ...), at or after `start` and
    before `end`."""
    params = {
        "actor": actor,
        "object": object,
        "action": action,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "limit": limit,
        "cursor": cursor,
    }
    return get("/v1/audit", Page[AuditEntry].model_validate, params)

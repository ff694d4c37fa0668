"""The KPI report: every KPI of a window (and a channel), each with its unit and definition
(domain.kpis), read from Postgres by models.kpis / models.kpis_ops in a handful of
statements, so a console may ask for many consecutive windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import NOT_CHANNEL, guard
from api.deps import EngineDep, SettingsDep
from api.problems import Problem
from api.schemas_reports import KpiReport, Kpis
from domain.kpi_definitions import DEFINITIONS
from models import kpis as facts
from models.kpi_report import figures

router = APIRouter(tags=["reports"])
DEFAULT_DAYS = 30  # the window when `from` is not given: the 30 days up to `to`
MAX_DAYS = 3660


def _invalid(detail: str, name: str) -> Problem:
    return Problem(422, detail, slug="validation-error", errors=[{"loc": ["query", name], "msg": detail}])


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _window(from_: datetime | None, to: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    end = _utc(to) if to else now
    start = _utc(from_) if from_ else end - timedelta(days=DEFAULT_DAYS)
    if start > end:
        raise _invalid("`from` must not be after `to`", "from")
    if end - start > timedelta(days=MAX_DAYS):
        raise _invalid(f"the window is at most {MAX_DAYS} days", "from")
    return start, end


def _described(figures: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            **body,
            "unit": DEFINITIONS[name].unit,
            "definition": DEFINITIONS[name].text,
            "channel_scoped": DEFINITIONS[name].channel_scoped,
        }
        for name, body in figures.items()
    }


@router.get("/v1/reports/kpis", response_model=KpiReport, **guard(*NOT_CHANNEL))
async def kpis(
    engine: EngineDep,
    settings: SettingsDep,
    from_: Annotated[
        datetime | None,
        Query(
            alias="from",
            description="Start of the window (RFC 3339; inclusive); default 30 days before `to`.",
        ),
    ] = None,
    to: Annotated[datetime | None, Query(description="End of the window (exclusive); default now.")] = None,
    channel: Annotated[str | None, Query(max_length=64, description="Only this channel's figures.")] = None,
) -> KpiReport:
    """The operation's KPIs over the window [`from`, `to`), each with its `value` (null when
    there is no data yet), `unit` and `definition`; `channel` narrows the KPIs that belong to
    a channel (`channel_scoped`). An unknown channel → 422."""
    now = datetime.now(UTC)
    start, end = _window(from_, to, now)
    window = facts.Window(start, end, now, channel)
    async with engine.connect() as conn:
        if channel is not None and not await facts.channel_exists(conn, channel):
            raise _invalid(f"unknown channel '{channel}'", "channel")
        found = await figures(conn, window, settings.ship_by_seconds)
    return KpiReport(from_=start, to=end, channel=channel, as_of=now, kpis=Kpis(**_described(found)))

"""Suppliers: the scorecard of one supplier over the purchase orders sent to it in a window
(facts read by models.supplier_scorecard in two queries, the arithmetic in
domain.supplier_scorecard, where the definitions are)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.auth import NOT_CHANNEL, guard
from api.deps import EngineDep
from api.problems import Problem, not_found
from api.schemas_suppliers import LeadTimeVariance, Scorecard, ScorecardCounts
from models.supplier_scorecard import SupplierFacts, supplier_exists, supplier_facts

router = APIRouter(tags=["suppliers"])
CODE = r"^[A-Za-z0-9._-]{1,64}$"
DEFAULT_DAYS = 90  # the window when `from` is not given: the 90 days up to `to`
MAX_DAYS = 3660


def _invalid(detail: str, name: str) -> Problem:
    return Problem(422, detail, slug="validation-error", errors=[{"loc": ["query", name], "msg": detail}])


def _window(from_: date | None, to: date | None, today: date) -> tuple[date, date]:
    end = to or today
    start = from_ or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise _invalid("`from` must not be after `to`", "from")
    if (end - start).days >= MAX_DAYS:
        raise _invalid(f"the window is at most {MAX_DAYS} days", "from")
    return start, end


def _rate(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _days(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@router.get("/v1/suppliers/{code}/scorecard", response_model=Scorecard, **guard(*NOT_CHANNEL))
async def scorecard(
    engine: EngineDep,
    code: Annotated[str, Path(pattern=CODE)],
    from_: Annotated[
        date | None, Query(alias="from", description="First day (UTC); default 90 days back.")
    ] = None,
    to: Annotated[date | None, Query(description="Last day, inclusive (UTC); default today.")] = None,
) -> Scorecard:
    """How the supplier delivered on the POs sent to it from `from` to `to`: on time in full,
    lead-time variance against its quoted lead time, rejection rate. A KPI without data is
    null."""
    now = datetime.now(UTC)
    start, end = _window(from_, to, now.date())
    async with engine.connect() as conn:
        if not await supplier_exists(conn, code):
            raise not_found(f"supplier {code}")
        facts = await supplier_facts(
            conn,
            datetime.combine(start, time(), UTC),
            datetime.combine(end + timedelta(days=1), time(), UTC),
            [code],
        )
    card = facts.get(code, SupplierFacts()).scorecard(now)
    return Scorecard(
        supplier=code,
        from_=start,
        to=end,
        on_time_in_full=_rate(card.on_time_in_full),
        lead_time_variance_days=LeadTimeVariance(
            mean=_days(card.lead_time_variance_mean), std_dev=_days(card.lead_time_variance_std_dev)
        ),
        rejection_rate=_rate(card.rejection_rate),
        counts=ScorecardCounts(
            pos=card.pos,
            lines=card.lines,
            receipts=card.receipts,
            units=card.units,
            lines_judged=card.lines_judged,
            pos_received=card.pos_received,
        ),
    )

"""Replenishment: suggestions computed from recorded demand (domain.replenishment, inputs read
in bulk by models.replenishment), the seasonality factors and per SKU-location policies they
use, on-demand runs (a `replenishment-{run_id}` workflow that drafts POs and starts them),
and the replay of a proposed policy beside the current one."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.audit_trail import AuditDep
from api.auth import ANY, NOT_CHANNEL, Role, guard
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.problems import Problem, not_found
from api.schemas_replenishment import (
    CODE,
    FactorIn,
    FactorRead,
    PolicyIn,
    PolicyRead,
    RunIn,
    RunRead,
    SimPolicyIn,
    SimResult,
    SimulateIn,
    SimulateRead,
    SuggestionRead,
    Suggestions,
)
from api.temporal import start
from domain.replenishment import (
    Factor,
    Factors,
    Policy,
    SimItem,
    SimOutcome,
    Suggestion,
    choose_supplier,
    simulate,
    suggest_all,
)
from models import replenishment as store
from workflows import search_attributes as sa
from workflows.contracts import REPLENISHMENT_WORKFLOW, ReplenishmentInput, replenishment_workflow_id

router = APIRouter(tags=["replenishment"])


def _invalid(detail: str, loc: list[Any]) -> Problem:
    return Problem(422, detail, slug="validation-error", errors=[{"loc": loc, "msg": detail}])


def _today() -> date:
    return datetime.now(UTC).date()


def _read(s: Suggestion) -> SuggestionRead:
    p, o = s.point, s.option
    return SuggestionRead(
        sku=p.sku,
        location=p.location,
        on_hand=p.on_hand,
        inbound=p.inbound,
        reserved=p.reserved,
        position=p.position,
        demand_per_day=round(float(s.demand_per_day), 4),
        factor=round(float(s.factor), 3),
        lead_time_days=o.lead_time_days if o else None,
        safety_stock=p.safety_stock,
        review_days=p.review_days,
        reorder_point=round(float(s.reorder_point), 4),
        order_up_to=round(float(s.order_up_to), 4),
        suggested_qty=s.suggested_qty,
        supplier=o.supplier if o else None,
        unit_cost=o.cost if o else None,
        currency=o.currency if o else None,
        why=s.why,
    )


@router.get("/v1/replenishment/suggestions", response_model=Suggestions, **guard(*NOT_CHANNEL))
async def suggestions(
    engine: EngineDep,
    settings: SettingsDep,
    location: Annotated[str | None, Query(pattern=CODE)] = None,
    supplier: Annotated[str | None, Query(pattern=CODE)] = None,
    everything: Annotated[
        bool, Query(alias="all", description="Also the SKU-locations that need nothing.")
    ] = False,
) -> Suggestions:
    """What to order now, per SKU and location, with the arithmetic (`why`)."""
    today, days = _today(), settings.replenishment_demand_days
    async with engine.connect() as conn:
        data = await store.load_inputs(conn, days, today, location)
    found = suggest_all(data.points, data.shipped, days, Factors(data.factors), data.options, today)
    items = [
        _read(s)
        for s in found
        if (everything or s.suggested_qty > 0)
        and (supplier is None or (s.option and s.option.supplier == supplier))
    ]
    return Suggestions(as_of=today, demand_days=days, items=items)


# -- factors and policies ---------------------------------------------------------------------


def _factor(f: FactorIn) -> Factor:
    return Factor(f.from_, f.to, Fraction(f.factor), f.sku, f.category)


def _factor_read(f: Factor) -> FactorRead:
    return FactorRead(sku=f.sku, category=f.category, from_=f.starts_on, to=f.ends_on, factor=float(f.factor))


async def _unknown_skus(conn: AsyncConnection, skus: list[str]) -> set[str]:
    rows = await conn.execute(text("SELECT code FROM sku WHERE code = ANY(:c)"), {"c": skus})
    return set(skus) - set(rows.scalars())


@router.get("/v1/replenishment/factors", response_model=list[FactorRead], **guard(ANY))
async def get_factors(engine: EngineDep) -> list[FactorRead]:
    async with engine.connect() as conn:
        return [_factor_read(f) for f in await store.factors(conn)]


@router.put("/v1/replenishment/factors", response_model=list[FactorRead], **guard(Role.admin))
async def put_factors(
    engine: EngineDep, body: Annotated[list[FactorIn], Body(max_length=10_000)], audit: AuditDep
) -> list[FactorRead]:
    """Replace the whole set of seasonality and promotion factors. On a day, a SKU's own
    factors override its category's; several active at once multiply."""
    async with audit.change(engine, "replenishment_factors", "all", "put") as (conn, change):
        unknown = await _unknown_skus(conn, [f.sku for f in body if f.sku])
        for i, f in enumerate(body):
            if f.sku in unknown:
                raise _invalid(f"unknown SKU {f.sku!r}", ["body", i, "sku"])
        change.before = [_factor_read(f).model_dump(mode="json") for f in await store.factors(conn)]
        await store.replace_factors(conn, [_factor(f) for f in body])
        factors = [_factor_read(f) for f in await store.factors(conn)]
        change.after = [f.model_dump(mode="json") for f in factors]
    return factors


@router.put("/v1/replenishment/policies/{sku}/{location}", response_model=PolicyRead, **guard(Role.admin))
async def put_policy(
    sku: str, location: str, body: PolicyIn, engine: EngineDep, audit: AuditDep
) -> PolicyRead:
    """Safety stock, review days and the preferred supplier of one SKU at one location."""
    async with audit.change(engine, "replenishment_policy", f"{sku}/{location}", "put") as (conn, change):
        kind = (await conn.execute(text("SELECT kind FROM sku WHERE code = :c"), {"c": sku})).scalar()
        if kind != "simple":
            raise not_found(f"SKU {sku}")
        loc = (
            await conn.execute(text("SELECT type FROM location WHERE code = :c"), {"c": location})
        ).scalar()
        if loc in (None, "virtual", "dropship"):
            raise not_found(f"location {location}")
        if body.supplier is not None:
            known = await conn.execute(text("SELECT 1 FROM supplier WHERE code = :c"), {"c": body.supplier})
            if known.first() is None:
                raise _invalid(f"unknown supplier {body.supplier!r}", ["body", "supplier"])
        change.before = await store.policy(conn, sku, location)
        await store.upsert_policy(conn, sku, location, body.safety_stock, body.review_days, body.supplier)
        change.after = body.model_dump(mode="json")
    return PolicyRead(sku=sku, location=location, **body.model_dump())


# -- runs -------------------------------------------------------------------------------------


async def _run(engine: EngineDep, run_id: str) -> RunRead | None:
    async with engine.connect() as conn:
        row = await store.run_row(conn, run_id)
    if row is None:
        return None
    return RunRead(workflow_id=replenishment_workflow_id(run_id), **row._mapping)


@router.post(
    "/v1/replenishment/run",
    status_code=202,
    response_model=RunRead,
    **guard(Role.admin, idempotency="optional"),
)
async def run(body: RunIn, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep) -> RunRead:
    """Start a run now. The same `run_id` again meets the same run: nothing is drafted twice."""
    workflow_id = replenishment_workflow_id(body.run_id)
    await start(
        temporal,
        REPLENISHMENT_WORKFLOW,
        ReplenishmentInput(body.run_id),
        id=workflow_id,
        task_queue=settings.task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.OMNI_STATUS, "received")]),
    )
    found = await _run(engine, body.run_id)
    return found or RunRead(run_id=body.run_id, workflow_id=workflow_id, status="requested")


@router.get("/v1/replenishment/runs/{run_id}", response_model=RunRead, **guard(*NOT_CHANNEL))
async def get_run(run_id: str, engine: EngineDep) -> RunRead:
    found = await _run(engine, run_id)
    if found is None:
        raise not_found(f"replenishment run {run_id}")
    return found


# -- simulation -------------------------------------------------------------------------------


def _proposed(change: SimPolicyIn, current: Policy) -> Policy:
    factors = current.factors if change.factors is None else Factors(_factor(f) for f in change.factors)
    return Policy(
        demand_days=change.demand_days or current.demand_days,
        factors=factors,
        safety_stock=change.safety_stock,
        safety_stock_multiplier=change.safety_stock_multiplier,
        review_days=change.review_days,
        service_level=change.service_level,
    )


def _result(o: SimOutcome) -> SimResult:
    cover = o.average_days_of_cover
    return SimResult(
        stock_out_days=o.stock_out_days,
        units_short=o.units_short,
        average_days_of_cover=None if cover is None else round(cover, 2),
        purchase_value=o.purchase_value,
        orders=o.orders,
    )


@router.post("/v1/replenishment/simulate", response_model=SimulateRead, **guard(Role.admin))
async def simulate_policy(body: SimulateIn, engine: EngineDep, settings: SettingsDep) -> SimulateRead:
    """Replay the last `days` days of recorded demand under the current policy and under the
    proposed one, from today's inventory position (domain.replenishment, "Simulation")."""
    today = _today()
    current_days = settings.replenishment_demand_days
    span = body.days + max(current_days, body.policy.demand_days or 0)
    async with engine.connect() as conn:
        points = await store.stock_points(conn, body.location)
        options = await store.supplier_options(conn)
        stored = await store.factors(conn, today - timedelta(days=span), today)
        daily = await store.daily_shipped(conn, today, span, body.location)
    items = []
    for p in points:
        option = choose_supplier(options.get(p.sku, ()), p.supplier)
        if option is not None:  # nothing could be ordered: left out of both
            items.append(SimItem(p, option, tuple(daily.get((p.sku, p.location)) or [0] * span)))
    current = Policy(current_days, Factors(stored))
    proposed = _proposed(body.policy, current)
    now = await asyncio.to_thread(simulate, items, body.days, current, today)
    then = await asyncio.to_thread(simulate, items, body.days, proposed, today)
    return SimulateRead(
        days=body.days, sku_locations=len(items), current=_result(now), proposed=_result(then)
    )

"""Cycle counts: each one a `count-{id}` workflow. The API records the count task (intake),
then only the workflow changes it."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import Field, model_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.auth import NOT_CHANNEL, Role, guard
from api.deps import EngineDep, SettingsDep, TemporalDep, built_in_loop
from api.pagination import PageDep, next_cursor
from api.problems import Problem, not_found
from api.process_steps import ProcessSteps
from api.schemas import Page, RequestModel, ResponseModel
from api.temporal import start
from models.count_intake import insert_count
from workflows import search_attributes as sa
from workflows.contracts import (
    CountedLine,
    CountState,
    CountTolerance,
    CycleCountInput,
    SubmitCount,
    count_workflow_id,
)

router = APIRouter(tags=["cycle counts"])
CODE = r"^[A-Za-z0-9._-]{1,64}$"


class CountCreate(RequestModel):
    id: str | None = Field(default=None, pattern=CODE, description="Your count number; generated if absent.")
    location: str = Field(pattern=CODE)
    skus: list[Annotated[str, Field(pattern=CODE)]] = Field(
        min_length=1, max_length=1000, json_schema_extra={"uniqueItems": True}
    )

    @model_validator(mode="after")
    def unique(self) -> CountCreate:
        if len(self.skus) != len(set(self.skus)):
            raise ValueError("each SKU once")
        return self


class CountLineRead(ResponseModel):
    sku: str
    lot: str
    expected: int | None
    counted: int | None
    variance: int | None
    variance_value: int | None
    within_tolerance: bool | None


class CountRead(ResponseModel):
    id: str
    location: str
    status: str
    workflow_id: str
    lines: list[CountLineRead]
    created_at: datetime
    submitted_at: datetime | None
    posted_at: datetime | None


async def _read(engine: EngineDep, count_id: str) -> CountRead:
    async with engine.connect() as conn:
        head = (
            await conn.execute(text("SELECT * FROM cycle_count WHERE id = :id"), {"id": count_id})
        ).first()
        if head is None:
            raise not_found(f"cycle count {count_id}")
        lines = await conn.execute(
            text("SELECT * FROM cycle_count_line WHERE count_id = :id ORDER BY sku, lot"), {"id": count_id}
        )
        return CountRead(**head._mapping, lines=[CountLineRead.model_validate(r._mapping) for r in lines])


async def _check_references(conn: AsyncConnection, body: CountCreate) -> None:
    """422 naming the field for an unknown (or virtual) location or an unknown (or kit) SKU."""
    loc = (
        await conn.execute(text("SELECT type FROM location WHERE code = :c"), {"c": body.location})
    ).scalar()
    if loc in (None, "virtual"):
        raise Problem(
            422,
            f"unknown location {body.location!r}",
            slug="validation-error",
            errors=[{"loc": ["body", "location"], "msg": f"unknown location {body.location!r}"}],
        )
    rows = await conn.execute(
        text("SELECT code FROM sku WHERE code = ANY(:c) AND kind = 'simple'"), {"c": body.skus}
    )
    known = set(rows.scalars())
    for i, sku in enumerate(body.skus):
        if sku not in known:
            raise Problem(
                422,
                f"unknown SKU {sku!r}",
                slug="validation-error",
                errors=[{"loc": ["body", "skus", i], "msg": f"unknown (or kit) SKU {sku!r}"}],
            )


@router.post(
    "/v1/cycle-counts",
    status_code=202,
    response_model=CountRead,
    responses={
        200: {"model": CountRead, "description": "The count already exists with the same location and SKUs."}
    },
    **guard(Role.warehouse, idempotency="optional"),
)
async def create_count(
    body: CountCreate, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> JSONResponse:
    """Open a count task for SKUs at a location. The same `id` again returns it (200)."""
    count_id = body.id or f"C{datetime.now().strftime('%Y%m%d')}-{secrets.token_hex(3).upper()}"  # noqa: DTZ005
    async with engine.begin() as conn:
        await _check_references(conn, body)
        if not await insert_count(conn, count_id, body.location, count_workflow_id(count_id), body.skus):
            existing = await _read(engine, count_id)
            if existing.location != body.location or {ln.sku for ln in existing.lines} != set(body.skus):
                raise Problem(409, f"cycle count {count_id} exists with other data", slug="conflict")
            return JSONResponse(existing.model_dump(mode="json"), status_code=200)
    count_input = CycleCountInput(
        id=count_id,
        location=body.location,
        tolerance=CountTolerance(settings.count_tolerance_units, settings.count_tolerance_value),
        approval_policy=settings.exception_policy("count_variance", "reject"),
    )
    await start(
        temporal,
        "CycleCount",
        count_input,
        id=count_workflow_id(count_id),
        task_queue=settings.task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.OMNI_STATUS, "open")]),
    )
    return JSONResponse((await _read(engine, count_id)).model_dump(mode="json"), status_code=202)


class CountedLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    counted: int = Field(ge=0, le=10_000_000)
    lot: str = Field(default="", max_length=64)


class SubmitBody(RequestModel):
    lines: list[CountedLineBody] = Field(min_length=1, max_length=1000)


StepsDep = Annotated[ProcessSteps, Depends(built_in_loop(ProcessSteps))]  # a count's one step route: submit


@router.post(
    "/v1/cycle-counts/{count_id}/submit",
    response_model=CountRead,
    **guard(Role.warehouse, idempotency="optional"),
)
async def submit_count(count_id: str, body: SubmitBody, steps: StepsDep) -> CountRead:
    """Submit counted quantities. Within tolerance posts at once (`posted`); over tolerance
    waits for an approver (`awaiting_approval`, a `count_variance` exception). 409 if not open."""
    await _read(steps.engine, count_id)
    req = SubmitCount([CountedLine(ln.sku, ln.counted, ln.lot) for ln in body.lines], actor=steps.actor)
    await steps.send(
        count_workflow_id(count_id), "submit", req, workflow="CycleCount", result_type=CountState
    )
    return await _read(steps.engine, count_id)


class Accuracy(ResponseModel):
    lines_counted: int
    lines_within_tolerance: int
    accuracy: float | None = Field(
        description="Share of counted lines within tolerance (null: nothing counted)."
    )


@router.get(
    "/v1/cycle-counts/accuracy",
    response_model=Accuracy,
    **guard(Role.warehouse, Role.approver, Role.finance, Role.readonly),
)
async def count_accuracy(
    engine: EngineDep,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
) -> Accuracy:
    """Inventory accuracy (for the KPI report): counted lines within tolerance / counted lines."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*) AS n, count(*) FILTER (WHERE l.within_tolerance) AS ok FROM cycle_count_line l "
                    "JOIN cycle_count c ON c.id = l.count_id WHERE l.within_tolerance IS NOT NULL "
                    "AND (CAST(:f AS timestamptz) IS NULL OR c.submitted_at >= :f) "
                    "AND (CAST(:t AS timestamptz) IS NULL OR c.submitted_at < :t)"
                ),
                {"f": from_, "t": to},
            )
        ).one()
    n, ok = int(row.n), int(row.ok)
    return Accuracy(lines_counted=n, lines_within_tolerance=ok, accuracy=round(ok / n, 4) if n else None)


# The statuses of the cycle_count table (models.operations).
CountStatus = Literal["open", "submitted", "awaiting_approval", "posted", "rejected", "cancelled"]


@router.get("/v1/cycle-counts", response_model=Page[CountRead], **guard(*NOT_CHANNEL))
async def list_counts(
    engine: EngineDep,
    page: PageDep,
    status: Annotated[CountStatus | None, Query()] = None,
) -> Page[CountRead]:
    after = str(page.after[0]) if page.after else ""
    async with engine.connect() as conn:
        ids = (
            (
                await conn.execute(
                    text(
                        "SELECT id FROM cycle_count WHERE id > :a AND (CAST(:s AS text) IS NULL OR status = :s) "
                        "ORDER BY id LIMIT :n"
                    ),
                    {"a": after, "s": status, "n": page.limit + 1},
                )
            )
            .scalars()
            .all()
        )
    items = [await _read(engine, i) for i in ids[: page.limit]]
    return Page(items=items, next_cursor=next_cursor(list(ids), page.limit, lambda i: [i]))


@router.get("/v1/cycle-counts/{count_id}", response_model=CountRead, **guard(*NOT_CHANNEL))
async def get_count(count_id: str, engine: EngineDep) -> CountRead:
    return await _read(engine, count_id)

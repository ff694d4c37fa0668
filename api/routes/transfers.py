"""Transfers between locations: each one a `transfer-{number}` workflow."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
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
from api.problems import Problem
from api.process_steps import ProcessSteps
from api.read_models.transfers import TransferRead, read_transfer, transfer_ids_after
from api.schemas import Page, RequestModel
from api.temporal import start
from models.transfer_intake import TransferIntakeLine, insert_transfer
from workflows import search_attributes as sa
from workflows.contracts import (
    ReceivedLine,
    ReceiveTransfer,
    ShipTransfer,
    TransferInput,
    TransferLineIn,
    TransferState,
    transfer_workflow_id,
)

router = APIRouter(tags=["transfers"])
CODE = r"^[A-Za-z0-9._-]{1,64}$"


class TransferLineCreate(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=1_000_000)
    lot: str = Field(default="", max_length=64)


class TransferCreate(RequestModel):
    number: str | None = Field(
        default=None, pattern=CODE, description="Your transfer number; generated if absent."
    )
    from_: str = Field(alias="from", pattern=CODE)
    to: str = Field(pattern=CODE)
    lines: list[TransferLineCreate] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def distinct(self) -> TransferCreate:
        if self.from_ == self.to:
            raise ValueError("from and to must be different locations")
        keys = [(ln.sku, ln.lot) for ln in self.lines]
        if len(keys) != len(set(keys)):
            raise ValueError("each SKU (and lot) once per transfer")
        return self


async def _check_references(conn: AsyncConnection, body: TransferCreate) -> None:
    """422 naming the field for an unknown (or virtual) location or an unknown simple SKU."""
    rows = await conn.execute(
        text("SELECT code, type FROM location WHERE code = ANY(:c)"), {"c": [body.from_, body.to]}
    )
    found = {r.code: r.type for r in rows}
    for field, code in (("from", body.from_), ("to", body.to)):
        if found.get(code) in (None, "virtual"):
            msg = f"unknown location {code!r}"
            raise Problem(422, msg, slug="validation-error", errors=[{"loc": ["body", field], "msg": msg}])
    skus = await conn.execute(
        text("SELECT code FROM sku WHERE code = ANY(:c) AND kind = 'simple'"),
        {"c": [ln.sku for ln in body.lines]},
    )
    known = set(skus.scalars())
    for i, ln in enumerate(body.lines):
        if ln.sku not in known:
            msg = f"unknown SKU {ln.sku!r}"
            raise Problem(
                422, msg, slug="validation-error", errors=[{"loc": ["body", "lines", i, "sku"], "msg": msg}]
            )


def _same(existing: TransferRead, body: TransferCreate) -> bool:
    """Whether a transfer already recorded under this number is the one asked for again."""
    return (existing.from_location, existing.to_location) == (body.from_, body.to) and sorted(
        (ln.sku, ln.lot, ln.qty) for ln in existing.lines
    ) == sorted((ln.sku, ln.lot, ln.qty) for ln in body.lines)


@router.post(
    "/v1/transfers",
    status_code=202,
    response_model=TransferRead,
    responses={
        200: {"model": TransferRead, "description": "The transfer already exists with the same data."}
    },
    **guard(Role.warehouse, idempotency="optional"),
)
async def create_transfer(
    body: TransferCreate, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> JSONResponse:
    """Request a transfer and start its workflow. The API records the request (status
    `requested`); from then on only the workflow changes it. The same `number` twice
    returns the existing transfer (200)."""
    number = body.number or f"T{datetime.now().strftime('%Y%m%d')}-{secrets.token_hex(3).upper()}"  # noqa: DTZ005
    workflow_id = transfer_workflow_id(number)
    lines = [TransferIntakeLine(ln.sku, ln.lot, ln.qty) for ln in body.lines]
    async with engine.begin() as conn:
        await _check_references(conn, body)
        if not await insert_transfer(conn, number, body.from_, body.to, workflow_id, lines):
            existing = await read_transfer(engine, number)
            if not _same(existing, body):
                raise Problem(409, f"transfer {number} exists with other data", slug="conflict")
            return JSONResponse(existing.model_dump(mode="json"), status_code=200)
    transfer_input = TransferInput(
        number=number,
        from_location=body.from_,
        to_location=body.to,
        lines=[TransferLineIn(ln.sku, ln.qty, ln.lot) for ln in body.lines],
        discrepancy_policy=settings.exception_policy("receipt_discrepancy", "write_off"),
    )
    await start(
        temporal,
        "Transfer",
        transfer_input,
        id=workflow_id,
        task_queue=settings.task_queue,
        search_attributes=sa_pairs("requested"),
    )
    return JSONResponse((await read_transfer(engine, number)).model_dump(mode="json"), status_code=202)


def sa_pairs(status: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([SearchAttributePair(sa.OMNI_STATUS, status)])


# The statuses of the transfer table (models.operations).
TransferStatus = Literal["requested", "shipped", "received", "discrepancy", "completed", "cancelled"]


@router.get("/v1/transfers", response_model=Page[TransferRead], **guard(*NOT_CHANNEL))
async def list_transfers(
    engine: EngineDep,
    page: PageDep,
    status: Annotated[TransferStatus | None, Query()] = None,
) -> Page[TransferRead]:
    after = str(page.after[0]) if page.after else ""
    ids = await transfer_ids_after(engine, after, status, page.limit)
    items = [await read_transfer(engine, i) for i in ids[: page.limit]]
    return Page(items=items, next_cursor=next_cursor(ids, page.limit, lambda i: [i]))


@router.get("/v1/transfers/{number}", response_model=TransferRead, **guard(*NOT_CHANNEL))
async def get_transfer(number: str, engine: EngineDep) -> TransferRead:
    return await read_transfer(engine, number)


class ShipBody(RequestModel):
    carrier: str = Field(default="", max_length=64)
    tracking: str = Field(default="", max_length=128)


class ReceiveLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty_received: int = Field(ge=0)
    qty_damaged: int = Field(default=0, ge=0)
    lot: str = Field(default="", max_length=64)


class ReceiveBody(RequestModel):
    lines: list[ReceiveLineBody] = Field(min_length=1, max_length=500)


@dataclass
class TransferSteps(ProcessSteps):
    """A transfer's step routes: the transfer must exist (404), then its workflow takes the update."""

    async def take(self, number: str, name: str, arg: object) -> TransferRead:
        await read_transfer(self.engine, number)
        await self.send(
            transfer_workflow_id(number), name, arg, workflow="Transfer", result_type=TransferState
        )
        return await read_transfer(self.engine, number)


StepsDep = Annotated[TransferSteps, Depends(built_in_loop(TransferSteps))]


@router.post(
    "/v1/transfers/{number}/ship",
    response_model=TransferRead,
    **guard(Role.warehouse, idempotency="optional"),
)
async def ship_transfer(number: str, body: ShipBody, steps: StepsDep) -> TransferRead:
    """Sellable at the source → in transit. 409 if it is not waiting to ship."""
    return await steps.take(number, "ship", ShipTransfer(body.carrier, body.tracking, steps.actor))


@router.post(
    "/v1/transfers/{number}/receive",
    response_model=TransferRead,
    **guard(Role.warehouse, idempotency="optional"),
)
async def receive_transfer(number: str, body: ReceiveBody, steps: StepsDep) -> TransferRead:
    """In transit → sellable (or damaged). Short or damaged lines open a `receipt_discrepancy`."""
    lines = [ReceivedLine(ln.sku, ln.qty_received, ln.qty_damaged, ln.lot) for ln in body.lines]
    return await steps.take(number, "receive", ReceiveTransfer(lines, steps.actor))

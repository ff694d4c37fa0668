"""Warehouse work on order shipments: pick waves, and pick → pack → ship, each a validated
update of the shipment's order workflow (its id is the order's `workflow_id`, which the
shipment's id begins with), answered from the update's result."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import Field, JsonValue
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import ANY, CurrentPrincipal, Role, guard
from api.deps import EngineDep, built_in_loop
from api.problems import Problem
from api.read_models.shipments import open_pick_lines, shipment
from api.routes.orders import CODE, MAX_QTY, by
from api.schemas import Page, RequestModel, ResponseModel
from api.schemas_orders import ShipmentRead
from api.shipment_steps import ShipmentSteps
from domain.waves import CARRIER_LIMITS, PickLine, PickTask, Wave, build_waves
from workflows.contracts import (
    PackageIn,
    PackRequest,
    PickedLine,
    PickRequest,
    ShipRequest,
)

router = APIRouter(tags=["shipments"])


# -- reading -------------------------------------------------------------------------


@router.get("/v1/shipments/{shipment_id}", response_model=ShipmentRead, **guard(ANY))
async def get_shipment(shipment_id: str, engine: EngineDep, principal: CurrentPrincipal) -> ShipmentRead:
    """One shipment (channel keys: of their own channel's orders)."""
    return await shipment(engine, shipment_id, principal)


# -- pick waves ----------------------------------------------------------------------


class WaveShipmentLine(ResponseModel):
    line: str
    sku: str
    qty: int


class WaveShipment(ResponseModel):
    id: str
    order_id: str
    created_at: datetime
    lines: list[WaveShipmentLine]


class PickListLineRead(ResponseModel):
    sku: str
    lot: str
    qty: int


class WaveRead(ResponseModel):
    id: str
    location: str
    number: int
    promise: str
    shipments: list[WaveShipment]
    pick_list: list[PickListLineRead]
    lines: int


def _wave_read(w: Wave, heads: dict[str, Any], lines: dict[str, list[WaveShipmentLine]]) -> WaveRead:
    return WaveRead(
        id=w.id,
        location=w.location,
        number=w.number,
        promise=w.promise,
        lines=w.lines,
        shipments=[
            WaveShipment(
                id=sid, order_id=heads[sid].order_id, created_at=heads[sid].created_at, lines=lines[sid]
            )
            for sid in w.shipments
        ],
        pick_list=[PickListLineRead(sku=p.sku, lot=p.lot, qty=p.qty) for p in w.pick_list],
    )


async def _pick_work(engine: AsyncEngine, location: str | None, max_lines: int) -> tuple[list[WaveRead], str]:
    """The open pick work in waves, and its entity tag (the same work, the same tag)."""
    rows = await open_pick_lines(engine, location)
    heads: dict[str, Any] = {}
    lines: dict[str, list[WaveShipmentLine]] = defaultdict(list)
    for r in rows:
        heads.setdefault(r.id, r)
        lines[r.id].append(WaveShipmentLine(line=r.line, sku=r.sku, qty=r.qty))
    tasks = [
        PickTask(
            shipment=sid,
            location=h.location,
            created_at=h.created_at,
            promise=h.promise,
            lines=tuple(PickLine(ln.sku, ln.qty) for ln in lines[sid]),
        )
        for sid, h in heads.items()
    ]
    waves = build_waves(tasks, max_lines_per_wave=max_lines)
    seen = hashlib.blake2b(repr((max_lines, [tuple(r) for r in rows])).encode(), digest_size=12)
    return [_wave_read(w, heads, lines) for w in waves], f'W/"{seen.hexdigest()}"'


@router.get(
    "/v1/pick-tasks",
    response_model=Page[WaveRead],
    responses={304: {"description": "`If-None-Match` named the work as it still is after `wait` seconds."}},
    **guard(Role.warehouse),
)
async def pick_tasks(
    request: Request,
    engine: EngineDep,
    principal: CurrentPrincipal,
    response: Response,
    location: Annotated[str | None, Query(max_length=64, description="One location; all if absent.")] = None,
    max_lines: Annotated[int, Query(ge=1, le=500, description="Pick lines per wave at most.")] = 50,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=20,
            description="With If-None-Match: seconds to wait for the work to differ from that tag "
            "before answering 304 (a long poll instead of polling).",
        ),
    ] = 0,
    if_none_match: Annotated[str | None, Header(max_length=64)] = None,
) -> Page[WaveRead] | Response:
    """Open pick work (stock shipments waiting to be picked) in waves: express before standard,
    then oldest first; one summed pick list per wave (domain/waves.py). All waves, one page.
    The answer's ETag names the work; sent back as If-None-Match with `wait`, the answer comes
    as soon as the work differs (a new shipment, one picked) or 304 after `wait` seconds; such
    a wait counts against the key's long-poll limits, as the availability feed's (429 past them)."""
    wakeups = request.app.state.pick_work_wakeups
    mark = wakeups.mark(location)  # before the read: a change committed after it is announced after
    items: list[WaveRead] = []
    if wait > 0 and if_none_match and wakeups.unchanged(mark, max_lines, if_none_match):
        tag = if_none_match  # nothing announced since that tag was read: straight to the wait
    else:
        items, tag = await _pick_work(engine, location, max_lines)
        wakeups.seen(mark, max_lines, tag)
    if tag == if_none_match and wait > 0:
        async with request.app.state.rate_limits.long_poll(request, principal.key_id):
            deadline = time.monotonic() + wait
            while tag == if_none_match and await wakeups.wait(mark, deadline - time.monotonic()):
                mark = wakeups.mark(location)
                items, tag = await _pick_work(engine, location, max_lines)
                wakeups.seen(mark, max_lines, tag)
    if tag == if_none_match:
        return Response(status_code=304, headers={"ETag": tag})
    response.headers["ETag"] = tag
    return Page(items=items, next_cursor=None)


# -- pick, pack, ship ----------------------------------------------------------------


class PickLineIn(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(ge=0, le=MAX_QTY)
    lot: str = Field(default="", max_length=64)


class PickBody(RequestModel):
    lines: list[PickLineIn] = Field(min_length=1, max_length=500)
    short_reason: Literal["missing", "damaged"] = Field(
        default="missing", description="Where units not picked go: missing (count loss) or damaged."
    )


class PackLineIn(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)


class PackageBody(RequestModel):
    weight_g: int = Field(gt=0, le=10_000_000)
    length_mm: int = Field(gt=0, le=100_000)
    width_mm: int = Field(gt=0, le=100_000)
    height_mm: int = Field(gt=0, le=100_000)
    lines: list[PackLineIn] = Field(min_length=1, max_length=500)


class PackBody(RequestModel):
    packages: list[PackageBody] = Field(min_length=1, max_length=100)
    service: str = Field(
        default="ground",
        max_length=64,
        json_schema_extra={"enum": list[JsonValue](sorted(CARRIER_LIMITS))},
        description=f"One of {sorted(CARRIER_LIMITS)}.",
    )


class ShipBody(RequestModel):
    carrier: str = Field(min_length=1, max_length=64)
    service: str = Field(default="ground", min_length=1, max_length=64)
    tracking: str = Field(default="", max_length=128)


StepsDep = Annotated[ShipmentSteps, Depends(built_in_loop(ShipmentSteps))]


@router.post(
    "/v1/shipments/{shipment_id}/pick",
    response_model=ShipmentRead,
    **guard(Role.warehouse, idempotency="optional"),
)
async def pick_shipment(shipment_id: str, body: PickBody, steps: StepsDep) -> ShipmentRead:
    """Report what was picked. Less than asked is a short pick: the missing units leave the
    shelf's count (or go to damaged) and are sourced again, or wait in `short_pick`."""
    request = PickRequest(
        shipment_id,
        [PickedLine(ln.sku, ln.qty, ln.lot) for ln in body.lines],
        body.short_reason,
        by(steps.who),
        steps.actor,
    )
    return await steps.take(shipment_id, "pick", request)


@router.post(
    "/v1/shipments/{shipment_id}/pack",
    response_model=ShipmentRead,
    **guard(Role.warehouse, idempotency="optional"),
)
async def pack_shipment(shipment_id: str, body: PackBody, steps: StepsDep) -> ShipmentRead:
    """Packages with their contents; what is packed must be exactly what was picked, and each
    package must fit the carrier service (weight, length, girth)."""
    if body.service not in CARRIER_LIMITS:
        raise Problem(
            422,
            f"unknown service {body.service!r}",
            slug="validation-error",
            errors=[{"loc": ["body", "service"], "msg": f"must be one of {sorted(CARRIER_LIMITS)}"}],
        )
    packages = []
    for pkg in body.packages:
        contents: dict[str, int] = defaultdict(int)
        for ln in pkg.lines:
            contents[ln.sku] += ln.qty
        packages.append(PackageIn(pkg.weight_g, pkg.length_mm, pkg.width_mm, pkg.height_mm, dict(contents)))
    request = PackRequest(shipment_id, packages, body.service, steps.actor)
    return await steps.take(shipment_id, "pack", request)


@router.post(
    "/v1/shipments/{shipment_id}/ship",
    response_model=ShipmentRead,
    **guard(Role.warehouse, idempotency="optional"),
)
async def ship_shipment(shipment_id: str, body: ShipBody, steps: StepsDep) -> ShipmentRead:
    """Hand a packed shipment to the carrier (409 unless it is packed)."""
    request = ShipRequest(shipment_id, body.carrier, body.service, body.tracking, steps.actor)
    return await steps.take(shipment_id, "ship", request)

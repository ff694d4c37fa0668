"""Stock: adjustments and status moves (synchronous writes through the inventory core),
the per-SKU view and the immutable movement ledger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from pydantic import Field, field_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from api.audit_trail import AuditDep, AuditTrail
from api.auth import ANY, NOT_CHANNEL, CurrentPrincipal, Role, guard
from api.deps import EngineDep
from api.domain_errors import as_problem
from api.pagination import PageDep, next_cursor
from api.problems import not_found
from api.schemas import Page, RequestModel, ResponseModel
from domain.errors import DomainError
from models import stock
from models.availability import load_snapshot
from models.inventory import STATUSES

router = APIRouter(tags=["inventory"])

Status = Literal["sellable", "in_transit", "inbound", "returns", "quarantine", "damaged"]
AdjustReason = Literal["count", "damage", "found", "initial", "correction", "theft", "expired", "other"]
CODE = r"^[A-Za-z0-9._-]{1,64}$"
_FIELDS: dict[str, list[str | int]] = {"SKU": ["body", "sku"], "location": ["body", "location"]}


class AdjustmentCreate(RequestModel):
    sku: str = Field(pattern=CODE)
    location: str = Field(pattern=CODE)
    status: Status = "sellable"
    delta: int = Field(
        ge=-10_000_000,
        le=10_000_000,
        json_schema_extra={"not": {"const": 0}},
        description="Units added (positive) or removed (negative); not 0.",
    )
    reason: AdjustReason
    lot: str = Field(default="", max_length=64)
    expires_at: datetime | None = None
    note: str = Field(default="", max_length=500)

    @field_validator("delta")
    @classmethod
    def not_zero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("delta must not be 0")
        if abs(v) > 10_000_000:
            raise ValueError("delta is unreasonably large")
        return v


class StatusMoveCreate(RequestModel):
    sku: str = Field(pattern=CODE)
    location: str = Field(pattern=CODE)
    from_status: Status
    to_status: Status
    qty: int = Field(gt=0, le=10_000_000)
    lot: str = Field(default="", max_length=64)
    reason: str = Field(default="status_move", max_length=32)


class BucketLine(ResponseModel):
    sku: str
    location: str
    status: str
    lot: str
    qty: int


class StockChange(ResponseModel):
    id: str = Field(description="The operation's business key.")
    kind: str
    replayed: bool
    balances: list[BucketLine]


async def _balances_after(conn: AsyncConnection, moves: list[stock.Move]) -> list[BucketLine]:
    keys = {
        (m.sku, loc, st, m.lot)
        for m in moves
        for loc, st in ((m.from_location, m.from_status), (m.to_location, m.to_status))
    }
    rows = await conn.execute(
        text(
            "SELECT sku, location, status, lot, qty FROM stock_balance WHERE (sku, location, status, lot) IN "
            "(SELECT * FROM unnest(CAST(:s AS text[]), CAST(:l AS text[]), CAST(:st AS text[]), CAST(:lot AS text[])))"
            " ORDER BY location, status, lot"
        ),
        {
            "s": [k[0] for k in keys],
            "l": [k[1] for k in keys],
            "st": [k[2] for k in keys],
            "lot": [k[3] for k in keys],
        },
    )
    return [BucketLine.model_validate(r._mapping) for r in rows]


def _buckets_before(after: list[BucketLine], moves: list[stock.Move]) -> list[dict[str, Any]]:
    """Each bucket as it was before the moves (its quantity after, less what they moved in)."""
    moved: dict[tuple[str, str, str, str], int] = {}
    for m in moves:
        into, out = (m.sku, m.to_location, m.to_status, m.lot), (m.sku, m.from_location, m.from_status, m.lot)
        moved[into], moved[out] = moved.get(into, 0) + m.qty, moved.get(out, 0) - m.qty
    return [
        {**b.model_dump(), "qty": b.qty - moved.get((b.sku, b.location, b.status, b.lot), 0)} for b in after
    ]


def _real(m: stock.Move) -> str:
    """The real location of an adjustment (the other side is the virtual `adjustment`)."""
    return m.to_location if m.from_location == "adjustment" else m.from_location


async def _apply(
    engine: EngineDep,
    audit: AuditTrail,
    key: str,
    kind: str,
    moves: list[stock.Move],
    reason: str,
    ref: str = "",
) -> StockChange:
    """The moves and their audit row (object: the SKU at the location), in one transaction; a
    replay of the operation's key changes nothing and records nothing."""
    action = "adjust" if kind == "adjustment" else "move"
    try:
        where = f"{moves[0].sku}@{moves[0].from_location if kind == 'status_move' else _real(moves[0])}"
        async with audit.change(engine, "stock", where, action) as (conn, change):
            result = await stock.apply_moves(conn, key, kind, moves, reason=reason, ref=ref)
            balances = await _balances_after(conn, moves)
            change.happened, change.key = not result.replayed, key
            change.before = {"buckets": _buckets_before(balances, moves)}
            change.after = {"buckets": [b.model_dump() for b in balances], "reason": reason, "operation": key}
    except DomainError as exc:
        raise as_problem(exc, _FIELDS) from None
    return StockChange(id=key, kind=kind, replayed=result.replayed, balances=balances)


@router.post(
    "/v1/inventory/adjustments",
    status_code=201,
    response_model=StockChange,
    **guard(Role.warehouse, idempotency="required"),
    responses={409: {"description": "the bucket would go negative (body has the current quantity)"}},
)
async def create_adjustment(
    body: AdjustmentCreate,
    engine: EngineDep,
    principal: CurrentPrincipal,
    audit: AuditDep,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key")],
) -> StockChange:
    """Add or remove units in one bucket, with a reason. The movement ledger records it as a
    move from/to the virtual `adjustment` location."""
    move = stock.adjustment_move(body.sku, body.location, body.status, body.delta, body.lot, body.expires_at)
    key = f"adjustment:{principal.key_id}:{idempotency_key}"
    return await _apply(engine, audit, key, "adjustment", [move], body.reason, body.note)


@router.post(
    "/v1/inventory/moves",
    status_code=201,
    response_model=StockChange,
    **guard(Role.warehouse, idempotency="optional"),
)
async def create_status_move(
    body: StatusMoveCreate,
    engine: EngineDep,
    principal: CurrentPrincipal,
    audit: AuditDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> StockChange:
    """Move units between statuses at one location (e.g. sellable → quarantine). Reserved
    units cannot be moved out of sellable."""
    move = stock.Move(
        body.sku, body.qty, body.location, body.from_status, body.location, body.to_status, body.lot
    )
    key = f"move:{principal.key_id}:{idempotency_key or uuid.uuid4().hex}"
    return await _apply(engine, audit, key, "status_move", [move], body.reason, "")


class MovementRead(ResponseModel):
    id: int
    op_key: str
    sku: str
    lot: str
    from_location: str
    from_status: str
    to_location: str
    to_status: str
    qty: int
    reason: str
    ref: str
    created_at: datetime


@router.get("/v1/inventory/movements", response_model=Page[MovementRead], **guard(*NOT_CHANNEL))
async def list_movements(
    engine: EngineDep,
    page: PageDep,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    location: Annotated[str | None, Query(max_length=64)] = None,
    ref: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[MovementRead]:
    """The immutable movement ledger, oldest first; filter by SKU, location (either side) or ref."""
    after = int(page.after[0]) if page.after else 0
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT * FROM stock_move WHERE id > :after AND (CAST(:sku AS text) IS NULL OR sku = :sku) AND "
                    "(CAST(:loc AS text) IS NULL OR from_location = :loc OR to_location = :loc) AND "
                    "(CAST(:ref AS text) IS NULL OR ref = :ref) ORDER BY id LIMIT :lim"
                ),
                {"after": after, "sku": sku, "loc": location, "ref": ref, "lim": page.limit + 1},
            )
        ).all()
    items = [MovementRead.model_validate(r._mapping) for r in rows[: page.limit]]
    return Page(items=items, next_cursor=next_cursor(list(rows), page.limit, lambda r: [r.id]))


class LocationStockRead(ResponseModel):
    location: str
    on_hand: int = Field(description="Sellable units (unexpired).")
    reserved: int
    available: int
    buckets: dict[str, int]
    lots: list[dict[str, object]] = Field(default_factory=list)


class SkuStockRead(ResponseModel):
    sku: str
    kind: str
    locations: list[LocationStockRead]
    available_to_promise: dict[str, int]


def _stock_by_location(rows: Sequence[Any]) -> dict[str, LocationStockRead]:
    """The SKU's balances per location: every bucket; on hand and reserved count sellable units
    that have not expired; the sellable lots with their expiry."""
    per: dict[str, LocationStockRead] = {}
    for r in rows:
        loc = per.setdefault(
            r.location,
            LocationStockRead(
                location=r.location, on_hand=0, reserved=0, available=0, buckets={s: 0 for s in STATUSES}
            ),
        )
        loc.buckets[r.status] += int(r.qty)
        if r.status == "sellable":
            if not r.expired:
                loc.on_hand += int(r.qty)
                loc.reserved += int(r.reserved)
            if r.lot:
                loc.lots.append(
                    {
                        "lot": r.lot,
                        "expires_at": r.expires_at,
                        "qty": int(r.qty),
                        "reserved": int(r.reserved),
                        "expired": bool(r.expired),
                    }
                )
    for loc in per.values():
        loc.available = loc.on_hand - loc.reserved
    return per


@router.get("/v1/inventory/{sku}", response_model=SkuStockRead, **guard(ANY))
async def get_sku_stock(sku: str, engine: EngineDep, principal: CurrentPrincipal) -> SkuStockRead:
    """Per location: on hand, reserved, available and every bucket; ATP per channel (a
    channel key sees its own channel only)."""
    async with engine.connect() as conn:
        kind = (await conn.execute(text("SELECT kind FROM sku WHERE code = :c"), {"c": sku})).scalar()
        if kind is None:
            raise not_found(f"SKU {sku}")
        rows = (
            await conn.execute(
                text(
                    "SELECT location, status, lot, expires_at, qty, reserved, (expires_at IS NOT NULL AND "
                    "expires_at <= now()) AS expired FROM stock_balance WHERE sku = :s ORDER BY location, status, lot"
                ),
                {"s": sku},
            )
        ).all()
        snapshot = await load_snapshot(conn, [sku], with_kits=False)
    per = _stock_by_location(rows)
    channels = sorted(snapshot.channel_locations)
    if principal.role is Role.channel:
        channels = [c for c in channels if c == principal.channel]
    return SkuStockRead(
        sku=sku,
        kind=kind,
        locations=list(per.values()),
        available_to_promise={c: snapshot.atp(c, sku) for c in channels},
    )

"""The transfers API's read model: a `transfer` row with its lines, and the page of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.problems import not_found
from api.schemas import ResponseModel


class TransferLineRead(ResponseModel):
    sku: str
    lot: str
    qty: int
    shipped: int
    received: int
    damaged: int


class TransferRead(ResponseModel):
    id: str
    from_location: str
    to_location: str
    status: str
    workflow_id: str
    lines: list[TransferLineRead]
    created_at: datetime
    updated_at: datetime


async def read_transfer(engine: AsyncEngine, number: str) -> TransferRead:
    """One transfer; 404 if there is none."""
    async with engine.connect() as conn:
        head = (await conn.execute(text("SELECT * FROM transfer WHERE id = :id"), {"id": number})).first()
        if head is None:
            raise not_found(f"transfer {number}")
        lines = await conn.execute(
            text(
                "SELECT sku, lot, qty, shipped, received, damaged FROM transfer_line WHERE transfer_id = :id "
                "ORDER BY sku, lot"
            ),
            {"id": number},
        )
        return TransferRead(
            **head._mapping, lines=[TransferLineRead.model_validate(r._mapping) for r in lines]
        )


async def transfer_ids_after(engine: AsyncEngine, after: str, status: str | None, limit: int) -> list[str]:
    """Up to limit + 1 transfer numbers after `after`, in order (the extra one: there is a next page)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id FROM transfer WHERE id > :after AND (CAST(:st AS text) IS NULL OR status = :st) "
                "ORDER BY id LIMIT :lim"
            ),
            {"after": after, "st": status, "lim": limit + 1},
        )
        return list(rows.scalars().all())

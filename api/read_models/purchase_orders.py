"""The purchasing API's read model: a purchase order with its lines, receipts, bills, open
exceptions and timeline; the page of them; a supplier item."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.problems import not_found
from api.schemas_purchasing import PoLineRead, PoRead, SupplierItemRead
from models.purchase_orders import line_qty_of
from workflows.contracts import purchase_order_workflow_id

_HEAD = text("SELECT * FROM purchase_order WHERE number = :number")
_LINES = text("SELECT * FROM purchase_order_line WHERE po_number = :number ORDER BY sku")
_RECEIPTS = text(
    "SELECT receipt_number, status, lines, discrepancy, received_at FROM po_receipt"
    " WHERE po_number = :number ORDER BY received_at, receipt_number"
)
_BILLS = text(
    "SELECT invoice_number, status, lines, mismatches, total, created_at FROM vendor_bill"
    " WHERE po_number = :number ORDER BY created_at, invoice_number"
)
_HOLDS = text(
    "SELECT id, kind, status, opened_at, due_at, escalation_level, actions FROM exception"
    " WHERE subject_type = 'purchase_order' AND subject_id = :number AND status = 'open' ORDER BY opened_at"
)
_TIMELINE = text("SELECT event, detail, at FROM po_event WHERE po_number = :number ORDER BY id")


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


def _line(r: Any) -> PoLineRead:
    q = line_qty_of(r)
    return PoLineRead(**{**dict(r._mapping), "inbound": q.open})


async def read_po_in(conn: AsyncConnection, number: str) -> PoRead:
    head = (await conn.execute(_HEAD, {"number": number})).first()
    if head is None:
        raise not_found(f"purchase order {number}")
    params = {"number": number}
    return PoRead(
        **dict(head._mapping),
        workflow_id=purchase_order_workflow_id(number),
        lines=[_line(r) for r in await conn.execute(_LINES, params)],
        receipts=_rows(await conn.execute(_RECEIPTS, params)),
        bills=_rows(await conn.execute(_BILLS, params)),
        holds=_rows(await conn.execute(_HOLDS, params)),
        timeline=_rows(await conn.execute(_TIMELINE, params)),
    )


async def read_po(engine: AsyncEngine, number: str) -> PoRead:
    """One purchase order; 404 if there is none."""
    async with engine.connect() as conn:
        return await read_po_in(conn, number)


async def po_numbers_after(
    engine: AsyncEngine, after: str, status: str | None, supplier: str | None, limit: int
) -> list[str]:
    sql = text(
        "SELECT number FROM purchase_order WHERE number > :after"
        " AND (CAST(:status AS varchar) IS NULL OR status = :status)"
        " AND (CAST(:supplier AS varchar) IS NULL OR supplier = :supplier) ORDER BY number LIMIT :limit"
    )
    params = {"after": after, "status": status, "supplier": supplier, "limit": limit + 1}
    async with engine.connect() as conn:
        return list((await conn.execute(sql, params)).scalars())


async def read_supplier_item(conn: AsyncConnection, supplier: str, sku: str) -> SupplierItemRead:
    sql = text(
        "SELECT i.supplier, i.sku, i.cost, i.currency, i.moq, i.order_multiple, i.inspect,"
        " coalesce(i.lead_time_days, s.lead_time_days) AS lead_time_days FROM supplier_item i"
        " JOIN supplier s ON s.code = i.supplier WHERE i.supplier = :supplier AND i.sku = :sku"
    )
    row = (await conn.execute(sql, {"supplier": supplier, "sku": sku})).first()
    if row is None:
        raise not_found(f"item {sku} of supplier {supplier}")
    return SupplierItemRead(**dict(row._mapping))

"""The SQL of the purchase-order aggregate (purchase_order, purchase_order_line, po_receipt,
vendor_bill, po_event): the intake the API and replenishment record a new PO with, and what
the PO workflow's steps read and write inside their transaction, after `lock_po`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.purchasing import PoLineQty, SupplierTerms
from models import stock, timeline
from models.base import stored_row


@dataclass(frozen=True)
class PoIntakeLine:
    sku: str
    qty: int
    unit_cost: int


@dataclass(frozen=True)
class PoIntake:
    number: str
    supplier: str
    location: str
    currency: str
    expected_at: datetime
    request_hash: str
    source: str = "api"  # api | replenishment
    run_id: str | None = None
    lines: list[PoIntakeLine] = field(default_factory=list)

    @property
    def value(self) -> int:
        return sum(ln.qty * ln.unit_cost for ln in self.lines)


async def insert_po(conn: AsyncConnection, po: PoIntake) -> bool:
    """Record the PO (`draft`) and its lines, and put the ordered units in the location's
    `inbound` bucket in the same transaction (on order: counted by replenishment, not valued,
    not promisable); False if its number is already taken."""
    sql = text(
        "INSERT INTO purchase_order (number, supplier, location, status, currency, value, expected_at, source,"
        " run_id, request_hash, note, created_at, updated_at) VALUES (:number, :supplier, :location, 'draft',"
        " :currency, :value, :expected_at, :source, :run_id, :request_hash, '', now(), now())"
        " ON CONFLICT DO NOTHING RETURNING number"
    )
    params = {
        "number": po.number,
        "supplier": po.supplier,
        "location": po.location,
        "currency": po.currency,
        "value": po.value,
        "expected_at": po.expected_at,
        "source": po.source,
        "run_id": po.run_id,
        "request_hash": po.request_hash,
    }
    if (await conn.execute(sql, params)).first() is None:
        return False
    sql = text(
        "INSERT INTO purchase_order_line (po_number, sku, qty, unit_cost, received, damaged, quarantined, rejected,"
        " returned, closed, billed, billed_value) VALUES (:number, :sku, :qty, :unit_cost, 0, 0, 0, 0, 0, 0, 0, 0)"
    )
    for ln in po.lines:
        await conn.execute(
            sql, {"number": po.number, "sku": ln.sku, "qty": ln.qty, "unit_cost": ln.unit_cost}
        )
    moves = [stock.Move(ln.sku, ln.qty, "supplier", "virtual", po.location, "inbound") for ln in po.lines]
    ref = f"po-{po.number}"
    await stock.apply_moves(conn, f"{ref}:inbound", "purchasing", moves, reason="purchase_order", ref=ref)
    return True


async def request_hash_of(conn: AsyncConnection, number: str) -> str | None:
    sql = text("SELECT request_hash FROM purchase_order WHERE number = :number")
    return (await conn.execute(sql, {"number": number})).scalar()


async def supplier_terms(
    conn: AsyncConnection, supplier: str, skus: Sequence[str]
) -> dict[str, SupplierTerms]:
    """The supplier's terms for these SKUs (an item's own lead time, else the supplier's)."""
    sql = text(
        "SELECT i.sku, i.cost, i.currency, i.moq, i.order_multiple, coalesce(i.lead_time_days, s.lead_time_days)"
        " AS lead_time_days, i.inspect FROM supplier_item i JOIN supplier s ON s.code = i.supplier"
        " WHERE i.supplier = :supplier AND i.sku = ANY(:skus)"
    )
    rows = await conn.execute(sql, {"supplier": supplier, "skus": list(skus)})
    return {
        r.sku: SupplierTerms(r.sku, r.cost, r.currency, r.moq, r.order_multiple, r.lead_time_days, r.inspect)
        for r in rows
    }


# -- inside the PO's steps ---------------------------------------------------------------------


async def lock_po(conn: AsyncConnection, number: str) -> Row[Any] | None:
    """The PO row, locked until commit (the steps of one PO never interleave)."""
    sql = text("SELECT * FROM purchase_order WHERE number = :number FOR NO KEY UPDATE")
    return (await conn.execute(sql, {"number": number})).first()


async def step_result(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    return await timeline.step_result(conn, "po_event", key)


async def add_event(
    conn: AsyncConnection, number: str, key: str | None, event: str, detail: dict[str, Any]
) -> None:
    await timeline.add_event(conn, "po_event", number, key, event, detail)


@dataclass(frozen=True)
class PoLineRow:
    qty: PoLineQty
    tracking: str  # none | lot | serial
    inspect: bool
    promised_at: datetime | None


async def lines(conn: AsyncConnection, number: str, supplier: str) -> dict[str, PoLineRow]:
    sql = text(
        "SELECT l.*, s.tracking, coalesce(i.inspect, false) AS inspect FROM purchase_order_line l"
        " JOIN sku s ON s.code = l.sku LEFT JOIN supplier_item i ON i.supplier = :supplier AND i.sku = l.sku"
        " WHERE l.po_number = :number ORDER BY l.sku"
    )
    out: dict[str, PoLineRow] = {}
    for r in await conn.execute(sql, {"number": number, "supplier": supplier}):
        qty = line_qty_of(r)
        out[r.sku] = PoLineRow(qty, r.tracking, bool(r.inspect), r.promised_at)
    return out


def line_qty_of(row: Any) -> PoLineQty:
    """A PO line's quantities from a row that selects each PoLineQty field under its own name."""
    return PoLineQty(**{f.name: getattr(row, f.name) for f in fields(PoLineQty)})


async def write_line(conn: AsyncConnection, number: str, q: PoLineQty, *, billed_value: int = 0) -> None:
    sql = text(
        "UPDATE purchase_order_line SET confirmed = :confirmed, received = :received, damaged = :damaged,"
        " quarantined = :quarantined, rejected = :rejected, returned = :returned, closed = :closed,"
        " billed = :billed, billed_value = billed_value + :billed_value WHERE po_number = :number AND sku = :sku"
    )
    params = {
        "confirmed": q.confirmed,
        "received": q.received,
        "damaged": q.damaged,
        "quarantined": q.quarantined,
        "rejected": q.rejected,
        "returned": q.returned,
        "closed": q.closed,
        "billed": q.billed,
        "billed_value": billed_value,
    }
    await conn.execute(sql, {**params, "number": number, "sku": q.sku})


async def set_promised(conn: AsyncConnection, number: str, sku: str, promised_at: datetime | None) -> None:
    sql = text(
        "UPDATE purchase_order_line SET promised_at = :promised_at WHERE po_number = :number AND sku = :sku"
    )
    await conn.execute(sql, {"promised_at": promised_at, "number": number, "sku": sku})


async def set_status(conn: AsyncConnection, number: str, status: str, *, note: str | None = None) -> None:
    sql = text(
        "UPDATE purchase_order SET status = CAST(:status AS varchar), note = coalesce(CAST(:note AS varchar), note),"
        " updated_at = now(), sent_at = CASE WHEN CAST(:status AS varchar) = 'sent' THEN coalesce(sent_at, now())"
        " ELSE sent_at END, closed_at = CASE WHEN CAST(:status AS varchar) IN ('closed', 'cancelled')"
        " THEN coalesce(closed_at, now()) ELSE closed_at END WHERE number = :number"
    )
    await conn.execute(sql, {"status": status, "note": note, "number": number})


async def insert_receipt(
    conn: AsyncConnection,
    number: str,
    receipt: str,
    status: str,
    lines: list[Any],
    discrepancy: dict[str, Any],
) -> bool:
    """False when this receipt number was already recorded for the PO."""
    sql = text(
        "INSERT INTO po_receipt (po_number, receipt_number, status, lines, discrepancy, received_at) VALUES"
        " (:number, :receipt, :status, CAST(:lines AS jsonb), CAST(:discrepancy AS jsonb), now())"
        " ON CONFLICT DO NOTHING RETURNING receipt_number"
    )
    params = {
        "number": number,
        "receipt": receipt,
        "status": status,
        "lines": json.dumps(lines),
        "discrepancy": json.dumps(discrepancy),
    }
    return (await conn.execute(sql, params)).first() is not None


async def set_receipt_status(conn: AsyncConnection, number: str, receipt: str, status: str) -> None:
    sql = text(
        "UPDATE po_receipt SET status = :status WHERE po_number = :number AND receipt_number = :receipt"
    )
    await conn.execute(sql, {"status": status, "number": number, "receipt": receipt})


async def insert_bill(
    conn: AsyncConnection,
    supplier: str,
    invoice: str,
    number: str,
    status: str,
    lines: list[Any],
    mismatches: list[Any],
    total: int,
) -> bool:
    """False when the supplier's invoice number was already entered (each posts once)."""
    sql = text(
        "INSERT INTO vendor_bill (supplier, invoice_number, po_number, status, lines, mismatches, total, created_at)"
        " VALUES (:supplier, :invoice, :number, :status, CAST(:lines AS jsonb), CAST(:mismatches AS jsonb), :total,"
        " now()) ON CONFLICT DO NOTHING RETURNING invoice_number"
    )
    params = {
        "supplier": supplier,
        "invoice": invoice,
        "number": number,
        "status": status,
        "lines": json.dumps(lines),
        "mismatches": json.dumps(mismatches),
        "total": total,
    }
    return (await conn.execute(sql, params)).first() is not None


async def bill_of(conn: AsyncConnection, supplier: str, invoice: str) -> Row[Any] | None:
    sql = text("SELECT * FROM vendor_bill WHERE supplier = :supplier AND invoice_number = :invoice")
    return (await conn.execute(sql, {"supplier": supplier, "invoice": invoice})).first()


async def set_bill_status(
    conn: AsyncConnection, supplier: str, invoice: str, status: str, total: int
) -> None:
    sql = text(
        "UPDATE vendor_bill SET status = :status, total = :total WHERE supplier = :supplier AND invoice_number = :invoice"
    )
    await conn.execute(sql, {"status": status, "total": total, "supplier": supplier, "invoice": invoice})


async def supplier_item_terms(conn: AsyncConnection, supplier: str, sku: str) -> dict[str, Any] | None:
    """The item's own terms as stored (None: the supplier has no such item)."""
    columns = "cost, currency, moq, order_multiple, lead_time_days, inspect"
    return await stored_row(conn, "supplier_item", columns, supplier=supplier, sku=sku)


async def upsert_supplier_item(
    conn: AsyncConnection, supplier: str, sku: str, terms: SupplierTerms, lead_time_days: int | None
) -> None:
    """A supplier's terms for a SKU, created or replaced (`lead_time_days` None: the supplier's)."""
    sql = text(
        "INSERT INTO supplier_item (supplier, sku, cost, currency, moq, order_multiple, lead_time_days, inspect)"
        " VALUES (:supplier, :sku, :cost, :currency, :moq, :order_multiple, :lead_time_days, :inspect)"
        " ON CONFLICT (supplier, sku) DO UPDATE SET cost = EXCLUDED.cost, currency = EXCLUDED.currency,"
        " moq = EXCLUDED.moq, order_multiple = EXCLUDED.order_multiple, lead_time_days = EXCLUDED.lead_time_days,"
        " inspect = EXCLUDED.inspect"
    )
    params = {
        "supplier": supplier,
        "sku": sku,
        "cost": terms.cost,
        "currency": terms.currency,
        "moq": terms.moq,
        "order_multiple": terms.order_multiple,
        "lead_time_days": lead_time_days,
        "inspect": terms.inspect,
    }
    await conn.execute(sql, params)


async def kinds_of(
    conn: AsyncConnection, supplier: str, location: str, skus: Sequence[str]
) -> dict[str, Any]:
    """What a new PO names, as the database knows it: the supplier, the location's type, the SKUs' kinds."""
    sql = text(
        "SELECT (SELECT code FROM supplier WHERE code = :supplier) AS supplier,"
        " (SELECT type FROM location WHERE code = :location) AS location_type,"
        " (SELECT coalesce(json_object_agg(code, kind), '{}') FROM sku WHERE code = ANY(:skus)) AS skus"
    )
    row = (await conn.execute(sql, {"supplier": supplier, "location": location, "skus": list(skus)})).one()
    return dict(row._mapping)

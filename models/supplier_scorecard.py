"""The facts of supplier scorecards, read in two queries (the PO lines with the moment each
was complete; the POs with their first receipt and quoted lead time) for the purchase orders
sent in a window; domain.supplier_scorecard does the arithmetic. The API's
`GET /v1/suppliers/{code}/scorecard` reads one supplier; a KPI report may read them all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.supplier_scorecard import LineFacts, PoFacts, Scorecard, scorecard

# Both read the POs sent in [start, end) of the suppliers asked for (all when NULL). Per line:
# the first receipt at which the cumulative units received reached the expected.
_LINES = text(
    "WITH po AS (SELECT number, supplier, status, sent_at, expected_at FROM purchase_order"
    " WHERE sent_at >= :start AND sent_at < :end"
    " AND (CAST(:suppliers AS varchar[]) IS NULL OR supplier = ANY(CAST(:suppliers AS varchar[]))))"
    ", got AS (SELECT r.po_number, e->>'sku' AS sku, r.received_at,"
    " sum(coalesce((e->>'qty_received')::int, 0)) OVER (PARTITION BY r.po_number, e->>'sku'"
    " ORDER BY r.received_at, r.receipt_number) AS cumulative"
    " FROM po_receipt r JOIN po ON po.number = r.po_number, jsonb_array_elements(r.lines) e)"
    " SELECT po.supplier, l.po_number, l.sku, coalesce(l.confirmed, l.qty) AS expected, l.received,"
    " l.damaged, l.rejected, coalesce(l.promised_at, po.expected_at) AS due_at, po.status,"
    " (SELECT min(g.received_at) FROM got g WHERE g.po_number = l.po_number AND g.sku = l.sku"
    " AND g.cumulative >= coalesce(l.confirmed, l.qty)) AS complete_at"
    " FROM purchase_order_line l JOIN po ON po.number = l.po_number ORDER BY l.po_number, l.sku"
)

# Per PO: the first receipt, how many, and the longest quoted lead time of its lines.
_POS = text(
    "WITH po AS (SELECT number, supplier, status, sent_at, expected_at FROM purchase_order"
    " WHERE sent_at >= :start AND sent_at < :end"
    " AND (CAST(:suppliers AS varchar[]) IS NULL OR supplier = ANY(CAST(:suppliers AS varchar[]))))"
    " SELECT po.supplier, po.number, po.sent_at,"
    " (SELECT min(r.received_at) FROM po_receipt r WHERE r.po_number = po.number) AS first_receipt_at,"
    " (SELECT count(*) FROM po_receipt r WHERE r.po_number = po.number) AS receipts,"
    " (SELECT max(coalesce(i.lead_time_days, s.lead_time_days)) FROM purchase_order_line l"
    " JOIN supplier s ON s.code = po.supplier"
    " LEFT JOIN supplier_item i ON i.supplier = po.supplier AND i.sku = l.sku"
    " WHERE l.po_number = po.number) AS quoted_days"
    " FROM po ORDER BY po.number"
)


@dataclass
class SupplierFacts:
    lines: list[LineFacts] = field(default_factory=list)
    pos: list[PoFacts] = field(default_factory=list)

    def scorecard(self, as_of: datetime) -> Scorecard:
        return scorecard(self.lines, self.pos, as_of)


async def supplier_facts(
    conn: AsyncConnection, start: datetime, end: datetime, suppliers: Sequence[str] | None = None
) -> dict[str, SupplierFacts]:
    """Per supplier with a PO sent in [start, end) (of `suppliers`, else all): its facts."""
    params = {"start": start, "end": end, "suppliers": None if suppliers is None else list(suppliers)}
    out: dict[str, SupplierFacts] = {}
    for r in await conn.execute(_LINES, params):
        out.setdefault(r.supplier, SupplierFacts()).lines.append(
            LineFacts(
                r.po_number,
                r.sku,
                r.expected,
                r.received,
                r.damaged,
                r.rejected,
                r.due_at,
                r.complete_at,
                r.status,
            )
        )
    for r in await conn.execute(_POS, params):
        out.setdefault(r.supplier, SupplierFacts()).pos.append(
            PoFacts(r.number, r.sent_at, r.first_receipt_at, int(r.quoted_days or 0), int(r.receipts))
        )
    return out


async def supplier_exists(conn: AsyncConnection, code: str) -> bool:
    found = await conn.execute(text("SELECT 1 FROM supplier WHERE code = :code"), {"code": code})
    return found.first() is not None

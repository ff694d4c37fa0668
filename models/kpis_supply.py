"""The facts of the KPI report's finance, purchasing and publishing KPIs: margin per channel
from the ledger, supplier on-time-in-full (models.supplier_scorecard, every supplier at
once), dock-to-stock from PO receipts and stock moves, and webhook publish lag. One
statement each (two for the scorecard); domain.kpis does the arithmetic."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import posting
from domain.kpis import ChannelLag, ChannelMargin, Durations
from models.kpis import Window, as_float
from models.supplier_scorecard import SupplierFacts, supplier_facts

REVENUE_ACCOUNTS = [posting.REVENUE, posting.SHIPPING_REVENUE, posting.RETURN_FEE_REVENUE]

# A posting line's channel is its own, else that of the order (ref: the order's id) or the
# return (ref: its workflow id, `rma-{number}`) its entry is for.
_MARGIN = text(
    "WITH m AS (SELECT coalesce(l.channel, o.channel, r.channel) AS channel, e.currency,"
    " sum(l.credit - l.debit) FILTER (WHERE l.account = ANY(:revenue)) AS revenue,"
    " sum(l.debit - l.credit) FILTER (WHERE l.account = :cogs) AS cogs,"
    " sum(l.debit - l.credit) FILTER (WHERE l.account = :returns) AS refunds"
    " FROM journal_entry e JOIN journal_line l ON l.entry_id = e.id"
    " LEFT JOIN sales_order o ON o.id = e.ref"
    " LEFT JOIN sales_return r ON e.ref LIKE 'rma-%' AND r.number = substr(e.ref, 5)"
    " WHERE e.posted_at >= :start AND e.posted_at < :end AND l.account = ANY(:accounts) GROUP BY 1, 2)"
    " SELECT * FROM m WHERE CAST(:channel AS text) IS NULL OR channel = :channel ORDER BY channel, currency"
)
# Per PO receipt line with units accepted: the first move of that PO's SKU into sellable at
# or after the receipt (the PO's moves carry its workflow id, `po-{number}`, as ref).
_DOCK = text(
    "WITH r AS (SELECT r.po_number, r.received_at, e->>'sku' AS sku,"
    " (SELECT min(m.created_at) FROM stock_move m WHERE m.ref = 'po-' || r.po_number AND m.sku = e->>'sku'"
    "  AND m.to_status = 'sellable' AND m.created_at >= r.received_at) AS stocked_at"
    " FROM po_receipt r, jsonb_array_elements(r.lines) e"
    " WHERE r.received_at >= :start AND r.received_at < :end AND coalesce((e->>'qty_received')::int, 0) > 0)"
    " SELECT count(*) FILTER (WHERE stocked_at IS NOT NULL) AS n, count(*) FILTER (WHERE stocked_at IS NULL) AS waiting,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stocked_at - received_at)) AS p50,"
    " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM stocked_at - received_at)) AS p95 FROM r"
)
# Deliveries of changes in the window, per channel and (channel NULL) over all of them.
_LAG = text(
    "SELECT channel, count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms) AS p50,"
    " percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms) AS p99 FROM publish_delivery"
    " WHERE kind = 'delta' AND delivered_at >= :start AND delivered_at < :end"
    " AND (CAST(:channel AS text) IS NULL OR channel = :channel) GROUP BY ROLLUP (channel) ORDER BY channel"
)


async def margins(conn: AsyncConnection, w: Window) -> list[ChannelMargin]:
    params = {
        **w.params(),
        "revenue": REVENUE_ACCOUNTS,
        "cogs": posting.COST_OF_GOODS_SOLD,
        "returns": posting.SALES_RETURNS,
        "accounts": [*REVENUE_ACCOUNTS, posting.COST_OF_GOODS_SOLD, posting.SALES_RETURNS],
    }
    return [
        ChannelMargin(r.channel, r.currency, int(r.revenue or 0), int(r.cogs or 0), int(r.refunds or 0))
        for r in await conn.execute(_MARGIN, params)
    ]


async def suppliers(conn: AsyncConnection, w: Window) -> dict[str, SupplierFacts]:
    return await supplier_facts(conn, w.start, w.end)


async def dock_to_stock(conn: AsyncConnection, w: Window) -> tuple[Durations, int]:
    """The receipt lines stocked (their times) and how many wait in quarantine."""
    r = (await conn.execute(_DOCK, w.params())).one()
    return Durations(int(r.n), as_float(r.p50), as_float(r.p95)), int(r.waiting)


async def publish_lags(conn: AsyncConnection, w: Window) -> list[ChannelLag]:
    rows = await conn.execute(_LAG, w.params())
    return [ChannelLag(r.channel, int(r.n), as_float(r.p50), as_float(r.p99)) for r in rows if r.n]

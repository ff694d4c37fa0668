"""The facts of the KPI report's return, inventory and exception KPIs: returned and shipped
units by SKU, channel and reason; refund times; cycle-count lines; oversold buckets; the
exception queues. One statement each; domain.kpis does the arithmetic."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.kpis import DEAD_RETURNS, REFUND_OUTCOMES, Accuracy, Durations, ExceptionKind, Oversell, Units
from models.kpis import Window, as_float

# Units on returns created in the window, by SKU, channel and reason.
_RETURNED = text(
    "SELECT rl.sku, r.channel, rl.reason, sum(rl.qty) AS units FROM sales_return r"
    " JOIN return_line rl ON rl.return_number = r.number"
    " WHERE r.created_at >= :start AND r.created_at < :end AND r.status <> ALL(:dead)"
    " AND (CAST(:channel AS text) IS NULL OR r.channel = :channel) GROUP BY 1, 2, 3"
)
# Units shipped in the window (a shipped shipment's lines hold what was picked and sent), by SKU
# and channel.
_SHIPPED = text(
    "SELECT sl.sku, o.channel, sum(sl.qty) AS units FROM shipment sh"
    " JOIN shipment_line sl ON sl.shipment_id = sh.id JOIN sales_order o ON o.id = sh.order_id"
    " WHERE sh.shipped_at >= :start AND sh.shipped_at < :end"
    " AND (CAST(:channel AS text) IS NULL OR o.channel = :channel) GROUP BY 1, 2"
)
_REFUNDS = text(
    "WITH t AS (SELECT extract(epoch FROM settled_at - coalesce(received_at, created_at)) AS s FROM sales_return"
    " WHERE settled_at >= :start AND settled_at < :end AND outcome = ANY(:outcomes)"
    " AND (CAST(:channel AS text) IS NULL OR channel = :channel))"
    " SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50,"
    " percentile_cont(0.95) WITHIN GROUP (ORDER BY s) AS p95 FROM t"
)
_COUNTED = text(
    "SELECT count(*) AS n, count(*) FILTER (WHERE l.counted = l.expected) AS exact,"
    " count(*) FILTER (WHERE l.within_tolerance) AS ok FROM cycle_count_line l"
    " JOIN cycle_count c ON c.id = l.count_id WHERE c.submitted_at >= :start AND c.submitted_at < :end"
    " AND l.counted IS NOT NULL AND l.expected IS NOT NULL"
)
# Sellable buckets whose active reservations (the rows, not the bucket's own counter, which a
# constraint keeps ≤ on hand) exceed what they hold.
_OVERSOLD = text(
    "SELECT count(*) AS buckets, coalesce(sum(active - qty), 0) AS units FROM ("
    " SELECT b.qty, sum(r.qty - r.consumed - r.released) AS active, bool_or(r.channel = :channel) AS theirs"
    " FROM reservation r JOIN stock_balance b ON b.sku = r.sku AND b.location = r.location AND b.lot = r.lot"
    " AND b.status = 'sellable' WHERE r.consumed + r.released < r.qty GROUP BY b.id, b.qty) x"
    " WHERE active > qty AND (CAST(:channel AS text) IS NULL OR theirs)"
)
# Per kind: open at :cut (the window's end, or now if earlier) with their ages, and of those
# opened in the window how many passed their due time undecided. With a channel: exceptions
# about its orders, its returns, or the channel itself (publishing).
_EXCEPTIONS = text(
    "WITH e AS (SELECT e.kind, e.opened_at, e.due_at, e.resolved_at,"
    " (e.opened_at < :cut AND (e.resolved_at IS NULL OR e.resolved_at >= :cut)) AS open_then"
    " FROM exception e"
    " LEFT JOIN sales_order o ON e.subject_type = 'order' AND o.id = e.subject_id"
    " LEFT JOIN sales_return r ON e.subject_type = 'return' AND r.number = e.subject_id"
    " WHERE (e.opened_at >= :start AND e.opened_at < :end"
    "  OR (e.opened_at < :cut AND (e.resolved_at IS NULL OR e.resolved_at >= :cut)))"
    " AND (CAST(:channel AS text) IS NULL OR o.channel = :channel OR r.channel = :channel"
    "  OR (e.subject_type = 'channel' AND e.subject_id = :channel)))"
    " SELECT kind, count(*) FILTER (WHERE open_then) AS open,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM :cut - opened_at)) FILTER (WHERE open_then)"
    "  AS age_p50,"
    " max(extract(epoch FROM :cut - opened_at)) FILTER (WHERE open_then) AS age_max,"
    " count(*) FILTER (WHERE opened_at >= :start AND opened_at < :end) AS opened,"
    " count(*) FILTER (WHERE opened_at >= :start AND opened_at < :end AND due_at < coalesce(resolved_at, :as_of))"
    "  AS breaches"
    " FROM e GROUP BY kind ORDER BY kind"
)


async def returns_in_use(conn: AsyncConnection) -> bool:
    """Whether any return was ever asked for: until then a return rate is no data, not 0."""
    return bool((await conn.execute(text("SELECT EXISTS (SELECT 1 FROM sales_return)"))).scalar())


async def return_units(conn: AsyncConnection, w: Window) -> tuple[list[Units], list[Units]]:
    """(returned by SKU, channel and reason; shipped by SKU and channel) in the window."""
    params = {**w.params(), "dead": list(DEAD_RETURNS)}
    returned = [
        Units(r.sku, r.channel, int(r.units), r.reason) for r in await conn.execute(_RETURNED, params)
    ]
    shipped = [Units(r.sku, r.channel, int(r.units)) for r in await conn.execute(_SHIPPED, w.params())]
    return returned, shipped


async def refund_times(conn: AsyncConnection, w: Window) -> Durations:
    r = (await conn.execute(_REFUNDS, {**w.params(), "outcomes": list(REFUND_OUTCOMES)})).one()
    return Durations(int(r.n), as_float(r.p50), as_float(r.p95))


async def counted_lines(conn: AsyncConnection, w: Window) -> Accuracy:
    r = (await conn.execute(_COUNTED, w.params())).one()
    return Accuracy(int(r.n), int(r.exact), int(r.ok))


async def oversold(conn: AsyncConnection, w: Window) -> Oversell:
    r = (await conn.execute(_OVERSOLD, {"channel": w.channel})).one()
    return Oversell(int(r.buckets), int(r.units))


async def exception_kinds(conn: AsyncConnection, w: Window) -> list[ExceptionKind]:
    params = {**w.params(), "cut": min(w.end, w.as_of)}
    return [
        ExceptionKind(
            r.kind, int(r.open), as_float(r.age_p50), as_float(r.age_max), int(r.opened), int(r.breaches)
        )
        for r in await conn.execute(_EXCEPTIONS, params)
    ]

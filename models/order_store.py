"""The SQL of the order aggregate (sales_order, order_line, order_event) as the order steps
use it. Every function takes the step's connection: the caller owns the transaction, and the
order row is locked first (`lock_order`) so the steps of one order never interleave.

Lock order, always: the order row, then the SKU locks (models.availability, before the
transaction's first write), then rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.orders import LineQty

_INSERT_EVENT = (
    "INSERT INTO order_event (order_id, key, event, detail, at)"
    " VALUES (:order_id, :step_key, :event, CAST(:detail AS jsonb), now())"
)
EVENT = text(_INSERT_EVENT)
EVENT_ONCE = text(_INSERT_EVENT + " ON CONFLICT (key) DO NOTHING")
# A step's status and its record in one statement (the UPDATE runs whether or not the INSERT
# reads it; both or neither, as the INSERT's unique key decides).
EVENT_WITH_STATUS = text(
    "WITH status AS (UPDATE sales_order SET status = :status, updated_at = now() WHERE id = :order_id) "  # noqa: S608 (constant fragments)
    + _INSERT_EVENT
)
# The order as the workflow sees it, in one statement: status, whether a hold is open, the
# lines [line, sku, qty, reserved, backordered, shipped, cancelled, returned] and the
# shipments [id, location, kind, status, [[line, sku, qty, picked], ...]].
ORDER_VIEW = text(
    "SELECT o.status, o.payment_status,"
    " EXISTS (SELECT 1 FROM exception e WHERE e.subject_type = 'order' AND e.subject_id = o.id"
    "   AND e.status = 'open' AND e.kind = ANY(:hold_kinds)) AS holding,"
    " coalesce((SELECT json_agg(json_build_array(l.line, l.sku, l.qty, l.reserved, l.backordered, l.shipped,"
    "   l.cancelled, l.returned) ORDER BY length(l.line), l.line) FROM order_line l WHERE l.order_id = o.id),"
    "   '[]') AS lines,"
    " coalesce((SELECT json_agg(json_build_array(s.id, s.location, s.kind, s.status,"
    "   coalesce((SELECT json_agg(json_build_array(sl.line, sl.sku, sl.qty, sl.picked)"
    "     ORDER BY length(sl.line), sl.line) FROM shipment_line sl WHERE sl.shipment_id = s.id), '[]'))"
    "   ORDER BY s.created_at, s.id) FROM shipment s WHERE s.order_id = o.id), '[]') AS shipments"
    " FROM sales_order o WHERE o.id = :order_id"
)


async def lock_order(conn: AsyncConnection, order_id: str) -> Row[Any] | None:
    """The order row, locked until commit. NO KEY UPDATE so rows that reference the order
    (events, shipments) can still be inserted by others."""
    sql = text("SELECT * FROM sales_order WHERE id = :order_id FOR NO KEY UPDATE")
    return (await conn.execute(sql, {"order_id": order_id})).first()


# One statement for the usual case, where nothing else holds the order: SKIP LOCKED, because
# a statement that waits for the lock keeps the snapshot it started with, and its subquery
# would miss the event a duplicate of this step committed while it waited.
_LOCK_AT_STEP = text(
    "SELECT o.*, (SELECT e.detail FROM order_event e WHERE e.key = :step_key) AS step_done"
    " FROM sales_order o WHERE o.id = :order_id FOR NO KEY UPDATE OF o SKIP LOCKED"
)


async def lock_order_at_step(
    conn: AsyncConnection, order_id: str, key: str
) -> tuple[Row[Any] | None, dict[str, Any] | None]:
    """`lock_order`, and what the step with this key recorded if it has run, as every order
    step begins. When the order is locked by another transaction, the lock is waited for and
    the step's record read after it, in a snapshot that sees what the holder committed. A
    duplicate that slips between the snapshot and the lock still meets the key's unique
    index when it records (and its transaction rolls back)."""
    row = (await conn.execute(_LOCK_AT_STEP, {"order_id": order_id, "step_key": key})).first()
    if row is None:
        return await lock_order(conn, order_id), await step_result(conn, key)
    return row, (dict(row.step_done) if row.step_done is not None else None)


async def step_result(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    """What a step recorded in its timeline event, if the step with this key has run."""
    sql = text("SELECT detail FROM order_event WHERE key = :step_key")
    found = (await conn.execute(sql, {"step_key": key})).first()
    return dict(found.detail) if found is not None else None


async def add_event(
    conn: AsyncConnection,
    order_id: str,
    key: str | None,
    event: str,
    detail: dict[str, Any],
    *,
    once: bool = False,
) -> None:
    """Add to the order's timeline; the key makes the step's effects once-only. `once`: a key
    already there is fine (nothing is added)."""
    params = {
        "order_id": order_id,
        "step_key": key,
        "event": event,
        "detail": json.dumps(detail, default=str),
    }
    await conn.execute(EVENT_ONCE if once else EVENT, params)


async def add_event_with_status(
    conn: AsyncConnection, order_id: str, key: str, event: str, detail: dict[str, Any], status: str
) -> None:
    """`set_status` and `add_event` of a step's record, in one statement."""
    params = {
        "order_id": order_id,
        "step_key": key,
        "event": event,
        "detail": json.dumps(detail, default=str),
        "status": status,
    }
    await conn.execute(EVENT_WITH_STATUS, params)


async def view(conn: AsyncConnection, order_id: str, hold_kinds: Sequence[str]) -> Row[Any]:
    """The order as the workflow sees it, in one statement (ORDER_VIEW)."""
    return (await conn.execute(ORDER_VIEW, {"order_id": order_id, "hold_kinds": list(hold_kinds)})).one()


async def set_status(conn: AsyncConnection, order_id: str, status: str) -> None:
    sql = text("UPDATE sales_order SET status = :status, updated_at = now() WHERE id = :order_id")
    await conn.execute(sql, {"status": status, "order_id": order_id})


async def close(conn: AsyncConnection, order_id: str, status: str) -> None:
    sql = text(
        "UPDATE sales_order SET status = :status, completed_at = coalesce(completed_at, now()), updated_at = now()"
        " WHERE id = :order_id"
    )
    await conn.execute(sql, {"status": status, "order_id": order_id})


async def withdraw_exceptions(conn: AsyncConnection, order_id: str, why: str) -> list[str]:
    """Every exception still open for the order closes as withdrawn, decided by nobody.
    Answers the kinds of those it closed."""
    sql = text(
        "UPDATE exception SET status = 'cancelled', resolved_at = now(), resolved_by = 'system',"
        " resolution = CAST(:resolution AS jsonb)"
        " WHERE subject_type = 'order' AND subject_id = :order_id AND status = 'open' RETURNING kind"
    )
    rows = await conn.execute(
        sql, {"order_id": order_id, "resolution": json.dumps({"action": "withdrawn", "note": why})}
    )
    return [row.kind for row in rows]


# -- lines -----------------------------------------------------------------------------


async def lines(conn: AsyncConnection, order_id: str) -> list[Row[Any]]:
    sql = text("SELECT * FROM order_line WHERE order_id = :order_id ORDER BY length(line), line")
    return list(await conn.execute(sql, {"order_id": order_id}))


def line_qty(row: Any) -> LineQty:
    return LineQty(row.qty, row.reserved, row.backordered, row.shipped, row.cancelled, row.returned)


async def write_line(conn: AsyncConnection, order_id: str, line: str, q: LineQty) -> None:
    """The line's quantities, as `q` says (checked by the caller: models.order_store writes)."""
    sql = text(
        "UPDATE order_line SET reserved = :reserved, backordered = :backordered, shipped = :shipped,"
        " cancelled = :cancelled, backordered_since = CASE WHEN :backordered = 0 THEN NULL"
        " ELSE coalesce(backordered_since, now()) END WHERE order_id = :order_id AND line = :line"
    )
    params = {
        "reserved": q.reserved,
        "backordered": q.backordered,
        "shipped": q.shipped,
        "cancelled": q.cancelled,
    }
    await conn.execute(sql, {**params, "order_id": order_id, "line": line})


async def pre_order_lines(conn: AsyncConnection, order_id: str) -> list[Row[Any]]:
    """Lines whose SKU is not released yet, with its release date."""
    sql = text(
        "SELECT l.line, s.release_at FROM order_line l JOIN sku s ON s.code = l.sku"
        " WHERE l.order_id = :order_id AND s.release_at > now()"
    )
    return list(await conn.execute(sql, {"order_id": order_id}))


async def backorder_whole_line(conn: AsyncConnection, order_id: str, line: str) -> None:
    sql = text(
        "UPDATE order_line SET backordered = qty, backordered_since = now() WHERE order_id = :order_id AND line = :line"
    )
    await conn.execute(sql, {"order_id": order_id, "line": line})


# -- the order's facts -------------------------------------------------------------------


async def customer_history(conn: AsyncConnection, customer_id: str, channel: str) -> Row[Any]:
    """The customer's orders on the channel: in the last day, and ever (for fraud scoring)."""
    sql = text(
        "SELECT count(*) FILTER (WHERE created_at > now() - interval '24 hours') AS day, count(*) AS ever"
        " FROM sales_order WHERE customer_id = :customer_id AND channel = :channel"
    )
    return (await conn.execute(sql, {"customer_id": customer_id, "channel": channel})).one()


async def set_fraud(conn: AsyncConnection, order_id: str, score: int, reasons: list[str]) -> None:
    sql = text(
        "UPDATE sales_order SET fraud_score = :score, fraud_reasons = CAST(:reasons AS jsonb) WHERE id = :order_id"
    )
    await conn.execute(sql, {"score": score, "reasons": json.dumps(reasons), "order_id": order_id})


async def set_ship_to(conn: AsyncConnection, order_id: str, address: dict[str, Any]) -> None:
    sql = text("UPDATE sales_order SET ship_to = CAST(:address AS jsonb) WHERE id = :order_id")
    await conn.execute(sql, {"address": json.dumps(address), "order_id": order_id})


async def set_payment_reference(conn: AsyncConnection, order_id: str, reference: str, method: str) -> None:
    """What a person reported about a payment; an empty method keeps the one recorded."""
    sql = text(
        "UPDATE sales_order SET payment_reference = :reference,"
        " payment_method = coalesce(nullif(:method, ''), payment_method) WHERE id = :order_id"
    )
    await conn.execute(sql, {"reference": reference[:200], "method": method[:40], "order_id": order_id})


async def set_payment(
    conn: AsyncConnection, order_id: str, status: str, payment_id: str | None, captured: int, amount: int
) -> None:
    sql = text(
        "UPDATE sales_order SET payment_status = :status, payment_id = :payment_id, captured = :captured,"
        " payment_amount = :amount WHERE id = :order_id"
    )
    params = {"status": status, "payment_id": payment_id, "captured": captured, "amount": amount}
    await conn.execute(sql, {**params, "order_id": order_id})


async def set_payment_status(conn: AsyncConnection, order_id: str, status: str) -> None:
    sql = text("UPDATE sales_order SET payment_status = :status WHERE id = :order_id")
    await conn.execute(sql, {"status": status, "order_id": order_id})


async def refundable(conn: AsyncConnection, payment_id: str | None) -> int:
    """What of a payment may still be refunded: captured − refunded (0 with no payment)."""
    if not payment_id:
        return 0
    row = (
        await conn.execute(text("SELECT captured, refunded FROM payment WHERE id = :id"), {"id": payment_id})
    ).first()
    return 0 if row is None else int(row.captured) - int(row.refunded)


async def add_captured(conn: AsyncConnection, order_id: str, amount: int) -> None:
    sql = text(
        "UPDATE sales_order SET captured = captured + :amount, payment_status = 'captured' WHERE id = :order_id"
    )
    await conn.execute(sql, {"amount": amount, "order_id": order_id})


# -- what sourcing reads -------------------------------------------------------------------


async def lines_to_source(conn: AsyncConnection, order_id: str) -> list[Row[Any]]:
    """The order's lines (as `lines`), each with its SKU's kind and whether the SKU is released
    (pre-orders are not, until their date)."""
    sql = text(
        "SELECT l.*, s.kind, (s.release_at IS NULL OR s.release_at <= now()) AS released FROM order_line l"
        " JOIN sku s ON s.code = l.sku WHERE l.order_id = :order_id ORDER BY length(l.line), l.line"
    )
    return list(await conn.execute(sql, {"order_id": order_id}))


async def shipping_locations(conn: AsyncConnection, channel: str) -> list[Row[Any]]:
    """The locations that ship the channel's orders, with what sourcing weighs, each with the
    channel's `sourcing_rule` (read beside them: `sourcing_rule` is for a channel without any)."""
    sql = text(
        "SELECT c.sourcing_rule, l.code, l.type, l.lat, l.lon, l.ship_cost, l.priority, l.supplier"
        " FROM channel c JOIN channel_location cl ON cl.channel = c.code JOIN location l ON l.code = cl.location"
        " WHERE c.code = :channel AND l.can_ship ORDER BY l.code"
    )
    return list(await conn.execute(sql, {"channel": channel}))


async def sourcing_rule(conn: AsyncConnection, channel: str) -> str:
    sql = text("SELECT sourcing_rule FROM channel WHERE code = :channel")
    return str((await conn.execute(sql, {"channel": channel})).scalar_one())


async def dropship_skus(conn: AsyncConnection, supplier: str) -> list[str]:
    sql = text(
        "SELECT i.sku FROM supplier_item i JOIN supplier s ON s.code = i.supplier"
        " WHERE i.supplier = :supplier AND s.dropship ORDER BY i.sku"
    )
    return list((await conn.execute(sql, {"supplier": supplier})).scalars())


async def supplier_cost(conn: AsyncConnection, supplier: str, sku: str) -> int:
    sql = text("SELECT cost FROM supplier_item WHERE supplier = :supplier AND sku = :sku")
    return int((await conn.execute(sql, {"supplier": supplier, "sku": sku})).scalar() or 0)

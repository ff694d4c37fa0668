"""The orders API's read model: `sales_order` rows and their children (lines, shipments,
holds, timeline) as OrderRead, and the filtered, paged list of them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.auth import Principal, see
from api.schemas_orders import (
    AmountsRead,
    CustomerRead,
    HoldRead,
    OrderLineRead,
    OrderRead,
    OrderShipmentRead,
    PaymentRead,
    ShipmentLineBrief,
    TimelineEvent,
)

T = TypeVar("T")


_LINES = "SELECT * FROM order_line WHERE order_id = ANY(:ids) ORDER BY order_id, length(line), line"
_SHIPMENT_LINES = (
    "SELECT sl.* FROM shipment_line sl JOIN shipment s ON s.id = sl.shipment_id "
    "WHERE s.order_id = ANY(:ids) ORDER BY sl.shipment_id, length(sl.line), sl.line"
)
_SHIPMENTS = "SELECT * FROM shipment WHERE order_id = ANY(:ids) ORDER BY created_at, id"
_HOLDS = (
    "SELECT id AS exception_id, subject_id, kind, status, opened_at, due_at, escalation_level, actions "
    "FROM exception WHERE subject_type = 'order' AND subject_id = ANY(:ids) ORDER BY opened_at, id"
)
_TIMELINE = "SELECT order_id, at, event, detail FROM order_event WHERE order_id = ANY(:ids) ORDER BY id"


async def load_orders(conn: AsyncConnection, heads: Sequence[Any]) -> list[OrderRead]:
    """The full read of these `sales_order` rows, in their order: one query per child table,
    whatever the number of orders."""
    ids = [h.id for h in heads]
    if not ids:
        return []
    lines = await _by_parent(conn, _LINES, ids, "order_id", OrderLineRead.model_validate)
    shipment_lines = await _by_parent(
        conn, _SHIPMENT_LINES, ids, "shipment_id", ShipmentLineBrief.model_validate
    )
    shipments = await _by_parent(
        conn,
        _SHIPMENTS,
        ids,
        "order_id",
        lambda m: OrderShipmentRead.model_validate({**m, "lines": shipment_lines.get(m["id"], [])}),
    )
    holds = await _by_parent(conn, _HOLDS, ids, "subject_id", HoldRead.model_validate)
    timeline = await _by_parent(conn, _TIMELINE, ids, "order_id", TimelineEvent.model_validate)
    return [
        _order_read(
            h,
            lines=lines.get(h.id, []),
            shipments=shipments.get(h.id, []),
            holds=holds.get(h.id, []),
            timeline=timeline.get(h.id, []),
        )
        for h in heads
    ]


async def _by_parent(
    conn: AsyncConnection, sql: str, ids: list[str], parent: str, read: Callable[[RowMapping], T]
) -> dict[str, list[T]]:
    """The rows of one child table for these orders, read, grouped by their `parent` column
    in the query's order."""
    out: dict[str, list[T]] = defaultdict(list)
    for r in await conn.execute(text(sql), {"ids": ids}):
        out[r._mapping[parent]].append(read(r._mapping))
    return out


def _order_read(
    h: Any,
    *,
    lines: list[OrderLineRead],
    shipments: list[OrderShipmentRead],
    holds: list[HoldRead],
    timeline: list[TimelineEvent],
) -> OrderRead:
    """One `sales_order` row and its children as the API shows them."""
    return OrderRead(
        id=h.id,
        channel=h.channel,
        external_id=h.external_id,
        status=h.status,
        customer=CustomerRead(id=h.customer_id, email=h.customer_email),
        ship_to=h.ship_to,
        billing_address=h.billing_address,
        promise=h.promise,
        allow_backorder=h.allow_backorder,
        allow_split=h.allow_split,
        currency=h.currency,
        amounts=_amounts(h),
        payment=_payment(h),
        lines=lines,
        shipments=shipments,
        holds=holds,
        timeline=timeline,
        fraud_score=h.fraud_score,
        fraud_reasons=h.fraud_reasons or [],
        workflow_id=h.workflow_id,
        created_at=h.created_at,
        updated_at=h.updated_at,
        completed_at=h.completed_at,
    )


def _amounts(h: Any) -> AmountsRead:
    return AmountsRead(
        merchandise=h.merchandise,
        shipping=h.shipping_amount,
        tax=h.tax_amount,
        total=h.merchandise + h.shipping_amount + h.tax_amount,
    )


def _payment(h: Any) -> PaymentRead:
    return PaymentRead(
        method=h.payment_method,
        status=h.payment_status,
        reported=h._mapping.get("payment_reported"),
        amount=h.payment_amount,
        reference=h.payment_reference,
        captured=h.captured,
    )


async def read_order(engine: AsyncEngine, order_id: str, principal: Principal | None = None) -> OrderRead:
    """One order; 404 if it does not exist or belongs to another channel than the caller's."""
    async with engine.connect() as conn:
        return await read_order_on(conn, order_id, principal)


async def read_order_on(
    conn: AsyncConnection, order_id: str, principal: Principal | None = None
) -> OrderRead:
    """`read_order` on a connection of the caller's (intake's own transaction, before it commits)."""
    head = (await conn.execute(text("SELECT * FROM sales_order WHERE id = :id"), {"id": order_id})).first()
    see(principal, head.channel if head is not None else None, f"order {order_id}")
    assert head is not None
    return (await load_orders(conn, [head]))[0]


@dataclass(frozen=True)
class OrderFilter:
    """The list's filters; None = any. Naive datetimes are UTC."""

    status: str | None = None
    channel: str | None = None
    customer_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def page_of_orders(
    engine: AsyncEngine, where: OrderFilter, limit: int, after: tuple[datetime, str] | None
) -> tuple[list[OrderRead], tuple[str, str] | None]:
    """Up to `limit` orders, oldest first, after the (created_at, id) `after`; and the key of
    the last one when there are more (the next page's cursor)."""
    params: dict[str, Any] = {
        "st": where.status,
        "ch": where.channel,
        "cid": where.customer_id,
        "from": _utc(where.created_from),
        "to": _utc(where.created_to),
        "lim": limit + 1,
    }
    condition = (
        "(CAST(:st AS text) IS NULL OR status = :st) AND (CAST(:ch AS text) IS NULL OR channel = :ch) "
        "AND (CAST(:cid AS text) IS NULL OR customer_id = :cid) "
        "AND (CAST(:from AS timestamptz) IS NULL OR created_at >= :from) "
        "AND (CAST(:to AS timestamptz) IS NULL OR created_at < :to)"
    )
    if after is not None:
        params.update(c0=after[0], c1=after[1])
        condition += " AND (created_at, id) > (CAST(:c0 AS timestamptz), CAST(:c1 AS text))"
    async with engine.connect() as conn:
        heads = (
            await conn.execute(
                text(f"SELECT * FROM sales_order WHERE {condition} ORDER BY created_at, id LIMIT :lim"),  # noqa: S608
                params,
            )
        ).all()
        items = await load_orders(conn, heads[:limit])
    if len(heads) <= limit:
        return items, None
    last = heads[limit - 1]
    return items, (last.created_at.isoformat(), last.id)

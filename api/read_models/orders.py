"""The orders API's read model: `sales_order` rows and their children (lines, shipments,
holds, timeline) as OrderRead, and the filtered, paged list of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.auth import Principal, see
from api.deps import single_read
from api.schemas_orders import (
    AmountsRead,
    CustomerRead,
    HoldRead,
    OrderLineRead,
    OrderRead,
    OrderShipmentRead,
    PaymentRead,
    TimelineEvent,
)

# An order's children, each as one JSON array, computed beside its `sales_order` row (alias
# `o`): a page of orders is read in one statement, whatever its size, where a query per child
# table cost five more round trips per read.
_CHILDREN = (
    "coalesce((SELECT json_agg(to_json(l) ORDER BY length(l.line), l.line)"
    "   FROM order_line l WHERE l.order_id = o.id), '[]') AS lines_of,"
    " coalesce((SELECT json_agg(to_jsonb(s) || jsonb_build_object('lines', coalesce((SELECT"
    "   json_agg(to_json(sl) ORDER BY length(sl.line), sl.line) FROM shipment_line sl"
    "   WHERE sl.shipment_id = s.id), '[]')) ORDER BY s.created_at, s.id)"
    "   FROM shipment s WHERE s.order_id = o.id), '[]') AS shipments_of,"
    " coalesce((SELECT json_agg(json_build_object('exception_id', e.id, 'kind', e.kind, 'status', e.status,"
    "   'opened_at', e.opened_at, 'due_at', e.due_at, 'escalation_level', e.escalation_level,"
    "   'actions', e.actions) ORDER BY e.opened_at, e.id)"
    "   FROM exception e WHERE e.subject_type = 'order' AND e.subject_id = o.id), '[]') AS holds_of,"
    " coalesce((SELECT json_agg(json_build_object('at', ev.at, 'event', ev.event, 'detail', ev.detail)"
    "   ORDER BY ev.id) FROM order_event ev WHERE ev.order_id = o.id), '[]') AS timeline_of"
)
ORDER_WITH_CHILDREN = f"SELECT o.*, {_CHILDREN} FROM sales_order o"  # noqa: S608 (constant fragments)


def order_read(h: Any) -> OrderRead:
    """One row of ORDER_WITH_CHILDREN as the API shows it."""
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
        lines=[OrderLineRead.model_validate(x) for x in h.lines_of],
        shipments=[OrderShipmentRead.model_validate(x) for x in h.shipments_of],
        holds=[HoldRead.model_validate(x) for x in h.holds_of],
        timeline=[TimelineEvent.model_validate(x) for x in h.timeline_of],
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
    async with single_read(engine) as conn:
        return await read_order_on(conn, order_id, principal)


async def read_order_on(
    conn: AsyncConnection, order_id: str, principal: Principal | None = None
) -> OrderRead:
    """`read_order` on a connection of the caller's (intake's own transaction, before it commits)."""
    sql = text(f"{ORDER_WITH_CHILDREN} WHERE o.id = :id")
    head = (await conn.execute(sql, {"id": order_id})).first()
    see(principal, head.channel if head is not None else None, f"order {order_id}")
    assert head is not None
    return order_read(head)


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
    async with single_read(engine) as conn:
        heads = (
            await conn.execute(
                text(f"{ORDER_WITH_CHILDREN} WHERE {condition} ORDER BY created_at, id LIMIT :lim"),
                params,
            )
        ).all()
        items = [order_read(h) for h in heads[:limit]]
    if len(heads) <= limit:
        return items, None
    last = heads[limit - 1]
    return items, (last.created_at.isoformat(), last.id)

"""An order as the channel sent it, recorded once: the `sales_order` row (status `received`,
payment `pending`) and its `order_line` rows. From then on only the order's workflow changes
them (models.orders, activities.orders)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class IntakeLine:
    sku: str
    qty: int
    unit_price: int


@dataclass(frozen=True)
class OrderIntake:
    order_id: str
    channel: str
    external_id: str
    customer_id: str
    customer_email: str
    ship_to: dict[str, Any]
    billing_address: dict[str, Any] | None
    promise: str
    allow_backorder: bool
    allow_split: bool
    currency: str
    shipping_amount: int
    tax_amount: int
    payment_method: str
    payment_reported: str  # what the channel says of the payment; our books start `pending`
    payment_amount: int
    payment_reference: str
    request_hash: str  # what was asked, to tell a retry (same) from a conflict (other data)
    lines: list[IntakeLine] = field(default_factory=list)

    @property
    def merchandise(self) -> int:
        return sum(ln.qty * ln.unit_price for ln in self.lines)


# The order row and its lines in one statement: the lines are inserted only with the row (an
# id already taken inserts neither), and the lines' foreign key, checked at the end of the
# statement, sees the row.
_INSERT_ORDER = text(
    "WITH head AS (INSERT INTO sales_order (id, channel, external_id, status, customer_id, customer_email, "
    "ship_to, billing_address, promise, allow_backorder, allow_split, currency, merchandise, shipping_amount, "
    "tax_amount, payment_method, payment_reported, payment_status, payment_amount, payment_reference, "
    "captured, fraud_reasons, request_hash, workflow_id, created_at, updated_at) VALUES "
    "(:id, :ch, :ext, 'received', :cid, :email, CAST(:ship AS jsonb), CAST(:bill AS jsonb), :promise, "
    ":backorder, :split, :cur, :merch, :ship_amt, :tax, :pm, :pr, 'pending', :pa, :pref, 0, "
    "'[]'::jsonb, :hash, :id, now(), now()) ON CONFLICT DO NOTHING RETURNING id), "
    "lines AS (INSERT INTO order_line (order_id, line, sku, qty, unit_price, reserved, backordered, shipped, "
    "cancelled, returned) SELECT head.id, l.line, l.sku, l.qty, l.price, 0, 0, 0, 0, 0 FROM head, "
    "unnest(CAST(:lines AS text[]), CAST(:skus AS text[]), CAST(:qtys AS int[]), CAST(:prices AS int[])) "
    "AS l(line, sku, qty, price)) "
    "SELECT id FROM head"
)


async def insert_order(conn: AsyncConnection, order: OrderIntake) -> bool:
    """Record the order and its lines (numbered from 1); False if its id is already taken."""
    params = {
        "id": order.order_id,
        "ch": order.channel,
        "ext": order.external_id,
        "cid": order.customer_id,
        "email": order.customer_email,
        "ship": json.dumps(order.ship_to),
        "bill": json.dumps(order.billing_address) if order.billing_address is not None else None,
        "promise": order.promise,
        "backorder": order.allow_backorder,
        "split": order.allow_split,
        "cur": order.currency,
        "merch": order.merchandise,
        "ship_amt": order.shipping_amount,
        "tax": order.tax_amount,
        "pm": order.payment_method,
        "pr": order.payment_reported,
        "pa": order.payment_amount,
        "pref": order.payment_reference,
        "hash": order.request_hash,
        "lines": [str(n) for n in range(1, len(order.lines) + 1)],
        "skus": [ln.sku for ln in order.lines],
        "qtys": [ln.qty for ln in order.lines],
        "prices": [ln.unit_price for ln in order.lines],
    }
    return (await conn.execute(_INSERT_ORDER, params)).first() is not None


async def recorded_as(conn: AsyncConnection, order_id: str) -> Any:
    """The (channel, external_id, request_hash) an order id was recorded with, or None."""
    return (
        await conn.execute(
            text("SELECT channel, external_id, request_hash FROM sales_order WHERE id = :id"),
            {"id": order_id},
        )
    ).first()


@dataclass(frozen=True)
class UnstartedOrder:
    order_id: str
    channel: str
    total: int  # merchandise + shipping + tax, as intake checked it


# Still `received` a while after intake: the workflow's first step moves every order on from
# `received` in its first seconds, so these are the orders whose start may never have reached
# the engine (ix_sales_order_channel_status, per channel).
_UNSTARTED = text(
    "SELECT id, channel, merchandise + shipping_amount + tax_amount AS total FROM sales_order"
    " WHERE channel = ANY(SELECT code FROM channel) AND status = 'received'"
    " AND created_at < now() - make_interval(secs => :grace) AND created_at > now() - make_interval(days => 7)"
    " ORDER BY created_at LIMIT :n"
)


async def still_received(conn: AsyncConnection, grace_seconds: float, limit: int) -> list[UnstartedOrder]:
    """Orders `received` for longer than `grace_seconds` (and less than a week), oldest first."""
    rows = await conn.execute(_UNSTARTED, {"grace": grace_seconds, "n": limit})
    return [UnstartedOrder(r.id, r.channel, int(r.total)) for r in rows]

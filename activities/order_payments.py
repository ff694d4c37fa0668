"""The order's money inside its steps: the channel's payment taken at record time (or when a
person confirms it), through the configured gateway (activities/gateways)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.posting import capture_amounts, lines_for
from models import order_store as orders
from models import return_store as store_credit
from models.finance import Posting, post
from models.payments import (
    CaptureSplit,
    PaymentDeclined,
    PaymentGateway,
    authorize_payment,
    capture_payment,
)


async def take_payment(
    conn: AsyncConnection,
    gateway: PaymentGateway,
    order: Any,
    key: str,
    status: str,
    amount: int,
    method: str,
) -> str:
    """Record the channel's payment: authorize on our gateway, and capture it all when the
    channel says it is captured (revenue is then recognized at order time). Returns the new
    payment status; a decline is recorded and answered as `declined`."""
    total = order.merchandise + order.shipping_amount + order.tax_amount
    if method == "store_credit":
        return await spend_store_credit(conn, order, key, total)
    try:
        payment_id = await authorize_payment(
            conn, gateway, f"{key}:authorize", order.id, method or "card", amount, order.currency
        )
        captured = 0
        if status == "captured":
            await capture_payment(
                conn,
                gateway,
                f"{key}:capture",
                payment_id,
                total,
                CaptureSplit(revenue=order.merchandise, shipping=order.shipping_amount, tax=order.tax_amount),
                channel=order.channel,
            )
            captured = total
    except PaymentDeclined:
        await orders.set_payment_status(conn, order.id, "declined")
        return "declined"
    await orders.set_payment(conn, order.id, status, payment_id, captured, amount)
    return status


async def spend_store_credit(conn: AsyncConnection, order: Any, key: str, total: int) -> str:
    """Pay the whole order from the customer's store credit, under the balance's lock (two
    orders never spend the same credit): the liability turns into revenue, as a capture
    would. Not enough credit is a decline (the order waits in payment_pending)."""
    balance = await store_credit.lock_credit(conn, order.customer_id)
    if balance < total:
        await orders.set_payment_status(conn, order.id, "declined")
        return "declined"
    await store_credit.credit_entry(
        conn, f"{key}:store_credit", order.customer_id, order.currency, -total, "spent", order.id
    )
    amounts = capture_amounts(order.merchandise, order.shipping_amount, order.tax_amount)
    lines = [Posting.of(ln, channel=order.channel) for ln in lines_for("store_credit_spent", amounts)]
    await post(
        conn, f"{key}:store_credit", "store_credit_spent", lines, ref=order.id, currency=order.currency
    )
    await orders.set_payment(conn, order.id, "captured", None, total, total)
    return "captured"


async def restore_store_credit(
    conn: AsyncConnection, order: Any, key: str, merchandise: int, shipping: int, tax: int
) -> int:
    """A cancel of an order paid with store credit gives the credit back (revenue reversed)."""
    total = merchandise + shipping + tax
    if total <= 0:
        return 0
    await store_credit.credit_entry(
        conn, f"{key}:store_credit", order.customer_id, order.currency, total, "restored", order.id
    )
    amounts = capture_amounts(merchandise, shipping, tax)
    lines = [Posting.of(ln, channel=order.channel) for ln in lines_for("store_credit_restored", amounts)]
    await post(
        conn, f"{key}:store_credit", "store_credit_restored", lines, ref=order.id, currency=order.currency
    )
    return total

"""The order's money inside its steps: the channel's payment taken at record time (or when a
person confirms it), through the configured gateway (activities/gateways)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from models import order_store as orders
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

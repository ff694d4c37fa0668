"""Starting an order's workflow: from intake, and from the sweep for orders whose start never
reached the engine (api.order_starts). One place, so that both start it alike."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.temporal import start
from runtime.settings import Settings
from workflows import search_attributes as sa
from workflows.contracts import OrderInput


def sa_pairs(channel: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.OMNI_STATUS, "received"),
            SearchAttributePair(sa.OMNI_CHANNEL, channel),
            # OmniException is set only while an exception is open: `OmniException IS NOT NULL`.
            SearchAttributePair(sa.OMNI_PRIORITY, 0.0),
        ]
    )


async def start_order(temporal: Client, settings: Settings, order_id: str, channel: str, total: int) -> None:
    """Start the order's workflow with the policies of these settings (once: see api.temporal.start)."""
    order_input = OrderInput(
        order_id=order_id,
        channel=channel,
        value=total,
        policies=settings.order_policies(),
        backorder_aging_seconds=settings.backorder_aging_seconds,
        backorder_recheck_seconds=settings.backorder_recheck_seconds,
    )
    await start(
        temporal,
        "Order",
        order_input,
        id=order_id,
        task_queue=settings.task_queue,
        search_attributes=sa_pairs(channel),
    )

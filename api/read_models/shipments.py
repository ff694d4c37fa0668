"""The shipments API's read model: one shipment, and the open pick work (what waves are built
from)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import Principal, see
from api.deps import single_read
from api.schemas_orders import ShipmentRead


async def open_pick_lines(engine: AsyncEngine, location: str | None) -> list[Any]:
    """Every line still to pick of a stock shipment waiting to be picked (at `location`, or
    anywhere), with its shipment's order, location, promise and age; by shipment and line."""
    async with single_read(engine) as conn:
        rows = await conn.execute(
            text(
                "SELECT s.id, s.order_id, s.location, s.promise, s.created_at, l.line, l.sku, l.qty - l.picked AS qty "
                "FROM shipment s JOIN shipment_line l ON l.shipment_id = s.id "
                "WHERE s.kind = 'stock' AND s.status = 'allocated' AND l.qty - l.picked > 0 "
                "AND (CAST(:loc AS text) IS NULL OR s.location = :loc) "
                "ORDER BY s.id, length(l.line), l.line"
            ),
            {"loc": location},
        )
        return list(rows.all())


async def shipment(engine: AsyncEngine, shipment_id: str, principal: Principal | None = None) -> ShipmentRead:
    """The shipment; 404 if unknown or of another channel."""
    async with single_read(engine) as conn:
        head = (
            await conn.execute(
                text(
                    "SELECT s.*, o.channel, coalesce((SELECT json_agg(json_build_object("
                    "'line', l.line, 'sku', l.sku, 'qty', l.qty, 'picked', l.picked) ORDER BY length(l.line), l.line) "
                    "FROM shipment_line l WHERE l.shipment_id = s.id), '[]') AS lines "
                    "FROM shipment s JOIN sales_order o ON o.id = s.order_id WHERE s.id = :id"
                ),
                {"id": shipment_id},
            )
        ).first()
    see(principal, head.channel if head is not None else None, f"shipment {shipment_id}")
    assert head is not None
    return ShipmentRead.model_validate(head._mapping)

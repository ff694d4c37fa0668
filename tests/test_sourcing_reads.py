"""What the sourcing step reads and writes in Postgres, each in one statement
(models.order_store, models.shipment_store): the lines with their SKU's kind and release,
the channel's rule with its shipping locations (and the rule of a channel that ships from
nowhere), and a shipment inserted with its lines."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.sourcing import order_intake
from models import order_store as orders
from models import shipment_store as shipments
from models.order_intake import IntakeLine, insert_order
from tests.factories import add_channel, add_sku, standard_catalog


async def test_lines_come_with_their_sku_s_kind_and_release(engine: AsyncEngine) -> None:
    await standard_catalog(engine)
    async with engine.begin() as conn:
        await add_sku(conn, "LATER")
        await conn.execute(
            text("UPDATE sku SET release_at = :at WHERE code = 'LATER'"),
            {"at": datetime.now(UTC) + timedelta(days=3)},
        )
        intake = order_intake("web", "READS-1", "TEE", 1, allow_backorder=True)
        lines = [IntakeLine(sku, 1, 100) for sku in ("TEE", "GIFT", "LATER")]
        intake = replace(intake, lines=lines)
        assert await insert_order(conn, intake)
        rows = await orders.lines_to_source(conn, intake.order_id)
    assert [(r.line, r.sku, r.kind, r.released) for r in rows] == [
        ("1", "TEE", "simple", True),
        ("2", "GIFT", "kit", True),
        ("3", "LATER", "simple", False),
    ]
    assert [orders.line_qty(r).unassigned for r in rows] == [1, 1, 1]


async def test_the_rule_comes_with_the_locations_and_alone_without_any(engine: AsyncEngine) -> None:
    await standard_catalog(engine)
    async with engine.begin() as conn:
        await add_channel(conn, "nowhere", [], rule="priority")
        rows = await orders.shipping_locations(conn, "marketplace")
        assert [(r.code, r.sourcing_rule) for r in rows] == [("DC-EAST", "cheapest"), ("DC-WEST", "cheapest")]
        assert await orders.shipping_locations(conn, "nowhere") == []
        assert await orders.sourcing_rule(conn, "nowhere") == "priority"


async def test_a_shipment_is_inserted_with_its_lines(engine: AsyncEngine) -> None:
    await standard_catalog(engine)
    intake = order_intake("web", "READS-2", "TEE", 2, allow_backorder=True)
    new = shipments.NewShipment(
        f"{intake.order_id}-S1",
        intake.order_id,
        "DC-EAST",
        "stock",
        "standard",
        [("1", "TEE", 2), ("2", "MUG", 1)],
        reservation_key="k1",
    )
    async with engine.begin() as conn:
        assert await insert_order(conn, intake)
        await shipments.insert(conn, new)
        head = (await conn.execute(text("SELECT * FROM shipment WHERE id = :id"), {"id": new.id})).one()
        got = await conn.execute(
            text("SELECT line, sku, qty, picked FROM shipment_line WHERE shipment_id = :id ORDER BY line"),
            {"id": new.id},
        )
        assert [tuple(r) for r in got] == [("1", "TEE", 2, 0), ("2", "MUG", 1, 0)]
        assert (head.status, head.kind, head.reservation_key, head.packages) == (
            "allocated",
            "stock",
            "k1",
            [],
        )
        assert await shipments.count(conn, intake.order_id) == 1

"""The master data API's read model: a SKU with its components, a channel with its
locations, a channel's policy for a SKU, a supplier with its items."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from api.schemas_catalog import ChannelRead, PolicyRead, SkuRead, SupplierRead


async def read_sku(conn: AsyncConnection, code: str) -> SkuRead | None:
    row = (await conn.execute(text("SELECT * FROM sku WHERE code = :c"), {"c": code})).first()
    if row is None:
        return None
    comps = await conn.execute(
        text("SELECT component_sku AS sku, qty FROM sku_component WHERE kit_sku = :c ORDER BY 1"), {"c": code}
    )
    return SkuRead(**row._mapping, components=[dict(c._mapping) for c in comps])


async def read_channel(conn: AsyncConnection, code: str) -> ChannelRead | None:
    row = (await conn.execute(text("SELECT * FROM channel WHERE code = :c"), {"c": code})).first()
    if row is None:
        return None
    locs = (
        (
            await conn.execute(
                text("SELECT location FROM channel_location WHERE channel = :c ORDER BY 1"), {"c": code}
            )
        )
        .scalars()
        .all()
    )
    return ChannelRead(**row._mapping, locations=list(locs))


async def read_policy(conn: AsyncConnection, channel: str, sku: str) -> PolicyRead:
    safety = (
        await conn.execute(
            text("SELECT safety_stock FROM channel_policy WHERE channel = :c AND sku = :s"),
            {"c": channel, "s": sku},
        )
    ).scalar()
    fences = await conn.execute(
        text("SELECT location, qty FROM channel_ringfence WHERE channel = :c AND sku = :s ORDER BY location"),
        {"c": channel, "s": sku},
    )
    return PolicyRead(
        channel=channel, sku=sku, safety_stock=int(safety or 0), ringfence=[dict(f._mapping) for f in fences]
    )


async def read_supplier(conn: AsyncConnection, code: str) -> SupplierRead | None:
    row = (await conn.execute(text("SELECT * FROM supplier WHERE code = :c"), {"c": code})).first()
    if row is None:
        return None
    items = await conn.execute(
        text("SELECT sku, cost, moq, order_multiple FROM supplier_item WHERE supplier = :c ORDER BY sku"),
        {"c": code},
    )
    return SupplierRead(**row._mapping, items=[dict(i._mapping) for i in items])


async def skus_stocked_at(conn: AsyncConnection, locations: list[str]) -> list[str]:
    return list(
        (
            await conn.execute(
                text(
                    "SELECT DISTINCT sku FROM stock_balance WHERE location = ANY(:l) AND status = 'sellable'"
                ),
                {"l": locations},
            )
        ).scalars()
    )

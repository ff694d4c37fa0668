"""A cycle count as opened, recorded once: the `cycle_count` row (status `open`) and a
`cycle_count_line` per SKU. From then on only the count's workflow changes them."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_count(
    conn: AsyncConnection, count_id: str, location: str, workflow_id: str, skus: list[str]
) -> bool:
    """Record the count and its lines; False (and nothing written) if the id is taken."""
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO cycle_count (id, location, status, workflow_id) VALUES (:id, :l, 'open', :wf) "
                "ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            {"id": count_id, "l": location, "wf": workflow_id},
        )
    ).first()
    if inserted is None:
        return False
    for sku in skus:
        await conn.execute(
            text("INSERT INTO cycle_count_line (count_id, sku, lot) VALUES (:id, :s, '')"),
            {"id": count_id, "s": sku},
        )
    return True

"""A transfer as requested, recorded once: the `transfer` row (status `requested`) and its
`transfer_line` rows. From then on only the transfer's workflow changes them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class TransferIntakeLine:
    sku: str
    lot: str
    qty: int


async def insert_transfer(
    conn: AsyncConnection,
    number: str,
    from_location: str,
    to_location: str,
    workflow_id: str,
    lines: list[TransferIntakeLine],
) -> bool:
    """Record the transfer and its lines; False (and nothing written) if the number is taken."""
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO transfer (id, from_location, to_location, status, workflow_id) VALUES "
                "(:id, :f, :t, 'requested', :wf) ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            {"id": number, "f": from_location, "t": to_location, "wf": workflow_id},
        )
    ).first()
    if inserted is None:
        return False
    for ln in lines:
        await conn.execute(
            text("INSERT INTO transfer_line (transfer_id, sku, lot, qty) VALUES (:id, :s, :lot, :q)"),
            {"id": number, "s": ln.sku, "lot": ln.lot, "q": ln.qty},
        )
    return True

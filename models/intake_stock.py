"""What order intake reads to turn away, before anything is written, an order without
backorders that the stock cannot cover (domain.atp.intake_refusals): the availability
snapshot of the SKUs asked for, computed by the same function reservation and the feed use
(models.availability.load_snapshot), and which of those SKUs are not sourced from stock now.

The read takes no lock and writes nothing; it runs in one REPEATABLE READ transaction so its
statements see one instant (read one by one, a reservation committing between the balances
and the per-channel reservations could show less ATP than there ever was)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.atp import AvailabilitySnapshot
from models.availability import load_snapshot

# (channel, SKU) of every SKU a channel's drop-ship location sells: never reserved from stock
# (the same supplier items order sourcing drop-ships, models.order_store.dropship_skus).
_DROPSHIP = text(
    "SELECT cl.channel, i.sku FROM channel_location cl"
    " JOIN location l ON l.code = cl.location AND l.can_ship AND l.type = 'dropship'"
    " JOIN supplier s ON s.code = l.supplier AND s.dropship"
    " JOIN supplier_item i ON i.supplier = s.code WHERE i.sku = ANY(:s)"
)
_SKUS = text(
    "SELECT code, (release_at IS NOT NULL AND release_at > now()) AS pre_order FROM sku WHERE code = ANY(:s)"
)


@dataclass(frozen=True)
class IntakeStock:
    snapshot: AvailabilitySnapshot  # the SKUs asked for (kits with their components), every channel
    known: frozenset[str]  # the SKUs asked for that exist
    pre_order: frozenset[str]  # not released yet: their lines wait for the release, not for stock
    dropship: frozenset[tuple[str, str]]  # (channel, SKU) drop-shipped on that channel

    def not_from_stock(self, channel: str) -> set[str]:
        """The SKUs whose lines this channel does not source from stock now."""
        return set(self.pre_order) | {sku for ch, sku in self.dropship if ch == channel}


async def read_intake_stock(engine: AsyncEngine, skus: Iterable[str]) -> IntakeStock:
    """The one read behind the intake pre-filter (see the module docstring)."""
    asked = sorted(set(skus))
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            rows = (await conn.execute(_SKUS, {"s": asked})).all()
            dropship = (await conn.execute(_DROPSHIP, {"s": asked})).all()
            snapshot = await load_snapshot(conn, asked, with_kits=False)
    return IntakeStock(
        snapshot,
        frozenset(r.code for r in rows),
        frozenset(r.code for r in rows if r.pre_order),
        frozenset((r.channel, r.sku) for r in dropship),
    )

"""What order intake reads to turn away, before anything is written, an order without
backorders that the stock cannot cover (domain.atp.intake_refusals): the availability
snapshot of the SKUs asked for, computed by the same function reservation and the feed use
(models.availability.load_snapshot), and which of those SKUs are not sourced from stock now.

The read takes no lock and writes nothing; it runs in one REPEATABLE READ transaction so its
statements see one instant (read one by one, a reservation committing between the balances
and the per-channel reservations could show less ATP than there ever was)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, text
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
# Orders taken in the last :window seconds that have not reached sourcing yet (still `received`,
# nothing reserved under their id: a batch's reservation commits before the order's own step
# does), as (order, channel, SKU, units) per line, kits as their components.
_PENDING = text(
    "SELECT o.id, o.channel, coalesce(c.component_sku, l.sku) AS sku, l.qty * coalesce(c.qty, 1) AS qty"
    " FROM sales_order o JOIN order_line l ON l.order_id = o.id"
    " LEFT JOIN sku_component c ON c.kit_sku = l.sku"
    " WHERE o.channel = ANY(:ch) AND o.status = 'received'"
    " AND o.created_at > now() - make_interval(secs => :window)"
    " AND coalesce(c.component_sku, l.sku) = ANY(:s)"
    " AND NOT EXISTS (SELECT 1 FROM reservation r WHERE r.ref = o.id)"
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
    # (order, channel, SKU, units): lines of orders taken, not sourced yet (domain.atp.after_pending)
    pending: tuple[tuple[str, str, str, int], ...] = ()

    def not_from_stock(self, channel: str) -> set[str]:
        """The SKUs whose lines this channel does not source from stock now."""
        return set(self.pre_order) | {sku for ch, sku in self.dropship if ch == channel}


async def read_intake_stock(
    engine: AsyncEngine, skus: Iterable[str], pending_window: float = 60.0
) -> IntakeStock:
    """The one read behind the intake pre-filter (see the module docstring). `pending_window`:
    how long an order taken counts as on its way to sourcing (0: not at all); one whose
    workflow never started stops holding units back after it."""
    asked = sorted(set(skus))
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            rows = (await conn.execute(_SKUS, {"s": asked})).all()
            dropship = (await conn.execute(_DROPSHIP, {"s": asked})).all()
            snapshot = await load_snapshot(conn, asked, with_kits=False)
            pending: Sequence[Row[Any]] = ()
            if pending_window > 0:
                held = sorted({sku for sku, _ in snapshot.stock})
                params = {"ch": sorted(snapshot.channel_locations), "window": pending_window, "s": held}
                pending = (await conn.execute(_PENDING, params)).all()
    return IntakeStock(
        snapshot,
        frozenset(r.code for r in rows),
        frozenset(r.code for r in rows if r.pre_order),
        frozenset((r.channel, r.sku) for r in dropship),
        tuple((r.id, r.channel, r.sku, int(r.qty)) for r in pending),
    )

"""The inventory core. Every stock change of the system goes through these functions, each
inside the caller's transaction (one unit of work), idempotent by a business key:

    apply_moves   adjustments, status moves, transfer legs, receipts, shipments  (moves.py)
    reserve       all-or-nothing reservation of order lines for a channel (kits: every component)
                  (a batch of one; its statements in reservations.py, its rules in domain/reservation.py)
    apply_batch   many reservations, releases and consumes under one acquisition of their
                  SKU locks, each with its own key and outcome                    (batch.py)
    release       give reserved units back (cancel, short pick, re-sourcing)    (settlement.py)
    consume       reserved units leave with a shipment (sellable → customer)   (settlement.py)
    check         every balance equals the sum of its moves                      (audit.py)

Locking, always in this order, so two operations never deadlock and never oversell:
1. per-SKU advisory locks, sorted (models/availability.lock_skus) — before any write;
2. reservation rows (release/consume), by id;
3. balance rows `SELECT … FOR UPDATE` in primary-key order.
Every rule (ATP, ring-fences, safety stock) is computed under those locks."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError
from domain.reservation import ReserveLine, ReserveRequest
from models.availability import lock_sku_set, lock_skus
from models.stock.audit import check
from models.stock.batch import SettleRequest, apply_batch
from models.stock.moves import SELLABLE, Move, adjustment_move, announce_sellable_increase, apply_moves
from models.stock.operations import OperationResult
from models.stock.settlement import consume, release

__all__ = [
    "SELLABLE",
    "Move",
    "OperationResult",
    "ReserveLine",
    "ReserveRequest",
    "SettleRequest",
    "adjustment_move",
    "announce_sellable_increase",
    "apply_batch",
    "apply_moves",
    "check",
    "consume",
    "lock_sku_set",
    "lock_skus",
    "release",
    "reserve",
]


async def reserve(
    conn: AsyncConnection, key: str, channel: str, lines: list[ReserveLine], *, ref: str = ""
) -> OperationResult:
    """Reserve every line at its location for `channel`, or nothing (ReservationShortage).
    Kits reserve every component at the kit line's location, and respect the kit's own
    safety stock. Lot-tracked SKUs take unexpired lots first-expiry-first-out. Idempotent
    by `key`. A batch of one (models/stock/batch.py): a context read, then three statements
    under the SKU locks: lock, claim-and-read, write."""
    outcome = (await apply_batch(conn, [ReserveRequest(key, channel, lines, ref)]))[0]
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome

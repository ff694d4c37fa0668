"""The inventory core. Every stock change of the system goes through these functions, each
inside the caller's transaction (one unit of work), idempotent by a business key:

    apply_moves   adjustments, status moves, transfer legs, receipts, shipments  (moves.py)
    reserve       all-or-nothing reservation of order lines for a channel (kits: every component)
                  (below; its statements in reservations.py, its rules in domain/reservation.py)
    release       give reserved units back (cancel, short pick, re-sourcing)    (settlement.py)
    consume       reserved units leave with a shipment (sellable → customer)   (settlement.py)
    check         every balance equals the sum of its moves                      (audit.py)

Locking, always in this order, so two operations never deadlock and never oversell:
1. per-SKU advisory locks, sorted (models/availability.lock_skus) — before any write;
2. reservation rows (release/consume), by id;
3. balance rows `SELECT … FOR UPDATE` in primary-key order.
Every rule (ATP, ring-fences, safety stock) is computed under those locks."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.reservation import ReserveLine, expand_lines, plan_reservation
from models.availability import lock_sku_set, lock_skus
from models.stock import reservations
from models.stock.audit import check
from models.stock.moves import SELLABLE, Move, adjustment_move, announce_sellable_increase, apply_moves
from models.stock.operations import OperationResult, fingerprint, replay_committed, replayed
from models.stock.settlement import consume, release

__all__ = [
    "SELLABLE",
    "Move",
    "OperationResult",
    "ReserveLine",
    "adjustment_move",
    "announce_sellable_increase",
    "apply_moves",
    "check",
    "consume",
    "lock_sku_set",
    "lock_skus",
    "release",
    "reserve",
]


# `reserve` is defined here, not in reservations.py, so that it calls `lock_sku_set` through
# this module: bench/reserve.py times that phase by wrapping `models.stock.lock_sku_set`.
async def reserve(
    conn: AsyncConnection, key: str, channel: str, lines: list[ReserveLine], *, ref: str = ""
) -> OperationResult:
    """Reserve every line at its location for `channel`, or nothing (ReservationShortage).
    Kits reserve every component at the kit line's location, and respect the kit's own
    safety stock. Lot-tracked SKUs take unexpired lots first-expiry-first-out. Idempotent
    by `key`. Three statements run under the SKU locks: lock, claim-and-read, write."""
    digest = fingerprint({"channel": channel, "lines": [asdict(ln) for ln in lines], "ref": ref})
    ctx = await reservations.read_context(conn, key, lines)
    if ctx["op"] is not None:
        return replayed(key, "reserve", digest, ctx["op"])
    context = reservations.context_of(ctx)
    # Validated (and kits expanded) before any lock or write: what to lock and read.
    components = expand_lines(channel, lines, context.catalog)
    skus = {c.sku for c in components}
    await lock_sku_set(conn, skus | context.kits)
    state = await reservations.claim_and_read(conn, key, ref, digest, components, context)
    if not state.claimed:  # the same key committed while we waited for the lock
        return await replay_committed(conn, key, "reserve", digest)
    plan = plan_reservation(
        channel,
        lines,
        context.catalog,
        context.snapshot(state, skus),
        reservations.balances_of(state.rows),
        datetime.now(UTC),
    )
    await reservations.write(conn, key, ref, channel, plan)
    return OperationResult(key=key, kind="reserve", data=plan.result)

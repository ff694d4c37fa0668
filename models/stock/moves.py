"""Stock moves: adjustments, status moves, transfer legs, receipts and shipments, each a move
of units between (location, status) buckets of one SKU (and lot). A virtual location
(`adjustment`, `supplier`, `customer`, ...) has no balance: it is where units come from or
go to. Every move is valued (models/finance) and posted to the ledger."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import InsufficientStock, InvalidStockChange, UnknownReference
from domain.posting import ACCOUNT_OF_STATUS, lines_for, move_event
from models.availability import lock_skus, refresh_availability
from models.finance import Posting, average_cost, post, value_in, value_out
from models.inventory import STATUSES
from models.stock.operations import OperationResult, claim, finish

SELLABLE = "sellable"


@dataclass(frozen=True)
class Move:
    sku: str
    qty: int
    from_location: str
    from_status: str
    to_location: str
    to_status: str
    lot: str = ""
    expires_at: datetime | None = None
    unit_cost: int | None = None  # for inbound value (a PO receipt's price); else the moving average


def adjustment_move(
    sku: str, location: str, status: str, delta: int, lot: str = "", expires_at: datetime | None = None
) -> Move:
    """An adjustment is a move from/to the virtual `adjustment` location."""
    if delta > 0:
        return Move(sku, delta, "adjustment", "virtual", location, status, lot, expires_at)
    return Move(sku, -delta, location, status, "adjustment", "virtual", lot, expires_at)


async def _location_types(conn: AsyncConnection, codes: set[str]) -> dict[str, str]:
    rows = await conn.execute(
        text("SELECT code, type FROM location WHERE code = ANY(:codes)"), {"codes": list(codes)}
    )
    found = {r.code: r.type for r in rows}
    for code in sorted(codes - found.keys()):
        raise UnknownReference("location", code)
    return found


async def _sku_tracking(conn: AsyncConnection, skus: set[str]) -> dict[str, tuple[str, str]]:
    rows = await conn.execute(
        text("SELECT code, kind, tracking FROM sku WHERE code = ANY(:codes)"), {"codes": list(skus)}
    )
    found = {r.code: (r.kind, r.tracking) for r in rows}
    for code in sorted(skus - found.keys()):
        raise UnknownReference("SKU", code)
    return found


async def _ensure_bucket(
    conn: AsyncConnection, sku: str, location: str, status: str, lot: str, expires_at: datetime | None
) -> int:
    row = (
        await conn.execute(
            text(
                """
                WITH ins AS (
                    INSERT INTO stock_balance (sku, location, status, lot, expires_at, qty, reserved, is_virtual,
                                               unit_cost)
                    VALUES (:sku, :location, :status, :lot, :expires_at, 0, 0, false, 0)
                    ON CONFLICT (sku, location, status, lot) DO NOTHING RETURNING id
                )
                SELECT id FROM ins UNION ALL
                SELECT id FROM stock_balance
                WHERE sku = :sku AND location = :location AND status = :status AND lot = :lot
                LIMIT 1
                """
            ),
            {"sku": sku, "location": location, "status": status, "lot": lot, "expires_at": expires_at},
        )
    ).one()
    return int(row.id)


async def lock_balances(conn: AsyncConnection, ids: set[int]) -> dict[int, Any]:
    """`SELECT … FOR UPDATE` of these balance rows, in primary-key order."""
    rows = await conn.execute(
        text(
            "SELECT id, sku, location, status, lot, expires_at, qty, reserved FROM stock_balance "
            "WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
        ),
        {"ids": sorted(ids)},
    )
    return {r.id: r for r in rows}


def _validate_move(m: Move, types: dict[str, str], skus: dict[str, tuple[str, str]]) -> None:
    kind, tracking = skus[m.sku]
    if kind == "kit":
        raise InvalidStockChange(f"{m.sku} is a kit: stock is kept for its components")
    if m.qty <= 0:
        raise InvalidStockChange("a move needs a positive quantity")
    for loc, status in ((m.from_location, m.from_status), (m.to_location, m.to_status)):
        if types[loc] != "virtual" and status not in STATUSES:
            raise InvalidStockChange(f"unknown stock status {status!r}")
    if types[m.from_location] == "virtual" and types[m.to_location] == "virtual":
        raise InvalidStockChange("a move needs at least one real location")
    if (m.from_location, m.from_status) == (m.to_location, m.to_status):
        raise InvalidStockChange("a move must change location or status")
    # Units on order (inbound) have no lot yet: the lot is known when they are received.
    on_order = "inbound" in (m.from_status, m.to_status) and "virtual" in (
        types[m.from_location],
        types[m.to_location],
    )
    if tracking == "lot" and not m.lot and not on_order:
        raise InvalidStockChange(f"{m.sku} is lot-tracked: name the lot")
    if tracking != "lot" and m.lot:
        raise InvalidStockChange(f"{m.sku} is not lot-tracked: leave the lot out")


_TAKE = text(
    "UPDATE stock_balance SET qty = qty - :qty WHERE id = :balance_id AND qty - reserved >= :qty RETURNING qty"
)
_PUT = text(
    "UPDATE stock_balance SET qty = qty + :qty, expires_at = COALESCE(expires_at, :expires_at)"
    " WHERE id = :balance_id"
)
_RECORD_MOVE = text(
    "INSERT INTO stock_move (op_key, sku, lot, from_location, from_status, to_location, to_status, qty,"
    " reason, ref) VALUES (:key, :sku, :lot, :from_location, :from_status, :to_location, :to_status, :qty,"
    " :reason, :ref)"
)


async def apply_moves(
    conn: AsyncConnection, key: str, kind: str, moves: list[Move], *, reason: str, ref: str = ""
) -> OperationResult:
    """Apply stock moves atomically, once per `key`. Raises InsufficientStock (nothing applied)
    when a real bucket would go below its reserved units."""
    skus = {m.sku for m in moves}
    await lock_skus(conn, skus)
    payload = {"moves": [asdict(m) for m in moves], "reason": reason, "ref": ref}
    done = await claim(conn, key, kind, ref, payload)
    if done is not None:
        return done
    types = await _location_types(conn, {m.from_location for m in moves} | {m.to_location for m in moves})
    tracking = await _sku_tracking(conn, skus)
    for m in moves:
        _validate_move(m, types, tracking)
    real = {code: type_ != "virtual" for code, type_ in types.items()}
    bucket = await _ensure_buckets(conn, moves, real)
    await lock_balances(conn, set(bucket.values()))
    arrivals: dict[tuple[str, str], int] = defaultdict(int)
    applied: list[dict[str, Any]] = []
    postings: list[Posting] = []
    events: set[str] = set()
    for m in moves:
        if await _apply_move(conn, key, m, bucket, real, reason=reason, ref=ref):
            arrivals[(m.sku, m.to_location)] += m.qty
        applied.append(
            {
                "sku": m.sku,
                "lot": m.lot,
                "qty": m.qty,
                "from": [m.from_location, m.from_status],
                "to": [m.to_location, m.to_status],
            }
        )
        event, lines = await _value_move(conn, m, real[m.from_location], real[m.to_location], reason)
        if event:
            events.add(event)
        postings += lines
    for (sku, location), qty in sorted(arrivals.items()):
        await announce_sellable_increase(conn, sku, location, qty, reason, ref)
    await post(conn, key, events.pop() if len(events) == 1 else kind, postings, ref=ref, memo=reason)
    await refresh_availability(conn, skus)
    return await finish(conn, OperationResult(key=key, kind=kind, data={"moves": applied}))


Bucket = tuple[str, str, str, str]  # (sku, location, status, lot) of a real location


async def _ensure_buckets(
    conn: AsyncConnection, moves: list[Move], real: dict[str, bool]
) -> dict[Bucket, int]:
    """The balance row id of every real bucket the moves touch (created empty if new)."""
    bucket: dict[Bucket, int] = {}
    for m in moves:
        for loc, status in ((m.from_location, m.from_status), (m.to_location, m.to_status)):
            k = (m.sku, loc, status, m.lot)
            if real[loc] and k not in bucket:
                bucket[k] = await _ensure_bucket(conn, m.sku, loc, status, m.lot, m.expires_at)
    return bucket


async def _apply_move(
    conn: AsyncConnection,
    key: str,
    m: Move,
    bucket: dict[Bucket, int],
    real: dict[str, bool],
    *,
    reason: str,
    ref: str,
) -> bool:
    """Take the units from their bucket, put them in the other, record the move. True when
    they arrive as sellable (at a location where they were not sellable before)."""
    real_from, real_to = real[m.from_location], real[m.to_location]
    if real_from:
        await _take(conn, m, bucket[(m.sku, m.from_location, m.from_status, m.lot)])
    arrived = False
    if real_to:
        bid = bucket[(m.sku, m.to_location, m.to_status, m.lot)]
        await conn.execute(_PUT, {"qty": m.qty, "balance_id": bid, "expires_at": m.expires_at})
        sellable_before = real_from and m.from_status == SELLABLE and m.from_location == m.to_location
        arrived = m.to_status == SELLABLE and not sellable_before
    await conn.execute(
        _RECORD_MOVE,
        {
            "key": key,
            "sku": m.sku,
            "lot": m.lot,
            "from_location": m.from_location,
            "from_status": m.from_status if real_from else "virtual",
            "to_location": m.to_location,
            "to_status": m.to_status if real_to else "virtual",
            "qty": m.qty,
            "reason": reason,
            "ref": ref,
        },
    )
    return arrived


async def _take(conn: AsyncConnection, m: Move, balance_id: int) -> None:
    """Take the move's units from a real bucket, never below its reserved units."""
    taken = await conn.execute(_TAKE, {"qty": m.qty, "balance_id": balance_id})
    if taken.first() is not None:
        return
    cur = (
        await conn.execute(
            text("SELECT qty, reserved FROM stock_balance WHERE id = :balance_id"), {"balance_id": balance_id}
        )
    ).one()
    raise InsufficientStock(
        m.sku, m.from_location, m.from_status, m.lot, m.qty, int(cur.qty), int(cur.qty - cur.reserved)
    )


async def _value_move(
    conn: AsyncConnection, m: Move, real_from: bool, real_to: bool, reason: str
) -> tuple[str | None, list[Posting]]:
    """Carry the move's value between valuation rows and say how the ledger sees it."""
    from_acc = ACCOUNT_OF_STATUS.get(m.from_status) if real_from else None
    to_acc = ACCOUNT_OF_STATUS.get(m.to_status) if real_to else None
    if from_acc is None and to_acc is None:
        return None, []
    if from_acc is not None and (from_acc, m.from_location) == (to_acc, m.to_location):
        return None, []  # e.g. sellable -> quarantine: same account, same place
    if from_acc is not None:
        value = await value_out(conn, m.sku, m.from_location, from_acc, m.qty)
    else:
        value = m.qty * (m.unit_cost if m.unit_cost is not None else await average_cost(conn, m.sku))
    if to_acc is not None:
        await value_in(conn, m.sku, m.to_location, to_acc, m.qty, value)
    event = move_event(from_acc, to_acc, m.from_location, m.to_location, reason)
    if event is None:
        return None, []
    place = {from_acc: m.from_location, to_acc: m.to_location}
    lines = lines_for(event, {"value": value, "cost": value}, from_account=from_acc, to_account=to_acc)
    real_place = m.to_location if real_to else m.from_location
    return event, [Posting.of(ln, location=place.get(ln.account, real_place), sku=m.sku) for ln in lines]


async def announce_sellable_increase(
    conn: AsyncConnection, sku: str, location: str, qty: int, reason: str, ref: str
) -> None:
    """The one hook for "sellable stock rose": waiting backorders subscribe to `stock_arrival`."""
    await conn.execute(
        text(
            "INSERT INTO stock_arrival (sku, location, qty, reason, ref)"
            " VALUES (:sku, :location, :qty, :reason, :ref)"
        ),
        {"sku": sku, "location": location, "qty": qty, "reason": reason, "ref": ref},
    )

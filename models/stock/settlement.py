"""Settling reservations: `release` gives reserved units back (cancel, short pick,
re-sourcing), `consume` ships them (sellable → customer). Both take the whole reservation or
up to a quantity per line; a kit line (`1`) settles its component lines (`1/TEE`) at
qty × units per kit."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import InvalidStockChange
from domain.posting import ACCOUNT_OF_STATUS, lines_for
from models.availability import lock_skus, lock_skus_of_reservation, refresh_availability
from models.finance import Posting, post, value_out
from models.stock.moves import lock_balances
from models.stock.operations import OperationResult, claim, finish

_UNRESERVE = text(
    """
    WITH b AS (
        UPDATE stock_balance s SET reserved = s.reserved - d.q
        FROM unnest(CAST(:balance_ids AS bigint[]), CAST(:balance_units AS int[])) AS d(id, q)
        WHERE s.id = d.id RETURNING 1
    )
    UPDATE channel_reserved c SET qty = c.qty - d.q
    FROM unnest(CAST(:skus AS text[]), CAST(:locations AS text[]), CAST(:units AS int[])) AS d(s, l, q)
    WHERE c.sku = d.s AND c.location = d.l AND c.channel = :channel
    """
)


async def _unreserve(conn: AsyncConnection, channel: str, deltas: list[tuple[int, str, str, int]]) -> None:
    """Give back reserved units of one channel: deltas are (balance id, sku, location, qty)."""
    per_balance: dict[int, int] = defaultdict(int)
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    for bid, sku, location, qty in deltas:
        per_balance[bid] += qty
        per_pair[(sku, location)] += qty
    ids = sorted(per_balance)
    pairs = sorted(per_pair)
    await conn.execute(
        _UNRESERVE,
        {
            "balance_ids": ids,
            "balance_units": [per_balance[i] for i in ids],
            "channel": channel,
            "skus": [p[0] for p in pairs],
            "locations": [p[1] for p in pairs],
            "units": [per_pair[p] for p in pairs],
        },
    )


async def _active_reservations(
    conn: AsyncConnection, reservation_key: str, lines: dict[str, int] | None
) -> list[Any]:
    rows = (
        await conn.execute(
            text(
                "SELECT r.id, r.line, r.channel, r.sku, r.location, r.lot, r.per_unit,"
                " r.qty - r.consumed - r.released AS active,"
                " b.id AS balance_id FROM reservation r JOIN stock_balance b ON b.sku = r.sku AND"
                " b.location = r.location AND b.status = 'sellable' AND b.lot = r.lot"
                " WHERE r.key = :reservation_key AND r.consumed + r.released < r.qty"
                " ORDER BY r.id FOR UPDATE OF r"
            ),
            {"reservation_key": reservation_key},
        )
    ).all()
    if lines is None:
        return list(rows)
    return [r for r in rows if r.line in lines or r.line.split("/")[0] in lines]


def _budgets(rows: list[Any], lines: dict[str, int]) -> tuple[dict[str, int], int]:
    """Units to settle per reservation line, and the units asked that match no line. A kit
    line (`1`) settles its component lines (`1/TEE`) at qty × units per kit."""
    budget: dict[str, int] = {}
    matched: set[str] = set()
    for r in rows:
        if r.line in lines:
            budget[r.line] = lines[r.line]
            matched.add(r.line)
        elif "/" in r.line and r.line.split("/")[0] in lines:
            kit_line = r.line.split("/")[0]
            budget[r.line] = lines[kit_line] * int(r.per_unit)
            matched.add(kit_line)
    return budget, sum(q for line, q in lines.items() if line not in matched)


def _take(rows: list[Any], lines: dict[str, int] | None) -> tuple[list[tuple[Any, int]], int]:
    """How much of each active reservation row to release/consume (per line, in id order),
    and how many asked units could not be found."""
    if lines is None:
        return [(r, int(r.active)) for r in rows], 0
    budget, unmatched = _budgets(rows, lines)
    out: list[tuple[Any, int]] = []
    for r in rows:
        want = budget.get(r.line, 0)
        n = min(want, int(r.active))
        if n > 0:
            out.append((r, n))
            budget[r.line] = want - n
    return out, unmatched + sum(budget.values())


async def release(
    conn: AsyncConnection,
    key: str,
    reservation_key: str,
    lines: dict[str, int] | None = None,
    *,
    ref: str = "",
) -> OperationResult:
    """Release active reserved units of a reservation (all of them, or up to `lines`:
    line -> qty). Idempotent by `key`."""
    return await _settle(conn, key, reservation_key, lines, ref=ref, consume=False)


async def consume(
    conn: AsyncConnection,
    key: str,
    reservation_key: str,
    lines: dict[str, int] | None = None,
    *,
    ref: str = "",
) -> OperationResult:
    """Ship reserved units: sellable → customer, reservation consumed. Idempotent by `key`."""
    return await _settle(conn, key, reservation_key, lines, ref=ref, consume=True)


_CONSUMED = text("UPDATE reservation SET consumed = consumed + :qty WHERE id = :reservation_id")
_RELEASED = text("UPDATE reservation SET released = released + :qty WHERE id = :reservation_id")
_SHIP = text(
    "UPDATE stock_balance SET qty = qty - :qty"
    " WHERE sku = :sku AND location = :location AND status = 'sellable' AND lot = :lot"
)
_RECORD_SHIPMENT = text(
    "INSERT INTO stock_move (op_key, sku, lot, from_location, from_status, to_location, to_status,"
    " qty, reason, ref) VALUES (:key, :sku, :lot, :location, 'sellable', 'customer', 'virtual', :qty,"
    " 'shipment', :ref)"
)


async def _settle(
    conn: AsyncConnection,
    key: str,
    reservation_key: str,
    lines: dict[str, int] | None,
    *,
    ref: str,
    consume: bool,
) -> OperationResult:
    kind = "consume" if consume else "release"

    async def reserved_skus() -> set[str]:
        query = text("SELECT DISTINCT sku FROM reservation WHERE key = :reservation_key")
        return set((await conn.execute(query, {"reservation_key": reservation_key})).scalars())

    skus = await lock_skus_of_reservation(conn, reservation_key)
    # The reservation may have committed while we waited (or just before we looked): lock
    # whatever it holds now too, still before our first write.
    late = await reserved_skus() - skus
    if late:
        skus |= await lock_skus(conn, late)
    done = await claim(conn, key, kind, ref, {"reservation": reservation_key, "lines": lines})
    if done is not None:
        return done
    rows = await _active_reservations(conn, reservation_key, lines)
    takes, missing = _take(rows, lines)
    if missing:
        got = sum(n for _, n in takes)
        raise InvalidStockChange(
            f"only {got} of {got + missing} units are still reserved under {reservation_key}"
        )
    await lock_balances(conn, {int(r.balance_id) for r, _ in takes})
    settled: list[dict[str, Any]] = []
    by_channel: dict[str, list[tuple[int, str, str, int]]] = defaultdict(list)
    for r, n in takes:
        await conn.execute(_CONSUMED if consume else _RELEASED, {"qty": n, "reservation_id": r.id})
        by_channel[r.channel].append((int(r.balance_id), r.sku, r.location, n))
        settled.append(
            {
                "line": r.line,
                "sku": r.sku,
                "location": r.location,
                "lot": r.lot,
                "qty": n,
                "channel": r.channel,
            }
        )
    for channel, deltas in sorted(by_channel.items()):
        await _unreserve(conn, channel, deltas)
    if consume:
        shipment: list[Posting] = []
        for s in settled:
            shipped = {"qty": s["qty"], "sku": s["sku"], "location": s["location"], "lot": s["lot"]}
            await conn.execute(_SHIP, shipped)
            await conn.execute(_RECORD_SHIPMENT, {**shipped, "key": key, "ref": ref})
            cost = await value_out(conn, s["sku"], s["location"], ACCOUNT_OF_STATUS["sellable"], s["qty"])
            shipment += [
                Posting.of(ln, location=s["location"], sku=s["sku"], channel=s["channel"])
                for ln in lines_for("shipment", {"cost": cost}, from_account=ACCOUNT_OF_STATUS["sellable"])
            ]
        await post(conn, key, "shipment", shipment, ref=ref)
    await refresh_availability(conn, skus)
    return await finish(conn, OperationResult(key=key, kind=kind, data={"lines": settled}))

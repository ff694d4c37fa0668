"""Transfer steps. Each is one transaction through the inventory core, keyed
`transfer-{number}:{step}` so a retried activity moves nothing twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.errors import business_outcomes
from activities.exceptions import close_exception_row
from domain.audit import Actor
from domain.errors import InvalidStockChange
from models import audit as trail
from models import stock
from models.finance import average_cost
from workflows.contracts import (
    RECEIVE_TRANSFER,
    SETTLE_TRANSFER_DISCREPANCY,
    SHIP_TRANSFER,
    ReceivedLine,
    TransferDecision,
    TransferReceipt,
    TransferShipment,
    TransferState,
    transfer_workflow_id,
)


async def _set_status(conn: AsyncConnection, number: str, status: str) -> None:
    await conn.execute(
        text("UPDATE transfer SET status = :s, updated_at = now() WHERE id = :id"),
        {"s": status, "id": number},
    )


async def _header(conn: AsyncConnection, number: str) -> tuple[str, str]:
    row = (
        await conn.execute(
            text("SELECT from_location, to_location FROM transfer WHERE id = :id"), {"id": number}
        )
    ).one()
    return row.from_location, row.to_location


async def _status(conn: AsyncConnection, number: str) -> str:
    found = await conn.execute(text("SELECT status FROM transfer WHERE id = :id"), {"id": number})
    return str(found.scalar_one())


async def _audit(
    conn: AsyncConnection, actor: Actor | None, number: str, action: str, before: str, after: Any
) -> None:
    """A person's ship or receive: its audit row in the step's transaction, keyed by the step
    (`transfer-{number}:ship`), so a retried activity adds none."""
    key = f"{transfer_workflow_id(number)}:{action}"
    obj = trail.AuditObject("transfer", number)
    await trail.step(conn, actor, action, obj, key, before={"status": before}, after=after)


async def _shipped_lines(conn: AsyncConnection, number: str) -> dict[tuple[str, str], Row[Any]]:
    """The transfer's lines by (sku, lot), each with what was shipped."""
    return {
        (r.sku, r.lot): r
        for r in (
            await conn.execute(
                text("SELECT sku, lot, shipped FROM transfer_line WHERE transfer_id = :id"),
                {"id": number},
            )
        )
    }


def _check_receipt(
    number: str, lines: dict[tuple[str, str], Row[Any]], got: dict[tuple[str, str], ReceivedLine]
) -> None:
    """Every received line is on the transfer, and none receives more than was shipped."""
    for k, ln in got.items():
        if k not in lines:
            raise InvalidStockChange(f"{ln.sku} {ln.lot} is not on transfer {number}")
        if ln.qty_received < 0 or ln.qty_damaged < 0 or ln.qty_received + ln.qty_damaged > lines[k].shipped:
            raise InvalidStockChange(f"{ln.sku}: received + damaged exceeds the {lines[k].shipped} shipped")


def _receipt_moves(dst: str, got: dict[tuple[str, str], ReceivedLine]) -> list[stock.Move]:
    """In transit → sellable for what was received, → damaged for what arrived damaged."""
    moves: list[stock.Move] = []
    for (sku, lot), ln in sorted(got.items()):
        if ln.qty_received:
            moves.append(stock.Move(sku, ln.qty_received, dst, "in_transit", dst, "sellable", lot))
        if ln.qty_damaged:
            moves.append(stock.Move(sku, ln.qty_damaged, dst, "in_transit", dst, "damaged", lot))
    return moves


async def _record_receipt(
    conn: AsyncConnection,
    number: str,
    lines: dict[tuple[str, str], Row[Any]],
    got: dict[tuple[str, str], ReceivedLine],
) -> bool:
    """Writes received and damaged on every line; True when any line received other than shipped."""
    discrepancy = False
    for k, row in lines.items():
        seen = got.get(k)
        received, damaged = (seen.qty_received, seen.qty_damaged) if seen else (0, 0)
        discrepancy |= received != row.shipped
        await conn.execute(
            text(
                "UPDATE transfer_line SET received = :r, damaged = :d WHERE transfer_id = :id AND sku = :s "
                "AND lot = :lot"
            ),
            {"r": received, "d": damaged, "id": number, "s": k[0], "lot": k[1]},
        )
    return discrepancy


async def _value_at_risk(
    conn: AsyncConnection, lines: dict[tuple[str, str], Row[Any]], got: dict[tuple[str, str], ReceivedLine]
) -> int:
    """The units shipped but not received, at average cost."""
    at_risk = 0
    for k, row in lines.items():
        seen = got.get(k)
        short = row.shipped - (seen.qty_received if seen else 0)
        if short > 0:
            at_risk += short * await average_cost(conn, k[0])
    return at_risk


class TransferActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @SHIP_TRANSFER.implement
    async def ship_transfer(self, inp: TransferShipment) -> TransferState:
        """Sellable at the source → in transit at the destination."""
        number = inp.number
        async with business_outcomes(), self.engine.begin() as conn:
            src, dst = await _header(conn, number)
            before = await _status(conn, number)
            lines = (
                await conn.execute(
                    text("SELECT sku, lot, qty FROM transfer_line WHERE transfer_id = :id ORDER BY sku, lot"),
                    {"id": number},
                )
            ).all()
            moves = [stock.Move(r.sku, r.qty, src, "sellable", dst, "in_transit", r.lot) for r in lines]
            await stock.apply_moves(
                conn,
                f"{transfer_workflow_id(number)}:ship",
                "transfer_ship",
                moves,
                reason="transfer",
                ref=transfer_workflow_id(number),
            )
            await conn.execute(
                text("UPDATE transfer_line SET shipped = qty WHERE transfer_id = :id"), {"id": number}
            )
            await _set_status(conn, number, "shipped")
            shipped = [{"sku": r.sku, "lot": r.lot, "qty": r.qty} for r in lines]
            await _audit(conn, inp.actor, number, "ship", before, {"status": "shipped", "lines": shipped})
        return TransferState(number=number, status="shipped")

    @RECEIVE_TRANSFER.implement
    async def receive_transfer(self, inp: TransferReceipt) -> TransferState:
        """In transit → sellable (received) or damaged. Short or damaged → `discrepancy`."""
        number, req = inp.number, inp.receipt
        async with business_outcomes(), self.engine.begin() as conn:
            _, dst = await _header(conn, number)
            before = await _status(conn, number)
            lines = await _shipped_lines(conn, number)
            got = {(ln.sku, ln.lot): ln for ln in req.lines}
            _check_receipt(number, lines, got)
            moves = _receipt_moves(dst, got)
            if moves:
                await stock.apply_moves(
                    conn,
                    f"{transfer_workflow_id(number)}:receive",
                    "transfer_receive",
                    moves,
                    reason="transfer",
                    ref=transfer_workflow_id(number),
                )
            discrepancy = await _record_receipt(conn, number, lines, got)
            status = "discrepancy" if discrepancy else "completed"
            await _set_status(conn, number, status)
            at_risk = await _value_at_risk(conn, lines, got)
            after = {"status": status, "lines": req.lines, "value_at_risk": at_risk}
            await _audit(conn, req.actor, number, "receive", before, after)
        return TransferState(number=number, status=status, value_at_risk=at_risk)

    @SETTLE_TRANSFER_DISCREPANCY.implement
    async def settle_transfer_discrepancy(self, inp: TransferDecision) -> TransferState:
        """`write_off`: missing units were lost (in transit → adjustment). `found`: they arrived
        after all (in transit → sellable). Damaged units stay in `damaged` either way.
        Closes the exception in the same transaction."""
        number, resolution = inp.number, inp.resolution
        async with business_outcomes(), self.engine.begin() as conn:
            _, dst = await _header(conn, number)
            missing = (
                await conn.execute(
                    text(
                        "SELECT sku, lot, shipped - received - damaged AS n FROM transfer_line WHERE transfer_id = :id"
                        " AND shipped - received - damaged > 0 ORDER BY sku, lot"
                    ),
                    {"id": number},
                )
            ).all()
            to = ("adjustment", "virtual") if resolution.action == "write_off" else (dst, "sellable")
            moves = [stock.Move(r.sku, r.n, dst, "in_transit", to[0], to[1], r.lot) for r in missing]
            if moves:
                await stock.apply_moves(
                    conn,
                    f"{transfer_workflow_id(number)}:settle",
                    "transfer_settle",
                    moves,
                    reason="lost" if resolution.action == "write_off" else "found",
                    ref=transfer_workflow_id(number),
                )
            if resolution.action == "found":
                await conn.execute(
                    text("UPDATE transfer_line SET received = shipped - damaged WHERE transfer_id = :id"),
                    {"id": number},
                )
            await close_exception_row(conn, resolution)
            await _set_status(conn, number, "completed")
        return TransferState(number=number, status="completed")

"""Cycle count steps: evaluate a submitted count (snapshot the system quantity, post what is
within tolerance), and post or drop the rest once an approver decides."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.errors import business_outcomes
from activities.exceptions import close_exception_row
from domain.errors import InvalidStockChange
from models import audit as trail
from models import stock
from models.availability import lock_skus
from models.finance import average_cost
from workflows.contracts import (
    DECIDE_COUNT,
    EVALUATE_COUNT,
    CountDecision,
    CountEvaluation,
    CountState,
    CountTolerance,
    SubmitCount,
    count_workflow_id,
)


@dataclass(frozen=True)
class Variance:
    sku: str
    lot: str
    variance: int


async def _post(
    conn: AsyncConnection, count_id: str, location: str, step: str, lines: list[Variance]
) -> None:
    moves = [
        stock.adjustment_move(v.sku, location, "sellable", v.variance, v.lot) for v in lines if v.variance
    ]
    if moves:
        await stock.apply_moves(
            conn,
            f"{count_workflow_id(count_id)}:{step}",
            "adjustment",
            moves,
            reason="count",
            ref=count_workflow_id(count_id),
        )


async def _lines(conn: AsyncConnection, count_id: str) -> list[dict[str, object]]:
    """The count's lines as recorded (what the audit trail shows was counted)."""
    rows = await conn.execute(
        text(
            "SELECT sku, lot, expected, counted, variance, within_tolerance FROM cycle_count_line"
            " WHERE count_id = :id ORDER BY sku, lot"
        ),
        {"id": count_id},
    )
    return [dict(r._mapping) for r in rows]


async def _skus_to_count(conn: AsyncConnection, count_id: str) -> set[str]:
    return {
        r.sku
        for r in await conn.execute(
            text("SELECT sku FROM cycle_count_line WHERE count_id = :id"), {"id": count_id}
        )
    }


def _check_submission(count_id: str, wanted: set[str], submitted: SubmitCount) -> None:
    """Every counted line is a SKU of the count, with a count of zero or more."""
    for ln in submitted.lines:
        if ln.sku not in wanted:
            raise InvalidStockChange(f"{ln.sku} is not part of count {count_id}")
        if ln.counted < 0:
            raise InvalidStockChange(f"{ln.sku}: a count cannot be negative")


async def _expected(conn: AsyncConnection, location: str, skus: set[str]) -> dict[tuple[str, str], int]:
    """(sku, lot) -> the sellable units the system holds at `location`."""
    return {
        (r.sku, r.lot): int(r.qty)
        for r in await conn.execute(
            text(
                "SELECT sku, lot, qty FROM stock_balance WHERE location = :l AND status = 'sellable' "
                "AND sku = ANY(:s)"
            ),
            {"l": location, "s": sorted(skus)},
        )
    }


def _count_keys(
    wanted: set[str], expected: dict[tuple[str, str], int], counted: dict[tuple[str, str], int]
) -> list[tuple[str, str]]:
    """Every (sku, lot) expected or counted, and (sku, "") for a SKU of the count with neither."""
    seen = set(expected) | set(counted)
    return sorted(seen | {(s, "") for s in wanted if not any(k[0] == s for k in seen)})


async def _record_lines(
    conn: AsyncConnection,
    count_id: str,
    wanted: set[str],
    expected: dict[tuple[str, str], int],
    counted: dict[tuple[str, str], int],
    tolerance: CountTolerance,
) -> tuple[list[Variance], int, int]:
    """A count line per (sku, lot) with its variance and whether it is within tolerance. The
    variances within tolerance, how many lines are over it, and their value at risk."""
    within: list[Variance] = []
    over = 0
    at_risk = 0
    for sku, lot in _count_keys(wanted, expected, counted):
        exp = expected.get((sku, lot), 0)
        got = counted.get((sku, lot), exp)  # a lot not counted is taken as found as expected
        variance = got - exp
        value = abs(variance) * await average_cost(conn, sku)
        ok = abs(variance) <= tolerance.units and value <= tolerance.value
        await conn.execute(
            text(
                "INSERT INTO cycle_count_line (count_id, sku, lot, expected, counted, variance, variance_value,"
                " within_tolerance) VALUES (:id, :s, :lot, :e, :c, :v, :vv, :ok)"
            ),
            {"id": count_id, "s": sku, "lot": lot, "e": exp, "c": got, "v": variance, "vv": value, "ok": ok},
        )
        if ok:
            within.append(Variance(sku, lot, variance))
        else:
            over += 1
            at_risk += value
    return within, over, at_risk


class CycleCountActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @EVALUATE_COUNT.implement
    async def evaluate_count(self, inp: CountEvaluation) -> CountState:
        """Snapshot the expected quantity, record counts and variances, post the variances
        within tolerance now (as `count` adjustments). Over tolerance waits for approval."""
        count_id, req, tolerance = inp.count_id, inp.submitted, inp.tolerance
        async with business_outcomes(), self.engine.begin() as conn:
            head = (
                await conn.execute(
                    text("SELECT location, status FROM cycle_count WHERE id = :id"), {"id": count_id}
                )
            ).one()
            if head.status != "open":  # a retry after the commit: report what was decided
                return await _state(conn, count_id)
            wanted = await _skus_to_count(conn, count_id)
            _check_submission(count_id, wanted, req)
            await lock_skus(conn, wanted)  # the expected quantity must not move while we compare
            expected = await _expected(conn, head.location, wanted)
            counted = {(ln.sku, ln.lot): ln.counted for ln in req.lines}
            await conn.execute(text("DELETE FROM cycle_count_line WHERE count_id = :id"), {"id": count_id})
            within, over, at_risk = await _record_lines(conn, count_id, wanted, expected, counted, tolerance)
            await _post(conn, count_id, head.location, "post-within", within)
            status = "awaiting_approval" if over else "posted"
            await conn.execute(
                text(
                    "UPDATE cycle_count SET status = :s, submitted_at = now(), "
                    "posted_at = CASE WHEN :posted THEN now() END WHERE id = :id"
                ),
                {"s": status, "posted": status == "posted", "id": count_id},
            )
            after = {"status": status, "lines": await _lines(conn, count_id)}
            obj, key = trail.AuditObject("cycle_count", count_id), f"{count_workflow_id(count_id)}:submit"
            await trail.step(conn, req.actor, "submit", obj, key, before={"status": head.status}, after=after)
            return CountState(id=count_id, status=status, over_tolerance_lines=over, value_at_risk=at_risk)

    @DECIDE_COUNT.implement
    async def decide_count(self, inp: CountDecision) -> CountState:
        """`approve`: post the variances over tolerance; `reject`: post nothing more. Closes the
        exception in the same transaction."""
        count_id, resolution = inp.count_id, inp.resolution
        async with business_outcomes(), self.engine.begin() as conn:
            head = (
                await conn.execute(text("SELECT location FROM cycle_count WHERE id = :id"), {"id": count_id})
            ).one()
            if resolution.action == "approve":
                over = [
                    Variance(r.sku, r.lot, int(r.variance))
                    for r in await conn.execute(
                        text(
                            "SELECT sku, lot, variance FROM cycle_count_line WHERE count_id = :id AND NOT within_tolerance "
                            "ORDER BY sku, lot"
                        ),
                        {"id": count_id},
                    )
                ]
                await _post(conn, count_id, head.location, "post-approved", over)
            status = "posted" if resolution.action == "approve" else "rejected"
            await conn.execute(
                text("UPDATE cycle_count SET status = :s, posted_at = now() WHERE id = :id"),
                {"s": status, "id": count_id},
            )
            await close_exception_row(conn, resolution)
            return await _state(conn, count_id)


async def _state(conn: AsyncConnection, count_id: str) -> CountState:
    status = (
        await conn.execute(text("SELECT status FROM cycle_count WHERE id = :id"), {"id": count_id})
    ).scalar_one()
    over = (
        await conn.execute(
            text(
                "SELECT count(*), coalesce(sum(variance_value), 0) FROM cycle_count_line WHERE "
                "count_id = :id AND within_tolerance = false"
            ),
            {"id": count_id},
        )
    ).one()
    return CountState(
        id=count_id, status=str(status), over_tolerance_lines=int(over[0]), value_at_risk=int(over[1])
    )

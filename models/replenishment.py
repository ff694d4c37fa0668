"""The SQL of replenishment: what it reads in bulk (a handful of aggregate queries, never
one per SKU), its policies and factors, and the run row that makes a run idempotent.

**Scope**: every SKU-location with a `replenishment_policy` row, and every simple SKU stocked
at a real location (a stock bucket there, any status, even empty; not virtual, not drop-ship)
that some supplier supplies, with the defaults: safety stock 0, review days
`domain.replenishment.DEFAULT_REVIEW_DAYS`, the cheapest supplier.

**Shipped** = stock moves from the location to `customer` created in the last N days (now −
N days to now); the simulation's daily history counts whole UTC days up to yesterday."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.replenishment import DEFAULT_REVIEW_DAYS, Factor, StockPoint, SupplierOption
from models.base import stored_row

_POINTS = text(
    """
    WITH scope AS (
        SELECT sku, location FROM replenishment_policy
        UNION
        SELECT b.sku, b.location FROM stock_balance b
        JOIN location l ON l.code = b.location AND l.type NOT IN ('virtual', 'dropship')
        WHERE EXISTS (SELECT 1 FROM supplier_item i WHERE i.sku = b.sku)
    ), stock AS (
        SELECT sku, location,
               sum(qty) FILTER (WHERE status IN ('sellable', 'quarantine')) AS on_hand,
               sum(qty) FILTER (WHERE status = 'inbound') AS inbound,
               sum(reserved) AS reserved
        FROM stock_balance WHERE NOT is_virtual GROUP BY sku, location
    )
    SELECT s.sku, s.location, k.category, coalesce(st.on_hand, 0) AS on_hand,
           coalesce(st.inbound, 0) AS inbound, coalesce(st.reserved, 0) AS reserved,
           coalesce(p.safety_stock, 0) AS safety_stock, coalesce(p.review_days, :review) AS review_days,
           p.supplier
    FROM scope s JOIN sku k ON k.code = s.sku AND k.kind = 'simple'
    LEFT JOIN replenishment_policy p ON p.sku = s.sku AND p.location = s.location
    LEFT JOIN stock st ON st.sku = s.sku AND st.location = s.location
    WHERE CAST(:location AS text) IS NULL OR s.location = :location
    ORDER BY s.location, s.sku
    """
)

_SHIPPED = text(
    """
    SELECT sku, from_location AS location, sum(qty) AS units FROM stock_move
    WHERE to_location = 'customer' AND created_at >= now() - make_interval(days => :days)
      AND (CAST(:location AS text) IS NULL OR from_location = :location)
    GROUP BY sku, from_location
    """
)

_DAILY = text(
    """
    SELECT sku, from_location AS location, CAST(:today AS date) - (created_at AT TIME ZONE 'UTC')::date AS ago,
           sum(qty) AS units
    FROM stock_move
    WHERE to_location = 'customer'
      AND created_at >= (CAST(:today AS date) - CAST(:days AS int))::timestamp AT TIME ZONE 'UTC'
      AND created_at < CAST(:today AS date)::timestamp AT TIME ZONE 'UTC'
      AND (CAST(:location AS text) IS NULL OR from_location = :location)
    GROUP BY 1, 2, 3
    """
)

_OPTIONS = text(
    "SELECT i.supplier, i.sku, i.cost, i.currency, i.moq, i.order_multiple,"
    " coalesce(i.lead_time_days, s.lead_time_days) AS lead_time_days"
    " FROM supplier_item i JOIN supplier s ON s.code = i.supplier ORDER BY i.sku, i.supplier"
)

_FACTORS = text(
    "SELECT id, sku, category, starts_on, ends_on, factor FROM replenishment_factor"
    " WHERE ends_on >= :first AND starts_on <= :last ORDER BY id"
)


@dataclass(frozen=True)
class Inputs:
    """Everything a computation of suggestions reads, in five queries."""

    points: list[StockPoint]
    shipped: dict[tuple[str, str], int]
    options: dict[str, list[SupplierOption]]
    factors: list[Factor]


def _point(r: Row[Any]) -> StockPoint:
    return StockPoint(
        r.sku,
        r.location,
        r.category,
        int(r.on_hand),
        int(r.inbound),
        int(r.reserved),
        int(r.safety_stock),
        int(r.review_days),
        r.supplier,
    )


async def stock_points(conn: AsyncConnection, location: str | None = None) -> list[StockPoint]:
    rows = await conn.execute(_POINTS, {"review": DEFAULT_REVIEW_DAYS, "location": location})
    return [_point(r) for r in rows]


async def shipped(
    conn: AsyncConnection, days: int, location: str | None = None
) -> dict[tuple[str, str], int]:
    rows = await conn.execute(_SHIPPED, {"days": days, "location": location})
    return {(r.sku, r.location): int(r.units) for r in rows}


async def daily_shipped(
    conn: AsyncConnection, today: date, days: int, location: str | None = None
) -> dict[tuple[str, str], list[int]]:
    """Units shipped per whole UTC day, oldest first: index 0 is `days` days ago, the last yesterday."""
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * days)
    for r in await conn.execute(_DAILY, {"today": today, "days": days, "location": location}):
        out[(r.sku, r.location)][days - int(r.ago)] += int(r.units)
    return out


async def supplier_options(conn: AsyncConnection) -> dict[str, list[SupplierOption]]:
    out: dict[str, list[SupplierOption]] = defaultdict(list)
    for r in await conn.execute(_OPTIONS):
        out[r.sku].append(
            SupplierOption(r.supplier, r.sku, r.cost, r.currency, r.moq, r.order_multiple, r.lead_time_days)
        )
    return out


async def factors(conn: AsyncConnection, first: date = date.min, last: date = date.max) -> list[Factor]:
    rows = await conn.execute(_FACTORS, {"first": first, "last": last})
    return [Factor(r.starts_on, r.ends_on, Fraction(r.factor), r.sku, r.category) for r in rows]


async def load_inputs(
    conn: AsyncConnection, demand_days: int, today: date, location: str | None = None
) -> Inputs:
    return Inputs(
        await stock_points(conn, location),
        await shipped(conn, demand_days, location),
        await supplier_options(conn),
        await factors(conn, today, today),
    )


def _decimal(x: Fraction) -> Decimal:
    """A factor as the column keeps it (three decimals)."""
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal("0.001"))


async def replace_factors(conn: AsyncConnection, new: list[Factor]) -> None:
    """The whole set of factors becomes `new` (in the caller's transaction)."""
    await conn.execute(text("DELETE FROM replenishment_factor"))
    if new:
        await conn.execute(
            text(
                "INSERT INTO replenishment_factor (sku, category, starts_on, ends_on, factor)"
                " VALUES (:sku, :category, :starts_on, :ends_on, :factor)"
            ),
            [
                {
                    "sku": f.sku,
                    "category": f.category,
                    "starts_on": f.starts_on,
                    "ends_on": f.ends_on,
                    "factor": _decimal(f.factor),
                }
                for f in new
            ],
        )


async def policy(conn: AsyncConnection, sku: str, location: str) -> dict[str, Any] | None:
    """The SKU-location's policy as stored (None: it has none)."""
    columns = "safety_stock, review_days, supplier"
    return await stored_row(conn, "replenishment_policy", columns, sku=sku, location=location)


async def upsert_policy(
    conn: AsyncConnection, sku: str, location: str, safety_stock: int, review_days: int, supplier: str | None
) -> None:
    await conn.execute(
        text(
            "INSERT INTO replenishment_policy (sku, location, safety_stock, review_days, supplier)"
            " VALUES (:sku, :location, :safety_stock, :review_days, :supplier)"
            " ON CONFLICT (sku, location) DO UPDATE SET safety_stock = EXCLUDED.safety_stock,"
            " review_days = EXCLUDED.review_days, supplier = EXCLUDED.supplier"
        ),
        {
            "sku": sku,
            "location": location,
            "safety_stock": safety_stock,
            "review_days": review_days,
            "supplier": supplier,
        },
    )


# -- the run row ------------------------------------------------------------------------------


async def claim_run(conn: AsyncConnection, run_id: str) -> Row[Any]:
    """The run's row, created `running` if new, locked until commit: a second run of the same
    id waits here for the first to commit, then finds what it drafted."""
    await conn.execute(
        text(
            "INSERT INTO replenishment_run (run_id, status, result, started_at)"
            " VALUES (:run_id, 'running', '{}'::jsonb, now()) ON CONFLICT (run_id) DO NOTHING"
        ),
        {"run_id": run_id},
    )
    sql = text("SELECT run_id, status, result FROM replenishment_run WHERE run_id = :run_id FOR UPDATE")
    return (await conn.execute(sql, {"run_id": run_id})).one()


async def set_run(conn: AsyncConnection, run_id: str, status: str, result: Any | None = None) -> None:
    """`drafted` (with what it drafted) or `done` (its orders started, finished_at set)."""
    await conn.execute(
        text(
            "UPDATE replenishment_run SET status = CAST(:status AS text),"
            " result = coalesce(CAST(:result AS jsonb), result),"
            " finished_at = CASE WHEN CAST(:status AS text) = 'done' THEN coalesce(finished_at, now()) ELSE finished_at END"
            " WHERE run_id = :run_id"
        ),
        {
            "run_id": run_id,
            "status": status,
            "result": None if result is None else json.dumps(asdict(result)),
        },
    )


async def run_row(conn: AsyncConnection, run_id: str) -> Row[Any] | None:
    sql = text(
        "SELECT run_id, status, result, started_at, finished_at FROM replenishment_run WHERE run_id = :run_id"
    )
    return (await conn.execute(sql, {"run_id": run_id})).first()

"""The facts of the KPI report's order KPIs, read from the order read model (sales_order,
order_line, shipment) and returns, one statement for the order KPIs and one for backorders;
domain.kpis has the definitions and the arithmetic. Other areas: models.kpis_ops.

Every statement takes the window [start, end), `channel` (None: all) and `as_of` (now: an
outcome is known, and a backorder ages, as of now whatever the window)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.kpis import DEAD_RETURNS, DEFECT_CONDITIONS, Backorders, OrderFacts


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    as_of: datetime
    channel: str | None = None

    def params(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "as_of": self.as_of, "channel": self.channel}


# One row per order received in the window: its lines, its shipped shipments, whether a
# return of it was for a defect, and its ship-by time (received + the promise's seconds).
_ORDERS = """
WITH o AS (
  SELECT o.id, o.created_at, o.completed_at,
    o.created_at + make_interval(secs => coalesce((CAST(:ship_by AS jsonb) ->> o.promise)::int, :ship_by_other))
      AS due_at
  FROM sales_order o
  WHERE o.created_at >= :start AND o.created_at < :end AND (CAST(:channel AS text) IS NULL OR o.channel = :channel)
), f AS (
  SELECT o.*, l.lines, l.lines_complete, l.units, l.shipped, l.open_units, l.cancelled,
    s.shipments, s.last_shipped_at,
    EXISTS (SELECT 1 FROM sales_return r JOIN return_line rl ON rl.return_number = r.number
      JOIN return_reason rr ON rr.code = rl.reason
      WHERE r.order_id = o.id AND r.status <> ALL(:dead) AND (rr.defect OR rl.condition = ANY(:defects))) AS defect
  FROM o
  CROSS JOIN LATERAL (SELECT count(*) AS lines, count(*) FILTER (WHERE ol.shipped = ol.qty) AS lines_complete,
    coalesce(sum(ol.qty), 0) AS units, coalesce(sum(ol.shipped), 0) AS shipped,
    coalesce(sum(ol.qty - ol.shipped - ol.cancelled), 0) AS open_units, coalesce(sum(ol.cancelled), 0) AS cancelled
    FROM order_line ol WHERE ol.order_id = o.id) l
  CROSS JOIN LATERAL (SELECT count(*) AS shipments, max(sh.shipped_at) AS last_shipped_at
    FROM shipment sh WHERE sh.order_id = o.id AND sh.shipped_at IS NOT NULL) s
), j AS (
  SELECT f.*, (f.completed_at IS NOT NULL OR f.due_at <= :as_of) AS judged,
    (f.shipped > 0 AND f.last_shipped_at <= f.due_at) AS shipped_by_due,
    extract(epoch FROM f.last_shipped_at - f.created_at) AS cycle
  FROM f
)
SELECT
  count(*) AS received,
  count(*) FILTER (WHERE judged) AS judged,
  count(*) FILTER (WHERE judged AND shipped = units AND shipped_by_due AND NOT defect) AS perfect,
  coalesce(sum(lines) FILTER (WHERE judged), 0) AS lines,
  coalesce(sum(lines_complete) FILTER (WHERE judged), 0) AS lines_complete,
  coalesce(sum(units) FILTER (WHERE judged), 0) AS units,
  coalesce(sum(shipped) FILTER (WHERE judged), 0) AS units_shipped,
  count(*) FILTER (WHERE judged AND cancelled < units) AS to_ship,
  count(*) FILTER (WHERE judged AND cancelled < units AND open_units = 0 AND shipped_by_due) AS on_time,
  count(*) FILTER (WHERE shipments > 0) AS shipped,
  count(*) FILTER (WHERE shipments > 1) AS split,
  count(*) FILTER (WHERE open_units = 0 AND shipped > 0) AS done,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY cycle) FILTER (WHERE open_units = 0 AND shipped > 0) AS cycle_p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY cycle) FILTER (WHERE open_units = 0 AND shipped > 0) AS cycle_p95
FROM j
"""

_BACKORDERS = """
SELECT count(*) AS lines, coalesce(sum(l.backordered), 0) AS units,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM :as_of - l.backordered_since)) AS age_p50,
  max(extract(epoch FROM :as_of - l.backordered_since)) AS age_max
FROM order_line l JOIN sales_order o ON o.id = l.order_id
WHERE l.backordered > 0 AND o.created_at >= :start AND o.created_at < :end
  AND (CAST(:channel AS text) IS NULL OR o.channel = :channel)
"""


def as_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


async def order_facts(
    conn: AsyncConnection, w: Window, ship_by: Mapping[str, int], ship_by_other: int
) -> tuple[OrderFacts, int]:
    """The order KPIs' facts, and how many orders were received in the window."""
    params = {
        **w.params(),
        "ship_by": json.dumps(dict(ship_by)),
        "ship_by_other": ship_by_other,
        "dead": list(DEAD_RETURNS),
        "defects": list(DEFECT_CONDITIONS),
    }
    r = (await conn.execute(text(_ORDERS), params)).one()
    facts = OrderFacts(
        judged=int(r.judged),
        perfect=int(r.perfect),
        lines=int(r.lines),
        lines_complete=int(r.lines_complete),
        units=int(r.units),
        units_shipped=int(r.units_shipped),
        to_ship=int(r.to_ship),
        on_time=int(r.on_time),
        shipped=int(r.shipped),
        split=int(r.split),
        done=int(r.done),
        cycle_p50=as_float(r.cycle_p50),
        cycle_p95=as_float(r.cycle_p95),
    )
    return facts, int(r.received)


async def backorders(conn: AsyncConnection, w: Window, received: int) -> Backorders:
    r = (await conn.execute(text(_BACKORDERS), w.params())).one()
    return Backorders(received, int(r.lines), int(r.units), as_float(r.age_p50), as_float(r.age_max))


async def channel_exists(conn: AsyncConnection, code: str) -> bool:
    found = await conn.execute(text("SELECT 1 FROM channel WHERE code = :code"), {"code": code})
    return found.first() is not None

"""Waking backorders: the one subscriber of the `stock_arrival` hook. Reads arrivals in
(txid, id) order below the oldest running transaction (like the availability feed, so a
late commit is never skipped) and signals the waiting orders, oldest backorder first, as
many as the arrived units can serve."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from models.availability import decode_after, encode_after
from runtime.logging import get_logger
from workflows.contracts import WAKE_BACKORDERS, StockArrived, WakeInput, WakeResult

log = get_logger("omniflow.backorders")

_ARRIVALS = text(
    """
    SELECT id, txid, sku, qty FROM stock_arrival
    WHERE (txid, id) > (:tx, :id) AND txid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint
    ORDER BY txid, id LIMIT 500
    """
)

_WAITING = text(
    """
    SELECT l.order_id, sum(l.backordered) AS units, min(l.backordered_since) AS since
    FROM order_line l JOIN sales_order o ON o.id = l.order_id
    WHERE l.backordered > 0 AND o.status NOT IN ('cancelled', 'completed')
      AND (l.sku = :sku OR l.sku IN (SELECT kit_sku FROM sku_component WHERE component_sku = :sku))
    GROUP BY l.order_id ORDER BY min(l.backordered_since), l.order_id LIMIT 1000
    """
)


class BackorderActivities:
    def __init__(self, engine: AsyncEngine, client: Client) -> None:
        self.engine = engine
        self.client = client

    @WAKE_BACKORDERS.implement
    async def wake_backorders(self, inp: WakeInput) -> WakeResult:
        tx, last = decode_after(inp.after)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + inp.wait_seconds
        while True:
            async with self.engine.connect() as conn:
                rows = list(await conn.execute(_ARRIVALS, {"tx": tx, "id": last}))
            if rows or loop.time() >= deadline:
                break
            activity.heartbeat()
            await asyncio.sleep(0.5)
        if not rows:
            return WakeResult(inp.after, 0, [])
        arrived: dict[str, int] = defaultdict(int)
        for r in rows:
            arrived[r.sku] += int(r.qty)
        woken: list[str] = []
        for sku, qty in arrived.items():
            async with self.engine.connect() as conn:
                waiting = list(await conn.execute(_WAITING, {"sku": sku}))
            budget = qty
            for w in waiting:
                if budget <= 0:
                    break  # the periodic re-check of the others covers a reservation that fails
                budget -= int(w.units)
                await self._signal(w.order_id, sku)
                woken.append(w.order_id)
        end = rows[-1]
        log.info("backorders woken", arrivals=len(rows), orders=len(woken))
        return WakeResult(encode_after(int(end.txid), int(end.id)), len(rows), woken)

    async def _signal(self, order_id: str, sku: str) -> None:
        try:
            await self.client.get_workflow_handle(order_id).signal("stock_arrived", StockArrived([sku]))
        except RPCError as exc:  # the order finished meanwhile: nothing to wake
            log.info("backorder not woken", order_id=order_id, error=str(exc))

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
    SELECT l.order_id, sum(l.backordered) AS units,
           coalesce(min(l.backordered_since), '-infinity') AS since
    FROM order_line l JOIN sales_order o ON o.id = l.order_id
    WHERE l.backordered > 0 AND o.status NOT IN ('cancelled', 'completed')
      AND (l.sku = :sku OR l.sku IN (SELECT kit_sku FROM sku_component WHERE component_sku = :sku))
    GROUP BY l.order_id
    HAVING (coalesce(min(l.backordered_since), '-infinity'), l.order_id)
         > (CAST(:since AS timestamptz), :order_id)
    ORDER BY 3, l.order_id LIMIT :page
    """
)
PAGE = 1000  # waiting orders read at a time, oldest backorder first
WOKEN_LISTED = 100
SIGNALS_IN_FLIGHT = 32  # one arrival can wake thousands: signal them concurrently, not one by one


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
            woken += await self._wake(sku, qty)
        end = rows[-1]
        log.info("backorders woken", arrivals=len(rows), orders=len(woken))
        # The dispatcher's history keeps each result: the first ids and the count, not 10,000 ids.
        after = encode_after(int(end.txid), int(end.id))
        return WakeResult(after, len(rows), woken[:WOKEN_LISTED], woken_count=len(woken))

    async def _wake(self, sku: str, qty: int) -> list[str]:
        """Signal waiting orders of `sku`, oldest backorder first, page by page, until their
        backordered units use up the `qty` that arrived (a reservation that then fails is
        covered by the order's periodic re-check)."""
        woken: list[str] = []
        budget, since, after_id = qty, "-infinity", ""
        gate = asyncio.Semaphore(SIGNALS_IN_FLIGHT)

        async def signal(order_id: str) -> None:
            async with gate:
                await self._signal(order_id, sku)
                activity.heartbeat()

        while budget > 0:
            params = {"sku": sku, "since": since, "order_id": after_id, "page": PAGE}
            async with self.engine.connect() as conn:
                page = list(await conn.execute(_WAITING, params))
            batch: list[str] = []
            for w in page:
                if budget <= 0:
                    break
                budget -= int(w.units)
                batch.append(w.order_id)
            await asyncio.gather(*(signal(order_id) for order_id in batch))
            woken += batch
            if len(page) < PAGE:
                break
            since, after_id = page[-1].since, page[-1].order_id
        return woken

    async def _signal(self, order_id: str, sku: str) -> None:
        try:
            await self.client.get_workflow_handle(order_id).signal("stock_arrived", StockArrived([sku]))
        except RPCError as exc:  # the order finished meanwhile: nothing to wake
            log.info("backorder not woken", order_id=order_id, error=str(exc))

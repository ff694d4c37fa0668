"""Orders taken whose workflow never started. Intake commits the order, then starts its
workflow; when the engine does not answer in time the channel gets a 503, and a channel that
never sends the order again would leave it `received` with no workflow: taken, and never
worked. Each API process sweeps for such orders every `order_start_sweep_seconds` and starts
their workflows (`start` is idempotent: a running workflow is left alone, a finished one
never started again), so an order recorded is an order worked, whatever the channel does.

An order still `received` past the grace period may also simply be waiting for a busy worker:
its start is then a no-op, asked again at most every RECHECK_SECONDS per order. Several API
processes sweep the same orders; their starts are the same no-op."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.order_start import start_order
from api.problems import Problem
from models.order_intake import still_received
from runtime.settings import Settings

log = structlog.get_logger("omniflow.api.order_starts")

GRACE_SECONDS = 30.0  # an order's own start, retried by its channel, comes first
RECHECK_SECONDS = 300.0
PER_SWEEP = 200


class OrderStartSweeper:
    def __init__(self, engine: AsyncEngine, temporal: Client, settings: Settings) -> None:
        self.engine, self.temporal, self.settings = engine, temporal, settings
        self._asked: dict[str, float] = {}  # order -> when this process last started it
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> list[str]:
        """Start the workflows of the orders still `received` past the grace period, not asked
        for in the last RECHECK_SECONDS; the orders asked for."""
        async with self.engine.connect() as conn:
            waiting = await still_received(conn, GRACE_SECONDS, PER_SWEEP)
        now = time.monotonic()
        self._asked = {k: t for k, t in self._asked.items() if now - t < RECHECK_SECONDS}
        asked = []
        for order in waiting:
            if order.order_id in self._asked:
                continue
            try:
                await start_order(self.temporal, self.settings, order.order_id, order.channel, order.total)
            except Problem:  # the engine is still not answering: the next sweep asks again
                log.warning("order start sweep: engine unavailable", order_id=order.order_id)
                break
            self._asked[order.order_id] = now
            asked.append(order.order_id)
        if asked:
            log.info("order start sweep", orders=len(asked), first=asked[0])
        return asked

    def start(self) -> None:
        if self.settings.order_start_sweep_seconds > 0:
            self._task = asyncio.create_task(self._run(), name="order-start-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.order_start_sweep_seconds)
            try:
                await self.sweep_once()
            except Exception:  # a database blip: the next sweep tries again
                log.exception("order start sweep failed")

"""Group reservation for hot SKUs: concurrent stock requests of one process for the same SKUs
are combined into one transaction under one acquisition of their locks
(`models.stock.apply_batch`), each keeping its own key, result and refusal.

One lane per set of SKUs asked for. A request that finds its lane idle starts a batch of one
at once (no timer, no added wait: a cold SKU keeps its latency); requests that arrive while a
batch is in its transaction queue, and the next batch takes all of them (up to `max_batch`).
So batches grow exactly as fast as the lock would otherwise make requests wait: at 1 client a
batch is one request, at 64 clients of one hot SKU most of the 64.

Why this is exact: the batch is one transaction, its SKU locks taken once (sorted), and each
request is decided in memory against the state the ones before it left (or, for releases and
consumes, in its own savepoint). A batch that fails as a whole (the connection dies, a
deadlock) fails every request in it with that error and writes nothing; callers retry (the
activities are at-least-once) and each key is applied once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import DomainError
from domain.reservation import ReserveLine, ReserveRequest
from models.stock.batch import Request, SettleRequest, apply_batch
from models.stock.operations import OperationResult

Waiting = tuple[Request, "asyncio.Future[OperationResult]"]


@dataclass
class _Lane:
    queue: list[Waiting] = field(default_factory=list)
    running: bool = False


class ReservationBatcher:
    """One per process (and engine). `reserve` and `settle` answer like models.stock's
    reserve and release / consume, each in a transaction of its batch."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 128) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.batch_sizes: Counter[int] = Counter()  # requests per batch -> batches (for benchmarks)
        self._lanes: dict[frozenset[str], _Lane] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def reserve(
        self, key: str, channel: str, lines: Sequence[ReserveLine], *, ref: str = ""
    ) -> OperationResult:
        request = ReserveRequest(key, channel, list(lines), ref)
        return await self._submit(request, frozenset(ln.sku for ln in lines))

    async def settle(
        self,
        key: str,
        reservation_key: str,
        skus: Sequence[str],
        lines: dict[str, int] | None = None,
        *,
        consume: bool,
        ref: str = "",
    ) -> OperationResult:
        """Release (or, `consume`, ship) reserved units, like models.stock.release / consume.
        `skus`: what the reservation holds (it picks the lane the request joins; the locks the
        batch takes are read from the reservation itself)."""
        return await self._submit(SettleRequest(key, reservation_key, consume, lines, ref), frozenset(skus))

    async def _submit(self, request: Request, lane_key: frozenset[str]) -> OperationResult:
        lane = self._lanes.setdefault(lane_key, _Lane())
        answer: asyncio.Future[OperationResult] = asyncio.get_running_loop().create_future()
        lane.queue.append((request, answer))
        if not lane.running:
            lane.running = True
            drain = asyncio.create_task(self._drain(lane_key, lane))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await answer

    async def _drain(self, lane_key: frozenset[str], lane: _Lane) -> None:
        try:
            while lane.queue:
                batch = [w for w in lane.queue[: self.max_batch] if not w[1].done()]
                del lane.queue[: self.max_batch]
                if batch:
                    await self._run(batch)
        finally:
            lane.running = False
            if not lane.queue and self._lanes.get(lane_key) is lane:
                del self._lanes[lane_key]

    async def _run(self, batch: list[Waiting]) -> None:
        self.batch_sizes[len(batch)] += 1
        try:
            async with self.engine.begin() as conn:
                outcomes = await apply_batch(conn, [request for request, _ in batch])
        except BaseException as failed:  # the whole batch: nothing of it was written
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(failed)
            if not isinstance(failed, Exception):  # cancelled: the callers are told, then we stop
                raise
            return
        for (_, answer), outcome in zip(batch, outcomes, strict=True):
            if answer.done():  # its caller gave up waiting; the outcome is stored under its key
                continue
            if isinstance(outcome, DomainError):
                answer.set_exception(outcome)
            else:
                answer.set_result(outcome)

    async def aclose(self) -> None:
        """Wait for the batches in flight."""
        while self._drains:
            await asyncio.gather(*list(self._drains), return_exceptions=True)

"""The cheap refusal of order intake: an order that allows no backorders, whose lines the
channel's available-to-promise cannot cover right now, is answered 409 `/problems/insufficient-stock`
before any workflow starts and before anything is written (domain.atp.intake_refusals
decides, from models.intake_stock's read).

The read is a pre-filter, not the decision: it takes no lock and each API process reuses it
for `intake_stock_cache_seconds` (IntakeStockCache). Every read was true when it was made,
and while a sale runs ATP only falls, so a reused read refuses only what really was short;
units given back meanwhile (a cancel, a receipt) are seen by intake at most that long later.
What passes is decided by the reservation under its locks, as before: an order that loses the
race there is refused at sourcing, the rule on its timeline.

A refusal is not stored under the Idempotency-Key (nothing was done: a retry checks again)
unless the key or the order is there already: then the order's own path answers (the
replay, 422 for a different request, 200 for the same order), never a refusal that would
hide an order taken earlier."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from api.deps import single_read
from api.idempotency_keys import SCOPE_KEY, KeyToTake
from api.metrics import ORDER_LINES_TURNED_AWAY
from api.problems import Problem
from api.schemas_orders import OrderCreate
from domain.atp import AvailabilitySnapshot, IntakeShort, after_pending, intake_refusals
from models.intake_stock import IntakeStock, read_intake_stock

_MOST_HELD = 1024  # distinct SKU sets kept per process; beyond it the stale ones go

# Whether the order, or the request's Idempotency-Key, is there already (one statement).
_SEEN = text(
    "SELECT EXISTS (SELECT 1 FROM sales_order WHERE id = :o)"
    " OR EXISTS (SELECT 1 FROM idempotency_record WHERE scope = :c AND key = :k)"
)


@dataclass
class _Read:
    started: float  # monotonic, before the read ran: it is true as of then
    stock: IntakeStock
    pending: Counter[tuple[str, str]]  # (channel, SKU) -> units of the orders it found on their way
    ids: frozenset[str]  # those orders


class IntakeStockCache:
    """The intake read of each set of SKUs, reused for `ttl` seconds by this process (0: read
    on every order); concurrent orders for the same SKUs wait for one read. The orders this
    process took since a read began count against it too (`taken`), as the read's own
    pending orders do: within the `ttl`, a unit promised is not promised again."""

    def __init__(self, ttl: float, pending_window: float = 60.0) -> None:
        self.ttl = ttl
        self.pending_window = pending_window
        self._held: dict[frozenset[str], _Read] = {}
        self._reading: dict[frozenset[str], asyncio.Future[_Read]] = {}
        self._taken: dict[str, tuple[float, str, list[tuple[str, int]]]] = {}

    async def read(
        self, engine: AsyncEngine, skus: Iterable[str]
    ) -> tuple[IntakeStock, AvailabilitySnapshot]:
        """The stock of `skus` and its snapshot once the orders on their way have reserved."""
        key = frozenset(skus)
        if self.ttl <= 0:
            done = await self._load(engine, key)
        else:
            held = self._held.get(key)
            if held is not None and time.monotonic() - held.started < self.ttl:
                done = held
            else:
                reading = self._reading.get(key)
                if reading is None:
                    reading = self._reading[key] = asyncio.ensure_future(self._load(engine, key))
                done = await asyncio.shield(reading)  # a waiter cancelled does not cancel the others' read
        pending = Counter(done.pending)
        # Newest first, down to the read's start (noted in time order): on every order, only
        # the few taken since, not all the process still holds.
        for order_id, (at, channel, lines) in reversed(self._taken.items()):
            if at < done.started:
                break
            if order_id not in done.ids:
                for sku, qty in lines:
                    pending[(channel, sku)] += qty
        return done.stock, after_pending(
            done.stock.snapshot, ((ch, sku, q) for (ch, sku), q in pending.items())
        )

    def taken(
        self, order_id: str, channel: str, lines: Iterable[tuple[str, int]], stock: IntakeStock
    ) -> None:
        """An order this process has just recorded, judged on `stock`: its lines (kits as their
        components) hold units back from the next orders until a read sees it."""
        now = time.monotonic()
        recipes = stock.snapshot.recipes
        units = [
            (part, qty * per)
            for sku, qty in lines
            for part, per in (recipes[sku].items() if sku in recipes else [(sku, 1)])
        ]
        self._taken.pop(order_id, None)  # kept in the order noted: `read` walks it newest first
        self._taken[order_id] = (now, channel, units)
        if len(self._taken) > _MOST_HELD:  # a read that began after them has them
            horizon = now - max(self.ttl, 1.0)
            self._taken = {k: v for k, v in self._taken.items() if v[0] >= horizon}

    async def _load(self, engine: AsyncEngine, key: frozenset[str]) -> _Read:
        try:
            started = time.monotonic()
            stock = await read_intake_stock(engine, key, self.pending_window)
            pending: Counter[tuple[str, str]] = Counter()
            for _, channel, sku, qty in stock.pending:
                pending[(channel, sku)] += qty
            done = _Read(started, stock, pending, frozenset(p[0] for p in stock.pending))
            if self.ttl > 0:
                if len(self._held) >= _MOST_HELD:
                    self._held = {k: v for k, v in self._held.items() if started - v.started < self.ttl}
                self._held[key] = done
            return done
        finally:
            self._reading.pop(key, None)


async def turn_away_if_short(
    request: Request, engine: AsyncEngine, body: OrderCreate, order_id: str
) -> IntakeStock | None:
    """Raise the 409 of an order without backorders the stock cannot cover now (see the module
    docstring); return when the order goes on to be recorded, with the stock it was judged
    on (None: not judged). Bad references (an unknown channel or SKU, a SKU twice) are left
    to intake's own 422s."""
    if body.allow_backorder:
        return None
    lines = [(ln.sku, ln.qty) for ln in body.lines]
    skus = {sku for sku, _ in lines}
    if len(skus) < len(lines):
        return None
    cache: IntakeStockCache = request.app.state.intake_stock
    stock, snapshot = await cache.read(engine, skus)
    if not skus <= stock.known or body.channel not in snapshot.channel_locations:
        return None
    short = intake_refusals(
        snapshot,
        body.channel,
        lines,
        allow_split=body.allow_split,
        not_from_stock=stock.not_from_stock(body.channel),
    )
    if not short or await _seen_before(request, engine, order_id):
        return stock
    pending: KeyToTake | None = request.scope.get(SCOPE_KEY)
    if pending is not None:
        pending.kept = False
    for s in short:
        ORDER_LINES_TURNED_AWAY.labels(str(s.rule)).inc()
    raise insufficient_stock(order_id, [ln.sku for ln in body.lines], short)


async def _seen_before(request: Request, engine: AsyncEngine, order_id: str) -> bool:
    pending: KeyToTake | None = request.scope.get(SCOPE_KEY)
    taken = pending.taken if pending is not None else {"c": "", "k": ""}
    async with single_read(engine) as conn:
        return bool((await conn.execute(_SEEN, {"o": order_id, "c": taken["c"], "k": taken["k"]})).scalar())


def insufficient_stock(order_id: str, skus: list[str], short: list[IntakeShort]) -> Problem:
    """The 409: each refused line (its number on the order as sent, from 1), the SKU, the
    units asked for, the channel's ATP and the rule that holds the rest back."""
    refused = [
        {
            "line": str(skus.index(s.sku) + 1),
            "sku": s.sku,
            "qty": s.qty,
            "available": s.available,
            "rule": str(s.rule),
        }
        for s in short
    ]
    said = "; ".join(f"{s.sku}: {s.qty} asked, {s.available} available ({s.rule})" for s in short)
    return Problem(
        409,
        f"order {order_id} allows no backorder and the stock cannot cover it now: {said}",
        slug="insufficient-stock",
        title="Insufficient stock",
        order_id=order_id,
        lines=refused,
    )

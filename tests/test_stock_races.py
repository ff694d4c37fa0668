"""Races on one key or one bucket, each on its own Postgres connection:

- the same business key sent by 10 connections at once reserves once (and the same key
  with another request is a conflict);
- 32 connections shrinking one bucket take exactly its unreserved units;
- a release racing the commit of its reservation (a found bug: see the test).

Every test ends with `stock.check` (and `finance.check`: every move posts to the ledger)."""

from __future__ import annotations

import asyncio
import random
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import InsufficientStock, OperationConflict
from models import finance, stock
from models.stock import ReserveLine
from runtime.db import make_async_engine
from tests.factories import assert_inventory_clean, receive, standard_catalog
from tests.stock_crowd import Crowd, all_atp, all_of, stored_atp

# -- d. the same business key from 10 connections at once ------------------------------


async def test_the_same_reservation_key_from_10_connections_reserves_once(database_url: str) -> None:
    clients = 10
    eng = make_async_engine(database_url, pool_size=clients + 2)
    try:
        await standard_catalog(eng)
        await receive(eng, "TEE", "DC-EAST", 20)
        await receive(eng, "MUG", "DC-EAST", 20)
        crowd = Crowd(clients + 1)
        lines = [ReserveLine("1", "GIFT", "DC-EAST", 2), ReserveLine("2", "TEE", "DC-EAST", 3)]
        results: list[stock.OperationResult] = []
        conflicts: list[OperationConflict] = []
        odd: list[stock.OperationResult] = []  # the other request under the same key, if it wins

        async def client(i: int) -> None:
            async with eng.connect() as conn:
                await crowd.join(conn)
                try:
                    async with conn.begin():
                        if i == clients:  # the same key with other lines: a conflict, not a reservation
                            odd.append(
                                await stock.reserve(
                                    conn, "order-42:reserve", "web", lines[:1], ref="order-42"
                                )
                            )
                        else:
                            results.append(
                                await stock.reserve(conn, "order-42:reserve", "web", lines, ref="order-42")
                            )
                except OperationConflict as exc:
                    conflicts.append(exc)

        tasks = [asyncio.create_task(client(i)) for i in range(clients + 1)]
        await crowd.start(eng)
        await all_of(*tasks)
        assert len(crowd.pids) == clients + 1

        # One of the 10 did the work and the 9 others got its result back, the odd request being
        # a conflict; or (1 time in 11) the odd request won the lock and the 10 are conflicts.
        assert len(results) + len(odd) + len(conflicts) == clients + 1
        fresh = [r for r in results if not r.replayed]
        if not odd:
            assert len(conflicts) == 1 and len(fresh) == 1 and len(results) == clients
            assert all(r.data == fresh[0].data for r in results)
            expected = {("1/TEE", "TEE"): 2, ("1/MUG", "MUG"): 4, ("2", "TEE"): 3}
        else:
            assert not odd[0].replayed and results == [] and len(conflicts) == clients
            expected = {("1/TEE", "TEE"): 2, ("1/MUG", "MUG"): 4}
        async with eng.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT line, sku, qty FROM reservation WHERE key = 'order-42:reserve'")
                )
            ).all()
            ops = (
                await conn.execute(
                    text("SELECT count(*) FROM stock_operation WHERE key = 'order-42:reserve'")
                )
            ).scalar_one()
        assert {(r.line, r.sku): r.qty for r in rows} == expected
        assert len(rows) == len(expected) and ops == 1
        tee = sum(q for (_, sku), q in expected.items() if sku == "TEE")
        async with eng.connect() as conn:
            reserved = (
                await conn.execute(
                    text("SELECT reserved FROM stock_balance WHERE sku='TEE' AND location='DC-EAST'")
                )
            ).scalar_one()
        assert reserved == tee
        await assert_inventory_clean(eng)
        assert await all_atp(eng) == await stored_atp(eng)
    finally:
        await eng.dispose()


async def test_concurrent_adjustments_of_one_bucket_never_go_below_reserved(database_url: str) -> None:
    """32 connections each take 1 to 4 units out of a bucket holding 60, 20 of them reserved:
    exactly the free 40 can go, never one more (the guarded decrement under the SKU lock)."""
    clients = 32
    eng = make_async_engine(database_url, pool_size=clients)
    try:
        await standard_catalog(eng)
        await receive(eng, "MUG", "DC-WEST", 60)
        async with eng.begin() as conn:
            await stock.reserve(conn, "held", "web", [ReserveLine("1", "MUG", "DC-WEST", 20)])
        crowd = Crowd(clients)
        taken: list[int] = []
        refusals: list[tuple[int, int]] = []

        async def client(i: int) -> None:
            rng = random.Random(i)
            async with eng.connect() as conn:
                await crowd.join(conn)
                n, qty = 0, rng.randint(1, 4)
                while True:
                    n += 1
                    try:
                        async with conn.begin():
                            move = stock.adjustment_move("MUG", "DC-WEST", "sellable", -qty)
                            await stock.apply_moves(
                                conn, f"shrink:{i}:{n}", "adjustment", [move], reason="damage"
                            )
                    except InsufficientStock as exc:
                        refusals.append((exc.available, qty))
                        if qty == 1:
                            return
                        qty = 1
                        continue
                    taken.append(qty)

        tasks = [asyncio.create_task(client(i)) for i in range(clients)]
        await crowd.start(eng)
        await all_of(*tasks)
        assert sum(taken) == 40
        assert refusals and all(available < qty for available, qty in refusals)
        async with eng.connect() as conn:
            bal = (
                await conn.execute(
                    text("SELECT qty, reserved FROM stock_balance WHERE sku='MUG' AND location='DC-WEST'")
                )
            ).one()
        assert tuple(bal) == (20, 20)
        await assert_inventory_clean(eng)
    finally:
        await eng.dispose()


# -- e. a release racing the commit of its own reservation (BUG) -----------------------


class _PausesAfterFirstStatement:
    """Delegates to a real connection; after its first statement, waits for `gate`. Stands
    for nothing but time passing between two statements of the same transaction."""

    def __init__(self, conn: AsyncConnection, paused: asyncio.Event, gate: asyncio.Event) -> None:
        self._conn, self._paused, self._gate, self._first = conn, paused, gate, True

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._conn.execute(*args, **kwargs)
        if self._first:
            self._first = False
            self._paused.set()
            await self._gate.wait()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def test_a_release_racing_its_reservations_commit_keeps_availability_true(database_url: str) -> None:
    """BUG (models/stock.py `_settle`): the SKUs to lock are read from the reservation
    (`SELECT DISTINCT sku FROM reservation WHERE key = :k`) before any lock, and never again.
    If the reservation commits between that preview and `_active_reservations`, the release
    finds its rows and releases them while holding no SKU lock at all, and then refreshes the
    availability of the (empty) preview set: `channel_availability` and the change feed keep
    the reserved value, so the published ATP stays too low until the next change of the SKU
    (and the feed's "txid order is the SKU's commit order" argument no longer holds)."""
    eng = make_async_engine(database_url, pool_size=4)
    try:
        await standard_catalog(eng)
        await receive(eng, "TEE", "DC-EAST", 10)
        paused, gate = asyncio.Event(), asyncio.Event()
        async with eng.connect() as reserving, eng.connect() as releasing:
            tx = await reserving.begin()
            await stock.reserve(
                reserving, "o7:reserve", "web", [ReserveLine("1", "TEE", "DC-EAST", 4)], ref="o7"
            )

            async def cancel() -> stock.OperationResult:
                proxy = cast(AsyncConnection, _PausesAfterFirstStatement(releasing, paused, gate))
                async with releasing.begin():
                    return await stock.release(proxy, "o7:cancel", "o7:reserve", ref="o7")

            cancelling = asyncio.create_task(cancel())
            await asyncio.wait_for(paused.wait(), 5)  # the preview ran: no committed rows yet
            await tx.commit()
            gate.set()
            result = await asyncio.wait_for(cancelling, 10)
        assert [ln["qty"] for ln in result.data["lines"]] == [4]  # it did release the 4 units
        async with eng.connect() as conn:
            assert await stock.check(conn) == []  # the books are right...
            assert await finance.check(conn) == []
        truth = await all_atp(eng)
        assert truth[("web", "TEE")] == 10
        # ...but what the API serves and the feed announced is not.
        stored = await stored_atp(eng)
        assert stored[("web", "TEE")] == truth[("web", "TEE")], (
            f"channel_availability says web TEE = {stored[('web', 'TEE')]}, the balances say 10"
        )
    finally:
        await eng.dispose()

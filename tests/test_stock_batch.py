"""Group reservation (models/stock/batch.py, models/stock/batcher.py) on a real database:

- a batch mixing kits that share components, three channels with ring-fences and safety
  stock, a release and a consume, refusals, a duplicate key and a reused key answers each
  request exactly what it would get one at a time (settles first, then the reservations in
  order), and leaves the same books;
- a batch whose connection is killed before its commit leaves nothing; the retried requests
  are applied once by their keys, and again only replayed;
- 64 clients on one hot SKU, most through batchers (as many processes would), reserve exactly
  what the rules allow, replayed in the order Postgres serialized them."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import DomainError, ReservationShortage, ShortageReason
from models import finance, stock
from models.stock import ReserveLine, ReserveRequest, SettleRequest
from models.stock.batcher import ReservationBatcher
from runtime.db import make_async_engine
from tests.factories import add_sku, receive, set_policy, standard_catalog
from tests.stock_crowd import CHANNELS, Crowd, all_atp, all_of, hot_rows_and_ops, stored_atp
from tests.test_stock_concurrency import (
    FENCE,
    HOT_STOCK,
    SAFETY,
    _assert_hot_books,
    _assert_nobody_can_reserve_one_more,
    _hot_sku_shop,
    _replay_in_serial_order,
)


def line(sku: str, qty: int, n: str = "1", location: str = "DC-EAST") -> list[ReserveLine]:
    return [ReserveLine(n, sku, location, qty)]


async def _mixed_shop(eng: AsyncEngine) -> None:
    await standard_catalog(eng)
    async with eng.begin() as conn:
        await add_sku(conn, "DUO", components={"TEE": 2, "MUG": 1})  # shares both of GIFT's components
        await set_policy(conn, "web", "TEE", safety=2)
        await set_policy(conn, "marketplace", "TEE", ringfence={"DC-EAST": 4})
        await set_policy(conn, "b2b", "MUG", safety=1, ringfence={"DC-EAST": 3})
    await receive(eng, "TEE", "DC-EAST", 20)
    await receive(eng, "MUG", "DC-EAST", 20)
    async with eng.begin() as conn:  # what the batch settles
        await stock.reserve(conn, "r-old-1", "web", line("TEE", 3), ref="o1")
        await stock.reserve(conn, "r-old-2", "b2b", line("GIFT", 2), ref="o2")
        await stock.reserve(conn, "r-done", "web", line("MUG", 1), ref="o3")


def _batch() -> list[ReserveRequest | SettleRequest]:
    return [
        ReserveRequest("r1", "web", line("GIFT", 3), "a"),  # 3 TEE + 6 MUG
        SettleRequest("s1", "r-old-1", consume=False),  # gives 3 TEE back, before any reservation
        ReserveRequest("r2", "marketplace", [*line("DUO", 2), *line("TEE", 4, "2")], "b"),
        ReserveRequest("r3", "web", line("TEE", 40), "c"),  # short: no more than there is
        ReserveRequest("r4", "b2b", line("GHOST", 1), "d"),  # unknown SKU
        SettleRequest("s2", "r-old-2", consume=True, lines={"1": 1}),  # ships one GIFT
        ReserveRequest("r5", "web", line("TEE", 6), "e"),  # 7 left after r2, 2 of them web's safety stock
        ReserveRequest("r1", "web", line("GIFT", 3), "a"),  # the same request again: one reservation
        ReserveRequest("r6", "marketplace", line("MUG", 2), "f"),
        ReserveRequest("r-done", "web", line("MUG", 1), "o3"),  # done before: replayed
        ReserveRequest("r6", "web", line("MUG", 9), "g"),  # r6 reused for something else: conflict
        ReserveRequest("r7", "web", line("MUG", 5), "h"),  # 5 left, 1 of them b2b's ring-fence
    ]


def _answer(outcome: stock.OperationResult | DomainError) -> tuple[Any, ...]:
    if isinstance(outcome, DomainError):
        return ("refused", type(outcome).__name__, outcome.details())
    return ("done", outcome.kind, outcome.replayed, outcome.data)


async def _books(conn: AsyncConnection) -> dict[str, Any]:
    queries = {
        "balances": "SELECT sku, location, status, lot, qty, reserved FROM stock_balance ORDER BY 1, 2, 3, 4",
        "reservations": "SELECT key, line, ref, channel, sku, location, lot, qty, consumed, released"
        " FROM reservation ORDER BY id",
        "channel_reserved": "SELECT sku, location, channel, qty FROM channel_reserved ORDER BY 1, 2, 3",
        "atp": "SELECT channel, sku, available FROM channel_availability ORDER BY 1, 2",
        "ops": "SELECT key, kind, ref, request_hash, result FROM stock_operation ORDER BY key",
    }
    return {name: [tuple(r) for r in await conn.execute(text(q))] for name, q in queries.items()}


async def _one_at_a_time(conn: AsyncConnection, requests: list[Any]) -> list[tuple[Any, ...]]:
    """Each request alone, in its own savepoint: the settles first, then the reservations."""
    order = [i for i, r in enumerate(requests) if isinstance(r, SettleRequest)]
    order += [i for i, r in enumerate(requests) if isinstance(r, ReserveRequest)]
    answers: dict[int, tuple[Any, ...]] = {}
    for i in order:
        r = requests[i]
        try:
            async with conn.begin_nested():
                if isinstance(r, SettleRequest):
                    fn = stock.consume if r.consume else stock.release
                    result = await fn(conn, r.key, r.reservation_key, r.lines, ref=r.ref)
                else:
                    result = await stock.reserve(conn, r.key, r.channel, list(r.lines), ref=r.ref)
            answers[i] = _answer(result)
        except DomainError as refused:
            answers[i] = _answer(refused)
    return [answers[i] for i in range(len(requests))]


async def test_a_batch_answers_each_request_what_it_would_get_alone(database_url: str) -> None:
    eng = make_async_engine(database_url, pool_size=2)
    try:
        await _mixed_shop(eng)
        requests = _batch()
        async with eng.connect() as conn:
            trans = await conn.begin()
            alone = await _one_at_a_time(conn, requests)
            books_alone = await _books(conn)
            await trans.rollback()
        async with eng.begin() as conn:
            batched = [_answer(o) for o in await stock.apply_batch(conn, requests)]
            books_batched = await _books(conn)
        # request hashes and results aside, ids and timestamps differ: compare what matters
        assert batched == alone
        assert books_batched == books_alone
        kinds = [a[0] if a[0] == "done" else a[1] for a in batched]
        short, unknown, conflict = "ReservationShortage", "UnknownReference", "OperationConflict"
        assert kinds == [
            "done",
            "done",
            "done",
            short,
            unknown,
            "done",
            short,
            "done",
            "done",
            "done",
            conflict,
            short,
        ]
        assert batched[7][2] is True and batched[7][3] == batched[0][3]  # r1 twice: replayed, once
        assert batched[9][2] is True  # done before the batch
        reasons = [s["reason"] for a in (batched[3], batched[6], batched[11]) for s in a[2]["shortages"]]
        assert reasons == [ShortageReason.ATP, ShortageReason.SAFETY_STOCK, ShortageReason.RING_FENCE]
        async with eng.connect() as conn:
            assert await stock.check(conn) == []
            assert await finance.check(conn) == []
            assert await _books(conn) == books_batched
        assert await all_atp(eng) == await stored_atp(eng)
    finally:
        await eng.dispose()


async def _kill(eng: AsyncEngine, pid: int) -> None:
    async with eng.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def _written(eng: AsyncEngine) -> tuple[int, int, int]:
    async with eng.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM reservation), (SELECT count(*) FROM stock_operation"
                    " WHERE kind = 'reserve'), (SELECT coalesce(sum(reserved), 0) FROM stock_balance)"
                )
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def test_a_batch_killed_before_its_commit_leaves_nothing_and_its_retries_apply_once(
    database_url: str,
) -> None:
    eng = make_async_engine(database_url, pool_size=4)
    batcher = ReservationBatcher(make_async_engine(database_url, pool_size=2))
    try:
        await _hot_sku_shop(eng)
        before = await _written(eng)
        reqs = [ReserveRequest(f"k{i}", CHANNELS[i % 3], line("TEE", 1 + i % 3)) for i in range(12)]
        # 1. everything written, then the connection dies before the commit
        async with eng.connect() as conn:
            await conn.begin()
            pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            assert all(not isinstance(o, DomainError) for o in await stock.apply_batch(conn, reqs))
            await _kill(eng, pid)
            with pytest.raises(DBAPIError):
                await conn.commit()
        assert await _written(eng) == before
        # 2. the batcher's transaction dies while it waits for the SKU lock
        async with eng.connect() as holder:
            await holder.begin()
            await holder.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('sku:TEE', 0))"))
            calls = [asyncio.create_task(batcher.reserve(r.key, r.channel, r.lines)) for r in reqs]
            waiting = None
            async with eng.connect() as probe:
                for _ in range(200):
                    waiting = (
                        await probe.execute(
                            text(
                                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                " AND query LIKE '%pg_advisory_xact_lock%' AND pid <> pg_backend_pid()"
                            )
                        )
                    ).scalar()
                    await probe.rollback()  # pg_stat_activity is read once per transaction
                    if waiting:
                        break
                    await asyncio.sleep(0.05)
            assert waiting, "the batch never waited for the lock"
            await _kill(eng, int(waiting))
            await holder.rollback()
        answers = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(a, Exception) for a in answers), answers
        assert await _written(eng) == before
        # 3. retried (activities are at-least-once): applied once, then only replayed
        first = await asyncio.gather(*(batcher.reserve(r.key, r.channel, r.lines) for r in reqs))
        assert not any(r.replayed for r in first)
        again = await asyncio.gather(*(batcher.reserve(r.key, r.channel, r.lines) for r in reqs))
        assert all(r.replayed for r in again) and [r.data for r in again] == [r.data for r in first]
        rows, ops, reserved = await _written(eng)
        assert (rows, ops) == (before[0] + 12, before[1] + 12)
        assert reserved == before[2] + sum(r.lines[0].qty for r in reqs)
        async with eng.connect() as conn:
            assert await stock.check(conn) == []
    finally:
        await batcher.aclose()
        await batcher.engine.dispose()
        await eng.dispose()


async def test_64_clients_through_batchers_on_one_hot_sku_reserve_exactly_what_the_rules_allow(
    database_url: str,
) -> None:
    """48 clients share 6 batchers (as 6 worker processes would), 16 reserve one at a time on
    their own connections; all 64 hold a connection of their own while they race."""
    clients = 64
    eng = make_async_engine(database_url, pool_size=clients + 4)
    batchers = [ReservationBatcher(make_async_engine(database_url, pool_size=2)) for _ in range(6)]
    crowd = Crowd(clients)
    successes: list[tuple[str, str, int]] = []
    refused: dict[str, int] = dict.fromkeys(CHANNELS, 0)

    async def client(i: int) -> None:
        rng, channel = random.Random(i), CHANNELS[i % 3]
        async with eng.connect() as conn:
            await crowd.join(conn)
            strikes, qty = 0, rng.randint(1, 3)
            for n in itertools.count():
                if strikes == 3:
                    return
                key, lines = f"hot:{i}:{n}", line("TEE", qty)
                try:
                    if i % 4 == 0:
                        async with conn.begin():
                            await stock.reserve(conn, key, channel, lines)
                    else:
                        await batchers[i % 6].reserve(key, channel, lines)
                except ReservationShortage:
                    refused[channel] += 1
                    strikes, qty = (strikes + 1 if qty == 1 else 0), max(1, qty - 1)
                    continue
                successes.append((key, channel, qty))
                strikes, qty = 0, rng.randint(1, 3)

    try:
        await _hot_sku_shop(eng)
        tasks = [asyncio.create_task(client(i)) for i in range(clients)]
        assert await crowd.start(eng) >= clients
        await all_of(*tasks)
        assert len(crowd.pids) == clients
        assert all(refused[ch] >= 3 for ch in CHANNELS)
        assert max(size for b in batchers for size in b.batch_sizes) > 1  # requests were combined
        rows, ops = await hot_rows_and_ops(eng)
        assert sorted((r.key, r.channel, r.qty) for r in rows) == sorted(successes)
        assert ops == {k for k, _, _ in successes}  # no claim of a refused request is left
        reserved_by = _replay_in_serial_order(rows)
        total = sum(reserved_by.values())
        fence_left = max(0, FENCE - reserved_by["marketplace"])
        assert total == HOT_STOCK - SAFETY["b2b"] - fence_left
        await _assert_hot_books(eng, total, reserved_by)
        await _assert_nobody_can_reserve_one_more(eng)
    finally:
        for b in batchers:
            await b.aclose()
            await b.engine.dispose()
        await eng.dispose()

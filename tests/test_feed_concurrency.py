"""The availability change feed under real concurrency: read in small pages while writers
commit late (and one rolls back), some of them holding a transaction id from before their
SKU locks (as an order step does), it leaves a consumer with the true ATP, having seen every
event exactly once. Ends with `stock.check` and `finance.check`."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import DomainError
from models import finance, stock
from models.availability import read_feed
from models.stock import ReserveLine
from runtime.db import make_async_engine
from tests.factories import add_sku, receive, set_policy, standard_catalog
from tests.stock_crowd import CHANNELS, all_atp, all_of, stored_atp

# -- c. the change feed while commits land late ----------------------------------------


@dataclass
class WriterLog:
    txid: int = 0
    committed: bool = False
    rolled_back_seqs: list[int] = field(default_factory=list)
    commit_order: int = -1


class FeedConsumer:
    """What an integration does: page the feed from the start, apply each page in order."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.after = (0, 0)
        self.values: dict[str, int] = {}
        self.seen: list[int] = []
        self.pages = 0

    async def page(self, eng: AsyncEngine, limit: int) -> int:
        async with eng.connect() as conn:
            await conn.execute(text("SELECT 1"))
            events = await read_feed(conn, self.channel, self.after, limit)
        for e in events:
            assert (e.txid, e.seq) > self.after, "the feed went backwards"
            self.values[e.sku] = e.available
            self.seen.append(e.seq)
            self.after = (e.txid, e.seq)
        self.pages += 1
        return len(events)

    async def follow(self, eng: AsyncEngine, until: asyncio.Event, limit: int = 3) -> None:
        while True:
            stop = until.is_set()
            got = await self.page(eng, limit)
            if stop and got == 0:
                return
            if got == 0:
                await asyncio.sleep(0.005)


ALLOWED = {
    "web": ("DC-EAST", "DC-WEST", "STORE-SF"),
    "marketplace": ("DC-EAST", "DC-WEST"),
    "b2b": ("DC-EAST",),
}
KINDS = [
    "receive",
    "receive",
    "shrink",
    "reserve",
    "reserve",
    "reserve",
    "release",
    "restock+reserve",
    "restock+reserve",
]
Operation = Callable[[AsyncConnection], Awaitable[Any]]


async def _feed_shop(eng: AsyncEngine, soon: datetime, later: datetime) -> None:
    await standard_catalog(eng)
    async with eng.begin() as conn:
        await add_sku(conn, "CAP")  # in no kit: its lock is independent of TEE/MUG/GIFT
    for sku, loc, qty in (
        ("TEE", "DC-EAST", 40),
        ("TEE", "DC-WEST", 15),
        ("MUG", "DC-EAST", 50),
        ("CAP", "STORE-SF", 20),
        ("CAP", "DC-WEST", 10),
    ):
        await receive(eng, sku, loc, qty)
    await receive(eng, "COFFEE", "DC-EAST", 12, lot="L-SOON", expires_at=soon)
    await receive(eng, "COFFEE", "DC-EAST", 12, lot="L-LATE", expires_at=later)
    async with eng.begin() as conn:
        await set_policy(conn, "web", "TEE", safety=2)
        await set_policy(conn, "marketplace", "TEE", ringfence={"DC-EAST": 6})
        await set_policy(conn, "b2b", "CAP", safety=1)


@dataclass
class FeedWriters:
    """The writers of the feed race: one random operation each, committed late, and what came of it."""

    eng: AsyncEngine
    soon: datetime
    logs: list[WriterLog] = field(default_factory=list)
    committed_reservations: list[str] = field(default_factory=list)
    commits: Iterator[int] = field(default_factory=itertools.count)

    def operation(self, rng: random.Random, i: int) -> Operation:
        kind = rng.choice(KINDS)
        if kind == "restock+reserve":
            return self._restock_and_reserve(rng, i)
        sku = rng.choice(
            ["TEE", "MUG", "CAP", "COFFEE", "GIFT"] if kind == "reserve" else ["TEE", "MUG", "CAP", "COFFEE"]
        )
        if kind == "release" and self.committed_reservations:
            target = rng.choice(self.committed_reservations)
            return lambda conn: stock.release(conn, f"w{i}:release", target)
        if kind == "reserve":
            channel = rng.choice(CHANNELS)
            loc = rng.choice(ALLOWED[channel])
            line = ReserveLine("1", sku, loc, rng.randint(1, 3))
            return lambda conn: stock.reserve(conn, f"w{i}:reserve", channel, [line])
        loc = rng.choice(["DC-EAST", "DC-WEST", "STORE-SF"])
        lot, exp = ("L-SOON", self.soon) if sku == "COFFEE" else ("", None)
        delta = rng.randint(1, 5) * (-1 if kind == "shrink" else 1)
        move = stock.adjustment_move(sku, loc, "sellable", delta, lot, exp)
        return lambda conn: stock.apply_moves(conn, f"w{i}:{kind}", "adjustment", [move], reason="count")

    def _restock_and_reserve(self, rng: random.Random, i: int) -> Operation:
        """Two operations on one SKU in one transaction, slow in between."""
        sku = rng.choice(["TEE", "MUG", "CAP", "COFFEE"])
        lot, exp = ("L-SOON", self.soon) if sku == "COFFEE" else ("", None)
        restock = stock.adjustment_move(sku, "DC-EAST", "sellable", rng.randint(2, 5), lot, exp)
        channel, pause = rng.choice(CHANNELS), rng.uniform(0, 0.2)

        async def both(conn: AsyncConnection) -> stock.OperationResult:
            await stock.apply_moves(conn, f"w{i}:restock", "adjustment", [restock], reason="restock")
            await asyncio.sleep(pause)  # the first events are written, the txid is old
            return await stock.reserve(conn, f"w{i}:reserve", channel, [ReserveLine("1", sku, "DC-EAST", 1)])

        return both

    async def writer(self, i: int, *, rollback: bool = False) -> None:
        rng = random.Random(7000 + i)
        log = WriterLog()
        self.logs.append(log)
        await asyncio.sleep(rng.uniform(0, 0.8))
        op = self.operation(rng, i)
        if rollback:  # a receipt that is abandoned: its events must never be read
            move = stock.adjustment_move("CAP", "DC-WEST", "sellable", 100)
            op = lambda conn: stock.apply_moves(conn, f"w{i}:abandoned", "adjustment", [move], reason="x")  # noqa: E731
        async with self.eng.connect() as conn:
            tx = await conn.begin()
            if rng.random() < 0.4:  # like an order step: a txid (its order row lock) before the SKU lock
                await conn.execute(text("SELECT pg_current_xact_id()"))
                await asyncio.sleep(rng.uniform(0, 0.2))
            try:
                result = await op(conn)
            except DomainError:  # shortages and short buckets: nothing to commit
                await tx.rollback()
                return
            log.txid = int((await conn.execute(text("SELECT pg_current_xact_id()::text"))).scalar_one())
            if rollback:
                log.rolled_back_seqs = list(
                    (
                        await conn.execute(
                            text("SELECT seq FROM availability_event WHERE txid = :t"), {"t": log.txid}
                        )
                    ).scalars()
                )
                assert log.rolled_back_seqs, "the abandoned receipt did write feed events"
            await asyncio.sleep(rng.uniform(0, 0.3))  # the late commit
            if rollback:
                await tx.rollback()
                return
            await tx.commit()
            log.committed = True
            log.commit_order = next(self.commits)
            if result.kind == "reserve":
                self.committed_reservations.append(result.key)


async def _assert_every_event_read_once(
    eng: AsyncEngine,
    consumers: dict[str, tuple[FeedConsumer, FeedConsumer]],
    truth: dict[tuple[str, str], int],
    abandoned: set[int],
) -> None:
    """Each consumer (the first and the late joiner of a channel) saw every committed event of its
    channel once, none of the abandoned ones, and ends at the true ATP."""
    async with eng.connect() as conn:
        for ch in CHANNELS:
            all_seqs = list(
                (
                    await conn.execute(
                        text("SELECT seq FROM availability_event WHERE channel = :c ORDER BY seq"),
                        {"c": ch},
                    )
                ).scalars()
            )
            for consumer in consumers[ch]:
                assert len(consumer.seen) == len(set(consumer.seen)), f"{ch}: an event was read twice"
                assert sorted(consumer.seen) == all_seqs, f"{ch}: events were skipped"
                assert not abandoned & set(consumer.seen)
                skus = {sku for c, sku in truth if c == ch}
                assert {s: consumer.values.get(s, 0) for s in skus} == {s: truth[(ch, s)] for s in skus}
            assert consumers[ch][0].pages > 10  # it really paged while the writers ran
        assert await stock.check(conn) == []
        assert await finance.check(conn) == []


async def test_the_feed_never_skips_late_commits_and_ends_at_the_true_atp(database_url: str) -> None:
    writers = 36
    eng = make_async_engine(database_url, pool_size=writers + 8)
    soon, later = datetime.now(UTC) + timedelta(days=20), datetime.now(UTC) + timedelta(days=200)
    try:
        await _feed_shop(eng, soon, later)
        race = FeedWriters(eng, soon)
        logs = race.logs
        writers_done = asyncio.Event()
        first = {ch: FeedConsumer(ch) for ch in CHANNELS}
        late = {ch: FeedConsumer(ch) for ch in CHANNELS}

        async def late_joiners() -> None:
            await asyncio.sleep(0.5)
            await all_of(*(c.follow(eng, writers_done, limit=2) for c in late.values()))

        readers = [asyncio.create_task(c.follow(eng, writers_done)) for c in first.values()]
        readers.append(asyncio.create_task(late_joiners()))
        started = time.monotonic()
        try:
            await all_of(*(race.writer(i, rollback=i in (5, 17)) for i in range(writers)))
        finally:
            writers_done.set()
        await all_of(*readers)
        elapsed = time.monotonic() - started

        committed = [g for g in logs if g.committed]
        assert len(committed) >= writers // 2
        # Commits really did land out of txid order (else this test would prove nothing).
        by_txid = sorted(committed, key=lambda g: g.txid)
        assert any(a.commit_order > b.commit_order for a, b in itertools.pairwise(by_txid))

        truth = await all_atp(eng)
        assert truth == await stored_atp(eng)
        abandoned = {s for g in logs for s in g.rolled_back_seqs}
        assert len(abandoned) > 0
        await _assert_every_event_read_once(
            eng, {ch: (first[ch], late[ch]) for ch in CHANNELS}, truth, abandoned
        )
        assert elapsed < 20, f"the feed race took {elapsed:.1f}s"
    finally:
        await eng.dispose()

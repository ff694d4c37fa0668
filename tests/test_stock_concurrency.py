"""The inventory core under real concurrency: many clients, each on its own Postgres
connection, racing for the same units through `models.stock`. Nothing here reasons about
interleavings; the tests make them happen and then check the books.

- a hot SKU hammered by 64 connections over three channels with safety stock and a
  ring-fence ends exactly where the ATP rules say, and every reservation, replayed in the
  order Postgres serialized it, was allowed by the rules at that point;
- two kits sharing components race each other and the bare components: all-or-nothing,
  never over-reserved, and the components end fully and exactly reserved.

The change feed under late commits is in test_feed_concurrency.py; the same key from many
connections, a bucket shrunk by many, and a release racing its reservation's commit in
test_stock_races.py. Every test ends with `stock.check` (and `finance.check`: every move posts
to the ledger)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.atp import LocationStock, channel_atp, location_atp
from domain.errors import ReservationShortage
from models import finance, stock
from models.stock import ReserveLine
from runtime.db import make_async_engine
from tests.factories import add_sku, receive, set_policy, standard_catalog
from tests.stock_crowd import CHANNELS, Crowd, all_atp, all_of, hot_rows_and_ops, stored_atp

# -- a. one hot SKU, 64 connections, three channels ------------------------------------

HOT_STOCK = 300
FENCE = 10  # marketplace's ring-fence of TEE at DC-EAST
SAFETY = {"web": 3, "marketplace": 2, "b2b": 1}


async def _hot_sku_shop(eng: AsyncEngine) -> None:
    await standard_catalog(eng)
    await receive(eng, "TEE", "DC-EAST", HOT_STOCK)
    async with eng.begin() as conn:
        await set_policy(conn, "web", "TEE", safety=SAFETY["web"])
        await set_policy(conn, "b2b", "TEE", safety=SAFETY["b2b"])
        await set_policy(
            conn, "marketplace", "TEE", safety=SAFETY["marketplace"], ringfence={"DC-EAST": FENCE}
        )


@dataclass
class HotRace:
    """The clients of the hot-SKU race: what each reserved, how often each channel was refused."""

    eng: AsyncEngine
    crowd: Crowd
    successes: list[tuple[str, str, int]] = field(default_factory=list)
    shortages: Counter[str] = field(default_factory=Counter)

    async def client(self, i: int) -> None:
        """Reserve 1-3 units at a time until refused three times running at one unit."""
        rng = random.Random(i)
        channel = CHANNELS[i % 3]
        async with self.eng.connect() as conn:
            await self.crowd.join(conn)
            strikes, qty = 0, rng.randint(1, 3)
            for n in itertools.count():
                if strikes == 3:
                    return
                key = f"hot:{i}:{n}"
                try:
                    async with conn.begin():
                        await stock.reserve(conn, key, channel, [ReserveLine("1", "TEE", "DC-EAST", qty)])
                except ReservationShortage:
                    self.shortages[channel] += 1
                    # ATP only falls while only reservations happen: a refused unit stays refused.
                    strikes, qty = (strikes + 1 if qty == 1 else 0), max(1, qty - 1)
                    continue
                self.successes.append((key, channel, qty))
                strikes, qty = 0, rng.randint(1, 3)


def _replay_in_serial_order(rows: Sequence[Any]) -> dict[str, int]:
    """Replay in the order Postgres serialized them (reservation ids are drawn under the SKU
    lock): each reservation fitted the channel's ATP at that moment. Returns the units a channel."""
    reserved_by: dict[str, int] = defaultdict(int)
    for r in rows:
        here = LocationStock(HOT_STOCK, sum(reserved_by.values()), {"marketplace": FENCE}, dict(reserved_by))
        allowed = min(
            location_atp(here, r.channel), channel_atp([location_atp(here, r.channel)], SAFETY[r.channel])
        )
        assert r.qty <= allowed, (r, dict(reserved_by))
        reserved_by[r.channel] += r.qty
    return reserved_by


async def _assert_hot_books(eng: AsyncEngine, total: int, reserved_by: dict[str, int]) -> None:
    """The balance, the per-channel counters and the books agree."""
    async with eng.connect() as conn:
        bal = (
            await conn.execute(
                text(
                    "SELECT qty, reserved FROM stock_balance WHERE sku='TEE' AND location='DC-EAST' "
                    "AND status='sellable'"
                )
            )
        ).one()
        per_channel = {
            r.channel: r.qty
            for r in await conn.execute(text("SELECT channel, qty FROM channel_reserved WHERE sku='TEE'"))
        }
        assert await stock.check(conn) == []
        assert await finance.check(conn) == []
    assert (bal.qty, bal.reserved) == (HOT_STOCK, total)
    assert {ch: q for ch, q in per_channel.items() if q} == {ch: q for ch, q in reserved_by.items() if q}


async def _assert_nobody_can_reserve_one_more(eng: AsyncEngine) -> None:
    """Nobody can reserve one more unit, and the published ATP says so."""
    final = await all_atp(eng)
    assert final == await stored_atp(eng)
    for ch in CHANNELS:
        assert final[(ch, "TEE")] == 0
        with pytest.raises(ReservationShortage):
            async with eng.begin() as conn:
                await stock.reserve(conn, f"one-more:{ch}", ch, [ReserveLine("1", "TEE", "DC-EAST", 1)])


async def test_64_connections_on_one_hot_sku_reserve_exactly_what_the_rules_allow(
    database_url: str,
) -> None:
    clients = 64
    eng = make_async_engine(database_url, pool_size=clients)
    try:
        await _hot_sku_shop(eng)
        initial = await all_atp(eng)
        assert initial[("web", "TEE")] == HOT_STOCK - FENCE - 3
        assert initial[("b2b", "TEE")] == HOT_STOCK - FENCE - 1
        assert initial[("marketplace", "TEE")] == HOT_STOCK - 2

        race = HotRace(eng, Crowd(clients))
        started = time.monotonic()
        tasks = [asyncio.create_task(race.client(i)) for i in range(clients)]
        backends = await race.crowd.start(eng)
        await all_of(*tasks)
        elapsed = time.monotonic() - started

        # The 64 clients really were 64 server backends, all connected at once.
        assert len(race.crowd.pids) == clients
        assert backends >= clients
        assert all(race.shortages[ch] >= 3 for ch in CHANNELS)

        rows, ops = await hot_rows_and_ops(eng)
        # Every success left exactly one row, every refusal nothing (no stray claims).
        assert sorted((r.key, r.channel, r.qty) for r in rows) == sorted(race.successes)
        assert ops == {k for k, _, _ in race.successes}

        reserved_by = _replay_in_serial_order(rows)
        total = sum(reserved_by.values())
        available = HOT_STOCK - total
        fence_left = max(0, FENCE - reserved_by["marketplace"])
        # No channel took more than its ATP before the race.
        for ch in CHANNELS:
            assert reserved_by[ch] <= initial[(ch, "TEE")]
        # The end state the rules force (web and b2b never cut below the unfenced units plus
        # their safety stock; the marketplace never below its safety stock): b2b, the channel
        # with the least safety stock outside the fence, leaves exactly 1 unfenced unit, and
        # the marketplace's own safety stock (2) may keep it from its last fenced unit.
        assert available - fence_left == SAFETY["b2b"]
        assert available <= SAFETY["marketplace"]
        assert total <= HOT_STOCK
        assert total == HOT_STOCK - SAFETY["b2b"] - fence_left

        await _assert_hot_books(eng, total, reserved_by)
        await _assert_nobody_can_reserve_one_more(eng)
        assert elapsed < 40, f"the hot-SKU race took {elapsed:.1f}s"
    finally:
        await eng.dispose()


# -- b. two kits sharing components, and the bare components ---------------------------

KIT_TEE, KIT_MUG = 30, 45
ORDERS: dict[str, Callable[[int], list[ReserveLine]]] = {
    "GIFT": lambda q: [ReserveLine("1", "GIFT", "DC-EAST", q)],
    "DUO": lambda q: [ReserveLine("1", "DUO", "DC-EAST", q)],
    "TEE": lambda q: [ReserveLine("1", "TEE", "DC-EAST", q)],
    "MUG": lambda q: [ReserveLine("1", "MUG", "DC-EAST", q)],
    "GIFT+MUG": lambda q: [ReserveLine("1", "GIFT", "DC-EAST", q), ReserveLine("2", "MUG", "DC-EAST", q)],
}
# What each order must hold, per (line, sku), for q units.
HOLDS: dict[str, Callable[[int], dict[tuple[str, str], int]]] = {
    "GIFT": lambda q: {("1/TEE", "TEE"): q, ("1/MUG", "MUG"): 2 * q},
    "DUO": lambda q: {("1/TEE", "TEE"): q, ("1/MUG", "MUG"): q},
    "TEE": lambda q: {("1", "TEE"): q},
    "MUG": lambda q: {("1", "MUG"): q},
    "GIFT+MUG": lambda q: {("1/TEE", "TEE"): q, ("1/MUG", "MUG"): 2 * q, ("2", "MUG"): q},
}


@dataclass
class KitRace:
    """The clients of the kit race: what each key reserved (order, units), which keys were refused."""

    eng: AsyncEngine
    crowd: Crowd
    done: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (order, q)
    refused: list[str] = field(default_factory=list)

    async def client(self, i: int) -> None:
        """Random orders until every kind is refused at one unit."""
        rng = random.Random(1000 + i)
        channel = ("web", "marketplace")[i % 2]
        exhausted: set[str] = set()
        async with self.eng.connect() as conn:
            await self.crowd.join(conn)
            qty: int | None = None
            for n in itertools.count():
                left = sorted(set(ORDERS) - exhausted)
                if not left:
                    return
                order = rng.choice(left)
                q = qty or rng.randint(1, 2)
                key = f"kit:{i}:{n}"
                try:
                    async with conn.begin():
                        result = await stock.reserve(conn, key, channel, ORDERS[order](q))
                except ReservationShortage:
                    self.refused.append(key)
                    if q == 1:
                        exhausted.add(order)  # ATP only falls: this order is sold out for good
                    qty = 1
                    continue
                qty = None
                made: dict[tuple[str, str], int] = defaultdict(int)
                for m in result.data["reservations"]:
                    made[(m["line"], m["sku"])] += m["qty"]
                assert made == HOLDS[order](q), (order, q, result.data)
                self.done[key] = (order, q)


def _replay_keys_in_id_order(
    by_key: dict[str, dict[tuple[str, str], int]], first_id: dict[str, int]
) -> dict[str, int]:
    """Keys never interleave their rows (one INSERT per reservation, under the SKU locks), so
    replaying keys in id order is Postgres's serial order: never more than the stock. Returns
    what is left a component."""
    left = {"TEE": KIT_TEE, "MUG": KIT_MUG}
    for key in sorted(by_key, key=first_id.__getitem__):
        for (_, sku), q in by_key[key].items():
            left[sku] -= q
            assert left[sku] >= 0, (key, left)
    return left


async def _assert_components_sold_out(eng: AsyncEngine) -> None:
    reserved = {}
    for sku in ("TEE", "MUG"):
        async with eng.connect() as conn:
            reserved[sku] = (
                await conn.execute(
                    text("SELECT qty, reserved FROM stock_balance WHERE sku=:s AND status='sellable'"),
                    {"s": sku},
                )
            ).one()
    assert tuple(reserved["TEE"]) == (KIT_TEE, KIT_TEE)
    assert tuple(reserved["MUG"]) == (KIT_MUG, KIT_MUG)
    final = await all_atp(eng)
    assert final == await stored_atp(eng)
    assert all(final[(ch, s)] == 0 for ch in CHANNELS for s in ("TEE", "MUG", "GIFT", "DUO"))


async def test_kits_sharing_components_race_all_or_nothing_and_never_over_reserve(database_url: str) -> None:
    clients = 24
    eng = make_async_engine(database_url, pool_size=clients)
    try:
        await standard_catalog(eng)
        async with eng.begin() as conn:
            await add_sku(conn, "DUO", components={"TEE": 1, "MUG": 1})
        await receive(eng, "TEE", "DC-EAST", KIT_TEE)
        await receive(eng, "MUG", "DC-EAST", KIT_MUG)

        race = KitRace(eng, Crowd(clients))
        tasks = [asyncio.create_task(race.client(i)) for i in range(clients)]
        await race.crowd.start(eng)
        await all_of(*tasks)
        done, refused = race.done, race.refused
        assert len(race.crowd.pids) == clients
        assert {o for o, _ in done.values()} == set(ORDERS), "every kind of order won some units"

        async with eng.connect() as conn:
            rows = (
                await conn.execute(text("SELECT id, key, line, sku, qty FROM reservation ORDER BY id"))
            ).all()
            assert await stock.check(conn) == []
            assert await finance.check(conn) == []
        by_key: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
        first_id: dict[str, int] = {}
        for r in rows:
            by_key[r.key][(r.line, r.sku)] += r.qty
            first_id.setdefault(r.key, r.id)
        # All or nothing: a refused key holds nothing; a done key holds every component line.
        assert not set(refused) & set(by_key)
        assert set(by_key) == set(done)
        for key, (order, q) in done.items():
            assert dict(by_key[key]) == HOLDS[order](q), key
        left = _replay_keys_in_id_order(by_key, first_id)
        # Every client stopped only when every order was refused at 1 unit: both components
        # are sold out exactly, and nothing more.
        assert left == {"TEE": 0, "MUG": 0}
        await _assert_components_sold_out(eng)
    finally:
        await eng.dispose()

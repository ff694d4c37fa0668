"""A state machine over models/stock.py on a real database, with Hypothesis (a fresh clone of
the migrated template per example): receipts and adjustments (±), status moves and transfers,
reservations (kits, lots, any channel and location), releases, shipments and replays of done
operations, checked after every step against a plain model of the books (tests/stock_model.py).

The ATP arithmetic's own properties are in test_atp_properties.py; the bugs these properties
found, one failing test each, in test_stock_core.py."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.atp import AvailabilitySnapshot, LocationStock, Shortage, check_lines
from domain.errors import (
    InsufficientStock,
    InvalidStockChange,
    OperationConflict,
    ReservationShortage,
    ShortageReason,
)
from domain.lots import LotStock, allocate_fefo
from models import finance, stock
from models.availability import load_snapshot
from models.stock import Move, ReserveLine
from runtime.db import make_async_engine
from runtime.embedded_pg import EmbeddedPostgres
from tests.conftest import TEMPLATE_DB
from tests.factories import receive, set_policy, standard_catalog
from tests.stock_model import (
    CHANNEL_LOCATIONS,
    CHANNELS,
    FENCES,
    LOCATIONS,
    RECIPES,
    RESERVABLE,
    SAFETY,
    SKUS,
    STATUSES,
    Bucket,
    ModelRow,
    expand_kits,
    expiry_of,
    kit_shortages,
    lots_of,
)

_db_counter = itertools.count()


class StockMachine(RuleBasedStateMachine):
    """Each example: a fresh database cloned from the migrated template, its own event loop
    and engine; every rule is one transaction through models/stock.py; after each step the
    database must equal the model and pass `stock.check`."""

    pg: ClassVar[EmbeddedPostgres]
    outcomes: ClassVar[Counter[str]] = Counter()  # over all examples: what the rules did

    def __init__(self) -> None:
        super().__init__()
        self.db = f"sm_{os.getpid()}_{next(_db_counter)}"
        with psycopg.connect(self.pg.admin_url(), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {self.db} TEMPLATE {TEMPLATE_DB}")
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine = make_async_engine(self.pg.admin_url(self.db), pool_size=2)
        self.qty: dict[Bucket, int] = defaultdict(int)
        self.rows: list[ModelRow] = []
        self.done: list[tuple[str, Callable[[AsyncConnection], Awaitable[stock.OperationResult]], Any]] = []
        self.keys = itertools.count()
        self.run(self._seed())

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.engine.dispose())
        finally:
            self.loop.close()
            with psycopg.connect(self.pg.admin_url(), autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")

    async def _seed(self) -> None:
        await standard_catalog(self.engine)
        async with self.engine.begin() as conn:
            for (ch, sku), ss in SAFETY.items():
                await set_policy(conn, ch, sku, safety=ss)
            for (sku, loc), fences in FENCES.items():
                for ch, q in fences.items():
                    await set_policy(conn, ch, sku, safety=SAFETY.get((ch, sku), 0), ringfence={loc: q})
        for sku, loc, lot, q in (
            ("TEE", "DC-EAST", "", 10),
            ("MUG", "DC-EAST", "", 12),
            ("COFFEE", "DC-EAST", "L-A", 5),
        ):
            await receive(
                self.engine, sku, loc, q, lot=lot, expires_at=expiry_of(sku, lot), key=f"seed-{sku}"
            )
            self.qty[(sku, loc, "sellable", lot)] += q

    # -- the model -----------------------------------------------------------------

    def reserved(self, sku: str, loc: str, lot: str) -> int:
        return sum(r.active for r in self.rows if (r.sku, r.location, r.lot) == (sku, loc, lot))

    def free(self, b: Bucket) -> int:
        sku, loc, status, lot = b
        return self.qty[b] - (self.reserved(sku, loc, lot) if status == "sellable" else 0)

    def snapshot(
        self,
        safety: dict[tuple[str, str], int] = SAFETY,
        fences: dict[tuple[str, str], dict[str, int]] = FENCES,
    ) -> AvailabilitySnapshot:
        """The model's ATP inputs (with these policies: the reasons of a refusal lift them)."""
        stock_: dict[tuple[str, str], LocationStock] = {}
        for sku in SKUS:
            for loc in LOCATIONS:
                on_hand = sum(self.qty[(sku, loc, "sellable", lot)] for lot in lots_of(sku))
                by_ch: dict[str, int] = defaultdict(int)
                for r in self.rows:
                    if (r.sku, r.location) == (sku, loc) and r.active:
                        by_ch[r.channel] += r.active
                stock_[(sku, loc)] = LocationStock(
                    on_hand, sum(by_ch.values()), fences.get((sku, loc), {}), dict(by_ch)
                )
        return AvailabilitySnapshot(
            stock_, CHANNEL_LOCATIONS, dict(safety), {k: dict(v) for k, v in RECIPES.items()}, set(RESERVABLE)
        )

    def expect_reserve(
        self, channel: str, request: list[ReserveLine]
    ) -> list[Shortage] | list[dict[str, Any]]:
        """What reserving `request` now should answer: its shortages (each with the rule that
        refused it: the first policy whose removal from the model makes the line fit; lots never
        expire in the model), or the reservations it makes (first-expiry-first-out)."""
        expanded = expand_kits(request)
        pairs = {(ln.sku, ln.location) for ln in expanded}

        def short(snap: AvailabilitySnapshot) -> list[Shortage]:
            found = check_lines(
                [(ln.line, ln.sku, ln.location, ln.qty) for ln in expanded],
                {p: snap.location_atp(channel, *p) for p in pairs},
                {ln.sku: snap.simple_atp(channel, ln.sku) for ln in expanded},
            )
            return found + kit_shortages(snap, channel, request)

        shortages = short(self.snapshot())
        if shortages:
            lifted = [(ShortageReason.SAFETY_STOCK, short(self.snapshot(safety={}))),
                      (ShortageReason.RING_FENCE, short(self.snapshot(safety={}, fences={})))]  # fmt: skip # kept aligned: the rules, in the order they are lifted
            named = []
            for s in shortages:
                still = [(reason, {(x.line, x.sku) for x in found}) for reason, found in lifted]
                why = next(
                    (reason for reason, left in still if (s.line, s.sku) not in left), ShortageReason.ATP
                )
                named.append(replace(s, reason=why))
            return named
        left = {
            (sku, loc, lot): self.free((sku, loc, "sellable", lot))
            for sku, loc in pairs
            for lot in lots_of(sku)
        }
        expected = []
        for ln in expanded:
            lots = [
                LotStock(lot, expiry_of(ln.sku, lot), left[(ln.sku, ln.location, lot)])
                for lot in lots_of(ln.sku)
            ]
            for lot, q in allocate_fefo(lots, ln.qty, datetime.now(UTC)):
                left[(ln.sku, ln.location, lot)] -= q
                expected.append(
                    {"line": ln.line, "sku": ln.sku, "location": ln.location, "lot": lot, "qty": q}
                )
        return expected

    def key(self, kind: str) -> str:
        return f"{kind}-{next(self.keys)}"

    async def _in_tx(self, op: Callable[[AsyncConnection], Awaitable[stock.OperationResult]]) -> Any:
        async with self.engine.begin() as conn:
            return await op(conn)

    def attempt(
        self, op: Callable[[AsyncConnection], Awaitable[stock.OperationResult]], expected_error: type | None
    ) -> stock.OperationResult | None:
        if expected_error is not None:
            with pytest.raises(expected_error):
                self.run(self._in_tx(op))
            event(f"refused: {expected_error.__name__}")
            self.outcomes[f"refused: {expected_error.__name__}"] += 1
            return None
        result: stock.OperationResult = self.run(self._in_tx(op))
        event(f"done: {result.kind}")
        self.outcomes[f"done: {result.kind}"] += 1
        assert not result.replayed
        self.done.append((result.key, op, result.data))
        return result

    # -- rules ---------------------------------------------------------------------

    def _apply_moves(self, moves: list[Move], kind: str) -> None:
        key = self.key(kind)
        left = {b: self.free(b) for m in moves for b in [(m.sku, m.from_location, m.from_status, m.lot)]}
        short = False
        for m in moves:
            if m.from_location in LOCATIONS:
                b = (m.sku, m.from_location, m.from_status, m.lot)
                left[b] -= m.qty
                short = short or left[b] < 0

        async def op(conn: AsyncConnection) -> stock.OperationResult:
            return await stock.apply_moves(conn, key, kind, moves, reason=kind, ref="sm")

        if self.attempt(op, InsufficientStock if short else None) is None:
            return
        for m in moves:
            if m.from_location in LOCATIONS:
                self.qty[(m.sku, m.from_location, m.from_status, m.lot)] -= m.qty
            if m.to_location in LOCATIONS:
                self.qty[(m.sku, m.to_location, m.to_status, m.lot)] += m.qty

    def stocked(self) -> list[Bucket]:
        return sorted(b for b, q in self.qty.items() if q > 0)

    def _bucket_and_qty(self, data: st.DataObject) -> tuple[Bucket, int]:
        """Mostly a bucket that has stock and at most one unit more than is free there (so
        that refusals happen too), sometimes any bucket."""
        if self.stocked() and data.draw(st.integers(0, 4), label="aim") > 0:
            b = data.draw(st.sampled_from(self.stocked()), label="bucket")
            if data.draw(st.integers(0, 5), label="over") == 0:
                return b, self.free(b) + 1
            return b, data.draw(st.integers(1, max(1, self.free(b))), label="qty")
        sku = data.draw(st.sampled_from(SKUS), label="sku")
        b = (
            sku,
            data.draw(st.sampled_from(LOCATIONS)),
            data.draw(st.sampled_from(STATUSES)),
            data.draw(st.sampled_from(lots_of(sku))),
        )
        return b, data.draw(st.integers(1, 8), label="qty")

    @rule(data=st.data())
    def receive_stock(self, data: st.DataObject) -> None:
        sku = data.draw(st.sampled_from(SKUS), label="sku")
        loc, status = data.draw(st.sampled_from(LOCATIONS)), data.draw(st.sampled_from(STATUSES))
        lot = data.draw(st.sampled_from(lots_of(sku)), label="lot")
        delta = data.draw(st.integers(1, 15), label="qty")
        self._apply_moves(
            [stock.adjustment_move(sku, loc, status, delta, lot, expiry_of(sku, lot))], "adjustment"
        )

    @rule(data=st.data())
    def adjust_down(self, data: st.DataObject) -> None:
        (sku, loc, status, lot), qty = self._bucket_and_qty(data)
        self._apply_moves(
            [stock.adjustment_move(sku, loc, status, -qty, lot, expiry_of(sku, lot))], "adjustment"
        )

    @rule(
        data=st.data(), dst=st.tuples(st.sampled_from(LOCATIONS), st.sampled_from((*STATUSES, "in_transit")))
    )
    def move(self, data: st.DataObject, dst: tuple[str, str]) -> None:
        """A status move (same location) or a transfer leg (another location)."""
        (sku, loc, status, lot), qty = self._bucket_and_qty(data)
        if (loc, status) == dst:
            return
        self._apply_moves(
            [Move(sku, qty, loc, status, dst[0], dst[1], lot, expiry_of(sku, lot))], "status_move"
        )

    @rule(
        channel=st.sampled_from(CHANNELS),
        lines=st.lists(
            st.tuples(st.sampled_from(RESERVABLE), st.integers(0, 9), st.integers(1, 6)),
            min_size=1,
            max_size=2,
        ),
    )
    def reserve(self, channel: str, lines: list[tuple[str, int, int]]) -> None:
        """Lines at DC-EAST (where the seed put stock) half of the time, at another of the
        channel's locations mostly, at a location the channel does not ship from sometimes."""
        ships = CHANNEL_LOCATIONS[channel]
        where = ["DC-EAST"] * 5 + [ships[i % len(ships)] for i in range(4)] + [LOCATIONS[len(ships) % 3]]
        request = [ReserveLine(str(i + 1), sku, where[w], q) for i, (sku, w, q) in enumerate(lines)]
        expanded = expand_kits(request)
        key = self.key("reserve")

        async def op(conn: AsyncConnection) -> stock.OperationResult:
            return await stock.reserve(conn, key, channel, request, ref="sm")

        if any(ln.location not in CHANNEL_LOCATIONS[channel] for ln in expanded):
            self.attempt(op, InvalidStockChange)
            return
        expected = self.expect_reserve(channel, request)
        if expected and isinstance(expected[0], Shortage):
            with pytest.raises(ReservationShortage) as err:
                self.run(self._in_tx(op))
            assert err.value.shortages == expected
            event("refused: ReservationShortage")
            self.outcomes["refused: ReservationShortage"] += 1
            return
        result = self.attempt(op, None)
        assert result is not None
        assert result.data == {"channel": channel, "reservations": expected}
        self.rows += self.run(self._rows_of(key, channel))

    async def _rows_of(self, key: str, channel: str) -> list[ModelRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id, line, sku, location, lot, qty FROM reservation WHERE key = :k ORDER BY id"),
                {"k": key},
            )
            return [ModelRow(r.id, key, r.line, channel, r.sku, r.location, r.lot, r.qty) for r in rows]

    def _settle(self, data: st.DataObject, consume: bool) -> None:
        keys = sorted({r.key for r in self.rows if r.active})
        target = data.draw(st.sampled_from(keys), label="reservation")
        mine = [r for r in self.rows if r.key == target]
        active_lines = sorted({r.line for r in mine if r.active})
        lines: dict[str, int] | None = None
        if data.draw(st.booleans(), label="partial"):
            chosen = data.draw(
                st.lists(st.sampled_from(active_lines), min_size=1, unique=True), label="lines"
            )
            lines = {
                ln: data.draw(st.integers(1, sum(r.active for r in mine if r.line == ln) + 1), label=ln)
                for ln in chosen
            }
        takes: list[tuple[ModelRow, int]] = []
        budget = dict(lines or {})
        for r in mine:  # id order, like the core
            if r.active == 0 or (lines is not None and r.line not in budget):
                continue
            n = r.active if lines is None else min(budget[r.line], r.active)
            if n:
                takes.append((r, n))
                if lines is not None:
                    budget[r.line] -= n
        short = lines is not None and sum(n for _, n in takes) < sum(lines.values())
        key = self.key("consume" if consume else "release")

        async def op(conn: AsyncConnection) -> stock.OperationResult:
            fn = stock.consume if consume else stock.release
            return await fn(conn, key, target, lines, ref="sm")

        result = self.attempt(op, InvalidStockChange if short else None)
        if result is None:
            return
        assert result.data == {
            "lines": [
                {
                    "line": r.line,
                    "sku": r.sku,
                    "location": r.location,
                    "lot": r.lot,
                    "qty": n,
                    "channel": r.channel,
                }
                for r, n in takes
            ]
        }
        for r, n in takes:
            r.used += n
            if consume:
                self.qty[(r.sku, r.location, "sellable", r.lot)] -= n

    @precondition(lambda self: any(r.active for r in self.rows))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self._settle(data, consume=False)

    @precondition(lambda self: any(r.active for r in self.rows))
    @rule(data=st.data())
    def consume(self, data: st.DataObject) -> None:
        self._settle(data, consume=True)

    @precondition(lambda self: bool(self.done))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """A retried operation (same key, same request) changes nothing and answers the same."""
        key, op, first = data.draw(st.sampled_from(self.done), label="operation")
        again: stock.OperationResult = self.run(self._in_tx(op))
        assert again.replayed and again.key == key
        assert again.data == first

    @precondition(lambda self: bool(self.done))
    @rule(data=st.data())
    def reuse_a_key_for_something_else(self, data: st.DataObject) -> None:
        key, _, _ = data.draw(st.sampled_from(self.done), label="operation")

        async def other(conn: AsyncConnection) -> stock.OperationResult:
            move = stock.adjustment_move("TEE", "DC-WEST", "damaged", 1)
            return await stock.apply_moves(conn, key, "adjustment", [move], reason="other")

        with pytest.raises(OperationConflict):
            self.run(self._in_tx(other))

    # -- after every step ----------------------------------------------------------

    @invariant()
    def books_agree_with_the_model(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        async with self.engine.connect() as conn:
            assert await stock.check(conn) == []
            assert await finance.check(conn) == []  # the books follow the stock
            rows = await conn.execute(
                text("SELECT sku, location, status, lot, qty, reserved FROM stock_balance")
            )
            db = {}
            for r in rows:
                assert r.qty >= 0 and 0 <= r.reserved <= r.qty, r
                if r.qty or r.reserved:
                    db[(r.sku, r.location, r.status, r.lot)] = (r.qty, r.reserved)
            model = {
                b: (q, self.reserved(b[0], b[1], b[3]) if b[2] == "sellable" else 0)
                for b, q in self.qty.items()
                if q or (b[2] == "sellable" and self.reserved(b[0], b[1], b[3]))
            }
            assert db == model
            snap = await load_snapshot(conn, RESERVABLE)
            stored = {
                (r.channel, r.sku): r.available
                for r in await conn.execute(text("SELECT channel, sku, available FROM channel_availability"))
            }
        mine = self.snapshot()
        for ch in CHANNELS:
            for sku in RESERVABLE:
                assert snap.atp(ch, sku) == mine.atp(ch, sku) == stored.get((ch, sku), 0), (ch, sku)


@pytest.fixture
def machine_server(pg_server: EmbeddedPostgres) -> type[StockMachine]:
    StockMachine.pg = pg_server
    StockMachine.outcomes.clear()
    return StockMachine


def machine_settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        # The same examples every run: CI must not pass or fail on which paths luck drew (the
        # coverage assertions hold for these). OMNIFLOW_HYPOTHESIS_RANDOM=1 explores.
        derandomize=not os.environ.get("OMNIFLOW_HYPOTHESIS_RANDOM"),
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        # Shrinking replays examples on fresh databases for up to 5 minutes; set
        # OMNIFLOW_SHRINK=1 to get a minimal counterexample, the default fails fast.
        phases=list(Phase) if os.environ.get("OMNIFLOW_SHRINK") else [Phase.reuse, Phase.generate],
    )


def test_the_inventory_core_keeps_its_books_under_any_sequence_of_operations(
    machine_server: type[StockMachine],
) -> None:
    run_state_machine_as_test(
        machine_server,
        settings=machine_settings(examples=15, steps=20),
    )
    seen = machine_server.outcomes  # the examples did exercise the core, not just refusals
    assert (
        seen["done: reserve"] and seen["done: adjustment"] and seen["done: release"] + seen["done: consume"]
    ), seen
    assert seen["refused: ReservationShortage"] and seen["refused: InsufficientStock"], seen

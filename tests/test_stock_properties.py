"""Properties of the inventory rules and of the inventory core, with Hypothesis.

1. The ATP arithmetic of domain/atp.py over generated stock, fences, reservations and
   safety stock: never negative, never above what is available, a channel's own fence never
   lowers its ATP, taking a fence never moves the other channels, a kit never promises more
   than its components, `check_lines` accepts exactly the requests whose totals fit.
2. A state machine over models/stock.py on a real database (a fresh clone of the migrated
   template per example): receipts and adjustments (±), status moves and transfers,
   reservations (kits, lots, any channel and location), releases, shipments and replays of
   done operations, checked after every step against a plain model of the books.
3. Counterexamples: bugs found while writing these properties, one failing test each."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
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

from domain.atp import (
    LocationStock,
    Shortage,
    channel_atp,
    check_lines,
    kit_channel_atp,
    kit_location_atp,
    location_atp,
)
from domain.errors import InsufficientStock, InvalidStockChange, OperationConflict, ReservationShortage
from domain.lots import LotStock, allocate_fefo
from models import finance, stock
from models.availability import AvailabilitySnapshot, load_snapshot
from models.stock import Move, ReserveLine
from runtime.db import make_async_engine
from runtime.embedded_pg import EmbeddedPostgres
from tests.conftest import TEMPLATE_DB
from tests.factories import atp, balance, receive, set_policy, standard_catalog

CHANNELS = ("web", "marketplace", "b2b")
LOCATIONS = ("DC-EAST", "DC-WEST", "STORE-SF")

# -- 1. the ATP arithmetic -------------------------------------------------------------


@st.composite
def location_stocks(draw: st.DrawFn, max_units: int = 60) -> LocationStock:
    by_channel = {ch: draw(st.integers(0, 20)) for ch in CHANNELS}
    reserved = sum(by_channel.values())
    on_hand = draw(st.integers(reserved, reserved + max_units))
    fenced = draw(st.sets(st.sampled_from(CHANNELS)))
    fences = {ch: draw(st.integers(0, 30)) for ch in sorted(fenced)}
    return LocationStock(on_hand, reserved, fences, {ch: q for ch, q in by_channel.items() if q})


@given(location_stocks(), st.sampled_from(CHANNELS), st.integers(0, 40))
def test_location_atp_is_never_negative_nor_above_what_is_available(
    here: LocationStock, channel: str, safety: int
) -> None:
    atp_here = location_atp(here, channel)
    assert 0 <= atp_here <= here.available
    assert 0 <= channel_atp([atp_here], safety) <= atp_here
    # safety stock is units held back: more of it never gives more
    assert channel_atp([atp_here], safety + 1) <= channel_atp([atp_here], safety)


@given(st.lists(location_stocks(), min_size=1, max_size=4), st.sampled_from(CHANNELS), st.integers(0, 40))
def test_channel_atp_is_never_negative_nor_above_the_sum_available(
    stocks: list[LocationStock], channel: str, safety: int
) -> None:
    total = channel_atp((location_atp(s, channel) for s in stocks), safety)
    assert 0 <= total <= sum(s.available for s in stocks)


@given(location_stocks(), st.sampled_from(CHANNELS), st.integers(0, 50))
def test_a_channels_own_fence_never_lowers_its_atp(here: LocationStock, channel: str, fence: int) -> None:
    without = replace(here, fences={c: q for c, q in here.fences.items() if c != channel})
    with_fence = replace(here, fences={**here.fences, channel: fence})
    assert location_atp(with_fence, channel) >= location_atp(without, channel)
    assert location_atp(with_fence, channel) == location_atp(here, channel)


@given(location_stocks(), st.sampled_from(CHANNELS), st.sampled_from(CHANNELS), st.integers(1, 20))
def test_another_channels_fence_never_raises_my_atp(
    here: LocationStock, me: str, other: str, more: int
) -> None:
    if me == other:
        return
    bigger = replace(here, fences={**here.fences, other: here.fences.get(other, 0) + more})
    assert location_atp(bigger, me) <= location_atp(here, me)


@given(location_stocks(), st.sampled_from(CHANNELS), st.data())
def test_taking_ones_own_fence_leaves_the_others_atp_unchanged(
    here: LocationStock, taker: str, data: st.DataObject
) -> None:
    room = min(here.fence_remaining(taker), location_atp(here, taker))
    if room == 0:
        return
    q = data.draw(st.integers(1, room))
    after = replace(
        here,
        reserved=here.reserved + q,
        reserved_by_channel={**here.reserved_by_channel, taker: here.reserved_by_channel.get(taker, 0) + q},
    )
    for other in CHANNELS:
        if other != taker:
            assert location_atp(after, other) == location_atp(here, other)
    assert location_atp(after, taker) == location_atp(here, taker) - q


@given(
    st.dictionaries(st.sampled_from(["TEE", "MUG", "CAP"]), st.integers(1, 4), min_size=1),
    st.dictionaries(
        st.sampled_from(LOCATIONS),
        st.dictionaries(st.sampled_from(["TEE", "MUG", "CAP"]), st.integers(0, 40)),
        min_size=1,
    ),
    st.dictionaries(st.sampled_from(["TEE", "MUG", "CAP"]), st.integers(0, 60)),
    st.integers(0, 5),
)
def test_a_kit_never_promises_more_than_its_components(
    recipe: dict[str, int],
    per_location: dict[str, dict[str, int]],
    component_channel: dict[str, int],
    safety: int,
) -> None:
    kit = kit_channel_atp(per_location, recipe, component_channel, safety)
    assert kit >= 0
    for sku, qty in recipe.items():
        assert kit <= component_channel.get(sku, 0) // qty
    assert kit <= sum(kit_location_atp(atps, recipe) for atps in per_location.values())
    for atps in per_location.values():
        assert kit_location_atp(atps, recipe) <= min(atps.get(s, 0) // q for s, q in recipe.items())


@st.composite
def snapshots(draw: st.DrawFn) -> AvailabilitySnapshot:
    """A consistent snapshot of TEE and MUG at the three locations, and the GIFT kit."""
    stock_ = {(sku, loc): draw(location_stocks(max_units=30)) for sku in ("TEE", "MUG") for loc in LOCATIONS}
    safety = {
        (ch, sku): draw(st.integers(0, 6))
        for ch in CHANNELS
        for sku in ("TEE", "MUG", "GIFT")
        if draw(st.booleans())
    }
    return AvailabilitySnapshot(
        stock=stock_,
        channel_locations={"web": list(LOCATIONS), "marketplace": ["DC-EAST", "DC-WEST"], "b2b": ["DC-EAST"]},
        safety=safety,
        recipes={"GIFT": {"TEE": 1, "MUG": 2}},
        targets={"TEE", "MUG", "GIFT"},
    )


@given(snapshots())
def test_a_kits_channel_atp_fits_every_component_and_a_reservation_of_it_fits(
    snap: AvailabilitySnapshot,
) -> None:
    for ch in CHANNELS:
        gift = snap.atp(ch, "GIFT")
        assert 0 <= gift <= min(snap.atp(ch, "TEE") // 1, snap.atp(ch, "MUG") // 2)
        # the kit's ATP, if positive, is reservable: at some location the first kit fits
        if gift > 0:
            assert any(
                not check_lines(
                    [("1/TEE", "TEE", loc, 1), ("1/MUG", "MUG", loc, 2)],
                    {(s, loc): snap.location_atp(ch, s, loc) for s in ("TEE", "MUG")},
                    {s: snap.simple_atp(ch, s) for s in ("TEE", "MUG")},
                )
                for loc in snap.channel_locations[ch]
            )


REQUESTS = st.lists(
    st.tuples(st.sampled_from(["TEE", "MUG", "CAP"]), st.sampled_from(LOCATIONS), st.integers(1, 8)),
    max_size=6,
).map(lambda rs: [(f"L{i}", s, loc, q) for i, (s, loc, q) in enumerate(rs)])


@given(
    REQUESTS,
    st.dictionaries(
        st.tuples(st.sampled_from(["TEE", "MUG", "CAP"]), st.sampled_from(LOCATIONS)), st.integers(0, 15)
    ),
    st.dictionaries(st.sampled_from(["TEE", "MUG", "CAP"]), st.integers(0, 25)),
    st.randoms(use_true_random=False),
)
def test_check_lines_accepts_exactly_the_requests_whose_totals_fit(
    requests: list[tuple[str, str, str, int]],
    at: dict[tuple[str, str], int],
    total: dict[str, int],
    rnd: random.Random,
) -> None:
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    per_sku: dict[str, int] = defaultdict(int)
    for _, sku, loc, qty in requests:
        per_pair[(sku, loc)] += qty
        per_sku[sku] += qty
    fits = all(q <= at.get(p, 0) for p, q in per_pair.items()) and all(
        q <= total.get(s, 0) for s, q in per_sku.items()
    )
    shortages = check_lines(requests, at, total)
    assert (shortages == []) == fits
    assert {s.line for s in shortages} <= {r[0] for r in requests}
    assert all(s.requested > s.atp >= 0 for s in shortages)
    shuffled = list(requests)
    rnd.shuffle(shuffled)
    assert (check_lines(shuffled, at, total) == []) == fits  # the order of lines does not matter


# -- 2. the state machine over a real database -----------------------------------------

SKUS = ("TEE", "MUG", "COFFEE")
RESERVABLE = ("TEE", "MUG", "COFFEE", "GIFT")
STATUSES = ("sellable", "sellable", "quarantine", "damaged", "returns")
CHANNEL_LOCATIONS = {"web": list(LOCATIONS), "marketplace": ["DC-EAST", "DC-WEST"], "b2b": ["DC-EAST"]}
RECIPES = {"GIFT": {"MUG": 2, "TEE": 1}}
SAFETY = {("web", "TEE"): 2, ("b2b", "MUG"): 1, ("marketplace", "COFFEE"): 1}
FENCES = {("TEE", "DC-EAST"): {"marketplace": 4}, ("MUG", "DC-EAST"): {"b2b": 3}}
_NOW = datetime.now(UTC).replace(microsecond=0)
LOTS = {"COFFEE": {"L-A": _NOW + timedelta(days=30), "L-B": _NOW + timedelta(days=90)}}
_db_counter = itertools.count()


def _lots(sku: str) -> list[str]:
    return sorted(LOTS.get(sku, {"": None}))


def _expiry(sku: str, lot: str) -> datetime | None:
    return LOTS.get(sku, {}).get(lot)


@dataclass
class ModelRow:
    id: int
    key: str
    line: str
    channel: str
    sku: str
    location: str
    lot: str
    qty: int
    used: int = 0  # consumed + released

    @property
    def active(self) -> int:
        return self.qty - self.used


Bucket = tuple[str, str, str, str]  # sku, location, status, lot


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
            await receive(self.engine, sku, loc, q, lot=lot, expires_at=_expiry(sku, lot), key=f"seed-{sku}")
            self.qty[(sku, loc, "sellable", lot)] += q

    # -- the model -----------------------------------------------------------------

    def reserved(self, sku: str, loc: str, lot: str) -> int:
        return sum(r.active for r in self.rows if (r.sku, r.location, r.lot) == (sku, loc, lot))

    def free(self, b: Bucket) -> int:
        sku, loc, status, lot = b
        return self.qty[b] - (self.reserved(sku, loc, lot) if status == "sellable" else 0)

    def snapshot(self) -> AvailabilitySnapshot:
        stock_: dict[tuple[str, str], LocationStock] = {}
        for sku in SKUS:
            for loc in LOCATIONS:
                on_hand = sum(self.qty[(sku, loc, "sellable", lot)] for lot in _lots(sku))
                by_ch: dict[str, int] = defaultdict(int)
                for r in self.rows:
                    if (r.sku, r.location) == (sku, loc) and r.active:
                        by_ch[r.channel] += r.active
                stock_[(sku, loc)] = LocationStock(
                    on_hand, sum(by_ch.values()), FENCES.get((sku, loc), {}), dict(by_ch)
                )
        return AvailabilitySnapshot(
            stock_, CHANNEL_LOCATIONS, dict(SAFETY), {k: dict(v) for k, v in RECIPES.items()}, set(RESERVABLE)
        )

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
            data.draw(st.sampled_from(_lots(sku))),
        )
        return b, data.draw(st.integers(1, 8), label="qty")

    @rule(data=st.data())
    def receive_stock(self, data: st.DataObject) -> None:
        sku = data.draw(st.sampled_from(SKUS), label="sku")
        loc, status = data.draw(st.sampled_from(LOCATIONS)), data.draw(st.sampled_from(STATUSES))
        lot = data.draw(st.sampled_from(_lots(sku)), label="lot")
        delta = data.draw(st.integers(1, 15), label="qty")
        self._apply_moves(
            [stock.adjustment_move(sku, loc, status, delta, lot, _expiry(sku, lot))], "adjustment"
        )

    @rule(data=st.data())
    def adjust_down(self, data: st.DataObject) -> None:
        (sku, loc, status, lot), qty = self._bucket_and_qty(data)
        self._apply_moves(
            [stock.adjustment_move(sku, loc, status, -qty, lot, _expiry(sku, lot))], "adjustment"
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
            [Move(sku, qty, loc, status, dst[0], dst[1], lot, _expiry(sku, lot))], "status_move"
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
        expanded: list[ReserveLine] = []  # what the core reserves: kits as their components
        for ln in request:
            if ln.sku in RECIPES:
                expanded += [
                    ReserveLine(f"{ln.line}/{c}", c, ln.location, ln.qty * n)
                    for c, n in sorted(RECIPES[ln.sku].items())
                ]
            else:
                expanded.append(ln)
        key = self.key("reserve")

        async def op(conn: AsyncConnection) -> stock.OperationResult:
            return await stock.reserve(conn, key, channel, request, ref="sm")

        if any(ln.location not in CHANNEL_LOCATIONS[channel] for ln in expanded):
            self.attempt(op, InvalidStockChange)
            return
        snap = self.snapshot()
        pairs = {(ln.sku, ln.location) for ln in expanded}
        shortages = check_lines(
            [(ln.line, ln.sku, ln.location, ln.qty) for ln in expanded],
            {p: snap.location_atp(channel, *p) for p in pairs},
            {ln.sku: snap.simple_atp(channel, ln.sku) for ln in expanded},
        )
        kit_asks: dict[str, int] = {}
        for ln in request:  # a kit also answers to its own ATP (its safety stock)
            if ln.sku in RECIPES:
                kit_asks[ln.sku] = kit_asks.get(ln.sku, 0) + ln.qty
        for kit, qty in sorted(kit_asks.items()):
            if qty > (have := snap.atp(channel, kit)):
                first = next(ln for ln in request if ln.sku == kit)
                shortages.append(
                    Shortage(line=first.line, sku=kit, location=first.location, requested=qty, atp=have)
                )
        if shortages:
            with pytest.raises(ReservationShortage) as err:
                self.run(self._in_tx(op))
            assert err.value.shortages == shortages
            event("refused: ReservationShortage")
            self.outcomes["refused: ReservationShortage"] += 1
            return
        # The expected lots: first-expiry-first-out over what is free, line after line.
        left = {
            (sku, loc, lot): self.free((sku, loc, "sellable", lot))
            for sku, loc in pairs
            for lot in _lots(sku)
        }
        expected = []
        for ln in expanded:
            lots = [
                LotStock(lot, _expiry(ln.sku, lot), left[(ln.sku, ln.location, lot)]) for lot in _lots(ln.sku)
            ]
            for lot, q in allocate_fefo(lots, ln.qty, datetime.now(UTC)):
                left[(ln.sku, ln.location, lot)] -= q
                expected.append(
                    {"line": ln.line, "sku": ln.sku, "location": ln.location, "lot": lot, "qty": q}
                )
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


def test_the_inventory_core_keeps_its_books_under_any_sequence_of_operations(
    machine_server: type[StockMachine],
) -> None:
    run_state_machine_as_test(
        machine_server,
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            # The same examples every run: CI must not pass or fail on which paths luck drew (the
            # coverage assertion below holds for these). OMNIFLOW_HYPOTHESIS_RANDOM=1 explores.
            derandomize=not os.environ.get("OMNIFLOW_HYPOTHESIS_RANDOM"),
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            # Shrinking replays examples on fresh databases for up to 5 minutes; set
            # OMNIFLOW_SHRINK=1 to get a minimal counterexample, the default fails fast.
            phases=list(Phase) if os.environ.get("OMNIFLOW_SHRINK") else [Phase.reuse, Phase.generate],
        ),
    )
    seen = machine_server.outcomes  # the examples did exercise the core, not just refusals
    assert (
        seen["done: reserve"] and seen["done: adjustment"] and seen["done: release"] + seen["done: consume"]
    ), seen
    assert seen["refused: ReservationShortage"] and seen["refused: InsufficientStock"], seen


# -- 3. counterexamples: bugs found, one failing test each ---------------------------------


@pytest.fixture
async def shop(engine: AsyncEngine) -> AsyncEngine:
    await standard_catalog(engine)
    return engine


async def test_a_kits_own_safety_stock_holds_back_kit_reservations(shop: AsyncEngine) -> None:
    """BUG (models/stock.py `reserve`): the published ATP of a kit subtracts the kit's own
    safety stock (domain/atp.kit_channel_atp), but `reserve` expands the kit into component
    lines and checks only the components' ATP: the kit's safety stock is never applied, so
    a channel can reserve more kits than `channel_availability` / the feed ever offered."""
    await receive(shop, "TEE", "DC-EAST", 3)
    await receive(shop, "MUG", "DC-EAST", 6)
    async with shop.begin() as conn:
        await set_policy(conn, "web", "GIFT", safety=1)
    assert await atp(shop, "web", "GIFT") == 2  # min(3 // 1, 6 // 2) - 1
    with pytest.raises(ReservationShortage):
        async with shop.begin() as conn:
            await stock.reserve(conn, "k:reserve", "web", [ReserveLine("1", "GIFT", "DC-EAST", 3)])


@pytest.mark.parametrize("settle", ["release", "consume"])
async def test_part_of_a_kit_line_can_be_settled_by_its_own_line_id(shop: AsyncEngine, settle: str) -> None:
    """BUG (models/stock.py `_take`): release/consume of `{"1": 1}` for a kit line "1"
    fails with "only 0 of 1 units are still reserved". `_active_reservations` does select
    the component rows ("1/TEE", "1/MUG": `r.line.split("/")[0] in lines`), but `_take`
    looks each row up by its exact line (`budget.get(r.line)`), so kit component rows are
    skipped — the docstring's "kit component lines follow their kit line's quantity times
    the recipe" is not implemented (and `asked` counts kits while `got` counts components)."""
    await receive(shop, "TEE", "DC-EAST", 3)
    await receive(shop, "MUG", "DC-EAST", 6)
    async with shop.begin() as conn:
        await stock.reserve(conn, "k:reserve", "web", [ReserveLine("1", "GIFT", "DC-EAST", 2)])
    async with shop.begin() as conn:
        fn = stock.release if settle == "release" else stock.consume
        await fn(conn, f"k:{settle}-one", "k:reserve", {"1": 1})
    on_hand = 3 if settle == "release" else 2
    assert await balance(shop, "TEE", "DC-EAST") == (on_hand, 1)
    assert await balance(shop, "MUG", "DC-EAST") == (2 * on_hand, 2)


async def test_a_location_that_cannot_ship_adds_nothing_to_a_channels_atp(shop: AsyncEngine) -> None:
    """PROBABLE BUG (models/availability.py `load_snapshot`): the channel→locations query
    joins `location l ON l.code = cl.location AND l.can_ship` with a LEFT JOIN and then
    appends `cl.location` whatever the join found, so the `can_ship` condition has no
    effect: a location that cannot ship still counts in every channel's ATP (and `reserve`
    still reserves there)."""
    await receive(shop, "TEE", "DC-EAST", 3)
    await receive(shop, "TEE", "STORE-SF", 5)
    async with shop.begin() as conn:
        await conn.execute(text("UPDATE location SET can_ship = false WHERE code = 'STORE-SF'"))
    assert await atp(shop, "web", "TEE") == 3

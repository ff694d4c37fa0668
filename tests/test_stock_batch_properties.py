"""The inventory core's state machine (test_stock_properties.py) with one more rule: a batch
(`stock.apply_batch`) of reservations — kits sharing components, any channel (ring-fences,
safety stock), lots, refusals — with releases and consumes of earlier reservations in the same
batch, in any order in the list. The model applies the settles first, then each reservation as
if alone after the ones before it; every request's answer and the books after the batch must
equal the model's, with every other rule of the machine still running between batches."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from domain.atp import Shortage
from domain.errors import DomainError, InvalidStockChange, ReservationShortage
from models import stock
from models.stock import ReserveLine, ReserveRequest, SettleRequest
from runtime.embedded_pg import EmbeddedPostgres
from tests.stock_model import CHANNEL_LOCATIONS, CHANNELS, LOCATIONS, RESERVABLE, ModelRow, expand_kits
from tests.test_stock_properties import StockMachine, machine_settings

REQUEST = st.tuples(
    st.sampled_from(CHANNELS),
    st.lists(
        st.tuples(st.sampled_from(RESERVABLE), st.integers(0, 9), st.integers(1, 5)), min_size=1, max_size=2
    ),
)


SETTLED = ("line", "sku", "location", "lot", "qty", "channel")  # what a settle answers per row


class BatchMachine(StockMachine):
    outcomes: ClassVar[Any] = StockMachine.outcomes

    def _request(self, channel: str, lines: list[tuple[str, int, int]]) -> list[ReserveLine]:
        ships = CHANNEL_LOCATIONS[channel]
        where = ["DC-EAST"] * 6 + [ships[i % len(ships)] for i in range(3)] + [LOCATIONS[len(ships) % 3]]
        return [ReserveLine(str(i + 1), sku, where[w], q) for i, (sku, w, q) in enumerate(lines)]

    def _expect_settle(self, target: str, consume: bool) -> dict[str, Any]:
        """The whole reservation settled: every active row, in id order."""
        settled = []
        for r in self.rows:
            if r.key == target and r.active:
                n = r.active
                settled.append(
                    dict(zip(SETTLED, (r.line, r.sku, r.location, r.lot, n, r.channel), strict=True))
                )
                r.used += n
                if consume:
                    self.qty[(r.sku, r.location, "sellable", r.lot)] -= n
        return {"lines": settled}

    def _expect_reserve(self, req: ReserveRequest) -> Any:
        lines = list(req.lines)
        if any(ln.location not in CHANNEL_LOCATIONS[req.channel] for ln in expand_kits(lines)):
            return InvalidStockChange
        expected = self.expect_reserve(req.channel, lines)
        if expected and isinstance(expected[0], Shortage):
            return expected
        for r in expected:
            assert isinstance(r, dict)
            self.rows.append(
                ModelRow(0, req.key, r["line"], req.channel, r["sku"], r["location"], r["lot"], r["qty"])
            )
        return {"channel": req.channel, "reservations": expected}

    @rule(data=st.data(), asks=st.lists(REQUEST, min_size=1, max_size=4))
    def batch(self, data: st.DataObject, asks: list[tuple[str, list[tuple[str, int, int]]]]) -> None:
        requests: list[ReserveRequest | SettleRequest] = [
            ReserveRequest(self.key("reserve"), ch, self._request(ch, lines), "sm") for ch, lines in asks
        ]
        active = sorted({r.key for r in self.rows if r.active})
        if active:
            targets = data.draw(st.lists(st.sampled_from(active), max_size=2, unique=True), label="settle")
            for target in targets:
                consume = data.draw(st.booleans(), label="consume")
                requests.append(
                    SettleRequest(self.key("consume" if consume else "release"), target, consume, None, "sm")
                )
        requests = data.draw(st.permutations(requests), label="order")
        # the model: settles first, then each reservation after the ones before it
        expected: dict[int, Any] = {}
        for i, r in enumerate(requests):
            if isinstance(r, SettleRequest):
                expected[i] = self._expect_settle(r.reservation_key, r.consume)
        for i, r in enumerate(requests):
            if isinstance(r, ReserveRequest):
                expected[i] = self._expect_reserve(r)

        async def apply() -> list[Any]:
            async with self.engine.begin() as conn:
                return await stock.apply_batch(conn, requests)

        outcomes = self.run(apply())
        for i, (r, got) in enumerate(zip(requests, outcomes, strict=True)):
            self._answered(r, got, expected[i])
        event(f"batch of {len(requests)}")

    def _answered(self, r: ReserveRequest | SettleRequest, got: Any, want: Any) -> None:
        if want is InvalidStockChange:
            assert isinstance(got, InvalidStockChange), (r, got)
        elif isinstance(want, list):
            assert isinstance(got, ReservationShortage) and got.shortages == want, (r, got, want)
            self.outcomes["refused in a batch: ReservationShortage"] += 1
        else:
            assert not isinstance(got, DomainError) and not got.replayed, (r, got)
            assert got.data == want, (r, got.data, want)
            self.outcomes[f"done in a batch: {got.kind}"] += 1


@pytest.fixture
def batch_machine(pg_server: EmbeddedPostgres) -> type[BatchMachine]:
    BatchMachine.pg = pg_server
    BatchMachine.outcomes.clear()
    return BatchMachine


def test_a_batch_keeps_the_books_as_if_each_request_ran_alone(batch_machine: type[BatchMachine]) -> None:
    run_state_machine_as_test(
        batch_machine,
        settings=machine_settings(examples=10, steps=15),
    )
    seen = batch_machine.outcomes
    assert seen["done in a batch: reserve"] and seen["refused in a batch: ReservationShortage"], seen
    assert seen["done in a batch: release"] + seen["done in a batch: consume"], seen

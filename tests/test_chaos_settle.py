"""The chaos bench's settling (bench/chaos_settle.py) waits while the business state still
moves and gives up only once nothing has moved for the stall time, naming what is stuck."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from bench import chaos_settle
from runtime.ports import free_port


def _order(oid: str, status: str, shipment: str | None = None) -> Any:
    shipments = [SimpleNamespace(status=shipment)] if shipment else []
    return SimpleNamespace(id=oid, status=status, shipments=shipments, lines=[])


class FakeChaos:
    """The two orders a settling run reads: one picked parcel still open, one `allocated`;
    `done_after` looks later the picked one has shipped (None: never)."""

    def __init__(self, done_after: int | None = None) -> None:
        self.stack = SimpleNamespace(temporal_address="-", database_url="-")
        self.looks = 0
        self.done_after = done_after

    @contextmanager
    def client(self) -> Iterator[None]:
        yield None

    def orders(self, _api: object, _statuses: object) -> list[Any]:
        self.looks += 1
        if self.done_after is not None and self.looks > self.done_after:
            return [_order("order-web-1", "completed")]
        return [_order("order-web-1", "in_fulfillment", "picked"), _order("order-web-2", "allocated")]


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Looks every 10 ms; the workflows run; `moves[0]` looks see a new fingerprint, then none."""
    moves = [0]
    counter = itertools.count()

    async def running(_address: str, ids: list[str]) -> dict[str, str]:
        return dict.fromkeys(ids, "RUNNING")

    def fingerprint(_url: str) -> frozenset[tuple[str, str, int]]:
        n = next(counter)
        return frozenset({("order event", "picked", min(n, moves[0]))})

    monkeypatch.setattr(chaos_settle, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(chaos_settle, "describe_workflows", running)
    monkeypatch.setattr(chaos_settle, "progress_fingerprint", fingerprint)
    return moves


def test_settling_waits_while_things_move_far_past_the_stall_time(fast: list[int]) -> None:
    fast[0] = 30  # 30 looks of progress: ~0.3 s, six times the stall time
    out = chaos_settle.settle(FakeChaos(), stall_seconds=0.05, cap_seconds=30)  # type: ignore[arg-type]
    assert out.progress_seen >= 29
    assert out.seconds > 0.3
    assert out.stalled.startswith("nothing moved for 0s; 2 orders unsettled:")
    assert "in_fulfillment with a shipment picked ×1" in out.stalled and "allocated ×1" in out.stalled
    assert "order-web-1" in out.stalled
    assert [o.id for o in out.unsettled] == ["order-web-1", "order-web-2"]


def test_settling_fails_soon_when_nothing_moves(fast: list[int]) -> None:
    out = chaos_settle.settle(FakeChaos(), stall_seconds=0.05, cap_seconds=30)  # type: ignore[arg-type]
    assert out.progress_seen == 0 and out.seconds < 1.0
    assert out.stalled.startswith("nothing moved")


def test_settling_ends_cleanly_once_every_order_settles(fast: list[int]) -> None:
    fast[0] = 1000
    out = chaos_settle.settle(FakeChaos(done_after=5), stall_seconds=5, cap_seconds=30)  # type: ignore[arg-type]
    assert out.stalled == "" and out.unsettled == []


def test_the_cap_stops_a_run_that_never_ends(fast: list[int]) -> None:
    fast[0] = 10**6
    out = chaos_settle.settle(FakeChaos(), stall_seconds=5, cap_seconds=0.1)  # type: ignore[arg-type]
    assert out.stalled.startswith("still moving after the cap")


def test_the_fingerprint_reads_the_real_schema(database_url: str) -> None:
    """Every table and column it counts exists (empty tables: no rows); no Postgres: None."""
    assert chaos_settle.progress_fingerprint(database_url) == frozenset()
    assert chaos_settle.progress_fingerprint(f"postgresql://postgres@127.0.0.1:{free_port()}/x") is None

"""Shared pieces of the benchmarks: a throw-away durable Postgres, closed-loop clients on
their own connections, latency percentiles, and a per-statement profiler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from client import Address, NewChannel, NewLocation, NewSku, OmniflowClient, operations
from runtime.embedded_pg import EmbeddedPostgres
from runtime.migrate import upgrade
from runtime.ports import free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# A good US ship-to (the order tests, the benchmarks and the chaos run all ship here).
NYC = {
    "name": "Ada",
    "line1": "1 Main St",
    "city": "New York",
    "region": "NY",
    "postal_code": "10001",
    "country": "US",
    "lat": 40.75,
    "lon": -73.99,
}
NYC_ADDRESS = Address(**NYC)  # the same, for the API client

# The two DCs and three channels the e2e order test and the chaos bench both sell through.
LOCATIONS = [
    NewLocation(code="DC-EAST", name="East", type="dc", lat=40.7, lon=-74.2, ship_cost=450, priority=1),
    NewLocation(code="DC-WEST", name="West", type="dc", lat=34.1, lon=-117.7, ship_cost=380, priority=2),
]
CHANNELS = [
    NewChannel(code="web", type="web", locations=["DC-EAST", "DC-WEST"], sourcing_rule="nearest"),
    NewChannel(code="market", type="marketplace", locations=["DC-EAST", "DC-WEST"], sourcing_rule="cheapest"),
    NewChannel(code="edi", type="b2b", locations=["DC-EAST"], sourcing_rule="priority"),
]


def create_catalog(
    admin: OmniflowClient, skus: list[NewSku], locations: list[NewLocation], channels: list[NewChannel]
) -> None:
    """Create (or find, with the same data) each SKU, location and channel."""
    for sku in skus:
        assert admin.send(operations.create_sku(sku)).status in (200, 201)
    for location in locations:
        assert admin.send(operations.create_location(location)).status in (200, 201)
    for channel in channels:
        assert admin.send(operations.create_channel(channel)).status in (200, 201)


@contextlib.contextmanager
def durable_postgres() -> Iterator[EmbeddedPostgres]:
    """A migrated embedded Postgres that keeps every commit (fsync on), in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="omniflow-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "data", free_port(), database="bench", durable=True)
        pg.start()
        try:
            upgrade(pg.url)
            yield pg
        finally:
            pg.stop()


def server_settings(url: str, names: tuple[str, ...]) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass
class Run:
    """One closed-loop measurement: C clients, each on its own connection, for a while."""

    clients: int
    seconds: float = 0.0
    done: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def merge(self, other: Run) -> Run:
        return Run(
            self.clients,
            self.seconds + other.seconds,
            self.done + other.done,
            self.failed + other.failed,
            self.latencies_ms + other.latencies_ms,
        )

    @property
    def per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(sorted(self.latencies_ms), q)


Call = Callable[[AsyncConnection, int, int], Awaitable[bool]]  # (conn, client, n) -> succeeded


async def closed_loop(
    engine: AsyncEngine, clients: int, seconds: float, call: Call, *, warmup: int = 6
) -> Run:
    """Every client holds its own connection, runs `warmup` untimed calls (statements get
    prepared), waits for all the others, then calls in a loop, one transaction per call,
    until the deadline. Throughput counts the calls that finished inside the window."""

    async def session(i: int, body: Callable[[Callable[[int], Awaitable[bool]]], Awaitable[None]]) -> None:
        async with engine.connect() as conn:

            async def one(n: int) -> bool:
                async with conn.begin():
                    return await call(conn, i, n)

            await body(one)

    return await _clients(clients, seconds, session, warmup)


async def closed_loop_calls(
    clients: int, seconds: float, call: Callable[[int, int], Awaitable[bool]], *, warmup: int = 6
) -> Run:
    """`closed_loop` for calls that bring their own transactions (e.g. through a batcher
    sharing a few connections): (client, n) -> succeeded."""

    async def session(i: int, body: Callable[[Callable[[int], Awaitable[bool]]], Awaitable[None]]) -> None:
        await body(lambda n: call(i, n))

    return await _clients(clients, seconds, session, warmup)


async def run_jobs(concurrency: int, total: int, one: Any) -> tuple[float, int]:
    """`concurrency` clients take the next of `total` jobs until none is left; wall seconds."""
    counter = iter(range(total))
    failed = 0

    async def client() -> None:
        nonlocal failed
        for n in counter:
            try:
                await one(n)
            except Exception as exc:
                failed += 1
                print(f"  failed: {exc!r}"[:200], file=sys.stderr)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - t0, failed


Session = Callable[
    [int, Callable[[Callable[[int], Awaitable[bool]]], Awaitable[None]]], Coroutine[Any, Any, None]
]


async def _clients(clients: int, seconds: float, session: Session, warmup: int) -> Run:
    ready = 0
    all_ready, go = asyncio.Event(), asyncio.Event()
    run = Run(clients)
    window: dict[str, float] = {}

    async def body(one: Callable[[int], Awaitable[bool]]) -> None:
        nonlocal ready
        for n in range(warmup):
            await one(-1 - n)
        ready += 1
        if ready == clients:
            all_ready.set()
        await go.wait()
        n = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= window["end"]:
                return
            ok = await one(n)
            t1 = time.perf_counter()
            n += 1
            if t1 <= window["end"]:
                run.latencies_ms.append((t1 - t0) * 1000)
                if ok:
                    run.done += 1
                else:
                    run.failed += 1

    tasks = [asyncio.create_task(session(i, body)) for i in range(clients)]
    await asyncio.wait_for(all_ready.wait(), 120)
    window["start"] = time.perf_counter()
    window["end"] = window["start"] + seconds
    go.set()
    await asyncio.gather(*tasks)
    run.seconds = seconds
    return run


class StatementProfile:
    """Counts and times every statement the engine sends (driver round trip included),
    keyed by the statement's first words."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.count: dict[str, int] = defaultdict(int)
        self.ms: dict[str, float] = defaultdict(float)
        self.log: list[tuple[str, float, float]] = []  # (label, start, end)
        self.lock_ends: list[float] = []  # when each statement taking SKU locks returned
        self._start: dict[int, float] = {}

    @staticmethod
    def label(statement: str) -> str:
        words = " ".join(statement.split())
        return words[:72]

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._start[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        end = time.perf_counter()
        start = self._start.pop(id(cursor), end)
        label = self.label(statement)
        self.count[label] += 1
        self.ms[label] += (end - start) * 1000
        self.log.append((label, start, end))
        if "pg_advisory_xact_lock" in statement:
            self.lock_ends.append(end)

    def __enter__(self) -> StatementProfile:
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(self.engine.sync_engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._before)
        event.remove(self.engine.sync_engine, "after_cursor_execute", self._after)


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(
        json.dumps(
            payload, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)
        )
    )
    return path

"""The load of the publishing bench, through the real stock core on the stack's Postgres
(the change feed the publishers read is the real one):

- `offer`: +1 adjustments (`models.stock.apply_moves`, as POST /v1/inventory/adjustments
  makes them) open-loop at a constant rate, SKUs in turn. Every few milliseconds the changes
  that fell due are handed to a pool of connections; each transaction takes up to
  `per_tx` of them (one operation, one move a SKU), so the offered rate does not depend
  on how fast a single transaction commits. Each change's commit time is kept.
- `flash_sale`: buyers on their own connections reserve (`models.stock.reserve`) a few
  hot SKUs on every channel until nothing is left.
- `cpu`: CPU seconds of each process of the stack (and of this one), to say which is the wall.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import ReservationShortage
from models import stock
from models.stock import ReserveLine

LOCATION = "DC-EAST"


@dataclass
class Offered:
    rate: int
    seconds: float
    commits: dict[str, list[float]] = field(default_factory=dict)  # sku -> commit times, in order
    queue_delays: list[float] = field(default_factory=list)  # due -> committed, per change
    transactions: int = 0
    failed: int = 0
    error: str = ""  # the last failure, if any
    last_commit: float = 0.0

    @property
    def changes(self) -> int:
        return sum(len(v) for v in self.commits.values())


class _OpenLoop:
    """Change k falls due at t0 + k / rate, whatever the database does meanwhile; committers
    take what is due."""

    def __init__(self, engine: AsyncEngine, skus: list[str], out: Offered, per_tx: int, run: str) -> None:
        self.engine, self.skus, self.out, self.per_tx, self.run = engine, skus, out, per_tx, run
        self.due: deque[tuple[int, float]] = deque()  # (change number, when it fell due)
        self.more = asyncio.Event()
        self.offering = True

    def sku(self, n: int) -> str:
        return self.skus[n % len(self.skus)]

    def take(self) -> list[tuple[int, float]]:
        """Up to per_tx due changes, one per SKU."""
        taken: list[tuple[int, float]] = []
        names: set[str] = set()
        while self.due and len(taken) < self.per_tx and self.sku(self.due[0][0]) not in names:
            n, at = self.due.popleft()
            names.add(self.sku(n))
            taken.append((n, at))
        return taken

    async def commit(self, taken: list[tuple[int, float]]) -> None:
        moves = [stock.adjustment_move(self.sku(n), LOCATION, "sellable", 1) for n, _ in taken]
        key = f"adjustment:bench:{self.run}:{taken[0][0]}"
        try:
            async with self.engine.begin() as conn:
                await stock.apply_moves(conn, key, "adjustment", moves, reason="found")
        except Exception as exc:
            self.out.failed += len(taken)  # counted, not fatal to the bench
            self.out.error = repr(exc)[:300]
            return
        committed, wall = time.time(), time.monotonic()
        self.out.transactions += 1
        self.out.last_commit = committed
        for n, at in taken:
            self.out.commits[self.sku(n)].append(committed)
            self.out.queue_delays.append(wall - at)

    async def committer(self) -> None:
        while self.due or self.offering:
            if not self.due:
                self.more.clear()
                await self.more.wait()
                continue
            await self.commit(self.take())

    async def schedule(self, rate: int, seconds: float) -> None:
        t0 = time.monotonic()
        for n in itertools.count():
            at = t0 + n / rate
            if at - t0 >= seconds:
                break
            if (wait := at - time.monotonic()) > 0.002:
                await asyncio.sleep(wait)
            self.due.append((n, at))
            self.more.set()
        self.offering = False
        self.more.set()


async def offer(
    engine: AsyncEngine,
    skus: list[str],
    rate: int,
    seconds: float,
    *,
    connections: int,
    per_tx: int,
    run: str,
) -> Offered:
    """+1 adjustments open-loop at `rate` for `seconds`, on `connections` connections."""
    out = Offered(rate, seconds, {s: [] for s in skus})
    loop = _OpenLoop(engine, skus, out, per_tx, run)
    committers = [asyncio.create_task(loop.committer()) for _ in range(connections)]
    await loop.schedule(rate, seconds)
    await asyncio.gather(*committers)
    return out


@dataclass
class Sale:
    reserved: int = 0
    refused: int = 0
    commits: list[tuple[str, float]] = field(default_factory=list)  # (sku, commit time)


async def flash_sale(
    engine: AsyncEngine, skus: list[str], channels: list[str], buyers: int, *, run: str, qty: int = 1
) -> Sale:
    """Each buyer reserves `qty` of a hot SKU on a channel (all in turn) until every SKU is
    refused on every channel."""
    sale = Sale()
    counter = itertools.count()

    async def buyer(i: int) -> None:
        sold_out: set[tuple[str, str]] = set()
        pairs = [(s, c) for s in skus for c in channels]
        for k in itertools.count(i):
            open_pairs = [p for p in pairs if p not in sold_out]
            if not open_pairs:
                return
            sku, channel = open_pairs[k % len(open_pairs)]
            line = ReserveLine("1", sku, LOCATION, qty)
            try:
                async with engine.begin() as conn:
                    await stock.reserve(conn, f"flash:{run}:{next(counter)}", channel, [line])
            except ReservationShortage:
                sale.refused += 1
                sold_out.add((sku, channel))
                continue
            sale.reserved += qty
            sale.commits.append((sku, time.time()))

    await asyncio.gather(*(buyer(i) for i in range(buyers)))
    return sale


def _tree(p: psutil.Process) -> list[psutil.Process]:
    try:
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return [p]


def stack_processes(stack_pid: int, data_dir: Path) -> dict[str, list[psutil.Process]]:
    """The processes of `omniflow dev` by role: worker, api, temporal, postgres; and this one."""
    groups: dict[str, list[psutil.Process]] = {"bench (driver + receiver)": [psutil.Process()]}
    pg_dir = str((data_dir / "pg").resolve())
    for p in psutil.process_iter(["cmdline"]):
        argv = p.info["cmdline"] or []
        if argv and "postgres" in Path(argv[0]).name and pg_dir in " ".join(argv):
            groups["postgres"] = _tree(p)
    for child in psutil.Process(stack_pid).children():
        try:
            argv = child.cmdline()
        except psutil.Error:
            continue
        role = next((r for r in ("worker", "api") if argv[-2:] == ["-m", r]), None)
        if role is None and any("temporal" in a for a in argv):
            role = "temporal"
        if role is not None:
            groups[role] = _tree(child)
    return groups


def cpu_seconds(groups: dict[str, list[psutil.Process]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of every process, by group and pid."""
    out: dict[str, dict[int, float]] = {}
    for name, procs in groups.items():
        out[name] = {}
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            out[name][p.pid] = t.user + t.system
    return out


def cores_used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], wall: float
) -> dict[str, float]:
    """Per process group, the CPU cores it kept busy over `wall` seconds (a process that
    started meanwhile counts whole)."""
    return {
        name: round(sum(t - before.get(name, {}).get(pid, 0.0) for pid, t in pids.items()) / wall, 2)
        for name, pids in after.items()
    }

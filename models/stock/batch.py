"""Many stock operations in one transaction under one acquisition of their SKU locks: what a
hot SKU needs (models/stock/batcher.py combines the requests that queue for it). Each
request keeps its own key, its own all-or-nothing outcome and its own refusal:

- reservations are decided in memory from one read under the locks, one after another as if
  each ran alone (`domain.reservation.plan_batch`), then written in one statement; a refused
  one writes nothing and lets go of its key;
- releases and consumes run first, each in its own savepoint (one that is refused is rolled
  back alone), so the units a release gives back are there for the reservations after it.

A request whose key is already done answers its stored result (a different request under
that key: OperationConflict); the same key twice in one batch is done once. A batch that
fails as a whole (a lost connection) leaves nothing; retried, each key is applied once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, OperationConflict
from domain.reservation import ComponentLine, ReservationPlan, ReserveRequest, expand_lines, plan_batch
from models.availability import kits_containing, lock_sku_set
from models.stock import reservations
from models.stock.operations import OperationResult, fingerprint, replay_committed, replayed
from models.stock.settlement import consume, release

Outcome = OperationResult | DomainError


@dataclass(frozen=True)
class SettleRequest:
    """A release (`consume` False) or a consume of reserved units: all of the reservation, or
    up to `lines` (line -> qty)."""

    key: str
    reservation_key: str
    consume: bool
    lines: dict[str, int] | None = None
    ref: str = ""


Request = ReserveRequest | SettleRequest


def _digest(req: ReserveRequest) -> str:
    return fingerprint({"channel": req.channel, "lines": [asdict(ln) for ln in req.lines], "ref": req.ref})


class _Reservations:
    """The reservations of a batch, through their phases: read the context (before any lock),
    what to lock, then claim, read, decide and write (under the locks)."""

    def __init__(self, requests: Sequence[tuple[int, ReserveRequest]]) -> None:
        self.requests = requests
        self.outcomes: dict[int, Outcome] = {}
        self.first: dict[str, int] = {}  # key -> the index of its first request in the batch
        self.todo: list[tuple[int, ReserveRequest, str, list[ComponentLine]]] = []
        self.locks: set[str] = set()
        self.context: reservations.Context | None = None

    async def prepare(self, conn: AsyncConnection) -> None:
        if not self.requests:
            return
        keys = sorted({req.key for _, req in self.requests})
        ctx = await reservations.read_context(
            conn, keys, {ln.sku for _, r in self.requests for ln in r.lines}
        )
        done = {op["key"]: op for op in ctx["ops"]}
        context = self.context = reservations.context_of(ctx)
        for i, req in self.requests:
            if req.key in self.first:
                continue  # answered after, as its first
            self.first[req.key] = i
            digest = _digest(req)
            try:
                if req.key in done:
                    self.outcomes[i] = replayed(req.key, "reserve", digest, done[req.key])
                    continue
                components = expand_lines(req.channel, req.lines, context.catalog)
            except DomainError as refused:
                self.outcomes[i] = refused
                continue
            self.todo.append((i, req, digest, components))
        if self.todo:
            self.locks = {c.sku for *_, comps in self.todo for c in comps} | context.kits

    async def run(self, conn: AsyncConnection) -> None:
        if self.todo:
            await self._decide_and_write(conn)
        for i, req in self.requests:  # a key asked again in the batch: the first one's answer
            first = self.first[req.key]
            if first != i:
                self.outcomes[i] = _again(self.outcomes[first], req, self.requests, first)

    async def _decide_and_write(self, conn: AsyncConnection) -> None:
        assert self.context is not None
        context = self.context
        claims = [(req.key, req.ref, digest) for _, req, digest, _ in self.todo]
        components = [c for *_, comps in self.todo for c in comps]
        state = await reservations.claim_and_read(conn, claims, components, context)
        claimed = set(state.claimed)
        go = []
        for i, req, digest, _ in self.todo:
            if req.key in claimed:
                go.append((i, req))
            else:  # the same key committed by another transaction while we waited for the locks
                try:
                    self.outcomes[i] = await replay_committed(conn, req.key, "reserve", digest)
                except OperationConflict as refused:
                    self.outcomes[i] = refused
        skus = {c.sku for c in components}
        plan = plan_batch(
            [req for _, req in go],
            context.catalog,
            context.snapshot(state, skus),
            reservations.balances_of(state.rows),
            datetime.now(UTC),
        )
        accepted: list[tuple[ReserveRequest, ReservationPlan]] = []
        refused_keys: list[str] = []
        for (i, req), outcome in zip(go, plan.outcomes, strict=True):
            if isinstance(outcome, ReservationPlan):
                accepted.append((req, outcome))
                self.outcomes[i] = OperationResult(key=req.key, kind="reserve", data=outcome.result)
            else:
                refused_keys.append(req.key)
                self.outcomes[i] = outcome
        await reservations.write(conn, accepted, refused_keys, plan.atp_after)


def _again(
    first: Outcome, req: ReserveRequest, requests: Sequence[tuple[int, ReserveRequest]], at: int
) -> Outcome:
    original = next(r for i, r in requests if i == at)
    if _digest(original) != _digest(req):
        return OperationConflict(req.key)
    if isinstance(first, OperationResult):
        return OperationResult(key=first.key, kind=first.kind, replayed=True, data=first.data)
    return first


async def _settle_locks(conn: AsyncConnection, settles: Sequence[tuple[int, SettleRequest]]) -> set[str]:
    """The SKUs the reservations to settle hold, and every kit containing one."""
    if not settles:
        return set()
    rows = await conn.execute(
        text("SELECT DISTINCT sku FROM reservation WHERE key = ANY(CAST(:keys AS text[]))"),
        {"keys": sorted({s.reservation_key for _, s in settles})},
    )
    skus = set(rows.scalars())
    return skus | await kits_containing(conn, skus) if skus else set()


async def apply_batch(conn: AsyncConnection, requests: Sequence[Request]) -> list[Outcome]:
    """Apply the requests in the caller's transaction, one outcome each (in order): releases and
    consumes first, then the reservations. Every SKU lock is taken once, sorted, before the
    first write; the settles' own lock calls then find them held."""
    settles = [(i, r) for i, r in enumerate(requests) if isinstance(r, SettleRequest)]
    reserving = _Reservations([(i, r) for i, r in enumerate(requests) if isinstance(r, ReserveRequest)])
    await reserving.prepare(conn)
    locks = reserving.locks | await _settle_locks(conn, settles)
    if locks:
        await lock_sku_set(conn, locks)
    outcomes: dict[int, Outcome] = {}
    for i, s in settles:
        outcomes[i] = await _settle_one(conn, s)
    await reserving.run(conn)
    outcomes.update(reserving.outcomes)
    return [outcomes[i] for i in range(len(requests))]


async def _settle_one(conn: AsyncConnection, s: SettleRequest) -> Outcome:
    fn: Any = consume if s.consume else release
    try:
        async with conn.begin_nested():
            result: OperationResult = await fn(conn, s.key, s.reservation_key, s.lines, ref=s.ref)
            return result
    except DomainError as refused:
        return refused
